/*
 * jose_test.h — test-only JOSE helpers shared by test_jwt.c and test_jwks.c (header-only on purpose: the
 * Makefile links tests/unit/util_*.c into every unit test, and these need only OpenSSL and b64url).
 *
 * Keys are generated with OpenSSL at run time, exported as public JWKs and signed with OpenSSL's own EVP calls
 * (not through jwt.c), so the code under test only ever verifies. The fixture tokens minted by python3-jwcrypto
 * (tests/fixtures/tokens.inc) remain the independent-implementation check; these helpers exist for shapes
 * jwcrypto will not produce (PSS salt lengths, MGF1 digests, r/s at the group order, non-canonical Ed25519 s).
 * Everything returned is heap memory the caller frees with free(); a failure aborts the test (fail_msg).
 */
#ifndef KOS_TEST_JOSE_H
#define KOS_TEST_JOSE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "b64url.h"

#define TJ_UNUSED __attribute__((unused))

/* "RSA" (2048 bits), "RSA1024", "P-256", "P-384", "P-521", "Ed25519" */
TJ_UNUSED static EVP_PKEY *tj_keygen(const char *what)
{
	EVP_PKEY *k = NULL;

	if (strcmp(what, "RSA") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else if (strcmp(what, "RSA1024") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	else if (strncmp(what, "P-", 2) == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", what);
	else if (strcmp(what, "Ed25519") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!k)
		fail_msg("keygen %s failed", what);
	return k;
}

/* base64url of p[0..n) as a NUL-terminated heap string */
TJ_UNUSED static char *tj_b64(const void *p, size_t n)
{
	size_t el = b64url_encoded_len(n);
	char *s = malloc(el + 1);

	if (!s || b64url_encode(p, n, s, el + 1) != (int)el)
		fail_msg("b64url_encode");
	s[el] = 0;
	return s;
}

TJ_UNUSED static char *tj_b64_bn(const BIGNUM *bn, size_t pad)
{
	size_t n = pad ? pad : (size_t)BN_num_bytes(bn);
	unsigned char *b = malloc(n ? n : 1);
	char *s;

	if (!b || BN_bn2binpad(bn, b, (int)n) != (int)n)
		fail_msg("bn2bin");
	s = tj_b64(b, n);
	free(b);
	return s;
}

/* The public members of k as JSON members without braces: "kty":…,"n":…,"e":… (RSA), "kty":"EC","crv":…,"x","y"
 * or "kty":"OKP","crv":"Ed25519","x". */
TJ_UNUSED static char *tj_jwk_members(EVP_PKEY *k)
{
	char *out = malloc(4096);

	if (!out)
		fail_msg("malloc");
	if (EVP_PKEY_is_a(k, "RSA")) {
		BIGNUM *n = NULL, *e = NULL;
		char *sn, *se;

		if (!EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) ||
		    !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e))
			fail_msg("rsa params");
		sn = tj_b64_bn(n, 0);
		se = tj_b64_bn(e, 0);
		snprintf(out, 4096, "\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"", sn, se);
		free(sn);
		free(se);
		BN_free(n);
		BN_free(e);
	} else if (EVP_PKEY_is_a(k, "EC")) {
		char grp[32];
		BIGNUM *x = NULL, *y = NULL;
		size_t fl;
		char *sx, *sy;

		if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof(grp), NULL) ||
		    !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
		    !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y))
			fail_msg("ec params");
		fl = strcmp(grp, "prime256v1") == 0 ? 32 : strcmp(grp, "secp384r1") == 0 ? 48 : 66;
		sx = tj_b64_bn(x, fl);
		sy = tj_b64_bn(y, fl);
		snprintf(out, 4096, "\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"",
			 fl == 32 ? "P-256" : fl == 48 ? "P-384" : "P-521", sx, sy);
		free(sx);
		free(sy);
		BN_free(x);
		BN_free(y);
	} else {
		unsigned char raw[32];
		size_t rl = sizeof(raw);
		char *sx;

		if (!EVP_PKEY_get_raw_public_key(k, raw, &rl))
			fail_msg("raw public key");
		sx = tj_b64(raw, rl);
		snprintf(out, 4096, "\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"", sx);
		free(sx);
	}
	return out;
}

/* One public JWK object: {"kid":kid,<members>[,"alg":alg]}; kid/alg NULL = absent. */
TJ_UNUSED static char *tj_jwk(EVP_PKEY *k, const char *kid, const char *alg)
{
	char *m = tj_jwk_members(k), *out = malloc(4400);

	if (!out)
		fail_msg("malloc");
	snprintf(out, 4400, "{%s%s%s%s%s%s%s}", m, kid ? ",\"kid\":\"" : "", kid ? kid : "", kid ? "\"" : "",
		 alg ? ",\"alg\":\"" : "", alg ? alg : "", alg ? "\"" : "");
	free(m);
	return out;
}

/* Signature options beyond the JWS defaults. */
typedef struct tj_opts {
	int pss_saltlen;       /* PS*: 0 = hash length (RFC 7518); TJ_SALT_ZERO = no salt; else that length */
	const char *pss_mgf1;  /* PS*: NULL = same digest as the signature */
	int raw_der;           /* ES*: leave OpenSSL's DER ECDSA-Sig-Value instead of JOSE r||s */
} tj_opts;
#define TJ_SALT_ZERO (-100)

static const char *tj_md(const char *alg)
{
	const char *bits = alg + 2;

	return strcmp(bits, "256") == 0 ? "SHA256" : strcmp(bits, "384") == 0 ? "SHA384" : "SHA512";
}

/* Signs si[0..n) for JWS alg with private key k; *sig is heap, JOSE format. */
TJ_UNUSED static void tj_sign_raw(EVP_PKEY *k, const char *alg, const void *si, size_t n, const tj_opts *o,
				  unsigned char **sig, size_t *siglen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = NULL;
	const char *md = strcmp(alg, "EdDSA") == 0 ? NULL : tj_md(alg);
	unsigned char *der = NULL;
	size_t dl = 0;

	if (!m || EVP_DigestSignInit_ex(m, &pc, md, NULL, NULL, k, NULL) != 1)
		fail_msg("sign init %s", alg);
	if (alg[0] == 'P') {
		int salt = o && o->pss_saltlen ? o->pss_saltlen : RSA_PSS_SALTLEN_DIGEST;

		if (salt == TJ_SALT_ZERO)
			salt = 0;
		if (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, salt) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, o && o->pss_mgf1 ? o->pss_mgf1 : md, NULL) != 1)
			fail_msg("pss params");
	}
	if (EVP_DigestSign(m, NULL, &dl, si, n) != 1 || !(der = malloc(dl)) || EVP_DigestSign(m, der, &dl, si, n) != 1)
		fail_msg("sign %s", alg);
	EVP_MD_CTX_free(m);
	if (alg[0] == 'E' && alg[1] == 'S' && !(o && o->raw_der)) {
		const unsigned char *pp = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &pp, (long)dl);
		size_t half = strcmp(alg, "ES256") == 0 ? 32 : strcmp(alg, "ES384") == 0 ? 48 : 66;
		unsigned char *j = malloc(2 * half);

		if (!es || !j || BN_bn2binpad(ECDSA_SIG_get0_r(es), j, (int)half) != (int)half ||
		    BN_bn2binpad(ECDSA_SIG_get0_s(es), j + half, (int)half) != (int)half)
			fail_msg("ecdsa to jose");
		ECDSA_SIG_free(es);
		free(der);
		der = j;
		dl = 2 * half;
	}
	*sig = der;
	*siglen = dl;
}

/* A compact JWS "<b64 hdr>.<b64 payload>.<b64 sig>" signed by k for alg (hdr is the header JSON verbatim). */
TJ_UNUSED static char *tj_token(EVP_PKEY *k, const char *alg, const char *hdr, const char *payload,
				const tj_opts *o)
{
	char *h = tj_b64(hdr, strlen(hdr)), *p = tj_b64(payload, strlen(payload)), *si, *s, *out;
	unsigned char *sig;
	size_t sl, n;

	n = strlen(h) + strlen(p) + 2;
	si = malloc(n);
	snprintf(si, n, "%s.%s", h, p);
	tj_sign_raw(k, alg, si, strlen(si), o, &sig, &sl);
	s = tj_b64(sig, sl);
	n = strlen(si) + strlen(s) + 2;
	out = malloc(n);
	snprintf(out, n, "%s.%s", si, s);
	free(h);
	free(p);
	free(si);
	free(s);
	free(sig);
	return out;
}

/* Replaces the signature part of tok with the base64url of sig[0..n); returns a new string. */
TJ_UNUSED static char *tj_with_sig(const char *tok, const void *sig, size_t n)
{
	const char *dot = strrchr(tok, '.');
	char *s = tj_b64(sig, n), *out;
	size_t l = (size_t)(dot - tok) + 1 + strlen(s) + 1;

	out = malloc(l);
	snprintf(out, l, "%.*s.%s", (int)(dot - tok), tok, s);
	free(s);
	return out;
}

/* The decoded signature of tok (heap). */
TJ_UNUSED static unsigned char *tj_sig_of(const char *tok, size_t *n)
{
	const char *dot = strrchr(tok, '.') + 1;
	size_t l = strlen(dot);
	unsigned char *b = malloc(b64url_decoded_max(l) + 1);

	if (!b || b64url_decode((const uint8_t *)dot, l, b, b64url_decoded_max(l), n) != 0)
		fail_msg("decode sig");
	return b;
}

#endif
