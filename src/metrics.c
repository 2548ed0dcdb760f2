/* metrics.c — counters and Prometheus text exposition; see metrics.h. */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const verdict_names[METRICS_NVERDICTS] = {
	"allow", "unauthenticated", "impersonation", "too_many_groups", "unavailable", "passthrough",
	"too_many_values", "no_slot", "impersonation_denied", "impersonation_bad_request",
};

/* Verification is microseconds on a cache hit and about a millisecond for an RSA verify; the buckets cover
 * both and the slow outliers that would show lock or CPU trouble. */
static const double bucket_s[METRICS_NBUCKETS] = {
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
};

struct metrics {
	const char *const *reasons;
	size_t nreasons;
	atomic_uint_fast64_t req[METRICS_NVERDICTS][METRICS_MAX_REASONS];
	atomic_uint_fast64_t bucket[METRICS_NBUCKETS + 1]; /* last = +Inf only */
	atomic_uint_fast64_t lat_count;
	atomic_uint_fast64_t lat_sum_ns;
	struct {
		metrics_source_fn fn;
		void *ud;
	} sources[METRICS_MAX_SOURCES]; /* metrics_scrape() order; written before serving starts */
	size_t nsources;
};

int metrics_create(const char *const *reasons, size_t nreasons, metrics **out)
{
	metrics *m;

	if (nreasons == 0 || nreasons > METRICS_MAX_REASONS)
		return -1;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -1;
	m->reasons = reasons;
	m->nreasons = nreasons;
	*out = m;
	return 0;
}

void metrics_destroy(metrics *m)
{
	free(m);
}

void metrics_request(metrics *m, enum metrics_verdict v, unsigned reason, int64_t latency_ns)
{
	if ((unsigned)v >= METRICS_NVERDICTS)
		v = METRICS_UNAVAILABLE;
	if (reason >= m->nreasons)
		reason = (unsigned)m->nreasons - 1;
	atomic_fetch_add_explicit(&m->req[v][reason], 1, memory_order_relaxed);
	if (latency_ns >= 0) {
		double s = (double)latency_ns / 1e9;
		size_t b = 0;

		while (b < METRICS_NBUCKETS && s > bucket_s[b])
			b++;
		atomic_fetch_add_explicit(&m->bucket[b], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&m->lat_count, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&m->lat_sum_ns, (uint64_t)latency_ns, memory_order_relaxed);
	}
}

uint64_t metrics_count(metrics *m, enum metrics_verdict v, unsigned reason)
{
	if ((unsigned)v >= METRICS_NVERDICTS || reason >= m->nreasons)
		return 0;
	return atomic_load(&m->req[v][reason]);
}

uint64_t metrics_latency_count(metrics *m)
{
	return atomic_load(&m->lat_count);
}

#define MBUF_MAX (1u << 20) /* metrics_render()'s body */

/* The families below are written without checking each append: a kx_buf's first failure sticks, so only
 * the end checks. */

/* Prometheus label values escape backslash, double quote and newline. */
static void mb_label(kx_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			kx_buf_addf(b, "\\%c", *s);
		else if (*s == '\n')
			kx_buf_addf(b, "\\n");
		else
			kx_buf_add(b, s, 1);
	}
}

static void help(kx_buf *b, const char *name, const char *type, const char *text)
{
	kx_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void gauge(kx_buf *b, const char *name, const char *text, double v)
{
	help(b, name, "gauge", text);
	kx_buf_addf(b, "%s %.17g\n", name, v);
}

static void counter(kx_buf *b, const char *name, const char *text, uint64_t v)
{
	help(b, name, "counter", text);
	kx_buf_addf(b, "%s %llu\n", name, (unsigned long long)v);
}

int metrics_render(metrics *m, const metrics_ext *ext, char **out, size_t *len)
{
	kx_buf b;

	kx_buf_init(&b, MBUF_MAX);
	if (metrics_render_to(m, ext, &b) != 0) {
		kx_buf_free(&b);
		return -1;
	}
	*out = kx_buf_steal(&b, len);
	return 0;
}

int metrics_render_to(metrics *m, const metrics_ext *ext, kx_buf *out)
{
	kx_buf *b = out;
	uint64_t cum = 0;

	help(b, "kos_requests_total", "counter", "Authentication decisions by verdict and reason.");
	for (unsigned v = 0; v < METRICS_NVERDICTS; v++) {
		for (size_t r = 0; r < m->nreasons; r++) {
			uint64_t n = atomic_load_explicit(&m->req[v][r], memory_order_relaxed);

			/* the allow verdict has one reason; emit every other series only once it exists, so a
			 * scrape stays small yet rate() works from the first event on */
			if (n == 0 && !(v == METRICS_ALLOW && r == 0))
				continue;
			kx_buf_addf(b, "kos_requests_total{verdict=\"%s\",reason=\"", verdict_names[v]);
			mb_label(b, m->reasons[r]);
			kx_buf_addf(b, "\"} %llu\n", (unsigned long long)n);
		}
	}
	help(b, "kos_verify_duration_seconds", "histogram", "Time spent verifying a bearer token.");
	for (size_t i = 0; i <= METRICS_NBUCKETS; i++) {
		cum += atomic_load_explicit(&m->bucket[i], memory_order_relaxed);
		if (i < METRICS_NBUCKETS)
			kx_buf_addf(b, "kos_verify_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_s[i],
				  (unsigned long long)cum);
		else
			kx_buf_addf(b, "kos_verify_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	}
	/* count is the +Inf bucket by definition; reading it separately could disagree under load */
	kx_buf_addf(b, "kos_verify_duration_seconds_sum %.9f\n",
		  (double)atomic_load_explicit(&m->lat_sum_ns, memory_order_relaxed) / 1e9);
	kx_buf_addf(b, "kos_verify_duration_seconds_count %llu\n", (unsigned long long)cum);

	gauge(b, "kos_ready", "1 when the agent can verify tokens and has a service-account token.",
	      ext->ready ? 1 : 0);
	gauge(b, "kos_service_account_token_loaded", "1 when a service-account token is loaded.",
	      ext->satoken_loaded ? 1 : 0);
	counter(b, "kos_service_account_token_loads_total", "Service-account token loads (first load and rotations).",
		ext->satoken_loads);
	counter(b, "kos_service_account_token_failures_total", "Failed attempts to read the service-account token.",
		ext->satoken_failures);
	if (ext->have_verifier) {
		gauge(b, "kos_issuer_ready", "1 when the issuer's keys are loaded.", ext->oidc.ready ? 1 : 0);
		counter(b, "kos_jwks_refreshes_total", "Successful JWKS loads.", ext->oidc.refreshes);
		counter(b, "kos_jwks_failures_total", "Failed discovery or JWKS fetches.", ext->oidc.failures);
		gauge(b, "kos_jwks_keys", "Keys in the current key set.", (double)ext->oidc.nkeys);
		gauge(b, "kos_jwks_last_success_timestamp_seconds", "Time of the last successful JWKS load.",
		      (double)ext->oidc.last_success);
		counter(b, "kos_cache_hits_total", "Token cache hits.", ext->cache.hits);
		counter(b, "kos_cache_misses_total", "Token cache misses.", ext->cache.misses);
		counter(b, "kos_cache_evictions_total", "Token cache evictions.", ext->cache.evictions);
		gauge(b, "kos_cache_entries", "Tokens in the cache.", (double)ext->cache.size);
		gauge(b, "kos_cache_bytes", "Memory the token cache holds (table and identities; --cache-max-bytes).",
		      (double)ext->cache.bytes);
		counter(b, "kos_negative_cache_hits_total",
			"Refusals repeated from the memory of recently refused tokens.", ext->cache.negative_hits);
		counter(b, "kos_verify_work_refusals_total",
			"Tokens refused because checking them would take more signature work than the per-token cap.",
			ext->cache.work_refusals);
	}
	if (ext->have_spoa) {
		counter(b, "kos_spop_connections_accepted_total", "SPOP connections accepted.",
			ext->spoa.conns_accepted);
		gauge(b, "kos_spop_connections_open", "SPOP connections open.", (double)ext->spoa.conns_open);
		counter(b, "kos_spop_connections_rejected_total", "SPOP connections refused or failed at accept.",
			ext->spoa.conns_rejected);
		counter(b, "kos_spop_frames_received_total", "SPOP frames received.", ext->spoa.frames_in);
		counter(b, "kos_spop_frames_sent_total", "SPOP frames sent.", ext->spoa.frames_out);
		counter(b, "kos_spop_bytes_sent_total", "Bytes of SPOP frames sent (length prefixes included).",
			ext->spoa.bytes_out);
		counter(b, "kos_spop_notify_total", "SPOP NOTIFY frames.", ext->spoa.notify);
		counter(b, "kos_spop_healthchecks_total", "SPOP health-check connections.", ext->spoa.healthchecks);
		counter(b, "kos_spop_protocol_errors_total", "SPOP connections closed for a protocol error.",
			ext->spoa.protocol_errors);
	}
	return b->failed ? -1 : 0;
}

int metrics_register(metrics *m, metrics_source_fn fn, void *ud)
{
	if (m->nsources == METRICS_MAX_SOURCES)
		return -1;
	m->sources[m->nsources].fn = fn;
	m->sources[m->nsources].ud = ud;
	m->nsources++;
	return 0;
}

int metrics_scrape(void *ud, char **body, size_t *len)
{
	metrics *m = ud;
	kx_buf b;

	kx_buf_init(&b, METRICS_SCRAPE_MAX);
	if (kx_buf_add(&b, "", 0) != 0) /* an empty registry still answers with a (empty) body */
		goto fail;
	for (size_t i = 0; i < m->nsources; i++)
		if (m->sources[i].fn(m->sources[i].ud, &b) != 0 || b.failed)
			goto fail;
	*body = kx_buf_steal(&b, len);
	return 0;
fail:
	kx_buf_free(&b);
	return -1;
}
