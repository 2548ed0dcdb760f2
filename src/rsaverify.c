/*
 * rsaverify.c — RSA verification with an AVX-512 IFMA public operation; see rsaverify.h for why.
 *
 * Design: numbers are little-endian arrays of 52-bit digits, 8 per 512-bit register, nd = 8 * nv digits with
 * R = 2^(52 nd) >= 4n (nv = 5 for RSA-2048: 40 digits, 2080 bits). amm() is the almost-Montgomery product of
 * Gueron and Krasnov (the one OpenSSL's rsaz_avx512 uses for private keys): for a, b < 2n it returns
 * a*b/R mod n, below 2n, with no final subtraction. Per digit a[i] of a, VPMADD52LUQ adds the low 52 bits of
 * a[i]*b[j] and q*n[j] to accumulator lane j, the lanes move down one digit (the lowest is then 0 mod 2^52; its
 * carry goes into the next), and VPMADD52HUQ adds the high 52 bits. q = (x0 * -n^-1) mod 2^52 needs lane 0
 * (x0) of the accumulator; waiting for the vector to give it makes every step one long dependency chain, so
 * lane 0 is also computed in scalar code, one step ahead, from lane 1 of the step before (s0, s1 below): the
 * vector work of a step then overlaps the next q (5.6 us instead of 7.6 us per RSA-2048 exponentiation).
 * Lanes are 64-bit: each step adds under 2^54 to a lane, so nd <= 80 steps never overflow it; the carries are
 * propagated once per product, in scalar code.
 *
 * s^e mod n: s into Montgomery form with R^2 mod n (precomputed per key), left-to-right square-and-multiply
 * over e's bits (e is public: variable time is fine, as in OpenSSL's public operation), one product by 1 to
 * leave Montgomery form (the result is then at most n) and one conditional subtraction.
 *
 * Measured (2-core AMD EPYC with IFMA, OpenSSL 3.0.19, RSA-2048, e = 65537): see docs/internals.md.
 */

/* RSA_verify_PKCS1_PSS_mgf1() and EVP_PKEY_get1_RSA() are deprecated in OpenSSL 3.0 with no replacement for
 * checking an already recovered PSS encoding; a build without the deprecated API gets RSAVERIFY_E_UNAVAILABLE. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "rsaverify.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(OPENSSL_NO_DEPRECATED_3_0)
#define RSAVERIFY_IFMA 1
#include <immintrin.h>
#endif

const char *rsaverify_strerror(int err)
{
	switch (err) {
	case RSAVERIFY_OK: return "ok";
	case RSAVERIFY_E_SIGNATURE: return "invalid signature";
	case RSAVERIFY_E_ARG: return "not an RSA public key, or an input of the wrong size";
	case RSAVERIFY_E_NOMEM: return "out of memory";
	case RSAVERIFY_E_UNAVAILABLE: return "IFMA RSA not available here";
	}
	return "unknown rsaverify error";
}

#ifndef RSAVERIFY_IFMA

int rsaverify_new(const struct evp_pkey_st *pkey, rsaverify_key **out)
{
	(void)pkey;
	(void)out;
	return RSAVERIFY_E_UNAVAILABLE;
}

void rsaverify_free(rsaverify_key *k)
{
	(void)k;
}

int rsaverify_public(const rsaverify_key *k, const uint8_t *sig, size_t sig_len, uint8_t *em, size_t em_len)
{
	(void)k, (void)sig, (void)sig_len, (void)em, (void)em_len;
	return RSAVERIFY_E_UNAVAILABLE;
}

int rsaverify_verify(const rsaverify_key *k, bool pss, const struct evp_md_st *md, const uint8_t *hash,
		     size_t hash_len, const uint8_t *sig, size_t sig_len)
{
	(void)k, (void)pss, (void)md, (void)hash, (void)hash_len, (void)sig, (void)sig_len;
	return RSAVERIFY_E_UNAVAILABLE;
}

#else

#define M52 ((UINT64_C(1) << 52) - 1)
#define NV_MAX 10 /* 80 digits, 4160 bits: RSAVERIFY_MAX_BITS + 2 fits */
#define ND_MAX (8 * NV_MAX)

struct rsaverify_key {
	unsigned nv;                        /* 512-bit registers per number: 5, 8 or 10 */
	size_t nbytes;                      /* k, the modulus in octets */
	uint32_t e;                         /* public exponent (jwks.c: odd, > 1, below 2^31; this code takes 32 bits) */
	uint64_t k0;                        /* -n^-1 mod 2^52 */
	uint64_t n[ND_MAX];                 /* modulus, 52-bit digits, zero beyond its length */
	uint64_t rr[ND_MAX];                /* R^2 mod n */
	uint8_t nbe[RSAVERIFY_MAX_BITS / 8]; /* n big-endian, nbytes octets: the s < n check */
	RSA *rsa;                           /* for RSA_verify_PKCS1_PSS_mgf1 (it reads the modulus size) */
};

#define IFMA __attribute__((target("avx512f,avx512ifma")))

/* r = a*b/R mod n, r < 2n, for a, b < 2n in normalised digits; r may be a or b. */
static inline __attribute__((always_inline)) IFMA void amm(uint64_t *r, const uint64_t *a, const uint64_t *b,
							   const uint64_t *n, uint64_t k0, const unsigned nv)
{
	__m512i X[NV_MAX], B[NV_MAX], N[NV_MAX];
	const __m512i zero = _mm512_setzero_si512();
	const uint64_t b0 = b[0], n0 = n[0], b1 = b[1], n1 = n[1];
	uint64_t t[ND_MAX], c, s0 = 0, s1 = 0;

#pragma GCC unroll 10
	for (unsigned v = 0; v < nv; v++) {
		X[v] = zero;
		B[v] = _mm512_loadu_si512((const void *)(b + 8 * v));
		N[v] = _mm512_loadu_si512((const void *)(n + 8 * v));
	}
	for (unsigned i = 0; i < 8 * nv; i++) {
		const uint64_t ai = a[i];
		const uint64_t x0 = s0 + ((ai * b0) & M52);
		const uint64_t q = (x0 * k0) & M52;
		__m512i A, Q;

		c = (x0 + ((q * n0) & M52)) >> 52;
		/* lane 0 of the next step: lane 1 now, its low products, the high products of lane 0, the carry */
		s0 = s1 + ((ai * b1) & M52) + ((q * n1) & M52) + (uint64_t)(((unsigned __int128)ai * b0) >> 52) +
		     (uint64_t)(((unsigned __int128)q * n0) >> 52) + c;
		A = _mm512_set1_epi64((long long)ai);
		Q = _mm512_set1_epi64((long long)q);
#pragma GCC unroll 10
		for (unsigned v = 0; v < nv; v++) {
			X[v] = _mm512_madd52lo_epu64(X[v], A, B[v]);
			X[v] = _mm512_madd52lo_epu64(X[v], Q, N[v]);
		}
#pragma GCC unroll 10
		for (unsigned v = 0; v + 1 < nv; v++)
			X[v] = _mm512_alignr_epi64(X[v + 1], X[v], 1);
		X[nv - 1] = _mm512_alignr_epi64(zero, X[nv - 1], 1);
		X[0] = _mm512_mask_add_epi64(X[0], 1, X[0], _mm512_set1_epi64((long long)c));
#pragma GCC unroll 10
		for (unsigned v = 0; v < nv; v++) {
			X[v] = _mm512_madd52hi_epu64(X[v], A, B[v]);
			X[v] = _mm512_madd52hi_epu64(X[v], Q, N[v]);
		}
		s1 = (uint64_t)_mm_extract_epi64(_mm512_castsi512_si128(X[0]), 1);
	}
#pragma GCC unroll 10
	for (unsigned v = 0; v < nv; v++)
		_mm512_storeu_si512((void *)(t + 8 * v), X[v]);
	/* lanes hold under 2^61; the value is below 2n < R, so nothing carries out of the last digit */
	c = 0;
	for (unsigned j = 0; j < 8 * nv; j++) {
		uint64_t v = t[j] + c;

		r[j] = v & M52;
		c = v >> 52;
	}
}

/* x = s^e mod n, fully reduced; s < n. */
static inline __attribute__((always_inline)) IFMA void modexp(const rsaverify_key *k, uint64_t *x,
							      const uint64_t *s, const unsigned nv)
{
	uint64_t sm[ND_MAX], one[ND_MAX];
	const unsigned nd = 8 * nv;
	uint64_t borrow = 0, d[ND_MAX];
	int bit;

	memset(one, 0, sizeof(one));
	one[0] = 1;
	amm(sm, s, k->rr, k->n, k->k0, nv); /* s*R mod n */
	memcpy(x, sm, nd * sizeof(*x));
	for (bit = 30 - __builtin_clz(k->e); bit >= 0; bit--) {
		amm(x, x, x, k->n, k->k0, nv);
		if ((k->e >> bit) & 1)
			amm(x, x, sm, k->n, k->k0, nv);
	}
	amm(x, x, one, k->n, k->k0, nv); /* at most n now */
	for (unsigned j = 0; j < nd; j++) {
		uint64_t v = x[j] - k->n[j] - borrow;

		d[j] = v & M52;
		borrow = v >> 63;
	}
	/* x >= n: x - n. Only x = n could get here, which needs s = 0 mod n, and s = 0 stays 0 all the way: never
	 * taken, kept so that the output is reduced whatever amm()'s bound. */
	if (!borrow)
		memcpy(x, d, nd * sizeof(*x));
}

static IFMA void modexp5(const rsaverify_key *k, uint64_t *x, const uint64_t *s)
{
	modexp(k, x, s, 5);
}

static IFMA void modexp8(const rsaverify_key *k, uint64_t *x, const uint64_t *s)
{
	modexp(k, x, s, 8);
}

static IFMA void modexp10(const rsaverify_key *k, uint64_t *x, const uint64_t *s)
{
	modexp(k, x, s, 10);
}

/* Big-endian octets -> nd 52-bit digits. len * 8 <= 52 * nd. */
static void to52(const uint8_t *be, size_t len, uint64_t *d, size_t nd)
{
	uint64_t acc = 0;
	unsigned bits = 0;
	size_t di = 0;

	for (size_t j = len; j-- > 0;) {
		acc |= (uint64_t)be[j] << bits;
		bits += 8;
		if (bits >= 52) {
			d[di++] = acc & M52;
			acc >>= 52;
			bits -= 52;
		}
	}
	if (bits)
		d[di++] = acc;
	while (di < nd)
		d[di++] = 0;
}

/* 52-bit digits -> len big-endian octets; the value fits in len octets. */
static void from52(const uint64_t *d, uint8_t *be, size_t len)
{
	uint64_t acc = 0;
	unsigned bits = 0;
	size_t di = 0;

	for (size_t j = len; j-- > 0;) {
		if (bits < 8) {
			acc |= d[di++] << bits;
			bits += 52;
		}
		be[j] = (uint8_t)acc;
		acc >>= 8;
		bits -= 8;
	}
}

static bool cpu_has_ifma(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
}

int rsaverify_new(const struct evp_pkey_st *pkey, rsaverify_key **out)
{
	BIGNUM *n = NULL, *e = NULL, *t = NULL;
	BN_CTX *ctx = NULL;
	rsaverify_key *k = NULL;
	uint8_t buf[RSAVERIFY_MAX_BITS / 8];
	int bits, rc = RSAVERIFY_E_NOMEM;
	uint64_t inv;

	if (!cpu_has_ifma())
		return RSAVERIFY_E_UNAVAILABLE;
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
		return RSAVERIFY_E_ARG;
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
		goto out;
	bits = BN_num_bits(n);
	if (bits > RSAVERIFY_MAX_BITS) {
		rc = RSAVERIFY_E_UNAVAILABLE;
		goto out;
	}
	if (!BN_is_odd(n) || bits < 512 || BN_num_bits(e) > 32 || !BN_is_odd(e) || BN_is_one(e)) {
		rc = RSAVERIFY_E_ARG;
		goto out;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL || (ctx = BN_CTX_new()) == NULL || (t = BN_new()) == NULL)
		goto out;
	k->nbytes = (size_t)(bits + 7) / 8;
	/* R = 2^(52 nd) >= 4n; 2048, 3072 and 4096 bits take 5, 8 and 10 registers, sizes between the next */
	k->nv = bits + 2 <= 52 * 40 ? 5 : bits + 2 <= 52 * 64 ? 8 : 10;
	k->e = (uint32_t)BN_get_word(e);
	if (BN_bn2binpad(n, k->nbe, (int)k->nbytes) != (int)k->nbytes)
		goto out;
	to52(k->nbe, k->nbytes, k->n, 8 * k->nv);
	/* R^2 mod n = 2^(2 * 52 nd) mod n */
	if (BN_set_bit(t, (int)(2 * 52 * 8 * k->nv)) != 1 || BN_mod(t, t, n, ctx) != 1 ||
	    BN_bn2binpad(t, buf, (int)k->nbytes) != (int)k->nbytes)
		goto out;
	to52(buf, k->nbytes, k->rr, 8 * k->nv);
	/* n^-1 mod 2^64 by Newton's iteration (n odd: n*n = 1 mod 8, each step doubles the good bits) */
	inv = k->n[0];
	for (int i = 0; i < 5; i++)
		inv *= 2 - k->n[0] * inv;
	k->k0 = (0 - inv) & M52;
	if ((k->rsa = EVP_PKEY_get1_RSA((EVP_PKEY *)pkey)) == NULL)
		goto out;
	*out = k;
	k = NULL;
	rc = 0;
out:
	rsaverify_free(k);
	BN_free(t);
	BN_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	return rc;
}

void rsaverify_free(rsaverify_key *k)
{
	if (!k)
		return;
	RSA_free(k->rsa);
	free(k);
}

int rsaverify_public(const rsaverify_key *k, const uint8_t *sig, size_t sig_len, uint8_t *em, size_t em_len)
{
	uint64_t s[ND_MAX], x[ND_MAX];

	if (sig_len != k->nbytes || em_len != k->nbytes)
		return RSAVERIFY_E_ARG;
	/* RFC 8017 §5.2.2 step 1: s must be below n (OpenSSL: "data too large for modulus") */
	if (memcmp(sig, k->nbe, k->nbytes) >= 0)
		return RSAVERIFY_E_SIGNATURE;
	to52(sig, sig_len, s, 8 * k->nv);
	switch (k->nv) {
	case 5: modexp5(k, x, s); break;
	case 8: modexp8(k, x, s); break;
	default: modexp10(k, x, s); break;
	}
	from52(x, em, em_len);
	return 0;
}

/* DigestInfo prefixes of RFC 8017 §9.2 note 1 (AlgorithmIdentifier with NULL parameters), then the hash */
static const uint8_t di_sha256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
				     0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
static const uint8_t di_sha384[] = { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
				     0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30 };
static const uint8_t di_sha512[] = { 0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
				     0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40 };

int rsaverify_verify(const rsaverify_key *k, bool pss, const struct evp_md_st *md, const uint8_t *hash,
		     size_t hash_len, const uint8_t *sig, size_t sig_len)
{
	uint8_t em[RSAVERIFY_MAX_BITS / 8], want[RSAVERIFY_MAX_BITS / 8];
	const uint8_t *di;
	size_t tlen, ps;
	int rc;

	if ((size_t)EVP_MD_get_size(md) != hash_len)
		return RSAVERIFY_E_ARG;
	switch (hash_len) {
	case 32: di = di_sha256; break;
	case 48: di = di_sha384; break;
	case 64: di = di_sha512; break;
	default: return RSAVERIFY_E_ARG;
	}
	if (sig_len != k->nbytes)
		return RSAVERIFY_E_ARG;
	rc = rsaverify_public(k, sig, sig_len, em, sig_len);
	if (rc)
		return rc;
	if (pss) {
		/* EMSA-PSS-VERIFY exactly as EVP_PKEY_verify does it after its own RSA_NO_PADDING public operation;
		 * -2 is RSA_PSS_SALTLEN_AUTO (the salt length read from the encoding), go-jose's PSSSaltLengthAuto */
		return RSA_verify_PKCS1_PSS_mgf1(k->rsa, hash, md, md, em, RSA_PSS_SALTLEN_AUTO) == 1
			? 0 : RSAVERIFY_E_SIGNATURE;
	}
	/* EMSA-PKCS1-v1_5: 00 01 FF..FF 00 DigestInfo, compared whole (RFC 8017 §8.2.2 steps 3-4), as Go does */
	tlen = sizeof(di_sha256) + hash_len;
	if (k->nbytes < tlen + 11)
		return RSAVERIFY_E_SIGNATURE;
	ps = k->nbytes - tlen - 3;
	want[0] = 0x00;
	want[1] = 0x01;
	memset(want + 2, 0xff, ps);
	want[2 + ps] = 0x00;
	memcpy(want + 3 + ps, di, sizeof(di_sha256));
	memcpy(want + 3 + ps + sizeof(di_sha256), hash, hash_len);
	return CRYPTO_memcmp(em, want, k->nbytes) == 0 ? 0 : RSAVERIFY_E_SIGNATURE;
}

#endif
