/*
 * test_issuers.c — issuers.c through its public API: which authenticator a token's unverified "iss" picks, what
 * a token of no configured issuer gets, several issuers side by side, and SIGHUP reload (a bad file keeps the old
 * set serving; a good one replaces it).
 *
 * The refresh listener is not tested here: every provider calls it after each (failed) discovery attempt, so
 * how often it runs depends on the providers' timing.
 *
 * No network: every authenticator's discoveryURL is a closed port on 127.0.0.1, so each provider thread only
 * ever gets "connection refused" and no key set is loaded. That is enough to see the choice: a token whose iss
 * names an authenticator goes to that authenticator, which answers VERIFY_E_NOT_READY (its JWKS is not loaded)
 * and, through issuers_explain(), traces "issuer: jwt[<i>] <url>"; a token whose iss names none is
 * VERIFY_E_ISSUER "unknown issuer" before any authenticator is asked. Full verification with keys is
 * tests/integration/test_authconfig.py's job (real issuers over HTTPS).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b64url.h"
#include "issuers.h"

#define NOW 1700000000

/* One jwt[] entry: issuer url, a discovery URL on a closed loopback port, one audience, a username mapping. */
#define AUTHN(url, port)                                                                                           \
	"- issuer:\n"                                                                                              \
	"    url: " url "\n"                                                                                       \
	"    discoveryURL: https://127.0.0.1:" port "/.well-known/openid-configuration\n"                          \
	"    audiences: [kubernetes]\n"                                                                            \
	"  claimMappings:\n"                                                                                       \
	"    username:\n"                                                                                          \
	"      expression: claims.sub\n"

#define HEAD "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n"

static const char two_issuers[] = HEAD AUTHN("https://a.example", "1") AUTHN("https://b.example", "2");
static const char a_and_c[] = HEAD AUTHN("https://a.example", "1") AUTHN("https://c.example/tenant", "3");
static const char three_issuers[] =
	HEAD AUTHN("https://a.example", "1") AUTHN("https://b.example", "2") AUTHN("https://c.example/tenant", "3");
/* Valid YAML, refused by validation: the same issuer url twice. */
static const char duplicate_url[] = HEAD AUTHN("https://a.example", "1") AUTHN("https://a.example", "2");
/* Valid configuration shape, refused when its expression is compiled. */
static const char bad_cel[] = HEAD "- issuer:\n"
				   "    url: https://d.example\n"
				   "    discoveryURL: https://127.0.0.1:4/.well-known/openid-configuration\n"
				   "    audiences: [kubernetes]\n"
				   "  claimMappings:\n"
				   "    username:\n"
				   "      expression: 'claims.sub +'\n";

typedef struct fixture {
	char path[64];
	issuers *is;
} fixture;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void tmpl_init(verifier_config *vc)
{
	memset(vc, 0, sizeof(*vc));
	/* the providers only ever meet a closed port: keep their retries slow and their transfers short */
	vc->oidc.http_timeout_ms = 1000;
	vc->oidc.retry_min_ms = 5000;
	vc->oidc.retry_max_ms = 60000;
	vc->cache_entries = 512;
}

static int setup_with(void **state, const char *doc)
{
	fixture *f = calloc(1, sizeof(*f));
	verifier_config vc;
	char err[512] = "";
	int fd;

	assert_non_null(f);
	strcpy(f->path, "/tmp/kos-test-issuers-XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd);
	write_file(f->path, doc);
	tmpl_init(&vc);
	if (issuers_create(f->path, &vc, &f->is, err, sizeof(err)) != 0)
		fail_msg("issuers_create: %s", err);
	*state = f;
	return 0;
}

static int setup_two(void **state)
{
	return setup_with(state, two_issuers);
}

static int teardown(void **state)
{
	fixture *f = *state;

	issuers_destroy(f->is);
	unlink(f->path);
	free(f);
	return 0;
}

/* header.payload.signature with the given payload JSON (the signature is never checked: no keys). */
static size_t make_token(char *out, size_t cap, const char *payload)
{
	static const char header[] = "{\"alg\":\"RS256\",\"kid\":\"k1\"}";
	int n = b64url_encode((const uint8_t *)header, strlen(header), out, cap);
	int m;

	assert_true(n > 0 && (size_t)n + 2 < cap);
	out[n++] = '.';
	m = b64url_encode((const uint8_t *)payload, strlen(payload), out + n, cap - (size_t)n);
	assert_true(m > 0);
	n += m;
	assert_true((size_t)n + 6 < cap);
	memcpy(out + n, ".c2ln", 6);
	return (size_t)n + 5;
}

static int verify_payload(issuers *is, const char *payload, const char **detail)
{
	char tok[1024];
	size_t len = make_token(tok, sizeof(tok), payload);
	const identity *id = NULL;
	int rc;

	*detail = NULL;
	rc = issuers_verify(is, (const uint8_t *)tok, len, NOW, &id, detail);
	assert_null(id);
	return rc;
}

/* issuers_explain()'s trace, collected into one string of lines. */
typedef struct trace_buf {
	char text[2048];
	size_t len;
} trace_buf;

static void trace_line(void *ud, const char *line)
{
	trace_buf *t = ud;
	int n = snprintf(t->text + t->len, sizeof(t->text) - t->len, "%s\n", line);

	if (n > 0 && (size_t)n < sizeof(t->text) - t->len)
		t->len += (size_t)n;
}

static int explain_payload(issuers *is, const char *payload, trace_buf *t)
{
	char tok[1024];
	size_t len = make_token(tok, sizeof(tok), payload);
	mapping_trace tr = { trace_line, t };
	const identity *id = NULL;
	const char *detail = NULL;
	int rc;

	memset(t, 0, sizeof(*t));
	rc = issuers_explain(is, (const uint8_t *)tok, len, NOW, &tr, &id, &detail);
	assert_null(id);
	assert_non_null(detail);
	return rc;
}

/* ---- picking the authenticator ------------------------------------------------------------------------- */

static void test_iss_picks_its_authenticator(void **state)
{
	fixture *f = *state;
	const char *detail;
	trace_buf t;

	assert_int_equal(issuers_count(f->is), 2);
	/* each iss reaches its own authenticator, which has no keys yet */
	assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://a.example\",\"sub\":\"u\"}", &detail),
			 VERIFY_E_NOT_READY);
	assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://b.example\",\"sub\":\"u\"}", &detail),
			 VERIFY_E_NOT_READY);

	assert_int_equal(explain_payload(f->is, "{\"iss\":\"https://a.example\"}", &t), VERIFY_E_NOT_READY);
	assert_non_null(strstr(t.text, "issuer: jwt[0] https://a.example\n"));
	assert_null(strstr(t.text, "jwt[1]"));
	assert_int_equal(explain_payload(f->is, "{\"sub\":\"u\",\"iss\":\"https://b.example\"}", &t),
			 VERIFY_E_NOT_READY);
	assert_non_null(strstr(t.text, "issuer: jwt[1] https://b.example\n"));
	assert_null(strstr(t.text, "jwt[0]"));
}

static void test_unknown_issuer(void **state)
{
	fixture *f = *state;
	static const char *const unknown[] = {
		"{\"iss\":\"https://c.example\"}",
		"{\"iss\":\"https://a.example/\"}",  /* byte for byte: a trailing slash is another issuer */
		"{\"iss\":\"https://A.example\"}",   /* no case folding */
		"{\"iss\":\"https://a.example \"}",
		"{\"iss\":\"\"}",
	};
	const char *detail;
	trace_buf t;

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		assert_int_equal(verify_payload(f->is, unknown[i], &detail), VERIFY_E_ISSUER);
		assert_string_equal(detail, "unknown issuer");
	}
	/* no iss, or one that is not a string: still refused as no issuer of ours, with its own detail */
	assert_int_equal(verify_payload(f->is, "{\"sub\":\"u\"}", &detail), VERIFY_E_ISSUER);
	assert_string_equal(detail, "unknown issuer (no iss claim)");
	assert_int_equal(verify_payload(f->is, "{\"iss\":7}", &detail), VERIFY_E_ISSUER);
	assert_string_equal(detail, "unknown issuer (no iss claim)");
	assert_int_equal(verify_payload(f->is, "{\"iss\":[\"https://a.example\"]}", &detail), VERIFY_E_ISSUER);

	assert_int_equal(explain_payload(f->is, "{\"iss\":\"https://c.example\"}", &t), VERIFY_E_ISSUER);
	assert_non_null(strstr(t.text, "iss \"https://c.example\" is none of the 2 configured issuers"));
}

static void test_not_a_token(void **state)
{
	fixture *f = *state;
	static const char *const bad[] = {
		"no-dots-at-all",
		"one.dot",
		"eyJhbGciOiJSUzI1NiJ9.!!!.c2ln",     /* payload not base64url */
		"eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", /* payload "not json" */
	};
	const identity *id = NULL;
	const char *detail = NULL;
	uint8_t big[20000];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		detail = NULL;
		assert_int_equal(issuers_verify(f->is, (const uint8_t *)bad[i], strlen(bad[i]), NOW, &id, &detail),
				 VERIFY_E_MALFORMED);
		assert_non_null(detail);
	}
	assert_int_equal(issuers_verify(f->is, (const uint8_t *)"", 0, NOW, &id, &detail), VERIFY_E_MALFORMED);
	/* past max_token_bytes (default 16384): refused before anything is read */
	memset(big, 'a', sizeof(big));
	assert_int_equal(issuers_verify(f->is, big, sizeof(big), NOW, &id, &detail), VERIFY_E_TOO_LARGE);
	assert_null(id);
}

static void test_several_issuers_ready_and_described(void **state)
{
	fixture *f = *state;
	char buf[1024];
	char *m = NULL;
	size_t mlen = 0;

	/* no provider can reach its discovery URL: nobody is ready, and /ready says who and why */
	assert_false(issuers_ready(f->is));
	assert_true(issuers_describe(f->is, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "https://a.example: not ready"));
	assert_non_null(strstr(buf, "https://b.example: not ready"));
	assert_int_equal(issuers_metrics(f->is, &m, &mlen), 0);
	assert_non_null(m);
	assert_non_null(strstr(m, "kos_issuers 2\n"));
	assert_non_null(strstr(m, "kos_issuer_ready{issuer=\"https://a.example\"} 0\n"));
	assert_non_null(strstr(m, "kos_issuer_ready{issuer=\"https://b.example\"} 0\n"));
	free(m);
}

/* ---- reload ------------------------------------------------------------------------------------------- */

static void assert_reloads(issuers *is, unsigned ok, unsigned invalid)
{
	char *m = NULL, want[128];
	size_t mlen = 0;

	assert_int_equal(issuers_metrics(is, &m, &mlen), 0);
	snprintf(want, sizeof(want), "kos_authentication_config_reloads_total{result=\"ok\"} %u\n", ok);
	assert_non_null(strstr(m, want));
	snprintf(want, sizeof(want), "kos_authentication_config_reloads_total{result=\"invalid\"} %u\n", invalid);
	assert_non_null(strstr(m, want));
	free(m);
}

static void test_reload_keeps_old_set_on_error(void **state)
{
	fixture *f = *state;
	const char *detail;
	char err[512];

	static const char *const invalid[] = {
		"jwt: [",                           /* not YAML */
		"kind: AuthenticationConfiguration\n", /* no apiVersion */
		duplicate_url,                      /* refused by validation */
		bad_cel,                            /* refused when compiled */
	};
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		write_file(f->path, invalid[i]);
		err[0] = 0;
		assert_int_equal(issuers_reload(f->is, err, sizeof(err)), -1);
		assert_non_null(strstr(err, f->path)); /* the message names the file */
		/* the old set still serves, unchanged */
		assert_int_equal(issuers_count(f->is), 2);
		assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://b.example\"}", &detail), VERIFY_E_NOT_READY);
		assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://d.example\"}", &detail), VERIFY_E_ISSUER);
	}
	assert_reloads(f->is, 0, 4);

	/* a valid file replaces the set: b is gone, c is new, a stays */
	write_file(f->path, a_and_c);
	err[0] = 0;
	assert_int_equal(issuers_reload(f->is, err, sizeof(err)), 0);
	/* valid: pending until issuers_tick() swaps it in — at once here, since no issuer of the old set has keys */
	assert_true(issuers_pending(f->is));
	assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://b.example\"}", &detail), VERIFY_E_NOT_READY);
	assert_int_equal(issuers_tick(f->is, NULL), 1);
	assert_false(issuers_pending(f->is));
	assert_int_equal(issuers_count(f->is), 2);
	assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://a.example\"}", &detail), VERIFY_E_NOT_READY);
	assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://b.example\"}", &detail), VERIFY_E_ISSUER);
	assert_string_equal(detail, "unknown issuer");
	assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://c.example/tenant\"}", &detail),
			 VERIFY_E_NOT_READY);
	issuers_reap(f->is); /* no request holds the old set: freed here (ASan would report it otherwise) */

	/* three at once, after another failed attempt in between */
	write_file(f->path, "jwt: [");
	assert_int_equal(issuers_reload(f->is, err, sizeof(err)), -1);
	assert_int_equal(issuers_count(f->is), 2);
	write_file(f->path, three_issuers);
	assert_int_equal(issuers_reload(f->is, err, sizeof(err)), 0);
	assert_int_equal(issuers_tick(f->is, NULL), 1);
	assert_int_equal(issuers_count(f->is), 3);
	assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://b.example\"}", &detail), VERIFY_E_NOT_READY);
	assert_int_equal(verify_payload(f->is, "{\"iss\":\"https://c.example/tenant\"}", &detail),
			 VERIFY_E_NOT_READY);
	assert_reloads(f->is, 2, 5);
}

static void test_create_refuses_bad_file(void **state)
{
	char path[] = "/tmp/kos-test-issuers-XXXXXX";
	issuers *is = (issuers *)state; /* a sentinel: must stay untouched on failure */
	verifier_config vc;
	char err[512];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	tmpl_init(&vc);
	write_file(path, duplicate_url);
	err[0] = 0;
	assert_int_equal(issuers_create(path, &vc, &is, err, sizeof(err)), -1);
	assert_ptr_equal(is, (issuers *)state);
	assert_non_null(strstr(err, "Duplicate value"));
	unlink(path);
	err[0] = 0;
	assert_int_equal(issuers_create(path, &vc, &is, err, sizeof(err)), -1); /* no such file */
	assert_true(err[0] != 0);
	assert_ptr_equal(is, (issuers *)state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_iss_picks_its_authenticator, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_issuer, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_token, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_several_issuers_ready_and_described, setup_two, teardown),
		cmocka_unit_test_setup_teardown(test_reload_keeps_old_set_on_error, setup_two, teardown),
		cmocka_unit_test(test_create_refuses_bad_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
