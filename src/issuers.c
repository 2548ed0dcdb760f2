/*
 * issuers.c — several authenticators behind one verify call, one shared cache, reload (see issuers.h).
 *
 * A set is immutable once built. Requests take a reference on the current set under a mutex held only for a
 * pointer load and an increment (the same cost as taking the key set's reference), so a reload never waits for
 * requests and a request never sees a half-built set. Replaced sets go to a retired list that the main thread
 * reaps: providers are stopped on the thread that started them, and no worker ever frees a set.
 *
 * The cache is shared by the authenticators of a set. An identity records the fingerprint of the key that
 * verified it, salted with its authenticator's index, so a hit names its authenticator: the key is checked
 * against that authenticator's keys only (the same key published by two issuers cannot keep another's token
 * alive).
 */
#include "issuers.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "jwt.h"
#include "kx.h"

typedef struct iset {
	atomic_uint refs;
	uint64_t gen;
	authcfg_config *cfg;
	verifier **v;
	size_t n;
	cache *cache;
	size_t max_token;
	struct iset *next_retired;
} iset;

struct issuers {
	char *path;                 /* NULL: the --oidc-* flags' one authenticator (issuers_create_flags) */
	verifier_config tmpl;
	char *algs;                 /* tmpl.signing_algs copy */
	pthread_mutex_t mu;         /* cur, retired, listener */
	iset *cur;
	iset *retired;
	uint64_t next_gen;
	void (*listen_fn)(void *ud);
	void *listen_ud;
	/* a validated new set whose keys are still loading (main thread only: no request ever sees it) */
	iset *pending;
	struct timespec pending_since; /* CLOCK_MONOTONIC */
	atomic_uint_fast64_t reload_ok, reload_failed;
	atomic_int_fast64_t last_reload_time; /* unix seconds of the last reload's outcome, 0 = none yet */
	atomic_int last_reload_ok;            /* 1 when that outcome was a swap, 0 when the file was refused */
	bool static_keys;                     /* issuers_create_flags_with_keys: no provider, keys given */
	jwks_keyset *first_keys;              /* ... the first of them (borrowed, during creation only) */
};

/* Which authenticator last answered "unknown key id" on this thread (for issuers_refresh_soon). */
static _Thread_local uint64_t tl_gen;
static _Thread_local size_t tl_ix = SIZE_MAX;

static uint64_t salt(size_t i)
{
	uint64_t z = (uint64_t)i + 0x9E3779B97F4A7C15ULL;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void set_free(iset *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		verifier_destroy(s->v[i]);
	free(s->v);
	cache_destroy(s->cache);
	authcfg_free(s->cfg);
	free(s);
}

/* verifier_config.claims_peer for the set's authenticators: the one whose issuer URL is iss, or NULL. Called
 * while verifying, when the set is complete and held by the request. */
static verifier *set_peer(void *ud, const char *iss)
{
	iset *s = ud;

	for (size_t i = 0; i < s->n; i++)
		if (strcmp(verifier_issuer(s->v[i]), iss) == 0)
			return s->v[i];
	return NULL;
}

static int set_build(issuers *h, iset **out, char *err, size_t errlen)
{
	char e[768] = "";
	iset *s;
	int rc;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		kx_seterr(err, errlen, "out of memory");
		return -1;
	}
	atomic_init(&s->refs, 1);
	rc = h->path != NULL ? authcfg_load_file(h->path, &s->cfg, e, sizeof(e)) : 0;
	if (rc != 0) {
		kx_seterr(err, errlen, "--authentication-config %s: %s", h->path, e[0] ? e : authcfg_strerror(rc));
		goto fail;
	}
	s->max_token = h->tmpl.max_token_bytes ? h->tmpl.max_token_bytes : JWT_DEFAULT_MAX_BYTES;
	{
		size_t entries = h->tmpl.cache_entries ? h->tmpl.cache_entries : 65536;
		size_t max_bytes = h->tmpl.cache_max_bytes ? h->tmpl.cache_max_bytes : VERIFIER_CACHE_MAX_BYTES;

		if (cache_table_bytes(entries) > max_bytes) {
			kx_seterr(err, errlen, "--cache-entries %zu needs %zu bytes of table, more than --cache-max-bytes %zu",
			       entries, cache_table_bytes(entries), max_bytes);
			goto fail;
		}
		if (cache_create(entries, max_bytes, h->tmpl.cache_ttl_s ? h->tmpl.cache_ttl_s : 600, &s->cache) != 0) {
			kx_seterr(err, errlen, "cannot allocate the token cache");
			goto fail;
		}
	}
	if ((s->v = calloc(s->cfg != NULL && s->cfg->njwt > 0 ? s->cfg->njwt : 1, sizeof(*s->v))) == NULL) {
		kx_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (s->cfg == NULL) {
		/* the flags: the verifier turns them into their one authenticator itself (flagcfg.h) */
		verifier_config vc = h->tmpl;

		vc.authn = NULL;
		vc.claims_peer = set_peer;
		vc.claims_peer_ud = s;
		if ((h->static_keys ? verifier_create_with_keys(&vc, h->first_keys, &s->v[0], err, errlen)
				    : verifier_create(&vc, &s->v[0], err, errlen)) != 0)
			goto fail;
		s->n = 1;
	}
	for (size_t i = 0; s->cfg != NULL && i < s->cfg->njwt; i++) {
		const authcfg_issuer *is = &s->cfg->jwt[i];
		verifier_config vc = h->tmpl;

		vc.oidc.issuer_url = is->url;
		vc.oidc.discovery_url = is->discovery_url;
		vc.oidc.ca_pem = is->certificate_authority;
		vc.oidc.ca_pem_len = is->certificate_authority_len;
		vc.oidc.ca_file = NULL;
		vc.client_id = NULL;
		vc.username_claim = vc.username_prefix = vc.groups_claim = vc.groups_prefix = NULL;
		vc.nrequired_claims = 0;
		vc.authn = is;
		vc.claims_peer = set_peer;
		vc.claims_peer_ud = s;
		if (verifier_create(&vc, &s->v[i], e, sizeof(e)) != 0) {
			kx_seterr(err, errlen, "--authentication-config %s: jwt[%zu] (%s): %s", h->path, i, is->url, e);
			goto fail;
		}
		s->n++;
	}
	*out = s;
	return 0;
fail:
	set_free(s);
	return -1;
}

static int create(const char *path, const verifier_config *tmpl, bool static_keys, jwks_keyset *ks, issuers **out,
		  char *err, size_t errlen)
{
	issuers *h = calloc(1, sizeof(*h));

	if (h == NULL || (path != NULL && (h->path = strdup(path)) == NULL) ||
	    (tmpl->signing_algs != NULL && (h->algs = strdup(tmpl->signing_algs)) == NULL)) {
		kx_seterr(err, errlen, "out of memory");
		if (h != NULL)
			free(h->path);
		free(h);
		return -1;
	}
	h->tmpl = *tmpl;
	h->tmpl.signing_algs = h->algs;
	h->static_keys = static_keys;
	h->first_keys = ks;
	pthread_mutex_init(&h->mu, NULL);
	atomic_init(&h->reload_ok, 0);
	atomic_init(&h->reload_failed, 0);
	atomic_init(&h->last_reload_time, 0);
	atomic_init(&h->last_reload_ok, 1);
	if (set_build(h, &h->cur, err, errlen) != 0) {
		pthread_mutex_destroy(&h->mu);
		free(h->algs);
		free(h->path);
		free(h);
		return -1;
	}
	h->cur->gen = ++h->next_gen;
	h->first_keys = NULL;
	*out = h;
	return 0;
}

int issuers_create(const char *path, const verifier_config *tmpl, issuers **out, char *err, size_t errlen)
{
	return create(path, tmpl, false, NULL, out, err, errlen);
}

int issuers_create_flags(const verifier_config *tmpl, issuers **out, char *err, size_t errlen)
{
	return create(NULL, tmpl, false, NULL, out, err, errlen);
}

int issuers_create_flags_with_keys(const verifier_config *tmpl, jwks_keyset *ks, issuers **out, char *err,
				   size_t errlen)
{
	return create(NULL, tmpl, true, ks, out, err, errlen);
}


/* Appends ", "-separated url to buf (truncated with "..." when full). */
static void list_add(char *buf, size_t cap, const char *url)
{
	size_t n = strlen(buf);

	if (n + 4 >= cap)
		return;
	snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", url);
	if (strlen(buf) + 1 == cap)
		memcpy(buf + cap - 4, "...", 4);
}

static iset *acquire(issuers *h)
{
	iset *s;

	pthread_mutex_lock(&h->mu);
	s = h->cur;
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&h->mu);
	return s;
}

static void release(iset *s)
{
	/* never frees: the holder's own reference on the current set, or the reaper, does */
	atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel);
}

static void reload_outcome(issuers *h, bool ok)
{
	atomic_fetch_add(ok ? &h->reload_ok : &h->reload_failed, 1);
	atomic_store(&h->last_reload_time, (int_fast64_t)time(NULL));
	atomic_store(&h->last_reload_ok, ok ? 1 : 0);
}

int issuers_reload(issuers *h, char *err, size_t errlen)
{
	iset *s;

	if (h->path == NULL) {
		kx_seterr(err, errlen, "the --oidc-* flags have no reload; restart to change them");
		return -1;
	}
	if (set_build(h, &s, err, errlen) != 0) {
		reload_outcome(h, false);
		return -1;
	}
	s->gen = ++h->next_gen;
	/* a newer file replaces a set still waiting for its keys: nobody ever acquired that one */
	set_free(h->pending);
	h->pending = s;
	clock_gettime(CLOCK_MONOTONIC, &h->pending_since);
	return 0;
}

/* True when the pending set may serve: every issuer that has keys in the current set has them in the new one
 * too (an issuer that is new, or down now, has nothing to lose by the swap). */
static bool pending_ready(issuers *h)
{
	iset *p = h->pending, *c = h->cur;

	for (size_t i = 0; i < p->n; i++) {
		if (verifier_ready(p->v[i]))
			continue;
		for (size_t j = 0; j < c->n; j++)
			if (strcmp(verifier_issuer(c->v[j]), verifier_issuer(p->v[i])) == 0 && verifier_ready(c->v[j]))
				return false;
	}
	return true;
}

static void swap_in(issuers *h)
{
	iset *s = h->pending, *old;
	void (*fn)(void *ud);
	void *ud;

	h->pending = NULL;
	pthread_mutex_lock(&h->mu);
	fn = h->listen_fn;
	ud = h->listen_ud;
	pthread_mutex_unlock(&h->mu);
	for (size_t i = 0; i < s->n && fn != NULL; i++)
		verifier_set_refresh_listener(s->v[i], fn, ud);
	pthread_mutex_lock(&h->mu);
	old = h->cur;
	h->cur = s;
	old->next_retired = h->retired;
	h->retired = old;
	pthread_mutex_unlock(&h->mu);
	/* the old set's providers stop reporting to the handler; its last users may still finish with it */
	for (size_t i = 0; i < old->n; i++)
		verifier_set_refresh_listener(old->v[i], NULL, NULL);
	release(old); /* the holder's reference */
	reload_outcome(h, true);
	if (fn != NULL)
		fn(ud);
}

bool issuers_pending(issuers *h)
{
	return h->pending != NULL;
}

int issuers_tick(issuers *h, issuers_change *chg)
{
	struct timespec now;
	long long waited_ms;

	issuers_reap(h);
	if (h->pending == NULL)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	waited_ms = (long long)(now.tv_sec - h->pending_since.tv_sec) * 1000 +
		    (now.tv_nsec - h->pending_since.tv_nsec) / 1000000;
	if (!pending_ready(h) && waited_ms < ISSUERS_PENDING_MAX_MS)
		return 0;
	if (chg != NULL) {
		iset *p = h->pending, *c = h->cur;

		memset(chg, 0, sizeof(*chg));
		chg->before = c->n;
		chg->after = p->n;
		chg->waited_ms = (unsigned long)waited_ms;
		/* cur changes only on this (the main) thread, in swap_in(): reading it here needs no lock */
		for (size_t i = 0; i < p->n; i++) {
			bool found = false;

			for (size_t j = 0; j < c->n && !found; j++)
				found = strcmp(verifier_issuer(c->v[j]), verifier_issuer(p->v[i])) == 0;
			if (!found)
				list_add(chg->added, sizeof(chg->added), verifier_issuer(p->v[i]));
			else if (!verifier_ready(p->v[i]))
				list_add(chg->not_ready, sizeof(chg->not_ready), verifier_issuer(p->v[i]));
		}
		for (size_t j = 0; j < c->n; j++) {
			bool found = false;

			for (size_t i = 0; i < p->n && !found; i++)
				found = strcmp(verifier_issuer(c->v[j]), verifier_issuer(p->v[i])) == 0;
			if (!found)
				list_add(chg->removed, sizeof(chg->removed), verifier_issuer(c->v[j]));
		}
	}
	swap_in(h);
	return 1;
}

void issuers_reap(issuers *h)
{
	iset *keep = NULL, *s, *next, *dead = NULL;

	pthread_mutex_lock(&h->mu);
	for (s = h->retired; s != NULL; s = next) {
		next = s->next_retired;
		if (atomic_load_explicit(&s->refs, memory_order_acquire) == 0) {
			s->next_retired = dead;
			dead = s;
		} else {
			s->next_retired = keep;
			keep = s;
		}
	}
	h->retired = keep;
	pthread_mutex_unlock(&h->mu);
	for (s = dead; s != NULL; s = next) {
		next = s->next_retired;
		set_free(s);
	}
}

void issuers_destroy(issuers *h)
{
	if (h == NULL)
		return;
	for (unsigned i = 0; i < 1000; i++) {
		issuers_reap(h);
		if (h->retired == NULL)
			break;
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	set_free(h->pending);
	set_free(h->cur);
	pthread_mutex_destroy(&h->mu);
	free(h->algs);
	free(h->path);
	free(h);
}

/* ---- verification --------------------------------------------------------------------------------------- */

/* The authenticator whose url equals the token's unverified "iss" (t parsed by verifier_token_parse), or -1
 * (detail set); -2 malformed, -3 out of memory. Everything in the payload is checked again after the
 * signature. */
static long pick(const iset *s, const verifier_token *t, const char **detail, char *issbuf, size_t isscap)
{
	if (t->payload == NULL) {
		*detail = t->payload_rc == JWT_E_NOMEM ? "out of memory" : "malformed token";
		return t->payload_rc == JWT_E_NOMEM ? -3 : -2;
	}
	if (t->iss == NULL) {
		*detail = "unknown issuer (no iss claim)";
		return -1;
	}
	if (issbuf != NULL && isscap > 0) {
		size_t i;

		for (i = 0; t->iss[i] && i + 1 < isscap && i < 200; i++)
			issbuf[i] = (t->iss[i] >= 0x20 && t->iss[i] < 0x7f) ? t->iss[i] : '?';
		issbuf[i] = 0;
	}
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(verifier_issuer(s->v[i]), t->iss) == 0)
			return (long)i;
	*detail = "unknown issuer";
	return -1;
}

static int set_verify(iset *s, const uint8_t *tok, size_t len, int64_t now, const identity **id,
		      const char **detail, const mapping_trace *tr)
{
	uint8_t key[CACHE_KEY_LEN];
	const identity *hit, *fresh = NULL;
	verifier_token vt;
	const char *d = NULL;
	char iss[208] = "";
	long ix;
	int rc;

	if (len > s->max_token) {
		*detail = verifier_reason(VERIFY_E_TOO_LARGE);
		mapping_tracef(tr, "token: FAIL (longer than %zu bytes)", s->max_token);
		return VERIFY_E_TOO_LARGE;
	}
	if (len == 0) {
		*detail = verifier_reason(VERIFY_E_MALFORMED);
		return VERIFY_E_MALFORMED;
	}
	if (tr == NULL) {
		cache_key(tok, len, key);
		hit = cache_get(s->cache, key, now);
		if (hit != NULL) {
			for (size_t i = 0; i < s->n; i++) {
				if (verifier_has_key(s->v[i], hit->key_fp ^ salt(i))) {
					*id = hit;
					return VERIFY_OK;
				}
			}
			/* the key that verified this token left its issuer's JWKS: judge it afresh */
			cache_drop(s->cache, key);
			identity_release(hit);
		}
	}
	/* parsed once: the pick reads its iss, the verifier the rest */
	verifier_token_parse(tok, len, s->max_token, &vt);
	ix = pick(s, &vt, &d, iss, sizeof(iss));
	if (ix < 0) {
		verifier_token_free(&vt);
		if (ix == -1)
			mapping_tracef(tr, "issuer: FAIL (iss \"%s\" is none of the %zu configured issuers)", iss, s->n);
		else
			mapping_tracef(tr, "token: FAIL (%s)", d);
		*detail = d;
		return ix == -1 ? VERIFY_E_ISSUER : ix == -3 ? VERIFY_E_INTERNAL : VERIFY_E_MALFORMED;
	}
	mapping_tracef(tr, "issuer: jwt[%ld] %s", ix, verifier_issuer(s->v[ix]));
	rc = verifier_verify_token(s->v[ix], &vt, tr != NULL ? NULL : key, now, tr, &fresh, &d);
	verifier_token_free(&vt);
	if (rc == VERIFY_OK) {
		/* only this thread holds fresh yet: salting the fingerprint ties the cache entry to its issuer */
		((identity *)fresh)->key_fp ^= salt((size_t)ix);
		if (tr == NULL)
			cache_put(s->cache, key, fresh, now);
		*id = fresh;
		return VERIFY_OK;
	}
	if (rc == VERIFY_E_UNKNOWN_KID) {
		tl_gen = s->gen;
		tl_ix = (size_t)ix;
	}
	*detail = d;
	return rc;
}

int issuers_verify(issuers *h, const uint8_t *token, size_t len, int64_t now, const identity **id,
		   const char **detail)
{
	iset *s = acquire(h);
	const char *d = NULL;
	int rc = set_verify(s, token, len, now, id, &d, NULL);

	release(s);
	if (rc != VERIFY_OK && detail != NULL)
		*detail = d ? d : verifier_reason(rc);
	return rc;
}

int issuers_explain(issuers *h, const uint8_t *token, size_t len, int64_t now, const mapping_trace *trace,
		    const identity **id, const char **detail)
{
	static const mapping_trace none = {NULL, NULL};
	iset *s = acquire(h);
	const char *d = NULL;
	int rc = set_verify(s, token, len, now, id, &d, trace ? trace : &none);

	release(s);
	if (rc != VERIFY_OK && detail != NULL)
		*detail = d ? d : verifier_reason(rc);
	return rc;
}

void issuers_ready_count(issuers *h, size_t *ready, size_t *total)
{
	iset *s = acquire(h);
	size_t r = 0;

	for (size_t i = 0; i < s->n; i++)
		r += verifier_ready(s->v[i]) ? 1 : 0;
	*ready = r;
	*total = s->n;
	release(s);
}

bool issuers_ready(issuers *h)
{
	size_t r, n;

	/* one issuer's outage must not take the pod out of the Service: the other issuers' users would lose access
	 * with it, while that issuer's own tokens get 503 either way (VERIFY_E_NOT_READY from its verifier) */
	issuers_ready_count(h, &r, &n);
	return n == 0 || r > 0;
}

bool issuers_wait_ready(issuers *h, unsigned timeout_ms)
{
	for (unsigned waited = 0;; waited += 50) {
		size_t r, n;

		issuers_ready_count(h, &r, &n);
		if (r == n)
			return true;
		if (waited >= timeout_ms)
			return false;
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

void issuers_set_refresh_listener(issuers *h, void (*fn)(void *ud), void *ud)
{
	iset *s;

	pthread_mutex_lock(&h->mu);
	h->listen_fn = fn;
	h->listen_ud = fn ? ud : NULL;
	s = h->cur;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&h->mu);
	for (size_t i = 0; i < s->n; i++)
		verifier_set_refresh_listener(s->v[i], fn, ud);
	release(s);
}

bool issuers_refresh_soon(issuers *h, unsigned within_ms)
{
	iset *s = acquire(h);
	bool soon = false;

	/* a reload since that verdict: the listener is called for the new set, no need to wait here */
	if (tl_ix < s->n && tl_gen == s->gen)
		soon = verifier_refresh_soon(s->v[tl_ix], within_ms);
	release(s);
	return soon;
}

void issuers_cache_stats(issuers *h, verifier_cache_stats *out)
{
	iset *s = acquire(h);
	cache_stats st;

	cache_stats_get(s->cache, &st);
	memset(out, 0, sizeof(*out));
	out->hits = st.hits;
	out->misses = st.misses;
	out->evictions = st.evictions;
	out->size = st.size;
	out->bytes = st.bytes;
	for (size_t i = 0; i < s->n; i++) {
		verifier_cache_stats vs;

		verifier_cache_stats_get(s->v[i], &vs);
		out->refresh_requests += vs.refresh_requests;
		out->negative_hits += vs.negative_hits;
		out->work_refusals += vs.work_refusals;
	}
	release(s);
}

void issuers_set_keys(issuers *h, jwks_keyset *ks)
{
	iset *s = acquire(h);

	for (size_t i = 0; i < s->n; i++)
		verifier_set_keys(s->v[i], ks);
	release(s);
}

void issuers_status(issuers *h, size_t i, oidc_status *out)
{
	iset *s = acquire(h);

	if (i < s->n)
		verifier_status(s->v[i], out);
	else
		memset(out, 0, sizeof(*out));
	release(s);
}

size_t issuers_count(issuers *h)
{
	iset *s = acquire(h);
	size_t n = s->n;

	release(s);
	return n;
}

size_t issuers_describe(issuers *h, char *buf, size_t cap)
{
	iset *s = acquire(h);
	size_t off = 0;

	if (cap == 0) {
		release(s);
		return 0;
	}
	buf[0] = '\0';
	if (s->n == 0)
		off = (size_t)snprintf(buf, cap, "no issuers configured");
	for (size_t i = 0; i < s->n && off + 1 < cap; i++) {
		oidc_status st;
		int w;

		verifier_status(s->v[i], &st);
		if (st.ready)
			w = snprintf(buf + off, cap - off, "%s%s: ready (%zu keys)", i ? "; " : "",
				     verifier_issuer(s->v[i]), st.nkeys);
		else
			w = snprintf(buf + off, cap - off, "%s%s: not ready (%s)", i ? "; " : "",
				     verifier_issuer(s->v[i]), st.last_error[0] ? st.last_error : "keys not loaded yet");
		if (w < 0)
			break;
		off += (size_t)w;
	}
	release(s);
	return off < cap ? off : cap - 1;
}

/* ---- metrics ---------------------------------------------------------------------------------------------- */

typedef struct mbuf {
	char **buf;
	size_t *len;
	size_t cap;
	bool fail;
} mbuf;

static void mb(mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mb(mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->fail)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*b->buf + *b->len, b->cap - *b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->fail = true;
			return;
		}
		if ((size_t)n < b->cap - *b->len) {
			*b->len += (size_t)n;
			return;
		}
		size_t ncap = (b->cap + (size_t)n + 1) * 2;
		char *p = realloc(*b->buf, ncap);

		if (p == NULL) {
			b->fail = true;
			return;
		}
		*b->buf = p;
		b->cap = ncap;
	}
}

/* An issuer URL as a label value (escape \ and "; the URL has no newline: authcfg refuses control bytes). */
static void label(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	for (; *s && o + 3 < cap; s++) {
		if (*s == '\\' || *s == '"')
			out[o++] = '\\';
		out[o++] = (*s == '\n') ? ' ' : *s;
	}
	out[o] = '\0';
}

int issuers_metrics(issuers *h, char **buf, size_t *len)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{"kos_issuer_ready", "gauge", "1 when the issuer's keys are loaded."},
		{"kos_jwks_refreshes_total", "counter", "Successful JWKS loads."},
		{"kos_jwks_failures_total", "counter", "Failed discovery or JWKS fetches."},
		{"kos_jwks_keys", "gauge", "Keys in the current key set."},
		{"kos_jwks_last_success_timestamp_seconds", "gauge", "Time of the last successful JWKS load."},
		{"kos_jwks_unknown_kid_refreshes_total", "counter", "JWKS refreshes asked for by an unknown kid."},
	};
	mbuf b = {buf, len, 0, false};
	iset *s = acquire(h);
	verifier_cache_stats cs;
	cache_stats st;

	if (*buf == NULL) {
		*len = 0;
	}
	b.cap = *buf ? *len + 1 : 0;
	if (*buf == NULL) {
		*buf = malloc(4096);
		if (*buf == NULL) {
			release(s);
			return -1;
		}
		b.cap = 4096;
		(*buf)[0] = '\0';
	}
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		mb(&b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
		for (size_t i = 0; i < s->n; i++) {
			char lab[OIDC_URL_MAX * 2 + 4];
			oidc_status os;
			double v = 0;

			verifier_status(s->v[i], &os);
			verifier_cache_stats_get(s->v[i], &cs);
			label(verifier_issuer(s->v[i]), lab, sizeof(lab));
			switch (f) {
			case 0: v = os.ready ? 1 : 0; break;
			case 1: v = (double)os.refreshes; break;
			case 2: v = (double)os.failures; break;
			case 3: v = (double)os.nkeys; break;
			case 4: v = (double)os.last_success; break;
			default: v = (double)cs.refresh_requests; break;
			}
			mb(&b, "%s{issuer=\"%s\"} %.0f\n", fam[f].name, lab, v);
		}
	}
	cache_stats_get(s->cache, &st);
	mb(&b, "# HELP kos_cache_hits_total Token cache hits.\n# TYPE kos_cache_hits_total counter\n"
	       "kos_cache_hits_total %llu\n", (unsigned long long)st.hits);
	mb(&b, "# HELP kos_cache_misses_total Token cache misses.\n# TYPE kos_cache_misses_total counter\n"
	       "kos_cache_misses_total %llu\n", (unsigned long long)st.misses);
	mb(&b, "# HELP kos_cache_evictions_total Token cache evictions.\n# TYPE kos_cache_evictions_total counter\n"
	       "kos_cache_evictions_total %llu\n", (unsigned long long)st.evictions);
	mb(&b, "# HELP kos_cache_entries Tokens in the cache.\n# TYPE kos_cache_entries gauge\nkos_cache_entries %zu\n",
	   st.size);
	mb(&b, "# HELP kos_cache_bytes Memory the token cache holds (table and identities; --cache-max-bytes).\n"
	       "# TYPE kos_cache_bytes gauge\nkos_cache_bytes %zu\n", st.bytes);
	{
		uint64_t neg = 0, work = 0;

		for (size_t i = 0; i < s->n; i++) {
			verifier_cache_stats_get(s->v[i], &cs);
			neg += cs.negative_hits;
			work += cs.work_refusals;
		}
		mb(&b, "# HELP kos_negative_cache_hits_total Refusals repeated from the memory of recently refused "
		       "tokens.\n# TYPE kos_negative_cache_hits_total counter\nkos_negative_cache_hits_total %llu\n",
		   (unsigned long long)neg);
		mb(&b, "# HELP kos_verify_work_refusals_total Tokens refused because checking them would take more "
		       "signature work than the per-token cap.\n# TYPE kos_verify_work_refusals_total counter\n"
		       "kos_verify_work_refusals_total %llu\n", (unsigned long long)work);
	}
	mb(&b, "# HELP kos_issuers Authenticators in the current --authentication-config.\n# TYPE kos_issuers gauge\n"
	       "kos_issuers %zu\n", s->n);
	{
		size_t r = 0;

		for (size_t i = 0; i < s->n; i++)
			r += verifier_ready(s->v[i]) ? 1 : 0;
		mb(&b, "# HELP kos_issuers_ready Authenticators whose keys are loaded (/ready needs one).\n"
		       "# TYPE kos_issuers_ready gauge\nkos_issuers_ready %zu\n", r);
	}
	mb(&b, "# HELP kos_authentication_config_reloads_total Reloads of --authentication-config (its content "
	       "changed, or SIGHUP) by result: ok = the new file serves, invalid = refused, the previous one kept.\n"
	       "# TYPE kos_authentication_config_reloads_total counter\n"
	       "kos_authentication_config_reloads_total{result=\"ok\"} %llu\n"
	       "kos_authentication_config_reloads_total{result=\"invalid\"} %llu\n",
	   (unsigned long long)atomic_load(&h->reload_ok), (unsigned long long)atomic_load(&h->reload_failed));
	mb(&b, "# HELP kos_authentication_config_last_reload_timestamp_seconds Time of the last reload's outcome "
	       "(0: none since start).\n# TYPE kos_authentication_config_last_reload_timestamp_seconds gauge\n"
	       "kos_authentication_config_last_reload_timestamp_seconds %lld\n"
	       "# HELP kos_authentication_config_last_reload_success 1 when the last reload put its file in service, 0 "
	       "when it refused the file (1 before any reload).\n"
	       "# TYPE kos_authentication_config_last_reload_success gauge\n"
	       "kos_authentication_config_last_reload_success %d\n",
	   (long long)atomic_load(&h->last_reload_time),
	   atomic_load(&h->last_reload_time) == 0 ? 1 : (int)atomic_load(&h->last_reload_ok));
	release(s);
	return b.fail ? -1 : 0;
}
