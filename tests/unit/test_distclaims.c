/*
 * test_distclaims.c — the distributed-claims reference reader (distclaims_find via distclaims_parse) against the
 * API server's claimResolver.expand: a table of payloads, each with the verdict it expects, including the
 * corners Go's encoding/json decides (null maps and values, case-folded member names, the last of repeated
 * names, type mismatches anywhere in _claim_sources). Plus the fetcher's refusals that need no network, and
 * one fetch for every lookup of a source until its failure is stored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distclaims.h"

static const struct {
	const char *name;
	const char *json;
	int expect;
	const char *endpoint; /* with DISTCLAIMS_FETCH */
	const char *token;    /* "" = none */
} cases[] = {
	{ "plain", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":\"https://a/g\","
	  "\"access_token\":\"t1\"}}}", DISTCLAIMS_FETCH, "https://a/g", "t1" },
	{ "no access token", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":\"https://a\"}}}",
	  DISTCLAIMS_FETCH, "https://a", "" },
	{ "empty access token is none", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":"
	  "\"https://a\",\"access_token\":\"\"}}}", DISTCLAIMS_FETCH, "https://a", "" },
	{ "claim present wins", "{\"groups\":[\"x\"],\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{}}",
	  DISTCLAIMS_NONE, NULL, NULL },
	{ "claim present as null wins", "{\"groups\":null,\"_claim_names\":{\"groups\":\"s\"}}", DISTCLAIMS_NONE, NULL,
	  NULL },
	{ "no _claim_names", "{\"sub\":\"a\",\"_claim_sources\":{\"s\":5}}", DISTCLAIMS_NONE, NULL, NULL },
	{ "names not an object", "{\"_claim_names\":[\"groups\"],\"_claim_sources\":{}}", DISTCLAIMS_E_NAMES, NULL,
	  NULL },
	{ "names value a number", "{\"_claim_names\":{\"groups\":1},\"_claim_sources\":{}}", DISTCLAIMS_E_NAMES, NULL,
	  NULL },
	{ "names value of another claim bad", "{\"_claim_names\":{\"roles\":{},\"groups\":\"s\"},\"_claim_sources\":"
	  "{\"s\":{\"endpoint\":\"https://a\"}}}", DISTCLAIMS_E_NAMES, NULL, NULL },
	{ "names without sources", "{\"_claim_names\":{\"roles\":\"s\"}}", DISTCLAIMS_E_NO_SOURCES, NULL, NULL },
	{ "null names without sources", "{\"_claim_names\":null}", DISTCLAIMS_E_NO_SOURCES, NULL, NULL },
	{ "null names with sources", "{\"_claim_names\":null,\"_claim_sources\":{}}", DISTCLAIMS_NONE, NULL, NULL },
	{ "sources not an object", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":\"s\"}",
	  DISTCLAIMS_E_SOURCES, NULL, NULL },
	{ "a source a string", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":\"https://a\"}}",
	  DISTCLAIMS_E_SOURCES, NULL, NULL },
	{ "another source malformed", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":"
	  "\"https://a\"},\"t\":{\"endpoint\":7}}}", DISTCLAIMS_E_SOURCES, NULL, NULL },
	{ "sources malformed, claim not named", "{\"_claim_names\":{\"roles\":\"s\"},\"_claim_sources\":[]}",
	  DISTCLAIMS_E_SOURCES, NULL, NULL },
	{ "endpoint a number", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":1}}}",
	  DISTCLAIMS_E_SOURCES, NULL, NULL },
	{ "JWT a number", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"JWT\":[]}}}",
	  DISTCLAIMS_E_SOURCES, NULL, NULL },
	{ "unknown member of any type ignored", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":"
	  "{\"endpoint\":\"https://a\",\"x\":[1,{}]}}}", DISTCLAIMS_FETCH, "https://a", "" },
	{ "claim not named", "{\"_claim_names\":{\"roles\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":\"https://a\"}}}",
	  DISTCLAIMS_NONE, NULL, NULL },
	{ "source missing", "{\"_claim_names\":{\"groups\":\"z\"},\"_claim_sources\":{\"s\":{\"endpoint\":\"https://a\"}}}",
	  DISTCLAIMS_E_MISSING_SOURCE, NULL, NULL },
	{ "null sources, claim named", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":null}",
	  DISTCLAIMS_E_MISSING_SOURCE, NULL, NULL },
	{ "null name looks up \"\"", "{\"_claim_names\":{\"groups\":null},\"_claim_sources\":{\"\":{\"endpoint\":"
	  "\"https://e\"}}}", DISTCLAIMS_FETCH, "https://e", "" },
	{ "aggregated ignored", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"JWT\":\"a.b.c\"}}}",
	  DISTCLAIMS_NONE, NULL, NULL },
	{ "null source ignored", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":null}}",
	  DISTCLAIMS_NONE, NULL, NULL },
	{ "empty endpoint ignored", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":\"\"}}}",
	  DISTCLAIMS_NONE, NULL, NULL },
	{ "null endpoint ignored", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":null}}}",
	  DISTCLAIMS_NONE, NULL, NULL },
	{ "folded member names", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"EndPoint\":"
	  "\"https://f\",\"ACCESS_TOKEN\":\"t\"}}}", DISTCLAIMS_FETCH, "https://f", "t" },
	{ "long s and Kelvin sign fold", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":"
	  "\"https://k\",\"acce\xc5\xbf\xc5\xbf_to\xe2\x84\xaa" "en\":\"t\"}}}", DISTCLAIMS_FETCH, "https://k", "t" },
	{ "last of folded names wins", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":"
	  "\"https://1\",\"ENDPOINT\":\"https://2\"}}}", DISTCLAIMS_FETCH, "https://2", "" },
	{ "a null does not undo", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":"
	  "\"https://1\",\"Endpoint\":null}}}", DISTCLAIMS_FETCH, "https://1", "" },
	{ "near miss names are other members", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":"
	  "{\"endpoints\":\"https://1\",\"end_point\":\"https://2\"}}}", DISTCLAIMS_NONE, NULL, NULL },
	{ "last repeated source wins", "{\"_claim_names\":{\"groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":"
	  "\"https://1\"},\"s\":{\"endpoint\":\"https://2\"}}}", DISTCLAIMS_FETCH, "https://2", "" },
	{ "last repeated name wins", "{\"_claim_names\":{\"groups\":\"a\",\"groups\":\"b\"},\"_claim_sources\":{\"a\":"
	  "{\"endpoint\":\"https://a\"},\"b\":{\"endpoint\":\"https://b\"}}}", DISTCLAIMS_FETCH, "https://b", "" },
	{ "claim name matched exactly", "{\"_claim_names\":{\"Groups\":\"s\"},\"_claim_sources\":{\"s\":{\"endpoint\":"
	  "\"https://a\"}}}", DISTCLAIMS_NONE, NULL, NULL },
	{ "not json", "{\"_claim_names\":", DISTCLAIMS_E_JSON, NULL, NULL },
	{ "not an object", "[1]", DISTCLAIMS_E_JSON, NULL, NULL },
};

static void test_reference_table(void **state)
{
	char ep[256], tok[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = distclaims_parse((const uint8_t *)cases[i].json, strlen(cases[i].json), "groups", ep, sizeof(ep),
					  tok, sizeof(tok));

		if (rc != cases[i].expect)
			fail_msg("%s: got %d, expected %d", cases[i].name, rc, cases[i].expect);
		if (rc == DISTCLAIMS_FETCH) {
			assert_string_equal(ep, cases[i].endpoint);
			assert_string_equal(tok, cases[i].token);
		} else {
			assert_string_equal(ep, "");
		}
	}
}

/* Never reads past len: the same input cut at every length either parses differently or fails, never crashes
 * (under ASan the copy has no byte after it). */
static void test_truncations(void **state)
{
	char ep[64], tok[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].json);

		for (size_t k = 0; k < n; k++) {
			uint8_t *p = malloc(k ? k : 1);

			assert_non_null(p);
			memcpy(p, cases[i].json, k);
			assert_int_equal(distclaims_parse(p, k, "groups", ep, sizeof(ep), tok, sizeof(tok)),
					 DISTCLAIMS_E_JSON);
			free(p);
		}
	}
}

/* The fetcher refuses, without any network, what it must never fetch; a source it does fetch is PENDING, every
 * further lookup joins that one fetch (single flight) until its failure is stored, and the failure names no
 * part of the access token. */
static void test_fetcher_refusals_and_single_flight(void **state)
{
	distclaims_config cfg = { .timeout_ms = 200 };
	distclaims *dc = NULL;
	distclaims_src src = { .url = "http://127.0.0.1:1/claims" };
	distclaims_stats st;
	uint8_t *body = NULL;
	size_t len = 0;
	const char *why = NULL;
	char err[128];

	(void)state;
	assert_int_equal(distclaims_create(&cfg, &dc, err, sizeof(err)), 0);
	assert_int_equal(distclaims_get(dc, &src, &body, &len, &why), DISTCLAIMS_E_FAILED);
	assert_non_null(strstr(why, "not an https URL"));
	/* port 1 on loopback: nothing listens; the fetch is started and then fails */
	src.url = "https://127.0.0.1:1/claims";
	/* an access token that would add header lines of its own is refused before any fetch */
	src.access_token = "secret\r\nX-Injected: 1";
	assert_int_equal(distclaims_get(dc, &src, &body, &len, &why), DISTCLAIMS_E_FAILED);
	assert_non_null(strstr(why, "control characters"));
	assert_null(strstr(why, "secret"));
	src.access_token = "secret";
	assert_int_equal(distclaims_get(dc, &src, &body, &len, &why), DISTCLAIMS_PENDING);
	distclaims_stats_get(dc, &st);
	assert_int_equal(st.not_https, 1);
	/* bounded wait for the failure to be stored (a refused connection is immediate; the deadline is 200 ms) */
	for (int i = 0; i < 200; i++) {
		int rc = distclaims_get(dc, &src, &body, &len, &why);

		if (rc == DISTCLAIMS_E_FAILED)
			break;
		assert_int_equal(rc, DISTCLAIMS_PENDING);
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	assert_non_null(strstr(why, "distributed claims:"));
	assert_null(strstr(why, "secret"));
	distclaims_stats_get(dc, &st);
	assert_int_equal(st.fetches, 1);
	distclaims_destroy(dc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_table),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_fetcher_refusals_and_single_flight),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
