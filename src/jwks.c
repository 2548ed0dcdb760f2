/*
 * jwks.c — JWK Set parsing into ready-to-use OpenSSL public keys (RFC 7517, 7518 §6, 8037), and lookup.
 *
 * Every key is turned into an EVP_PKEY once, here, so that a verification never decodes key material. A key we
 * cannot use (unknown kty or crv, use other than "sig", an alg we do not implement, RSA below 2048 bits, an EC
 * point off the curve…) is skipped with a note; only a set left with no usable key is an error. One of the
 * crypto files (with jws.c, ecverify.c, edverify.c and rsaverify.c): key import and each key's verify contexts live here; the document
 * is strict JSON (jsonstrict.h) and algorithm names come from jwa.h, so nothing here reaches up to jwt or jws.
 */
#include "jwks.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "b64url.h"
#include "ecverify.h"
#include "edverify.h"
#include "jsonstrict.h"
#include "jwa.h"
#include "rsaverify.h"

struct jwks_keyset {
	atomic_uint refs;
	uint64_t serial;
	size_t n;
	jwks_key keys[];
};

/* jwks_keyset_serial(): starts at 1 so that 0 can mean "no key set" to callers */
static atomic_uint_fast64_t next_serial = 1;

const char *jwks_strerror(int err)
{
	switch (err) {
	case JWKS_OK: return "ok";
	case JWKS_E_TOO_BIG: return "key set too large";
	case JWKS_E_JSON: return "key set is not a JSON object with a keys array";
	case JWKS_E_NO_KEYS: return "no usable key in key set";
	case JWKS_E_NOMEM: return "out of memory";
	case JWKS_E_NO_KID: return "unknown key id";
	case JWKS_E_MISMATCH: return "key id names a key of another type";
	}
	return "unknown jwks error";
}

/* Decodes a base64url member into a fresh buffer; NULL when absent, not a string or not strict base64url. */
static uint8_t *member_b64(const cJSON *o, const char *name, size_t *len)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
	size_t n, cap;
	uint8_t *b;

	if (!cJSON_IsString(m))
		return NULL;
	n = strlen(m->valuestring);
	cap = b64url_decoded_max(n);
	b = malloc(cap ? cap : 1);
	if (!b)
		return NULL;
	if (b64url_decode((const uint8_t *)m->valuestring, n, b, cap, len)) {
		free(b);
		return NULL;
	}
	return b;
}

/* Work units of one verification with an RSA key (see jwks.h): modular multiplications scale with the square of
 * the modulus, and e costs (bits - 1) squarings plus (set bits - 1) multiplications, 17 for 65537. Rounded up,
 * at least 1 (hashing and padding are never free). e has at most 32 bits and the modulus 16,384: no overflow. */
static unsigned rsa_work(unsigned bits, const BIGNUM *e)
{
	uint64_t ebits = (uint64_t)BN_num_bits(e), ones = 0, num, den = (uint64_t)2048 * 2048 * 17;

	for (int i = 0; i < (int)ebits; i++)
		ones += BN_is_bit_set(e, i) ? 1 : 0;
	num = (uint64_t)bits * bits * (ebits - 1 + ones - 1);
	return num <= den ? 1 : (unsigned)((num + den - 1) / den);
}

static const char *build_rsa(const cJSON *o, jwks_key *k)
{
	size_t nlen = 0, elen = 0, i;
	uint8_t *n = member_b64(o, "n", &nlen), *e = member_b64(o, "e", &elen);
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	const char *why = NULL;

	if (!n || !e) {
		why = "RSA key without valid n/e";
		goto out;
	}
	for (i = 0; i < nlen && n[i] == 0; i++)
		;
	if ((nlen - i) * 8 > JWKS_RSA_MAX_BITS) {
		why = "RSA modulus too large";
		goto out;
	}
	bn = BN_bin2bn(n, (int)nlen, NULL);
	be = BN_bin2bn(e, (int)elen, NULL);
	if (!bn || !be) {
		why = "out of memory";
		goto out;
	}
	k->bits = (unsigned)BN_num_bits(bn);
	if (k->bits < JWKS_RSA_MIN_BITS) {
		why = "RSA key shorter than 2048 bits";
		goto out;
	}
	/* e: odd, > 1, at most 2^31 - 1: Go's crypto/rsa refuses a larger E ("public exponent too large"), so the
	 * API server verifies nothing with such a key and neither may the agent */
	if (BN_num_bits(be) > 31 || !BN_is_odd(be) || BN_is_one(be)) {
		why = "RSA exponent unusable";
		goto out;
	}
	k->work = rsa_work(k->bits, be);
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) || !(params = OSSL_PARAM_BLD_to_param(bld))) {
		why = "out of memory";
		goto out;
	}
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		why = "RSA key rejected by OpenSSL";
		goto out;
	}
	k->kty = JWKS_KTY_RSA;
	k->pkey = pk;
	pk = NULL;
out:
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return why;
}

static const struct {
	const char *jwk_name, *ossl_name;
	int crv, nid;
	unsigned bits, work;
} curves[] = {
	{ "P-256", "P-256", JWKS_CRV_P256, NID_X9_62_prime256v1, 256, JWKS_WORK_P256 },
	{ "P-384", "P-384", JWKS_CRV_P384, NID_secp384r1, 384, JWKS_WORK_P384 },
	{ "P-521", "P-521", JWKS_CRV_P521, NID_secp521r1, 521, JWKS_WORK_P521 },
};

static const char *build_ec(const cJSON *o, const char *crv, jwks_key *k)
{
	size_t xlen = 0, ylen = 0, flen, ci;
	uint8_t *x = NULL, *y = NULL, pub[1 + 2 * 66];
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	EVP_PKEY *pk = NULL;
	EC_GROUP *grp = NULL;
	const char *why = NULL;

	for (ci = 0; ci < sizeof(curves) / sizeof(curves[0]); ci++)
		if (strcmp(curves[ci].jwk_name, crv) == 0)
			break;
	if (ci == sizeof(curves) / sizeof(curves[0]))
		return "unsupported EC curve";
	flen = (curves[ci].bits + 7) / 8;
	x = member_b64(o, "x", &xlen);
	y = member_b64(o, "y", &ylen);
	/* RFC 7518 §6.2.1.2: x and y are exactly the field size, so a short or padded coordinate is refused */
	if (!x || !y || xlen != flen || ylen != flen) {
		why = "EC key without valid x/y";
		goto out;
	}
	pub[0] = 0x04;
	memcpy(pub + 1, x, flen);
	memcpy(pub + 1 + flen, y, flen);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)curves[ci].ossl_name, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * flen);
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		why = "EC point not on the curve";
		goto out;
	}
	chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	if (!chk || EVP_PKEY_public_check(chk) != 1) {
		why = "EC point invalid";
		goto out;
	}
	grp = EC_GROUP_new_by_curve_name(curves[ci].nid);
	if (!grp || BN_bn2binpad(EC_GROUP_get0_order(grp), k->ec_order, (int)flen) != (int)flen) {
		why = "out of memory";
		goto out;
	}
	k->ec_order_len = flen;
	k->kty = JWKS_KTY_EC;
	k->crv = curves[ci].crv;
	k->bits = curves[ci].bits;
	k->work = curves[ci].work;
	k->pkey = pk;
	pk = NULL;
out:
	EC_GROUP_free(grp);
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	free(x);
	free(y);
	return why;
}

static const char *build_okp(const cJSON *o, const char *crv, jwks_key *k)
{
	size_t xlen = 0;
	uint8_t *x;
	EVP_PKEY *pk;

	if (strcmp(crv, "Ed25519") != 0)
		return "unsupported OKP curve";
	x = member_b64(o, "x", &xlen);
	if (!x || xlen != 32) {
		free(x);
		return "Ed25519 key without valid x";
	}
	pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen);
	free(x);
	if (!pk)
		return "Ed25519 key rejected by OpenSSL";
	k->kty = JWKS_KTY_OKP;
	k->crv = JWKS_CRV_ED25519;
	k->bits = 256;
	k->work = JWKS_WORK_ED25519;
	k->pkey = pk;
	return NULL;
}

static const char *fingerprint(jwks_key *k)
{
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	int n = i2d_PUBKEY(k->pkey, &der);

	if (n <= 0)
		return "cannot encode key";
	if (EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1) {
		OPENSSL_free(der);
		return "cannot hash key";
	}
	OPENSSL_free(der);
	k->fp = 0;
	for (int i = 0; i < 8; i++)
		k->fp = k->fp << 8 | md[i];
	return NULL;
}

/* A verify context for key k and alg, initialised once (padding, salt length, digest), that jws_verify()
 * duplicates per verification; NULL on failure. RSA and EC only: EdDSA is one-shot. */
static EVP_PKEY_CTX *verify_ctx_new(const jwks_key *k, int alg)
{
	const EVP_MD *md;
	EVP_PKEY_CTX *c;
	bool pss = jwa_is_pss(alg);

	switch (jwa_digest_bits(alg)) {
	case 256: md = EVP_sha256(); break;
	case 384: md = EVP_sha384(); break;
	case 512: md = EVP_sha512(); break;
	default: return NULL;
	}
	c = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
	if (!c || EVP_PKEY_verify_init(c) != 1)
		goto fail;
	if (k->kty == JWKS_KTY_RSA) {
		if (EVP_PKEY_CTX_set_rsa_padding(c, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1)
			goto fail;
		/* go-jose verifies PSS with PSSSaltLengthAuto; do the same so every token the API server accepts
		 * verifies here (RFC 7518 issuers use the hash length, which AUTO accepts). */
		if (pss && (EVP_PKEY_CTX_set_rsa_pss_saltlen(c, RSA_PSS_SALTLEN_AUTO) != 1 ||
			    EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) != 1))
			goto fail;
	}
	if (EVP_PKEY_CTX_set_signature_md(c, md) != 1)
		goto fail;
	return c;
fail:
	EVP_PKEY_CTX_free(c);
	return NULL;
}

static void key_clear(jwks_key *k)
{
	for (size_t i = 0; i < sizeof(k->vctx) / sizeof(k->vctx[0]); i++)
		EVP_PKEY_CTX_free(k->vctx[i]);
	EVP_PKEY_free(k->pkey);
	ecverify_free((ecverify_key *)k->ecv);
	rsaverify_free((rsaverify_key *)k->rsav);
	edverify_free((edverify_key *)k->edv);
	EVP_MD_CTX_free(k->edctx);
	free((char *)k->kid);
	memset(k, 0, sizeof(*k));
}

/* Returns NULL and fills k when usable, else a static reason. */
static const char *build_key(const cJSON *o, jwks_key *k)
{
	const cJSON *kty = cJSON_GetObjectItemCaseSensitive(o, "kty");
	const cJSON *use = cJSON_GetObjectItemCaseSensitive(o, "use");
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(o, "alg");
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(o, "kid");
	const cJSON *crv = cJSON_GetObjectItemCaseSensitive(o, "crv");
	const cJSON *key_ops = cJSON_GetObjectItemCaseSensitive(o, "key_ops");
	const char *why;

	memset(k, 0, sizeof(*k));
	if (!cJSON_IsObject(o) || !cJSON_IsString(kty))
		return "key without kty";
	/* cJSON reads the first of two same-named members, Go's encoding/json (go-jose, the API server) the last,
	 * matching names case-insensitively: such a key would be different key material there */
	switch (jsonstrict_check_duplicates(o)) {
	case 0: break;
	case JSONSTRICT_E_NOMEM: return "out of memory";
	default: return "key with a duplicated member";
	}
	if (use && (!cJSON_IsString(use) || strcmp(use->valuestring, "sig") != 0))
		return "key not for signatures";
	/* RFC 7517 §4.3: key_ops lists what the key is for; one that does not list "verify" is not ours to use,
	 * like use=enc (go-jose ignores key_ops; skipping only ever refuses, never accepts more) */
	if (key_ops) {
		const cJSON *op;
		bool verify = false;

		if (!cJSON_IsArray(key_ops))
			return "key_ops without verification";
		cJSON_ArrayForEach(op, key_ops)
			if (cJSON_IsString(op) && strcmp(op->valuestring, "verify") == 0)
				verify = true;
		if (!verify)
			return "key_ops without verification";
	}
	if (alg) {
		if (!cJSON_IsString(alg) || (k->alg = jwa_parse(alg->valuestring, strlen(alg->valuestring))) < 0) {
			k->alg = 0;
			return "key alg not supported";
		}
	}
	if (kid) {
		size_t n;

		if (!cJSON_IsString(kid) || (n = strlen(kid->valuestring)) > JWKS_KID_MAX)
			return "key with unusable kid";
		k->kid = strdup(kid->valuestring);
		if (!k->kid)
			return "out of memory";
		k->kid_len = n;
	}
	if (strcmp(kty->valuestring, "RSA") == 0)
		why = build_rsa(o, k);
	else if (strcmp(kty->valuestring, "EC") == 0)
		why = cJSON_IsString(crv) ? build_ec(o, crv->valuestring, k) : "EC key without crv";
	else if (strcmp(kty->valuestring, "OKP") == 0)
		why = cJSON_IsString(crv) ? build_okp(o, crv->valuestring, k) : "OKP key without crv";
	else
		why = "unsupported kty";
	if (!why && k->alg && !jwks_key_fits(k, k->alg))
		why = "key alg does not match its type";
	if (!why)
		why = fingerprint(k);
	for (int a = 1; !why && a <= JWA_MAX; a++)
		if (a != JWA_EDDSA && jwks_key_fits(k, a) && !(k->vctx[a] = verify_ctx_new(k, a)))
			why = "cannot prepare a verify context";
	if (why)
		key_clear(k);
	return why;
}

/* The optional fast paths of a usable key; a failure is not an error (the key verifies through EVP as before):
 * - any RSA key: its IFMA verifier (rsaverify.h); any Ed25519 key: an initialised digest-verify context that a
 *   verification copies instead of initialising one (cheap to build);
 * - EC keys while fewer than JWKS_EC_FAST_MAX of the set have one: the precomputed verifier (ecverify.h); Ed25519
 *   keys while fewer than JWKS_ED_FAST_MAX have them: the tables (edverify.h) — milliseconds and tens of KiB each.
 * rsaverify, ecverify and edverify do the arithmetic outside the provider layer: where the FIPS provider is the
 * default they are not made, so that every verification goes through it. */
static void prepare_fast(jwks_key *k, size_t *nfast_ec, size_t *nfast_ed)
{
	bool fips = EVP_default_properties_is_fips_enabled(NULL);

	if (k->kty == JWKS_KTY_RSA && !fips) {
		rsaverify_key *v = NULL;

		if (rsaverify_new(k->pkey, &v) == 0)
			k->rsav = v;
	} else if (k->kty == JWKS_KTY_OKP) {
		EVP_MD_CTX *c = EVP_MD_CTX_new();

		if (c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k->pkey) == 1)
			k->edctx = c;
		else
			EVP_MD_CTX_free(c);
	}
#ifdef KOS_FUZZING
	(void)nfast_ec;
	(void)nfast_ed;
#else
	ecverify_key *v = NULL;
	edverify_key *e = NULL;
	uint8_t raw[32];
	size_t rl = sizeof(raw);

	if (fips)
		return;
	if (k->kty == JWKS_KTY_EC && *nfast_ec < JWKS_EC_FAST_MAX && ecverify_new(k->pkey, &v) == 0) {
		k->ecv = v;
		(*nfast_ec)++;
	}
	if (k->kty == JWKS_KTY_OKP && *nfast_ed < JWKS_ED_FAST_MAX &&
	    EVP_PKEY_get_raw_public_key(k->pkey, raw, &rl) == 1 && rl == 32 && edverify_new(raw, &e) == 0) {
		k->edv = e;
		(*nfast_ed)++;
	}
#endif
}

int jwks_parse(const uint8_t *p, size_t len, jwks_keyset **out, char *err, size_t errlen)
{
	cJSON *doc = NULL;
	const cJSON *keys, *it;
	jwks_keyset *ks = NULL;
	size_t cap, skipped = 0, nfast = 0, nfast_ed = 0;
	const char *first_skip = NULL;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (len > JWKS_MAX_BYTES) {
		rc = JWKS_E_TOO_BIG;
		if (err && errlen)
			snprintf(err, errlen, "key set larger than %u bytes", JWKS_MAX_BYTES);
		goto out;
	}
	rc = jsonstrict_parse(p, len, &doc);
	if (rc) {
		rc = rc == JSONSTRICT_E_NOMEM ? JWKS_E_NOMEM : JWKS_E_JSON;
		if (err && errlen)
			snprintf(err, errlen, "%s", rc == JWKS_E_NOMEM ? "out of memory" : "key set is not strict JSON");
		goto out;
	}
	keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
	if (!cJSON_IsArray(keys)) {
		rc = JWKS_E_JSON;
		if (err && errlen)
			snprintf(err, errlen, "key set has no keys array");
		goto out;
	}
	cap = (size_t)cJSON_GetArraySize(keys);
	if (cap > JWKS_MAX_KEYS)
		cap = JWKS_MAX_KEYS;
	ks = calloc(1, sizeof(*ks) + cap * sizeof(ks->keys[0]));
	if (!ks) {
		rc = JWKS_E_NOMEM;
		goto out;
	}
	atomic_init(&ks->refs, 1);
	ks->serial = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed);
	for (it = keys->child; it; it = it->next) {
		const char *why;

		if (ks->n == cap) {
			why = "more keys than the limit";
		} else {
			why = build_key(it, &ks->keys[ks->n]);
			if (!why) {
				prepare_fast(&ks->keys[ks->n], &nfast, &nfast_ed);
				ks->n++;
				continue;
			}
		}
		if (!first_skip)
			first_skip = why;
		skipped++;
	}
	if (ks->n == 0) {
		rc = JWKS_E_NO_KEYS;
		if (err && errlen)
			snprintf(err, errlen, "no usable key (%zu skipped%s%s)", skipped, first_skip ? ": " : "",
				 first_skip ? first_skip : "");
		goto out;
	}
	if (skipped && err && errlen)
		snprintf(err, errlen, "%zu key(s) skipped, first: %s", skipped, first_skip);
	*out = ks;
	ks = NULL;
	rc = 0;
out:
	jwks_keyset_release(ks);
	cJSON_Delete(doc);
	return rc;
}

void jwks_keyset_ref(jwks_keyset *ks)
{
	atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
}

void jwks_keyset_release(jwks_keyset *ks)
{
	if (!ks)
		return;
	if (atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < ks->n; i++)
		key_clear(&ks->keys[i]);
	free(ks);
}

uint64_t jwks_keyset_serial(const jwks_keyset *ks)
{
	return ks ? ks->serial : 0;
}

size_t jwks_keyset_count(const jwks_keyset *ks)
{
	return ks ? ks->n : 0;
}

const jwks_key *jwks_keyset_key(const jwks_keyset *ks, size_t i)
{
	return ks && i < ks->n ? &ks->keys[i] : NULL;
}

int jwks_key_fits(const jwks_key *k, int alg)
{
	bool type_ok;

	switch (alg) {
	case JWA_RS256: case JWA_RS384: case JWA_RS512:
	case JWA_PS256: case JWA_PS384: case JWA_PS512:
		type_ok = k->kty == JWKS_KTY_RSA;
		break;
	case JWA_ES256: type_ok = k->kty == JWKS_KTY_EC && k->crv == JWKS_CRV_P256; break;
	case JWA_ES384: type_ok = k->kty == JWKS_KTY_EC && k->crv == JWKS_CRV_P384; break;
	case JWA_ES512: type_ok = k->kty == JWKS_KTY_EC && k->crv == JWKS_CRV_P521; break;
	case JWA_EDDSA: type_ok = k->kty == JWKS_KTY_OKP && k->crv == JWKS_CRV_ED25519; break;
	default: type_ok = false;
	}
	return type_ok && (k->alg == 0 || k->alg == alg);
}

static bool kid_is(const jwks_key *k, const char *kid, size_t kid_len)
{
	return k->kid && k->kid_len == kid_len && memcmp(k->kid, kid, kid_len) == 0;
}

int jwks_find(const jwks_keyset *ks, const char *kid, size_t kid_len, int alg, const jwks_key **out)
{
	bool seen = false;

	if (!ks)
		return JWKS_E_NO_KID;
	for (size_t i = 0; i < ks->n; i++) {
		const jwks_key *k = &ks->keys[i];

		if (!kid_is(k, kid, kid_len))
			continue;
		seen = true;
		if (jwks_key_fits(k, alg)) {
			*out = k;
			return 0;
		}
	}
	return seen ? JWKS_E_MISMATCH : JWKS_E_NO_KID;
}

int jwks_find_next(const jwks_keyset *ks, const jwks_key *prev, int alg, const jwks_key **out)
{
	uintptr_t base, at;
	const jwks_key *p;

	if (!ks || !prev)
		return JWKS_E_NO_KID;
	/* integers, not pointers, are compared, and prev is read only once known to be one of ks's keys: it may
	 * come from another set, even a released one */
	base = (uintptr_t)ks->keys;
	at = (uintptr_t)prev;
	if (at < base || at >= base + ks->n * sizeof(ks->keys[0]) || (at - base) % sizeof(ks->keys[0]) != 0)
		return JWKS_E_NO_KID;
	p = &ks->keys[(at - base) / sizeof(ks->keys[0])];
	if (!p->kid)
		return JWKS_E_NO_KID;
	for (const jwks_key *k = p + 1; k < ks->keys + ks->n; k++) {
		if (kid_is(k, p->kid, p->kid_len) && jwks_key_fits(k, alg)) {
			*out = k;
			return 0;
		}
	}
	return JWKS_E_NO_KID;
}

int jwks_has_fp(const jwks_keyset *ks, uint64_t fp)
{
	if (!ks)
		return 0;
	for (size_t i = 0; i < ks->n; i++)
		if (ks->keys[i].fp == fp)
			return 1;
	return 0;
}
