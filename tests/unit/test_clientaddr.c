/*
 * test_clientaddr.c — the client address behind trusted proxies: X-Forwarded-For element syntax (ports, IPv6,
 * mapped IPv4, every leniency refused), CIDR parsing, and the right-to-left walk, each case with the answer it
 * expects. Inputs are copied into exact-size heap blocks so ASan catches any read past an element.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "clientaddr.h"

static uint8_t *dup_exact(const char *s)
{
	size_t n = strlen(s);
	uint8_t *p = malloc(n ? n : 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

static const char *show(int fam, const uint8_t a[16], char *buf, size_t cap)
{
	return inet_ntop(fam == 4 ? AF_INET : AF_INET6, a, buf, (socklen_t)cap);
}

/* ---- one element --------------------------------------------------------------------------------------------- */

static const struct {
	const char *in, *want; /* want NULL: refused */
} elems[] = {
	{"192.0.2.1", "192.0.2.1"},
	{"  192.0.2.1\t", "192.0.2.1"},
	{"192.0.2.1:4711", "192.0.2.1"},
	{"192.0.2.1:0", "192.0.2.1"},
	{"192.0.2.1:65535", "192.0.2.1"},
	{"2001:db8::1", "2001:db8::1"},
	{"2001:DB8::1", "2001:db8::1"},
	{"[2001:db8::1]", "2001:db8::1"},
	{"[2001:db8::1]:443", "2001:db8::1"},
	{"::ffff:192.0.2.9", "192.0.2.9"},       /* mapped: IPv4 */
	{"[::ffff:192.0.2.9]:80", "192.0.2.9"},
	{"::1", "::1"},
	{"", NULL},
	{"   ", NULL},
	{"unknown", NULL},
	{"example.com", NULL},
	{"example.com:80", NULL},
	{"\"192.0.2.1\"", NULL},                 /* a quoted string is not an address */
	{"192.0.2.1:65536", NULL},
	{"192.0.2.1:", NULL},
	{"192.0.2.1:+80", NULL},
	{"192.0.2.1:123456", NULL},
	{"192.0.2", NULL},
	{"192.0.2.256", NULL},
	{"0192.0.2.1", NULL},                    /* leading zeros read as octal by some parsers: refused */
	{"192.0.2.1 192.0.2.2", NULL},
	{"192.0.2.1/32", NULL},
	{"fe80::1%eth0", NULL},                  /* zones name an interface here, nothing to record */
	{"[fe80::1%25eth0]", NULL},
	{"[192.0.2.1]", NULL},                   /* brackets hold IPv6 only */
	{"[2001:db8::1", NULL},
	{"[2001:db8::1]x", NULL},
	{"[2001:db8::1]:", NULL},
	{"2001:db8::1:80:", NULL},
	{"2001:db8:::1", NULL},
	{"for=192.0.2.1", NULL},                 /* RFC 7239 Forwarded syntax is not X-Forwarded-For */
	{"1.2.3.4\r", NULL},
};

static void test_elements(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(elems) / sizeof(elems[0]); i++) {
		uint8_t *p = dup_exact(elems[i].in), a[16];
		int fam = 0, rc = caddr_parse_addr(p, strlen(elems[i].in), &fam, a);
		char buf[64];

		if (elems[i].want == NULL) {
			if (rc != CADDR_E_SYNTAX)
				fail_msg("\"%s\" accepted", elems[i].in);
		} else {
			if (rc != 0)
				fail_msg("\"%s\" refused", elems[i].in);
			assert_string_equal(show(fam, a, buf, sizeof(buf)), elems[i].want);
		}
		free(p);
	}
}

/* ---- networks ------------------------------------------------------------------------------------------------ */

static const struct {
	const char *in;
	int rc;
	unsigned bits;
} nets[] = {
	{"10.0.0.0/8", 0, 8}, {"10.1.2.3", 0, 32}, {"0.0.0.0/0", 0, 0}, {" 192.168.0.0/16 ", 0, 16},
	{"2001:db8::/32", 0, 32}, {"::/0", 0, 0}, {"2001:db8::1", 0, 128}, {"10.0.0.0/32", 0, 32},
	{"10.0.0.1/8", CADDR_E_HOSTBITS, 0}, {"2001:db8::1/32", CADDR_E_HOSTBITS, 0},
	{"10.0.0.0/33", CADDR_E_SYNTAX, 0}, {"2001:db8::/129", CADDR_E_SYNTAX, 0}, {"10.0.0.0/", CADDR_E_SYNTAX, 0},
	{"10.0.0.0/08", CADDR_E_SYNTAX, 0}, {"10.0.0.0/-1", CADDR_E_SYNTAX, 0}, {"/8", CADDR_E_SYNTAX, 0},
	{"10.0.0.0/8/8", CADDR_E_SYNTAX, 0}, {"ten", CADDR_E_SYNTAX, 0}, {"", CADDR_E_SYNTAX, 0},
	{"::ffff:10.0.0.0/104", CADDR_E_SYNTAX, 0}, {"[2001:db8::]/32", CADDR_E_SYNTAX, 0},
};

static void test_networks(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++) {
		uint8_t *p = dup_exact(nets[i].in);
		caddr_net n;
		int rc = caddr_parse_net(p, strlen(nets[i].in), &n);

		if (rc != nets[i].rc)
			fail_msg("\"%s\": %d, want %d", nets[i].in, rc, nets[i].rc);
		if (rc == 0)
			assert_int_equal(n.bits, nets[i].bits);
		free(p);
	}
}

static caddr_list list_of(const char *const *cidrs)
{
	caddr_list l;

	memset(&l, 0, sizeof(l));
	for (; *cidrs; cidrs++) {
		caddr_net n;

		assert_int_equal(caddr_parse_net((const uint8_t *)*cidrs, strlen(*cidrs), &n), 0);
		assert_int_equal(caddr_list_add(&l, &n), 0);
	}
	return l;
}

static void test_membership_and_bounds(void **state)
{
	static const char *const cidrs[] = {"10.0.0.0/8", "192.168.1.128/25", "2001:db8::/33", NULL};
	caddr_list l = list_of(cidrs);
	uint8_t a[16];
	int fam;
	caddr_net n;

	(void)state;
	static const struct {
		const char *addr;
		bool in;
	} cases[] = {
		{"10.0.0.0", true}, {"10.255.255.255", true}, {"11.0.0.0", false}, {"9.255.255.255", false},
		{"192.168.1.128", true}, {"192.168.1.255", true}, {"192.168.1.127", false},
		{"2001:db8::1", true}, {"2001:db8:7fff:ffff::1", true}, {"2001:db8:8000::1", false},
		{"::ffff:10.1.1.1", true}, /* mapped: the IPv4 network covers it */
		{"::a01:101", false},      /* IPv4-compatible (deprecated) is IPv6: not covered */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(caddr_parse_addr((const uint8_t *)cases[i].addr, strlen(cases[i].addr), &fam, a), 0);
		if (caddr_trusted(&l, fam, a) != cases[i].in)
			fail_msg("%s: trusted=%d", cases[i].addr, !cases[i].in);
	}
	memset(&n, 0, sizeof(n));
	n.family = 4;
	for (size_t i = l.n; i < CADDR_MAX_NETS; i++)
		assert_int_equal(caddr_list_add(&l, &n), 0);
	assert_int_equal(caddr_list_add(&l, &n), CADDR_E_FULL);
}

/* ---- the walk ------------------------------------------------------------------------------------------------ */


static const struct {
	const char *name;
	const char *trusted[4];
	const char *peer;
	const char *xff[CADDR_MAX_HOPS]; /* right-most first; NULL ends */
	int rc;
	const char *want;
} walks[] = {
	{"nobody trusted: the peer, whatever the header says", {NULL}, "10.0.0.5", {"203.0.113.7"}, CADDR_PEER,
	 "10.0.0.5"},
	{"untrusted peer: a forged header changes nothing", {"10.0.0.0/8"}, "198.51.100.9", {"10.0.0.1", "1.1.1.1"},
	 CADDR_PEER, "198.51.100.9"},
	{"one trusted hop (ALB)", {"10.0.0.0/8"}, "10.0.0.5", {"203.0.113.7"}, CADDR_FORWARDED, "203.0.113.7"},
	{"client-forged entries left of the real one are never read", {"10.0.0.0/8"}, "10.0.0.5",
	 {"203.0.113.7", "10.9.9.9", "1.2.3.4"}, CADDR_FORWARDED, "203.0.113.7"},
	{"two trusted hops", {"10.0.0.0/8", "35.191.0.0/16"}, "35.191.3.4", {"10.0.0.9", "203.0.113.7", "6.6.6.6"},
	 CADDR_FORWARDED, "203.0.113.7"},
	{"GCLB appends client then its own address", {"35.191.0.0/16", "130.211.0.0/22", "34.120.1.2"},
	 "35.191.3.4", {"34.120.1.2", "203.0.113.7"}, CADDR_FORWARDED, "203.0.113.7"},
	{"trusted peer, no header: the peer (stopped)", {"10.0.0.0/8"}, "10.0.0.5", {NULL}, CADDR_STOPPED,
	 "10.0.0.5"},
	{"every entry trusted: the left-most seen", {"10.0.0.0/8"}, "10.0.0.5", {"10.0.0.6", "10.0.0.7"},
	 CADDR_STOPPED, "10.0.0.7"},
	{"malformed nearest entry: stop at the trusted hop", {"10.0.0.0/8"}, "10.0.0.5", {"unknown", "203.0.113.7"},
	 CADDR_STOPPED, "10.0.0.5"},
	{"malformed further left: stop at the last trusted", {"10.0.0.0/8"}, "10.0.0.5",
	 {"10.0.0.6", "garbage", "203.0.113.7"}, CADDR_STOPPED, "10.0.0.6"},
	{"malformed left of the client: never read", {"10.0.0.0/8"}, "10.0.0.5", {"203.0.113.7", "garbage"},
	 CADDR_FORWARDED, "203.0.113.7"},
	{"empty elements are skipped", {"10.0.0.0/8"}, "10.0.0.5", {"", "  ", "203.0.113.7"}, CADDR_FORWARDED,
	 "203.0.113.7"},
	{"ports are dropped", {"10.0.0.0/8"}, "10.0.0.5", {"10.0.0.6:8080", "203.0.113.7:51234"}, CADDR_FORWARDED,
	 "203.0.113.7"},
	{"IPv6 chain with brackets and ports", {"fd00::/8"}, "fd00::5", {"[fd00::6]:443", "[2001:db8::7]:5000"},
	 CADDR_FORWARDED, "2001:db8::7"},
	{"IPv6 client behind an IPv4 proxy", {"10.0.0.0/8"}, "10.0.0.5", {"2001:db8::7"}, CADDR_FORWARDED,
	 "2001:db8::7"},
	{"mapped peer is IPv4", {"10.0.0.0/8"}, "::ffff:10.0.0.5", {"203.0.113.7"}, CADDR_FORWARDED, "203.0.113.7"},
	{"mapped untrusted peer answered as IPv4", {"10.0.0.0/8"}, "::ffff:198.51.100.9", {NULL}, CADDR_PEER,
	 "198.51.100.9"},
	{"an entry with a zone stops the walk", {"fd00::/8"}, "fd00::5", {"fe80::1%eth0", "2001:db8::7"},
	 CADDR_STOPPED, "fd00::5"},
	{"every slot trusted: the left-most of the eight", {"10.0.0.0/8"}, "10.0.0.1",
	 {"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.9"},
	 CADDR_STOPPED, "10.0.0.9"},
	{"trust everything: the left-most", {"0.0.0.0/0", "::/0"}, "10.0.0.1", {"1.1.1.1", "2.2.2.2"},
	 CADDR_STOPPED, "2.2.2.2"},
	/* HAProxy passes 64 bytes of an entry: one that long may have been cut ("1.2.3.4   …x" would read 1.2.3.4) */
	{"a 64-byte entry is malformed", {"10.0.0.0/8"}, "10.0.0.5",
	 {"203.0.113.7                                                     "}, CADDR_STOPPED, "10.0.0.5"},
	{"63 bytes is still read", {"10.0.0.0/8"}, "10.0.0.5",
	 {"203.0.113.7                                                    "}, CADDR_FORWARDED, "203.0.113.7"},
	{"the longest address element", {"10.0.0.0/8"}, "10.0.0.5",
	 {"[0000:0000:0000:0000:0000:ffff:255.255.255.254]:65535"}, CADDR_FORWARDED, "255.255.255.254"},
};

static void test_walks(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(walks) / sizeof(walks[0]); i++) {
		caddr_list l = list_of(walks[i].trusted);
		caddr_slice xff[CADDR_MAX_HOPS];
		uint8_t *blocks[CADDR_MAX_HOPS] = {0}, peer[16] = {0}, out[16];
		int pf, fam = 0, rc;
		char buf[64];

		memset(xff, 0, sizeof(xff));
		for (size_t j = 0; j < CADDR_MAX_HOPS && walks[i].xff[j] != NULL; j++) {
			blocks[j] = dup_exact(walks[i].xff[j]);
			xff[j].p = blocks[j];
			xff[j].len = strlen(walks[i].xff[j]);
		}
		assert_int_equal(caddr_parse_addr((const uint8_t *)walks[i].peer, strlen(walks[i].peer), &pf, peer), 0);
		if (strchr(walks[i].peer, ':') != NULL) { /* give the peer as HAProxy would: an IPV6 value, unmapped */
			pf = 6;
			inet_pton(AF_INET6, walks[i].peer, peer);
		}
		rc = caddr_client(&l, pf, peer, xff, CADDR_MAX_HOPS, &fam, out);
		if (rc != walks[i].rc || strcmp(show(fam, out, buf, sizeof(buf)), walks[i].want) != 0)
			fail_msg("%s: rc %d addr %s, want %d %s", walks[i].name, rc, buf, walks[i].rc, walks[i].want);
		for (size_t j = 0; j < CADDR_MAX_HOPS; j++)
			free(blocks[j]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elements),
		cmocka_unit_test(test_networks),
		cmocka_unit_test(test_membership_and_bounds),
		cmocka_unit_test(test_walks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
