/*
 * test_oidc.c — oidc.c: the discovery and Cache-Control parsers (tables), then the provider end to end against
 * the real HTTPS test issuer (tests/tools/issuer.py, spawned on a kernel-picked port with its own CA).
 *
 * The provider runs with short intervals (retry 50…400 ms, on-demand window 1 s, min refresh 1 s) so that the
 * suite takes seconds. Waits are bounded polls for an event ("until ready, at most 20 s"), never assertions on
 * how long something took.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "jwks.h"
#include "jwt.h"
#include "oidc.h"

extern char **environ;

/* ---- discovery parser table ---------------------------------------------------------------------------------- */

#define ISS "https://issuer.example:8443/realms/k"

struct disc_case {
	const char *name;
	const char *doc;
	int want;              /* 0 or the oidc_err it must give */
	const char *want_uri;  /* on success */
	const char *want_text; /* a piece of the reason on failure */
};

static const struct disc_case disc_cases[] = {
	{"minimal", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://issuer.example:8443/k/keys\"}", 0,
	 "https://issuer.example:8443/k/keys", NULL},
	{"extra fields ignored",
	 "{\"authorization_endpoint\":\"x\",\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://h/keys\",\"n\":[1,{}]}", 0,
	 "https://h/keys", NULL},
	{"not json", "<html>", OIDC_E_JSON, NULL, "not a JSON object"},
	{"empty", "", OIDC_E_JSON, NULL, "not a JSON object"},
	{"array", "[]", OIDC_E_JSON, NULL, "not a JSON object"},
	{"trailing garbage", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://h/k\"} x", OIDC_E_JSON, NULL,
	 "trailing data"},
	{"two documents", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://h/k\"}{}", OIDC_E_JSON, NULL, "trailing"},
	{"trailing whitespace", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://h/k\"}\r\n ", 0, "https://h/k", NULL},
	{"no issuer", "{\"jwks_uri\":\"https://h/keys\"}", OIDC_E_ISSUER, NULL, "no \"issuer\""},
	{"issuer number", "{\"issuer\":1,\"jwks_uri\":\"https://h/keys\"}", OIDC_E_ISSUER, NULL, "no \"issuer\""},
	{"issuer trailing slash", "{\"issuer\":\"" ISS "/\",\"jwks_uri\":\"https://h/keys\"}", OIDC_E_ISSUER, NULL,
	 "not the configured"},
	{"issuer other case", "{\"issuer\":\"https://ISSUER.example:8443/realms/k\",\"jwks_uri\":\"https://h/k\"}",
	 OIDC_E_ISSUER, NULL, "not the configured"},
	{"issuer prefix only", "{\"issuer\":\"https://issuer.example:8443/realms\",\"jwks_uri\":\"https://h/k\"}",
	 OIDC_E_ISSUER, NULL, "not the configured"},
	{"issuer cut by NUL escape", "{\"issuer\":\"" ISS "\\u0000evil\",\"jwks_uri\":\"https://h/k\"}", OIDC_E_JSON,
	 NULL, "\\u0000"},
	{"issuer twice (same)", "{\"issuer\":\"" ISS "\",\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://h/k\"}",
	 OIDC_E_ISSUER, NULL, "twice"},
	{"issuer twice (other)", "{\"issuer\":\"https://evil\",\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://h/k\"}",
	 OIDC_E_ISSUER, NULL, "twice"},
	{"issuer with control chars shown safely", "{\"issuer\":\"https://x\\r\\nforged\",\"jwks_uri\":\"https://h\"}",
	 OIDC_E_ISSUER, NULL, "https://x??forged"},
	{"no jwks_uri", "{\"issuer\":\"" ISS "\"}", OIDC_E_JWKS_URI, NULL, "no \"jwks_uri\""},
	{"jwks_uri null", "{\"issuer\":\"" ISS "\",\"jwks_uri\":null}", OIDC_E_JWKS_URI, NULL, "no \"jwks_uri\""},
	{"jwks_uri http", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"http://h/keys\"}", OIDC_E_JWKS_URI, NULL,
	 "not an https URL"},
	{"jwks_uri HTTPS upper", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"HTTPS://h/keys\"}", OIDC_E_JWKS_URI, NULL,
	 NULL},
	{"jwks_uri file", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"file:///etc/passwd\"}", OIDC_E_JWKS_URI, NULL, NULL},
	{"jwks_uri no host", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"https:///keys\"}", OIDC_E_JWKS_URI, NULL, NULL},
	{"jwks_uri with space", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://h/a b\"}", OIDC_E_JWKS_URI, NULL,
	 NULL},
	{"jwks_uri twice", "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"https://a/k\",\"jwks_uri\":\"https://b/k\"}",
	 OIDC_E_JWKS_URI, NULL, "twice"},
};

static void test_discovery_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof disc_cases / sizeof disc_cases[0]; i++) {
		const struct disc_case *c = &disc_cases[i];
		char *uri = (char *)0x1; /* must stay untouched on failure */
		char err[256] = "";
		size_t len = strlen(c->doc);
		/* Exact-size heap copy: ASan catches any read past len. */
		uint8_t *buf = malloc(len ? len : 1);
		memcpy(buf, c->doc, len);
		int rc = oidc_discovery_parse(buf, len, ISS, &uri, err, sizeof err);
		free(buf);
		if (rc != c->want)
			fail_msg("case \"%s\": got %d (%s), want %d", c->name, rc, err, c->want);
		if (c->want == 0) {
			assert_string_equal(uri, c->want_uri);
			free(uri);
		} else {
			if (uri != (char *)0x1)
				fail_msg("case \"%s\": out-param written on failure", c->name);
			if (err[0] == '\0')
				fail_msg("case \"%s\": no reason", c->name);
			if (c->want_text != NULL && strstr(err, c->want_text) == NULL)
				fail_msg("case \"%s\": reason \"%s\" lacks \"%s\"", c->name, err, c->want_text);
		}
	}
}

static void test_discovery_size_cap(void **state)
{
	(void)state;
	size_t n = OIDC_DISCOVERY_MAX_BYTES + 1;
	uint8_t *big = malloc(n);
	memset(big, ' ', n);
	char *uri = NULL;
	char err[128];
	assert_int_equal(oidc_discovery_parse(big, n, ISS, &uri, err, sizeof err), OIDC_E_JSON);
	assert_non_null(strstr(err, "larger than"));
	assert_null(uri);
	free(big);
	assert_string_equal(oidc_strerror(OIDC_E_ISSUER), "discovery issuer mismatch");
}

struct age_case {
	const char *hdr;
	int want;
	uint32_t age;
};

static const struct age_case age_cases[] = {
	{"max-age=300", 1, 300},
	{" public, max-age=60", 1, 60},
	{"MAX-AGE=5, must-revalidate", 1, 5},
	{"max-age=\"7\"", 1, 7},
	{"max-age=0", 1, 0},
	{"max-age=99999999999999999999", 1, 0x7fffffffu},
	{"public", 0, 0},
	{"", 0, 0},
	{"max-age=", 0, 0},
	{"max-age=12x", 0, 0},
	{"max-age=-1", 0, 0},
	{"s-maxage=10", 0, 0},
	{"no-store", -1, 0},
	{"max-age=300, No-Cache", -1, 0},
	{"x-max-age=10", 0, 0},
};

static void test_max_age_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof age_cases / sizeof age_cases[0]; i++) {
		const struct age_case *c = &age_cases[i];
		uint32_t v = 4242;
		size_t len = strlen(c->hdr);
		uint8_t *buf = malloc(len ? len : 1);
		memcpy(buf, c->hdr, len);
		int rc = oidc_max_age_parse(buf, len, &v);
		free(buf);
		if (rc != c->want)
			fail_msg("\"%s\": got %d want %d", c->hdr, rc, c->want);
		if (rc == 1 && v != c->age)
			fail_msg("\"%s\": age %u want %u", c->hdr, v, c->age);
		if (rc != 1 && v != 4242)
			fail_msg("\"%s\": out-param written", c->hdr);
	}
}

/* ---- config refusals ----------------------------------------------------------------------------------------- */

static void test_start_refuses(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		const char *ca;
		unsigned minr, maxr;
	} bad[] = {
		{NULL, NULL, 0, 0},
		{"http://127.0.0.1:1", NULL, 0, 0},
		{"HTTP://127.0.0.1:1", NULL, 0, 0},
		{"https://", NULL, 0, 0},
		{"https:///path", NULL, 0, 0},
		{"https://a b", NULL, 0, 0},
		{"ftp://x", NULL, 0, 0},
		{"https://127.0.0.1:1", "/nonexistent/ca.pem", 0, 0},
		{"https://127.0.0.1:1", NULL, 100, 10},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		oidc_config cfg = {.issuer_url = bad[i].url, .ca_file = bad[i].ca, .min_refresh_s = bad[i].minr,
				   .max_refresh_s = bad[i].maxr};
		oidc_provider *p = (oidc_provider *)0x1;
		char err[200] = "";
		int rc = oidc_provider_start(&cfg, &p, err, sizeof err);
		if (rc != OIDC_E_CONFIG)
			fail_msg("case %zu (%s): got %d", i, bad[i].url ? bad[i].url : "NULL", rc);
		assert_ptr_equal(p, (oidc_provider *)0x1);
		assert_true(err[0] != '\0');
	}
	/* NULL provider: every call is a no-op, never a crash. */
	assert_null(oidc_provider_keys(NULL));
	oidc_provider_request_refresh(NULL);
	oidc_provider_stop(NULL);
}

/* ---- the test issuer ------------------------------------------------------------------------------------------ */

struct issuer {
	pid_t pid;
	int stdin_w;
	int port;
	char url[128];
	char ca[512];
	char dir[128];
};

static struct issuer g_iss;

/* Captured provider log, one line per event. */
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_log[65536];
static size_t g_log_len;

static void cap_log(void *ud, int level, const char *event, const char *msg)
{
	(void)ud;
	pthread_mutex_lock(&g_log_mu);
	int w = snprintf(g_log + g_log_len, sizeof g_log - g_log_len, "%d %s %s\n", level, event, msg);
	if (w > 0 && (size_t)w < sizeof g_log - g_log_len)
		g_log_len += (size_t)w;
	pthread_mutex_unlock(&g_log_mu);
	if (getenv("KOS_TEST_VERBOSE"))
		fprintf(stderr, "log: %d %s %s\n", level, event, msg);
}

static void log_clear(void)
{
	pthread_mutex_lock(&g_log_mu);
	g_log_len = 0;
	g_log[0] = '\0';
	pthread_mutex_unlock(&g_log_mu);
}

static bool log_has(const char *needle)
{
	pthread_mutex_lock(&g_log_mu);
	bool r = strstr(g_log, needle) != NULL;
	pthread_mutex_unlock(&g_log_mu);
	return r;
}

static const char *issuer_script(void)
{
	const char *s = getenv("KOS_ISSUER_PY");
	return s ? s : "tests/tools/issuer.py";
}

static int issuer_spawn(struct issuer *is)
{
	int out[2], in[2];
	snprintf(is->dir, sizeof is->dir, "/tmp/kos-test-oidc-XXXXXX");
	if (mkdtemp(is->dir) == NULL || pipe(out) != 0 || pipe(in) != 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	char *argv[] = {"/usr/bin/python3", (char *)issuer_script(), "--state-dir", is->dir, "--port", "0",
			"--max-age", "300", "--exit-on-stdin-eof", NULL};
	int rc = posix_spawn(&is->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	fcntl(in[1], F_SETFD, FD_CLOEXEC);
	is->stdin_w = in[1];
	if (rc != 0) {
		close(out[0]);
		return -1;
	}
	/* The ready line, within 60 s (key generation on a busy machine). */
	char line[1024];
	size_t n = 0;
	while (n < sizeof line - 1) {
		struct pollfd pfd = {.fd = out[0], .events = POLLIN};
		if (poll(&pfd, 1, 60000) <= 0)
			break;
		ssize_t r = read(out[0], line + n, 1);
		if (r <= 0 || line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	close(out[0]);
	cJSON *j = cJSON_Parse(line);
	const cJSON *port = cJSON_GetObjectItemCaseSensitive(j, "port");
	const cJSON *iss = cJSON_GetObjectItemCaseSensitive(j, "issuer");
	const cJSON *ca = cJSON_GetObjectItemCaseSensitive(j, "ca");
	rc = -1;
	if (cJSON_IsNumber(port) && cJSON_IsString(iss) && cJSON_IsString(ca)) {
		is->port = port->valueint;
		snprintf(is->url, sizeof is->url, "%s", iss->valuestring);
		snprintf(is->ca, sizeof is->ca, "%s", ca->valuestring);
		rc = 0;
	}
	cJSON_Delete(j);
	return rc;
}

static void issuer_kill(struct issuer *is)
{
	if (is->pid > 0) {
		kill(is->pid, SIGTERM);
		int st;
		for (int i = 0; i < 200; i++) { /* at most 10 s, then SIGKILL */
			if (waitpid(is->pid, &st, WNOHANG) == is->pid) {
				is->pid = 0;
				break;
			}
			usleep(50000);
		}
		if (is->pid > 0) {
			kill(is->pid, SIGKILL);
			waitpid(is->pid, &st, 0);
			is->pid = 0;
		}
	}
	if (is->stdin_w > 0)
		close(is->stdin_w);
	is->stdin_w = 0;
	if (is->dir[0]) {
		char cmd[200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", is->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", is->dir);
	}
}

struct membuf {
	char b[16384];
	size_t n;
};

static size_t mem_write(char *d, size_t s, size_t nm, void *ud)
{
	struct membuf *m = ud;
	size_t n = s * nm;
	if (n > sizeof m->b - 1 - m->n)
		n = sizeof m->b - 1 - m->n;
	memcpy(m->b + m->n, d, n);
	m->n += n;
	m->b[m->n] = '\0';
	return s * nm;
}

/* POST (body != NULL) or GET to the issuer's control API; returns the parsed JSON answer (caller frees). */
static cJSON *ctl(const char *path, const char *body)
{
	char url[256];
	struct membuf m = {.n = 0};
	snprintf(url, sizeof url, "%s%s", g_iss.url, path);
	CURL *c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, g_iss.ca);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	CURLcode cc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (cc != CURLE_OK || code != 200)
		fail_msg("control %s: curl %d, HTTP %ld: %s", path, cc, code, m.b);
	cJSON *j = cJSON_Parse(m.b);
	assert_non_null(j);
	return j;
}

static void ctl_mode(const char *json)
{
	cJSON_Delete(ctl("/_test/mode", json));
}

static int stat_count(const char *path)
{
	cJSON *j = ctl("/_test/stats", NULL);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "requests"), path);
	int n = cJSON_IsNumber(v) ? v->valueint : 0;
	cJSON_Delete(j);
	return n;
}

static double stat_num(const char *field)
{
	cJSON *j = ctl("/_test/stats", NULL);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, field);
	double n = cJSON_IsNumber(v) ? v->valuedouble : -1;
	cJSON_Delete(j);
	return n;
}

static oidc_provider *start(unsigned min_refresh, unsigned max_refresh, unsigned timeout_ms)
{
	oidc_config cfg = {
		.issuer_url = g_iss.url,
		.ca_file = g_iss.ca,
		.min_refresh_s = min_refresh,
		.max_refresh_s = max_refresh,
		.unknown_kid_interval_s = 1,
		.http_timeout_ms = timeout_ms,
		.retry_min_ms = 50,
		.retry_max_ms = 400,
		.log = cap_log,
	};
	oidc_provider *p = NULL;
	char err[200];
	int rc = oidc_provider_start(&cfg, &p, err, sizeof err);
	if (rc != 0)
		fail_msg("start: %s", err);
	return p;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum what { W_READY, W_FAILURES, W_REFRESHES };

/* Polls the status until the counter reaches at least target; bounded (20 s). */
static oidc_status wait_for(oidc_provider *p, enum what w, uint64_t target)
{
	oidc_status st;
	for (int i = 0; i < 1000; i++) {
		oidc_provider_status(p, &st);
		uint64_t v = w == W_READY ? (uint64_t)st.ready : w == W_FAILURES ? st.failures : st.refreshes;
		if (v >= target)
			return st;
		usleep(20000);
	}
	fail_msg("waited 20 s for %s >= %llu (ready=%d refreshes=%llu failures=%llu last_error=%s)",
		 w == W_READY ? "ready" : w == W_FAILURES ? "failures" : "refreshes", (unsigned long long)target,
		 st.ready, (unsigned long long)st.refreshes, (unsigned long long)st.failures, st.last_error);
	return st;
}

static int group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (issuer_spawn(&g_iss) != 0) {
		fprintf(stderr, "cannot start the test issuer (%s)\n", issuer_script());
		issuer_kill(&g_iss);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	issuer_kill(&g_iss);
	curl_global_cleanup();
	return 0;
}

/* Each issuer test starts from a healthy issuer with zeroed counters and an empty log. */
static int each_setup(void **state)
{
	(void)state;
	ctl_mode("{\"mode\":\"ok\",\"delay_ms\":0,\"max_age\":300}");
	cJSON_Delete(ctl("/_test/stats/reset", ""));
	log_clear();
	return 0;
}

static size_t count_of(oidc_provider *p)
{
	jwks_keyset *ks = oidc_provider_keys(p);
	size_t n = ks ? jwks_keyset_count(ks) : 0;
	jwks_keyset_release(ks);
	return n;
}

/* ---- provider tests -------------------------------------------------------------------------------------------- */

static void test_discovery_ok(void **state)
{
	(void)state;
	oidc_provider *p = start(1, 0, 0);
	oidc_status st = wait_for(p, W_READY, 1);
	assert_true(st.ready);
	assert_int_equal(st.nkeys, 7); /* RS256, PS256, RSA (no alg), ES256/384/512, EdDSA */
	assert_int_equal(count_of(p), 7);
	assert_int_equal(st.failures, 0);
	assert_string_equal(st.last_error, "");
	assert_true(st.last_success > 0);
	assert_int_equal(stat_count("/.well-known/openid-configuration"), 1);
	assert_int_equal(stat_count("/keys"), 1);
	assert_true(log_has("discovery ok: issuer="));
	assert_true(log_has("keys loaded: count=7 kids=rs256-"));
	assert_true(log_has("next_refresh_s=300 (max-age)"));
	oidc_provider_stop(p);
}

static void test_wrong_issuer_refused(void **state)
{
	(void)state;
	ctl_mode("{\"mode\":\"wrong-issuer\"}");
	oidc_provider *p = start(1, 0, 0);
	oidc_status st = wait_for(p, W_FAILURES, 3);
	assert_false(st.ready);
	assert_null(oidc_provider_keys(p));
	assert_non_null(strstr(st.last_error, "is not the configured issuer URL"));
	assert_int_equal(stat_count("/keys"), 0); /* never followed a document it refused */
	assert_true(log_has("discovery failed"));
	/* Fixed at the issuer: the retries pick it up without a restart. */
	ctl_mode("{\"mode\":\"ok\"}");
	st = wait_for(p, W_READY, 1);
	assert_int_equal(st.nkeys, 7);
	oidc_provider_stop(p);
}

static void test_issuer_down_at_start(void **state)
{
	(void)state;
	ctl_mode("{\"mode\":\"down\"}");
	oidc_provider *p = start(1, 0, 0);
	oidc_status st = wait_for(p, W_FAILURES, 3);
	assert_false(st.ready);
	assert_null(oidc_provider_keys(p));
	assert_non_null(strstr(st.last_error, "discovery failed"));
	assert_true(stat_count("/.well-known/openid-configuration") >= 3); /* it retried */
	ctl_mode("{\"mode\":\"ok\"}");
	st = wait_for(p, W_READY, 1);
	assert_int_equal(st.nkeys, 7);
	assert_string_equal(st.last_error, "");
	oidc_provider_stop(p);
}

static void test_status500_at_start(void **state)
{
	(void)state;
	ctl_mode("{\"mode\":\"status500\"}");
	oidc_provider *p = start(1, 0, 0);
	oidc_status st = wait_for(p, W_FAILURES, 2);
	assert_false(st.ready);
	assert_non_null(strstr(st.last_error, "HTTP status 500"));
	ctl_mode("{\"mode\":\"ok\"}");
	wait_for(p, W_READY, 1);
	oidc_provider_stop(p);
}

static bool has_kid(oidc_provider *p, const char *kid, int alg)
{
	jwks_keyset *ks = oidc_provider_keys(p);
	const jwks_key *k = NULL;
	bool r = ks != NULL && jwks_find(ks, kid, strlen(kid), alg, &k) == 0;
	jwks_keyset_release(ks);
	return r;
}

static void test_rotation_on_demand_rate_limited(void **state)
{
	(void)state;
	oidc_provider *p = start(1, 0, 0);
	wait_for(p, W_READY, 1);
	cJSON *r = ctl("/_test/rotate", "{\"keep_old\":false}");
	const char *newkid = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "kids"), 0)->valuestring;
	assert_non_null(strstr(newkid, "rs256-"));
	assert_false(has_kid(p, newkid, JWA_RS256));
	cJSON_Delete(ctl("/_test/stats/reset", ""));

	/* A flood of unknown-kid requests for 2.5 s: with a 1 s window, at most one download per window started
	 * plus the one the first request may start at once. */
	double t0 = now_s(), t;
	unsigned calls = 0;
	while ((t = now_s()) - t0 < 2.5 && calls < 100000) {
		for (int i = 0; i < 20; i++, calls++)
			oidc_provider_request_refresh(p);
		usleep(1000);
	}
	double elapsed = now_s() - t0;
	/* Let the download a late request scheduled run, then count. */
	oidc_status st = wait_for(p, W_REFRESHES, 2);
	usleep(1200000);
	int fetched = stat_count("/keys");
	int bound = (int)elapsed + 2; /* one per started 1 s window, plus the deferred one at the end */
	print_message("flood: %u calls in %.2f s -> %d JWKS downloads (bound %d)\n", calls, elapsed, fetched, bound);
	assert_true(fetched >= 1);
	assert_true(fetched <= bound);
	assert_int_equal(stat_count("/.well-known/openid-configuration"), 0); /* discovery is not repeated */
	assert_true(has_kid(p, newkid, JWA_RS256));
	oidc_provider_status(p, &st);
	assert_int_equal(st.nkeys, 7); /* old keys dropped by the issuer are gone here too */
	assert_true(log_has("trigger=unknown-kid"));
	cJSON_Delete(r);
	oidc_provider_stop(p);
}

static void test_rotation_keep_old(void **state)
{
	(void)state;
	oidc_provider *p = start(1, 0, 0);
	wait_for(p, W_READY, 1);
	cJSON *r = ctl("/_test/rotate", "{\"keep_old\":true}");
	const cJSON *olds = cJSON_GetObjectItemCaseSensitive(r, "old_kids");
	const char *oldkid = cJSON_GetArrayItem(olds, 3)->valuestring; /* es256 */
	const char *newkid = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "kids"), 3)->valuestring;
	assert_true(has_kid(p, oldkid, JWA_ES256));
	oidc_provider_request_refresh(p);
	oidc_status st = wait_for(p, W_REFRESHES, 2);
	assert_int_equal(st.nkeys, 14);
	assert_true(has_kid(p, oldkid, JWA_ES256));
	assert_true(has_kid(p, newkid, JWA_ES256));
	cJSON_Delete(r);
	oidc_provider_stop(p);
}

/* A refresh that fails for `mode` must keep the very same key set object, and say why. */
static void refresh_fails_keeps_keys(const char *mode_json, const char *want_reason, unsigned timeout_ms)
{
	oidc_provider *p = start(1, 0, timeout_ms);
	oidc_status st = wait_for(p, W_READY, 1);
	size_t nkeys = st.nkeys;
	jwks_keyset *before = oidc_provider_keys(p);
	assert_non_null(before);
	ctl_mode(mode_json);
	oidc_provider_request_refresh(p);
	st = wait_for(p, W_FAILURES, 1);
	assert_true(st.ready);
	assert_int_equal(st.nkeys, nkeys);
	assert_int_equal(st.refreshes, 1);
	if (strstr(st.last_error, want_reason) == NULL)
		fail_msg("last_error \"%s\" lacks \"%s\"", st.last_error, want_reason);
	jwks_keyset *after = oidc_provider_keys(p);
	assert_ptr_equal(before, after);
	char want[64];
	snprintf(want, sizeof want, "jwks refresh failed, keeping %zu old keys", nkeys);
	assert_true(log_has(want));
	jwks_keyset_release(after);
	jwks_keyset_release(before);
	/* And it comes back by itself once the issuer does. */
	ctl_mode("{\"mode\":\"ok\"}");
	st = wait_for(p, W_REFRESHES, 2);
	assert_string_equal(st.last_error, "");
	oidc_provider_stop(p);
}

static void test_down_later_keeps_keys(void **state)
{
	(void)state;
	refresh_fails_keeps_keys("{\"mode\":\"down\"}", "jwks fetch failed", 0);
}

static void test_garbage_keeps_keys(void **state)
{
	(void)state;
	refresh_fails_keeps_keys("{\"mode\":\"garbage\"}", "jwks fetch failed", 0);
}

static void test_empty_keeps_keys(void **state)
{
	(void)state;
	refresh_fails_keeps_keys("{\"mode\":\"empty\"}", "jwks fetch failed", 0);
}

static void test_status500_keeps_keys(void **state)
{
	(void)state;
	refresh_fails_keeps_keys("{\"mode\":\"status500\"}", "HTTP status 500", 0);
}

static void test_slow_times_out_keeps_keys(void **state)
{
	(void)state;
	refresh_fails_keeps_keys("{\"mode\":\"slow\",\"delay_ms\":3000}", "jwks fetch failed", 500);
}

static void test_huge_aborted_at_cap(void **state)
{
	(void)state;
	/* Streamed 50 MB body (Content-Length announced): refused as too large, transfer cut short. */
	refresh_fails_keeps_keys("{\"mode\":\"huge\",\"chunked\":false}", "larger than 1048576 bytes", 0);
	double sent = stat_num("huge_bytes_sent");
	print_message("huge: issuer wrote %.0f bytes of 52428800 before the client hung up\n", sent);
	assert_true(sent >= 0 && sent < 20.0 * 1024 * 1024);
}

static void test_huge_chunked_aborted_at_cap(void **state)
{
	(void)state;
	/* No Content-Length: the body callback must stop at JWKS_MAX_BYTES; what the issuer managed to write is
	 * the cap plus socket buffers, far from 50 MB. */
	refresh_fails_keeps_keys("{\"mode\":\"huge\",\"chunked\":true}", "larger than 1048576 bytes", 0);
	ctl_mode("{\"mode\":\"ok\",\"chunked\":false}");
	double sent = stat_num("huge_bytes_sent");
	print_message("huge chunked: issuer wrote %.0f bytes of 52428800 before the client hung up\n", sent);
	assert_true(sent >= 1024.0 * 1024 && sent < 20.0 * 1024 * 1024);
}

static void test_redirect_to_http_refused(void **state)
{
	(void)state;
	refresh_fails_keeps_keys("{\"mode\":\"redirect-http\"}", "http", 0);
}

static void test_redirect_to_https_followed(void **state)
{
	(void)state;
	oidc_provider *p = start(1, 0, 0);
	wait_for(p, W_READY, 1);
	ctl_mode("{\"mode\":\"redirect-https\"}");
	oidc_provider_request_refresh(p);
	oidc_status st = wait_for(p, W_REFRESHES, 2);
	assert_int_equal(st.failures, 0);
	assert_true(stat_count("/keys") >= 3); /* start, the redirect, the redirected request */
	oidc_provider_stop(p);
}

static void test_max_age_honoured(void **state)
{
	(void)state;
	ctl_mode("{\"mode\":\"ok\",\"max_age\":1}");
	oidc_provider *p = start(1, 0, 0);
	/* Three downloads without any request for one: the schedule follows max-age=1. */
	oidc_status st = wait_for(p, W_REFRESHES, 3);
	assert_true(st.refreshes >= 3);
	assert_true(log_has("next_refresh_s=1 (max-age)"));
	oidc_provider_stop(p);
}

static void test_max_age_clamped(void **state)
{
	(void)state;
	/* Above the maximum: clamped down to it (and the schedule runs on it). */
	ctl_mode("{\"mode\":\"ok\",\"max_age\":100000}");
	oidc_provider *p = start(1, 1, 0);
	wait_for(p, W_REFRESHES, 2);
	assert_true(log_has("next_refresh_s=1 (max-age)"));
	assert_false(log_has("next_refresh_s=100000"));
	oidc_provider_stop(p);
	/* Below the minimum: raised to it. */
	log_clear();
	ctl_mode("{\"mode\":\"ok\",\"max_age\":0}");
	p = start(7, 0, 0);
	wait_for(p, W_READY, 1);
	assert_true(log_has("next_refresh_s=7 (max-age)"));
	oidc_provider_stop(p);
	/* No Cache-Control: the default, clamped. */
	log_clear();
	ctl_mode("{\"mode\":\"ok\",\"max_age\":null}");
	p = start(1, 0, 0);
	wait_for(p, W_READY, 1);
	assert_true(log_has("next_refresh_s=3600 (default)"));
	oidc_provider_stop(p);
}

static void test_wrong_ca_refused(void **state)
{
	(void)state;
	/* The system roots do not know the test CA: TLS verification fails, nothing is loaded. */
	oidc_config cfg = {.issuer_url = g_iss.url, .retry_min_ms = 50, .retry_max_ms = 100, .log = cap_log};
	oidc_provider *p = NULL;
	char err[200];
	assert_int_equal(oidc_provider_start(&cfg, &p, err, sizeof err), 0);
	oidc_status st = wait_for(p, W_FAILURES, 2);
	assert_false(st.ready);
	assert_null(oidc_provider_keys(p));
	assert_non_null(strstr(st.last_error, "discovery failed"));
	oidc_provider_stop(p);
}

static void test_stop_during_slow_transfer(void **state)
{
	(void)state;
	ctl_mode("{\"mode\":\"slow\",\"delay_ms\":5000}");
	oidc_provider *p = start(1, 0, 30000);
	usleep(200000); /* the discovery request is now hanging on the issuer */
	oidc_provider_stop(p); /* must return (the progress callback aborts); a hang fails the suite's timeout */
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_discovery_table),
		cmocka_unit_test(test_discovery_size_cap),
		cmocka_unit_test(test_max_age_table),
		cmocka_unit_test(test_start_refuses),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test_setup(test_discovery_ok, each_setup),
		cmocka_unit_test_setup(test_wrong_issuer_refused, each_setup),
		cmocka_unit_test_setup(test_issuer_down_at_start, each_setup),
		cmocka_unit_test_setup(test_status500_at_start, each_setup),
		cmocka_unit_test_setup(test_rotation_on_demand_rate_limited, each_setup),
		cmocka_unit_test_setup(test_rotation_keep_old, each_setup),
		cmocka_unit_test_setup(test_down_later_keeps_keys, each_setup),
		cmocka_unit_test_setup(test_garbage_keeps_keys, each_setup),
		cmocka_unit_test_setup(test_empty_keeps_keys, each_setup),
		cmocka_unit_test_setup(test_status500_keeps_keys, each_setup),
		cmocka_unit_test_setup(test_slow_times_out_keeps_keys, each_setup),
		cmocka_unit_test_setup(test_huge_aborted_at_cap, each_setup),
		cmocka_unit_test_setup(test_huge_chunked_aborted_at_cap, each_setup),
		cmocka_unit_test_setup(test_redirect_to_http_refused, each_setup),
		cmocka_unit_test_setup(test_redirect_to_https_followed, each_setup),
		cmocka_unit_test_setup(test_max_age_honoured, each_setup),
		cmocka_unit_test_setup(test_max_age_clamped, each_setup),
		cmocka_unit_test_setup(test_wrong_ca_refused, each_setup),
		cmocka_unit_test_setup(test_stop_during_slow_transfer, each_setup),
	};
	int fails = cmocka_run_group_tests_name("oidc parsers", pure, NULL, NULL);
	fails += cmocka_run_group_tests_name("oidc provider vs test issuer", live, group_setup, group_teardown);
	return fails ? 1 : 0;
}
