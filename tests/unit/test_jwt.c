/*
 * test_jwt.c — the JWS layer alone (jwt_parse, jws_verify, jsonstrict_parse, the jwa alg list), below the verifier.
 *
 * Parse cases are one table, each naming the jwt_err it expects. Signature cases run on keys generated with
 * OpenSSL at start-up and signed through OpenSSL directly (tests/unit/jose_test.h), so they can reach shapes
 * an honest JOSE library will not make: r or s at or above the group order, PSS salts of every length,
 * signatures one byte short or long, a non-canonical Ed25519 s. The python3-jwcrypto fixtures
 * (tests/fixtures/tokens.inc) are run through this layer too, as the independent-implementation check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jose_test.h"
#include "jwks.h"
#include "jws.h"
#include "jwt.h"
#include "verifier.h"

#include "../fixtures/tokens.inc"

/* ---- keys generated once for the whole file ---- */

enum { K_RSA, K_P256, K_P384, K_P521, K_ED, K_ATTACKER, NKEYS };
static const char *const key_kind[NKEYS] = { "RSA", "P-256", "P-384", "P-521", "Ed25519", "RSA" };
static EVP_PKEY *priv[NKEYS];
static jwks_keyset *ks; /* issuer keys: kids rsa, rsa-rs512 (alg RS512, same material), p256, p384, p521, ed */

static int setup(void **state)
{
	char *j[7], doc[20000];

	(void)state;
	for (int i = 0; i < NKEYS; i++)
		priv[i] = tj_keygen(key_kind[i]);
	j[0] = tj_jwk(priv[K_RSA], "rsa", NULL);
	j[1] = tj_jwk(priv[K_RSA], "rsa-rs512", "RS512");
	j[2] = tj_jwk(priv[K_P256], "p256", NULL);
	j[3] = tj_jwk(priv[K_P384], "p384", NULL);
	j[4] = tj_jwk(priv[K_P521], "p521", NULL);
	j[5] = tj_jwk(priv[K_ED], "ed", NULL);
	j[6] = tj_jwk(priv[K_ATTACKER], "attacker", NULL); /* not in the set: only its JSON is used */
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s,%s,%s,%s]}", j[0], j[1], j[2], j[3], j[4], j[5]);
	for (int i = 0; i < 7; i++)
		free(j[i]);
	return jwks_parse((const uint8_t *)doc, strlen(doc), &ks, NULL, 0);
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NKEYS; i++)
		EVP_PKEY_free(priv[i]);
	jwks_keyset_release(ks);
	return 0;
}

static const jwks_key *key_by_kid(const char *kid)
{
	for (size_t i = 0; i < jwks_keyset_count(ks); i++) {
		const jwks_key *k = jwks_keyset_key(ks, i);

		if (k->kid && strcmp(k->kid, kid) == 0)
			return k;
	}
	fail_msg("no key %s", kid);
	return NULL;
}

static int parse_str(const char *tok, jwt_token *t)
{
	return jwt_parse((const uint8_t *)tok, strlen(tok), 0, t);
}

/* jwt_parse, then jws_verify with the issuer key named kid: the first error of the two, or 0 */
static int pv(const char *tok, const char *kid)
{
	jwt_token t;
	int rc = parse_str(tok, &t);

	if (rc)
		return rc;
	rc = jws_verify(&t, key_by_kid(kid));
	jwt_token_free(&t);
	return rc;
}

static const char PAYLOAD[] = "{\"iss\":\"https://issuer.example\",\"sub\":\"alice\",\"aud\":\"kube\",\"exp\":1}";

/* ---- parse table ---- */

#define RAW_H 1 /* h is the literal first part, not JSON to encode */
#define RAW_P 2
#define LIT 4   /* h is the whole literal token */

static const struct pcase {
	const char *name;
	const char *h, *p, *s; /* header JSON, payload JSON, signature part (always literal) */
	int flags;
	int expect;
} pcases[] = {
	{ "minimal RS256", "{\"alg\":\"RS256\"}", "{}", "AAAA", 0, JWT_OK },
	{ "kid and typ", "{\"alg\":\"RS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}", "{}", "AAAA", 0, JWT_OK },
	{ "typ not checked (API server ignores it)", "{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}", "{}", "AAAA", 0, JWT_OK },
	{ "typ of another type ignored", "{\"alg\":\"RS256\",\"typ\":7}", "{}", "AAAA", 0, JWT_OK },
	{ "empty kid is a kid", "{\"alg\":\"RS256\",\"kid\":\"\"}", "{}", "AAAA", 0, JWT_OK },
	{ "jku ignored", "{\"alg\":\"RS256\",\"jku\":\"https://evil.example/k\"}", "{}", "AAAA", 0, JWT_OK },
	{ "x5u ignored", "{\"alg\":\"RS256\",\"x5u\":\"https://evil.example/c\"}", "{}", "AAAA", 0, JWT_OK },
	{ "x5c ignored", "{\"alg\":\"RS256\",\"x5c\":[\"MIIB\"]}", "{}", "AAAA", 0, JWT_OK },
	{ "jwk ignored", "{\"alg\":\"RS256\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AA\"}}", "{}", "AAAA", 0, JWT_OK },
	{ "payload is not parsed before the signature", "{\"alg\":\"RS256\"}", "bm90IGpzb24", "AAAA", RAW_P, JWT_OK },
	{ "empty signature parses (verify refuses)", "{\"alg\":\"RS256\"}", "{}", "", 0, JWT_OK },
	{ "every supported alg: EdDSA", "{\"alg\":\"EdDSA\"}", "{}", "AAAA", 0, JWT_OK },
	{ "every supported alg: PS512", "{\"alg\":\"PS512\"}", "{}", "AAAA", 0, JWT_OK },
	{ "every supported alg: ES384", "{\"alg\":\"ES384\"}", "{}", "AAAA", 0, JWT_OK },
	/* alg */
	{ "alg none", "{\"alg\":\"none\"}", "{}", "", 0, JWT_E_ALG },
	{ "alg None", "{\"alg\":\"None\"}", "{}", "", 0, JWT_E_ALG },
	{ "alg HS256", "{\"alg\":\"HS256\"}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg HS512", "{\"alg\":\"HS512\"}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg lower case", "{\"alg\":\"rs256\"}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg with a space", "{\"alg\":\"RS256 \"}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg ES256K", "{\"alg\":\"ES256K\"}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg Ed25519 (RFC 9864 name, not enabled)", "{\"alg\":\"Ed25519\"}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg RSA-OAEP", "{\"alg\":\"RSA-OAEP\",\"enc\":\"A128GCM\"}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg missing", "{\"kid\":\"rsa\"}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg number", "{\"alg\":256}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg null", "{\"alg\":null}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg array", "{\"alg\":[\"RS256\"]}", "{}", "AAAA", 0, JWT_E_ALG },
	{ "alg with escaped NUL", "{\"alg\":\"RS256\\u0000x\"}", "{}", "AAAA", 0, JWT_E_HEADER },
	/* crit: we implement no extension, so any crit is unknown */
	{ "crit unknown", "{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"exp\":1}", "{}", "AAAA", 0, JWT_E_CRIT },
	{ "crit b64", "{\"alg\":\"RS256\",\"crit\":[\"b64\"],\"b64\":false}", "{}", "AAAA", 0, JWT_E_CRIT },
	{ "crit empty array", "{\"alg\":\"RS256\",\"crit\":[]}", "{}", "AAAA", 0, JWT_E_CRIT },
	{ "crit null", "{\"alg\":\"RS256\",\"crit\":null}", "{}", "AAAA", 0, JWT_E_CRIT },
	{ "crit before an unknown alg", "{\"alg\":\"none\",\"crit\":[\"x\"]}", "{}", "", 0, JWT_E_CRIT },
	/* header shape */
	{ "kid number", "{\"alg\":\"RS256\",\"kid\":1}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "kid null", "{\"alg\":\"RS256\",\"kid\":null}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "kid object", "{\"alg\":\"RS256\",\"kid\":{}}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header array", "[\"RS256\"]", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header string", "\"RS256\"", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header not JSON", "alg=RS256", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header trailing garbage", "{\"alg\":\"RS256\"}x", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header two objects", "{\"alg\":\"RS256\"}{}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header duplicate alg", "{\"alg\":\"RS256\",\"alg\":\"none\"}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header duplicate alg, other case", "{\"alg\":\"RS256\",\"ALG\":\"none\"}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header duplicate kid", "{\"alg\":\"RS256\",\"kid\":\"a\",\"kid\":\"b\"}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header with raw control byte", "{\"alg\":\"RS256\",\"x\":\"a\tb\"}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header invalid UTF-8", "{\"alg\":\"RS256\",\"x\":\"\xc3\x28\"}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header single quotes", "{'alg':'RS256'}", "{}", "AAAA", 0, JWT_E_HEADER },
	{ "header empty object", "{}", "{}", "AAAA", 0, JWT_E_ALG },
	/* compact shape and strict base64url, per part */
	{ "empty token", "", NULL, NULL, LIT, JWT_E_FORMAT },
	{ "one part", "eyJhbGciOiJSUzI1NiJ9", NULL, NULL, LIT, JWT_E_FORMAT },
	{ "two parts", "eyJhbGciOiJSUzI1NiJ9.e30", NULL, NULL, LIT, JWT_E_FORMAT },
	{ "two dots only", "..", NULL, NULL, LIT, JWT_E_FORMAT },
	{ "empty header", ".e30.AAAA", NULL, NULL, LIT, JWT_E_FORMAT },
	{ "empty payload", "eyJhbGciOiJSUzI1NiJ9..AAAA", NULL, NULL, LIT, JWT_E_FORMAT },
	{ "four parts", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA.AAAA", NULL, NULL, LIT, JWT_E_FORMAT },
	{ "JWE five parts", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkExMjhHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn", NULL, NULL, LIT,
	  JWT_E_FORMAT },
	{ "JWE five parts, empty key", "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aXY.Y2lwaGVy.dGFn", NULL, NULL, LIT,
	  JWT_E_FORMAT },
	{ "trailing dot", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA.", NULL, NULL, LIT, JWT_E_FORMAT },
	{ "header padded", "eyJhbGciOiJSUzI1NiJ9=", "{}", "AAAA", RAW_H, JWT_E_FORMAT },
	{ "payload padded", "{\"alg\":\"RS256\"}", "e30=", "AAAA", RAW_P, JWT_E_FORMAT },
	{ "signature padded", "{\"alg\":\"RS256\"}", "{}", "AAA=", 0, JWT_E_FORMAT },
	{ "signature padded 2", "{\"alg\":\"RS256\"}", "{}", "AA==", 0, JWT_E_FORMAT },
	{ "header standard alphabet", "eyJhbGciOiJSUzI1NiJ9+/", "{}", "AAAA", RAW_H, JWT_E_FORMAT },
	{ "signature standard alphabet", "{\"alg\":\"RS256\"}", "{}", "AA+/", 0, JWT_E_FORMAT },
	{ "payload with a newline", "{\"alg\":\"RS256\"}", "e30\nAAAA", "AAAA", RAW_P, JWT_E_FORMAT },
	{ "signature with a space", "{\"alg\":\"RS256\"}", "{}", "AA AA", 0, JWT_E_FORMAT },
	{ "signature with CRLF", "{\"alg\":\"RS256\"}", "{}", "AAAA\r\n", 0, JWT_E_FORMAT },
	{ "header leading space", " eyJhbGciOiJSUzI1NiJ9", "{}", "AAAA", RAW_H, JWT_E_FORMAT },
	{ "signature 4k+1 chars", "{\"alg\":\"RS256\"}", "{}", "AAAAA", 0, JWT_E_FORMAT },
	{ "signature non-canonical tail bits", "{\"alg\":\"RS256\"}", "{}", "AB", 0, JWT_E_FORMAT },
	{ "payload non-canonical tail bits", "{\"alg\":\"RS256\"}", "e31", "AAAA", RAW_P, JWT_E_FORMAT },
	{ "Bearer prefix not stripped here", "Bearer eyJhbGciOiJSUzI1NiJ9", "{}", "AAAA", RAW_H, JWT_E_FORMAT },
};

static char *build(const struct pcase *c)
{
	char *h, *p, *out;
	size_t n;

	if (c->flags & LIT)
		return strdup(c->h);
	h = c->flags & RAW_H ? strdup(c->h) : tj_b64(c->h, strlen(c->h));
	p = c->flags & RAW_P ? strdup(c->p) : tj_b64(c->p, strlen(c->p));
	n = strlen(h) + strlen(p) + strlen(c->s) + 3;
	out = malloc(n);
	snprintf(out, n, "%s.%s.%s", h, p, c->s);
	free(h);
	free(p);
	return out;
}

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
		char *tok = build(&pcases[i]);
		jwt_token t, untouched;
		int rc;

		memset(&t, 0xa5, sizeof(t));
		memcpy(&untouched, &t, sizeof(t));
		rc = parse_str(tok, &t);
		if (rc != pcases[i].expect)
			fail_msg("%s: got %d (%s), want %d (%s)", pcases[i].name, rc, jwt_strerror(rc), pcases[i].expect,
				 jwt_strerror(pcases[i].expect));
		if (rc == 0)
			jwt_token_free(&t);
		else
			assert_memory_equal(&t, &untouched, sizeof(t)); /* out-param written only on success */
		free(tok);
	}
}

/* what a successful parse hands out */
static void test_parse_fields(void **state)
{
	const char *tok = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJhIjoxfQ.AQID";
	jwt_token t;

	(void)state;
	assert_int_equal(parse_str(tok, &t), 0);
	assert_int_equal(t.alg, JWA_ES256);
	assert_int_equal(t.kid_len, 2);
	assert_memory_equal(t.kid, "k1", 2);
	assert_ptr_equal(t.signing_input, tok); /* borrowed, not copied */
	assert_int_equal(t.signing_input_len, strlen(tok) - 5);
	assert_int_equal(t.payload_len, 7);
	assert_memory_equal(t.payload, "{\"a\":1}", 7);
	assert_int_equal(t.sig_len, 3);
	assert_memory_equal(t.sig, "\x01\x02\x03", 3);
	jwt_token_free(&t);
	jwt_token_free(&t); /* idempotent: fields were cleared */
	jwt_token_free(NULL);
}

/* the size cap counts the whole token, and is checked before anything is decoded */
static void test_size_cap(void **state)
{
	size_t n = JWT_DEFAULT_MAX_BYTES + 1;
	char *big = malloc(n + 1), *hdr = tj_b64("{\"alg\":\"RS256\"}", 15);
	size_t hl = strlen(hdr);
	jwt_token t;

	(void)state;
	/* a well-formed token of exactly the cap, then one byte more */
	memcpy(big, hdr, hl);
	big[hl] = '.';
	memset(big + hl + 1, 'A', n - hl - 1);
	big[hl + 1 + 4] = '.';
	big[n] = 0;
	assert_int_equal(jwt_parse((const uint8_t *)big, n - 1, 0, &t), 0);
	jwt_token_free(&t);
	assert_int_equal(jwt_parse((const uint8_t *)big, n, 0, &t), JWT_E_TOO_LARGE);
	assert_int_equal(jwt_parse((const uint8_t *)big, n, n, &t), 0);
	jwt_token_free(&t);
	assert_int_equal(jwt_parse((const uint8_t *)big, 100, 99, &t), JWT_E_TOO_LARGE);
	/* garbage above the cap is refused for its size, not for its shape */
	memset(big, '!', n);
	assert_int_equal(jwt_parse((const uint8_t *)big, n, 0, &t), JWT_E_TOO_LARGE);
	assert_int_equal(jwt_parse((const uint8_t *)big, n - 1, 0, &t), JWT_E_FORMAT);
	free(big);
	free(hdr);
}

/* bytes after len (a NUL-less buffer) are never read: the token sits at the very end of an allocation */
static void test_no_read_past_len(void **state)
{
	const char *src = "eyJhbGciOiJSUzI1NiJ9.e30.AAAA";
	size_t n = strlen(src);
	jwt_token t;

	(void)state;
	for (size_t cut = 0; cut <= n; cut++) {
		uint8_t *b = malloc(cut ? cut : 1);

		memcpy(b, src, cut);
		/* shorter prefixes may parse too (an empty or short signature part is a shape, not a parse error) */
		if (jwt_parse(b, cut, 0, &t) == 0)
			jwt_token_free(&t);
		else
			assert_int_not_equal(cut, n);
		free(b);
	}
}

/* ---- signatures ---- */

static const struct vcase {
	const char *alg;
	int key;
	const char *kid;
} algs[] = {
	{ "RS256", K_RSA, "rsa" }, { "RS384", K_RSA, "rsa" },   { "RS512", K_RSA, "rsa" },
	{ "PS256", K_RSA, "rsa" }, { "PS384", K_RSA, "rsa" },   { "PS512", K_RSA, "rsa" },
	{ "ES256", K_P256, "p256" }, { "ES384", K_P384, "p384" }, { "ES512", K_P521, "p521" },
	{ "EdDSA", K_ED, "ed" },
};

static char *hdr_for(const char *alg, const char *kid, const char *extra)
{
	static char h[8192];

	snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"%s\"%s}", alg, kid, extra ? extra : "");
	return h;
}

/* for every alg: the honest token verifies; header, payload and signature tampering do not */
static void test_sign_verify_tamper(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		const struct vcase *c = &algs[i];
		char *tok = tj_token(priv[c->key], c->alg, hdr_for(c->alg, c->kid, NULL), PAYLOAD, NULL), *bad;
		char *other = tj_token(priv[c->key], c->alg, hdr_for(c->alg, c->kid, NULL), "{\"sub\":\"mallory\"}", NULL);
		unsigned char *sig;
		size_t sl;
		char *p1, *p2;
		int rc;

		if ((rc = pv(tok, c->kid)) != 0)
			fail_msg("%s honest: %d (%s)", c->alg, rc, jwt_strerror(rc));
		/* header tampered: same alg and kid plus a member; the signature is the honest one */
		{
			char *h2 = tj_b64(hdr_for(c->alg, c->kid, ",\"typ\":\"JWT\""), strlen(hdr_for(c->alg, c->kid,
			                                                                            ",\"typ\":\"JWT\"")));
			size_t n;

			p1 = strchr(tok, '.');
			n = strlen(h2) + strlen(p1) + 1;
			bad = malloc(n);
			snprintf(bad, n, "%s%s", h2, p1);
			free(h2);
			if ((rc = pv(bad, c->kid)) != JWT_E_SIGNATURE)
				fail_msg("%s tampered header: %d", c->alg, rc);
			free(bad);
		}
		/* payload swapped for another token's payload (both honestly signed, mixed) */
		{
			size_t n = strlen(tok) + strlen(other) + 1;

			p1 = strchr(tok, '.');
			p2 = strchr(other, '.');
			bad = malloc(n);
			snprintf(bad, n, "%.*s%.*s%s", (int)(p1 - tok), tok, (int)(strrchr(other, '.') - p2), p2,
				 strrchr(tok, '.'));
			if ((rc = pv(bad, c->kid)) != JWT_E_SIGNATURE)
				fail_msg("%s payload swapped: %d", c->alg, rc);
			free(bad);
		}
		/* one bit of the signature, first and last byte */
		sig = tj_sig_of(tok, &sl);
		for (int pos = 0; pos < 2; pos++) {
			size_t at = pos ? sl - 1 : 0;

			sig[at] ^= 0x01;
			bad = tj_with_sig(tok, sig, sl);
			if ((rc = pv(bad, c->kid)) != JWT_E_SIGNATURE)
				fail_msg("%s sig bit %zu: %d", c->alg, at, rc);
			free(bad);
			sig[at] ^= 0x01;
		}
		/* empty, one byte short, one byte long (leading and trailing zero), doubled */
		{
			unsigned char *longer = calloc(1, 2 * sl);

			bad = tj_with_sig(tok, sig, 0);
			assert_int_equal(pv(bad, c->kid), JWT_E_SIGNATURE);
			free(bad);
			bad = tj_with_sig(tok, sig, sl - 1);
			if ((rc = pv(bad, c->kid)) != JWT_E_SIGNATURE)
				fail_msg("%s sig short: %d", c->alg, rc);
			free(bad);
			memcpy(longer + 1, sig, sl);
			bad = tj_with_sig(tok, longer, sl + 1);
			if ((rc = pv(bad, c->kid)) != JWT_E_SIGNATURE)
				fail_msg("%s sig with a leading zero byte: %d", c->alg, rc);
			free(bad);
			memcpy(longer, sig, sl);
			longer[sl] = 0;
			bad = tj_with_sig(tok, longer, sl + 1);
			if ((rc = pv(bad, c->kid)) != JWT_E_SIGNATURE)
				fail_msg("%s sig with a trailing zero byte: %d", c->alg, rc);
			free(bad);
			memcpy(longer + sl, sig, sl);
			bad = tj_with_sig(tok, longer, 2 * sl);
			if ((rc = pv(bad, c->kid)) != JWT_E_SIGNATURE)
				fail_msg("%s sig doubled: %d", c->alg, rc);
			free(bad);
			free(longer);
		}
		free(sig);
		free(tok);
		free(other);
	}
}

/* a key is used only for the algs of its type (and its JWK alg): JWT_E_KEY, never a verification attempt */
static void test_key_type_mismatch(void **state)
{
	static const struct {
		const char *alg;
		int key;
		const char *verify_kid;
		int expect;
	} cases[] = {
		{ "RS256", K_RSA, "p256", JWT_E_KEY },      { "ES256", K_P256, "rsa", JWT_E_KEY },
		{ "ES256", K_P256, "p384", JWT_E_KEY },     { "ES384", K_P384, "p256", JWT_E_KEY },
		{ "ES512", K_P521, "p384", JWT_E_KEY },     { "EdDSA", K_ED, "rsa", JWT_E_KEY },
		{ "EdDSA", K_ED, "p256", JWT_E_KEY },       { "RS256", K_RSA, "ed", JWT_E_KEY },
		{ "RS256", K_RSA, "rsa-rs512", JWT_E_KEY }, { "PS512", K_RSA, "rsa-rs512", JWT_E_KEY },
		{ "RS512", K_RSA, "rsa-rs512", JWT_OK },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *tok = tj_token(priv[cases[i].key], cases[i].alg, hdr_for(cases[i].alg, "x", NULL), PAYLOAD, NULL);
		int rc = pv(tok, cases[i].verify_kid);

		if (rc != cases[i].expect)
			fail_msg("%s on %s: got %d, want %d", cases[i].alg, cases[i].verify_kid, rc, cases[i].expect);
		free(tok);
	}
}

/* an alg in the header other than the one used to sign never verifies, even with the same key */
static void test_alg_confusion(void **state)
{
	static const struct {
		const char *sign_alg, *hdr_alg;
	} cases[] = {
		{ "RS256", "PS256" }, { "PS256", "RS256" }, { "RS256", "RS384" }, { "PS384", "PS256" },
		{ "PS512", "PS384" }, { "RS512", "RS256" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *good = tj_token(priv[K_RSA], cases[i].sign_alg, hdr_for(cases[i].sign_alg, "rsa", NULL), PAYLOAD,
				      NULL);
		char *h = hdr_for(cases[i].hdr_alg, "rsa", NULL);
		char *si = tj_b64(h, strlen(h)), *bad;
		size_t n = strlen(good) + strlen(si) + 1;

		bad = malloc(n);
		snprintf(bad, n, "%s%s", si, strchr(good, '.'));
		/* the signature was made over another header, so also sign the new header with the old alg */
		free(good);
		good = tj_token(priv[K_RSA], cases[i].sign_alg, h, PAYLOAD, NULL); /* header says hdr_alg */
		if (pv(good, "rsa") != JWT_E_SIGNATURE)
			fail_msg("%s signature accepted as %s", cases[i].sign_alg, cases[i].hdr_alg);
		assert_int_equal(pv(bad, "rsa"), JWT_E_SIGNATURE);
		free(bad);
		free(si);
		free(good);
	}
}

/* ---- ECDSA r||s ---- */

static const jwks_key *ec_key_for(const char *alg)
{
	return key_by_kid(strcmp(alg, "ES256") == 0 ? "p256" : strcmp(alg, "ES384") == 0 ? "p384" : "p521");
}

/* r or s zero, equal to the group order n, above n: refused before OpenSSL sees them. n - s (the other valid
 * s for the same r, ECDSA's malleability) is accepted, as Go's crypto/ecdsa does. */
static void test_ecdsa_ranges(void **state)
{
	static const char *const es[] = { "ES256", "ES384", "ES512" };
	static const int ek[] = { K_P256, K_P384, K_P521 };

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		const jwks_key *k = ec_key_for(es[i]);
		size_t half = k->ec_order_len;
		char *tok = tj_token(priv[ek[i]], es[i], hdr_for(es[i], "x", NULL), PAYLOAD, NULL), *bad;
		unsigned char *sig, *mod;
		size_t sl;
		BIGNUM *n = BN_bin2bn(k->ec_order, (int)half, NULL), *v = BN_new();
		jwt_token t;
		struct {
			const char *what;
			int part; /* 0 = r, 1 = s */
			int how;  /* 0 zero, 1 = n, 2 = n + 1 (fits), 3 all ones, 4 = n - s */
			int expect;
		} cases[] = {
			{ "r = 0", 0, 0, JWT_E_SIGNATURE }, { "s = 0", 1, 0, JWT_E_SIGNATURE },
			{ "r = n", 0, 1, JWT_E_SIGNATURE }, { "s = n", 1, 1, JWT_E_SIGNATURE },
			{ "r = n+1", 0, 2, JWT_E_SIGNATURE }, { "s = n+1", 1, 2, JWT_E_SIGNATURE },
			{ "r = 2^k-1", 0, 3, JWT_E_SIGNATURE }, { "s = 2^k-1", 1, 3, JWT_E_SIGNATURE },
			{ "s = n - s", 1, 4, JWT_OK },
		};

		assert_int_equal(pv(tok, ec_key_for(es[i])->kid), 0);
		sig = tj_sig_of(tok, &sl);
		assert_int_equal(sl, 2 * half);
		mod = malloc(sl);
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
			unsigned char *part = mod + cases[c].part * half;

			memcpy(mod, sig, sl);
			switch (cases[c].how) {
			case 0: memset(part, 0, half); break;
			case 1: memcpy(part, k->ec_order, half); break;
			case 2: BN_copy(v, n); BN_add_word(v, 1); BN_bn2binpad(v, part, (int)half); break;
			case 3: memset(part, 0xff, half); break;
			case 4: BN_bin2bn(part, (int)half, v); BN_sub(v, n, v); BN_bn2binpad(v, part, (int)half); break;
			}
			bad = tj_with_sig(tok, mod, sl);
			assert_int_equal(parse_str(bad, &t), 0);
			if (jws_verify(&t, k) != cases[c].expect)
				fail_msg("%s %s: want %d", es[i], cases[c].what, cases[c].expect);
			jwt_token_free(&t);
			free(bad);
		}
		/* r = s = 0, the "psychic signature" */
		memset(mod, 0, sl);
		bad = tj_with_sig(tok, mod, sl);
		assert_int_equal(pv(bad, ec_key_for(es[i])->kid), JWT_E_SIGNATURE);
		free(bad);
		/* OpenSSL's DER form instead of JOSE r||s */
		{
			tj_opts o = { .raw_der = 1 };

			bad = tj_token(priv[ek[i]], es[i], hdr_for(es[i], "x", NULL), PAYLOAD, &o);
			assert_int_equal(pv(bad, ec_key_for(es[i])->kid), JWT_E_SIGNATURE);
			free(bad);
		}
		BN_free(n);
		BN_free(v);
		free(mod);
		free(sig);
		free(tok);
	}
}

/* an ES256 signature of the right size for another curve, and P-521's 66-byte halves with r||s swapped */
static void test_ecdsa_lengths(void **state)
{
	char *tok = tj_token(priv[K_P384], "ES384", hdr_for("ES384", "p384", NULL), PAYLOAD, NULL), *bad;
	unsigned char *sig;
	size_t sl;

	(void)state;
	sig = tj_sig_of(tok, &sl);
	assert_int_equal(sl, 96);
	bad = tj_with_sig(tok, sig, 64); /* ES256-sized */
	assert_int_equal(pv(bad, "p384"), JWT_E_SIGNATURE);
	free(bad);
	bad = tj_with_sig(tok, sig, 95);
	assert_int_equal(pv(bad, "p384"), JWT_E_SIGNATURE);
	free(bad);
	{
		unsigned char sw[96];

		memcpy(sw, sig + 48, 48);
		memcpy(sw + 48, sig, 48);
		bad = tj_with_sig(tok, sw, 96);
		assert_int_equal(pv(bad, "p384"), JWT_E_SIGNATURE);
		free(bad);
	}
	free(sig);
	free(tok);
}

/* ---- EdDSA ---- */

/* RFC 8032 §5.1.7: S must be below the group order L; S + L is the same point equation but must be refused
 * (Go's crypto/ed25519 refuses it too) */
static void test_eddsa_noncanonical_s(void **state)
{
	static const unsigned char L[32] = { /* little-endian 2^252 + 27742317777372353535851937790883648493 */
		0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
	};
	char *tok = tj_token(priv[K_ED], "EdDSA", hdr_for("EdDSA", "ed", NULL), PAYLOAD, NULL), *bad;
	unsigned char *sig;
	size_t sl;
	unsigned carry = 0;

	(void)state;
	assert_int_equal(pv(tok, "ed"), 0);
	sig = tj_sig_of(tok, &sl);
	assert_int_equal(sl, 64);
	for (int i = 0; i < 32; i++) {
		unsigned v = sig[32 + i] + L[i] + carry;

		sig[32 + i] = (unsigned char)v;
		carry = v >> 8;
	}
	bad = tj_with_sig(tok, sig, sl);
	assert_int_equal(pv(bad, "ed"), JWT_E_SIGNATURE);
	free(bad);
	memset(sig, 0, 64);
	bad = tj_with_sig(tok, sig, 64);
	assert_int_equal(pv(bad, "ed"), JWT_E_SIGNATURE);
	free(bad);
	free(sig);
	free(tok);
}

/* ---- RSA: PSS parameters and the exact signature length ---- */

/* go-jose verifies PSS with PSSSaltLengthAuto, so any salt length verifies (RFC 7518 issuers use the hash
 * length); MGF1 must use the signature's digest. */
static void test_pss_salt_and_mgf1(void **state)
{
	static const struct {
		const char *alg;
		int salt;
		const char *mgf1;
		int expect;
	} cases[] = {
		{ "PS256", 0, NULL, JWT_OK },              /* salt = hash length */
		{ "PS256", TJ_SALT_ZERO, NULL, JWT_OK },
		{ "PS256", 1, NULL, JWT_OK },
		{ "PS256", 64, NULL, JWT_OK },
		{ "PS256", RSA_PSS_SALTLEN_MAX, NULL, JWT_OK },
		{ "PS384", TJ_SALT_ZERO, NULL, JWT_OK },
		{ "PS512", RSA_PSS_SALTLEN_MAX, NULL, JWT_OK },
		{ "PS256", 0, "SHA1", JWT_E_SIGNATURE },
		{ "PS256", 0, "SHA512", JWT_E_SIGNATURE },
		{ "PS512", 0, "SHA256", JWT_E_SIGNATURE },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tj_opts o = { .pss_saltlen = cases[i].salt, .pss_mgf1 = cases[i].mgf1 };
		char *tok = tj_token(priv[K_RSA], cases[i].alg, hdr_for(cases[i].alg, "rsa", NULL), PAYLOAD, &o);
		int rc = pv(tok, "rsa");

		if (rc != cases[i].expect)
			fail_msg("%s salt %d mgf1 %s: got %d, want %d", cases[i].alg, cases[i].salt,
				 cases[i].mgf1 ? cases[i].mgf1 : "-", rc, cases[i].expect);
		free(tok);
	}
}

/* RFC 7518 §3.3/§3.5 and RFC 8017 §8.1.2/§8.2.2: an RSA signature is exactly k = modulus-size bytes. A signature
 * whose integer has a leading zero byte, sent without it (k - 1 bytes), is the same integer; Go's crypto/rsa
 * refuses it for both PKCS#1 v1.5 and PSS, and so must we. Tokens are signed until one such signature occurs
 * (probability 1/256 each; bounded). */
static void test_rsa_signature_exact_length(void **state)
{
	static const char *const ra[] = { "RS256", "PS256" };

	(void)state;
	for (size_t a = 0; a < 2; a++) {
		int found = 0;

		for (int i = 0; i < 4096 && !found; i++) {
			char pay[64], *tok;
			unsigned char *sig;
			size_t sl;

			snprintf(pay, sizeof(pay), "{\"n\":%d}", i);
			tok = tj_token(priv[K_RSA], ra[a], hdr_for(ra[a], "rsa", NULL), pay, NULL);
			sig = tj_sig_of(tok, &sl);
			assert_int_equal(sl, 256);
			if (sig[0] == 0) {
				char *bad = tj_with_sig(tok, sig + 1, sl - 1);
				int rc = pv(bad, "rsa");

				assert_int_equal(pv(tok, "rsa"), 0);
				if (rc != JWT_E_SIGNATURE)
					fail_msg("%s: a %zu-byte signature (leading zero stripped) gave %d", ra[a], sl - 1, rc);
				free(bad);
				found = 1;
			}
			free(sig);
			free(tok);
		}
		assert_true(found);
	}
}

/* ---- embedded keys ---- */

/* jwk/jku/x5c/x5u in the header never supply a key: the attacker's own key, embedded, does not verify */
static void test_embedded_keys_ignored(void **state)
{
	char *att = tj_jwk(priv[K_ATTACKER], "attacker", NULL);
	static const char *const before[] = {
		"", ",\"jku\":\"https://evil.example/jwks\"",
		",\"x5u\":\"https://evil.example/c.pem\",\"x5c\":[\"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\"]",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
		char extra[4400];
		const char *kids[] = { "rsa", "attacker" };

		snprintf(extra, sizeof(extra), "%s,\"jwk\":%s", before[i], att);
		for (int j = 0; j < 2; j++) {
			char *tok = tj_token(priv[K_ATTACKER], "RS256", hdr_for("RS256", kids[j], extra), PAYLOAD, NULL);
			jwt_token t;

			assert_int_equal(parse_str(tok, &t), 0);
			/* lookup is by kid in the issuer's set only: "attacker" is unknown there */
			{
				const jwks_key *k = NULL;

				assert_int_equal(jwks_find(ks, t.kid, t.kid_len, t.alg, &k),
						 j ? JWKS_E_NO_KID : 0);
			}
			/* and no issuer key accepts the attacker's signature */
			for (size_t n = 0; n < jwks_keyset_count(ks); n++) {
				const jwks_key *k = jwks_keyset_key(ks, n);

				assert_int_not_equal(jws_verify(&t, k), 0);
			}
			jwt_token_free(&t);
			free(tok);
		}
	}
	free(att);
}

/* ---- the jwcrypto fixtures at this layer ---- */

static void test_fixtures_parse(void **state)
{
	jwks_keyset *fks = NULL;

	(void)state;
	assert_int_equal(jwks_parse((const uint8_t *)FIX_JWKS, strlen(FIX_JWKS), &fks, NULL, 0), 0);
	for (size_t i = 0; i < FIX_NTOKENS; i++) {
		const struct fix_token *f = &FIX_TOKENS[i];
		jwt_token t;
		int rc = parse_str(f->token, &t);

		if (f->expect == VERIFY_OK) {
			const jwks_key *k = NULL;

			if (rc != 0)
				fail_msg("%s: parse %d", f->name, rc);
			if (t.kid) {
				assert_int_equal(jwks_find(fks, t.kid, t.kid_len, t.alg, &k), 0);
			} else {
				for (size_t n = 0; n < jwks_keyset_count(fks) && !k; n++)
					if (jwks_key_fits(jwks_keyset_key(fks, n), t.alg) &&
					    jws_verify(&t, jwks_keyset_key(fks, n)) == 0)
						k = jwks_keyset_key(fks, n);
				assert_non_null(k);
			}
			if (jws_verify(&t, k) != 0)
				fail_msg("%s: jwcrypto token does not verify", f->name);
			jwt_token_free(&t);
		} else if (f->expect == VERIFY_E_MALFORMED && strncmp(f->name, "duplicate_", 10) != 0 &&
			   strcmp(f->name, "nul_escape_in_iss") != 0 && strncmp(f->name, "payload_", 8) != 0) {
			/* shape errors are found by the parser alone; payload errors only after the signature */
			if (rc == 0)
				fail_msg("%s: parsed", f->name);
		} else if (rc == 0) {
			jwt_token_free(&t);
		}
	}
	jwks_keyset_release(fks);
}

/* ---- strict JSON and the alg list ---- */

static void test_json_parse(void **state)
{
	static const struct {
		const char *j;
		int expect;
	} cases[] = {
		{ "{}", 0 }, { " {\"a\":[1,2.5e3,-0,true,null]} \n", 0 }, { "{\"a\":\"\\u00e9\\n\"}", 0 },
		{ "", JSONSTRICT_E_SYNTAX }, { "[]", JSONSTRICT_E_SYNTAX }, { "1", JSONSTRICT_E_SYNTAX }, { "{", JSONSTRICT_E_SYNTAX },
		{ "{}}", JSONSTRICT_E_SYNTAX }, { "{\"a\":01}", JSONSTRICT_E_SYNTAX }, { "{\"a\":1.}", JSONSTRICT_E_SYNTAX },
		{ "{\"a\":+1}", JSONSTRICT_E_SYNTAX }, { "{\"a\":NaN}", JSONSTRICT_E_SYNTAX }, { "{\"a\":'x'}", JSONSTRICT_E_SYNTAX },
		{ "{\"a\":\"\\x41\"}", JSONSTRICT_E_SYNTAX }, { "{\"a\":\"\\u0000\"}", JSONSTRICT_E_SYNTAX },
		{ "{\"a\":\"\xed\xa0\x80\"}", JSONSTRICT_E_SYNTAX }, /* UTF-8 encoded surrogate */
		{ "{\"a\":\"\xc0\xaf\"}", JSONSTRICT_E_SYNTAX },     /* overlong */
		{ "{\"a\":1,\"a\":2}", JSONSTRICT_E_SYNTAX }, { "{\"sub\":1,\"SUB\":2}", JSONSTRICT_E_SYNTAX },
		{ "{\"kid\":1,\"\xe2\x84\xaaid\":2}", JSONSTRICT_E_SYNTAX }, /* Kelvin sign folds onto k in Go */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *j = NULL;
		int rc = jsonstrict_parse((const uint8_t *)cases[i].j, strlen(cases[i].j), &j);

		if (rc != cases[i].expect)
			fail_msg("case %zu %s: got %d", i, cases[i].j, rc);
		cJSON_Delete(j);
	}
	/* the duplicate check keeps up to 32 names on the stack and allocates past that: both sides of the line,
	 * with and without a duplicate (placed last, so that every name is compared) */
	for (size_t n = 31; n <= 34; n++) {
		for (int dup = 0; dup < 2; dup++) {
			char buf[1024];
			size_t o = 0;
			cJSON *j = NULL;
			int rc;

			buf[o++] = '{';
			for (size_t m = 0; m < n; m++)
				o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s\"k%zu\":%zu", m ? "," : "",
						      dup && m == n - 1 ? (size_t)0 : m, m);
			buf[o++] = '}';
			rc = jsonstrict_parse((const uint8_t *)buf, o, &j);
			if (rc != (dup ? JSONSTRICT_E_SYNTAX : 0))
				fail_msg("%zu members, duplicate %d: got %d", n, dup, rc);
			cJSON_Delete(j);
		}
	}
	{
		cJSON *j = NULL;

		assert_int_equal(jsonstrict_parse((const uint8_t *)"{\"a\":1}\0", 8, &j), JSONSTRICT_E_SYNTAX); /* NUL after */
		assert_int_equal(jsonstrict_parse((const uint8_t *)"{\"a\":\"\0\"}", 8, &j), JSONSTRICT_E_SYNTAX);
		assert_null(j);
	}
}

static void test_alg_list(void **state)
{
	unsigned m = 12345;

	(void)state;
	assert_int_equal(jwa_list_parse(NULL, &m), 0);
	assert_int_equal(m, JWA_BIT(JWA_RS256));
	assert_int_equal(jwa_list_parse(" ES256 , EdDSA,PS512 ", &m), 0);
	assert_int_equal(m, JWA_BIT(JWA_ES256) | JWA_BIT(JWA_EDDSA) | JWA_BIT(JWA_PS512));
	m = 7;
	assert_int_equal(jwa_list_parse("RS256,", &m), JWA_E_UNKNOWN);
	assert_int_equal(jwa_list_parse("RS256,HS256", &m), JWA_E_UNKNOWN);
	assert_int_equal(jwa_list_parse("none", &m), JWA_E_UNKNOWN);
	assert_int_equal(m, 7);
	for (int a = 1; a <= JWA_MAX; a++) {
		const char *n = jwa_name(a);

		assert_int_equal(jwa_parse(n, strlen(n)), a);
	}
	assert_string_equal(jwa_name(0), "?");
	for (int e = JWT_E_NOMEM; e <= 0; e++)
		assert_true(strlen(jwt_strerror(e)) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_no_read_past_len),
		cmocka_unit_test(test_sign_verify_tamper),
		cmocka_unit_test(test_key_type_mismatch),
		cmocka_unit_test(test_alg_confusion),
		cmocka_unit_test(test_ecdsa_ranges),
		cmocka_unit_test(test_ecdsa_lengths),
		cmocka_unit_test(test_eddsa_noncanonical_s),
		cmocka_unit_test(test_pss_salt_and_mgf1),
		cmocka_unit_test(test_rsa_signature_exact_length),
		cmocka_unit_test(test_embedded_keys_ignored),
		cmocka_unit_test(test_fixtures_parse),
		cmocka_unit_test(test_json_parse),
		cmocka_unit_test(test_alg_list),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
