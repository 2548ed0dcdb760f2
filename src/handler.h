/*
 * handler.h — SPOP NOTIFY → verifier → ACK variables, exactly as conf/CONTRACT.md says.
 *
 * Owns: its small context, its hold (hold.h, when holding is on) and its ACK writer (kosack.h); the verifier
 * (behind handler_verify_ops), the service-account token and the metrics are the caller's and must outlive the
 * handler. handler_on_notify() is the spoa_handler_fn; it runs on SPOP worker threads, any number at once,
 * never blocks, and allocates only to hold a request (below): the identity comes from the verifier by
 * reference, strings are copied into the ACK by libspoa. The decision itself is handler_process(), which writes
 * through a handler_sink so that tests can see every variable it sets.
 *
 * Where the parts live: kosmsg.h decodes the kos-auth message into handler_input (= kosmsg_args); hold.h keeps
 * the held requests and runs the holding thread (the handler owns that hold and gives it its verdicts through
 * hold_ops); kosack.h writes an identity's ACK variables; this file decides (judge, passthrough, client
 * impersonation), writes the verdict (reason, status last), logs and counts.
 *
 * Held requests: a token whose kid is not in the key set usually means the issuer has just rotated its keys,
 * and the JWKS download that kid triggered lands a few milliseconds later. Like the API server's authenticator
 * (which waits for that download), the handler then holds the request instead of answering 401: it copies the
 * token (at most max_token_bytes), the client address and the imp flag, returns SPOA_DEFERRED, and judges the
 * token again — the whole verification, never a shortcut to "allow" — each time the verifier reports that a
 * key-set attempt ended. The request is answered when the verdict is no longer "unknown kid", when no download
 * can come before its deadline (unknown_kid_wait_ms: 401 "unknown key id"), or at handler_stop() (status 4).
 * At most max_held requests wait at once; beyond that the answer is 401 "unknown key id" at once. The waiting
 * happens on one holding thread (hold.c, started only when holding is enabled); worker threads never block.
 *
 * Distributed groups: a token whose groups claim comes from a claims source (VERIFY_E_PENDING: the fetch is
 * under way, distclaims.h) is held the same way, on the same list and within the same unknown_kid_wait_ms,
 * and judged again — the whole verification — whenever a fetch ends (cfg.claims' listener). Still pending at
 * the deadline, or when holding is off or full: 401 "invalid claims" with the detail saying the claims source
 * did not answer in time. Never forwarded without its groups.
 *
 * Token passthrough (cfg.reviewer set, --token-passthrough): a token the verifier refuses is sent to the API
 * server's TokenReview (tokenreview.h) when it is not an OIDC token of ours — not a JWT at all, a JWT without
 * a string iss, or a JWT whose unverified iss vops.foreign() says is none of our issuers — and the refusal is
 * not "token too large" or an internal error. A JWT naming one of our issuers is judged by us alone (expired,
 * bad signature, unknown kid held for the JWKS refresh...: the usual verdicts), so a token of ours that failed
 * a check never reaches the API server. The request is answered from the review's cache at once, or held like
 * an unknown kid (HANDLER_HELD, token and input copied) until the reviewer thread completes it. Verdicts:
 * authenticated → 403 if impersonation headers came with it (the safe default: HAProxy would have to forward
 * them and the API server would honour them under the client's own rights), else status 5 (HAProxy forwards
 * the client's own Authorization, no Impersonate-*; user is set for the logs only); not authenticated,
 * audience mismatch, over the review rate → 401; API server unreachable, timeout, bad answer, queue full → 503
 * (status 4). Never forwarded without an authenticated review. handler_process() (synchronous) never passes
 * through: it gives the ordinary refusal.
 *
 * --disable-impersonation (cfg.disable_impersonation): a token the verifier accepts is answered with status 5
 * like an authenticated passthrough token (impersonation headers with it: 403), so HAProxy forwards the client's
 * own Authorization; the group limit, extras and the service-account token play no part. Refusals are unchanged.
 *
 * The client address (cfg.trusted, --trusted-proxies): HAProxy's src and the right-most X-Forwarded-For entries
 * (xff1…) become the address clientaddr.h's walk finds, before anything else looks at the request, so cip, the
 * logs and a held request all see that one address. conf/spoe-kos.conf sends xff1…xff8 only when HAProxy's
 * environment has KOS_TRUSTED_PROXIES (they cost HAProxy eight header scans a request): with cfg.trusted set, a
 * message without them is a 503 (HR_NO_XFF, the log line says what to set), never the load balancer's address.
 *
 * Client impersonation (cfg.authorizer set, --allow-client-impersonation): once the token is valid (401 still
 * wins), impersonation headers are no longer status 2: the client's header lines (argument imh, HAProxy's
 * req.hdrs_bin) are read by imp_parse() (impersonate.h; refused shapes → status 9, 400 with msg), then every
 * item gets a SubjectAccessReview for the authenticated identity through the authorizer (cached, single
 * flight, off the workers; the request is held like a TokenReview). All allowed → status 0 with the
 * impersonated identity (user, uid, groups, extras as asked) plus the extras originaluser.jetstack.io-user /
 * -groups / -uid recording who acted, and imp = 1 (HAProxy's defence-in-depth 403 for impersonation headers
 * lets exactly these through). The first item in the API server's order that is not allowed → status 8 (403)
 * with the API server's wording in msg; a review that fails (unreachable, timeout, bad answer, queue full,
 * rate) → status 4. Nothing is forwarded unless every review said allowed.
 */
#ifndef KOS_HANDLER_H
#define KOS_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clientaddr.h"
#include "config.h"
#include "identity.h"
#include "kosmsg.h"
#include "metrics.h"
#include "satoken.h"
#include "spoa.h"
#include "tokenreview.h"
#include "verifier.h"

/* Contract status values (txn.kos.status). */
enum handler_status {
	HANDLER_ALLOW = 0,
	HANDLER_UNAUTHENTICATED = 1,
	HANDLER_IMPERSONATION = 2,
	HANDLER_TOO_MANY_GROUPS = 3,
	HANDLER_UNAVAILABLE = 4,
	HANDLER_PASSTHROUGH = 5, /* forward with the client's own Authorization, no impersonation */
	HANDLER_TOO_MANY_VALUES = 6, /* an extra key has more values than HAProxy has lines for (403) */
	HANDLER_NO_SLOT = 7,     /* an extra key HAProxy has no Impersonate-Extra slot for (500) */
	HANDLER_IMP_DENIED = 8,  /* --allow-client-impersonation: not allowed by a SubjectAccessReview (403, msg) */
	HANDLER_IMP_BAD = 9,     /* --allow-client-impersonation: impersonation headers refused as such (400, msg) */
};

/* Impersonate-Extra slots HAProxy can declare (KOS_EXTRA_1…, conf/CONTRACT.md) and value lines per slot. */
#define HANDLER_EXTRA_SLOTS 8
#define HANDLER_EXTRA_VALUES 8

/* Reasons: txn.kos.reason, the logs and the metrics' reason label. Stable strings, never token bytes. */
enum handler_reason {
	HR_OK = 0,
	HR_MISSING,            /* "missing bearer token" */
	HR_MALFORMED_HEADER,   /* "malformed Authorization header" */
	HR_V_MALFORMED,        /* the verifier's results, in enum verifier_result order */
	HR_V_TOO_LARGE,
	HR_V_ALG,
	HR_V_UNKNOWN_KID,
	HR_V_SIGNATURE,
	HR_V_ISSUER,
	HR_V_AUDIENCE,
	HR_V_EXPIRED,
	HR_V_NOT_YET,
	HR_V_CLAIMS,
	HR_V_NOT_READY,
	HR_V_RESERVED,
	HR_V_INTERNAL,
	HR_V_IDENTITY,         /* "identity cannot be forwarded unchanged" (also the ACK writer's own last check) */
	HR_IMPERSONATION,      /* "impersonation requests are disabled" */
	HR_TOO_MANY_GROUPS,    /* "too many groups" */
	HR_NO_MESSAGE,         /* "no kos-auth message" */
	HR_BAD_MESSAGE,        /* "malformed kos-auth message" */
	HR_NO_XFF,             /* "no X-Forwarded-For arguments" (--trusted-proxies, HAProxy without them) */
	HR_NO_SATOKEN,         /* "service-account token not loaded" */
	HR_TOO_BIG,            /* "identity too large for the SPOP frame" */
	HR_TOO_MANY_VALUES,    /* "too many values for an extra key" */
	HR_NO_SLOT,            /* "extra key without a HAProxy slot" */
	HR_SHUTDOWN,           /* "agent shutting down" (a held request at handler_stop) */
	HR_PASSTHROUGH,        /* "token passthrough" (status 5) */
	HR_TR_DENIED,          /* "token review: not authenticated" */
	HR_TR_AUDIENCE,        /* "token review: audience mismatch" */
	HR_TR_RATE,            /* "token review rate limit" */
	HR_TR_BUSY,            /* "token review queue full" */
	HR_TR_UNAVAILABLE,     /* "token review unavailable" */
	HR_TR_RESPONSE,        /* "token review: malformed answer" */
	HR_IMP_DENIED,         /* "impersonation not allowed" (status 8) */
	HR_IMP_BAD,            /* "impersonation request refused" (status 9) */
	HR_IMP_UNAVAILABLE,    /* "impersonation authorizer unavailable" (status 4) */
	HR_OTHER,
	HR_COUNT,
};
extern const char *const handler_reason_names[HR_COUNT];

/* The verifier as the handler sees it (main.c binds verifier_*; tests bind fakes). */
typedef struct handler_verify_ops {
	int (*verify)(void *ctx, const uint8_t *token, size_t len, int64_t now, const identity **id,
		      const char **detail);
	bool (*ready)(void *ctx);
	/* for /metrics; may be NULL */
	void (*stats)(void *ctx, verifier_cache_stats *cache, oidc_status *status);
	/* Holding requests for an unknown kid (see the top of this file); both NULL = never hold. The contracts
	 * are verifier_set_refresh_listener() and verifier_refresh_soon(). */
	void (*set_listener)(void *ctx, void (*fn)(void *ud), void *ud);
	bool (*refresh_soon)(void *ctx, unsigned within_ms);
	/* Token passthrough: whether a token the verifier refused with rc, whose unverified iss is iss, belongs
	 * to none of our issuers. NULL = any JWT with an iss is ours (only non-JWTs may pass through). */
	bool (*foreign)(void *ctx, int rc, const char *iss);
	void *ctx;
} handler_verify_ops;

typedef struct handler_config {
	handler_verify_ops vops;
	satoken *sa;                  /* required */
	metrics *metrics;             /* required; create it with handler_reason_names, HR_COUNT */
	unsigned max_groups;          /* 1..CONFIG_MAX_GROUPS_LIMIT; HAProxy must carry as many g<N> lines */
	bool client_ip;               /* --extra-user-header-client-ip: set cip */
	const config_kv *extras;      /* --extra-user-headers, borrowed */
	size_t nextras;
	unsigned unknown_kid_wait_ms; /* longest hold for an unknown kid; 0 = never hold (answer 401 at once).
				       * Keep it well below HAProxy's SPOE "timeout processing" (conf: 1s). */
	unsigned max_held;            /* requests held at once; 0 = HANDLER_DEFAULT_MAX_HELD */
	size_t max_token_bytes;       /* longest token a held request copies; 0 = 16384 (longer: no hold) */
	tokenreview *reviewer;        /* --token-passthrough; NULL = off. Borrowed; stop it after handler_stop() */
	distclaims *claims;           /* the verifiers' distributed-claims fetcher, or NULL. Borrowed; the handler is
				       * its listener while holding (destroy it after handler_stop()) */
	bool disable_impersonation;   /* --disable-impersonation: a verified token is answered with status 5 */
	const caddr_list *trusted;    /* --trusted-proxies, borrowed; NULL or empty = the client is HAProxy's peer */
	tokenreview *authorizer;      /* --allow-client-impersonation: a SubjectAccessReview reviewer (cfg.sar);
				       * NULL = off (impersonation headers are status 2, as without the flag).
				       * Borrowed; stop it after handler_stop() */
} handler_config;

#define HANDLER_DEFAULT_MAX_HELD 1024
#define HANDLER_HELD (-1) /* handler_submit(): the request is held, done() comes later */

typedef struct handler handler;

/* Starts the holding thread and registers with the verifier when holding is enabled. 0 or -1. */
int handler_create(const handler_config *cfg, handler **out);
/* Ends holding: no request is held from now on, every held request is answered with status 4 ("agent shutting
 * down") and completed, the verifier listener is removed and the holding thread has exited when this returns.
 * Call it after spoa_server_stop() and before spoa_server_destroy() (a held request must be completed while
 * its server exists). Idempotent; one thread at a time (main); NULL is a no-op. */
void handler_stop(handler *h);
/* handler_stop(), then frees h. The SPOP workers must be gone. */
void handler_destroy(handler *h);
/* The SPOP server, for /metrics (set once it exists; may stay NULL). */
void handler_set_server(handler *h, spoa_server *srv);

/* spoa_handler_fn: userdata is the handler. SPOA_DONE, or SPOA_DEFERRED for a held request (see above). */
int handler_on_notify(spoa_request *req, void *userdata);

/* ---- the decision, separated from SPOP for tests ------------------------------------------------------- */

/* The decoded kos-auth message (kosmsg.h reads it from the NOTIFY; tests fill it by hand). */
typedef kosmsg_args handler_input;

typedef struct handler_sink {
	int (*set_str)(void *ud, const char *name, const char *s, size_t len);
	int (*set_int)(void *ud, const char *name, int64_t v);
	int (*set_proc_str)(void *ud, const char *name, const char *s, size_t len); /* process scope */
	void *ud;
} handler_sink;

/* Completion of a held request, called on the holding thread after the variables went through the sink. */
typedef void (*handler_done_fn)(void *ud);

/* handler_process(), except that an unknown kid may be held: then nothing is written yet, HANDLER_HELD is
 * returned, in is copied (its bytes may die after the call) and sink must stay usable until done(sink->ud) is
 * called, exactly once, on the holding thread. Any worker thread. */
int handler_submit(handler *h, const handler_input *in, int64_t now, const handler_sink *sink,
		   handler_done_fn done);
/* Requests held right now (for tests and logs). Any thread. */
unsigned handler_held(handler *h);

/* Decides and writes the variables, status last. now: unix seconds. Returns the status written. */
int handler_process(handler *h, const handler_input *in, int64_t now, const handler_sink *sink);
/* Splits an Authorization value: "Bearer <token>" (scheme case-insensitive, surrounding SP/HT ignored, one SP
 * between, token without SP/HT). 0 with *off and *tlen set to the token, or HR_MISSING / HR_MALFORMED_HEADER. */
int handler_bearer(const uint8_t *p, size_t len, size_t *off, size_t *tlen);

/* /ready: true when the verifier is ready and a service-account token is loaded; else why lists what is
 * missing. Any thread. */
bool handler_ready(handler *h, char *why, size_t whylen);
/* /metrics body (malloc'd); 0 or -1. */
int handler_metrics(handler *h, char **body, size_t *len);

#endif
