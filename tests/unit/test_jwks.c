/*
 * test_jwks.c — JWK Set parsing and lookup: one table of single-key documents (each naming whether the key is
 * usable or skipped, and the reason logged), then document-level limits, duplicate kids, lookup by kid and
 * alg, iteration for tokens without kid, and fingerprints. Key material is generated with OpenSSL at start-up.
 *
 * Decisions this file pins down (see jwks.h):
 *   - duplicate kid: every usable key is kept, in document order, whether the keys sharing a kid are of one type
 *     (a rotation that reused a kid) or of several (RFC 7517 §4.5's RSA and EC alternatives). jwks_find() gives
 *     the first that fits the alg and jwks_find_next() the others: go-oidc, which the API server uses, tries
 *     every key with the token's kid, so a token signed by the second one is valid there and must be here.
 *   - key_ops, when present, must be an array listing "verify"; otherwise the key is skipped, like use=enc.
 *   - RSA n and e with leading zero octets are accepted (Go's big.Int does the same); the size counts from the
 *     first non-zero bit.
 *   - a JWK with a member name twice (after Go's case folding) is skipped: cJSON and Go would read different
 *     key material.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <openssl/x509.h>

#include "jose_test.h"
#include "jwks.h"
#include "jwt.h"

static EVP_PKEY *k_rsa, *k_rsa2, *k_rsa1024, *k_p256, *k_p384, *k_p521, *k_ed;
/* base64url strings of the public parts, for templates */
static char *N, *E, *N2, *N1024, *X256, *Y256, *X384, *Y384, *X521, *Y521, *XED;
static char *N_LEAD0, *X256_SHORT, *X256_LONG, *Y256_OFF, *N_HUGE;

static void pub_parts(EVP_PKEY *k, char **a, char **b)
{
	char *m = tj_jwk_members(k), *p;
	const char *ka = EVP_PKEY_is_a(k, "RSA") ? "\"n\":\"" : "\"x\":\"";
	const char *kb = EVP_PKEY_is_a(k, "RSA") ? "\"e\":\"" : "\"y\":\"";

	p = strstr(m, ka) + strlen(ka);
	*a = strndup(p, (size_t)(strchr(p, '"') - p));
	if (b) {
		p = strstr(m, kb) + strlen(kb);
		*b = strndup(p, (size_t)(strchr(p, '"') - p));
	}
	free(m);
}

static char *b64_mod(const char *b64, int lead0, int drop_first, int flip_last)
{
	size_t l = strlen(b64), n;
	uint8_t *raw = malloc(l + 2);
	char *out;

	assert_int_equal(b64url_decode((const uint8_t *)b64, l, raw + 1, l, &n), 0);
	raw[0] = 0;
	if (flip_last)
		raw[n] ^= 1;
	out = lead0 ? tj_b64(raw, n + 1) : drop_first ? tj_b64(raw + 2, n - 1) : tj_b64(raw + 1, n);
	free(raw);
	return out;
}

static int setup(void **state)
{
	uint8_t huge[2100];

	(void)state;
	k_rsa = tj_keygen("RSA");
	k_rsa2 = tj_keygen("RSA");
	k_rsa1024 = tj_keygen("RSA1024");
	k_p256 = tj_keygen("P-256");
	k_p384 = tj_keygen("P-384");
	k_p521 = tj_keygen("P-521");
	k_ed = tj_keygen("Ed25519");
	pub_parts(k_rsa, &N, &E);
	pub_parts(k_rsa2, &N2, NULL);
	pub_parts(k_rsa1024, &N1024, NULL);
	pub_parts(k_p256, &X256, &Y256);
	pub_parts(k_p384, &X384, &Y384);
	pub_parts(k_p521, &X521, &Y521);
	pub_parts(k_ed, &XED, NULL);
	N_LEAD0 = b64_mod(N, 1, 0, 0);
	X256_SHORT = b64_mod(X256, 0, 1, 0);
	X256_LONG = b64_mod(X256, 1, 0, 0);
	Y256_OFF = b64_mod(Y256, 0, 0, 1);
	memset(huge, 0xc5, sizeof(huge)); /* 16800 bits: above JWKS_RSA_MAX_BITS */
	N_HUGE = tj_b64(huge, sizeof(huge));
	return 0;
}

static int teardown(void **state)
{
	EVP_PKEY *ks[] = { k_rsa, k_rsa2, k_rsa1024, k_p256, k_p384, k_p521, k_ed };
	char *ss[] = { N, E, N2, N1024, X256, Y256, X384, Y384, X521, Y521, XED, N_LEAD0, X256_SHORT, X256_LONG,
		       Y256_OFF, N_HUGE };

	(void)state;
	for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++)
		EVP_PKEY_free(ks[i]);
	for (size_t i = 0; i < sizeof(ss) / sizeof(ss[0]); i++)
		free(ss[i]);
	return 0;
}

/* Expands $N $E $N2 $N1024 $NLEAD0 $NHUGE $X256 $Y256 $X384 $Y384 $X521 $Y521 $XED $X256S $X256L $Y256OFF
 * $KID257 $KID256 in a template. */
static char *expand(const char *t)
{
	static const char *names[] = { "$NLEAD0", "$NHUGE", "$N1024", "$N2", "$N", "$E", "$X256S", "$X256L",
				       "$Y256OFF", "$X256", "$Y256", "$X384", "$Y384", "$X521", "$Y521", "$XED",
				       "$KID257", "$KID256" };
	char kid257[258], kid256[257];
	const char *vals[sizeof(names) / sizeof(names[0])];
	size_t cap = strlen(t) + 1, o = 0;
	char *out;

	memset(kid257, 'k', 257);
	kid257[257] = 0;
	memset(kid256, 'k', 256);
	kid256[256] = 0;
	{
		const char *v[] = { N_LEAD0, N_HUGE, N1024, N2, N, E, X256_SHORT, X256_LONG, Y256_OFF, X256, Y256,
				    X384, Y384, X521, Y521, XED, kid257, kid256 };

		memcpy(vals, v, sizeof(v));
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cap += strlen(vals[i]) * 8;
	out = malloc(cap);
	while (*t) {
		size_t i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strncmp(t, names[i], strlen(names[i])) == 0)
				break;
		if (*t == '$' && i < sizeof(names) / sizeof(names[0])) {
			size_t l = strlen(vals[i]);

			memcpy(out + o, vals[i], l);
			o += l;
			t += strlen(names[i]);
		} else {
			out[o++] = *t++;
		}
	}
	out[o] = 0;
	return out;
}

static int parse_str(const char *doc, jwks_keyset **ks, char *err, size_t errlen)
{
	return jwks_parse((const uint8_t *)doc, strlen(doc), ks, err, errlen);
}

#define RSA_NE "\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"$E\""
#define EC256 "\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$X256\",\"y\":\"$Y256\""
#define OKP "\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"$XED\""

/* One key per document: usable (count 1, rc 0) or skipped (JWKS_E_NO_KEYS, err naming why). */
static const struct kcase {
	const char *name;
	const char *jwk;   /* template, see expand() */
	int usable;
	const char *why;   /* substring of err when skipped */
} kcases[] = {
	/* RSA */
	{ "RSA", "{" RSA_NE ",\"kid\":\"a\"}", 1, NULL },
	{ "RSA without kid", "{" RSA_NE "}", 1, NULL },
	{ "RSA use sig", "{" RSA_NE ",\"use\":\"sig\"}", 1, NULL },
	{ "RSA alg RS256", "{" RSA_NE ",\"alg\":\"RS256\"}", 1, NULL },
	{ "RSA alg PS512", "{" RSA_NE ",\"alg\":\"PS512\"}", 1, NULL },
	{ "RSA n with a leading zero octet", "{\"kty\":\"RSA\",\"n\":\"$NLEAD0\",\"e\":\"$E\"}", 1, NULL },
	{ "RSA e with leading zeros", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AAEAAQ\"}", 1, NULL },
	{ "RSA e = 3", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"Aw\"}", 1, NULL },
	{ "RSA e = 1", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AQ\"}", 0, "exponent" },
	{ "RSA e = 2 (even)", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"Ag\"}", 0, "exponent" },
	{ "RSA e = 65536 (even)", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AQAA\"}", 0, "exponent" },
	{ "RSA e = 0", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AA\"}", 0, "exponent" },
	{ "RSA e empty", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"\"}", 0, "exponent" },
	{ "RSA e of 33 bits", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AQAAAAE\"}", 0, "exponent" },
	/* Go's crypto/rsa refuses E > 2^31 - 1 ("public exponent too large"): the API server verifies nothing with
	 * such a key, so neither may the agent. */
	{ "RSA e = 2^31 + 1 (above Go's limit)", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"gAAAAQ\"}", 0, "exponent" },
	{ "RSA e = 2^31 - 1 (Go's largest)", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"f____w\"}", 1, NULL },
	{ "RSA 1024 bits", "{\"kty\":\"RSA\",\"n\":\"$N1024\",\"e\":\"$E\"}", 0, "shorter than 2048" },
	{ "RSA n above the size cap", "{\"kty\":\"RSA\",\"n\":\"$NHUGE\",\"e\":\"$E\"}", 0, "too large" },
	{ "RSA n missing", "{\"kty\":\"RSA\",\"e\":\"$E\"}", 0, "n/e" },
	{ "RSA e missing", "{\"kty\":\"RSA\",\"n\":\"$N\"}", 0, "n/e" },
	{ "RSA n a number", "{\"kty\":\"RSA\",\"n\":12,\"e\":\"$E\"}", 0, "n/e" },
	{ "RSA n padded", "{\"kty\":\"RSA\",\"n\":\"$N=\",\"e\":\"$E\"}", 0, "n/e" },
	{ "RSA e standard alphabet", "{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AQA+\"}", 0, "n/e" },
	{ "RSA alg ES256", "{" RSA_NE ",\"alg\":\"ES256\"}", 0, "does not match" },
	{ "RSA alg EdDSA", "{" RSA_NE ",\"alg\":\"EdDSA\"}", 0, "does not match" },
	{ "RSA alg RSA-OAEP", "{" RSA_NE ",\"alg\":\"RSA-OAEP\"}", 0, "alg not supported" },
	{ "RSA alg HS256", "{" RSA_NE ",\"alg\":\"HS256\"}", 0, "alg not supported" },
	{ "RSA alg none", "{" RSA_NE ",\"alg\":\"none\"}", 0, "alg not supported" },
	{ "RSA alg not a string", "{" RSA_NE ",\"alg\":1}", 0, "alg not supported" },
	{ "RSA use enc", "{" RSA_NE ",\"use\":\"enc\"}", 0, "not for signatures" },
	{ "RSA use SIG", "{" RSA_NE ",\"use\":\"SIG\"}", 0, "not for signatures" },
	{ "RSA use not a string", "{" RSA_NE ",\"use\":[\"sig\"]}", 0, "not for signatures" },
	{ "RSA key_ops verify", "{" RSA_NE ",\"key_ops\":[\"verify\"]}", 1, NULL },
	{ "RSA key_ops sign+verify", "{" RSA_NE ",\"key_ops\":[\"sign\",\"verify\"]}", 1, NULL },
	{ "RSA key_ops encrypt", "{" RSA_NE ",\"key_ops\":[\"encrypt\",\"wrapKey\"]}", 0, "verification" },
	{ "RSA key_ops empty", "{" RSA_NE ",\"key_ops\":[]}", 0, "verification" },
	{ "RSA key_ops a string", "{" RSA_NE ",\"key_ops\":\"verify\"}", 0, "verification" },
	{ "RSA key_ops Verify", "{" RSA_NE ",\"key_ops\":[\"Verify\"]}", 0, "verification" },
	{ "RSA duplicated e", "{" RSA_NE ",\"e\":\"Aw\"}", 0, "duplicated member" },
	{ "RSA duplicated n, other case (Go folds)", "{" RSA_NE ",\"N\":\"$N2\"}", 0, "duplicated member" },
	{ "RSA kid of 256 bytes", "{" RSA_NE ",\"kid\":\"$KID256\"}", 1, NULL },
	{ "RSA kid of 257 bytes", "{" RSA_NE ",\"kid\":\"$KID257\"}", 0, "kid" },
	{ "RSA kid a number", "{" RSA_NE ",\"kid\":7}", 0, "kid" },
	{ "RSA kid null", "{" RSA_NE ",\"kid\":null}", 0, "kid" },
	/* kty */
	{ "kty missing", "{\"n\":\"$N\",\"e\":\"$E\"}", 0, "without kty" },
	{ "kty lower case", "{\"kty\":\"rsa\",\"n\":\"$N\",\"e\":\"$E\"}", 0, "unsupported kty" },
	{ "kty oct", "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}", 0, "unsupported kty" },
	{ "kty a number", "{\"kty\":1}", 0, "without kty" },
	/* EC */
	{ "EC P-256", "{" EC256 ",\"kid\":\"e\"}", 1, NULL },
	{ "EC P-256 alg ES256", "{" EC256 ",\"alg\":\"ES256\"}", 1, NULL },
	{ "EC P-384", "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"$X384\",\"y\":\"$Y384\"}", 1, NULL },
	{ "EC P-521", "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"$X521\",\"y\":\"$Y521\"}", 1, NULL },
	{ "EC P-256 alg ES384", "{" EC256 ",\"alg\":\"ES384\"}", 0, "does not match" },
	{ "EC P-256 alg RS256", "{" EC256 ",\"alg\":\"RS256\"}", 0, "does not match" },
	{ "EC point off the curve", "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$X256\",\"y\":\"$Y256OFF\"}", 0,
	  "EC point" },
	{ "EC point at zero", "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	  "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", 0, "EC point" },
	{ "EC x one octet short", "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$X256S\",\"y\":\"$Y256\"}", 0, "x/y" },
	{ "EC x with a leading zero octet", "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$X256L\",\"y\":\"$Y256\"}", 0,
	  "x/y" },
	{ "EC y missing", "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$X256\"}", 0, "x/y" },
	{ "EC P-256 coordinates as P-384", "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"$X256\",\"y\":\"$Y256\"}", 0,
	  "x/y" },
	{ "EC crv P-192", "{\"kty\":\"EC\",\"crv\":\"P-192\",\"x\":\"$X256\",\"y\":\"$Y256\"}", 0, "curve" },
	{ "EC crv secp256k1", "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"$X256\",\"y\":\"$Y256\"}", 0, "curve" },
	{ "EC crv lower case", "{\"kty\":\"EC\",\"crv\":\"p-256\",\"x\":\"$X256\",\"y\":\"$Y256\"}", 0, "curve" },
	{ "EC crv missing", "{\"kty\":\"EC\",\"x\":\"$X256\",\"y\":\"$Y256\"}", 0, "without crv" },
	{ "EC crv Ed25519", "{\"kty\":\"EC\",\"crv\":\"Ed25519\",\"x\":\"$XED\"}", 0, "curve" },
	/* OKP */
	{ "OKP Ed25519", "{" OKP ",\"kid\":\"d\"}", 1, NULL },
	{ "OKP Ed25519 alg EdDSA", "{" OKP ",\"alg\":\"EdDSA\"}", 1, NULL },
	{ "OKP Ed25519 alg ES256", "{" OKP ",\"alg\":\"ES256\"}", 0, "does not match" },
	{ "OKP X25519", "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"$XED\"}", 0, "OKP curve" },
	{ "OKP Ed448", "{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"$XED\"}", 0, "OKP curve" },
	{ "OKP P-256", "{\"kty\":\"OKP\",\"crv\":\"P-256\",\"x\":\"$X256\",\"y\":\"$Y256\"}", 0, "OKP curve" },
	{ "OKP crv missing", "{\"kty\":\"OKP\",\"x\":\"$XED\"}", 0, "without crv" },
	{ "OKP x of 33 octets", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"$X256L\"}", 0, "valid x" },
	{ "OKP x of 31 octets", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"$X256S\"}", 0, "valid x" },
	/* not an object */
	{ "a number", "1", 0, "without kty" },
	{ "a string", "\"RSA\"", 0, "without kty" },
	{ "null", "null", 0, "without kty" },
	{ "an array", "[{" RSA_NE "}]", 0, "without kty" },
};

static void test_key_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(kcases) / sizeof(kcases[0]); i++) {
		const struct kcase *c = &kcases[i];
		char *jwk = expand(c->jwk), *doc = malloc(strlen(jwk) + 32), err[200];
		jwks_keyset *ks = (jwks_keyset *)0x1;
		int rc;

		sprintf(doc, "{\"keys\":[%s]}", jwk);
		rc = parse_str(doc, &ks, err, sizeof(err));
		if (c->usable) {
			if (rc != 0)
				fail_msg("%s: refused (%d: %s)", c->name, rc, err);
			assert_int_equal(jwks_keyset_count(ks), 1);
			assert_string_equal(err, "");
			jwks_keyset_release(ks);
		} else {
			if (rc != JWKS_E_NO_KEYS)
				fail_msg("%s: got %d, want JWKS_E_NO_KEYS", c->name, rc);
			assert_ptr_equal(ks, (jwks_keyset *)0x1); /* out-param untouched */
			if (!strstr(err, c->why))
				fail_msg("%s: reason \"%s\" lacks \"%s\"", c->name, err, c->why);
			assert_non_null(strstr(err, "1 skipped"));
		}
		free(jwk);
		free(doc);
	}
}

/* what a usable key looks like once parsed */
static void test_key_fields(void **state)
{
	char *doc = expand("{\"keys\":[{" RSA_NE ",\"kid\":\"r\",\"alg\":\"PS256\"},{" EC256 ",\"kid\":\"e\"},"
			   "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"$X521\",\"y\":\"$Y521\"},{" OKP "},"
			   "{\"kty\":\"RSA\",\"n\":\"$NLEAD0\",\"e\":\"AAEAAQ\"}]}");
	jwks_keyset *ks = NULL;
	const jwks_key *k;

	(void)state;
	assert_int_equal(parse_str(doc, &ks, NULL, 0), 0);
	assert_int_equal(jwks_keyset_count(ks), 5);
	k = jwks_keyset_key(ks, 0);
	assert_int_equal(k->kty, JWKS_KTY_RSA);
	assert_int_equal(k->bits, 2048);
	assert_int_equal(k->alg, JWA_PS256);
	assert_string_equal(k->kid, "r");
	assert_int_equal(k->kid_len, 1);
	assert_non_null(k->vctx[JWA_PS256]);
	assert_null(k->vctx[JWA_RS256]); /* its alg is PS256 only */
	k = jwks_keyset_key(ks, 1);
	assert_int_equal(k->kty, JWKS_KTY_EC);
	assert_int_equal(k->crv, JWKS_CRV_P256);
	assert_int_equal(k->ec_order_len, 32);
	assert_int_equal(k->alg, 0);
	k = jwks_keyset_key(ks, 2);
	assert_int_equal(k->crv, JWKS_CRV_P521);
	assert_int_equal(k->bits, 521);
	assert_int_equal(k->ec_order_len, 66);
	assert_int_equal(k->ec_order[0], 0x01);
	k = jwks_keyset_key(ks, 3);
	assert_int_equal(k->kty, JWKS_KTY_OKP);
	assert_null(k->kid);
	assert_int_equal(k->kid_len, 0);
	/* the same RSA key with zero-padded n and e: same bits, same fingerprint */
	k = jwks_keyset_key(ks, 4);
	assert_int_equal(k->bits, 2048);
	assert_true(k->fp == jwks_keyset_key(ks, 0)->fp);
	assert_null(jwks_keyset_key(ks, 5));
	jwks_keyset_release(ks);
	free(doc);
}

static void test_document_level(void **state)
{
	static const struct {
		const char *name, *doc;
		int expect;
	} cases[] = {
		{ "empty set", "{\"keys\":[]}", JWKS_E_NO_KEYS },
		{ "only unusable entries", "{\"keys\":[1,\"x\",null,[],true,{}]}", JWKS_E_NO_KEYS },
		{ "keys an object", "{\"keys\":{}}", JWKS_E_JSON },
		{ "keys null", "{\"keys\":null}", JWKS_E_JSON },
		{ "no keys member", "{}", JWKS_E_JSON },
		{ "Keys (case)", "{\"Keys\":[]}", JWKS_E_JSON },
		{ "keys twice", "{\"keys\":[],\"keys\":[]}", JWKS_E_JSON },
		{ "array document", "[]", JWKS_E_JSON },
		{ "empty document", "", JWKS_E_JSON },
		{ "not JSON", "keys", JWKS_E_JSON },
		{ "trailing garbage", "{\"keys\":[]}x", JWKS_E_JSON },
		{ "NUL escape", "{\"keys\":[],\"x\":\"\\u0000\"}", JWKS_E_JSON },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		jwks_keyset *ks = NULL;
		char err[200];
		int rc = parse_str(cases[i].doc, &ks, err, sizeof(err));

		if (rc != cases[i].expect)
			fail_msg("%s: got %d (%s), want %d", cases[i].name, rc, err, cases[i].expect);
		assert_null(ks);
		assert_true(strlen(err) > 0);
	}
	/* a good key among garbage entries: used, the rest counted as skipped */
	{
		char *doc = expand("{\"keys\":[1,\"x\",null,[],{" OKP "},true]}"), err[200];
		jwks_keyset *ks = NULL;

		assert_int_equal(parse_str(doc, &ks, err, sizeof(err)), 0);
		assert_int_equal(jwks_keyset_count(ks), 1);
		assert_non_null(strstr(err, "5 key(s) skipped"));
		jwks_keyset_release(ks);
		free(doc);
	}
	/* err is optional; a tiny buffer is truncated, not overrun */
	{
		jwks_keyset *ks = NULL;
		char small[8];

		assert_int_equal(parse_str("{\"keys\":[]}", &ks, NULL, 0), JWKS_E_NO_KEYS);
		assert_int_equal(parse_str("{\"keys\":[]}", &ks, small, sizeof(small)), JWKS_E_NO_KEYS);
		assert_int_equal(strlen(small), sizeof(small) - 1);
	}
	for (int e = JWKS_E_MISMATCH; e <= 0; e++)
		assert_true(strlen(jwks_strerror(e)) > 0);
}

/* the byte cap is checked before parsing; a document of exactly the cap is parsed */
static void test_size_cap(void **state)
{
	char *jwk = expand("{\"keys\":[{" OKP "}]}");
	size_t jl = strlen(jwk), n = JWKS_MAX_BYTES;
	char *doc = malloc(n + 2);
	jwks_keyset *ks = NULL;
	char err[200];

	(void)state;
	memcpy(doc, jwk, jl);
	memset(doc + jl, ' ', n + 1 - jl); /* trailing whitespace is valid JSON */
	doc[n + 1] = 0;
	assert_int_equal(jwks_parse((const uint8_t *)doc, n, &ks, err, sizeof(err)), 0);
	jwks_keyset_release(ks);
	ks = NULL;
	assert_int_equal(jwks_parse((const uint8_t *)doc, n + 1, &ks, err, sizeof(err)), JWKS_E_TOO_BIG);
	assert_null(ks);
	assert_non_null(strstr(err, "larger than"));
	free(doc);
	free(jwk);
}

/* more than JWKS_MAX_KEYS usable keys: the first JWKS_MAX_KEYS are kept, the rest noted */
static void test_max_keys(void **state)
{
	size_t nk = JWKS_MAX_KEYS + 44, cap = nk * 128 + 64, o;
	char *doc = malloc(cap), err[200];
	jwks_keyset *ks = NULL;

	(void)state;
	o = (size_t)snprintf(doc, cap, "{\"keys\":[");
	for (size_t i = 0; i < nk; i++)
		o += (size_t)snprintf(doc + o, cap - o, "%s{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k%zu\",\"x\":\"%s\"}",
				      i ? "," : "", i, XED);
	snprintf(doc + o, cap - o, "]}");
	assert_int_equal(parse_str(doc, &ks, err, sizeof(err)), 0);
	assert_int_equal(jwks_keyset_count(ks), JWKS_MAX_KEYS);
	assert_non_null(strstr(err, "44 key(s) skipped"));
	assert_non_null(strstr(err, "limit"));
	assert_string_equal(jwks_keyset_key(ks, JWKS_MAX_KEYS - 1)->kid, "k255");
	jwks_keyset_release(ks);
	free(doc);
}

/* duplicate kids: see the decision at the top of this file */
static void test_duplicate_kids(void **state)
{
	jwks_keyset *ks = NULL, *other;
	const jwks_key *k = NULL;
	char err[200], *doc, *doc2;

	(void)state;
	/* two RSA keys, same kid: both kept, found in document order, and nothing reported as skipped */
	doc = expand("{\"keys\":[{" RSA_NE ",\"kid\":\"a\"},{\"kty\":\"RSA\",\"n\":\"$N2\",\"e\":\"$E\",\"kid\":\"a\"},"
		     "{\"kty\":\"RSA\",\"n\":\"$N2\",\"e\":\"$E\",\"kid\":\"b\"}]}");
	assert_int_equal(parse_str(doc, &ks, err, sizeof(err)), 0);
	assert_int_equal(jwks_keyset_count(ks), 3);
	assert_string_equal(err, "");
	assert_int_equal(jwks_find(ks, "a", 1, JWA_RS256, &k), 0);
	assert_ptr_equal(k, jwks_keyset_key(ks, 0));
	assert_int_equal(jwks_find_next(ks, k, JWA_RS256, &k), 0);
	assert_ptr_equal(k, jwks_keyset_key(ks, 1));
	assert_true(k->fp != jwks_keyset_key(ks, 0)->fp);
	assert_int_equal(jwks_find_next(ks, k, JWA_RS256, &k), JWKS_E_NO_KID); /* "b" is another kid */
	assert_int_equal(jwks_find_next(ks, jwks_keyset_key(ks, 0), JWA_ES256, &k), JWKS_E_NO_KID);
	assert_int_equal(jwks_find_next(ks, NULL, JWA_RS256, &k), JWKS_E_NO_KID);
	assert_int_equal(jwks_find_next(NULL, jwks_keyset_key(ks, 0), JWA_RS256, &k), JWKS_E_NO_KID);
	other = ks;
	doc2 = expand("{\"keys\":[{" RSA_NE ",\"kid\":\"a\"}]}");
	assert_int_equal(parse_str(doc2, &ks, NULL, 0), 0);
	/* a key of another set is not a position in this one */
	assert_int_equal(jwks_find_next(ks, jwks_keyset_key(other, 0), JWA_RS256, &k), JWKS_E_NO_KID);
	jwks_keyset_release(ks);
	jwks_keyset_release(other);
	free(doc2);
	free(doc);

	/* same kid, different types (RFC 7517 §4.5): both kept, told apart by the token's alg */
	doc = expand("{\"keys\":[{" RSA_NE ",\"kid\":\"a\"},{" EC256 ",\"kid\":\"a\"},{" OKP ",\"kid\":\"a\"}]}");
	assert_int_equal(parse_str(doc, &ks, err, sizeof(err)), 0);
	assert_int_equal(jwks_keyset_count(ks), 3);
	assert_string_equal(err, "");
	assert_int_equal(jwks_find(ks, "a", 1, JWA_PS384, &k), 0);
	assert_int_equal(k->kty, JWKS_KTY_RSA);
	assert_int_equal(jwks_find(ks, "a", 1, JWA_ES256, &k), 0);
	assert_int_equal(k->kty, JWKS_KTY_EC);
	assert_int_equal(jwks_find(ks, "a", 1, JWA_EDDSA, &k), 0);
	assert_int_equal(k->kty, JWKS_KTY_OKP);
	assert_int_equal(jwks_find(ks, "a", 1, JWA_ES384, &k), JWKS_E_MISMATCH);
	jwks_keyset_release(ks);
	free(doc);

	/* same kid and type but disjoint algs (RS256-only, RS512-only): both kept */
	doc = expand("{\"keys\":[{" RSA_NE ",\"kid\":\"a\",\"alg\":\"RS512\"},"
		     "{\"kty\":\"RSA\",\"n\":\"$N2\",\"e\":\"$E\",\"kid\":\"a\",\"alg\":\"RS256\"}]}");
	assert_int_equal(parse_str(doc, &ks, NULL, 0), 0);
	assert_int_equal(jwks_keyset_count(ks), 2);
	assert_int_equal(jwks_find(ks, "a", 1, JWA_RS256, &k), 0);
	assert_ptr_equal(k, jwks_keyset_key(ks, 1));
	assert_int_equal(jwks_find(ks, "a", 1, JWA_RS512, &k), 0);
	assert_ptr_equal(k, jwks_keyset_key(ks, 0));
	jwks_keyset_release(ks);
	free(doc);

	/* an alg-restricted key then an unrestricted one with the same kid: RS512 finds both, RS256 the second */
	doc = expand("{\"keys\":[{" RSA_NE ",\"kid\":\"a\",\"alg\":\"RS512\"},"
		     "{\"kty\":\"RSA\",\"n\":\"$N2\",\"e\":\"$E\",\"kid\":\"a\"}]}");
	assert_int_equal(parse_str(doc, &ks, err, sizeof(err)), 0);
	assert_int_equal(jwks_keyset_count(ks), 2);
	assert_int_equal(jwks_find(ks, "a", 1, JWA_RS512, &k), 0);
	assert_ptr_equal(k, jwks_keyset_key(ks, 0));
	assert_int_equal(jwks_find_next(ks, k, JWA_RS512, &k), 0);
	assert_ptr_equal(k, jwks_keyset_key(ks, 1));
	assert_int_equal(jwks_find(ks, "a", 1, JWA_RS256, &k), 0);
	assert_ptr_equal(k, jwks_keyset_key(ks, 1));
	jwks_keyset_release(ks);
	free(doc);

	/* a skipped key does not reserve its kid: an unusable first "a" leaves the second usable */
	doc = expand("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"$N1024\",\"e\":\"$E\",\"kid\":\"a\"},{" RSA_NE ",\"kid\":\"a\"}]}");
	assert_int_equal(parse_str(doc, &ks, NULL, 0), 0);
	assert_int_equal(jwks_keyset_count(ks), 1);
	jwks_keyset_release(ks);
	free(doc);

	/* keys without kid are never duplicates of each other */
	doc = expand("{\"keys\":[{" RSA_NE "},{\"kty\":\"RSA\",\"n\":\"$N2\",\"e\":\"$E\"}]}");
	assert_int_equal(parse_str(doc, &ks, NULL, 0), 0);
	assert_int_equal(jwks_keyset_count(ks), 2);
	jwks_keyset_release(ks);
	free(doc);
}

/* lookup by kid + alg; iteration with jwks_key_fits for tokens without kid; fingerprints */
static void test_lookup(void **state)
{
	char *doc = expand("{\"keys\":[{" RSA_NE ",\"kid\":\"rsa\"},{\"kty\":\"RSA\",\"n\":\"$N2\",\"e\":\"$E\"},"
			   "{" EC256 ",\"kid\":\"ec\"},{" OKP ",\"kid\":\"ed\",\"alg\":\"EdDSA\"},"
			   "{\"kty\":\"RSA\",\"n\":\"$N2\",\"e\":\"$E\",\"kid\":\"ps\",\"alg\":\"PS256\"}]}");
	jwks_keyset *ks = NULL;
	const jwks_key *k = NULL, *sentinel = (const jwks_key *)0x1;
	size_t fits = 0;

	(void)state;
	assert_int_equal(parse_str(doc, &ks, NULL, 0), 0);
	assert_int_equal(jwks_keyset_count(ks), 5);
	assert_int_equal(jwks_find(ks, "rsa", 3, JWA_RS256, &k), 0);
	assert_ptr_equal(k, jwks_keyset_key(ks, 0));
	assert_int_equal(jwks_find(ks, "rsa", 3, JWA_PS512, &k), 0);
	assert_int_equal(jwks_find(ks, "ec", 2, JWA_ES256, &k), 0);
	assert_int_equal(jwks_find(ks, "ed", 2, JWA_EDDSA, &k), 0);
	assert_int_equal(jwks_find(ks, "ps", 2, JWA_PS256, &k), 0);
	k = sentinel;
	/* kid of another type or alg: MISMATCH (no refresh); unknown: NO_KID; out-param untouched */
	assert_int_equal(jwks_find(ks, "rsa", 3, JWA_ES256, &k), JWKS_E_MISMATCH);
	assert_int_equal(jwks_find(ks, "ec", 2, JWA_RS256, &k), JWKS_E_MISMATCH);
	assert_int_equal(jwks_find(ks, "ec", 2, JWA_ES384, &k), JWKS_E_MISMATCH);
	assert_int_equal(jwks_find(ks, "ps", 2, JWA_RS256, &k), JWKS_E_MISMATCH);
	assert_int_equal(jwks_find(ks, "ps", 2, JWA_PS384, &k), JWKS_E_MISMATCH);
	assert_int_equal(jwks_find(ks, "nope", 4, JWA_RS256, &k), JWKS_E_NO_KID);
	/* kids compare by length, not as C strings */
	assert_int_equal(jwks_find(ks, "rs", 2, JWA_RS256, &k), JWKS_E_NO_KID);
	assert_int_equal(jwks_find(ks, "rsa\0", 4, JWA_RS256, &k), JWKS_E_NO_KID);
	assert_int_equal(jwks_find(ks, "RSA", 3, JWA_RS256, &k), JWKS_E_NO_KID);
	assert_int_equal(jwks_find(ks, "", 0, JWA_RS256, &k), JWKS_E_NO_KID); /* keys without kid: not "" */
	assert_int_equal(jwks_find(NULL, "rsa", 3, JWA_RS256, &k), JWKS_E_NO_KID);
	assert_ptr_equal(k, sentinel);
	/* no kid: the keys fitting RS256 are the two unrestricted RSA keys */
	for (size_t i = 0; i < jwks_keyset_count(ks); i++)
		fits += (size_t)jwks_key_fits(jwks_keyset_key(ks, i), JWA_RS256);
	assert_int_equal(fits, 2);
	fits = 0;
	for (size_t i = 0; i < jwks_keyset_count(ks); i++)
		fits += (size_t)jwks_key_fits(jwks_keyset_key(ks, i), JWA_PS256);
	assert_int_equal(fits, 3);
	for (int a = 0; a <= JWA_MAX + 1; a++) /* 0 and out-of-range algs fit nothing */
		if (a == 0 || a > JWA_MAX)
			for (size_t i = 0; i < jwks_keyset_count(ks); i++)
				assert_false(jwks_key_fits(jwks_keyset_key(ks, i), a));
	/* fingerprints: every key's is found, each differs except the shared material (keys 1 and 4) */
	for (size_t i = 0; i < jwks_keyset_count(ks); i++) {
		assert_true(jwks_has_fp(ks, jwks_keyset_key(ks, i)->fp));
		for (size_t j = 0; j < i; j++)
			if (!(i == 4 && j == 1))
				assert_true(jwks_keyset_key(ks, i)->fp != jwks_keyset_key(ks, j)->fp);
	}
	assert_true(jwks_keyset_key(ks, 1)->fp == jwks_keyset_key(ks, 4)->fp);
	assert_false(jwks_has_fp(ks, jwks_keyset_key(ks, 0)->fp ^ 1));
	assert_false(jwks_has_fp(NULL, 0));
	assert_int_equal(jwks_keyset_count(NULL), 0);
	assert_null(jwks_keyset_key(NULL, 0));
	/* the fingerprint is SHA-256 of the SubjectPublicKeyInfo DER, first 8 bytes big-endian */
	{
		unsigned char *der = NULL, md[32];
		int dl = i2d_PUBKEY(k_rsa, &der);
		uint64_t fp = 0;

		assert_true(dl > 0);
		SHA256(der, (size_t)dl, md);
		OPENSSL_free(der);
		for (int i = 0; i < 8; i++)
			fp = fp << 8 | md[i];
		assert_true(jwks_keyset_key(ks, 0)->fp == fp);
	}
	/* references: the set lives until the last release */
	jwks_keyset_ref(ks);
	jwks_keyset_release(ks);
	assert_int_equal(jwks_keyset_count(ks), 5);
	jwks_keyset_release(ks);
	jwks_keyset_release(NULL);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_table),      cmocka_unit_test(test_key_fields),
		cmocka_unit_test(test_document_level), cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_max_keys),       cmocka_unit_test(test_duplicate_kids),
		cmocka_unit_test(test_lookup),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
