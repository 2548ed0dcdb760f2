/*
 * verifier.c — token in, identity or reason out: cache, then JWS + JWKS + claim rules (see verifier.h).
 *
 * Order on a miss: size cap, parse (header only), alg allow-list, key lookup (unknown kid → refresh request),
 * signature, and only then the payload is parsed as JSON and the claims are read. A cache hit is SHA-256 of the
 * token, one shard lookup, and a check that the key which verified the token is still in the JWKS.
 */
#include "verifier.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "claims.h"
#include "jwt.h"

struct verifier {
	char *issuer, *client_id, *username_claim, *username_prefix, *groups_claim, *groups_prefix;
	char *req_keys[VERIFIER_MAX_REQUIRED_CLAIMS], *req_values[VERIFIER_MAX_REQUIRED_CLAIMS];
	claims_rules rules;
	unsigned algs;
	size_t max_token;
	cache *cache;
	oidc_provider *prov;          /* NULL for verifier_create_with_keys */
	pthread_mutex_t keys_mu;      /* static key source only */
	jwks_keyset *keys;
	atomic_uint_fast64_t refresh_requests;
	pthread_mutex_t listen_mu;    /* held while the listener runs, so that removing it waits for it */
	void (*listen_fn)(void *ud);
	void *listen_ud;
};

const char *verifier_reason(int result)
{
	switch (result) {
	case VERIFY_OK: return "ok";
	case VERIFY_E_MALFORMED: return "malformed token";
	case VERIFY_E_TOO_LARGE: return "token too large";
	case VERIFY_E_ALG: return "signing algorithm not allowed";
	case VERIFY_E_UNKNOWN_KID: return "unknown key id";
	case VERIFY_E_SIGNATURE: return "invalid signature";
	case VERIFY_E_ISSUER: return "issuer mismatch";
	case VERIFY_E_AUDIENCE: return "audience mismatch";
	case VERIFY_E_EXPIRED: return "token expired";
	case VERIFY_E_NOT_YET: return "token not yet valid";
	case VERIFY_E_CLAIMS: return "invalid claims";
	case VERIFY_E_NOT_READY: return "issuer keys not loaded";
	case VERIFY_E_RESERVED: return "reserved identity refused";
	case VERIFY_E_INTERNAL: return "internal error";
	}
	return "internal error";
}

static char *dup_or_null(const char *s, bool *fail)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*fail = true;
	return d;
}

static void verifier_free(verifier *v)
{
	if (!v)
		return;
	if (v->prov)
		oidc_provider_stop(v->prov);
	cache_destroy(v->cache);
	jwks_keyset_release(v->keys);
	claims_rules_free(&v->rules);
	free(v->issuer);
	free(v->client_id);
	free(v->username_claim);
	free(v->username_prefix);
	free(v->groups_claim);
	free(v->groups_prefix);
	for (size_t i = 0; i < VERIFIER_MAX_REQUIRED_CLAIMS; i++) {
		free(v->req_keys[i]);
		free(v->req_values[i]);
	}
	pthread_mutex_destroy(&v->keys_mu);
	pthread_mutex_destroy(&v->listen_mu);
	free(v);
}

#define FAIL(...)                                           \
	do {                                                \
		if (err && errlen)                          \
			snprintf(err, errlen, __VA_ARGS__); \
		goto out;                                   \
	} while (0)

static int create_common(const verifier_config *cfg, verifier **out, char *err, size_t errlen)
{
	verifier *v = NULL;
	bool nomem = false;
	size_t i;

	if (err && errlen)
		err[0] = 0;
	if (!cfg || !cfg->oidc.issuer_url || !*cfg->oidc.issuer_url)
		FAIL("issuer URL required");
	if (!cfg->client_id || !*cfg->client_id)
		FAIL("client ID required");
	if (cfg->nrequired_claims > VERIFIER_MAX_REQUIRED_CLAIMS)
		FAIL("too many required claims (max %d)", VERIFIER_MAX_REQUIRED_CLAIMS);
	v = calloc(1, sizeof(*v));
	if (!v)
		FAIL("out of memory");
	pthread_mutex_init(&v->keys_mu, NULL);
	pthread_mutex_init(&v->listen_mu, NULL);
	atomic_init(&v->refresh_requests, 0);
	if (jwt_alg_list_parse(cfg->signing_algs, &v->algs) != 0)
		FAIL("unsupported signing algorithm in \"%s\" (allowed: RS256 RS384 RS512 PS256 PS384 PS512 ES256 "
		     "ES384 ES512 EdDSA)", cfg->signing_algs);
	v->issuer = dup_or_null(cfg->oidc.issuer_url, &nomem);
	v->client_id = dup_or_null(cfg->client_id, &nomem);
	v->username_claim = dup_or_null(cfg->username_claim, &nomem);
	v->username_prefix = dup_or_null(cfg->username_prefix, &nomem);
	v->groups_claim = dup_or_null(cfg->groups_claim, &nomem);
	v->groups_prefix = dup_or_null(cfg->groups_prefix, &nomem);
	for (i = 0; i < cfg->nrequired_claims; i++) {
		if (!cfg->required_claims[i][0] || !*cfg->required_claims[i][0] || !cfg->required_claims[i][1])
			FAIL("required claim %zu has no key or value", i);
		v->req_keys[i] = dup_or_null(cfg->required_claims[i][0], &nomem);
		v->req_values[i] = dup_or_null(cfg->required_claims[i][1], &nomem);
	}
	if (nomem)
		FAIL("out of memory");
	if (claims_rules_init(&v->rules, v->issuer, v->client_id, v->username_claim, v->username_prefix,
			      v->groups_claim, v->groups_prefix) != 0)
		FAIL("bad claim configuration");
	v->rules.req_keys = (const char *const *)v->req_keys;
	v->rules.req_values = (const char *const *)v->req_values;
	v->rules.nrequired = cfg->nrequired_claims;
	v->rules.allow_reserved = cfg->allow_reserved;
	v->max_token = cfg->max_token_bytes ? cfg->max_token_bytes : JWT_DEFAULT_MAX_BYTES;
	if (cache_create(cfg->cache_entries ? cfg->cache_entries : 65536, cfg->cache_ttl_s ? cfg->cache_ttl_s : 600,
			 &v->cache) != 0)
		FAIL("cannot allocate the token cache");
	*out = v;
	return 0;
out:
	verifier_free(v);
	return -1;
}

static void notify_listener(verifier *v)
{
	pthread_mutex_lock(&v->listen_mu);
	if (v->listen_fn)
		v->listen_fn(v->listen_ud);
	pthread_mutex_unlock(&v->listen_mu);
}

static void on_attempt(void *ud, bool ok)
{
	(void)ok; /* success or not, a held request is judged again: either the key came or it will not */
	notify_listener(ud);
}

int verifier_create(const verifier_config *cfg, verifier **out, char *err, size_t errlen)
{
	verifier *v;
	oidc_config oc;

	if (create_common(cfg, &v, err, errlen) != 0)
		return -1;
	oc = cfg->oidc;
	oc.on_attempt = on_attempt;
	oc.on_attempt_ud = v;
	if (oidc_provider_start(&oc, &v->prov, err, errlen) != 0) {
		v->prov = NULL;
		verifier_free(v);
		return -1;
	}
	*out = v;
	return 0;
}

int verifier_create_with_keys(const verifier_config *cfg, jwks_keyset *ks, verifier **out, char *err,
			      size_t errlen)
{
	verifier *v;

	if (create_common(cfg, &v, err, errlen) != 0)
		return -1;
	if (ks)
		jwks_keyset_ref(ks);
	v->keys = ks;
	*out = v;
	return 0;
}

void verifier_set_keys(verifier *v, jwks_keyset *ks)
{
	jwks_keyset *old;

	if (v->prov)
		return;
	if (ks)
		jwks_keyset_ref(ks);
	pthread_mutex_lock(&v->keys_mu);
	old = v->keys;
	v->keys = ks;
	pthread_mutex_unlock(&v->keys_mu);
	jwks_keyset_release(old);
	notify_listener(v);
}

void verifier_set_refresh_listener(verifier *v, void (*fn)(void *ud), void *ud)
{
	pthread_mutex_lock(&v->listen_mu);
	v->listen_fn = fn;
	v->listen_ud = fn ? ud : NULL;
	pthread_mutex_unlock(&v->listen_mu);
}

bool verifier_refresh_soon(verifier *v, unsigned within_ms)
{
	return v->prov != NULL && oidc_provider_refresh_soon(v->prov, within_ms);
}

static jwks_keyset *current_keys(verifier *v)
{
	jwks_keyset *ks;

	if (v->prov)
		return oidc_provider_keys(v->prov);
	pthread_mutex_lock(&v->keys_mu);
	ks = v->keys;
	if (ks)
		jwks_keyset_ref(ks);
	pthread_mutex_unlock(&v->keys_mu);
	return ks;
}

static void request_refresh(verifier *v)
{
	atomic_fetch_add_explicit(&v->refresh_requests, 1, memory_order_relaxed);
	if (v->prov)
		oidc_provider_request_refresh(v->prov);
}

static int from_jwt(int rc)
{
	switch (rc) {
	case JWT_E_TOO_LARGE: return VERIFY_E_TOO_LARGE;
	case JWT_E_ALG: return VERIFY_E_ALG;
	case JWT_E_SIGNATURE: case JWT_E_KEY: return VERIFY_E_SIGNATURE;
	case JWT_E_NOMEM: return VERIFY_E_INTERNAL;
	}
	return VERIFY_E_MALFORMED;
}

static int from_claims(int rc)
{
	switch (rc) {
	case CLAIMS_E_ISSUER: return VERIFY_E_ISSUER;
	case CLAIMS_E_AUDIENCE: return VERIFY_E_AUDIENCE;
	case CLAIMS_E_EXPIRED: return VERIFY_E_EXPIRED;
	case CLAIMS_E_NOT_YET: return VERIFY_E_NOT_YET;
	case CLAIMS_E_CLAIM: return VERIFY_E_CLAIMS;
	case CLAIMS_E_RESERVED: return VERIFY_E_RESERVED;
	}
	return VERIFY_E_INTERNAL;
}

/* The uncached path. */
static int verify_full(verifier *v, jwks_keyset *ks, const uint8_t *token, size_t len, int64_t now,
		       identity **out, const char **detail)
{
	jwt_token t;
	const jwks_key *key = NULL;
	cJSON *payload = NULL;
	int rc, jrc;

	jrc = jwt_parse(token, len, v->max_token, &t);
	if (jrc) {
		*detail = jwt_strerror(jrc);
		return from_jwt(jrc);
	}
	if (!(v->algs & JWT_ALG_BIT(t.alg))) {
		rc = VERIFY_E_ALG;
		*detail = "signing algorithm not in --oidc-signing-algs";
		goto out;
	}
	if (t.kid) {
		jrc = jwks_find(ks, t.kid, t.kid_len, t.alg, &key);
		if (jrc == JWKS_E_NO_KID) {
			request_refresh(v);
			rc = VERIFY_E_UNKNOWN_KID;
			*detail = "unknown key id (JWKS refresh requested)";
			goto out;
		}
		if (jrc) {
			rc = VERIFY_E_SIGNATURE;
			*detail = "key id names a key of another type or algorithm";
			goto out;
		}
		jrc = jwt_verify(&t, key);
	} else {
		/* no kid: any key fitting the alg may have signed it (go-jose/go-oidc do the same) */
		size_t n = jwks_keyset_count(ks), tried = 0;

		jrc = JWT_E_SIGNATURE;
		for (size_t i = 0; i < n && jrc; i++) {
			const jwks_key *k = jwks_keyset_key(ks, i);

			if (!jwks_key_fits(k, t.alg))
				continue;
			tried++;
			jrc = jwt_verify(&t, k);
			if (!jrc)
				key = k;
		}
		if (!tried) {
			rc = VERIFY_E_SIGNATURE;
			*detail = "no key for the token's algorithm";
			goto out;
		}
	}
	if (jrc) {
		rc = from_jwt(jrc);
		*detail = jwt_strerror(jrc);
		goto out;
	}
	jrc = jwt_json_parse(t.payload, t.payload_len, &payload);
	if (jrc) {
		rc = jrc == JWT_E_NOMEM ? VERIFY_E_INTERNAL : VERIFY_E_MALFORMED;
		*detail = "payload is not a strict JSON object";
		goto out;
	}
	rc = claims_map(&v->rules, payload, now, key->fp, out, detail);
	if (rc)
		rc = from_claims(rc);
out:
	cJSON_Delete(payload);
	jwt_token_free(&t);
	return rc;
}

int verifier_verify(verifier *v, const uint8_t *token, size_t len, int64_t now, const identity **id,
		    const char **detail)
{
	uint8_t key[CACHE_KEY_LEN];
	const identity *hit;
	identity *fresh = NULL;
	jwks_keyset *ks;
	const char *d = NULL;
	int rc;

	if (len > v->max_token) {
		rc = VERIFY_E_TOO_LARGE;
		goto out_nokeys;
	}
	if (len == 0) {
		rc = VERIFY_E_MALFORMED;
		goto out_nokeys;
	}
	ks = current_keys(v);
	if (!ks) {
		rc = VERIFY_E_NOT_READY;
		goto out_nokeys;
	}
	cache_key(token, len, key);
	hit = cache_get(v->cache, key, now);
	if (hit) {
		if (jwks_has_fp(ks, hit->key_fp)) {
			jwks_keyset_release(ks);
			*id = hit;
			return VERIFY_OK;
		}
		/* the key that verified this token left the JWKS: forget it and judge the token afresh */
		cache_drop(v->cache, key);
		identity_release(hit);
	}
	rc = verify_full(v, ks, token, len, now, &fresh, &d);
	jwks_keyset_release(ks);
	if (rc == VERIFY_OK) {
		cache_put(v->cache, key, fresh, now);
		*id = fresh;
		return VERIFY_OK;
	}
out_nokeys:
	if (detail)
		*detail = d ? d : verifier_reason(rc);
	return rc;
}

bool verifier_ready(verifier *v)
{
	jwks_keyset *ks = current_keys(v);
	bool ready = ks != NULL;

	jwks_keyset_release(ks);
	return ready;
}

void verifier_status(verifier *v, oidc_status *out)
{
	jwks_keyset *ks;

	if (v->prov) {
		oidc_provider_status(v->prov, out);
		return;
	}
	ks = current_keys(v);
	memset(out, 0, sizeof(*out));
	out->ready = ks != NULL;
	out->nkeys = jwks_keyset_count(ks);
	jwks_keyset_release(ks);
}

void verifier_cache_stats_get(verifier *v, verifier_cache_stats *out)
{
	cache_stats st;

	cache_stats_get(v->cache, &st);
	out->hits = st.hits;
	out->misses = st.misses;
	out->evictions = st.evictions;
	out->size = st.size;
	out->refresh_requests = atomic_load_explicit(&v->refresh_requests, memory_order_relaxed);
}

void verifier_destroy(verifier *v)
{
	verifier_free(v);
}
