/*
 * jws.c — signature verification; see jws.h.
 *
 * Design: the digests are fetched once (EVP_MD_fetch) so a verification does no name lookup; keys arrive as
 * ready EVP_PKEYs with a verify context per alg (padding, digest) from jwks.c; ECDSA's JOSE r||s is
 * range-checked against the group order, then verified by the key's precomputed verifier (ecverify.h) or
 * DER-encoded on the stack for EVP; RSA goes to the key's IFMA verifier (rsaverify.h) and Ed25519 to its
 * tabulated one (edverify.h) where jwks.c made them, to EVP otherwise.
 */
#include "jws.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ecverify.h"
#include "edverify.h"
#include "jwa.h"
#include "rsaverify.h"

static EVP_MD *md_sha[3]; /* SHA-256, -384, -512; fetched once, kept for the life of the process */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

/* Per thread, one digest context per hash, reused token after token: EVP_Digest() allocates and initialises
 * a provider context on every call, which costs as much as hashing a whole ID token's signing input. Freed by
 * the key's destructor when the thread exits. */
struct md_tls {
	EVP_MD_CTX *c[3];
	EVP_MD_CTX *ed; /* Ed25519: the key's initialised context is copied here per verification, reset after */
};
static pthread_key_t md_tls_key;
static bool md_tls_ok;
static _Thread_local struct md_tls *md_tls;

static void md_tls_free(void *p)
{
	struct md_tls *t = p;

	for (size_t i = 0; i < 3; i++)
		EVP_MD_CTX_free(t->c[i]);
	EVP_MD_CTX_free(t->ed);
	free(t);
	md_tls = NULL;
}

static void md_init(void)
{
	md_sha[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
	md_sha[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
	md_sha[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
	md_tls_ok = pthread_key_create(&md_tls_key, md_tls_free) == 0;
}

/* This thread's contexts, made on its first call; NULL when that failed (callers then allocate per call). */
static struct md_tls *tls(void)
{
	pthread_once(&md_once, md_init);
	if (!md_tls && md_tls_ok) {
		struct md_tls *n = calloc(1, sizeof(*n));

		if (n && pthread_setspecific(md_tls_key, n) == 0)
			md_tls = n;
		else
			free(n);
	}
	return md_tls;
}

/* The message digest of t's signing input; false on an OpenSSL failure (no memory). */
static bool digest(const jwt_token *t, const EVP_MD *md, uint8_t *h, unsigned *hl)
{
	size_t i = md == md_sha[0] ? 0 : md == md_sha[1] ? 1 : 2;
	EVP_MD_CTX *c;

	if (!tls())
		return EVP_Digest(t->signing_input, t->signing_input_len, h, hl, md, NULL) == 1;
	c = md_tls->c[i];
	if (!c && !(c = md_tls->c[i] = EVP_MD_CTX_new()))
		return false;
	return EVP_DigestInit_ex2(c, md, NULL) == 1 && EVP_DigestUpdate(c, t->signing_input, t->signing_input_len) == 1 &&
	       EVP_DigestFinal_ex(c, h, hl) == 1;
}

static const EVP_MD *alg_md(int alg)
{
	pthread_once(&md_once, md_init);
	switch (jwa_digest_bits(alg)) {
	case 256: return md_sha[0];
	case 384: return md_sha[1];
	case 512: return md_sha[2];
	}
	return NULL;
}

/* DER INTEGER of a big-endian unsigned value; returns bytes written. out needs n + 3. */
static size_t der_uint(uint8_t *out, const uint8_t *v, size_t n)
{
	size_t o = 0;

	while (n > 1 && v[0] == 0) {
		v++;
		n--;
	}
	out[o++] = 0x02;
	out[o++] = (uint8_t)(n + (v[0] & 0x80 ? 1 : 0));
	if (v[0] & 0x80)
		out[o++] = 0;
	memcpy(out + o, v, n);
	return o + n;
}

static bool is_zero(const uint8_t *v, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= v[i];
	return acc == 0;
}

/* JOSE ECDSA: r||s, each exactly the field size; both in [1, n-1] (RFC 7518 §3.4; r = s = 0 is the
 * "psychic signature" that broken verifiers accepted). */
static int ecdsa_jose_check(const jwt_token *t, const jwks_key *k)
{
	size_t half = (k->bits + 7) / 8;
	const uint8_t *r = t->sig, *s = t->sig + half;

	if (t->sig_len != 2 * half || half != k->ec_order_len)
		return JWT_E_SIGNATURE;
	if (is_zero(r, half) || is_zero(s, half) || memcmp(r, k->ec_order, half) >= 0 ||
	    memcmp(s, k->ec_order, half) >= 0)
		return JWT_E_SIGNATURE;
	return 0;
}

/* The DER encoding OpenSSL's EVP verification wants; the signature passed ecdsa_jose_check(). */
static void ecdsa_jose_to_der(const jwt_token *t, uint8_t *der, size_t *der_len)
{
	size_t half = t->sig_len / 2, o, body;
	const uint8_t *r = t->sig, *s = t->sig + half;
	uint8_t ints[2 * (66 + 3)];

	body = der_uint(ints, r, half);
	body += der_uint(ints + body, s, half);
	o = 0;
	der[o++] = 0x30;
	if (body >= 0x80)
		der[o++] = 0x81;
	der[o++] = (uint8_t)body;
	memcpy(der + o, ints, body);
	*der_len = o + body;
}

int jws_verify(const jwt_token *t, const jwks_key *k)
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx;
	const EVP_MD *md = NULL;
	uint8_t der[2 * (66 + 3) + 3];
	const uint8_t *sig = t->sig;
	size_t sig_len = t->sig_len;
	int rc = JWT_E_SIGNATURE;

	if (!jwks_key_fits(k, t->alg))
		return JWT_E_KEY;
	if (t->alg != JWA_EDDSA) {
		md = alg_md(t->alg);
		if (!md)
			return JWT_E_NOMEM;
	}
	if (k->kty == JWKS_KTY_EC) {
		rc = ecdsa_jose_check(t, k);
		if (rc)
			return rc;
		if (k->ecv) {
			uint8_t h[EVP_MAX_MD_SIZE];
			unsigned int hl = 0;
			size_t half = t->sig_len / 2;

			if (!digest(t, md, h, &hl))
				return JWT_E_NOMEM;
			rc = ecverify_verify(k->ecv, h, hl, t->sig, half, t->sig + half, half);
			if (rc == 0 || rc == ECVERIFY_E_SIGNATURE)
				return rc == 0 ? 0 : JWT_E_SIGNATURE;
			/* no verdict (OpenSSL could not allocate): EVP below decides */
		}
		ecdsa_jose_to_der(t, der, &sig_len);
		sig = der;
		rc = JWT_E_SIGNATURE;
	} else if (sig_len != (k->kty == JWKS_KTY_RSA ? (k->bits + 7) / 8 : 64)) {
		/* RFC 8017 §8.1.2/§8.2.2: an RSA signature is exactly k octets (Go's crypto/rsa checks it for PKCS#1
		 * v1.5 and PSS alike). OpenSSL does for PKCS#1 v1.5 only: its PSS path takes a shorter one, the same
		 * integer without its leading zero octet, so a second encoding of one signature would verify here and
		 * not in the API server. Ed25519 signatures are 64 octets (RFC 8032 §5.1.6). */
		return JWT_E_SIGNATURE;
	} else if (k->rsav) {
		uint8_t h[EVP_MAX_MD_SIZE];
		unsigned int hl = 0;

		if (!digest(t, md, h, &hl))
			return JWT_E_NOMEM;
		rc = rsaverify_verify(k->rsav, jwa_is_pss(t->alg), md, h, hl, sig, sig_len);
		if (rc == 0 || rc == RSAVERIFY_E_SIGNATURE)
			return rc == 0 ? 0 : JWT_E_SIGNATURE;
		/* no verdict: EVP below decides */
		rc = JWT_E_SIGNATURE;
	}
	if (t->alg >= 0 && (size_t)t->alg < sizeof(k->vctx) / sizeof(k->vctx[0]) && k->vctx[t->alg]) {
		uint8_t h[EVP_MAX_MD_SIZE];
		unsigned int hl = 0;

		if (!digest(t, md, h, &hl))
			return JWT_E_NOMEM;
		pctx = EVP_PKEY_CTX_dup(k->vctx[t->alg]);
		if (!pctx)
			return JWT_E_NOMEM;
		rc = EVP_PKEY_verify(pctx, sig, sig_len, h, hl) == 1 ? 0 : JWT_E_SIGNATURE;
		EVP_PKEY_CTX_free(pctx);
		return rc;
	}
	/* Only Ed25519 gets here: it has no prepared context (EdDSA is one-shot: the whole message, no digest).
	 * jwks.c gives every RSA and EC key a context for each alg it fits, or skips the key. */
	if (k->kty != JWKS_KTY_OKP)
		return JWT_E_NOMEM;
	if (k->edv) {
		rc = edverify_verify(k->edv, t->signing_input, t->signing_input_len, sig);
		if (rc == 0 || rc == EDVERIFY_E_SIGNATURE)
			return rc == 0 ? 0 : JWT_E_SIGNATURE;
		rc = JWT_E_SIGNATURE; /* no verdict: EVP decides */
	}
	if (k->edctx && tls()) {
		/* the key's context, initialised once, copied into this thread's (a dup of the provider context, no
		 * fetch); reset after so that no key outlives the verification in a thread's context */
		mctx = md_tls->ed;
		if (!mctx && !(mctx = md_tls->ed = EVP_MD_CTX_new()))
			return JWT_E_NOMEM;
		if (EVP_MD_CTX_copy_ex(mctx, k->edctx) != 1)
			rc = JWT_E_NOMEM;
		else if (EVP_DigestVerify(mctx, sig, sig_len, t->signing_input, t->signing_input_len) == 1)
			rc = 0;
		EVP_MD_CTX_reset(mctx);
		return rc;
	}
	mctx = EVP_MD_CTX_new();
	if (!mctx)
		return JWT_E_NOMEM;
	if (EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestVerify(mctx, sig, sig_len, t->signing_input, t->signing_input_len) == 1)
		rc = 0;
	EVP_MD_CTX_free(mctx);
	return rc;
}
