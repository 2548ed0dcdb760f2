/*
 * rsaverify.h — RSA signature verification (RSASSA-PKCS1-v1_5 and RSASSA-PSS) with the public operation done in
 * AVX-512 IFMA Montgomery arithmetic: about twice as fast as OpenSSL's RSA public operation on a CPU that has
 * it, for a public key known in advance (an issuer's JWKS key verifies thousands of tokens between refreshes).
 *
 * Why: an RSA-2048 verification is the modular exponentiation s^e mod n (17 Montgomery products for
 * e = 65537) and almost nothing else; OpenSSL 3.0 computes public operations with its 64-bit mulx code and
 * uses its 52-bit IFMA code only for private keys. With 52-bit digits in 512-bit registers one Montgomery
 * product of 2048 bits is 40 vector steps; see rsaverify.c.
 *
 * Verdicts are OpenSSL's (and Go's crypto/rsa's) exactly: the signature must be exactly k = bytes(n) octets
 * (the caller checks) and, read as an integer, below n; PKCS#1 v1.5 compares the whole encoded message with the
 * one RFC 8017 §9.2 builds from the hash (DigestInfo with NULL parameters), which is what RSA_verify's
 * padding check plus DigestInfo comparison amounts to; PSS hands the recovered message to OpenSSL's own
 * RSA_verify_PKCS1_PSS_mgf1 (salt length recovered, as RSA_PSS_SALTLEN_AUTO), the function EVP_PKEY_verify
 * ends in. Only the exponentiation is ours, and tests/unit/test_rsaverify.c checks it against BN_mod_exp.
 *
 * Owns: an rsaverify_key holds the modulus and R^2 mod n in 52-bit digits and a reference to the key's RSA;
 * rsaverify_free() releases them. Read-only after rsaverify_new(), usable by any number of threads at once;
 * a verification allocates nothing (PSS: what OpenSSL's MGF1 allocates).
 *
 * Where the CPU lacks AVX-512F + IFMA, on other architectures, for moduli above RSAVERIFY_MAX_BITS and in
 * builds without the OpenSSL 3.0 deprecated API (RSA_verify_PKCS1_PSS_mgf1), rsaverify_new() returns
 * RSAVERIFY_E_UNAVAILABLE and callers keep using EVP.
 */
#ifndef KOS_RSAVERIFY_H
#define KOS_RSAVERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rsaverify_key rsaverify_key;

enum rsaverify_err {
	RSAVERIFY_OK = 0,
	RSAVERIFY_E_SIGNATURE = -1,   /* the signature does not verify (a verdict, not a failure) */
	RSAVERIFY_E_ARG = -2,         /* not an RSA public key, or an input of the wrong size */
	RSAVERIFY_E_NOMEM = -3,       /* OpenSSL failed (memory): no verdict, use EVP */
	RSAVERIFY_E_UNAVAILABLE = -4, /* no IFMA, modulus too large, or this OpenSSL lacks the API: use EVP */
};

#define RSAVERIFY_MAX_BITS 4096 /* larger moduli (rare, and slow anyway) stay on EVP */

struct evp_pkey_st;
struct evp_md_st;

/* Prepares a verifier for RSA public key pkey (not consumed; its RSA is referenced). On success *out owns a new
 * key for rsaverify_free(); on failure *out is untouched. Cheap (one modular reduction): any thread. */
int rsaverify_new(const struct evp_pkey_st *pkey, rsaverify_key **out);
void rsaverify_free(rsaverify_key *k); /* NULL is fine */

/* em = sig^e mod n as k big-endian octets (k = bytes of n = sig_len = em_len). RSAVERIFY_E_SIGNATURE when sig
 * is not below n, RSAVERIFY_E_ARG on a length other than k. The raw RSA public operation (RSAVP1 of RFC 8017
 * §5.2.2); exported for the tests. Any thread. */
int rsaverify_public(const rsaverify_key *k, const uint8_t *sig, size_t sig_len, uint8_t *em, size_t em_len);

/* Verifies an RSASSA signature over hash, the message digest by md (SHA-256, -384 or -512; hash_len its size;
 * PSS's MGF1 uses md too; a fetched EVP_MD spares OpenSSL a lookup per call). pss selects RSASSA-PSS with any
 * salt length, else PKCS#1 v1.5. 0 when it verifies, RSAVERIFY_E_SIGNATURE when it does not (including a
 * signature not below n), RSAVERIFY_E_ARG (sizes) or _UNAVAILABLE without a verdict. Any thread. */
int rsaverify_verify(const rsaverify_key *k, bool pss, const struct evp_md_st *md, const uint8_t *hash,
		     size_t hash_len, const uint8_t *sig, size_t sig_len);

const char *rsaverify_strerror(int err);

#endif
