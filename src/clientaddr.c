/* clientaddr.c — the client's address behind trusted proxies; see clientaddr.h. */
#include "clientaddr.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Text of one address (no brackets, no port) into family/addr. inet_pton is strict: dotted quads only, no
 * leading zeros, no zone ("%eth0"), no trailing bytes. */
static int pton(const uint8_t *p, size_t len, int *family, uint8_t addr[16])
{
	char buf[48];
	uint8_t a[16];

	if (len == 0 || len >= sizeof(buf))
		return CADDR_E_SYNTAX;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL)
		return CADDR_E_SYNTAX;
	memset(a, 0, sizeof(a));
	if (memchr(buf, ':', len) == NULL) {
		if (inet_pton(AF_INET, buf, a) != 1)
			return CADDR_E_SYNTAX;
		*family = 4;
	} else {
		if (inet_pton(AF_INET6, buf, a) != 1)
			return CADDR_E_SYNTAX;
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) { /* ::ffff:a.b.c.d is IPv4 */
			memmove(a, a + 12, 4);
			memset(a + 4, 0, 12);
			*family = 4;
		} else {
			*family = 6;
		}
	}
	memcpy(addr, a, 16);
	return 0;
}

/* ":<port>" at p (len bytes, the colon included): 1 to 5 digits, at most 65535. */
static bool port_ok(const uint8_t *p, size_t len)
{
	unsigned v = 0;

	if (len < 2 || len > 6 || p[0] != ':')
		return false;
	for (size_t i = 1; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	return v <= 65535;
}

int caddr_parse_addr(const uint8_t *p, size_t len, int *family, uint8_t addr[16])
{
	size_t colons = 0, last = 0;

	while (len > 0 && is_ows(p[0])) {
		p++;
		len--;
	}
	while (len > 0 && is_ows(p[len - 1]))
		len--;
	if (len == 0)
		return CADDR_E_SYNTAX;
	if (p[0] == '[') {
		const uint8_t *close = memchr(p, ']', len);
		size_t in;
		int fam;
		uint8_t a[16];

		if (close == NULL)
			return CADDR_E_SYNTAX;
		in = (size_t)(close - p) - 1;
		if (len - in - 2 != 0 && !port_ok(close + 1, len - in - 2))
			return CADDR_E_SYNTAX;
		/* brackets hold IPv6 text only (RFC 3986 IP-literal); a mapped address is still IPv4 afterwards */
		if (memchr(p + 1, ':', in) == NULL || pton(p + 1, in, &fam, a) != 0)
			return CADDR_E_SYNTAX;
		*family = fam;
		memcpy(addr, a, 16);
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		if (p[i] == ':') {
			colons++;
			last = i;
		}
	}
	if (colons == 1) { /* IPv4 with a port */
		if (!port_ok(p + last, len - last))
			return CADDR_E_SYNTAX;
		len = last;
		if (memchr(p, '.', len) == NULL)
			return CADDR_E_SYNTAX;
	}
	return pton(p, len, family, addr);
}

int caddr_parse_net(const uint8_t *p, size_t len, caddr_net *out)
{
	const uint8_t *slash = memchr(p, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - p) : len;
	unsigned bits = 0, max;
	caddr_net n;

	while (len > 0 && is_ows(p[0])) {
		p++;
		len--;
	}
	while (len > 0 && is_ows(p[len - 1]))
		len--;
	slash = memchr(p, '/', len);
	alen = slash != NULL ? (size_t)(slash - p) : len;
	memset(&n, 0, sizeof(n));
	if (alen == 0 || pton(p, alen, &n.family, n.addr) != 0)
		return CADDR_E_SYNTAX;
	/* a mapped address written as IPv6 stays what it says for the prefix arithmetic below */
	if (n.family == 4 && memchr(p, ':', alen) != NULL)
		return CADDR_E_SYNTAX;
	max = n.family == 4 ? 32 : 128;
	if (slash != NULL) {
		size_t nd = len - alen - 1;

		if (nd == 0 || nd > 3)
			return CADDR_E_SYNTAX;
		for (size_t i = 0; i < nd; i++) {
			uint8_t c = slash[1 + i];

			if (c < '0' || c > '9' || (i == 0 && c == '0' && nd > 1))
				return CADDR_E_SYNTAX;
			bits = bits * 10 + (unsigned)(c - '0');
		}
		if (bits > max)
			return CADDR_E_SYNTAX;
	} else {
		bits = max;
	}
	for (unsigned b = bits; b < max; b++)
		if (n.addr[b / 8] & (0x80u >> (b % 8)))
			return CADDR_E_HOSTBITS;
	n.bits = bits;
	*out = n;
	return 0;
}

int caddr_list_add(caddr_list *l, const caddr_net *net)
{
	if (l->n >= CADDR_MAX_NETS)
		return CADDR_E_FULL;
	l->nets[l->n++] = *net;
	return 0;
}

static bool in_net(const caddr_net *n, int family, const uint8_t addr[16])
{
	unsigned full = n->bits / 8, rest = n->bits % 8;

	if (n->family != family)
		return false;
	if (memcmp(n->addr, addr, full) != 0)
		return false;
	return rest == 0 || ((n->addr[full] ^ addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

bool caddr_trusted(const caddr_list *l, int family, const uint8_t addr[16])
{
	for (size_t i = 0; i < l->n; i++)
		if (in_net(&l->nets[i], family, addr))
			return true;
	return false;
}

int caddr_client(const caddr_list *l, int peer_family, const uint8_t peer[16], const caddr_slice *xff, size_t n,
		 int *family, uint8_t addr[16])
{
	uint8_t cur[16];
	int fam = peer_family;

	memcpy(cur, peer, 16);
	if (fam == 6 && memcmp(cur, v4mapped, sizeof(v4mapped)) == 0) {
		memmove(cur, cur + 12, 4);
		memset(cur + 4, 0, 12);
		fam = 4;
	}
	if (!caddr_trusted(l, fam, cur)) {
		*family = fam;
		memcpy(addr, cur, 16);
		return CADDR_PEER;
	}
	for (size_t i = 0; i < n && xff[i].p != NULL; i++) {
		const uint8_t *p = xff[i].p;
		size_t len = xff[i].len, k = 0;
		uint8_t a[16];
		int f;

		while (k < len && is_ows(p[k]))
			k++;
		if (k == len)
			continue; /* an empty list element counts for nothing */
		if (len >= CADDR_ENTRY_MAX || caddr_parse_addr(p, len, &f, a) != 0)
			break; /* not an address: stop at the last one a trusted hop vouched for */
		fam = f;
		memcpy(cur, a, 16);
		if (!caddr_trusted(l, fam, cur)) {
			*family = fam;
			memcpy(addr, cur, 16);
			return CADDR_FORWARDED;
		}
	}
	*family = fam;
	memcpy(addr, cur, 16);
	return CADDR_STOPPED;
}
