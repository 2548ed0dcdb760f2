/*
 * distclaims.h — OpenID Connect distributed claims (Core 5.6.2) for the groups claim, resolved the way the
 * Kubernetes API server's OIDC authenticator does (k8s.io/apiserver plugin/pkg/authenticator/token/oidc,
 * claimResolver), without ever blocking a SPOP worker.
 *
 * Two parts:
 *  1. The reference reader (distclaims_find): which claim source a verified token's "_claim_names" names for
 *     one claim, read with the API server's rules (see distclaims_find). It only reads; the verifier fetches.
 *  2. The fetcher: one thread with a curl multi handle (the tokenreview.h model) that GETs claim sources over
 *     https — the issuer's CA, TLS verified, no redirects, "Authorization: Bearer <access_token>" when the
 *     source has one — with a deadline per fetch, a size cap on the answer, single flight per source (URL,
 *     access token and CA together) and a small cache of answers. The fetcher never judges an answer: the
 *     verifier verifies the body as a JWT of its issuer at every use (verifier.c), so a cached body is only
 *     ever a copy of bytes, never a verdict.
 *
 * Flow: distclaims_get() (any thread, never blocks on I/O) returns the cached answer, or joins the fetch under
 * way for the same source, or starts one, and then says DISTCLAIMS_PENDING. When a fetch ends its answer (body
 * or failure) goes into the cache and the listener (distclaims_set_listener: the handler's, which judges its
 * held requests again) is called on the fetcher thread. Answers are kept until the claim JWT's unverified exp,
 * at most DISTCLAIMS_MAX_TTL_S; failures DISTCLAIMS_FAIL_TTL_MS, long enough for the requests waiting on the
 * fetch to see them, short enough that an endpoint that recovers is used again at once.
 *
 * Ownership: distclaims_get() copies what it needs of src; the body it returns is malloc'd for the caller.
 * The access token is kept only inside a fetch (for its header) and as part of a SHA-256 key; it is never
 * logged. Threads: create/destroy on the main thread; everything else from any thread.
 */
#ifndef KOS_DISTCLAIMS_H
#define KOS_DISTCLAIMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "kx.h"

#define DISTCLAIMS_MAX_BODY (64u * 1024)  /* a larger answer is a failure ("answer too large") */
#define DISTCLAIMS_MAX_TTL_S 600          /* an answer is never cached longer */
#define DISTCLAIMS_FAIL_TTL_MS 2000       /* a failure is remembered this long */
#define DISTCLAIMS_URL_MAX 2048

/* ---- the reference reader ----------------------------------------------------------------------------- */

enum distclaims_ref_result {
	DISTCLAIMS_NONE = 0,              /* nothing to resolve: the token is judged as it is */
	DISTCLAIMS_FETCH = 1,             /* *out names the source to fetch */
	DISTCLAIMS_E_NAMES = -1,          /* "_claim_names" is not an object of strings */
	DISTCLAIMS_E_NO_SOURCES = -2,     /* "_claim_names" without "_claim_sources" */
	DISTCLAIMS_E_SOURCES = -3,        /* "_claim_sources" is not an object of source objects */
	DISTCLAIMS_E_MISSING_SOURCE = -4, /* the claim names a source "_claim_sources" lacks */
	DISTCLAIMS_E_JSON = -5,           /* distclaims_parse() only: the input is not a strict JSON object */
};

typedef struct distclaims_ref {
	const char *endpoint;             /* borrowed from the payload; never empty */
	const char *access_token;         /* borrowed; NULL when the source has none (or an empty one) */
} distclaims_ref;

/*
 * The API server's claimResolver.expand for one claim of a verified payload:
 *   the claim is present (any value, null too)            → DISTCLAIMS_NONE
 *   no "_claim_names"                                     → DISTCLAIMS_NONE
 *   "_claim_names" not null and not an object whose values are strings or null → DISTCLAIMS_E_NAMES
 *   no "_claim_sources" (checked before the claim is looked up, as there)     → DISTCLAIMS_E_NO_SOURCES
 *   "_claim_sources" not null and not an object of objects-or-null whose "endpoint", "access_token" and "JWT"
 *     members are strings or null (member names matched as Go's encoding/json does: exact or case-folded,
 *     the last one wins; other members ignored)                                  → DISTCLAIMS_E_SOURCES
 *   the claim not in "_claim_names"                       → DISTCLAIMS_NONE
 *   its source not in "_claim_sources"                    → DISTCLAIMS_E_MISSING_SOURCE
 *   the source's endpoint empty or absent (an aggregated claim, "JWT": the API server ignores it and judges
 *     the token without the claim)                        → DISTCLAIMS_NONE
 *   otherwise                                             → DISTCLAIMS_FETCH, *out set (written only then).
 * Within "_claim_names" and "_claim_sources" a repeated name keeps its last value, as Go's maps do.
 * *detail (may be NULL) gets a static description of an error. Any thread; reads only.
 */
int distclaims_find(const cJSON *payload, const char *claim, distclaims_ref *out, const char **detail);
/* distclaims_find() on a JSON object p[0..len) (the strict parser of jwt.h): for tests and the fuzzer. Input
 * that is not a JSON object is DISTCLAIMS_E_JSON. endpoint/token copies go to ebuf/tbuf ("" when none),
 * truncated to their caps. */
int distclaims_parse(const uint8_t *p, size_t len, const char *claim, char *ebuf, size_t ecap, char *tbuf,
		     size_t tcap);

/* ---- the fetcher ---------------------------------------------------------------------------------------- */

typedef struct distclaims distclaims;

typedef struct distclaims_config {
	unsigned timeout_ms;     /* per fetch, queue + transfer; 0 = 500 (keep it below HAProxy's SPOE timeout
				  * and the handler's hold, so a slow source is a clear failure, not a timeout) */
	unsigned max_inflight;   /* HTTP transfers at once; 0 = 16 */
	unsigned max_fetches;    /* fetches queued or running at once; 0 = 256 (beyond: a failure at once) */
} distclaims_config;

typedef struct distclaims_src {
	const char *url;          /* the source's endpoint; only https:// is fetched */
	const char *access_token; /* NULL = no Authorization header */
	const char *ca_file;      /* the issuer's CA bundle file; NULL with ca_pem NULL = system roots */
	const char *ca_pem;       /* inline PEM (AuthenticationConfiguration certificateAuthority), wins over ca_file */
	size_t ca_pem_len;
} distclaims_src;

enum distclaims_get_result {
	DISTCLAIMS_READY = 0,     /* *body (malloc'd, caller frees) and *len hold the answer */
	DISTCLAIMS_PENDING = 1,   /* a fetch is under way; the listener is called when it ends */
	DISTCLAIMS_E_FAILED = -10,/* the fetch failed; *why says how (thread-local, safe to log) */
};

/* Starts the fetcher thread. 0, or -1 with one line in err. */
int distclaims_create(const distclaims_config *cfg, distclaims **out, char *err, size_t errlen);
/* See the top of this file. Any thread. */
int distclaims_get(distclaims *dc, const distclaims_src *src, uint8_t **body, size_t *len, const char **why);
/* fn(ud) after every fetch that ended (on the fetcher thread, with no fetcher lock held but the listener's
 * own). fn == NULL removes it; when this returns, the previous listener is not running and will not be called
 * again. Any thread but the listener's own. */
void distclaims_set_listener(distclaims *dc, void (*fn)(void *ud), void *ud);

/* Why a request was refused because of distributed claims, for kos_distributed_claims_refusals_total. */
enum distclaims_refusal {
	DISTCLAIMS_R_REFERENCE = 0, /* "_claim_names"/"_claim_sources" malformed, or a missing source */
	DISTCLAIMS_R_FETCH,         /* the fetch failed (transport, TLS, HTTP status, size, not https, busy) */
	DISTCLAIMS_R_JWT,           /* the answer is not a valid JWT of the issuer */
	DISTCLAIMS_R_CLAIM_ABSENT,  /* the answer lacks the claim */
	DISTCLAIMS_R_TIMEOUT,       /* still unanswered when the request could wait no longer */
	DISTCLAIMS_R_DISABLED,      /* no fetcher (the agent cannot hold requests) */
	DISTCLAIMS_R_COUNT
};
void distclaims_count_refusal(distclaims *dc, enum distclaims_refusal r);

typedef struct distclaims_stats {
	uint64_t fetches;           /* fetches ended, any outcome */
	uint64_t ok, unreachable, timeout, http_status, too_large, not_https, busy;
	uint64_t joined, cache_hits;
	uint64_t refusals[DISTCLAIMS_R_COUNT];
	uint64_t lat_buckets[6];    /* fetch latency <= 0.01, 0.05, 0.1, 0.25, 0.5, 1 s */
	uint64_t lat_count;
	double lat_sum_s;
} distclaims_stats;
void distclaims_stats_get(distclaims *dc, distclaims_stats *out);
/* Appends the kos_distributed_claims_* families (Prometheus text) to out: 0 or -1. A metrics source
 * (metrics_register); the loop thread, never blocks. */
int distclaims_metrics(distclaims *dc, kx_buf *out);
/* Fails every fetch under way ("shutting down"), joins the thread, frees everything. NULL is a no-op. */
void distclaims_destroy(distclaims *dc);

#endif
