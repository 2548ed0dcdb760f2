/*
 * kosmsg.h — the kos-auth message of a NOTIFY, decoded: the contract's arguments (conf/CONTRACT.md) as
 * kosmsg_args, checked for the types the contract allows.
 *
 * Owns: nothing. A kosmsg_args borrows: auth, xk, imh and the xff slices point into the NOTIFY frame (spop_msg)
 * they were read from and die with it; whoever keeps a request beyond the NOTIFY copies those bytes (handler.c,
 * hold.c). No allocation, no locks; any thread (the SPOP workers call it).
 */
#ifndef KOS_KOSMSG_H
#define KOS_KOSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clientaddr.h"
#include "satoken.h"
#include "spoa.h"

/* Impersonate-Extra slots HAProxy declares in xk (KOS_EXTRA_1…); handler.h's HANDLER_EXTRA_SLOTS is the same. */
#define KOSMSG_XK_SLOTS 8

typedef struct kosmsg_args {
	bool have_msg;       /* a kos-auth message was present */
	bool bad_msg;        /* it (or the NOTIFY) was malformed, or an argument had a type outside the contract */
	bool have_auth;      /* auth was a STRING (not NULL / absent) */
	const uint8_t *auth;
	size_t auth_len;
	int src_family;      /* 0 none, 4, 6 */
	uint8_t src[16];
	bool imp;
	bool have_sv;        /* sv: the version of the service-account token HAProxy holds (proc.kos.sa) */
	char sv[SATOKEN_VER_LEN];
	const uint8_t *xk;   /* xk: HAProxy's extra slots "<key1>|<key2>|…" (KOS_EXTRA_1…, percent-encoded as in
			      * the header name, empty = no slot); NULL when absent */
	size_t xk_len;
	caddr_slice xff[CADDR_MAX_HOPS]; /* xff1…xff8: X-Forwarded-For entries, right-most first (p NULL: absent).
					  * handler_submit()/handler_process() replace src by the client address
					  * (clientaddr.h) when cfg.trusted is set, and never keep these slices. */
	bool have_xff;       /* the message had xff arguments (NULL ones included): conf/spoe-kos.conf sends them
			      * only with KOS_TRUSTED_PROXIES set, and the agent's --trusted-proxies needs them */
	bool have_imh;       /* the message had the imh argument (conf/ of contract v2.1 or later) */
	const uint8_t *imh;  /* imh: req.hdrs_bin when impersonation headers came and the block fits
			      * IMP_MAX_HEADERS_BYTES; NULL otherwise */
	size_t imh_len;
} kosmsg_args;

/* The bytes an Impersonate-Extra key keeps as they are when percent-encoded for its header name (lower-case
 * letters, digits, "-_.~"); every other byte becomes %XX. xk is checked against it here, and the ACK writer
 * (handler.c pct_key) encodes with it, so that the two agree. */
static inline bool kosmsg_key_byte(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Reads the contract's arguments from a kos-auth message into in (have_msg is set by the caller; in starts
 * zeroed). Returns 0, or -1 when the message is malformed or an argument has a type outside the contract
 * (in->bad_msg set). Unknown arguments are ignored (contract). */
int kosmsg_read(const spop_msg *m, kosmsg_args *in);

/* Zeroes *in and reads the first kos-auth message of the NOTIFY req into it (have_msg says whether there was
 * one; bad_msg whether it or the NOTIFY was malformed). Never fails otherwise. */
void kosmsg_read_request(spoa_request *req, kosmsg_args *in);

#endif
