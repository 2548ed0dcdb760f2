/*
 * verifier.c — one authenticator: a parsed token in, identity or reason out: JWS + JWKS + claim rules (see
 * verifier.h). The token cache in front of it is issuers.c's.
 *
 * Order: size cap, parse (verifier_token_parse, once, by the caller), alg allow-list, the unverified iss (the API server routes a JWT by it before
 * any signature work: another issuer's token costs no verification and never a refresh), key lookup (unknown
 * kid → refresh request), signature (against each key the kid names that fits the alg; every key fitting the alg
 * when there is no kid), and only then the claims are read: iss, aud, exp, nbf, then — when the mapped groups
 * claim is distributed (distclaims.h) — the claims source's answer, verified as a JWT and added to the claims,
 * then the mapping.
 */
#include "verifier.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "cache.h"
#include "claims.h"
#include "flagcfg.h"
#include "distclaims.h"
#include "jsonstrict.h"
#include "jwa.h"
#include "jws.h"
#include "jwt.h"
#include "negcache.h"

struct verifier {
	char *issuer;
	char **auds;                  /* the authenticator's audiences (MatchAny; the flags' client ID is one) */
	size_t nauds;
	mapping *map;                 /* its claim mappings and rules (the flags' too: flagcfg.h) */
	bool allow_reserved;
	bool credential_id;           /* --credential-id-extra */
	char *dist_claim;             /* the groups claim resolved from distributed claims; NULL = none */
	distclaims *dc;               /* borrowed fetcher; NULL = distributed groups refused */
	verifier *(*claims_peer)(void *ud, const char *iss); /* another configured issuer's verifier, or NULL */
	void *claims_peer_ud;
	char *ca_file, *ca_pem;       /* the issuer's CA, for fetching claims sources as for its JWKS */
	size_t ca_pem_len;
	unsigned algs;
	size_t max_token;
	negcache *neg;                /* recently refused tokens (every verifier has one, the cache-less ones too) */
	atomic_uint_fast64_t work_refusals;
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
	case VERIFY_E_IDENTITY: return "identity cannot be forwarded unchanged";
	case VERIFY_E_PENDING: return "distributed claims being fetched";
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
	negcache_destroy(v->neg);
	jwks_keyset_release(v->keys);
	mapping_free(v->map);
	for (size_t i = 0; i < v->nauds; i++)
		free(v->auds[i]);
	free(v->auds);
	free(v->issuer);
	free(v->dist_claim);
	free(v->ca_file);
	free(v->ca_pem);
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

/* The flags' authenticator (flagcfg.h) for a cfg without one: 0 and *out, or -1 with err set. */
static int flags_authn(const verifier_config *cfg, authcfg_config **out, char *err, size_t errlen)
{
	const char *req[VERIFIER_MAX_REQUIRED_CLAIMS][2];
	flagcfg f;

	for (size_t i = 0; i < cfg->nrequired_claims; i++) {
		if (!cfg->required_claims[i][0] || !*cfg->required_claims[i][0] || !cfg->required_claims[i][1]) {
			snprintf(err, errlen, "required claim %zu has no key or value", i);
			return -1;
		}
		req[i][0] = cfg->required_claims[i][0];
		req[i][1] = cfg->required_claims[i][1];
	}
	memset(&f, 0, sizeof(f));
	f.issuer_url = cfg->oidc.issuer_url;
	f.client_id = cfg->client_id;
	f.username_claim = cfg->username_claim;
	f.username_prefix = cfg->username_prefix;
	f.groups_claim = cfg->groups_claim;
	f.groups_prefix = cfg->groups_prefix;
	f.required = (const char *const (*)[2])req;
	f.nrequired = cfg->nrequired_claims;
	return flagcfg_build(&f, out, err, errlen) == 0 ? 0 : -1;
}

static int create_common(const verifier_config *cfg, verifier **out, char *err, size_t errlen)
{
	verifier *v = NULL;
	authcfg_config *flags = NULL;
	const authcfg_issuer *authn;
	bool nomem = false;
	size_t i;

	if (err && errlen)
		err[0] = 0;
	if (!cfg || !cfg->oidc.issuer_url || !*cfg->oidc.issuer_url)
		FAIL("issuer URL required");
	if (cfg->authn == NULL && (!cfg->client_id || !*cfg->client_id))
		FAIL("client ID required");
	if (cfg->authn != NULL && (cfg->authn->naudiences == 0 || strcmp(cfg->authn->url, cfg->oidc.issuer_url) != 0))
		FAIL("authenticator without audiences, or issuer URL not its url");
	if (cfg->nrequired_claims > VERIFIER_MAX_REQUIRED_CLAIMS)
		FAIL("too many required claims (max %d)", VERIFIER_MAX_REQUIRED_CLAIMS);
	if (cfg->authn == NULL && flags_authn(cfg, &flags, err, errlen) != 0)
		goto out;
	authn = cfg->authn != NULL ? cfg->authn : &flags->jwt[0];
	v = calloc(1, sizeof(*v));
	if (!v)
		FAIL("out of memory");
	pthread_mutex_init(&v->keys_mu, NULL);
	pthread_mutex_init(&v->listen_mu, NULL);
	atomic_init(&v->refresh_requests, 0);
	atomic_init(&v->work_refusals, 0);
	if (jwa_list_parse(cfg->signing_algs, &v->algs) != 0)
		FAIL("unsupported signing algorithm in \"%s\" (allowed: RS256 RS384 RS512 PS256 PS384 PS512 ES256 "
		     "ES384 ES512 EdDSA)", cfg->signing_algs);
	v->issuer = dup_or_null(cfg->oidc.issuer_url, &nomem);
	if (nomem)
		FAIL("out of memory");
	v->allow_reserved = cfg->allow_reserved;
	v->credential_id = cfg->credential_id;
	{
		/* the API server resolves distributed claims for the groups claim mapped by name only */
		const char *dc = authn->groups.claim;

		v->dist_claim = dup_or_null(dc != NULL && *dc ? dc : NULL, &nomem);
	}
	v->dc = cfg->claims;
	v->claims_peer = cfg->claims_peer;
	v->claims_peer_ud = cfg->claims_peer_ud;
	v->ca_file = dup_or_null(cfg->oidc.ca_pem == NULL ? cfg->oidc.ca_file : NULL, &nomem);
	if (cfg->oidc.ca_pem != NULL) {
		v->ca_pem_len = cfg->oidc.ca_pem_len ? cfg->oidc.ca_pem_len : strlen(cfg->oidc.ca_pem);
		v->ca_pem = malloc(v->ca_pem_len + 1);
		if (v->ca_pem == NULL)
			FAIL("out of memory");
		memcpy(v->ca_pem, cfg->oidc.ca_pem, v->ca_pem_len);
		v->ca_pem[v->ca_pem_len] = '\0';
	}
	if (nomem)
		FAIL("out of memory");
	v->auds = calloc(authn->naudiences, sizeof(*v->auds));
	if (v->auds == NULL)
		FAIL("out of memory");
	for (i = 0; i < authn->naudiences; i++, v->nauds++)
		if ((v->auds[i] = strdup(authn->audiences[i])) == NULL)
			FAIL("out of memory");
	if (mapping_compile(authn, &v->map, err, errlen) != 0)
		goto out;
	v->max_token = cfg->max_token_bytes ? cfg->max_token_bytes : JWT_DEFAULT_MAX_BYTES;
	if (negcache_create(&v->neg) != 0)
		FAIL("out of memory");
	authcfg_free(flags);
	*out = v;
	return 0;
out:
	authcfg_free(flags);
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
	}
	return VERIFY_E_INTERNAL;
}

/* The uncached path. */
/* A kid for a trace line: printable bytes only, cut at 64. */
static const char *shown_kid(const jwt_token *t, char *buf, size_t cap)
{
	size_t i, n = t->kid_len < 64 ? t->kid_len : 64;

	for (i = 0; i < n && i + 1 < cap; i++)
		buf[i] = (t->kid[i] >= 0x20 && t->kid[i] < 0x7f && t->kid[i] != '"') ? t->kid[i] : '?';
	buf[i] = 0;
	return buf;
}

#define CREDENTIAL_ID_KEY "authentication.kubernetes.io/credential-id"
#define CREDENTIAL_ID_MAX 256 /* bytes of jti kept; a longer jti adds nothing */

/* --credential-id-extra: rebuilds *id with the extra the API server (1.32+) sets for a token with a jti, so the
 * cached identity carries it. No jti, a non-string or empty one, or a key already mapped: *id stays as it is. A
 * jti that a header cannot carry unchanged (identity_value_problem) or longer than CREDENTIAL_ID_MAX is refused,
 * never dropped: VERIFY_E_IDENTITY, *id released, *detail says why. VERIFY_E_INTERNAL: no memory, *id released. */
static int add_credential_id(identity **id, const cJSON *payload, const char **detail)
{
	const cJSON *jti = cJSON_GetObjectItemCaseSensitive(payload, "jti");
	identity_extra *ex;
	identity *nid;
	char val[CREDENTIAL_ID_MAX + 8];
	size_t n;

	if (!cJSON_IsString(jti) || (n = strlen(jti->valuestring)) == 0)
		return VERIFY_OK;
	if (n <= CREDENTIAL_ID_MAX)
		snprintf(val, sizeof(val), "JTI=%s", jti->valuestring);
	/* the value as it goes out ("JTI=" + jti): a space after "JTI=" travels, a trailing one would not */
	if (n > CREDENTIAL_ID_MAX || identity_value_problem(val) != NULL) {
		*detail = n > CREDENTIAL_ID_MAX ? "credential id: jti longer than 256 bytes"
			  : "credential id: jti has a control character or a trailing space or tab";
		identity_release(*id);
		*id = NULL;
		return VERIFY_E_IDENTITY;
	}
	for (size_t i = 0; i < (*id)->nextra; i++)
		if (strcmp((*id)->extra[i].key, CREDENTIAL_ID_KEY) == 0)
			return VERIFY_OK;
	ex = malloc(((*id)->nextra + 1) * sizeof(*ex));
	if (ex == NULL)
		goto nomem;
	if ((*id)->nextra > 0)
		memcpy(ex, (*id)->extra, (*id)->nextra * sizeof(*ex));
	ex[(*id)->nextra].key = CREDENTIAL_ID_KEY;
	ex[(*id)->nextra].value = val;
	nid = identity_build((*id)->user, (*id)->uid, (const char *const *)(*id)->groups, (*id)->ngroups, ex,
			     (*id)->nextra + 1, (*id)->exp, (*id)->key_fp);
	free(ex);
	if (nid == NULL)
		goto nomem;
	identity_release(*id);
	*id = nid;
	return VERIFY_OK;
nomem:
	identity_release(*id);
	*id = NULL;
	return VERIFY_E_INTERNAL;
}

/* The signature work spent on one token (see VERIFIER_MAX_WORK). */
typedef struct sig_budget {
	unsigned spent;  /* work units */
	size_t tried;    /* keys tried */
	bool capped;     /* a key was left untried for the budget */
} sig_budget;

/* Tries key k when the budget allows it — the first key always (a set's largest key is bounded by jwks.h), any
 * further one while the total stays within VERIFIER_MAX_WORK — and sets *key when it verifies t. 0 when it
 * does; otherwise jws_verify()'s error, or JWT_E_SIGNATURE with b->capped set when k could not be tried. */
static int try_key(sig_budget *b, const jwt_token *t, const jwks_key *k, const jwks_key **key)
{
	int jrc;

	if (b->spent != 0 && b->spent + k->work > VERIFIER_MAX_WORK) {
		b->capped = true;
		return JWT_E_SIGNATURE;
	}
	b->spent += k->work;
	b->tried++;
	jrc = jws_verify(t, k);
	if (jrc == 0)
		*key = k;
	return jrc;
}

/* The signature check of a parsed token whose iss is this issuer: key lookup (an unknown kid asks for a JWKS
 * refresh), then each key the kid names (every key fitting the alg without a kid) within the work budget.
 * VERIFY_OK with *key set, or the refusal with *detail. what: "" for the token, or a prefix for trace lines. */
static int check_signature(verifier *v, jwks_keyset *ks, const jwt_token *t, const jwks_key **key,
			   const char **detail, const mapping_trace *tr, const char *what)
{
	sig_budget b = {0, 0, false};
	bool has_kid = t->kid != NULL && t->kid_len > 0;
	int jrc;

	*key = NULL;
	if (has_kid) {
		const jwks_key *k = NULL;

		jrc = jwks_find(ks, t->kid, t->kid_len, t->alg, &k);
		if (jrc == JWKS_E_NO_KID) {
			request_refresh(v);
			*detail = "unknown key id (JWKS refresh requested)";
			mapping_tracef(tr, "%skey: FAIL (kid not in the issuer's JWKS, %zu keys)", what, jwks_keyset_count(ks));
			return VERIFY_E_UNKNOWN_KID;
		}
		if (jrc) {
			*detail = "key id names a key of another type or algorithm";
			mapping_tracef(tr, "%skey: FAIL (%s)", what, *detail);
			return VERIFY_E_SIGNATURE;
		}
		/* a kid published on several keys: each is tried, as go-oidc does, within the work budget */
		do
			jrc = try_key(&b, t, k, key);
		while (jrc && !b.capped && jwks_find_next(ks, k, t->alg, &k) == 0);
	} else {
		/* no kid (or an empty one, which go-oidc treats the same): any key fitting the alg may have signed it */
		size_t n = jwks_keyset_count(ks);

		jrc = JWT_E_SIGNATURE;
		for (size_t i = 0; i < n && jrc && !b.capped; i++) {
			const jwks_key *k = jwks_keyset_key(ks, i);

			if (jwks_key_fits(k, t->alg))
				jrc = try_key(&b, t, k, key);
		}
		if (!b.tried) {
			*detail = "no key for the token's algorithm";
			mapping_tracef(tr, "%skey: FAIL (%s)", what, *detail);
			return VERIFY_E_SIGNATURE;
		}
	}
	if (jrc && b.capped) {
		atomic_fetch_add_explicit(&v->work_refusals, 1, memory_order_relaxed);
		*detail = has_kid ? "too much verification work: the keys with this kid exceed the per-token cap"
				  : "too much verification work: no kid, and the keys fitting its alg exceed the per-token cap";
		mapping_tracef(tr, "%ssignature: FAIL (%s; %zu key%s tried, %u of %u work units spent)", what, *detail,
			       b.tried, b.tried == 1 ? "" : "s", b.spent, VERIFIER_MAX_WORK);
		return VERIFY_E_SIGNATURE;
	}
	if (jrc) {
		*detail = jwt_strerror(jrc);
		mapping_tracef(tr, "%ssignature: FAIL (%s; %zu key%s %s tried)", what, *detail, b.tried,
			       b.tried == 1 ? "" : "s", has_kid ? "with this kid" : "fitting the algorithm");
		return from_jwt(jrc);
	}
	mapping_tracef(tr, "%skey: %s found in the JWKS (%zu tried); signature: ok", what,
		       has_kid ? "kid" : "a key fitting the algorithm", b.tried);
	return VERIFY_OK;
}

/* A refusal because of distributed claims: counted by reason, traced, detail formatted (thread-local). */
static int dist_refuse(verifier *v, enum distclaims_refusal r, const char **detail, const mapping_trace *tr,
		       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int dist_refuse(verifier *v, enum distclaims_refusal r, const char **detail, const mapping_trace *tr,
		       const char *fmt, ...)
{
	static _Thread_local char d[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d, sizeof(d), fmt, ap);
	va_end(ap);
	*detail = d;
	distclaims_count_refusal(v->dc, r);
	mapping_tracef(tr, "%s: FAIL", d);
	return VERIFY_E_CLAIMS;
}

/* The payload as strict JSON (jsonstrict.h), in jwt's error codes: JWT_E_JSON or JWT_E_NOMEM. */
static int payload_json(const uint8_t *p, size_t len, cJSON **out)
{
	int rc = jsonstrict_parse(p, len, out);

	return rc == 0 ? 0 : rc == JSONSTRICT_E_NOMEM ? JWT_E_NOMEM : JWT_E_JSON;
}

/*
 * Distributed groups, as the API server's claimResolver: when the token lacks the groups claim and its
 * _claim_names point that claim at a source with an endpoint, the source's answer — a JWT of this issuer or
 * another configured one (claims_peer), verified like an ID token (alg allow-list, signature with its issuer's
 * keys, iss, this authenticator's audiences, exp, nbf) — gives
 * the claim's value, which is added to payload so that the mapping (prefix, rules, CEL) sees it as the
 * token's own. VERIFY_OK (payload unchanged when there is nothing to resolve; *claim_exp = the claim JWT's
 * exp when it was resolved), VERIFY_E_PENDING (the fetch is under way), or a refusal: VERIFY_E_CLAIMS with
 * *detail "distributed claims: …"; *transient is set when the refusal came from the source (its answer may
 * change: never remembered for the token).
 */
static int resolve_distributed(verifier *v, jwks_keyset *ks, cJSON *payload, int64_t now, int64_t *claim_exp,
			       bool *transient, const char **detail, const mapping_trace *tr)
{
	distclaims_ref ref;
	distclaims_src src;
	jwt_token t;
	const jwks_key *key;
	verifier *peer = v;
	jwks_keyset *pks = ks;
	cJSON *cp = NULL, *val;
	uint8_t *body = NULL;
	size_t blen = 0, a = 0;
	const char *why = NULL, *sd = NULL;
	bool parsed = false;
	int64_t exp;
	int rc, r;

	r = distclaims_find(payload, v->dist_claim, &ref, &sd);
	if (r == DISTCLAIMS_NONE)
		return VERIFY_OK;
	if (r < 0)
		return dist_refuse(v, DISTCLAIMS_R_REFERENCE, detail, tr, "%s", sd);
	if (v->dc == NULL)
		return dist_refuse(v, DISTCLAIMS_R_DISABLED, detail, tr, "distributed claims: \"%s\" is distributed, and "
				   "fetching claims sources is not enabled (--unknown-kid-wait-ms 0)", v->dist_claim);
	src.url = ref.endpoint;
	src.access_token = ref.access_token;
	src.ca_file = v->ca_file;
	src.ca_pem = v->ca_pem;
	src.ca_pem_len = v->ca_pem_len;
	r = distclaims_get(v->dc, &src, &body, &blen, &why);
	if (r == DISTCLAIMS_PENDING) {
		*detail = "distributed claims: waiting for the claims source";
		mapping_tracef(tr, "distributed claims: \"%s\" fetch under way", v->dist_claim);
		return VERIFY_E_PENDING;
	}
	*transient = true;
	if (r != DISTCLAIMS_READY)
		return dist_refuse(v, DISTCLAIMS_R_FETCH, detail, tr, "%s", why);
	/* go-jose strips whitespace around a compact JWS; a body ending in a newline is common */
	while (a < blen && (body[a] == ' ' || body[a] == '\t' || body[a] == '\r' || body[a] == '\n'))
		a++;
	while (blen > a && (body[blen - 1] == ' ' || body[blen - 1] == '\t' || body[blen - 1] == '\r' ||
			    body[blen - 1] == '\n'))
		blen--;
	rc = jwt_parse(body + a, blen - a, DISTCLAIMS_MAX_BODY, &t);
	if (rc) {
		rc = dist_refuse(v, DISTCLAIMS_R_JWT, detail, tr, "distributed claims: the source's answer is not a JWT "
				 "(%s)", jwt_strerror(rc));
		goto out;
	}
	parsed = true;
	if (!(v->algs & JWA_BIT(t.alg))) {
		rc = dist_refuse(v, DISTCLAIMS_R_JWT, detail, tr, "distributed claims: the claims JWT's algorithm %s is "
				 "not allowed", jwa_name(t.alg));
		goto out;
	}
	if (payload_json(t.payload, t.payload_len, &cp) != 0) {
		rc = dist_refuse(v, DISTCLAIMS_R_JWT, detail, tr, "distributed claims: the claims JWT's payload is not "
				 "a strict JSON object");
		goto out;
	}
	/* The API server would run discovery for whatever issuer the claim JWT names; here it must be a configured
	 * one (this authenticator's, or another of the same file), verified with that issuer's keys. */
	val = cJSON_GetObjectItemCaseSensitive(cp, "iss");
	if (cJSON_IsString(val) && strcmp(val->valuestring, v->issuer) != 0)
		peer = v->claims_peer != NULL ? v->claims_peer(v->claims_peer_ud, val->valuestring) : NULL;
	if (!cJSON_IsString(val) || peer == NULL) {
		rc = dist_refuse(v, DISTCLAIMS_R_JWT, detail, tr, "distributed claims: the claims JWT's iss is none of "
				 "the configured issuers");
		goto out;
	}
	if (peer != v && (pks = current_keys(peer)) == NULL) {
		rc = dist_refuse(v, DISTCLAIMS_R_JWT, detail, tr, "distributed claims: the keys of the claims JWT's "
				 "issuer %s are not loaded", peer->issuer);
		goto out;
	}
	rc = check_signature(peer, pks, &t, &key, &sd, tr, "distributed claims JWT ");
	if (rc) {
		rc = dist_refuse(v, DISTCLAIMS_R_JWT, detail, tr, "distributed claims: claims JWT: %s", sd);
		goto out;
	}
	/* its own issuer, this authenticator's audiences (the API server's claimResolver keeps them) */
	rc = claims_check_std(peer->issuer, (const char *const *)v->auds, v->nauds, cp, now, &exp, &sd);
	if (rc) {
		rc = dist_refuse(v, DISTCLAIMS_R_JWT, detail, tr, "distributed claims: claims JWT: %s", sd);
		goto out;
	}
	val = cJSON_GetObjectItemCaseSensitive(cp, v->dist_claim);
	if (val == NULL) {
		rc = dist_refuse(v, DISTCLAIMS_R_CLAIM_ABSENT, detail, tr, "distributed claims: the claims JWT has no "
				 "\"%.100s\" claim", v->dist_claim);
		goto out;
	}
	/* the token lacked the claim (distclaims_find), so this adds it rather than shadowing one */
	cJSON_DetachItemViaPointer(cp, val);
	cJSON_AddItemToObject(payload, v->dist_claim, val);
	*claim_exp = exp;
	*transient = false;
	mapping_tracef(tr, "distributed claims: \"%s\" resolved from its source (claims JWT verified)", v->dist_claim);
	rc = VERIFY_OK;
out:
	if (pks != ks)
		jwks_keyset_release(pks);
	if (parsed)
		jwt_token_free(&t);
	cJSON_Delete(cp);
	free(body);
	return rc;
}

/* An identity that must not outlive exp (a distributed claim's JWT expiring before the token): rebuilt with
 * that exp. VERIFY_OK, or VERIFY_E_INTERNAL with *id released. */
static int cap_exp(identity **id, int64_t exp)
{
	identity *nid;

	if ((*id)->exp <= exp)
		return VERIFY_OK;
	nid = identity_build((*id)->user, (*id)->uid, (const char *const *)(*id)->groups, (*id)->ngroups,
			     (*id)->extra, (*id)->nextra, exp, (*id)->key_fp);
	identity_release(*id);
	*id = nid;
	return nid != NULL ? VERIFY_OK : VERIFY_E_INTERNAL;
}

/* Whether the token might need its groups from distributed claims: cheap, before any std-claims work. */
static bool maybe_distributed(const verifier *v, const cJSON *payload)
{
	return v->dist_claim != NULL && cJSON_GetObjectItemCaseSensitive(payload, "_claim_names") != NULL &&
	       cJSON_GetObjectItemCaseSensitive(payload, v->dist_claim) == NULL;
}

/* The payload alone, for a token whose header jwt_parse() refused: its iss still picks the authenticator first,
 * as the API server routes a JWT by it before looking at anything else. 0, JWT_E_FORMAT/JWT_E_JSON, or
 * JWT_E_NOMEM. */
static int payload_only(const uint8_t *tok, size_t len, cJSON **out)
{
	const uint8_t *d1 = memchr(tok, '.', len), *d2;
	uint8_t *buf;
	size_t n, plen = 0;
	int rc;

	if (d1 == NULL || (d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok))) == NULL)
		return JWT_E_FORMAT;
	n = b64url_decoded_max((size_t)(d2 - d1 - 1)) + 1;
	if ((buf = malloc(n)) == NULL)
		return JWT_E_NOMEM;
	rc = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, n, &plen) != 0 ? JWT_E_FORMAT
		: payload_json(buf, plen, out);
	free(buf);
	return rc;
}

int verifier_token_parse(const uint8_t *tok, size_t len, size_t max_len, verifier_token *t)
{
	const cJSON *iss;

	memset(t, 0, sizeof(*t));
	t->bytes = tok;
	t->len = len;
	t->jwt_rc = jwt_parse(tok, len, max_len, &t->jwt);
	t->payload_rc = t->jwt_rc == 0 ? payload_json(t->jwt.payload, t->jwt.payload_len, &t->payload)
		: payload_only(tok, len, &t->payload);
	if (t->payload_rc != 0)
		t->payload = NULL;
	iss = cJSON_GetObjectItemCaseSensitive(t->payload, "iss");
	if (cJSON_IsString(iss))
		t->iss = iss->valuestring;
	return t->payload_rc;
}

void verifier_token_free(verifier_token *t)
{
	if (t->jwt_rc == 0)
		jwt_token_free(&t->jwt);
	cJSON_Delete(t->payload);
	memset(t, 0, sizeof(*t));
}

/* vt: parsed by verifier_token_parse(); its payload gets a resolved distributed claim added. */
static int verify_full(verifier *v, jwks_keyset *ks, verifier_token *vt, int64_t now, identity **out,
		       const char **detail, const mapping_trace *tr, bool *transient)
{
	const jwt_token *t = &vt->jwt;
	const jwks_key *key = NULL;
	cJSON *payload = vt->payload;
	char kidbuf[72];
	int rc;
	int64_t exp, claim_exp = INT64_MAX;

	if (vt->jwt_rc) {
		*detail = jwt_strerror(vt->jwt_rc);
		mapping_tracef(tr, "token: FAIL (%s)", *detail);
		return from_jwt(vt->jwt_rc);
	}
	mapping_tracef(tr, "header: alg=%s kid=%s%s%s", jwa_name(t->alg), t->kid ? "\"" : "(none)",
	       t->kid ? shown_kid(t, kidbuf, sizeof(kidbuf)) : "", t->kid ? "\"" : "");
	if (!(v->algs & JWA_BIT(t->alg))) {
		rc = VERIFY_E_ALG;
		*detail = "signing algorithm not in --oidc-signing-algs";
		mapping_tracef(tr, "algorithm: FAIL (not in --oidc-signing-algs)");
		goto out;
	}
	/* Parsed once, by verifier_token_parse(); nothing in it but iss is read before the signature is good. */
	if (vt->payload_rc) {
		rc = vt->payload_rc == JWT_E_NOMEM ? VERIFY_E_INTERNAL : VERIFY_E_MALFORMED;
		*detail = "payload is not a strict JSON object";
		mapping_tracef(tr, "payload: FAIL (%s)", *detail);
		goto out;
	}
	if (vt->iss == NULL || strcmp(vt->iss, v->issuer) != 0) {
		rc = VERIFY_E_ISSUER;
		*detail = "issuer mismatch";
		mapping_tracef(tr, "issuer: FAIL (the token's iss is not %s; no key tried)", v->issuer);
		goto out;
	}
	rc = check_signature(v, ks, t, &key, detail, tr, "");
	if (rc)
		goto out;
	/* the API server checks iss, aud, exp and nbf before it resolves distributed claims: an expired token
	 * never makes a fetch */
	rc = claims_check_std(v->issuer, (const char *const *)v->auds, v->nauds, payload, now, &exp, detail);
	if (rc) {
		mapping_tracef(tr, "standard claims: FAIL (%s)", *detail);
		rc = from_claims(rc);
		goto out;
	}
	mapping_tracef(tr, "standard claims (iss, aud MatchAny, exp, nbf): ok");
	if (maybe_distributed(v, payload)) {
		rc = resolve_distributed(v, ks, payload, now, &claim_exp, transient, detail, tr);
		if (rc)
			goto out;
	}
	rc = mapping_apply(v->map, payload, exp, key->fp, v->allow_reserved, out, detail, tr);
	if (rc)
		rc = rc == MAPPING_E_RESERVED ? VERIFY_E_RESERVED : rc == MAPPING_E_IDENTITY ? VERIFY_E_IDENTITY
		     : rc == MAPPING_E_CLAIM ? VERIFY_E_CLAIMS : VERIFY_E_INTERNAL;
out:
	if (rc == VERIFY_OK && *out != NULL && claim_exp != INT64_MAX)
		rc = cap_exp(out, claim_exp); /* never cached beyond the claim JWT's exp */
	if (rc == VERIFY_OK && v->credential_id && *out != NULL) {
		rc = add_credential_id(out, payload, detail);
		if (rc == VERIFY_OK)
			mapping_tracef(tr, "credential-id extra (--credential-id-extra): %s",
			       (*out)->nextra && strcmp((*out)->extra[(*out)->nextra - 1].key, CREDENTIAL_ID_KEY) == 0
			       ? "added" : "none (no usable jti)");
	}
	return rc;
}

/* Refusals worth remembering (negcache.h): those that a retry of the same bytes with the same keys gets again
 * and that cost a signature check to reach. Not "unknown kid" (a refresh may bring the key, and held requests are
 * judged again), not "not yet valid" (time fixes it), not "not ready" or internal errors (transient), and not
 * the cheap refusals before any key (malformed, algorithm, issuer), which would only crowd the table. */
static bool remember_refusal(int rc)
{
	return rc == VERIFY_E_SIGNATURE || rc == VERIFY_E_AUDIENCE || rc == VERIFY_E_EXPIRED || rc == VERIFY_E_CLAIMS ||
	       rc == VERIFY_E_RESERVED;
}

/* verify_full() behind the refused-token memory: key is the token's SHA-256 (cache_key()), or NULL to bypass it
 * (explain reports every check). */
static int judge(verifier *v, jwks_keyset *ks, verifier_token *vt, const uint8_t *key, int64_t now,
		 identity **out, const char **detail, const mapping_trace *tr)
{
	uint64_t serial = jwks_keyset_serial(ks);
	bool transient = false;
	int rc;

	if (key != NULL && (rc = negcache_get(v->neg, key, serial, now, detail)) != 0)
		return rc;
	rc = verify_full(v, ks, vt, now, out, detail, tr, &transient);
	if (key != NULL && rc != VERIFY_OK && !transient && remember_refusal(rc))
		negcache_put(v->neg, key, serial, now, rc, *detail);
	return rc;
}

int verifier_verify_token(verifier *v, verifier_token *vt, const uint8_t *known_key, int64_t now,
			  const mapping_trace *tr, const identity **id, const char **detail)
{
	uint8_t key[CACHE_KEY_LEN];
	identity *fresh = NULL;
	jwks_keyset *ks;
	const char *d = NULL;
	int rc;

	if (vt->len > v->max_token) {
		rc = VERIFY_E_TOO_LARGE;
		mapping_tracef(tr, "token: FAIL (longer than %zu bytes)", v->max_token);
	} else if (vt->len == 0) {
		rc = VERIFY_E_MALFORMED;
		mapping_tracef(tr, "token: FAIL (empty)");
	} else if ((ks = current_keys(v)) == NULL) {
		rc = VERIFY_E_NOT_READY;
		mapping_tracef(tr, "keys: FAIL (the issuer's JWKS is not loaded)");
	} else {
		mapping_tracef(tr, "keys: %zu in the issuer's JWKS", jwks_keyset_count(ks));
		if (tr == NULL && known_key == NULL)
			cache_key(vt->bytes, vt->len, key);
		rc = judge(v, ks, vt, tr != NULL ? NULL : known_key != NULL ? known_key : key, now, &fresh, &d, tr);
		jwks_keyset_release(ks);
		if (rc == VERIFY_OK) {
			*id = fresh;
			return VERIFY_OK;
		}
	}
	if (detail)
		*detail = d ? d : verifier_reason(rc);
	return rc;
}

/* Parses token once and verifies it uncached (verifier_verify_token). */
static int verify_bytes(verifier *v, const uint8_t *token, size_t len, int64_t now, const mapping_trace *tr,
			const identity **id, const char **detail)
{
	verifier_token vt;
	int rc;

	if (len > v->max_token || len == 0) {
		memset(&vt, 0, sizeof(vt));
		vt.bytes = token;
		vt.len = len;
		return verifier_verify_token(v, &vt, NULL, now, tr, id, detail); /* refused before any parse */
	}
	verifier_token_parse(token, len, v->max_token, &vt);
	rc = verifier_verify_token(v, &vt, NULL, now, tr, id, detail);
	verifier_token_free(&vt);
	return rc;
}

int verifier_verify_uncached(verifier *v, const uint8_t *token, size_t len, int64_t now, const identity **id,
			     const char **detail)
{
	return verify_bytes(v, token, len, now, NULL, id, detail);
}

int verifier_explain(verifier *v, const uint8_t *token, size_t len, int64_t now, const mapping_trace *trace,
		     const identity **id, const char **detail)
{
	return verify_bytes(v, token, len, now, trace, id, detail);
}

bool verifier_has_key(verifier *v, uint64_t fp)
{
	jwks_keyset *ks = current_keys(v);
	bool has = ks != NULL && jwks_has_fp(ks, fp);

	jwks_keyset_release(ks);
	return has;
}

const char *verifier_issuer(const verifier *v)
{
	return v->issuer;
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
	memset(out, 0, sizeof(*out)); /* the token cache is the issuer set's (issuers_cache_stats) */
	out->refresh_requests = atomic_load_explicit(&v->refresh_requests, memory_order_relaxed);
	out->negative_hits = negcache_hits(v->neg);
	out->work_refusals = atomic_load_explicit(&v->work_refusals, memory_order_relaxed);
}

void verifier_destroy(verifier *v)
{
	verifier_free(v);
}
