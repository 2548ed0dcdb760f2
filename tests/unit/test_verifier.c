/*
 * test_verifier.c — the whole identity core as the agent runs it (issuers_verify() on the --oidc-* flags' issuer
 * set, with keys given), with tokens minted by python3-jwcrypto (tests/fixtures/gen_tokens.py): one test per fixture, each naming its verdict; then the allow-list, readiness,
 * unknown kid → refresh request, the cache (hits, expiry, key rotation drops entries), reasons never carrying
 * token bytes, and concurrent hits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jose_test.h"
#include "jwks.h"
#include "negcache.h"
#include "issuers.h"
#include "verifier.h"

#include "../fixtures/tokens.inc"

static jwks_keyset *fix_keys(void)
{
	jwks_keyset *ks = NULL;
	char err[200];

	assert_int_equal(jwks_parse((const uint8_t *)FIX_JWKS, strlen(FIX_JWKS), &ks, err, sizeof(err)), 0);
	return ks;
}

static verifier_config base_cfg(void)
{
	verifier_config c;

	memset(&c, 0, sizeof(c));
	c.oidc.issuer_url = FIX_ISS;
	c.client_id = FIX_AUD;
	c.groups_claim = "groups";
	c.signing_algs = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA";
	return c;
}

static issuers *make(const verifier_config *c, jwks_keyset *ks)
{
	issuers *v = NULL;
	char err[200];

	if (issuers_create_flags_with_keys(c, ks, &v, err, sizeof(err)) != 0)
		fail_msg("issuers_create_flags_with_keys: %s", err);
	return v;
}

static const char *find_token(const char *name)
{
	for (size_t i = 0; i < FIX_NTOKENS; i++)
		if (strcmp(FIX_TOKENS[i].name, name) == 0)
			return FIX_TOKENS[i].token;
	fail_msg("no fixture %s", name);
	return NULL;
}

static int verify_str(issuers *v, const char *tok, int64_t now, const identity **id, const char **detail)
{
	return issuers_verify(v, (const uint8_t *)tok, strlen(tok), now, id, detail);
}

/* ---- one test per fixture ---- */

static void test_fixture(void **state)
{
	const struct fix_token *f = *state;
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v = make(&c, ks);
	const identity *id = NULL;
	const char *detail = NULL;
	int rc = verify_str(v, f->token, FIX_NOW, &id, &detail);

	if (rc != f->expect)
		fail_msg("%s: got %d (%s: %s), want %d (%s)", f->name, rc, verifier_reason(rc), detail ? detail : "",
			 f->expect, verifier_reason(f->expect));
	if (rc == VERIFY_OK) {
		assert_string_equal(id->user, FIX_ISS "#alice");
		assert_true(id->ngroups >= 1);
		assert_string_equal(id->groups[0], "dev");
		identity_release(id);
	} else {
		const char *sig = strrchr(f->token, '.');

		assert_non_null(detail);
		assert_true(strlen(detail) > 0);
		/* a reason never carries token bytes (any 8-char piece of the signature or payload) */
		if (sig && strlen(sig) > 9) {
			char piece[9];

			memcpy(piece, sig + 1, 8);
			piece[8] = 0;
			assert_null(strstr(detail, piece));
		}
		assert_true(strlen(detail) < 120);
	}
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

static void test_token_100k(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v = make(&c, ks);
	size_t n = 100 * 1024;
	char *big = malloc(n + 1);
	const identity *id = NULL;
	const char *d = NULL;

	(void)state;
	memset(big, 'A', n);
	big[10] = '.';
	big[n - 10] = '.';
	big[n] = 0;
	assert_int_equal(verify_str(v, big, FIX_NOW, &id, &d), VERIFY_E_TOO_LARGE);
	assert_null(id);
	free(big);
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

static void test_empty_token(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v = make(&c, ks);
	const identity *id = NULL;

	(void)state;
	assert_int_equal(issuers_verify(v, (const uint8_t *)"", 0, FIX_NOW, &id, NULL), VERIFY_E_MALFORMED);
	assert_int_equal(verify_str(v, "..", FIX_NOW, &id, NULL), VERIFY_E_MALFORMED);
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

/* the default allow-list is RS256 only: a valid ES256 or PS256 token is refused for its alg */
static void test_default_alg_list(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v;
	const identity *id = NULL;

	(void)state;
	c.signing_algs = NULL;
	v = make(&c, ks);
	assert_int_equal(verify_str(v, find_token("good_ES256"), FIX_NOW, &id, NULL), VERIFY_E_ALG);
	assert_int_equal(verify_str(v, find_token("good_PS256"), FIX_NOW, &id, NULL), VERIFY_E_ALG);
	assert_int_equal(verify_str(v, find_token("good_EdDSA"), FIX_NOW, &id, NULL), VERIFY_E_ALG);
	assert_int_equal(verify_str(v, find_token("good_RS256"), FIX_NOW, &id, NULL), VERIFY_OK);
	identity_release(id);
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

static void test_bad_config(void **state)
{
	static const char *const algs[] = { "HS256", "none", "RS256,none", "rs256", "RS256,,ES256", "RSA-OAEP" };
	verifier *v = NULL;
	char err[200];

	(void)state;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		verifier_config c = base_cfg();

		c.signing_algs = algs[i];
		if (verifier_create_with_keys(&c, NULL, &v, err, sizeof(err)) == 0)
			fail_msg("signing_algs \"%s\" accepted", algs[i]);
		assert_non_null(strstr(err, "algorithm"));
	}
	{
		verifier_config c = base_cfg();

		c.client_id = NULL;
		assert_int_equal(verifier_create_with_keys(&c, NULL, &v, err, sizeof(err)), -1);
		c = base_cfg();
		c.oidc.issuer_url = "";
		assert_int_equal(verifier_create_with_keys(&c, NULL, &v, err, sizeof(err)), -1);
	}
}

/* The issuer is picked by the unverified iss before the header is judged (the API server routes a JWT by its iss;
 * a file's tokens were judged so already): an alg-none token of another issuer is "issuer mismatch", of ours
 * "signing algorithm not allowed". With the flags before the one path, both were the latter. */
static void test_issuer_picked_before_header(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v = make(&c, ks);
	const identity *id = NULL;
	const char *d = NULL;

	(void)state;
	assert_int_equal(verify_str(v, "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL290aGVyLmV4YW1wbGUiLCJzdWIiOiJhIn0.",
				    FIX_NOW, &id, &d), VERIFY_E_ISSUER);
	assert_string_equal(d, "unknown issuer");
	assert_int_equal(verify_str(v, "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoiYSJ9.",
				    FIX_NOW, &id, &d), VERIFY_E_ALG);
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

static void test_not_ready(void **state)
{
	verifier_config c = base_cfg();
	issuers *v = make(&c, NULL);
	const identity *id = NULL;
	const char *d = NULL;
	jwks_keyset *ks;

	(void)state;
	assert_false(issuers_ready(v));
	assert_int_equal(verify_str(v, find_token("good_RS256"), FIX_NOW, &id, &d), VERIFY_E_NOT_READY);
	assert_string_equal(d, "issuer keys not loaded");
	/* the issuer is picked first, as with a file and in the API server: another issuer's token is not ours to
	 * answer 503 for (with the flags, before the one path, this was VERIFY_E_NOT_READY) */
	assert_int_equal(verify_str(v, find_token("wrong_issuer"), FIX_NOW, &id, &d), VERIFY_E_ISSUER);
	assert_string_equal(d, "unknown issuer");
	ks = fix_keys();
	issuers_set_keys(v, ks);
	jwks_keyset_release(ks);
	assert_true(issuers_ready(v));
	assert_int_equal(verify_str(v, find_token("good_RS256"), FIX_NOW, &id, &d), VERIFY_OK);
	identity_release(id);
	issuers_destroy(v);
}

static void test_unknown_kid_requests_refresh(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v = make(&c, ks);
	verifier_cache_stats st;
	const identity *id = NULL;

	(void)state;
	assert_int_equal(verify_str(v, find_token("unknown_kid"), FIX_NOW, &id, NULL), VERIFY_E_UNKNOWN_KID);
	assert_int_equal(verify_str(v, find_token("kid_of_ec_key_for_rs256"), FIX_NOW, &id, NULL),
			 VERIFY_E_SIGNATURE);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.refresh_requests, 1); /* a kid of another key type is not a reason to refetch */
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

/* Another issuer's token (a service-account token tried first, say) is refused on its unverified iss before any
 * key lookup, as the API server routes it: an unknown kid then asks for no JWKS refresh (only a token naming this
 * issuer makes the refetch worth it). */
static void test_unknown_kid_of_another_issuer(void **state)
{
	static const struct {
		const char *payload;
		int expect;
		uint64_t refreshes; /* refresh requests so far */
	} cases[] = {
		{ "{\"iss\":\"https://kubernetes.default.svc\",\"sub\":\"system:serviceaccount:a:b\"}", VERIFY_E_ISSUER, 0 },
		{ "{\"iss\":\"" FIX_ISS "/\"}", VERIFY_E_ISSUER, 0 },
		{ "{\"iss\":7}", VERIFY_E_ISSUER, 0 },
		{ "{\"sub\":\"alice\"}", VERIFY_E_ISSUER, 0 },
		{ "[1]", VERIFY_E_MALFORMED, 0 },
		{ "{\"iss\":\"" FIX_ISS "\",\"iss\":\"x\"}", VERIFY_E_MALFORMED, 0 }, /* duplicate member */
		{ "{\"iss\":\"" FIX_ISS "\",\"sub\":\"alice\"}", VERIFY_E_UNKNOWN_KID, 1 },
	};
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v = make(&c, ks);
	EVP_PKEY *k = tj_keygen("P-256");

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *tok = tj_token(k, "ES256", "{\"alg\":\"ES256\",\"kid\":\"nope\"}", cases[i].payload, NULL);
		const identity *id = NULL;
		const char *d = NULL;
		verifier_cache_stats st;
		int rc = verify_str(v, tok, FIX_NOW, &id, &d);

		if (rc != cases[i].expect)
			fail_msg("%s: got %d (%s), want %d", cases[i].payload, rc, d ? d : "", cases[i].expect);
		assert_non_null(d);
		issuers_cache_stats(v, &st);
		assert_int_equal(st.refresh_requests, cases[i].refreshes);
		free(tok);
	}
	issuers_destroy(v);
	jwks_keyset_release(ks);
	EVP_PKEY_free(k);
}

/* A foreign iss is refused before any key is tried, whatever the header names: a kid of ours, no kid, an empty
 * kid. The foreign tokens are signed by a stranger's key, so a verifier that tried a key first would answer
 * "invalid signature" instead. */
static void test_foreign_issuer_before_any_key(void **state)
{
	static const char *const headers[] = {
		"{\"alg\":\"ES256\",\"kid\":\"t\"}", "{\"alg\":\"ES256\"}", "{\"alg\":\"ES256\",\"kid\":\"\"}",
	};
	EVP_PKEY *k = tj_keygen("P-256"), *stranger = tj_keygen("P-256");
	char *jwk = tj_jwk(k, "t", NULL), doc[1024], payload[256];
	jwks_keyset *ks = NULL;
	verifier_config c = base_cfg();
	issuers *v;

	(void)state;
	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk);
	assert_int_equal(jwks_parse((const uint8_t *)doc, strlen(doc), &ks, NULL, 0), 0);
	v = make(&c, ks);
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		for (int own = 0; own <= 1; own++) {
			const identity *id = NULL;
			const char *d = NULL;
			char *tok;
			int rc;

			snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"alice\",\"exp\":%d}",
				 own ? FIX_ISS : "https://other.example", FIX_AUD, FIX_NOW + 60);
			tok = tj_token(own ? k : stranger, "ES256", headers[i], payload, NULL);
			rc = verify_str(v, tok, FIX_NOW, &id, &d);
			/* own issuer: the empty kid is no kid (go-oidc), so all three verify */
			if (rc != (own ? VERIFY_OK : VERIFY_E_ISSUER))
				fail_msg("%s own=%d: got %d (%s)", headers[i], own, rc, d ? d : "");
			if (rc == VERIFY_OK)
				identity_release(id);
			free(tok);
		}
	}
	issuers_destroy(v);
	jwks_keyset_release(ks);
	free(jwk);
	EVP_PKEY_free(k);
	EVP_PKEY_free(stranger);
}

/* Several keys published under one kid (a rotation that reused it): a token signed by any of them verifies, as
 * with go-oidc; a token under that kid signed by none is a bad signature, not an unknown kid. */
static void test_duplicate_kid_tries_each_key(void **state)
{
	EVP_PKEY *k1 = tj_keygen("P-256"), *k2 = tj_keygen("P-256"), *kr = tj_keygen("RSA"), *stranger = tj_keygen("P-256");
	char *j1 = tj_jwk(k1, "d", NULL), *j2 = tj_jwk(k2, "d", NULL), *jr = tj_jwk(kr, "d", NULL), doc[4096];
	char payload[256], *t1, *t2, *tr, *ts;
	jwks_keyset *ks = NULL, *only1 = NULL;
	verifier_config c = base_cfg();
	issuers *v;
	verifier_cache_stats st;
	const identity *id = NULL;
	const char *d = NULL;

	(void)state;
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s]}", j1, jr, j2);
	assert_int_equal(jwks_parse((const uint8_t *)doc, strlen(doc), &ks, NULL, 0), 0);
	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", j1);
	assert_int_equal(jwks_parse((const uint8_t *)doc, strlen(doc), &only1, NULL, 0), 0);
	v = make(&c, ks);
	snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"alice\",\"exp\":%d}", FIX_ISS,
		 FIX_AUD, FIX_NOW + 60);
	t1 = tj_token(k1, "ES256", "{\"alg\":\"ES256\",\"kid\":\"d\"}", payload, NULL);
	t2 = tj_token(k2, "ES256", "{\"alg\":\"ES256\",\"kid\":\"d\"}", payload, NULL);
	tr = tj_token(kr, "RS256", "{\"alg\":\"RS256\",\"kid\":\"d\"}", payload, NULL);
	ts = tj_token(stranger, "ES256", "{\"alg\":\"ES256\",\"kid\":\"d\"}", payload, NULL);
	assert_int_equal(verify_str(v, t1, FIX_NOW, &id, &d), VERIFY_OK);
	identity_release(id);
	assert_int_equal(verify_str(v, t2, FIX_NOW, &id, &d), VERIFY_OK);
	identity_release(id);
	assert_int_equal(verify_str(v, tr, FIX_NOW, &id, &d), VERIFY_OK);
	identity_release(id);
	assert_int_equal(verify_str(v, ts, FIX_NOW, &id, &d), VERIFY_E_SIGNATURE);
	/* cached, and the hit still checks that the key which verified it is published: without k2, t2 is refused */
	assert_int_equal(verify_str(v, t2, FIX_NOW, &id, &d), VERIFY_OK);
	identity_release(id);
	issuers_set_keys(v, only1);
	assert_int_equal(verify_str(v, t2, FIX_NOW, &id, &d), VERIFY_E_SIGNATURE);
	assert_int_equal(verify_str(v, t1, FIX_NOW, &id, &d), VERIFY_OK);
	identity_release(id);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.refresh_requests, 0);
	issuers_destroy(v);
	jwks_keyset_release(ks);
	jwks_keyset_release(only1);
	free(t1), free(t2), free(tr), free(ts), free(j1), free(j2), free(jr);
	EVP_PKEY_free(k1), EVP_PKEY_free(k2), EVP_PKEY_free(kr), EVP_PKEY_free(stranger);
}

/* JWKS of the fixture without the key named kid (a rotation that removed it) */
static jwks_keyset *keys_without(const char *kid)
{
	cJSON *doc = cJSON_Parse(FIX_JWKS), *keys = cJSON_GetObjectItem(doc, "keys"), *it = keys->child;
	jwks_keyset *ks = NULL;
	char *s;

	while (it) {
		cJSON *next = it->next;
		const cJSON *k = cJSON_GetObjectItem(it, "kid");

		if (cJSON_IsString(k) && strcmp(k->valuestring, kid) == 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(keys, it));
		it = next;
	}
	s = cJSON_PrintUnformatted(doc);
	assert_int_equal(jwks_parse((const uint8_t *)s, strlen(s), &ks, NULL, 0), 0);
	free(s);
	cJSON_Delete(doc);
	return ks;
}

static void test_cache_hit_and_key_removal(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys(), *rotated = keys_without("rsa");
	issuers *v = make(&c, ks);
	verifier_cache_stats st;
	const identity *a = NULL, *b = NULL;
	const char *tok = find_token("good_RS256");

	(void)state;
	assert_int_equal(verify_str(v, tok, FIX_NOW, &a, NULL), VERIFY_OK);
	assert_int_equal(verify_str(v, tok, FIX_NOW + 1, &b, NULL), VERIFY_OK);
	assert_ptr_equal(a, b); /* the hit hands out the same identity */
	issuers_cache_stats(v, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.size, 1);
	identity_release(b);
	/* the key that signed it leaves the JWKS: the cached identity must not be served any more */
	issuers_set_keys(v, rotated);
	assert_int_equal(verify_str(v, tok, FIX_NOW + 2, &b, NULL), VERIFY_E_UNKNOWN_KID);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.size, 0);
	/* and it comes back (rotation without restart) */
	issuers_set_keys(v, ks);
	assert_int_equal(verify_str(v, tok, FIX_NOW + 3, &b, NULL), VERIFY_OK);
	assert_ptr_not_equal(a, b);
	identity_release(a);
	identity_release(b);
	issuers_destroy(v);
	jwks_keyset_release(ks);
	jwks_keyset_release(rotated);
}

static void test_cache_expiry(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v;
	const identity *id = NULL;
	const char *tok = find_token("good_RS256"); /* exp = FIX_NOW + 3600 */

	(void)state;
	c.cache_ttl_s = 30;
	v = make(&c, ks);
	assert_int_equal(verify_str(v, tok, FIX_NOW, &id, NULL), VERIFY_OK);
	identity_release(id);
	/* past the TTL the entry is gone but the token is still valid: a miss, then OK again */
	assert_int_equal(verify_str(v, tok, FIX_NOW + 31, &id, NULL), VERIFY_OK);
	identity_release(id);
	/* past exp: never served from the cache */
	assert_int_equal(verify_str(v, tok, FIX_NOW + 3601, &id, NULL), VERIFY_E_EXPIRED);
	{
		verifier_cache_stats st;

		issuers_cache_stats(v, &st);
		assert_int_equal(st.hits, 0);
	}
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

static void test_allow_reserved(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v;
	const identity *id = NULL;

	(void)state;
	c.allow_reserved = true;
	v = make(&c, ks);
	assert_int_equal(verify_str(v, find_token("groups_system_masters"), FIX_NOW, &id, NULL), VERIFY_OK);
	assert_string_equal(id->groups[0], "system:masters");
	identity_release(id);
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

static void test_prefixes_and_required(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v;
	const identity *id = NULL;
	const char *d = NULL;

	(void)state;
	c.username_prefix = "oidc:";
	c.groups_prefix = "oidc:";
	c.required_claims[0][0] = "sub";
	c.required_claims[0][1] = "alice";
	c.nrequired_claims = 1;
	v = make(&c, ks);
	assert_int_equal(verify_str(v, find_token("good_ES384"), FIX_NOW, &id, NULL), VERIFY_OK);
	assert_string_equal(id->user, "oidc:alice");
	assert_int_equal(id->ngroups, 2);
	assert_string_equal(id->groups[1], "oidc:ops");
	identity_release(id);
	issuers_destroy(v);

	c.required_claims[0][1] = "bob";
	v = make(&c, ks);
	assert_int_equal(verify_str(v, find_token("good_ES384"), FIX_NOW, &id, &d), VERIFY_E_CLAIMS);
	/* the API server's wording: the flags go through the AuthenticationConfiguration rules (flagcfg.h) */
	assert_string_equal(d, "oidc: required claim sub value does not match");
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

/* ---- identity shape: uid never set, groups absent / null / empty ---- */

static void test_identity_shapes(void **state)
{
	static const struct {
		const char *name;
		const char *groups_claim; /* verifier config */
		const char *extra;        /* appended to the payload */
		int expect;
		size_t ngroups;
	} cases[] = {
		{ "groups absent", "groups", "", VERIFY_OK, 0 },
		{ "groups null", "groups", ",\"groups\":null", VERIFY_OK, 0 },
		{ "groups empty array", "groups", ",\"groups\":[]", VERIFY_OK, 0 },
		{ "groups one", "groups", ",\"groups\":[\"dev\"]", VERIFY_OK, 1 },
		{ "groups a string", "groups", ",\"groups\":\"dev\"", VERIFY_OK, 1 },
		{ "groups claim not configured", NULL, ",\"groups\":[\"dev\",\"ops\"]", VERIFY_OK, 0 },
		{ "other groups claim configured", "roles", ",\"groups\":[\"dev\"]", VERIFY_OK, 0 },
		{ "groups empty string", "groups", ",\"groups\":\"\"", VERIFY_E_CLAIMS, 0 },
		{ "groups [\"\"]", "groups", ",\"groups\":[\"\"]", VERIFY_E_CLAIMS, 0 },
		{ "groups [null]", "groups", ",\"groups\":[null]", VERIFY_E_CLAIMS, 0 },
		{ "groups object", "groups", ",\"groups\":{}", VERIFY_E_CLAIMS, 0 },
		{ "groups false", "groups", ",\"groups\":false", VERIFY_E_CLAIMS, 0 },
		{ "uid-like claims are not mapped", "groups", ",\"uid\":\"u-1\",\"extra\":{\"a\":\"b\"}", VERIFY_OK, 0 },
	};
	EVP_PKEY *k = tj_keygen("P-256");
	char *jwk = tj_jwk(k, "t", NULL), doc[1024];
	jwks_keyset *ks = NULL;

	(void)state;
	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk);
	assert_int_equal(jwks_parse((const uint8_t *)doc, strlen(doc), &ks, NULL, 0), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		verifier_config c = base_cfg();
		issuers *v;
		char payload[512], *tok;
		const identity *id = NULL;
		const char *d = NULL;
		int rc;

		c.groups_claim = cases[i].groups_claim;
		v = make(&c, ks);
		snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"alice\",\"exp\":%d%s}", FIX_ISS,
			 FIX_AUD, FIX_NOW + 60, cases[i].extra);
		tok = tj_token(k, "ES256", "{\"alg\":\"ES256\",\"kid\":\"t\"}", payload, NULL);
		rc = verify_str(v, tok, FIX_NOW, &id, &d);
		if (rc != cases[i].expect)
			fail_msg("%s: got %d (%s), want %d", cases[i].name, rc, d ? d : "", cases[i].expect);
		if (rc == VERIFY_OK) {
			assert_string_equal(id->user, FIX_ISS "#alice");
			assert_null(id->uid); /* OIDC tokens carry no Kubernetes uid: never invented */
			assert_int_equal(id->nextra, 0);
			assert_null(id->extra);
			assert_int_equal(id->ngroups, cases[i].ngroups);
			if (!cases[i].ngroups)
				assert_null(id->groups);
			else
				assert_string_equal(id->groups[0], "dev");
			assert_int_equal(id->exp, FIX_NOW + 60);
			identity_release(id);
			/* and the cached identity is the same shape */
			assert_int_equal(verify_str(v, tok, FIX_NOW, &id, &d), VERIFY_OK);
			assert_null(id->uid);
			assert_int_equal(id->ngroups, cases[i].ngroups);
			identity_release(id);
		} else {
			assert_non_null(d);
			assert_non_null(strstr(d, "groups"));
		}
		free(tok);
		issuers_destroy(v);
	}
	jwks_keyset_release(ks);
	free(jwk);
	EVP_PKEY_free(k);
}

/* ---- reasons: stable text (logs, 401 bodies and tests elsewhere match them), never empty, all distinct ---- */

static void test_reason_strings(void **state)
{
	static const struct {
		int rc;
		const char *text;
	} reasons[] = {
		{ VERIFY_OK, "ok" },
		{ VERIFY_E_MALFORMED, "malformed token" },
		{ VERIFY_E_TOO_LARGE, "token too large" },
		{ VERIFY_E_ALG, "signing algorithm not allowed" },
		{ VERIFY_E_UNKNOWN_KID, "unknown key id" },
		{ VERIFY_E_SIGNATURE, "invalid signature" },
		{ VERIFY_E_ISSUER, "issuer mismatch" },
		{ VERIFY_E_AUDIENCE, "audience mismatch" },
		{ VERIFY_E_EXPIRED, "token expired" },
		{ VERIFY_E_NOT_YET, "token not yet valid" },
		{ VERIFY_E_CLAIMS, "invalid claims" },
		{ VERIFY_E_NOT_READY, "issuer keys not loaded" },
		{ VERIFY_E_RESERVED, "reserved identity refused" },
		{ VERIFY_E_INTERNAL, "internal error" },
		{ VERIFY_E_IDENTITY, "identity cannot be forwarded unchanged" },
		{ VERIFY_E_PENDING, "distributed claims being fetched" },
	};
	size_t n = sizeof(reasons) / sizeof(reasons[0]);

	(void)state;
	/* the table covers every result: VERIFY_OK down to the last code, contiguous */
	assert_int_equal((int)n, 1 - VERIFY_E_PENDING);
	for (size_t i = 0; i < n; i++) {
		const char *r = verifier_reason(reasons[i].rc);

		assert_int_equal(reasons[i].rc, -(int)i);
		assert_non_null(r);
		assert_string_equal(r, reasons[i].text);
		for (const char *p = r; *p; p++) /* printable ASCII: safe in a header, a log line, a JSON string */
			assert_true(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\');
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(r, reasons[j].text);
	}
	/* codes outside the enum still get a non-empty reason */
	assert_string_equal(verifier_reason(-16), "internal error");
	assert_string_equal(verifier_reason(1), "internal error");
	assert_string_equal(verifier_reason(-1000), "internal error");
}

/* ---- issue 14 finding 6: bounded signature work per token, the refused-token memory ---- */

/* A set of 100 copies of one RSA-4096 key (4 work units each; kid "big") then one RSA-2048 key (kid "small"):
 * the shape of a hostile or careless issuer's set. Without a kid a token is tried against every key that fits
 * its alg, so before the cap a token from nobody's key cost 101 verifications (with 256 keys of 16,384 bits
 * and a 32-bit exponent: about 0.7 s of CPU per token, see SECURITY.md). */
static void test_work_cap(void **state)
{
	EVP_PKEY *big = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096), *small = tj_keygen("RSA");
	EVP_PKEY *stranger = tj_keygen("RSA");
	char *jb = tj_jwk(big, "big", NULL), *js = tj_jwk(small, "small", NULL);
	size_t cap = 101 * (strlen(jb) + 1) + strlen(js) + 32, off;
	char *doc = malloc(cap), payload[256];
	char *t_nokid_stranger, *t_kid_stranger, *t_nokid_big, *t_kid_small, *t_nokid_small;
	jwks_keyset *ks = NULL;
	verifier_config c = base_cfg();
	issuers *v;
	verifier_cache_stats st;
	const identity *id = NULL;
	const char *d = NULL;

	(void)state;
	assert_non_null(big);
	assert_non_null(doc);
	off = (size_t)snprintf(doc, cap, "{\"keys\":[");
	for (int i = 0; i < 100; i++)
		off += (size_t)snprintf(doc + off, cap - off, "%s,", jb);
	snprintf(doc + off, cap - off, "%s]}", js);
	assert_int_equal(jwks_parse((const uint8_t *)doc, strlen(doc), &ks, NULL, 0), 0);
	assert_int_equal(jwks_keyset_count(ks), 101);
	assert_int_equal(jwks_keyset_key(ks, 0)->work, 4);    /* (4096 / 2048)^2 */
	assert_int_equal(jwks_keyset_key(ks, 100)->work, 1);  /* the unit */
	v = make(&c, ks);
	snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"alice\",\"exp\":%d}", FIX_ISS,
		 FIX_AUD, FIX_NOW + 60);
	t_nokid_stranger = tj_token(stranger, "RS256", "{\"alg\":\"RS256\"}", payload, NULL);
	t_kid_stranger = tj_token(stranger, "RS256", "{\"alg\":\"RS256\",\"kid\":\"big\"}", payload, NULL);
	t_nokid_big = tj_token(big, "RS256", "{\"alg\":\"RS256\"}", payload, NULL);
	t_kid_small = tj_token(small, "RS256", "{\"alg\":\"RS256\",\"kid\":\"small\"}", payload, NULL);
	t_nokid_small = tj_token(small, "RS256", "{\"alg\":\"RS256\"}", payload, NULL);

	/* nobody's key, no kid: refused with a reason that says why, after 64 keys (256 units), not 101 */
	assert_int_equal(verify_str(v, t_nokid_stranger, FIX_NOW, &id, &d), VERIFY_E_SIGNATURE);
	assert_non_null(d);
	assert_non_null(strstr(d, "too much verification work"));
	assert_non_null(strstr(d, "no kid"));
	/* the same through a kid that 100 keys share */
	assert_int_equal(verify_str(v, t_kid_stranger, FIX_NOW, &id, &d), VERIFY_E_SIGNATURE);
	assert_non_null(strstr(d, "too much verification work"));
	assert_non_null(strstr(d, "this kid"));
	issuers_cache_stats(v, &st);
	assert_int_equal(st.work_refusals, 2);
	/* within the budget nothing changes: the first key always, a kid naming one key */
	assert_int_equal(verify_str(v, t_nokid_big, FIX_NOW, &id, &d), VERIFY_OK);
	identity_release(id);
	assert_int_equal(verify_str(v, t_kid_small, FIX_NOW, &id, &d), VERIFY_OK);
	identity_release(id);
	/* a kid-less token whose key sits past the budget is refused too: the price of the bound (the API server
	 * would try all 101); issuers that sign without kid publish one or two keys */
	assert_int_equal(verify_str(v, t_nokid_small, FIX_NOW, &id, &d), VERIFY_E_SIGNATURE);
	assert_non_null(strstr(d, "too much verification work"));
	issuers_cache_stats(v, &st);
	assert_int_equal(st.work_refusals, 3);
	issuers_destroy(v);
	jwks_keyset_release(ks);
	free(t_nokid_stranger), free(t_kid_stranger), free(t_nokid_big), free(t_kid_small), free(t_nokid_small);
	free(doc), free(jb), free(js);
	EVP_PKEY_free(big), EVP_PKEY_free(small), EVP_PKEY_free(stranger);
}

/* The same bad token again is answered from the refused-token memory, with the same reason and detail, for
 * NEGCACHE_TTL_S seconds and only while the key set is the same; a good token is never refused because of it. */
static void test_negative_cache(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys(), *again = fix_keys();
	issuers *v = make(&c, ks);
	const char *good = find_token("good_RS256");
	char *bad = strdup(good), d1[128];
	verifier_cache_stats st;
	const identity *id = NULL;
	const char *d = NULL;
	size_t n = strlen(bad);

	(void)state;
	/* the good token's header and payload with one signature character changed */
	bad[n - 10] = bad[n - 10] == 'A' ? 'B' : 'A';
	assert_int_equal(verify_str(v, bad, FIX_NOW, &id, &d), VERIFY_E_SIGNATURE);
	snprintf(d1, sizeof(d1), "%s", d);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.negative_hits, 0);
	assert_int_equal(verify_str(v, bad, FIX_NOW + 1, &id, &d), VERIFY_E_SIGNATURE);
	assert_string_equal(d, d1);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.negative_hits, 1);
	/* the good token right after (same header and payload, the right signature): accepted */
	assert_int_equal(verify_str(v, good, FIX_NOW + 1, &id, &d), VERIFY_OK);
	identity_release(id);
	assert_int_equal(verify_str(v, bad, FIX_NOW + 2, &id, &d), VERIFY_E_SIGNATURE);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.negative_hits, 2);
	/* short-lived: judged afresh once NEGCACHE_TTL_S have passed, and never at an earlier time than stored */
	assert_int_equal(verify_str(v, bad, FIX_NOW + NEGCACHE_TTL_S, &id, &d), VERIFY_E_SIGNATURE);
	assert_int_equal(verify_str(v, bad, FIX_NOW - 1, &id, &d), VERIFY_E_SIGNATURE);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.negative_hits, 2);
	/* any new key set (every JWKS download makes one) forgets everything */
	assert_int_equal(verify_str(v, bad, FIX_NOW + 10, &id, &d), VERIFY_E_SIGNATURE);
	assert_int_equal(verify_str(v, bad, FIX_NOW + 11, &id, &d), VERIFY_E_SIGNATURE);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.negative_hits, 3);
	issuers_set_keys(v, again);
	assert_int_equal(verify_str(v, bad, FIX_NOW + 11, &id, &d), VERIFY_E_SIGNATURE);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.negative_hits, 3);
	/* remembered: claims refusals after a good signature, with their detail */
	assert_int_equal(verify_str(v, find_token("aud_mismatch"), FIX_NOW, &id, &d), VERIFY_E_AUDIENCE);
	snprintf(d1, sizeof(d1), "%s", d);
	assert_int_equal(verify_str(v, find_token("aud_mismatch"), FIX_NOW, &id, &d), VERIFY_E_AUDIENCE);
	assert_string_equal(d, d1);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.negative_hits, 4);
	/* never remembered: what time or a refresh can change, and the cheap refusals */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(verify_str(v, find_token("nbf_future"), FIX_NOW, &id, &d), VERIFY_E_NOT_YET);
		assert_int_equal(verify_str(v, find_token("unknown_kid"), FIX_NOW, &id, &d), VERIFY_E_UNKNOWN_KID);
		assert_int_equal(verify_str(v, find_token("alg_none"), FIX_NOW, &id, &d), VERIFY_E_ALG);
	}
	issuers_cache_stats(v, &st);
	assert_int_equal(st.negative_hits, 4);
	/* the cache-less entry point (issuers.h) has it too */
	assert_int_equal(issuers_verify(v, (const uint8_t *)bad, n, FIX_NOW + 20, &id, &d), VERIFY_E_SIGNATURE);
	assert_int_equal(issuers_verify(v, (const uint8_t *)bad, n, FIX_NOW + 21, &id, &d), VERIFY_E_SIGNATURE);
	issuers_cache_stats(v, &st);
	assert_int_equal(st.negative_hits, 5);
	issuers_destroy(v);
	jwks_keyset_release(ks);
	jwks_keyset_release(again);
	free(bad);
}

/* The refused-token memory is small and bounded: a flood of distinct bad tokens only pushes older ones out,
 * and a good token interleaved with them is accepted every time. */
static void test_negative_cache_flood(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v = make(&c, ks);
	const char *good = find_token("good_RS256");
	size_t n = strlen(good);
	char *bad = strdup(good);
	const identity *id = NULL;
	const char *d = NULL;

	(void)state;
	for (int i = 0; i < 3 * NEGCACHE_ENTRIES; i++) {
		/* distinct signatures: base64url letters in the last four characters */
		static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

		bad[n - 8] = al[i % 64];
		bad[n - 7] = al[(i / 64) % 64];
		if (memcmp(bad + n - 8, good + n - 8, 2) == 0)
			continue; /* that one is the good token */
		assert_int_equal(verify_str(v, bad, FIX_NOW, &id, &d), VERIFY_E_SIGNATURE);
		if (i % 256 == 0) {
			assert_int_equal(verify_str(v, good, FIX_NOW, &id, &d), VERIFY_OK);
			identity_release(id);
		}
	}
	issuers_destroy(v);
	jwks_keyset_release(ks);
	free(bad);
}

struct hit_arg {
	issuers *v;
	const char *tok;
	int ok;
};

static void *hit_thread(void *p)
{
	struct hit_arg *a = p;

	for (int i = 0; i < 2000; i++) {
		const identity *id = NULL;

		if (verify_str(a->v, a->tok, FIX_NOW, &id, NULL) == VERIFY_OK) {
			a->ok++;
			identity_release(id);
		}
	}
	return NULL;
}

static void test_concurrent_hits(void **state)
{
	verifier_config c = base_cfg();
	jwks_keyset *ks = fix_keys();
	issuers *v = make(&c, ks);
	struct hit_arg args[4];
	pthread_t th[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		args[i] = (struct hit_arg){ v, find_token(i % 2 ? "good_ES256" : "good_EdDSA"), 0 };
		assert_int_equal(pthread_create(&th[i], NULL, hit_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].ok, 2000);
	}
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_token_100k),
		cmocka_unit_test(test_empty_token),
		cmocka_unit_test(test_default_alg_list),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_not_ready),
		cmocka_unit_test(test_issuer_picked_before_header),
		cmocka_unit_test(test_unknown_kid_requests_refresh),
		cmocka_unit_test(test_unknown_kid_of_another_issuer),
		cmocka_unit_test(test_foreign_issuer_before_any_key),
		cmocka_unit_test(test_duplicate_kid_tries_each_key),
		cmocka_unit_test(test_cache_hit_and_key_removal),
		cmocka_unit_test(test_cache_expiry),
		cmocka_unit_test(test_allow_reserved),
		cmocka_unit_test(test_prefixes_and_required),
		cmocka_unit_test(test_concurrent_hits),
		cmocka_unit_test(test_identity_shapes),
		cmocka_unit_test(test_reason_strings),
		cmocka_unit_test(test_work_cap),
		cmocka_unit_test(test_negative_cache),
		cmocka_unit_test(test_negative_cache_flood),
	};
	size_t nfixed = sizeof(fixed) / sizeof(fixed[0]), n = FIX_NTOKENS + nfixed;
	struct CMUnitTest *tests = calloc(n, sizeof(*tests));
	int rc;

	for (size_t i = 0; i < FIX_NTOKENS; i++) {
		tests[i].name = FIX_TOKENS[i].name;
		tests[i].test_func = test_fixture;
		tests[i].initial_state = (void *)&FIX_TOKENS[i];
	}
	memcpy(tests + FIX_NTOKENS, fixed, sizeof(fixed));
	rc = _cmocka_run_group_tests("verifier", tests, n, NULL, NULL);
	free(tests);
	return rc;
}
