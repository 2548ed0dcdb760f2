/* distclaims.c — distributed claims: the API server's reference rules and a non-blocking fetcher (see
 * distclaims.h).
 *
 * Locking: dc->mu guards the fetch lists, the answer cache, the counters and the stop flag. The curl multi
 * handle and the easy handles belong to the fetcher thread alone; other threads only wake it with
 * curl_multi_wakeup(). The listener runs under dc->listen_mu only, so removing it waits for a call in progress.
 */
#include "distclaims.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cache.h"
#include "https.h"
#include "jsonstrict.h"
#include "kx.h"
#include "jwt.h"
#include "log.h"

#define DEF_TIMEOUT_MS 500u
#define DEF_INFLIGHT 16u
#define DEF_FETCHES 256u
#define CACHE_SLOTS 256u /* 256 answers of at most 64 KiB: at most 16 MiB */

/* ---- the reference reader ------------------------------------------------------------------------------ */

/* Go's encoding/json matches a JSON member name to a struct field exactly or under Unicode simple case folding
 * (bytes.EqualFold). For the three ASCII field names here that is: each letter in either case, plus U+017F
 * (long s) for 's' and U+212A (Kelvin sign) for 'k'. */
static bool go_field_name(const char *name, const char *field)
{
	const unsigned char *p = (const unsigned char *)name;

	for (; *field; field++) {
		unsigned char f = (unsigned char)*field;
		unsigned char c = *p;

		if (c == f || (f >= 'a' && f <= 'z' && c == f - 32) || (f >= 'A' && f <= 'Z' && c == f + 32)) {
			p++;
		} else if ((f == 's' || f == 'S') && p[0] == 0xC5 && p[1] == 0xBF) {
			p += 2;
		} else if ((f == 'k' || f == 'K') && p[0] == 0xE2 && p[1] == 0x84 && p[2] == 0xAA) {
			p += 3;
		} else {
			return false;
		}
	}
	return *p == '\0';
}

/* The last member named exactly name (Go maps keep the last of repeated keys), or NULL. */
static const cJSON *last_member(const cJSON *obj, const char *name)
{
	const cJSON *m, *found = NULL;

	cJSON_ArrayForEach(m, obj)
		if (m->string != NULL && strcmp(m->string, name) == 0)
			found = m;
	return found;
}

/* One source object the way Go decodes it into {endpoint, access_token, JWT string}: every member whose name
 * folds to a field sets it (a null leaves it as it was); any other type is an error. */
static bool read_source(const cJSON *src, const char **endpoint, const char **token)
{
	const cJSON *m;

	*endpoint = *token = NULL;
	if (cJSON_IsNull(src))
		return true;
	if (!cJSON_IsObject(src))
		return false;
	cJSON_ArrayForEach(m, src) {
		const char **slot = NULL;
		const char *jwt_sink = NULL;

		if (m->string == NULL)
			return false;
		if (go_field_name(m->string, "endpoint"))
			slot = endpoint;
		else if (go_field_name(m->string, "access_token"))
			slot = token;
		else if (go_field_name(m->string, "JWT"))
			slot = &jwt_sink; /* aggregated claims: read for its type only, never used (as there) */
		else
			continue;
		if (cJSON_IsNull(m))
			continue;
		if (!cJSON_IsString(m))
			return false;
		*slot = m->valuestring;
	}
	return true;
}

#define SET_DETAIL(s) do { if (detail != NULL) *detail = (s); } while (0)

int distclaims_find(const cJSON *payload, const char *claim, distclaims_ref *out, const char **detail)
{
	const cJSON *names, *sources, *m, *name, *src;
	const char *endpoint = NULL, *token = NULL;

	if (cJSON_GetObjectItemCaseSensitive(payload, claim) != NULL)
		return DISTCLAIMS_NONE; /* a claim of the token's own wins: nothing is fetched */
	names = cJSON_GetObjectItemCaseSensitive(payload, "_claim_names");
	if (names == NULL)
		return DISTCLAIMS_NONE;
	if (!cJSON_IsNull(names)) {
		if (!cJSON_IsObject(names)) {
			SET_DETAIL("distributed claims: _claim_names is not an object");
			return DISTCLAIMS_E_NAMES;
		}
		cJSON_ArrayForEach(m, names) {
			if (!cJSON_IsString(m) && !cJSON_IsNull(m)) {
				SET_DETAIL("distributed claims: a _claim_names value is not a string");
				return DISTCLAIMS_E_NAMES;
			}
		}
	}
	sources = cJSON_GetObjectItemCaseSensitive(payload, "_claim_sources");
	if (sources == NULL) {
		SET_DETAIL("distributed claims: _claim_names without _claim_sources");
		return DISTCLAIMS_E_NO_SOURCES;
	}
	if (!cJSON_IsNull(sources)) {
		if (!cJSON_IsObject(sources)) {
			SET_DETAIL("distributed claims: _claim_sources is not an object");
			return DISTCLAIMS_E_SOURCES;
		}
		cJSON_ArrayForEach(m, sources) {
			if (!read_source(m, &endpoint, &token)) {
				SET_DETAIL("distributed claims: a _claim_sources entry is not a source object of strings");
				return DISTCLAIMS_E_SOURCES;
			}
		}
	}
	name = cJSON_IsObject(names) ? last_member(names, claim) : NULL;
	if (name == NULL)
		return DISTCLAIMS_NONE;
	/* a null name is Go's "" (null leaves a string as it was): looked up like any other */
	src = cJSON_IsObject(sources) ? last_member(sources, cJSON_IsString(name) ? name->valuestring : "") : NULL;
	if (src == NULL) {
		SET_DETAIL("distributed claims: _claim_names names a source missing from _claim_sources");
		return DISTCLAIMS_E_MISSING_SOURCE;
	}
	read_source(src, &endpoint, &token);
	if (endpoint == NULL || *endpoint == '\0')
		return DISTCLAIMS_NONE; /* aggregated ("JWT") or empty: ignored, the token is judged without the claim */
	out->endpoint = endpoint;
	out->access_token = token != NULL && *token != '\0' ? token : NULL;
	return DISTCLAIMS_FETCH;
}

int distclaims_parse(const uint8_t *p, size_t len, const char *claim, char *ebuf, size_t ecap, char *tbuf,
		     size_t tcap)
{
	distclaims_ref ref;
	cJSON *doc = NULL;
	int rc;

	if (ecap > 0)
		ebuf[0] = '\0';
	if (tcap > 0)
		tbuf[0] = '\0';
	if (jsonstrict_parse(p, len, &doc) != 0)
		return DISTCLAIMS_E_JSON;
	rc = distclaims_find(doc, claim, &ref, NULL);
	if (rc == DISTCLAIMS_FETCH) {
		if (ecap > 0)
			snprintf(ebuf, ecap, "%s", ref.endpoint);
		if (tcap > 0 && ref.access_token != NULL)
			snprintf(tbuf, tcap, "%s", ref.access_token);
	}
	cJSON_Delete(doc);
	return rc;
}

/* ---- the fetcher ------------------------------------------------------------------------------------------ */

typedef struct fetch {
	struct fetch *next;
	uint8_t key[CACHE_KEY_LEN];
	int64_t t0_ms, deadline_ms;
	CURL *easy;
	struct curl_slist *hdrs;
	char *url, *auth, *ca_file, *ca_pem; /* auth: "Authorization: Bearer …" or NULL; wiped when freed */
	size_t ca_pem_len;
	kx_buf resp;          /* the answer, at most DISTCLAIMS_MAX_BODY */
	bool resp_over;
	char ebuf[CURL_ERROR_SIZE];
} fetch;

typedef struct slot {
	uint8_t key[CACHE_KEY_LEN];
	int64_t expires_ms;   /* monotonic; 0 = empty */
	bool ok;
	char why[160];        /* failure */
	uint8_t *body;        /* answer, malloc'd */
	size_t len;
} slot;

struct distclaims {
	unsigned timeout_ms, max_inflight, max_fetches;
	pthread_t th;
	bool started;
	CURLM *multi;

	pthread_mutex_t mu;
	bool stopping;
	fetch *pending, *active; /* pending in arrival (so deadline) order */
	unsigned npending, nactive;
	slot cache[CACHE_SLOTS];
	distclaims_stats st;

	pthread_mutex_t listen_mu;
	void (*listen_fn)(void *ud);
	void *listen_ud;
};

static void *dc_main(void *arg);

int distclaims_create(const distclaims_config *cfg, distclaims **out, char *err, size_t errlen)
{
	distclaims *dc;
	int init_rc = https_global_init();

	if (init_rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl init: %s", curl_easy_strerror((CURLcode)init_rc));
		return -1;
	}
	dc = calloc(1, sizeof(*dc));
	if (dc == NULL) {
		snprintf(err, errlen, "distributed claims: out of memory");
		return -1;
	}
	dc->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEF_TIMEOUT_MS;
	dc->max_inflight = cfg->max_inflight ? cfg->max_inflight : DEF_INFLIGHT;
	dc->max_fetches = cfg->max_fetches ? cfg->max_fetches : DEF_FETCHES;
	dc->multi = curl_multi_init();
	if (dc->multi == NULL) {
		free(dc);
		snprintf(err, errlen, "distributed claims: out of memory");
		return -1;
	}
	pthread_mutex_init(&dc->mu, NULL);
	pthread_mutex_init(&dc->listen_mu, NULL);
	if (pthread_create(&dc->th, NULL, dc_main, dc) != 0) {
		pthread_mutex_destroy(&dc->mu);
		pthread_mutex_destroy(&dc->listen_mu);
		curl_multi_cleanup(dc->multi);
		free(dc);
		snprintf(err, errlen, "distributed claims: cannot start the fetcher thread");
		return -1;
	}
	dc->started = true;
	*out = dc;
	return 0;
}

/* The single-flight and cache key: SHA-256 over URL, access token and CA, each length-prefixed (so no two
 * different triples share the bytes). The access token lives on only inside this hash. */
static void src_key(const distclaims_src *s, uint8_t key[CACHE_KEY_LEN])
{
	const char *parts[4] = {s->url, s->access_token ? s->access_token : "", s->ca_file ? s->ca_file : "",
				s->ca_pem ? s->ca_pem : ""};
	size_t lens[4], total = 0, o = 0;
	uint8_t *buf;

	lens[3] = s->ca_pem ? (s->ca_pem_len ? s->ca_pem_len : strlen(s->ca_pem)) : 0;
	for (int i = 0; i < 3; i++)
		lens[i] = strlen(parts[i]);
	for (int i = 0; i < 4; i++)
		total += 8 + lens[i];
	buf = malloc(total);
	if (buf == NULL) {
		/* no memory: a key no real source has, so nothing is shared; the fetch itself will fail too */
		memset(key, 0xff, CACHE_KEY_LEN);
		return;
	}
	for (int i = 0; i < 4; i++) {
		for (int b = 0; b < 8; b++)
			buf[o++] = (uint8_t)((uint64_t)lens[i] >> (8 * b));
		memcpy(buf + o, parts[i], lens[i]);
		o += lens[i];
	}
	cache_key(buf, total, key);
	memset(buf, 0, total);
	free(buf);
}

static slot *cache_slot(distclaims *dc, const uint8_t key[CACHE_KEY_LEN])
{
	uint32_t h;

	memcpy(&h, key, sizeof(h));
	return &dc->cache[h % CACHE_SLOTS];
}

static void slot_clear(slot *s)
{
	free(s->body);
	memset(s, 0, sizeof(*s));
}

static fetch *find_fetch(fetch *list, const uint8_t key[CACHE_KEY_LEN])
{
	for (; list != NULL; list = list->next)
		if (memcmp(list->key, key, CACHE_KEY_LEN) == 0)
			return list;
	return NULL;
}

static void free_fetch(distclaims *dc, fetch *f)
{
	if (f == NULL)
		return;
	if (f->easy != NULL) {
		curl_multi_remove_handle(dc->multi, f->easy);
		curl_easy_cleanup(f->easy);
	}
	curl_slist_free_all(f->hdrs);
	if (f->auth != NULL) {
		memset(f->auth, 0, strlen(f->auth));
		free(f->auth);
	}
	free(f->url);
	free(f->ca_file);
	free(f->ca_pem);
	kx_buf_free(&f->resp);
	free(f);
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static fetch *new_fetch(const distclaims_src *s, const uint8_t key[CACHE_KEY_LEN], int64_t now, unsigned timeout)
{
	fetch *f = calloc(1, sizeof(*f));
	static const char pre[] = "Authorization: Bearer ";

	if (f == NULL)
		return NULL;
	memcpy(f->key, key, CACHE_KEY_LEN);
	f->t0_ms = now;
	f->deadline_ms = now + timeout;
	f->url = strdup(s->url);
	if (s->access_token != NULL) {
		size_t n = strlen(s->access_token);

		f->auth = malloc(sizeof(pre) + n);
		if (f->auth != NULL) {
			memcpy(f->auth, pre, sizeof(pre) - 1);
			memcpy(f->auth + sizeof(pre) - 1, s->access_token, n + 1);
		}
	}
	f->ca_file = s->ca_file ? strdup(s->ca_file) : NULL;
	if (s->ca_pem != NULL) {
		f->ca_pem_len = s->ca_pem_len ? s->ca_pem_len : strlen(s->ca_pem);
		f->ca_pem = dup_n(s->ca_pem, f->ca_pem_len);
	}
	if (f->url == NULL || (s->access_token != NULL && f->auth == NULL) || (s->ca_file && f->ca_file == NULL) ||
	    (s->ca_pem && f->ca_pem == NULL)) {
		free(f->url);
		free(f->auth);
		free(f->ca_file);
		free(f->ca_pem);
		free(f);
		return NULL;
	}
	return f;
}

int distclaims_get(distclaims *dc, const distclaims_src *src, uint8_t **body, size_t *len, const char **why)
{
	static _Thread_local char whybuf[200];
	uint8_t key[CACHE_KEY_LEN];
	int64_t now = kx_mono_ms();
	slot *s;
	fetch *f;

	/* the access token becomes a header line: CR/LF or any control byte would add lines of its own (Go's
	 * net/http refuses such a value outright) */
	if (src->access_token != NULL &&
	    kx_ctl_find((const uint8_t *)src->access_token, strlen(src->access_token)) != strlen(src->access_token)) {
		*why = "distributed claims: the source's access_token has control characters";
		return DISTCLAIMS_E_FAILED;
	}
	src_key(src, key);
	pthread_mutex_lock(&dc->mu);
	if (dc->stopping) {
		pthread_mutex_unlock(&dc->mu);
		*why = "distributed claims: agent shutting down";
		return DISTCLAIMS_E_FAILED;
	}
	s = cache_slot(dc, key);
	if (s->expires_ms != 0 && s->expires_ms > now && memcmp(s->key, key, CACHE_KEY_LEN) == 0) {
		dc->st.cache_hits++;
		if (!s->ok) {
			snprintf(whybuf, sizeof(whybuf), "%s", s->why);
			pthread_mutex_unlock(&dc->mu);
			*why = whybuf;
			return DISTCLAIMS_E_FAILED;
		}
		*body = malloc(s->len ? s->len : 1);
		if (*body == NULL) {
			pthread_mutex_unlock(&dc->mu);
			*why = "distributed claims: out of memory";
			return DISTCLAIMS_E_FAILED;
		}
		memcpy(*body, s->body, s->len);
		*len = s->len;
		pthread_mutex_unlock(&dc->mu);
		return DISTCLAIMS_READY;
	}
	if (find_fetch(dc->pending, key) != NULL || find_fetch(dc->active, key) != NULL) {
		/* kubectl's first call fans out into parallel requests with one token: one fetch for all */
		dc->st.joined++;
		pthread_mutex_unlock(&dc->mu);
		return DISTCLAIMS_PENDING;
	}
	if (strncmp(src->url, "https://", 8) != 0 || strlen(src->url) > DISTCLAIMS_URL_MAX) {
		dc->st.not_https++;
		pthread_mutex_unlock(&dc->mu);
		*why = "distributed claims: the source endpoint is not an https URL (of at most 2048 bytes)";
		return DISTCLAIMS_E_FAILED;
	}
	if (dc->npending + dc->nactive >= dc->max_fetches) {
		dc->st.busy++;
		pthread_mutex_unlock(&dc->mu);
		*why = "distributed claims: too many fetches under way";
		return DISTCLAIMS_E_FAILED;
	}
	f = new_fetch(src, key, now, dc->timeout_ms);
	if (f == NULL) {
		pthread_mutex_unlock(&dc->mu);
		*why = "distributed claims: out of memory";
		return DISTCLAIMS_E_FAILED;
	}
	{
		fetch **pp = &dc->pending;

		while (*pp != NULL)
			pp = &(*pp)->next;
		*pp = f;
	}
	dc->npending++;
	pthread_mutex_unlock(&dc->mu);
	curl_multi_wakeup(dc->multi);
	return DISTCLAIMS_PENDING;
}

void distclaims_set_listener(distclaims *dc, void (*fn)(void *ud), void *ud)
{
	pthread_mutex_lock(&dc->listen_mu);
	dc->listen_fn = fn;
	dc->listen_ud = fn ? ud : NULL;
	pthread_mutex_unlock(&dc->listen_mu);
}

static void notify(distclaims *dc)
{
	pthread_mutex_lock(&dc->listen_mu);
	if (dc->listen_fn != NULL)
		dc->listen_fn(dc->listen_ud);
	pthread_mutex_unlock(&dc->listen_mu);
}

void distclaims_count_refusal(distclaims *dc, enum distclaims_refusal r)
{
	if (dc == NULL || (unsigned)r >= DISTCLAIMS_R_COUNT)
		return;
	pthread_mutex_lock(&dc->mu);
	dc->st.refusals[r]++;
	pthread_mutex_unlock(&dc->mu);
}

/* ---- the fetcher thread ------------------------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	fetch *f = ud;
	size_t len = size * n;

	int rc = kx_buf_add(&f->resp, p, len);

	if (rc != 0) {
		f->resp_over = rc == KX_E_TOO_BIG;
		return 0; /* aborts the transfer */
	}
	return len;
}

static bool start_fetch(distclaims *dc, fetch *f, int64_t now)
{
	long left = (long)(f->deadline_ms - now);

	if (left <= 0)
		return false;
	/* the empty append gives the answer its block up front: an empty answer is "", never NULL */
	kx_buf_init(&f->resp, DISTCLAIMS_MAX_BODY);
	f->easy = curl_easy_init();
	if (kx_buf_add(&f->resp, "", 0) != 0 || f->easy == NULL)
		return false;
	if (f->auth != NULL && (f->hdrs = curl_slist_append(NULL, f->auth)) == NULL)
		return false;
	/* the issuer's client settings (https.h): https only, its CA, verified, no redirects */
	https_setup(f->easy, f->url, f->ca_file, f->ca_pem, f->ca_pem_len, (unsigned)left, DISTCLAIMS_MAX_BODY);
	curl_easy_setopt(f->easy, CURLOPT_HTTPGET, 1L);
	if (f->hdrs != NULL)
		curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER, f->hdrs);
	curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(f->easy, CURLOPT_PRIVATE, f);
	curl_easy_setopt(f->easy, CURLOPT_ERRORBUFFER, f->ebuf);
	return curl_multi_add_handle(dc->multi, f->easy) == CURLM_OK;
}

static void unlink_fetch(fetch **list, fetch *f)
{
	for (fetch **pp = list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			f->next = NULL;
			return;
		}
	}
}

/* The unverified exp of a JWT body, to know how long to keep it (the verifier checks the real one at every
 * use); 0 when there is none to read. Whitespace around it is skipped, as the verifier does. */
static int64_t body_exp(const uint8_t *p, size_t len)
{
	jwt_token t;
	cJSON *doc = NULL;
	const cJSON *exp;
	int64_t v = 0;

	while (len > 0 && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
		p++;
		len--;
	}
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r' || p[len - 1] == '\n'))
		len--;
	if (jwt_parse(p, len, DISTCLAIMS_MAX_BODY, &t) != 0)
		return 0;
	if (jsonstrict_parse(t.payload, t.payload_len, &doc) == 0) {
		exp = cJSON_GetObjectItemCaseSensitive(doc, "exp");
		if (cJSON_IsNumber(exp) && exp->valuedouble > 0 && exp->valuedouble < 9.2e18)
			v = (int64_t)exp->valuedouble;
	}
	cJSON_Delete(doc);
	jwt_token_free(&t);
	return v;
}

static void log_fetch(const fetch *f, const char *why)
{
	log_line l;
	const char *host = f->url + 8; /* after "https://" (distclaims_get fetches nothing else) */
	size_t hlen = strcspn(host, "/?#"), plen;
	const char *at = memchr(host, '@', hlen);
	char shown[DISTCLAIMS_URL_MAX + 16];

	if (at != NULL) { /* user info: never logged */
		hlen -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	plen = strcspn(host + hlen, "?#"); /* the query and fragment may carry secrets of the source: not logged */
	snprintf(shown, sizeof(shown), "https://%.*s", (int)(hlen + plen), host);
	log_begin(&l, LOG_LEVEL_WARN, "distclaims");
	log_str(&l, "msg", "distributed claims fetch failed");
	log_str(&l, "endpoint", shown);
	log_str(&l, "error", why);
	log_end(&l);
}

/* Stores f's answer (ok: body = f->resp; else why), counts it, frees f, tells the listener. active: f is still
 * on the active list; it leaves it in the same critical section that stores the answer, so a lookup meanwhile
 * either joins the fetch or finds the answer, never starts a second fetch. */
static void finish(distclaims *dc, fetch *f, bool ok, const char *why, int64_t now, bool active)
{
	slot *s;
	double secs = (double)(now - f->t0_ms) / 1000.0;
	static const double bounds[6] = {0.01, 0.05, 0.1, 0.25, 0.5, 1};
	int64_t ttl_ms = DISTCLAIMS_FAIL_TTL_MS;

	if (ok) {
		int64_t exp = body_exp((const uint8_t *)f->resp.data, f->resp.len), left = exp - (int64_t)time(NULL);

		ttl_ms = exp == 0 || left <= 0 ? 0 : left > DISTCLAIMS_MAX_TTL_S ? DISTCLAIMS_MAX_TTL_S * 1000 : left * 1000;
		/* an answer without a usable exp is still handed to the requests waiting for it (the verifier will
		 * refuse it, with the reason) but not kept for later ones */
		if (ttl_ms == 0)
			ttl_ms = DISTCLAIMS_FAIL_TTL_MS;
	} else {
		log_fetch(f, why);
	}
	pthread_mutex_lock(&dc->mu);
	if (active) {
		unlink_fetch(&dc->active, f);
		dc->nactive--;
	}
	s = cache_slot(dc, f->key);
	slot_clear(s);
	memcpy(s->key, f->key, CACHE_KEY_LEN);
	s->ok = ok;
	if (ok) {
		s->body = (uint8_t *)kx_buf_steal(&f->resp, &s->len);
	} else {
		snprintf(s->why, sizeof(s->why), "%.159s", why);
	}
	s->expires_ms = now + ttl_ms;
	dc->st.fetches++;
	dc->st.lat_count++;
	dc->st.lat_sum_s += secs;
	for (int i = 0; i < 6; i++)
		if (secs <= bounds[i])
			dc->st.lat_buckets[i]++;
	pthread_mutex_unlock(&dc->mu);
	free_fetch(dc, f);
	notify(dc);
}

static void complete(distclaims *dc, fetch *f, CURLcode cc)
{
	char why[200];
	long code = 0;
	bool ok = false;
	uint64_t *counter;

	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
	if (f->resp_over || cc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(why, sizeof(why), "distributed claims: the source's answer is larger than %u bytes",
			 DISTCLAIMS_MAX_BODY);
		counter = &dc->st.too_large;
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(why, sizeof(why), "distributed claims: the source did not answer within %u ms", dc->timeout_ms);
		counter = &dc->st.timeout;
	} else if (cc != CURLE_OK) {
		snprintf(why, sizeof(why), "distributed claims: source unreachable: %.150s",
			 f->ebuf[0] ? f->ebuf : curl_easy_strerror(cc));
		counter = &dc->st.unreachable;
	} else if (code < 200 || code > 226) {
		/* the API server takes 200-226 (StatusOK..StatusIMUsed); a redirect is not followed, so it fails */
		snprintf(why, sizeof(why), "distributed claims: the source answered HTTP %ld", code);
		counter = &dc->st.http_status;
	} else {
		why[0] = '\0';
		ok = true;
		counter = &dc->st.ok;
	}
	pthread_mutex_lock(&dc->mu);
	(*counter)++;
	pthread_mutex_unlock(&dc->mu);
	finish(dc, f, ok, why, kx_mono_ms(), true);
}

/* https_multi_turn's callback: a transfer ended */
static void on_done(void *ud, void *priv, int result)
{
	complete(ud, priv, (CURLcode)result);
}

static void *dc_main(void *arg)
{
	distclaims *dc = arg;

	for (;;) {
		fetch *start = NULL, *expired = NULL, *f;
		int64_t now = kx_mono_ms(), next = now + 1000;
		bool stop;

		pthread_mutex_lock(&dc->mu);
		stop = dc->stopping;
		while (dc->pending != NULL && (stop || dc->pending->deadline_ms <= now)) {
			f = dc->pending;
			dc->pending = f->next;
			dc->npending--;
			f->next = expired;
			expired = f;
		}
		while (!stop && dc->pending != NULL && dc->nactive < dc->max_inflight) {
			f = dc->pending;
			dc->pending = f->next;
			dc->npending--;
			f->next = start;
			start = f;
			dc->nactive++;
		}
		if (dc->pending != NULL && dc->pending->deadline_ms < next)
			next = dc->pending->deadline_ms;
		pthread_mutex_unlock(&dc->mu);

		for (f = expired; f != NULL; f = expired) {
			expired = f->next;
			f->next = NULL;
			if (!stop) {
				pthread_mutex_lock(&dc->mu);
				dc->st.timeout++;
				pthread_mutex_unlock(&dc->mu);
			}
			finish(dc, f, false, stop ? "distributed claims: agent shutting down"
				   : "distributed claims: no fetch slot came free in time", now, false);
		}
		for (f = start; f != NULL; f = start) {
			start = f->next;
			f->next = NULL;
			if (start_fetch(dc, f, now)) {
				pthread_mutex_lock(&dc->mu);
				f->next = dc->active;
				dc->active = f;
				pthread_mutex_unlock(&dc->mu);
			} else {
				pthread_mutex_lock(&dc->mu);
				dc->nactive--;
				dc->st.unreachable++;
				pthread_mutex_unlock(&dc->mu);
				finish(dc, f, false, "distributed claims: the fetch could not start", now, false);
			}
		}
		if (stop) {
			pthread_mutex_lock(&dc->mu);
			while ((f = dc->active) != NULL) {
				dc->active = f->next;
				f->next = NULL;
				dc->nactive--;
				pthread_mutex_unlock(&dc->mu);
				finish(dc, f, false, "distributed claims: agent shutting down", kx_mono_ms(), false);
				pthread_mutex_lock(&dc->mu);
			}
			pthread_mutex_unlock(&dc->mu);
			break;
		}
		https_multi_turn(dc->multi, next, on_done, dc);
	}
	return NULL;
}

void distclaims_destroy(distclaims *dc)
{
	if (dc == NULL)
		return;
	if (dc->started) {
		pthread_mutex_lock(&dc->mu);
		dc->stopping = true;
		pthread_mutex_unlock(&dc->mu);
		curl_multi_wakeup(dc->multi);
		pthread_join(dc->th, NULL);
	}
	curl_multi_cleanup(dc->multi);
	for (unsigned i = 0; i < CACHE_SLOTS; i++)
		slot_clear(&dc->cache[i]);
	pthread_mutex_destroy(&dc->mu);
	pthread_mutex_destroy(&dc->listen_mu);
	free(dc);
}

void distclaims_stats_get(distclaims *dc, distclaims_stats *out)
{
	pthread_mutex_lock(&dc->mu);
	*out = dc->st;
	pthread_mutex_unlock(&dc->mu);
}

int distclaims_metrics(distclaims *dc, kx_buf *out)
{
	static const char *const rnames[DISTCLAIMS_R_COUNT] = {"reference", "fetch", "jwt", "claim_absent", "timeout",
								"disabled"};
	static const char *const bnames[6] = {"0.01", "0.05", "0.1", "0.25", "0.5", "1"};
	distclaims_stats s;

	distclaims_stats_get(dc, &s);
	/* appends are not checked one by one: the buffer's first failure sticks */
#define ADD(...) kx_buf_addf(out, __VA_ARGS__)
	ADD("# HELP kos_distributed_claims_fetches_total Distributed-claims sources fetched, by outcome.\n"
	    "# TYPE kos_distributed_claims_fetches_total counter\n");
	ADD("kos_distributed_claims_fetches_total{result=\"ok\"} %llu\n", (unsigned long long)s.ok);
	ADD("kos_distributed_claims_fetches_total{result=\"unreachable\"} %llu\n", (unsigned long long)s.unreachable);
	ADD("kos_distributed_claims_fetches_total{result=\"timeout\"} %llu\n", (unsigned long long)s.timeout);
	ADD("kos_distributed_claims_fetches_total{result=\"http_status\"} %llu\n", (unsigned long long)s.http_status);
	ADD("kos_distributed_claims_fetches_total{result=\"too_large\"} %llu\n", (unsigned long long)s.too_large);
	ADD("# HELP kos_distributed_claims_not_fetched_total Sources not fetched: not https, or too many fetches.\n"
	    "# TYPE kos_distributed_claims_not_fetched_total counter\n"
	    "kos_distributed_claims_not_fetched_total{reason=\"not_https\"} %llu\n"
	    "kos_distributed_claims_not_fetched_total{reason=\"busy\"} %llu\n",
	    (unsigned long long)s.not_https, (unsigned long long)s.busy);
	ADD("# HELP kos_distributed_claims_joined_total Lookups that waited for a fetch already under way.\n"
	    "# TYPE kos_distributed_claims_joined_total counter\nkos_distributed_claims_joined_total %llu\n"
	    "# HELP kos_distributed_claims_cache_hits_total Lookups answered from the fetched-answer cache.\n"
	    "# TYPE kos_distributed_claims_cache_hits_total counter\nkos_distributed_claims_cache_hits_total %llu\n",
	    (unsigned long long)s.joined, (unsigned long long)s.cache_hits);
	ADD("# HELP kos_distributed_claims_refusals_total Requests refused (401) because of distributed claims, by "
	    "reason.\n# TYPE kos_distributed_claims_refusals_total counter\n");
	for (int i = 0; i < DISTCLAIMS_R_COUNT; i++)
		ADD("kos_distributed_claims_refusals_total{reason=\"%s\"} %llu\n", rnames[i],
		    (unsigned long long)s.refusals[i]);
	ADD("# HELP kos_distributed_claims_fetch_duration_seconds Time from a fetch's start to its end.\n"
	    "# TYPE kos_distributed_claims_fetch_duration_seconds histogram\n");
	for (int i = 0; i < 6; i++)
		ADD("kos_distributed_claims_fetch_duration_seconds_bucket{le=\"%s\"} %llu\n", bnames[i],
		    (unsigned long long)s.lat_buckets[i]);
	ADD("kos_distributed_claims_fetch_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "kos_distributed_claims_fetch_duration_seconds_sum %.6f\n"
	    "kos_distributed_claims_fetch_duration_seconds_count %llu\n",
	    (unsigned long long)s.lat_count, s.lat_sum_s, (unsigned long long)s.lat_count);
#undef ADD
	return out->failed ? -1 : 0;
}
