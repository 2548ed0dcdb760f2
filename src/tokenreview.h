/*
 * tokenreview.h — --token-passthrough: asks the Kubernetes API server whether a bearer token that is not one of
 * our OIDC tokens authenticates (POST /apis/authentication.k8s.io/v1/tokenreviews), off the SPOP workers.
 *
 * Owns: one reviewer thread with its curl multi handle, the queue of reviews (one per distinct token, each with
 * the requests waiting for it), a small verdict cache and the rate limiter. Tokens are copied into a review
 * and freed with it; the cache keeps only SHA-256 of a token, never the token. Nothing here logs a token.
 *
 * Flow: tokenreview_check() (any worker thread, never blocks on I/O) answers at once from the cache (verdicts
 * "authenticated" and "not authenticated" are kept cache_ttl_s, never longer; failures to ask are never
 * cached), or joins the review already under way for the same token, or — within the rate limit and the
 * waiting bound — queues a new review and returns TOKENREVIEW_PENDING; the reviewer thread then calls
 * done(ud, result, user) exactly once. At most max_inflight HTTP transfers run at once; a review that waits
 * for a slot keeps its deadline (queued at t, answered by t + timeout_ms whatever happens).
 *
 * The request: spec.token and, when configured, spec.audiences; the service-account token (satoken.h, read at
 * each review so rotation is followed) as bearer; the API server's certificate checked against ca_file.
 * The verdict (tokenreview_parse): kind TokenReview, status.authenticated true, and — with audiences — at least
 * one configured audience in status.audiences (what the API server documents for audience-aware clients).
 *
 * The same machinery (thread, curl setup, service-account bearer, CA, single flight, cache, rate, bounds) also
 * sends SubjectAccessReviews for --allow-client-impersonation: a reviewer created with cfg.sar posts to
 * /apis/authorization.k8s.io/v1/subjectaccessreviews the body the caller built (impersonate.h), keyed by the
 * SHA-256 of that body; TOKENREVIEW_OK means status.allowed (and not status.denied), TOKENREVIEW_E_DENIED not
 * allowed, with status.reason as the detail string. Both verdicts are cached for cache_ttl_s; failures never.
 */
#ifndef KOS_TOKENREVIEW_H
#define KOS_TOKENREVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kx.h"
#include "satoken.h"

#define TOKENREVIEW_PENDING 1
#define TOKENREVIEW_MAX_AUDIENCES 32
#define TOKENREVIEW_USER_MAX 256    /* username kept for logs; longer ones are not kept (user "") */
#define TOKENREVIEW_MAX_RESPONSE 65536
#define TOKENREVIEW_MAX_TTL_S 10    /* the cache never keeps a verdict longer */

enum tokenreview_result {
	TOKENREVIEW_OK = 0,             /* authenticated (and an audience matched) */
	TOKENREVIEW_E_DENIED = -1,      /* status.authenticated false */
	TOKENREVIEW_E_AUDIENCE = -2,    /* authenticated, but none of the configured audiences came back */
	TOKENREVIEW_E_RATE = -3,        /* over the review rate limit (no review made) */
	TOKENREVIEW_E_BUSY = -4,        /* too many requests waiting already */
	TOKENREVIEW_E_UNAVAILABLE = -5, /* transport error, timeout, HTTP status other than 200/201, no SA token */
	TOKENREVIEW_E_RESPONSE = -6,    /* the answer is not a TokenReview */
	TOKENREVIEW_E_SHUTDOWN = -7,
	TOKENREVIEW_E_NOMEM = -8,
};
const char *tokenreview_strerror(int result);

typedef struct tokenreview_config {
	const char *url;            /* API server base URL (https); the path is appended */
	const char *ca_file;        /* PEM that verifies it; NULL = system roots */
	const char *const *audiences; /* spec.audiences; naudiences 0 = none sent, none checked */
	size_t naudiences;
	satoken *sa;                /* required; borrowed, must outlive the reviewer */
	unsigned timeout_ms;        /* queue + transfer, per review; 0 = 700 */
	unsigned cache_ttl_s;       /* 0 = no cache; at most TOKENREVIEW_MAX_TTL_S */
	unsigned rate;              /* new reviews per second (burst the same); 0 = 20 */
	unsigned max_inflight;      /* HTTP transfers at once; 0 = 16 */
	unsigned max_waiting;       /* requests waiting (all reviews together); 0 = 1024 */
	bool sar;                   /* SubjectAccessReviews (tokenreview_sar_check) instead of TokenReviews */
} tokenreview_config;

typedef struct tokenreview tokenreview;

/* done(ud, result, user): on the reviewer thread; user is NUL-terminated ("" when unknown) and valid only
 * during the call. */
typedef void (*tokenreview_done_fn)(void *ud, int result, const char *user);

/* Copies what it needs from cfg and starts the reviewer thread. 0, or -1 with one line in err. */
int tokenreview_create(const tokenreview_config *cfg, tokenreview **out, char *err, size_t errlen);
/* Any thread. The verdict now (TOKENREVIEW_OK with user copied into user[0..usercap), or a negative result), or
 * TOKENREVIEW_PENDING: done(ud, …) will be called once on the reviewer thread (never from inside this call). */
int tokenreview_check(tokenreview *rv, const uint8_t *tok, size_t len, char *user, size_t usercap,
		      tokenreview_done_fn done, void *ud);
/* SubjectAccessReview reviewer (cfg.sar) only: body[0..len) is the whole request JSON. As tokenreview_check(),
 * with the verdict's status.reason ("" when none or not clean text) in reason[0..cap) and as done()'s string;
 * TOKENREVIEW_OK = allowed, TOKENREVIEW_E_DENIED = not allowed. Any thread. */
int tokenreview_sar_check(tokenreview *rv, const char *body, size_t len, char *reason, size_t cap,
			  tokenreview_done_fn done, void *ud);
/* Answers everything waiting with TOKENREVIEW_E_SHUTDOWN and joins the thread; later checks get
 * TOKENREVIEW_E_SHUTDOWN at once. Idempotent; main thread. NULL is a no-op. */
void tokenreview_stop(tokenreview *rv);
/* tokenreview_stop(), then frees rv. NULL is a no-op. */
void tokenreview_destroy(tokenreview *rv);

typedef struct tokenreview_stats {
	uint64_t reviews;     /* HTTP reviews finished (any outcome) */
	uint64_t authenticated, denied, failed; /* their outcomes (denied includes audience mismatch) */
	uint64_t cache_hits, joined, rate_limited, busy;
	unsigned waiting;     /* requests waiting right now */
} tokenreview_stats;
void tokenreview_stats_get(tokenreview *rv, tokenreview_stats *out);
/* Appends the kos_tokenreview_* (or kos_subjectaccessreview_*) families (Prometheus text) to out: 0 or -1.
 * A metrics source (metrics_register); the loop thread, never blocks. */
int tokenreview_metrics(tokenreview *rv, kx_buf *out);

/* ---- the response parser (exposed for tests and the fuzzer) ----------------------------------------------- */

typedef struct tokenreview_parsed {
	bool authenticated;
	bool audience_ok;         /* true when auds is empty, else one of auds is in status.audiences */
	char user[TOKENREVIEW_USER_MAX]; /* status.user.username when it fits and has no control bytes, else "" */
} tokenreview_parsed;

/* Parses a TokenReview response body p[0..len) (never read past len, no NUL needed). Returns TOKENREVIEW_OK
 * with *out filled when it is a TokenReview object (kind "TokenReview", status an object whose authenticated,
 * when present, is a boolean; absent means false), TOKENREVIEW_E_RESPONSE otherwise, TOKENREVIEW_E_NOMEM.
 * *out is written only on success. Any thread. */
int tokenreview_parse(const uint8_t *p, size_t len, const char *const *auds, size_t nauds, tokenreview_parsed *out);

typedef struct tokenreview_sar_parsed {
	bool allowed;            /* status.allowed true and status.denied not true */
	char reason[TOKENREVIEW_USER_MAX]; /* status.reason when it fits and has no control bytes, else "" */
} tokenreview_sar_parsed;

/* Parses a SubjectAccessReview response p[0..len): TOKENREVIEW_OK with *out filled when it is one (kind
 * "SubjectAccessReview", status an object with a boolean allowed), TOKENREVIEW_E_RESPONSE otherwise. Any thread. */
int tokenreview_sar_parse(const uint8_t *p, size_t len, tokenreview_sar_parsed *out);

/* The unverified "iss" of a token p[0..len), to tell whether it is one of ours before passing it through:
 * 1 with iss copied (NUL-terminated) when the token has three dot-separated parts, the second strict base64url
 * of a JSON object whose iss is a string that fits in cap; 0 when it is not such a JWT or has no string iss
 * (or an iss that does not fit: no issuer URL of ours is that long); -1 out of memory. Nothing is verified.
 * Any thread. */
int tokenreview_token_issuer(const uint8_t *p, size_t len, char *iss, size_t cap);

#endif
