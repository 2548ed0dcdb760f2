/*
 * clientaddr.h — the client's address behind trusted proxies: what the remote-client-ip extra records.
 *
 * HAProxy hands the agent its TCP peer (`src`: the client, or, with the PROXY protocol from a listed load
 * balancer, the address that load balancer declared) and the right-most entries of X-Forwarded-For, nearest
 * first. The client is the right-most address that is not a trusted proxy: start at the peer; while the
 * current address is in the trusted list (--trusted-proxies), step to the next X-Forwarded-For entry to the
 * left — each one was appended by the trusted hop to its right, so it is as good as that hop. The first
 * untrusted address is the answer; nothing left of it is read, so a client that writes X-Forwarded-For itself
 * changes nothing unless every hop between it and us is trusted (and then the entry it wrote is the one the
 * first trusted proxy appended about it, not its own).
 *
 * When the walk cannot go on while every address seen is trusted — the header ends, the next entry is not an
 * address (a hostname, "unknown", a quoted string, an address with a zone...), or HAProxy passed no more
 * entries, or an entry is CADDR_ENTRY_MAX bytes or longer — the answer is the left-most address seen, a trusted
 * proxy's own: never a guess, never an address
 * nobody we trust vouched for (what nginx's real_ip_recursive and Envoy do with an invalid entry). Such an
 * answer is flagged (CADDR_STOPPED) so the caller can log it. Empty list elements are skipped (RFC 9110 §5.6.1).
 *
 * An entry is an IPv4 dotted quad or an IPv6 address (RFC 4291 text, no zone), optionally with a port:
 * "192.0.2.1", "192.0.2.1:4711", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:4711". IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) are IPv4 for matching and in the answer, so one IPv4 CIDR covers both spellings.
 *
 * Owns nothing: caddr_list is a plain value the caller owns (main.c builds it once from the configuration and
 * lends it to the handler, which reads it from any thread). No allocation, no locks.
 */
#ifndef KOS_CLIENTADDR_H
#define KOS_CLIENTADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CADDR_MAX_NETS 32 /* networks in --trusted-proxies (CONFIG_MAX_KV) */
#define CADDR_MAX_HOPS 8  /* X-Forwarded-For entries HAProxy passes (xff1…xff8 in conf/spoe-kos.conf) */
/* Bytes of each entry HAProxy passes (bytes(0,64)). The longest element that is an address is 53 bytes
 * ("[" + 45 bytes of IPv6 text + "]:65535"), so an entry this long may have been cut and is malformed. */
#define CADDR_ENTRY_MAX 64

typedef struct caddr_net {
	int family;       /* 4 or 6 */
	uint8_t addr[16]; /* network address, host bits zero; IPv4 in the first 4 bytes */
	unsigned bits;    /* prefix length */
} caddr_net;

typedef struct caddr_list {
	caddr_net nets[CADDR_MAX_NETS];
	size_t n; /* 0 = trust nobody: the answer is always the peer */
} caddr_list;

typedef struct caddr_slice {
	const uint8_t *p; /* NULL = absent (the header has no more entries) */
	size_t len;
} caddr_slice;

enum caddr_result {
	CADDR_PEER = 0,     /* the peer itself is the client (not trusted) */
	CADDR_FORWARDED = 1, /* an X-Forwarded-For entry */
	CADDR_STOPPED = 2,  /* every address seen is trusted, the walk could not go on: the left-most seen */
	CADDR_E_SYNTAX = -1,
	CADDR_E_HOSTBITS = -2,
	CADDR_E_FULL = -3,
};

/* One CIDR ("10.0.0.0/8", "2001:db8::/32") or one address (a /32 or /128) into *out. The network must have no
 * host bits set ("10.0.0.1/8" is refused: most likely a typo). 0, or CADDR_E_SYNTAX / CADDR_E_HOSTBITS;
 * *out is written only on success. */
int caddr_parse_net(const uint8_t *p, size_t len, caddr_net *out);
/* Appends a parsed network; CADDR_E_FULL past CADDR_MAX_NETS. */
int caddr_list_add(caddr_list *l, const caddr_net *net);
/* One X-Forwarded-For element (surrounding SP/HTAB ignored) into family (4/6) and addr (16 bytes, IPv4 in the
 * first 4). 0 or CADDR_E_SYNTAX; outputs written only on success. */
int caddr_parse_addr(const uint8_t *p, size_t len, int *family, uint8_t addr[16]);
/* Whether the address is in one of l's networks. */
bool caddr_trusted(const caddr_list *l, int family, const uint8_t addr[16]);
/* The walk above. peer_family/peer: HAProxy's src (4 or 6). xff[0] is the right-most X-Forwarded-For entry,
 * xff[1] the one left of it, ...; an entry with p == NULL ends the list. Writes *family/addr (the answer) and
 * returns CADDR_PEER, CADDR_FORWARDED or CADDR_STOPPED. */
int caddr_client(const caddr_list *l, int peer_family, const uint8_t peer[16], const caddr_slice *xff, size_t n,
		 int *family, uint8_t addr[16]);

#endif
