/* test_metrics.c — counters, histogram buckets and the exposition text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static const char *const reasons[] = {"ok", "token expired", "weird \"quoted\"\\reason", "other"};

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static void test_render(void **state)
{
	metrics *m;
	metrics_ext ext;
	char *body;
	size_t len;

	(void)state;
	assert_int_equal(metrics_create(reasons, 4, &m), 0);
	metrics_request(m, METRICS_ALLOW, 0, 20000);          /* 20 µs */
	metrics_request(m, METRICS_ALLOW, 0, 2000000);        /* 2 ms */
	metrics_request(m, METRICS_UNAUTHENTICATED, 1, 5000); /* 5 µs */
	metrics_request(m, METRICS_UNAUTHENTICATED, 2, -1);   /* not measured */
	metrics_request(m, METRICS_UNAVAILABLE, 99, -1);      /* out of range: counted as the last reason */
	metrics_request(m, METRICS_ALLOW, 0, 10000000000LL);  /* 10 s: only +Inf */
	assert_int_equal(metrics_count(m, METRICS_ALLOW, 0), 3);
	assert_int_equal(metrics_count(m, METRICS_UNAVAILABLE, 3), 1);
	assert_int_equal(metrics_latency_count(m), 4);

	memset(&ext, 0, sizeof(ext));
	ext.have_spoa = true;
	ext.spoa.conns_open = 3;
	ext.spoa.frames_in = 42;
	ext.have_verifier = true;
	ext.oidc.ready = true;
	ext.oidc.nkeys = 7;
	ext.oidc.refreshes = 2;
	ext.cache.hits = 10;
	ext.cache.size = 5;
	ext.cache.bytes = 3145728;
	ext.cache.negative_hits = 6;
	ext.cache.work_refusals = 2;
	ext.ready = true;
	ext.satoken_loaded = true;
	ext.satoken_loads = 1;
	assert_int_equal(metrics_render(m, &ext, &body, &len), 0);
	assert_int_equal(strlen(body), len);
	assert_true(has_line(body, "kos_requests_total{verdict=\"allow\",reason=\"ok\"} 3"));
	assert_true(has_line(body, "kos_requests_total{verdict=\"unauthenticated\",reason=\"token expired\"} 1"));
	assert_true(has_line(body, "kos_requests_total{verdict=\"unauthenticated\",reason=\"weird \\\"quoted\\\"\\\\reason\"} 1"));
	assert_true(has_line(body, "kos_requests_total{verdict=\"unavailable\",reason=\"other\"} 1"));
	/* series never hit are left out */
	assert_null(strstr(body, "verdict=\"impersonation\""));
	assert_true(has_line(body, "# TYPE kos_verify_duration_seconds histogram"));
	assert_true(has_line(body, "kos_verify_duration_seconds_bucket{le=\"1e-05\"} 1"));
	assert_true(has_line(body, "kos_verify_duration_seconds_bucket{le=\"2.5e-05\"} 2"));
	assert_true(has_line(body, "kos_verify_duration_seconds_bucket{le=\"0.0025\"} 3"));
	assert_true(has_line(body, "kos_verify_duration_seconds_bucket{le=\"0.5\"} 3"));
	assert_true(has_line(body, "kos_verify_duration_seconds_bucket{le=\"+Inf\"} 4"));
	assert_true(has_line(body, "kos_verify_duration_seconds_count 4"));
	assert_true(has_line(body, "kos_verify_duration_seconds_sum 10.002025000"));
	assert_true(has_line(body, "kos_spop_connections_open 3"));
	assert_true(has_line(body, "kos_spop_frames_received_total 42"));
	assert_true(has_line(body, "kos_jwks_keys 7"));
	assert_true(has_line(body, "kos_jwks_refreshes_total 2"));
	assert_true(has_line(body, "kos_cache_hits_total 10"));
	assert_true(has_line(body, "kos_cache_entries 5"));
	assert_true(has_line(body, "kos_cache_bytes 3145728"));
	assert_true(has_line(body, "kos_negative_cache_hits_total 6"));
	assert_true(has_line(body, "kos_verify_work_refusals_total 2"));
	assert_true(has_line(body, "kos_issuer_ready 1"));
	assert_true(has_line(body, "kos_ready 1"));
	assert_true(has_line(body, "kos_service_account_token_loaded 1"));
	/* every line is a comment or "name{labels} value" */
	for (char *l = strtok(body, "\n"); l != NULL; l = strtok(NULL, "\n"))
		assert_true(l[0] == '#' || strncmp(l, "kos_", 4) == 0);
	free(body);

	/* without the optional parts, their families are absent */
	memset(&ext, 0, sizeof(ext));
	assert_int_equal(metrics_render(m, &ext, &body, &len), 0);
	assert_null(strstr(body, "kos_spop_"));
	assert_null(strstr(body, "kos_jwks_"));
	assert_true(has_line(body, "kos_ready 0"));
	free(body);
	metrics_destroy(m);
}

static void test_create_limits(void **state)
{
	metrics *m = NULL;

	(void)state;
	assert_int_equal(metrics_create(reasons, 0, &m), -1);
	assert_int_equal(metrics_create(reasons, METRICS_MAX_REASONS + 1, &m), -1);
	assert_null(m);
}

static int src_text(void *ud, kx_buf *out)
{
	return kx_buf_addf(out, "%s\n", (const char *)ud) == 0 ? 0 : -1;
}

static int src_fail(void *ud, kx_buf *out)
{
	(void)ud;
	(void)out;
	return -1;
}

static int src_huge(void *ud, kx_buf *out)
{
	(void)ud;
	for (unsigned i = 0; i <= METRICS_SCRAPE_MAX / 64; i++)
		kx_buf_addf(out, "%064u", i); /* one line past the cap: the buffer refuses, the source ignores it */
	return 0;
}

/* The registry: sources in registration order, a failing or oversized source fails the whole scrape, at most
 * METRICS_MAX_SOURCES. */
static void test_registry(void **state)
{
	metrics *m = NULL;
	char *body = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(metrics_create(reasons, 3, &m), 0);
	assert_int_equal(metrics_scrape(m, &body, &len), 0); /* nothing registered: an empty body */
	assert_non_null(body);
	assert_int_equal(len, 0);
	free(body);
	assert_int_equal(metrics_register(m, src_text, "first"), 0);
	assert_int_equal(metrics_register(m, src_text, "second"), 0);
	assert_int_equal(metrics_scrape(m, &body, &len), 0);
	assert_string_equal(body, "first\nsecond\n");
	assert_int_equal(len, strlen("first\nsecond\n"));
	free(body);
	for (int i = 2; i < METRICS_MAX_SOURCES - 1; i++)
		assert_int_equal(metrics_register(m, src_text, "x"), 0);
	assert_int_equal(metrics_register(m, src_fail, NULL), 0);
	assert_int_equal(metrics_register(m, src_text, "one too many"), -1);
	body = (char *)"untouched";
	assert_int_equal(metrics_scrape(m, &body, &len), -1);
	assert_string_equal(body, "untouched");
	metrics_destroy(m);

	assert_int_equal(metrics_create(reasons, 3, &m), 0);
	assert_int_equal(metrics_register(m, src_huge, NULL), 0);
	assert_int_equal(metrics_scrape(m, &body, &len), -1);
	metrics_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_create_limits),
		cmocka_unit_test(test_registry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
