/*
 * metrics.h — the agent's counters and their Prometheus text exposition (format 0.0.4).
 *
 * Owns: request counters by verdict and reason, and a verification-latency histogram, all relaxed atomics
 * that any worker thread bumps without a lock or an allocation. Gauges owned by other modules (SPOP server,
 * verifier cache, OIDC provider, service-account token) are passed in a metrics_ext snapshot at render time, so
 * this module depends on no one's internals. metrics_render() returns a malloc'd body the caller frees.
 *
 * It is also the one metrics writer of the process: every module that exposes families registers a source
 * (a render callback and its user data) with metrics_register(); /metrics (httpd) calls metrics_scrape(), which
 * runs the sources in registration order into one capped buffer (kx_buf). main.c only wires the sources up.
 */
#ifndef KOS_METRICS_H
#define KOS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kx.h"
#include "spoa.h"
#include "verifier.h"

/* The verdicts are the contract's status values (conf/CONTRACT.md). */
enum metrics_verdict {
	METRICS_ALLOW = 0,
	METRICS_UNAUTHENTICATED = 1,
	METRICS_IMPERSONATION = 2,
	METRICS_TOO_MANY_GROUPS = 3,
	METRICS_UNAVAILABLE = 4,
	METRICS_PASSTHROUGH = 5, /* --token-passthrough: the API server authenticated the client's own token */
	METRICS_TOO_MANY_VALUES = 6,
	METRICS_NO_SLOT = 7,
	METRICS_IMP_DENIED = 8,  /* --allow-client-impersonation: a SubjectAccessReview did not allow it (403) */
	METRICS_IMP_BAD = 9,     /* --allow-client-impersonation: impersonation headers the API server refuses (400) */
	METRICS_NVERDICTS = 10,
};

#define METRICS_MAX_REASONS 64
/* Latency buckets in seconds (upper bounds; +Inf is implicit). */
#define METRICS_NBUCKETS 14

typedef struct metrics metrics;

typedef struct metrics_ext {
	bool have_spoa;
	spoa_stats spoa;
	bool have_verifier;
	verifier_cache_stats cache;
	oidc_status oidc;
	bool ready;
	bool satoken_loaded;
	uint64_t satoken_loads, satoken_failures;
} metrics_ext;

/* reasons[0..nreasons) label the reason index passed to metrics_request(); the strings must outlive m. */
int metrics_create(const char *const *reasons, size_t nreasons, metrics **out);
void metrics_destroy(metrics *m);
/* Any thread. reason < nreasons (others are counted under the last index); latency_ns < 0: not measured
 * (no verification happened, e.g. a missing token). */
void metrics_request(metrics *m, enum metrics_verdict v, unsigned reason, int64_t latency_ns);
/* Renders everything; *out (malloc'd, NUL-terminated) and *len on success; 0 or -1 (no memory). */
int metrics_render(metrics *m, const metrics_ext *ext, char **out, size_t *len);
/* ---- the registry ---- */

/* Appends the source's families (Prometheus text) to out; 0, or -1 when it could not (the scrape fails). Runs
 * on the thread that serves /metrics (the libev loop): it must not block. */
typedef int (*metrics_source_fn)(void *ud, kx_buf *out);

#define METRICS_MAX_SOURCES 8
#define METRICS_SCRAPE_MAX (4u << 20) /* a larger /metrics body fails the scrape (500) */

/* Adds a source; the scrape runs sources in the order they were registered. Call before serving starts (not
 * thread-safe against a concurrent scrape). 0, or -1 when METRICS_MAX_SOURCES are registered already. */
int metrics_register(metrics *m, metrics_source_fn fn, void *ud);
/* The /metrics body: every source's families in order. ud is the metrics * (the shape of httpd's route).
 * *body (malloc'd, NUL-terminated; the caller frees) and *len on success; 0 or -1. */
int metrics_scrape(void *ud, char **body, size_t *len);
/* This module's own families (requests, latency histogram, the ext snapshot) appended to out: 0 or -1.
 * metrics_render() is the same into a new body. */
int metrics_render_to(metrics *m, const metrics_ext *ext, kx_buf *out);

/* Test helpers: the count for one verdict/reason pair, and the histogram's total count. */
uint64_t metrics_count(metrics *m, enum metrics_verdict v, unsigned reason);
uint64_t metrics_latency_count(metrics *m);

#endif
