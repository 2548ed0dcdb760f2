/* tokenreview.c — TokenReview for --token-passthrough on one reviewer thread (see tokenreview.h).
 *
 * Locking: rv->mu guards the queue (pending + active reviews and their waiters), the cache, the rate bucket,
 * the counters and the stop flag. The curl multi handle and the easy handles belong to the reviewer thread
 * alone; workers only wake it with curl_multi_wakeup(), which libcurl allows from any thread. Callbacks run
 * without the lock, after their review left every list.
 */
#include "tokenreview.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "b64url.h"
#include "cache.h"
#include "https.h"
#include "kx.h"
#include "log.h"

#define DEF_TIMEOUT_MS 700u
#define DEF_RATE 20u
#define DEF_INFLIGHT 16u
#define DEF_WAITING 1024u
#define CACHE_SLOTS 1024u
#define REVIEW_PATH "/apis/authentication.k8s.io/v1/tokenreviews"
#define SAR_PATH "/apis/authorization.k8s.io/v1/subjectaccessreviews"

const char *tokenreview_strerror(int result)
{
	switch (result) {
	case TOKENREVIEW_OK: return "authenticated";
	case TOKENREVIEW_E_DENIED: return "not authenticated";
	case TOKENREVIEW_E_AUDIENCE: return "audience mismatch";
	case TOKENREVIEW_E_RATE: return "rate limit";
	case TOKENREVIEW_E_BUSY: return "too many waiting";
	case TOKENREVIEW_E_UNAVAILABLE: return "API server unavailable";
	case TOKENREVIEW_E_RESPONSE: return "malformed response";
	case TOKENREVIEW_E_SHUTDOWN: return "shutting down";
	case TOKENREVIEW_E_NOMEM: return "out of memory";
	}
	return "unknown";
}

/* ---- parser ------------------------------------------------------------------------------------------------ */

static bool clean_str(const char *s, size_t cap)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (kx_is_ctl((uint8_t)s[i]) || i + 1 >= cap)
			return false;
	return true;
}

/* The common frame of the API server's review answers: a JSON object of this kind with an object status. The
 * document in *doc (the caller deletes it) and its status in *st, or TOKENREVIEW_E_RESPONSE (nothing to free). */
static int review_doc(const uint8_t *p, size_t len, const char *kind_name, cJSON **doc, const cJSON **st)
{
	const cJSON *kind;

	if (len == 0 || len > TOKENREVIEW_MAX_RESPONSE)
		return TOKENREVIEW_E_RESPONSE;
	/* cJSON reads at most len bytes; a NUL inside ends the document early and is refused below */
	*doc = cJSON_ParseWithLength((const char *)p, len);
	if (*doc == NULL)
		return TOKENREVIEW_E_RESPONSE;
	kind = cJSON_GetObjectItemCaseSensitive(*doc, "kind");
	*st = cJSON_GetObjectItemCaseSensitive(*doc, "status");
	if (!cJSON_IsObject(*doc) || !cJSON_IsString(kind) || strcmp(kind->valuestring, kind_name) != 0 ||
	    !cJSON_IsObject(*st)) {
		cJSON_Delete(*doc);
		*doc = NULL;
		return TOKENREVIEW_E_RESPONSE;
	}
	return TOKENREVIEW_OK;
}

int tokenreview_parse(const uint8_t *p, size_t len, const char *const *auds, size_t nauds, tokenreview_parsed *out)
{
	tokenreview_parsed r;
	cJSON *doc;
	const cJSON *st, *auth, *user, *name, *got, *a;
	int rc = TOKENREVIEW_E_RESPONSE;

	if (review_doc(p, len, "TokenReview", &doc, &st) != TOKENREVIEW_OK)
		return TOKENREVIEW_E_RESPONSE;
	memset(&r, 0, sizeof(r));
	auth = cJSON_GetObjectItemCaseSensitive(st, "authenticated");
	if (auth != NULL && !cJSON_IsBool(auth))
		goto out;
	r.authenticated = auth != NULL && cJSON_IsTrue(auth);
	user = cJSON_GetObjectItemCaseSensitive(st, "user");
	name = cJSON_IsObject(user) ? cJSON_GetObjectItemCaseSensitive(user, "username") : NULL;
	if (cJSON_IsString(name) && clean_str(name->valuestring, sizeof(r.user)))
		snprintf(r.user, sizeof(r.user), "%s", name->valuestring);
	r.audience_ok = nauds == 0;
	got = cJSON_GetObjectItemCaseSensitive(st, "audiences");
	if (got != NULL && !cJSON_IsArray(got) && !cJSON_IsNull(got))
		goto out;
	cJSON_ArrayForEach(a, got) {
		if (!cJSON_IsString(a))
			goto out;
		for (size_t i = 0; i < nauds && !r.audience_ok; i++)
			if (strcmp(a->valuestring, auds[i]) == 0)
				r.audience_ok = true;
	}
	*out = r;
	rc = TOKENREVIEW_OK;
out:
	cJSON_Delete(doc);
	return rc;
}

int tokenreview_sar_parse(const uint8_t *p, size_t len, tokenreview_sar_parsed *out)
{
	tokenreview_sar_parsed r;
	cJSON *doc;
	const cJSON *st, *allowed, *denied, *reason;
	int rc = TOKENREVIEW_E_RESPONSE;

	if (review_doc(p, len, "SubjectAccessReview", &doc, &st) != TOKENREVIEW_OK)
		return TOKENREVIEW_E_RESPONSE;
	memset(&r, 0, sizeof(r));
	allowed = cJSON_GetObjectItemCaseSensitive(st, "allowed");
	denied = cJSON_GetObjectItemCaseSensitive(st, "denied");
	reason = cJSON_GetObjectItemCaseSensitive(st, "reason");
	/* allowed is required (the API server always sets it); anything but a boolean is not a review */
	if (!cJSON_IsBool(allowed) || (denied != NULL && !cJSON_IsBool(denied)) ||
	    (reason != NULL && !cJSON_IsString(reason) && !cJSON_IsNull(reason)))
		goto out;
	/* denied true wins over allowed true, as the API server's own authorizer chain reads it */
	r.allowed = cJSON_IsTrue(allowed) && !(denied != NULL && cJSON_IsTrue(denied));
	/* the reason is shown to the client after the API server's wording: kept only when it is clean text */
	if (cJSON_IsString(reason) && clean_str(reason->valuestring, sizeof(r.reason)))
		snprintf(r.reason, sizeof(r.reason), "%s", reason->valuestring);
	*out = r;
	rc = TOKENREVIEW_OK;
out:
	cJSON_Delete(doc);
	return rc;
}

int tokenreview_token_issuer(const uint8_t *p, size_t len, char *iss, size_t cap)
{
	const uint8_t *d1, *d2;
	uint8_t *buf;
	size_t n, plen = 0;
	cJSON *doc;
	const cJSON *v;
	int rc = 0;

	d1 = memchr(p, '.', len);
	if (d1 == NULL)
		return 0;
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - p));
	if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - p)) != NULL)
		return 0;
	n = (size_t)(d2 - d1 - 1);
	buf = malloc(b64url_decoded_max(n) + 1);
	if (buf == NULL)
		return -1;
	if (b64url_decode(d1 + 1, n, buf, b64url_decoded_max(n) + 1, &plen) != 0) {
		free(buf);
		return 0;
	}
	doc = cJSON_ParseWithLength((const char *)buf, plen);
	free(buf);
	v = cJSON_GetObjectItemCaseSensitive(doc, "iss");
	if (cJSON_IsObject(doc) && cJSON_IsString(v) && strlen(v->valuestring) < cap) {
		memcpy(iss, v->valuestring, strlen(v->valuestring) + 1);
		rc = 1;
	}
	cJSON_Delete(doc);
	return rc;
}

/* ---- reviewer ---------------------------------------------------------------------------------------------- */

typedef struct waiter {
	struct waiter *next;
	tokenreview_done_fn done;
	void *ud;
} waiter;

typedef struct review {
	struct review *next;
	struct review *snext;  /* the reviewer thread's list of transfers to start (it is on active already) */
	uint8_t key[CACHE_KEY_LEN];
	int64_t deadline_ms;
	waiter *waiters;
	CURL *easy;
	struct curl_slist *hdrs;
	satoken_val *sa;
	char *body;         /* request */
	kx_buf resp;        /* response, at most TOKENREVIEW_MAX_RESPONSE */
	bool resp_over;
	char ebuf[CURL_ERROR_SIZE];
	size_t tlen;
	uint8_t tok[];
} review;

typedef struct slot {
	uint8_t key[CACHE_KEY_LEN];
	int64_t expires_ms; /* 0 = empty */
	int result;
	char user[TOKENREVIEW_USER_MAX];
} slot;

struct tokenreview {
	bool sar;           /* SubjectAccessReviews: review bytes are the request body (see tokenreview.h) */
	char *url;          /* full endpoint URL */
	char *ca_file;
	char **auds;
	size_t nauds;
	satoken *sa;
	unsigned timeout_ms, ttl_ms, rate, max_inflight, max_waiting;

	pthread_t th;
	bool started, joined;
	CURLM *multi;

	pthread_mutex_t mu;
	bool stopping;
	review *pending, *active; /* singly linked; pending in arrival (so deadline) order */
	unsigned nactive, nwaiting;
	double bucket;
	int64_t bucket_ms;
	slot *cache;
	tokenreview_stats st;
};

static void *rv_main(void *arg);

int tokenreview_create(const tokenreview_config *cfg, tokenreview **out, char *err, size_t errlen)
{
	tokenreview *rv;
	size_t n;
	int init_rc;

	if (cfg->url == NULL || strncmp(cfg->url, "https://", 8) != 0 || cfg->sa == NULL ||
	    cfg->naudiences > TOKENREVIEW_MAX_AUDIENCES || cfg->cache_ttl_s > TOKENREVIEW_MAX_TTL_S) {
		snprintf(err, errlen, "token review: an https API server URL, the service-account token, at most %d "
			 "audiences and a cache TTL of at most %ds are required", TOKENREVIEW_MAX_AUDIENCES,
			 TOKENREVIEW_MAX_TTL_S);
		return -1;
	}
	init_rc = https_global_init();
	if (init_rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl init: %s", curl_easy_strerror((CURLcode)init_rc));
		return -1;
	}
	rv = calloc(1, sizeof(*rv));
	if (rv == NULL)
		goto nomem;
	n = strlen(cfg->url);
	while (n > 8 && cfg->url[n - 1] == '/')
		n--;
	rv->sar = cfg->sar;
	rv->url = malloc(n + sizeof(REVIEW_PATH) + sizeof(SAR_PATH));
	rv->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
	rv->auds = calloc(cfg->naudiences + 1, sizeof(char *));
	rv->cache = cfg->cache_ttl_s ? calloc(CACHE_SLOTS, sizeof(slot)) : NULL;
	if (rv->url == NULL || (cfg->ca_file && rv->ca_file == NULL) || rv->auds == NULL ||
	    (cfg->cache_ttl_s && rv->cache == NULL))
		goto nomem_free;
	memcpy(rv->url, cfg->url, n);
	if (rv->sar)
		memcpy(rv->url + n, SAR_PATH, sizeof(SAR_PATH));
	else
		memcpy(rv->url + n, REVIEW_PATH, sizeof(REVIEW_PATH));
	for (size_t i = 0; i < cfg->naudiences; i++) {
		rv->auds[i] = strdup(cfg->audiences[i]);
		if (rv->auds[i] == NULL)
			goto nomem_free;
		rv->nauds++;
	}
	rv->sa = cfg->sa;
	rv->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEF_TIMEOUT_MS;
	rv->ttl_ms = cfg->cache_ttl_s * 1000u;
	rv->rate = cfg->rate ? cfg->rate : DEF_RATE;
	rv->max_inflight = cfg->max_inflight ? cfg->max_inflight : DEF_INFLIGHT;
	rv->max_waiting = cfg->max_waiting ? cfg->max_waiting : DEF_WAITING;
	rv->bucket = rv->rate;
	rv->bucket_ms = kx_mono_ms();
	rv->multi = curl_multi_init();
	if (rv->multi == NULL)
		goto nomem_free;
	if (pthread_mutex_init(&rv->mu, NULL) != 0)
		goto nomem_free;
	if (pthread_create(&rv->th, NULL, rv_main, rv) != 0) {
		pthread_mutex_destroy(&rv->mu);
		snprintf(err, errlen, "token review: cannot start the reviewer thread");
		rv->started = false;
		goto fail;
	}
	rv->started = true;
	*out = rv;
	return 0;
nomem_free:
	snprintf(err, errlen, "token review: out of memory");
fail:
	if (rv->multi)
		curl_multi_cleanup(rv->multi);
	for (size_t i = 0; i < rv->nauds; i++)
		free(rv->auds[i]);
	free(rv->auds);
	free(rv->cache);
	free(rv->ca_file);
	free(rv->url);
	free(rv);
	return -1;
nomem:
	snprintf(err, errlen, "token review: out of memory");
	return -1;
}

/* ---- cache and rate (rv->mu held) ----------------------------------------------------------------------- */

static slot *cache_slot(tokenreview *rv, const uint8_t key[CACHE_KEY_LEN])
{
	uint32_t h;

	memcpy(&h, key, sizeof(h));
	return &rv->cache[h % CACHE_SLOTS];
}

static bool cache_find(tokenreview *rv, const uint8_t key[CACHE_KEY_LEN], int64_t now, int *result, char *user,
		       size_t usercap)
{
	slot *s;

	if (rv->cache == NULL)
		return false;
	s = cache_slot(rv, key);
	if (s->expires_ms == 0 || s->expires_ms <= now || memcmp(s->key, key, CACHE_KEY_LEN) != 0)
		return false;
	*result = s->result;
	if (user != NULL && usercap > 0)
		snprintf(user, usercap, "%s", s->user);
	return true;
}

static void cache_store(tokenreview *rv, const uint8_t key[CACHE_KEY_LEN], int result, const char *user)
{
	slot *s;

	if (rv->cache == NULL)
		return;
	s = cache_slot(rv, key);
	memcpy(s->key, key, CACHE_KEY_LEN);
	s->result = result;
	snprintf(s->user, sizeof(s->user), "%s", user);
	s->expires_ms = kx_mono_ms() + rv->ttl_ms;
}

static bool rate_take(tokenreview *rv, int64_t now)
{
	double add = (double)(now - rv->bucket_ms) * rv->rate / 1000.0;

	rv->bucket_ms = now;
	rv->bucket += add;
	if (rv->bucket > rv->rate)
		rv->bucket = rv->rate;
	if (rv->bucket < 1.0)
		return false;
	rv->bucket -= 1.0;
	return true;
}

static review *find_review(review *list, const uint8_t key[CACHE_KEY_LEN])
{
	for (; list != NULL; list = list->next)
		if (memcmp(list->key, key, CACHE_KEY_LEN) == 0)
			return list;
	return NULL;
}

static int submit(tokenreview *rv, const uint8_t *tok, size_t len, char *user, size_t usercap,
		  tokenreview_done_fn done, void *ud);

int tokenreview_check(tokenreview *rv, const uint8_t *tok, size_t len, char *user, size_t usercap,
		      tokenreview_done_fn done, void *ud)
{
	if (rv->sar)
		return TOKENREVIEW_E_RESPONSE; /* a programming error: this reviewer sends SubjectAccessReviews */
	return submit(rv, tok, len, user, usercap, done, ud);
}

int tokenreview_sar_check(tokenreview *rv, const char *body, size_t len, char *reason, size_t cap,
			  tokenreview_done_fn done, void *ud)
{
	if (!rv->sar)
		return TOKENREVIEW_E_RESPONSE;
	return submit(rv, (const uint8_t *)body, len, reason, cap, done, ud);
}

/* One review of the bytes tok[0..len) (a token, or a SubjectAccessReview body), keyed by their SHA-256:
 * answered from the cache, joined to the same review under way, or queued. */
static int submit(tokenreview *rv, const uint8_t *tok, size_t len, char *user, size_t usercap,
		  tokenreview_done_fn done, void *ud)
{
	uint8_t key[CACHE_KEY_LEN];
	int64_t now = kx_mono_ms();
	review *r;
	waiter *w;
	int result;

	if (user != NULL && usercap > 0)
		user[0] = '\0';
	cache_key(tok, len, key);
	w = malloc(sizeof(*w));
	if (w == NULL)
		return TOKENREVIEW_E_NOMEM;
	w->done = done;
	w->ud = ud;
	pthread_mutex_lock(&rv->mu);
	if (rv->stopping) {
		result = TOKENREVIEW_E_SHUTDOWN;
		goto now_answer;
	}
	if (cache_find(rv, key, now, &result, user, usercap)) {
		rv->st.cache_hits++;
		goto now_answer;
	}
	if (rv->nwaiting >= rv->max_waiting) {
		rv->st.busy++;
		result = TOKENREVIEW_E_BUSY;
		goto now_answer;
	}
	r = find_review(rv->pending, key);
	if (r == NULL)
		r = find_review(rv->active, key);
	if (r != NULL) {
		/* kubectl's first call fans out into many parallel requests with one token: one review for all */
		rv->st.joined++;
		goto wait;
	}
	if (!rate_take(rv, now)) {
		rv->st.rate_limited++;
		result = TOKENREVIEW_E_RATE;
		goto now_answer;
	}
	r = calloc(1, sizeof(*r) + len);
	if (r == NULL) {
		result = TOKENREVIEW_E_NOMEM;
		goto now_answer;
	}
	memcpy(r->key, key, CACHE_KEY_LEN);
	r->deadline_ms = now + rv->timeout_ms;
	r->tlen = len;
	memcpy(r->tok, tok, len);
	/* append: pending stays in deadline order */
	{
		review **pp = &rv->pending;

		while (*pp != NULL)
			pp = &(*pp)->next;
		*pp = r;
	}
wait:
	w->next = r->waiters;
	r->waiters = w;
	rv->nwaiting++;
	pthread_mutex_unlock(&rv->mu);
	curl_multi_wakeup(rv->multi);
	return TOKENREVIEW_PENDING;
now_answer:
	pthread_mutex_unlock(&rv->mu);
	free(w);
	return result;
}

/* ---- the reviewer thread --------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	review *r = ud;
	size_t len = size * n;
	int rc = kx_buf_add(&r->resp, p, len);

	if (rc != 0) {
		r->resp_over = rc == KX_E_TOO_BIG;
		return 0; /* aborts the transfer */
	}
	return len;
}

static char *request_body(const tokenreview *rv, const review *r)
{
	cJSON *doc = cJSON_CreateObject(), *spec, *auds;
	char *tok = malloc(r->tlen + 1), *s = NULL;

	if (doc == NULL || tok == NULL)
		goto out;
	memcpy(tok, r->tok, r->tlen);
	tok[r->tlen] = '\0';
	if (rv->sar) { /* the body was built by the caller (impersonate.c): sent as it is */
		s = tok;
		tok = NULL;
		goto out;
	}
	if (cJSON_AddStringToObject(doc, "apiVersion", "authentication.k8s.io/v1") == NULL ||
	    cJSON_AddStringToObject(doc, "kind", "TokenReview") == NULL ||
	    (spec = cJSON_AddObjectToObject(doc, "spec")) == NULL ||
	    cJSON_AddStringToObject(spec, "token", tok) == NULL)
		goto out;
	if (rv->nauds > 0) {
		auds = cJSON_CreateStringArray((const char *const *)rv->auds, (int)rv->nauds);
		if (auds == NULL || !cJSON_AddItemToObject(spec, "audiences", auds)) {
			cJSON_Delete(auds);
			goto out;
		}
	}
	s = cJSON_PrintUnformatted(doc);
out:
	if (tok != NULL) {
		/* the token leaves no copy behind in freed memory */
		memset(tok, 0, r->tlen);
		free(tok);
	}
	cJSON_Delete(doc);
	return s;
}

/* Sets up r's transfer; false when it cannot start (the review then fails as unavailable). */
static bool start_review(tokenreview *rv, review *r, int64_t now)
{
	long left = (long)(r->deadline_ms - now);
	char *auth = NULL;

	if (left <= 0)
		return false;
	r->sa = satoken_acquire(rv->sa);
	r->body = r->sa ? request_body(rv, r) : NULL;
	/* the empty append gives the answer its block up front: an empty answer is "", never NULL */
	kx_buf_init(&r->resp, TOKENREVIEW_MAX_RESPONSE);
	r->easy = curl_easy_init();
	if (r->sa == NULL || r->body == NULL || kx_buf_add(&r->resp, "", 0) != 0 || r->easy == NULL)
		return false;
	auth = malloc(sizeof("Authorization: ") + r->sa->len);
	if (auth == NULL)
		return false;
	memcpy(auth, "Authorization: ", sizeof("Authorization: ") - 1);
	memcpy(auth + sizeof("Authorization: ") - 1, r->sa->str, r->sa->len + 1);
	r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (r->hdrs != NULL)
		r->hdrs = curl_slist_append(r->hdrs, "Accept: application/json");
	{
		struct curl_slist *h = r->hdrs ? curl_slist_append(r->hdrs, auth) : NULL;

		memset(auth, 0, strlen(auth));
		free(auth);
		if (h == NULL)
			return false;
		r->hdrs = h;
	}
	https_setup(r->easy, rv->url, rv->ca_file, NULL, 0, (unsigned)left, TOKENREVIEW_MAX_RESPONSE);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->ebuf);
	return curl_multi_add_handle(rv->multi, r->easy) == CURLM_OK;
}

static void free_review(tokenreview *rv, review *r)
{
	if (r->easy != NULL) {
		curl_multi_remove_handle(rv->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->hdrs);
	if (r->body != NULL) {
		memset(r->body, 0, strlen(r->body));
		free(r->body);
	}
	kx_buf_free(&r->resp);
	satoken_val_release(r->sa);
	memset(r->tok, 0, r->tlen);
	free(r);
}

static void unlink_review(review **list, review *r)
{
	for (review **pp = list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			r->next = NULL;
			return;
		}
	}
}

/* Answers every waiter of r and frees r (rv->mu not held). r is off the lists, or — active — still on the active
 * list: then it leaves it under the same lock that stores the verdict, so a request for the same key finds either
 * the review (and joins it) or the cached verdict, never neither (which would ask again: not single flight). */
static void finish(tokenreview *rv, review *r, int result, const char *user, bool active)
{
	waiter *w, *next;
	unsigned n = 0;

	pthread_mutex_lock(&rv->mu);
	if (active) {
		unlink_review(&rv->active, r);
		rv->nactive--;
	}
	w = r->waiters;
	r->waiters = NULL;
	for (waiter *x = w; x != NULL; x = x->next)
		n++;
	rv->nwaiting -= n;
	if (result == TOKENREVIEW_OK || result == TOKENREVIEW_E_DENIED || result == TOKENREVIEW_E_AUDIENCE)
		cache_store(rv, r->key, result, user);
	pthread_mutex_unlock(&rv->mu);
	free_review(rv, r);
	for (; w != NULL; w = next) {
		next = w->next;
		w->done(w->ud, result, user);
		free(w);
	}
}

static void log_failure(const char *what, const char *why, long code)
{
	log_line l;

	log_begin(&l, LOG_LEVEL_WARN, "tokenreview");
	log_str(&l, "msg", what);
	if (why != NULL)
		log_str(&l, "error", why);
	if (code != 0)
		log_int(&l, "http_status", code);
	log_end(&l);
}

static void count(tokenreview *rv, int result)
{
	pthread_mutex_lock(&rv->mu);
	rv->st.reviews++;
	if (result == TOKENREVIEW_OK)
		rv->st.authenticated++;
	else if (result == TOKENREVIEW_E_DENIED || result == TOKENREVIEW_E_AUDIENCE)
		rv->st.denied++;
	else
		rv->st.failed++;
	pthread_mutex_unlock(&rv->mu);
}

static void complete(tokenreview *rv, review *r, CURLcode cc)
{
	tokenreview_parsed p;
	long code = 0;
	const uint8_t *resp = (const uint8_t *)r->resp.data; /* never NULL: see start_review */

	memset(&p, 0, sizeof(p));
	int result;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
	if (cc != CURLE_OK) {
		result = TOKENREVIEW_E_UNAVAILABLE;
		/* over the cap by its Content-Length (https_setup) or by its bytes (on_body): one reason */
		log_failure("token review failed", r->resp_over || cc == CURLE_FILESIZE_EXCEEDED ? "response too large"
					      : r->ebuf[0] ? r->ebuf : curl_easy_strerror(cc), 0);
	} else if (code != 200 && code != 201) {
		result = TOKENREVIEW_E_UNAVAILABLE;
		log_failure(rv->sar ? "subject access review refused by the API server (RBAC: create "
			    "subjectaccessreviews?)" : "token review refused by the API server (RBAC: create tokenreviews?)",
			    NULL, code);
	} else if (rv->sar) {
		tokenreview_sar_parsed sp;

		if ((result = tokenreview_sar_parse(resp, r->resp.len, &sp)) != TOKENREVIEW_OK) {
			log_failure("subject access review answer is not a SubjectAccessReview", NULL, code);
		} else {
			result = sp.allowed ? TOKENREVIEW_OK : TOKENREVIEW_E_DENIED;
			snprintf(p.user, sizeof(p.user), "%s", sp.reason);
		}
	} else if ((result = tokenreview_parse(resp, r->resp.len, (const char *const *)rv->auds, rv->nauds,
					       &p)) != TOKENREVIEW_OK) {
		log_failure("token review answer is not a TokenReview", NULL, code);
	} else {
		result = !p.authenticated ? TOKENREVIEW_E_DENIED
			 : !p.audience_ok ? TOKENREVIEW_E_AUDIENCE : TOKENREVIEW_OK;
	}
	count(rv, result);
	/* TokenReview: the user of an authenticated token; SubjectAccessReview: the reason of a verdict */
	finish(rv, r, result, result == TOKENREVIEW_OK || (rv->sar && result == TOKENREVIEW_E_DENIED) ? p.user : "",
	       true);
}

/* https_multi_turn's callback: a transfer ended */
static void on_done(void *ud, void *priv, int result)
{
	complete(ud, priv, (CURLcode)result);
}

static void *rv_main(void *arg)
{
	tokenreview *rv = arg;

	for (;;) {
		review *start = NULL, *expired = NULL, *r;
		int64_t now = kx_mono_ms(), next = now + 1000;
		bool stop;

		pthread_mutex_lock(&rv->mu);
		stop = rv->stopping;
		/* reviews that waited for a slot until their deadline, then as many new transfers as slots allow */
		while (rv->pending != NULL && (stop || rv->pending->deadline_ms <= now)) {
			r = rv->pending;
			rv->pending = r->next;
			r->next = expired;
			expired = r;
		}
		/* on the active list at once, so that a request for the same key joins it while its transfer starts */
		while (!stop && rv->pending != NULL && rv->nactive < rv->max_inflight) {
			r = rv->pending;
			rv->pending = r->next;
			r->next = rv->active;
			rv->active = r;
			r->snext = start;
			start = r;
			rv->nactive++;
		}
		if (rv->pending != NULL && rv->pending->deadline_ms < next)
			next = rv->pending->deadline_ms;
		pthread_mutex_unlock(&rv->mu);

		for (r = expired; r != NULL; r = expired) {
			expired = r->next;
			r->next = NULL;
			if (!stop)
				count(rv, TOKENREVIEW_E_UNAVAILABLE);
			finish(rv, r, stop ? TOKENREVIEW_E_SHUTDOWN : TOKENREVIEW_E_UNAVAILABLE, "", false);
		}
		for (r = start; r != NULL; r = start) {
			start = r->snext;
			r->snext = NULL;
			if (!start_review(rv, r, now)) {
				log_failure("token review could not start", r->sa == NULL ? "service-account token not "
					    "loaded" : "out of memory or time", 0);
				count(rv, TOKENREVIEW_E_UNAVAILABLE);
				finish(rv, r, TOKENREVIEW_E_UNAVAILABLE, "", true);
			}
		}
		if (stop) {
			pthread_mutex_lock(&rv->mu);
			while ((r = rv->active) != NULL) {
				rv->active = r->next;
				r->next = NULL;
				rv->nactive--;
				pthread_mutex_unlock(&rv->mu);
				finish(rv, r, TOKENREVIEW_E_SHUTDOWN, "", false);
				pthread_mutex_lock(&rv->mu);
			}
			pthread_mutex_unlock(&rv->mu);
			break;
		}
		https_multi_turn(rv->multi, next, on_done, rv);
	}
	return NULL;
}

void tokenreview_stop(tokenreview *rv)
{
	if (rv == NULL || !rv->started || rv->joined)
		return;
	pthread_mutex_lock(&rv->mu);
	rv->stopping = true;
	pthread_mutex_unlock(&rv->mu);
	curl_multi_wakeup(rv->multi);
	pthread_join(rv->th, NULL);
	rv->joined = true;
}

void tokenreview_destroy(tokenreview *rv)
{
	if (rv == NULL)
		return;
	tokenreview_stop(rv);
	curl_multi_cleanup(rv->multi);
	pthread_mutex_destroy(&rv->mu);
	for (size_t i = 0; i < rv->nauds; i++)
		free(rv->auds[i]);
	free(rv->auds);
	if (rv->cache != NULL) {
		memset(rv->cache, 0, CACHE_SLOTS * sizeof(slot));
		free(rv->cache);
	}
	free(rv->ca_file);
	free(rv->url);
	free(rv);
}

void tokenreview_stats_get(tokenreview *rv, tokenreview_stats *out)
{
	pthread_mutex_lock(&rv->mu);
	*out = rv->st;
	out->waiting = rv->nwaiting;
	pthread_mutex_unlock(&rv->mu);
}

int tokenreview_metrics(tokenreview *rv, kx_buf *out)
{
	tokenreview_stats s;

	tokenreview_stats_get(rv, &s);
	/* the same families for both kinds of review, under their own names */
	const char *f = rv->sar ? "kos_subjectaccessreview" : "kos_tokenreview";
	const char *what = rv->sar ? "SubjectAccessReviews sent to the API server for --allow-client-impersonation"
				   : "TokenReviews sent to the API server for --token-passthrough";
	const char *ok = rv->sar ? "allowed" : "authenticated";

	kx_buf_addf(out,
		    "# HELP %ss_total %s, by outcome.\n# TYPE %ss_total counter\n"
		    "%ss_total{result=\"%s\"} %llu\n"
		    "%ss_total{result=\"denied\"} %llu\n"
		    "%ss_total{result=\"failed\"} %llu\n"
		    "# HELP %s_cache_hits_total Verdicts answered from the cache.\n"
		    "# TYPE %s_cache_hits_total counter\n%s_cache_hits_total %llu\n"
		    "# HELP %s_joined_total Requests that waited for a review already under way.\n"
		    "# TYPE %s_joined_total counter\n%s_joined_total %llu\n"
		    "# HELP %s_rate_limited_total Reviews not made: over the review rate.\n"
		    "# TYPE %s_rate_limited_total counter\n%s_rate_limited_total %llu\n"
		    "# HELP %s_busy_total Requests refused: too many waiting for reviews.\n"
		    "# TYPE %s_busy_total counter\n%s_busy_total %llu\n"
		    "# HELP %s_waiting Requests waiting for a review now.\n"
		    "# TYPE %s_waiting gauge\n%s_waiting %u\n",
		    f, what, f, f, ok, (unsigned long long)s.authenticated, f, (unsigned long long)s.denied, f,
		    (unsigned long long)s.failed, f, f, f, (unsigned long long)s.cache_hits, f, f, f,
		    (unsigned long long)s.joined, f, f, f, (unsigned long long)s.rate_limited, f, f, f,
		    (unsigned long long)s.busy, f, f, f, s.waiting);
	return out->failed ? -1 : 0;
}
