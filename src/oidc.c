/*
 * oidc.c — OIDC discovery and JWKS download/refresh on a provider thread (see oidc.h for the design choice).
 *
 * Thread model: the provider thread owns the CURL handle, jwks_uri and the schedule. p->mu guards the status,
 * the stop flag and the condvar; p->keys_mu guards only the key-set pointer so that workers never wait behind
 * anything but a pointer swap. refresh_flag is an atomic so that a flood of unknown-kid requests costs one
 * exchange each and wakes the thread once.
 */
#include "oidc.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "https.h"
#include "kx.h"

#define DEF_MIN_REFRESH_S 60u
#define DEF_MAX_REFRESH_S 86400u
#define DEF_UNKNOWN_KID_S 10u
#define DEF_TIMEOUT_MS 10000u
#define DEF_RETRY_MIN_MS 1000u
#define DEF_RETRY_MAX_MS 60000u
#define KIDS_LOG_MAX 600 /* bytes of kid list in the "keys loaded" line */

struct oidc_provider {
	char *issuer;
	char *ca_file;
	char *ca_pem;             /* inline PEM, NUL-terminated copy; wins over ca_file */
	size_t ca_pem_len;
	char *discovery_url;
	unsigned min_refresh_s, max_refresh_s, unknown_kid_ms, timeout_ms, retry_min_ms, retry_max_ms;
	void (*log)(void *ud, int level, const char *event, const char *msg);
	void *log_ud;

	pthread_t thread;
	pthread_mutex_t mu; /* stop, st, cv */
	pthread_cond_t cv;
	bool stop;
	oidc_status st;
	atomic_bool stopping;     /* read by the curl progress callback without the mutex */
	atomic_bool refresh_flag; /* an unknown kid asked for a refresh */
	/* For oidc_provider_refresh_soon(), written by the provider thread only (monotonic ms). */
	atomic_bool in_flight;
	_Atomic int64_t next_at_ms;      /* next scheduled attempt */
	_Atomic int64_t next_demand_ms;  /* earliest on-demand attempt (last attempt + unknown_kid_ms) */
	void (*on_attempt)(void *ud, bool ok);
	void *on_attempt_ud;

	pthread_mutex_t keys_mu;
	jwks_keyset *keys;

	/* provider thread only */
	CURL *curl;
	char *jwks_uri;
	uint64_t rng;
};

/* One HTTP response body with a hard maximum, plus what the headers told us. */
struct http_resp {
	kx_buf body;  /* capped at the document's maximum; body.failed: over it, or out of memory */
	bool too_big;
	int max_age_rc; /* oidc_max_age_parse() result of the last response's Cache-Control, 0 = none */
	uint32_t max_age;
	const oidc_provider *p;
};

const char *oidc_strerror(int err)
{
	switch (err) {
	case OIDC_OK: return "ok";
	case OIDC_E_CONFIG: return "bad configuration";
	case OIDC_E_JSON: return "discovery document is not a JSON object";
	case OIDC_E_ISSUER: return "discovery issuer mismatch";
	case OIDC_E_JWKS_URI: return "bad jwks_uri";
	case OIDC_E_NOMEM: return "out of memory";
	case OIDC_E_THREAD: return "cannot start provider thread";
	default: return "unknown error";
	}
}

/* dst = a + b, cut to fit: reasons are built from pieces whose total length the compiler cannot bound. */
static void join2(char *dst, size_t n, const char *a, const char *b)
{
	size_t la = strnlen(a, n - 1);
	memmove(dst, a, la);
	size_t lb = strnlen(b, n - 1 - la);
	memmove(dst + la, b, lb);
	dst[la + lb] = '\0';
}

/* Copies peer-supplied text for a log line or reason: printable ASCII only, cut at max, so that a hostile
 * document cannot forge log lines or flood them. */
static void sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t o = 0;
	if (dstlen == 0)
		return;
	for (size_t i = 0; i < srclen && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
	}
	if (o + 1 == dstlen && srclen > o && dstlen > 4)
		memcpy(dst + dstlen - 4, "...", 3), o = dstlen - 1;
	dst[o] = '\0';
}

/* ---- pure parsers ------------------------------------------------------------------------------------------- */

/* True when the raw document contains the escape \u0000: cJSON would hand us a C string cut at that point, and
 * a cut "issuer" could then compare equal to the configured URL although the document says something else. */
static bool has_nul_escape(const uint8_t *p, size_t len)
{
	for (size_t i = 0; len >= 6 && i <= len - 6; i++) {
		if (p[i] == '\\' && (p[i + 1] == 'u' || p[i + 1] == 'U') && p[i + 2] == '0' && p[i + 3] == '0' &&
		    p[i + 4] == '0' && p[i + 5] == '0')
			return true;
	}
	return false;
}

static const cJSON *unique_member(const cJSON *obj, const char *name, bool *dup)
{
	const cJSON *found = NULL;
	const cJSON *it;
	cJSON_ArrayForEach(it, obj)
	{
		if (it->string != NULL && strcmp(it->string, name) == 0) {
			if (found != NULL)
				*dup = true;
			found = it;
		}
	}
	return found;
}

static bool https_url_ok(const char *u, size_t n)
{
	if (n <= 8 || n >= OIDC_URL_MAX || strncmp(u, "https://", 8) != 0)
		return false;
	if (u[8] == '/' || u[8] == '?' || u[8] == '#')
		return false; /* no host */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

int oidc_discovery_parse(const uint8_t *p, size_t len, const char *expected_issuer, char **jwks_uri,
			 char *err, size_t errlen)
{
	int rc;
	cJSON *doc = NULL;
	char shown[96];

	if (p == NULL || expected_issuer == NULL || jwks_uri == NULL) {
		kx_seterr(err, errlen, "invalid arguments");
		return OIDC_E_CONFIG;
	}
	if (len > OIDC_DISCOVERY_MAX_BYTES) {
		kx_seterr(err, errlen, "discovery document larger than %u bytes", OIDC_DISCOVERY_MAX_BYTES);
		return OIDC_E_JSON;
	}
	if (has_nul_escape(p, len)) {
		kx_seterr(err, errlen, "discovery document contains a \\u0000 escape");
		return OIDC_E_JSON;
	}
	/* Not cJSON's require_null_terminated: with an explicit length it refuses a buffer without a NUL after
	 * it. We check ourselves that only whitespace follows the value. */
	const char *end = NULL;
	doc = cJSON_ParseWithLengthOpts((const char *)p, len, &end, false);
	if (doc != NULL) {
		size_t off = (size_t)(end - (const char *)p);
		while (off < len && (p[off] == ' ' || p[off] == '\t' || p[off] == '\r' || p[off] == '\n'))
			off++;
		if (off != len) {
			kx_seterr(err, errlen, "discovery document has trailing data");
			rc = OIDC_E_JSON;
			goto out;
		}
	}
	if (doc == NULL || !cJSON_IsObject(doc)) {
		kx_seterr(err, errlen, "discovery document is not a JSON object");
		rc = OIDC_E_JSON;
		goto out;
	}
	bool dup = false;
	const cJSON *iss = unique_member(doc, "issuer", &dup);
	if (dup) {
		kx_seterr(err, errlen, "discovery document has \"issuer\" twice");
		rc = OIDC_E_ISSUER;
		goto out;
	}
	if (!cJSON_IsString(iss) || iss->valuestring == NULL) {
		kx_seterr(err, errlen, "discovery document has no \"issuer\" string");
		rc = OIDC_E_ISSUER;
		goto out;
	}
	if (strcmp(iss->valuestring, expected_issuer) != 0) {
		sanitize(shown, sizeof shown, iss->valuestring, strlen(iss->valuestring));
		kx_seterr(err, errlen, "discovery issuer \"%s\" is not the configured issuer URL", shown);
		rc = OIDC_E_ISSUER;
		goto out;
	}
	const cJSON *ju = unique_member(doc, "jwks_uri", &dup);
	if (dup) {
		kx_seterr(err, errlen, "discovery document has \"jwks_uri\" twice");
		rc = OIDC_E_JWKS_URI;
		goto out;
	}
	if (!cJSON_IsString(ju) || ju->valuestring == NULL) {
		kx_seterr(err, errlen, "discovery document has no \"jwks_uri\" string");
		rc = OIDC_E_JWKS_URI;
		goto out;
	}
	size_t n = strlen(ju->valuestring);
	if (!https_url_ok(ju->valuestring, n)) {
		sanitize(shown, sizeof shown, ju->valuestring, n);
		kx_seterr(err, errlen, "jwks_uri \"%s\" is not an https URL", shown);
		rc = OIDC_E_JWKS_URI;
		goto out;
	}
	char *copy = strdup(ju->valuestring);
	if (copy == NULL) {
		kx_seterr(err, errlen, "out of memory");
		rc = OIDC_E_NOMEM;
		goto out;
	}
	*jwks_uri = copy;
	rc = OIDC_OK;
out:
	cJSON_Delete(doc);
	return rc;
}

static bool ci_prefix(const uint8_t *p, size_t len, const char *word)
{
	size_t n = strlen(word);
	if (len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (tolower(p[i]) != word[i])
			return false;
	return true;
}

int oidc_max_age_parse(const uint8_t *p, size_t len, uint32_t *max_age_s)
{
	size_t i = 0;
	int found = 0;
	uint32_t val = 0;
	bool no_reuse = false;

	while (i < len) {
		while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
			i++;
		size_t start = i;
		while (i < len && p[i] != ',')
			i++;
		const uint8_t *d = p + start;
		size_t dl = i - start;
		while (dl > 0 && (d[dl - 1] == ' ' || d[dl - 1] == '\t'))
			dl--;
		if (dl == 8 && ci_prefix(d, dl, "no-store"))
			no_reuse = true;
		else if (dl == 8 && ci_prefix(d, dl, "no-cache"))
			no_reuse = true;
		else if (dl > 8 && ci_prefix(d, dl, "max-age=")) {
			size_t k = 8;
			bool quoted = k < dl && d[k] == '"';
			k += quoted;
			size_t digits = 0;
			uint64_t v = 0;
			while (k < dl && d[k] >= '0' && d[k] <= '9') {
				if (v < 0x7fffffffu)
					v = v * 10 + (uint64_t)(d[k] - '0');
				k++;
				digits++;
			}
			if (quoted && k < dl && d[k] == '"')
				k++;
			if (digits > 0 && k == dl) {
				val = v > 0x7fffffffu ? 0x7fffffffu : (uint32_t)v;
				found = 1;
			}
		}
	}
	if (no_reuse)
		return -1;
	if (found)
		*max_age_s = val;
	return found;
}

/* ---- provider: small helpers -------------------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void plog(const oidc_provider *p, int level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void plog(const oidc_provider *p, int level, const char *event, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (p->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	p->log(p->log_ud, level, event, msg);
}

static uint64_t rng_next(oidc_provider *p)
{
	/* xorshift64*: jitter only needs to decorrelate agents, not to be unpredictable. */
	uint64_t x = p->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	p->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Delay before retry number n (0-based): retry_min * 2^n capped at retry_max, then "equal jitter" (half fixed,
 * half random) so that many agents restarted together do not hit the issuer in step. */
static int64_t backoff_ms(oidc_provider *p, unsigned n)
{
	uint64_t d = p->retry_min_ms;
	for (unsigned i = 0; i < n && d < p->retry_max_ms; i++)
		d *= 2;
	if (d > p->retry_max_ms)
		d = p->retry_max_ms;
	uint64_t half = d / 2;
	return (int64_t)(d - half + (half ? rng_next(p) % (half + 1) : 0));
}

static void set_failure(oidc_provider *p, const char *reason)
{
	pthread_mutex_lock(&p->mu);
	p->st.failures++;
	snprintf(p->st.last_error, sizeof p->st.last_error, "%s", reason);
	pthread_mutex_unlock(&p->mu);
}

/* ---- provider: HTTP ----------------------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct http_resp *r = ud;
	size_t n = size * nmemb;
	int rc = kx_buf_add(&r->body, data, n);
	if (rc != 0) {
		/* Abort at the cap rather than buffer a hostile 50 MB body: returning less than n fails the transfer. */
		r->too_big = rc == KX_E_TOO_BIG;
		return 0;
	}
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct http_resp *r = ud;
	size_t n = size * nmemb;
	const uint8_t *h = (const uint8_t *)data;
	if (ci_prefix(h, n, "http/")) {
		r->max_age_rc = 0; /* a new response (after a redirect or 100-continue): forget the previous one's */
	} else if (ci_prefix(h, n, "cache-control:")) {
		size_t off = strlen("cache-control:");
		size_t end = n;
		while (end > off && (h[end - 1] == '\r' || h[end - 1] == '\n'))
			end--;
		uint32_t v;
		int rc = oidc_max_age_parse(h + off, end - off, &v);
		if (rc != 0) {
			r->max_age_rc = rc;
			if (rc == 1)
				r->max_age = v;
		}
	}
	return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	const struct http_resp *r = ud;
	return atomic_load(&r->p->stopping) ? 1 : 0;
}

/* GET url into r (body capped at max). 0 on a 200 answer, -1 with the reason in err otherwise. */
static int http_get(oidc_provider *p, const char *url, size_t max, struct http_resp *r, char *err, size_t errlen)
{
	char ebuf[CURL_ERROR_SIZE] = "";
	memset(r, 0, sizeof *r);
	kx_buf_init(&r->body, max);
	r->p = p;

	CURL *c = p->curl;
	curl_easy_reset(c);
	https_setup(c, url, p->ca_file, p->ca_pem, p->ca_pem_len, p->timeout_ms, max);
	/* discovery and JWKS follow redirects (go-oidc's client does), to https only */
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);

	CURLcode cc = curl_easy_perform(c);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	if (r->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		kx_seterr(err, errlen, "response larger than %zu bytes", max);
		return -1;
	}
	if (cc != CURLE_OK) {
		kx_seterr(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
		/* curl quotes names with '"'; our lines put the reason in "…" already. */
		for (char *q = err; errlen && *q; q++)
			if (*q == '"')
				*q = '\'';
		return -1;
	}
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		kx_seterr(err, errlen, "HTTP status %ld", code);
		return -1;
	}
	return 0;
}

/* ---- provider: discovery and keys --------------------------------------------------------------------------- */

static int discover(oidc_provider *p)
{
	struct http_resp r;
	char err[256];
	int rc = http_get(p, p->discovery_url, OIDC_DISCOVERY_MAX_BYTES, &r, err, sizeof err);
	if (rc == 0) {
		char *uri = NULL;
		if (oidc_discovery_parse(r.body.data ? (const uint8_t *)r.body.data : (const uint8_t *)"", r.body.len, p->issuer, &uri, err,
					 sizeof err) == 0) {
			free(p->jwks_uri);
			p->jwks_uri = uri;
			plog(p, 2, "issuer", "discovery ok: issuer=%s jwks_uri=%s", p->issuer, uri);
		} else {
			rc = -1;
		}
	}
	kx_buf_free(&r.body);
	if (rc != 0) {
		char reason[160];
		join2(reason, sizeof reason, "discovery failed: ", err);
		set_failure(p, reason);
		plog(p, 0, "issuer", "discovery failed: issuer=%s url=%s reason=\"%s\"", p->issuer, p->discovery_url,
		     err);
	}
	return rc;
}

/* "kid1,kid2,…" of the usable keys of ks, for the log line. */
static void kid_list(const jwks_keyset *ks, char *out, size_t outlen)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < jwks_keyset_count(ks); i++) {
		const jwks_key *k = jwks_keyset_key(ks, i);
		char one[128];
		if (k != NULL && k->kid != NULL)
			sanitize(one, sizeof one, k->kid, k->kid_len);
		else
			snprintf(one, sizeof one, "(none)");
		int w = snprintf(out + o, outlen - o, "%s%s", o ? "," : "", one);
		if (w < 0 || (size_t)w >= outlen - o) {
			if (outlen > 4)
				memcpy(out + outlen - 4, "...", 4);
			break;
		}
		o += (size_t)w;
	}
}

/* Downloads and parses the JWKS; on success swaps it in and returns the delay to the next scheduled refresh
 * (ms). On failure returns -1 and keeps whatever set is loaded. */
static int64_t fetch_keys(oidc_provider *p, const char *trigger)
{
	struct http_resp r;
	char err[256];
	int64_t next = -1;
	jwks_keyset *ks = NULL;

	int rc = http_get(p, p->jwks_uri, JWKS_MAX_BYTES, &r, err, sizeof err);
	if (rc == 0) {
		int jr = jwks_parse(r.body.data ? (const uint8_t *)r.body.data : (const uint8_t *)"", r.body.len, &ks, err, sizeof err);
		if (jr != 0) {
			char tmp[256], head[64];
			snprintf(head, sizeof head, "%s: ", jwks_strerror(jr));
			join2(tmp, sizeof tmp, head, err);
			memcpy(err, tmp, sizeof err);
			rc = -1;
		}
	}
	if (rc != 0) {
		size_t keeping;
		char reason[160];
		join2(reason, sizeof reason, "jwks fetch failed: ", err);
		set_failure(p, reason);
		pthread_mutex_lock(&p->mu);
		keeping = p->st.nkeys;
		pthread_mutex_unlock(&p->mu);
		plog(p, keeping ? 1 : 0, "keys", "jwks refresh failed, keeping %zu old keys: url=%s trigger=%s reason=\"%s\"",
		     keeping, p->jwks_uri, trigger, err);
		goto out;
	}

	uint32_t age = OIDC_DEFAULT_REFRESH_S;
	const char *age_src = "default";
	if (r.max_age_rc == 1)
		age = r.max_age, age_src = "max-age";
	else if (r.max_age_rc == -1)
		age = 0, age_src = "no-cache";
	if (age < p->min_refresh_s)
		age = p->min_refresh_s;
	if (age > p->max_refresh_s)
		age = p->max_refresh_s;
	next = (int64_t)age * 1000;

	size_t n = jwks_keyset_count(ks);
	jwks_keyset *old;
	pthread_mutex_lock(&p->keys_mu);
	old = p->keys;
	p->keys = ks;
	pthread_mutex_unlock(&p->keys_mu);
	jwks_keyset_release(old);

	pthread_mutex_lock(&p->mu);
	p->st.ready = true;
	p->st.refreshes++;
	p->st.nkeys = n;
	p->st.last_success = (int64_t)time(NULL);
	p->st.last_error[0] = '\0';
	pthread_mutex_unlock(&p->mu);

	if (p->log != NULL) {
		char kids[KIDS_LOG_MAX];
		kid_list(ks, kids, sizeof kids);
		plog(p, 2, "keys", "keys loaded: count=%zu kids=%s trigger=%s next_refresh_s=%" PRIu32 " (%s)%s%s", n,
		     kids, trigger, age, age_src, err[0] ? " note=" : "", err);
	}
out:
	kx_buf_free(&r.body);
	return next;
}

/* One attempt: discovery when we have no jwks_uri yet, then the key set. Delay to the next refresh, or -1. */
static int64_t attempt(oidc_provider *p, const char *trigger)
{
	if (p->jwks_uri == NULL && discover(p) != 0)
		return -1;
	int64_t next = fetch_keys(p, trigger);
	if (next < 0) {
		pthread_mutex_lock(&p->mu);
		bool ready = p->st.ready;
		pthread_mutex_unlock(&p->mu);
		/* Never loaded anything: the jwks_uri itself may be stale; discover again next time. */
		if (!ready) {
			free(p->jwks_uri);
			p->jwks_uri = NULL;
		}
	}
	return next;
}

static void *provider_main(void *arg)
{
	oidc_provider *p = arg;
	int64_t next_at = mono_ms();
	int64_t last_attempt = next_at - (int64_t)p->unknown_kid_ms;
	unsigned fails = 0;
	const char *trigger = "start";

	atomic_store(&p->next_at_ms, next_at);
	atomic_store(&p->next_demand_ms, last_attempt + (int64_t)p->unknown_kid_ms);
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		int64_t now = mono_ms();
		int64_t due = next_at;
		bool on_demand = false;
		if (atomic_load(&p->refresh_flag)) {
			int64_t od = last_attempt + (int64_t)p->unknown_kid_ms;
			if (od < due)
				due = od, on_demand = true;
		}
		if (now < due) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t wait = due - now;
			ts.tv_sec += (time_t)(wait / 1000);
			ts.tv_nsec += (long)(wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L)
				ts.tv_sec++, ts.tv_nsec -= 1000000000L;
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
			continue;
		}
		if (on_demand)
			trigger = "unknown-kid";
		/* Requests that arrive during the download below ask for the next window, not this one. */
		atomic_store(&p->refresh_flag, false);
		atomic_store(&p->in_flight, true);
		pthread_mutex_unlock(&p->mu);

		last_attempt = now;
		int64_t next = attempt(p, trigger);
		int64_t delay;
		if (next >= 0) {
			fails = 0;
			delay = next;
		} else {
			delay = backoff_ms(p, fails);
			if (fails < 64)
				fails++;
			plog(p, 3, "issuer", "next attempt in %" PRId64 " ms (failure %u in a row)", delay, fails);
		}
		trigger = next >= 0 ? "schedule" : "retry";

		next_at = mono_ms() + delay;
		/* the schedule first, then "not in flight", then the callback: whoever the callback wakes and finds
		 * the kid still unknown must see when the next attempt can come */
		atomic_store(&p->next_at_ms, next_at);
		atomic_store(&p->next_demand_ms, last_attempt + (int64_t)p->unknown_kid_ms);
		atomic_store(&p->in_flight, false);
		if (p->on_attempt != NULL && !atomic_load(&p->stopping))
			p->on_attempt(p->on_attempt_ud, next >= 0);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- provider: public API ----------------------------------------------------------------------------------- */

static void provider_free(oidc_provider *p)
{
	if (p == NULL)
		return;
	if (p->curl != NULL)
		curl_easy_cleanup(p->curl);
	jwks_keyset_release(p->keys);
	free(p->issuer);
	free(p->ca_file);
	free(p->ca_pem);
	free(p->discovery_url);
	free(p->jwks_uri);
	free(p);
}

int oidc_provider_start(const oidc_config *cfg, oidc_provider **out, char *err, size_t errlen)
{
	int rc;
	oidc_provider *p = NULL;
	bool mu = false, kmu = false, cv = false;
	pthread_condattr_t ca;

	if (cfg == NULL || out == NULL || cfg->issuer_url == NULL) {
		kx_seterr(err, errlen, "issuer URL is required");
		return OIDC_E_CONFIG;
	}
	size_t ilen = strlen(cfg->issuer_url);
	if (!https_url_ok(cfg->issuer_url, ilen)) {
		kx_seterr(err, errlen, "issuer URL must be https://host[:port][/path], printable, under %d bytes",
		       OIDC_URL_MAX);
		return OIDC_E_CONFIG;
	}
	if (cfg->discovery_url != NULL && !https_url_ok(cfg->discovery_url, strlen(cfg->discovery_url))) {
		kx_seterr(err, errlen, "discovery URL must be https://host[:port][/path], printable, under %d bytes",
		       OIDC_URL_MAX);
		return OIDC_E_CONFIG;
	}
	if (cfg->ca_pem == NULL && cfg->ca_file != NULL && access(cfg->ca_file, R_OK) != 0) {
		kx_seterr(err, errlen, "CA file %s: %s", cfg->ca_file, strerror(errno));
		return OIDC_E_CONFIG;
	}
	unsigned minr = cfg->min_refresh_s ? cfg->min_refresh_s : DEF_MIN_REFRESH_S;
	unsigned maxr = cfg->max_refresh_s ? cfg->max_refresh_s : DEF_MAX_REFRESH_S;
	if (minr > maxr) {
		kx_seterr(err, errlen, "minimum refresh interval %us is above the maximum %us", minr, maxr);
		return OIDC_E_CONFIG;
	}
	unsigned rmin = cfg->retry_min_ms ? cfg->retry_min_ms : DEF_RETRY_MIN_MS;
	unsigned rmax = cfg->retry_max_ms ? cfg->retry_max_ms : DEF_RETRY_MAX_MS;
	if (rmin > rmax) {
		kx_seterr(err, errlen, "retry_min_ms %u is above retry_max_ms %u", rmin, rmax);
		return OIDC_E_CONFIG;
	}
	/* curl_global_init is not thread-safe: run it once, before any provider thread exists. */
	int init_rc = https_global_init();
	if (init_rc != CURLE_OK) {
		kx_seterr(err, errlen, "libcurl init: %s", curl_easy_strerror((CURLcode)init_rc));
		return OIDC_E_CONFIG;
	}

	p = calloc(1, sizeof *p);
	if (p == NULL)
		goto nomem;
	p->min_refresh_s = minr;
	p->max_refresh_s = maxr;
	p->unknown_kid_ms = (cfg->unknown_kid_interval_s ? cfg->unknown_kid_interval_s : DEF_UNKNOWN_KID_S) * 1000u;
	p->timeout_ms = cfg->http_timeout_ms ? cfg->http_timeout_ms : DEF_TIMEOUT_MS;
	p->retry_min_ms = rmin;
	p->retry_max_ms = rmax;
	p->log = cfg->log;
	p->log_ud = cfg->log_ud;
	atomic_init(&p->stopping, false);
	atomic_init(&p->refresh_flag, false);
	atomic_init(&p->in_flight, false);
	atomic_init(&p->next_at_ms, 0);
	atomic_init(&p->next_demand_ms, 0);
	p->on_attempt = cfg->on_attempt;
	p->on_attempt_ud = cfg->on_attempt_ud;
	p->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)p;
	if (p->rng == 0)
		p->rng = 0x9E3779B97F4A7C15ULL;

	p->issuer = strdup(cfg->issuer_url);
	p->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
	/* A trailing slash on the issuer URL is kept for the equality check but not doubled in the path. */
	size_t base = ilen;
	if (base > 0 && cfg->issuer_url[base - 1] == '/')
		base--;
	static const char wk[] = "/.well-known/openid-configuration";
	if (cfg->ca_pem != NULL) {
		p->ca_pem_len = cfg->ca_pem_len ? cfg->ca_pem_len : strlen(cfg->ca_pem);
		p->ca_pem = malloc(p->ca_pem_len + 1);
		if (p->ca_pem == NULL)
			goto nomem;
		memcpy(p->ca_pem, cfg->ca_pem, p->ca_pem_len);
		p->ca_pem[p->ca_pem_len] = '\0';
	}
	if (cfg->discovery_url != NULL) {
		p->discovery_url = strdup(cfg->discovery_url);
		if (p->issuer == NULL || (cfg->ca_file && !p->ca_file) || p->discovery_url == NULL)
			goto nomem;
	} else {
		p->discovery_url = malloc(base + sizeof wk);
		if (p->issuer == NULL || (cfg->ca_file && !p->ca_file) || p->discovery_url == NULL)
			goto nomem;
		memcpy(p->discovery_url, cfg->issuer_url, base);
		memcpy(p->discovery_url + base, wk, sizeof wk);
	}
	p->curl = curl_easy_init();
	if (p->curl == NULL)
		goto nomem;

	if (pthread_mutex_init(&p->mu, NULL) != 0)
		goto thread;
	mu = true;
	if (pthread_mutex_init(&p->keys_mu, NULL) != 0)
		goto thread;
	kmu = true;
	if (pthread_condattr_init(&ca) != 0)
		goto thread;
	int crc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (crc == 0)
		crc = pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (crc != 0)
		goto thread;
	cv = true;
	if (pthread_create(&p->thread, NULL, provider_main, p) != 0)
		goto thread;
	*out = p;
	return OIDC_OK;

nomem:
	kx_seterr(err, errlen, "out of memory");
	rc = OIDC_E_NOMEM;
	goto out;
thread:
	kx_seterr(err, errlen, "cannot start the provider thread");
	rc = OIDC_E_THREAD;
out:
	if (cv)
		pthread_cond_destroy(&p->cv);
	if (kmu)
		pthread_mutex_destroy(&p->keys_mu);
	if (mu)
		pthread_mutex_destroy(&p->mu);
	provider_free(p);
	return rc;
}

jwks_keyset *oidc_provider_keys(oidc_provider *p)
{
	jwks_keyset *ks;
	if (p == NULL)
		return NULL;
	pthread_mutex_lock(&p->keys_mu);
	ks = p->keys;
	if (ks != NULL)
		jwks_keyset_ref(ks);
	pthread_mutex_unlock(&p->keys_mu);
	return ks;
}

void oidc_provider_request_refresh(oidc_provider *p)
{
	if (p == NULL)
		return;
	/* Only the request that raises the flag wakes the thread; the flood behind it costs an exchange each. */
	if (!atomic_exchange(&p->refresh_flag, true)) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
}

bool oidc_provider_refresh_soon(oidc_provider *p, unsigned within_ms)
{
	if (p == NULL || atomic_load(&p->stopping))
		return false;
	if (atomic_load(&p->in_flight))
		return true;
	int64_t due = atomic_load(&p->next_at_ms);
	int64_t od = atomic_load(&p->next_demand_ms);
	if (od < due)
		due = od;
	return due <= mono_ms() + (int64_t)within_ms;
}

void oidc_provider_status(oidc_provider *p, oidc_status *out)
{
	if (p == NULL || out == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	*out = p->st;
	pthread_mutex_unlock(&p->mu);
}

void oidc_provider_stop(oidc_provider *p)
{
	if (p == NULL)
		return;
	atomic_store(&p->stopping, true);
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->keys_mu);
	pthread_mutex_destroy(&p->mu);
	provider_free(p);
}
