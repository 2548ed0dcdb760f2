/*
 * ecverify.h — ECDSA verification (P-256, P-384, P-521) about twice as fast as OpenSSL's EVP path, for a public
 * key known in advance: an issuer's JWKS key verifies thousands of tokens between refreshes.
 *
 * Why: verification computes R = u1*G + u2*Q. OpenSSL has a table of multiples of G but multiplies Q, the
 * issuer's key, with a generic variable-base method that costs most of a verification. Q is fixed per key, so
 * ecverify_new() builds a copy of the curve whose generator is Q and lets OpenSSL precompute its multiples once
 * (EC_GROUP_precompute_mult); u2*Q then costs what u1*G does. Semantics are ECDSA's exactly (SEC1 4.1.4,
 * FIPS 186-4 §6.4.2), the same verdict as EVP_PKEY_verify on every input: r and s in [1, n-1], the hash
 * truncated to the order's bit length, R = infinity refused, x(R) mod n == r; high-s signatures are valid
 * (OpenSSL and Go accept s and n-s alike).
 *
 * Owns: an ecverify_key holds its own copy of the curve, the public point and the table; ecverify_free()
 * releases them. It is read-only after ecverify_new() and may be used by any number of threads at once.
 * Each verifying thread keeps a small scratch (a BN_CTX and a few points) made on its first call and freed at
 * thread exit, so a verification allocates nothing of ours.
 *
 * Cost of a key (measured, OpenSSL 3.0 x86-64): building it takes ~26-33 ms for P-256 (OpenSSL's nistz256
 * table), ~3 ms for P-384, ~0.2 ms for P-521; it must run off the event loop (jwks.c does it on the OIDC
 * fetcher thread). Heap per key: ~151 KiB for P-256 (37 x 64 affine points), ~274 KiB for P-384 (wNAF tables
 * of both G and Q, see ecverify.c), ~6 KiB for P-521. Verification against EVP_PKEY_verify on the same key:
 * P-256 20 vs 70 us, P-384 270 vs 760 us, P-521 330 vs 560 us.
 *
 * Built against OpenSSL without the 3.0 deprecated API (OPENSSL_NO_DEPRECATED_3_0), ecverify_new() returns
 * ECVERIFY_E_UNAVAILABLE and callers keep using EVP.
 */
#ifndef KOS_ECVERIFY_H
#define KOS_ECVERIFY_H

#include <stddef.h>
#include <stdint.h>

typedef struct ecverify_key ecverify_key;

enum ecverify_err {
	ECVERIFY_OK = 0,
	ECVERIFY_E_SIGNATURE = -1,   /* the signature does not verify (a verdict, not a failure) */
	ECVERIFY_E_ARG = -2,         /* not an EC public key on P-256/384/521, or an input longer than any curve's */
	ECVERIFY_E_NOMEM = -3,       /* OpenSSL failed (memory): no verdict, use EVP */
	ECVERIFY_E_UNAVAILABLE = -4, /* this OpenSSL lacks the API: use EVP */
};

#define ECVERIFY_MAX_HASH 128  /* past any curve's order: the bit-level truncation of P-521 is reachable */
#define ECVERIFY_MAX_SCALAR 66 /* P-521 order, in bytes */

struct evp_pkey_st;

/* Prepares a verifier for EC public key pkey (P-256, P-384 or P-521; not consumed, not retained). On success
 * *out owns a new key for ecverify_free(); on failure *out is untouched. Slow (see above): never on an
 * event-loop thread. */
int ecverify_new(const struct evp_pkey_st *pkey, ecverify_key **out);
void ecverify_free(ecverify_key *k); /* NULL is fine */

/* Verifies ECDSA signature (r, s) over hash[0..hash_len) with key k. r and s are unsigned big-endian integers
 * of any length up to ECVERIFY_MAX_SCALAR (leading zeros allowed); hash_len at most ECVERIFY_MAX_HASH, used
 * as SEC1 says (its leftmost bits when longer than the order). Returns 0 when valid, ECVERIFY_E_SIGNATURE
 * when not, ECVERIFY_E_ARG for an over-long input, ECVERIFY_E_NOMEM when OpenSSL failed (then no verdict:
 * the caller should fall back to EVP or refuse). Any thread, concurrently. */
int ecverify_verify(const ecverify_key *k, const uint8_t *hash, size_t hash_len, const uint8_t *r, size_t r_len,
		    const uint8_t *s, size_t s_len);

/* The curve's field size in bits (256, 384, 521). */
unsigned ecverify_bits(const ecverify_key *k);
const char *ecverify_strerror(int err);

#endif
