/*
 * identity.h — a verified caller as the Kubernetes API server would see it: user, groups, uid, extra.
 *
 * An identity is immutable once built and reference-counted, so the token cache can hand the same object to any
 * number of worker threads without copying it or locking it: sharing one is an atomic increment (the cache's own
 * shard lock is the cache's business, see cache.h). Everything lives in
 * one allocation made by identity_build(); identity_release() frees it when the last reference goes.
 */
#ifndef KOS_IDENTITY_H
#define KOS_IDENTITY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct identity_extra {
	const char *key;   /* lower-case, as in Impersonate-Extra-<key> before percent-encoding */
	const char *value;
} identity_extra;

typedef struct identity {
	atomic_uint refs;
	int64_t exp;             /* the token's exp (unix seconds) */
	const char *user;        /* prefix applied; never NULL */
	const char *uid;         /* NULL when none */
	size_t ngroups;
	const char *const *groups; /* prefix applied */
	size_t nextra;
	const identity_extra *extra;
	uint64_t key_fp;         /* fingerprint of the JWKS key that verified it (cache invalidation) */
} identity;

/* Copies everything into one block; returns NULL on allocation failure. refs starts at 1. */
identity *identity_build(const char *user, const char *uid, const char *const *groups, size_t ngroups,
			 const identity_extra *extra, size_t nextra, int64_t exp, uint64_t key_fp);
static inline const identity *identity_ref(const identity *id)
{
	atomic_fetch_add_explicit(&((identity *)id)->refs, 1, memory_order_relaxed);
	return id;
}
/* Drops one reference; frees on the last. NULL is fine. Any thread. */
void identity_release(const identity *id);

/*
 * Whether a value can reach the API server unchanged through one HTTP header line. HAProxy writes a value as it
 * is given; Go's net/http, which kube-apiserver runs, drops leading and trailing SP/HTAB when it reads a header
 * line and refuses control bytes. So " system:masters" would arrive as "system:masters": a value that the header
 * cannot carry unchanged is refused, never trimmed. Returns NULL when s is fine, else why not ("empty",
 * "leading or trailing space or tab", "control character"); static strings.
 */
const char *identity_value_problem(const char *s);
/*
 * The one check every identity passes before the reserved-identities guard and before it is forwarded, on both
 * claim paths (flags and AuthenticationConfiguration): the user, the uid (NULL = none), every group and every
 * extra value by identity_value_problem(), every extra key non-empty (keys travel percent-encoded). 0, or -1 with
 * a message naming the field in detail (never the token).
 */
int identity_check(const char *user, const char *uid, const char *const *groups, size_t ngroups,
		   const identity_extra *extra, size_t nextra, char *detail, size_t detail_len);

#endif
