/*
 * negcache.h — a small, short-lived memory of refused tokens, so that the same bad token sent again and again
 * costs a hash and a lookup instead of a signature check each time (issue 14, finding 6).
 *
 * Keyed on the SHA-256 of the whole token (cache_key()), so only the exact same bytes are short-circuited: a
 * good token can never be refused because some other, bad token was seen (a collision would need SHA-256
 * broken). Each entry also records the serial of the key set that judged it (jwks_keyset_serial()) and counts
 * only while that set is current: any new key set forgets everything. An entry lives NEGCACHE_TTL_S seconds and
 * never counts at a time earlier than the one it was stored at (a clock stepped back, or a test's). Bounded:
 * NEGCACHE_ENTRIES slots in one allocation made at creation, 4-way sets, the oldest way replaced; no allocation
 * after negcache_create().
 *
 * Only verdicts that do not change with time or a retry belong here (the caller decides: a bad signature, wrong
 * audience, expired, claim rules, reserved identity); never "unknown kid", "not yet valid", "not ready" or an
 * internal error.
 *
 * Threads: any thread may call negcache_get() and negcache_put(); a lock per group of sets, held for one set's
 * compare or copy. The callers use it only after a miss of the verified-token cache, so a hit of that cache
 * never touches it.
 */
#ifndef KOS_NEGCACHE_H
#define KOS_NEGCACHE_H

#include <stddef.h>
#include <stdint.h>

#define NEGCACHE_ENTRIES 1024
#define NEGCACHE_TTL_S 5
#define NEGCACHE_DETAIL_MAX 96 /* bytes of the refusal's detail kept, NUL included */

typedef struct negcache negcache;

/* 0 or -1 (no memory). */
int negcache_create(negcache **out);
void negcache_destroy(negcache *n); /* NULL is fine */
/* When key was refused with key set `serial` at a time in [stored, stored + NEGCACHE_TTL_S) containing now:
 * returns its result code and sets *detail to a thread-local copy of its detail (valid until the next call on
 * this thread). Otherwise 0. */
int negcache_get(negcache *n, const uint8_t key[32], uint64_t serial, int64_t now, const char **detail);
/* Remembers that key was refused with result rc (negative) and detail (may be NULL; cut to fit). */
void negcache_put(negcache *n, const uint8_t key[32], uint64_t serial, int64_t now, int rc, const char *detail);
/* Hits so far (for /metrics). */
uint64_t negcache_hits(negcache *n);

#endif
