/*
 * edverify.h — Ed25519 verification (RFC 8032 §5.1.7, cofactorless, as OpenSSL and Go verify) with per-key
 * tables: about four times as fast as OpenSSL 3.0's EVP_DigestVerify, for a public key known in advance.
 *
 * Why: OpenSSL 3.0 verifies Ed25519 with portable C that decodes the public key A and runs a ~253-doubling
 * double-scalar multiplication for every signature (~64 us here). A is fixed per key, so edverify_new() decodes
 * it once and tabulates j * 16^i * A (and the same for the base point B, once per process); a verification is then
 * [S]B - [k]A as 128 table additions and no doubling.
 *
 * Verdicts are OpenSSL's exactly (the same equation on the same values): S must be below the group order L;
 * k = SHA-512(R || A || M) mod L; the signature verifies iff the canonical encoding of [S]B - [k]A equals R byte
 * for byte (so a non-canonical R never verifies, in OpenSSL and Go alike). Public keys whose encoding OpenSSL
 * decodes leniently (y >= p, or x = 0 with the sign bit set) are not taken: edverify_new() says
 * EDVERIFY_E_UNAVAILABLE and the caller keeps using EVP for them. tests/unit/test_edverify.c checks the verdicts
 * against EVP_DigestVerify and Wycheproof's vectors.
 *
 * Owns: an edverify_key holds A's table (~60 KiB); edverify_free() releases it. Read-only after edverify_new(),
 * usable by any number of threads at once; a verification allocates nothing (each verifying thread keeps a
 * BN_CTX for the reduction mod L, made on its first verification, freed at thread exit). Building a key takes ~2 ms: off the event loop (jwks.c builds keys on the fetcher thread).
 */
#ifndef KOS_EDVERIFY_H
#define KOS_EDVERIFY_H

#include <stddef.h>
#include <stdint.h>

typedef struct edverify_key edverify_key;

enum edverify_err {
	EDVERIFY_OK = 0,
	EDVERIFY_E_SIGNATURE = -1,   /* the signature does not verify (a verdict, not a failure) */
	EDVERIFY_E_ARG = -2,         /* not a point on the curve: no signature can verify with it */
	EDVERIFY_E_NOMEM = -3,       /* no verdict: use EVP */
	EDVERIFY_E_UNAVAILABLE = -4, /* a key OpenSSL decodes leniently, or this OpenSSL lacks SHA512_*: use EVP */
};

/* Prepares a verifier for the 32-octet Ed25519 public key pub. On success *out owns a new key for
 * edverify_free(); on failure *out is untouched. Slow (~2 ms): never on an event-loop thread. */
int edverify_new(const uint8_t pub[32], edverify_key **out);
void edverify_free(edverify_key *k); /* NULL is fine */

/* Verifies the 64-octet signature sig over msg[0..len). 0 or EDVERIFY_E_SIGNATURE; EDVERIFY_E_NOMEM without a
 * verdict. Any thread. */
int edverify_verify(const edverify_key *k, const uint8_t *msg, size_t len, const uint8_t sig[64]);

const char *edverify_strerror(int err);

#endif
