/* test_tokenreview.c — the TokenReview response parser (table: each body with the verdict it expects), the
 * unverified-iss reader, and the reviewer's bounds without a server: rate limit, one review per token, shutdown
 * answering every waiter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "b64url.h"
#include "log.h"
#include "satoken.h"
#include "tokenreview.h"

#define TR(st) "{\"kind\":\"TokenReview\",\"apiVersion\":\"authentication.k8s.io/v1\",\"status\":" st "}"

static void test_parse_table(void **state)
{
	static const char *const auds[] = {"https://kubernetes.default.svc", "kos"};
	static const struct {
		const char *body;
		size_t nauds;
		int rc;
		bool authenticated, audience_ok;
		const char *user;
	} t[] = {
		/* good answers */
		{TR("{\"authenticated\":true,\"user\":{\"username\":\"system:serviceaccount:ci:d\"}}"), 0, TOKENREVIEW_OK,
		 true, true, "system:serviceaccount:ci:d"},
		{TR("{\"authenticated\":false,\"error\":\"invalid bearer token\"}"), 0, TOKENREVIEW_OK, false, true, ""},
		{TR("{}"), 0, TOKENREVIEW_OK, false, true, ""},               /* authenticated absent = false */
		{TR("{\"authenticated\":true,\"user\":{}}"), 0, TOKENREVIEW_OK, true, true, ""},
		{TR("{\"authenticated\":true,\"audiences\":[\"kos\"]}"), 2, TOKENREVIEW_OK, true, true, ""},
		{TR("{\"authenticated\":true,\"audiences\":[\"x\",\"https://kubernetes.default.svc\"]}"), 2,
		 TOKENREVIEW_OK, true, true, ""},
		/* audiences asked for but none came back: audience_ok false */
		{TR("{\"authenticated\":true,\"audiences\":[\"other\"]}"), 2, TOKENREVIEW_OK, true, false, ""},
		{TR("{\"authenticated\":true}"), 2, TOKENREVIEW_OK, true, false, ""},
		{TR("{\"authenticated\":true,\"audiences\":null}"), 2, TOKENREVIEW_OK, true, false, ""},
		{TR("{\"authenticated\":true,\"audiences\":[\"KOS\"]}"), 2, TOKENREVIEW_OK, true, false, ""},
		/* a username with a control byte is not kept (logs only) */
		{TR("{\"authenticated\":true,\"user\":{\"username\":\"a\\nb\"}}"), 0, TOKENREVIEW_OK, true, true, ""},
		/* not a TokenReview */
		{"", 0, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{"null", 0, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{"[]", 0, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{"{\"status\":{\"authenticated\":true}}", 0, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{"{\"kind\":\"Status\",\"status\":\"Failure\",\"code\":403}", 0, TOKENREVIEW_E_RESPONSE, false, false,
		 NULL},
		{"{\"kind\":\"TokenReview\"}", 0, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{"{\"kind\":\"TokenReview\",\"status\":[]}", 0, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{TR("{\"authenticated\":\"true\"}"), 0, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{TR("{\"authenticated\":1}"), 0, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{TR("{\"authenticated\":true,\"audiences\":\"kos\"}"), 2, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{TR("{\"authenticated\":true,\"audiences\":[1]}"), 2, TOKENREVIEW_E_RESPONSE, false, false, NULL},
		{"{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true}", 0, TOKENREVIEW_E_RESPONSE, false, false,
		 NULL},
		{"{\"kind\":\"tokenreview\",\"status\":{\"authenticated\":true}}", 0, TOKENREVIEW_E_RESPONSE, false, false,
		 NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		tokenreview_parsed p;
		size_t n = strlen(t[i].body);
		/* exactly n bytes on the heap: ASan catches any read past len */
		uint8_t *buf = malloc(n ? n : 1);
		int rc;

		memcpy(buf, t[i].body, n);
		memset(&p, 0x5a, sizeof(p));
		rc = tokenreview_parse(buf, n, auds, t[i].nauds, &p);
		free(buf);
		if (rc != t[i].rc)
			fail_msg("case %zu: rc %d want %d", i, rc, t[i].rc);
		if (rc != TOKENREVIEW_OK) {
			assert_int_equal(p.user[0], 0x5a); /* out untouched on failure */
			continue;
		}
		if (p.authenticated != t[i].authenticated || p.audience_ok != t[i].audience_ok)
			fail_msg("case %zu: authenticated %d audience_ok %d", i, p.authenticated, p.audience_ok);
		assert_string_equal(p.user, t[i].user);
	}
	/* a NUL inside the body ends the document: what follows is not read as JSON */
	{
		static const char b[] = TR("{\"authenticated\":true}") "\0garbage";
		tokenreview_parsed p;

		assert_int_equal(tokenreview_parse((const uint8_t *)b, sizeof(b) - 1, NULL, 0, &p), TOKENREVIEW_OK);
		assert_true(p.authenticated);
	}
}

static char *jwt_with_payload(const char *payload)
{
	static char out[1024];
	char enc[700];
	int n = b64url_encode((const uint8_t *)payload, strlen(payload), enc, sizeof(enc));

	assert_true(n > 0);
	snprintf(out, sizeof(out), "eyJhbGciOiJSUzI1NiJ9.%.*s.c2ln", n, enc);
	return out;
}

#define SAR(st) "{\"kind\":\"SubjectAccessReview\",\"apiVersion\":\"authorization.k8s.io/v1\",\"status\":" st "}"

/* SubjectAccessReview answers (--allow-client-impersonation), each with the verdict it must give */
static void test_sar_parse_table(void **state)
{
	static const struct {
		const char *body;
		int rc;
		bool allowed;
		const char *reason;
	} t[] = {
		{SAR("{\"allowed\":true}"), TOKENREVIEW_OK, true, ""},
		{SAR("{\"allowed\":true,\"reason\":\"RBAC: allowed by ClusterRoleBinding \\\"x\\\"\"}"), TOKENREVIEW_OK, true,
		 "RBAC: allowed by ClusterRoleBinding \"x\""},
		{SAR("{\"allowed\":false}"), TOKENREVIEW_OK, false, ""},
		{SAR("{\"allowed\":false,\"reason\":\"no rule\"}"), TOKENREVIEW_OK, false, "no rule"},
		/* denied wins over allowed */
		{SAR("{\"allowed\":true,\"denied\":true}"), TOKENREVIEW_OK, false, ""},
		{SAR("{\"allowed\":false,\"denied\":false,\"evaluationError\":\"x\"}"), TOKENREVIEW_OK, false, ""},
		/* a reason with a control byte is not shown */
		{SAR("{\"allowed\":false,\"reason\":\"a\\nb\"}"), TOKENREVIEW_OK, false, ""},
		/* not a SubjectAccessReview verdict: fail closed (503) */
		{SAR("{}"), TOKENREVIEW_E_RESPONSE, false, NULL},          /* allowed is required */
		{SAR("{\"allowed\":\"true\"}"), TOKENREVIEW_E_RESPONSE, false, NULL},
		{SAR("{\"allowed\":1}"), TOKENREVIEW_E_RESPONSE, false, NULL},
		{SAR("{\"allowed\":true,\"denied\":\"no\"}"), TOKENREVIEW_E_RESPONSE, false, NULL},
		{SAR("{\"allowed\":true,\"reason\":7}"), TOKENREVIEW_E_RESPONSE, false, NULL},
		{SAR("[]"), TOKENREVIEW_E_RESPONSE, false, NULL},
		{"{\"kind\":\"TokenReview\",\"status\":{\"allowed\":true}}", TOKENREVIEW_E_RESPONSE, false, NULL},
		{"{\"kind\":\"Status\",\"status\":\"Failure\",\"code\":403}", TOKENREVIEW_E_RESPONSE, false, NULL},
		{"", TOKENREVIEW_E_RESPONSE, false, NULL},
		{"{\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":true}", TOKENREVIEW_E_RESPONSE, false, NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		tokenreview_sar_parsed p;
		int rc;

		memset(&p, 0x55, sizeof(p));
		rc = tokenreview_sar_parse((const uint8_t *)t[i].body, strlen(t[i].body), &p);
		if (rc != t[i].rc)
			fail_msg("case %zu (%s): rc %d, want %d", i, t[i].body, rc, t[i].rc);
		if (rc != TOKENREVIEW_OK)
			continue;
		if (p.allowed != t[i].allowed)
			fail_msg("case %zu (%s): allowed %d", i, t[i].body, p.allowed);
		assert_string_equal(p.reason, t[i].reason);
	}
}

static void test_token_issuer(void **state)
{
	static const struct {
		const char *payload; /* NULL: tok is used as is */
		const char *tok;
		int rc;
		const char *iss;
	} t[] = {
		{"{\"iss\":\"https://kubernetes.default.svc.cluster.local\",\"sub\":\"x\"}", NULL, 1,
		 "https://kubernetes.default.svc.cluster.local"},
		{"{\"iss\":\"\"}", NULL, 1, ""},
		{"{\"sub\":\"x\"}", NULL, 0, NULL},        /* no iss */
		{"{\"iss\":42}", NULL, 0, NULL},           /* not a string */
		{"[\"iss\"]", NULL, 0, NULL},              /* not an object */
		{"not json", NULL, 0, NULL},
		{NULL, "abcdef.0123456789abcdef", 0, NULL}, /* bootstrap token: two parts */
		{NULL, "opaque-token", 0, NULL},
		{NULL, "a.b.c.d.e", 0, NULL},               /* JWE: five parts */
		{NULL, "a.!!!.c", 0, NULL},                 /* payload not base64url */
		{NULL, "..", 0, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *tok = t[i].payload ? jwt_with_payload(t[i].payload) : t[i].tok;
		char iss[128] = "untouched";
		size_t n = strlen(tok);
		uint8_t *buf = malloc(n);
		int rc;

		memcpy(buf, tok, n);
		rc = tokenreview_token_issuer(buf, n, iss, sizeof(iss));
		free(buf);
		if (rc != t[i].rc)
			fail_msg("case %zu: rc %d want %d", i, rc, t[i].rc);
		if (rc == 1)
			assert_string_equal(iss, t[i].iss);
	}
	/* an iss longer than the buffer is "no iss" (no issuer of ours is that long) */
	{
		char iss[8];
		const char *tok = jwt_with_payload("{\"iss\":\"https://long.example.com\"}");

		assert_int_equal(tokenreview_token_issuer((const uint8_t *)tok, strlen(tok), iss, sizeof(iss)), 0);
	}
}

/* ---- the reviewer's bounds, against a port where nothing listens ---------------------------------------- */

typedef struct answers {
	int n;
	int last;
} answers;

static void on_done(void *ud, int result, const char *user)
{
	answers *a = ud;

	assert_non_null(user);
	a->n++;
	a->last = result;
}

static satoken *sa_fixture(char *path, size_t cap)
{
	satoken *sa;
	FILE *f;

	snprintf(path, cap, "/tmp/kos-test-tokenreview-%d", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("sa-token", f);
	fclose(f);
	assert_int_equal(satoken_create(path, &sa), 0);
	assert_int_equal(satoken_reload(sa, NULL), 0);
	return sa;
}

/* a reviewer is one kind or the other: the wrong entry point is refused, never sent */
static void test_sar_kind(void **state)
{
	char path[128], err[256], out[64];
	satoken *sa = sa_fixture(path, sizeof(path));
	tokenreview_config c;
	tokenreview *rv = NULL;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.url = "https://127.0.0.1:1";
	c.sa = sa;
	c.sar = true;
	assert_int_equal(tokenreview_create(&c, &rv, err, sizeof(err)), 0);
	assert_int_equal(tokenreview_check(rv, (const uint8_t *)"tok", 3, out, sizeof(out), NULL, NULL),
			 TOKENREVIEW_E_RESPONSE);
	tokenreview_destroy(rv);
	c.sar = false;
	assert_int_equal(tokenreview_create(&c, &rv, err, sizeof(err)), 0);
	assert_int_equal(tokenreview_sar_check(rv, "{}", 2, out, sizeof(out), NULL, NULL), TOKENREVIEW_E_RESPONSE);
	tokenreview_destroy(rv);
	satoken_destroy(sa);
	unlink(path);
}

static void test_rate_join_and_shutdown(void **state)
{
	char path[128], err[256], user[64];
	satoken *sa = sa_fixture(path, sizeof(path));
	tokenreview_config c;
	tokenreview *rv;
	tokenreview_stats st;
	answers a = {0, 0};
	int pending = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.url = "https://127.0.0.1:1"; /* nothing listens: each review fails fast or at its deadline */
	c.sa = sa;
	c.rate = 3;
	c.timeout_ms = 5000;
	c.cache_ttl_s = 10;
	assert_int_equal(tokenreview_create(&c, &rv, err, sizeof(err)), 0);
	/* three distinct tokens use the burst; the fourth is over the rate */
	for (int i = 0; i < 3; i++) {
		char tok[16];

		snprintf(tok, sizeof(tok), "tok-%d", i);
		if (tokenreview_check(rv, (const uint8_t *)tok, strlen(tok), user, sizeof(user), on_done, &a) ==
		    TOKENREVIEW_PENDING)
			pending++;
	}
	assert_int_equal(tokenreview_check(rv, (const uint8_t *)"tok-x", 5, user, sizeof(user), on_done, &a),
			 TOKENREVIEW_E_RATE);
	tokenreview_stats_get(rv, &st);
	assert_int_equal(st.rate_limited, 1);
	tokenreview_destroy(rv);
	/* every request that waited got exactly one answer, none of them "authenticated" */
	assert_int_equal(a.n, pending);
	assert_int_not_equal(a.last, TOKENREVIEW_OK);
	satoken_destroy(sa);
	unlink(path);
}

static void test_join_and_busy(void **state)
{
	char path[128], err[256];
	satoken *sa = sa_fixture(path, sizeof(path));
	tokenreview_config c;
	tokenreview *rv;
	tokenreview_stats st;
	answers a = {0, 0};
	int pending = 0, rc;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.url = "https://127.0.0.1:1/";
	c.sa = sa;
	c.rate = 100;
	c.timeout_ms = 5000;
	c.max_waiting = 4;
	assert_int_equal(tokenreview_create(&c, &rv, err, sizeof(err)), 0);
	/* while the first review is under way the same token joins it; the waiting bound holds */
	for (int i = 0; i < 6; i++) {
		rc = tokenreview_check(rv, (const uint8_t *)"same", 4, NULL, 0, on_done, &a);
		if (rc == TOKENREVIEW_PENDING)
			pending++;
		else
			assert_true(rc == TOKENREVIEW_E_BUSY || rc == TOKENREVIEW_E_UNAVAILABLE);
	}
	tokenreview_stats_get(rv, &st);
	assert_true(pending <= 4);
	assert_true(st.joined + 1 >= (uint64_t)pending || st.reviews > 0);
	tokenreview_stop(rv);
	assert_int_equal(tokenreview_check(rv, (const uint8_t *)"late", 4, NULL, 0, on_done, &a),
			 TOKENREVIEW_E_SHUTDOWN);
	tokenreview_destroy(rv);
	assert_int_equal(a.n, pending);
	satoken_destroy(sa);
	unlink(path);
}

static void test_create_refuses(void **state)
{
	char err[256] = "";
	tokenreview_config c;
	tokenreview *rv = NULL;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.url = "http://127.0.0.1:1";
	assert_int_equal(tokenreview_create(&c, &rv, err, sizeof(err)), -1); /* no SA, not https */
	assert_non_null(strstr(err, "https"));
	assert_null(rv);
	assert_string_equal(tokenreview_strerror(TOKENREVIEW_E_RATE), "rate limit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_token_issuer),
		cmocka_unit_test(test_sar_parse_table),
		cmocka_unit_test(test_sar_kind),
		cmocka_unit_test(test_rate_join_and_shutdown),
		cmocka_unit_test(test_join_and_busy),
		cmocka_unit_test(test_create_refuses),
	};

	log_init(2, LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
