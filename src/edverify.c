/*
 * edverify.c — Ed25519 verification with per-key tables; see edverify.h for why.
 *
 * Design: field elements mod p = 2^255 - 19 in five 51-bit limbs (products in unsigned __int128), every add and
 * sub carried so that limbs stay below 2^52; points in extended coordinates (X:Y:Z:T) with the addition formulas
 * of Hisil-Wong-Carter-Dawson as in ref10 (complete on this curve: d is not a square), tables of affine
 * (y+x, y-x, 2dxy) entries. A scalar below 2^253 is written in 64 signed radix-16 digits in [-8, 8]; the table of
 * a point P holds j * 16^i * P for i < 64 and 1 <= j <= 8, so [s]P is the sum of 64 entries, one per digit, with
 * no doubling. Everything here handles public values only (key, signature, message), so variable time is fine,
 * as in OpenSSL's own verification.
 *
 * Measured (2-core AMD EPYC, OpenSSL 3.0.19): see docs/internals.md §6.
 */

/* SHA512_Init/Update/Final are deprecated in OpenSSL 3 but hash on the stack without a provider context
 * allocation per call (cache.c does the same for SHA-256). */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "edverify.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

const char *edverify_strerror(int err)
{
	switch (err) {
	case EDVERIFY_OK: return "ok";
	case EDVERIFY_E_SIGNATURE: return "invalid signature";
	case EDVERIFY_E_ARG: return "not a point on the curve";
	case EDVERIFY_E_NOMEM: return "out of memory";
	case EDVERIFY_E_UNAVAILABLE: return "key left to EVP";
	}
	return "unknown edverify error";
}

#if defined(OPENSSL_NO_DEPRECATED_3_0) || !defined(__SIZEOF_INT128__)

int edverify_new(const uint8_t pub[32], edverify_key **out)
{
	(void)pub;
	(void)out;
	return EDVERIFY_E_UNAVAILABLE;
}

void edverify_free(edverify_key *k)
{
	(void)k;
}

int edverify_verify(const edverify_key *k, const uint8_t *msg, size_t len, const uint8_t sig[64])
{
	(void)k, (void)msg, (void)len, (void)sig;
	return EDVERIFY_E_NOMEM;
}

#else

typedef unsigned __int128 u128;

/* ---- the field ---- */

typedef struct fe {
	uint64_t v[5];
} fe;

#define M51 ((UINT64_C(1) << 51) - 1)

static const fe fe_d = { { 0x34dca135978a3ull, 0x1a8283b156ebdull, 0x5e7a26001c029ull, 0x739c663a03cbbull,
			   0x52036cee2b6ffull } };
static const fe fe_d2 = { { 0x69b9426b2f159ull, 0x35050762add7aull, 0x3cf44c0038052ull, 0x6738cc7407977ull,
			    0x2406d9dc56dffull } };
static const fe fe_sqrtm1 = { { 0x61b274a0ea0b0ull, 0x0d5a5fc8f189dull, 0x7ef5e9cbd0c60ull, 0x78595a6804c9eull,
				0x2b8324804fc1dull } };

static void fe_0(fe *h)
{
	memset(h, 0, sizeof(*h));
}

static void fe_1(fe *h)
{
	fe_0(h);
	h->v[0] = 1;
}

/* limbs below 2^51, but limb 0 below 2^51 + 2^18 */
static void fe_carry(fe *h)
{
	uint64_t c;

	c = h->v[0] >> 51, h->v[0] &= M51, h->v[1] += c;
	c = h->v[1] >> 51, h->v[1] &= M51, h->v[2] += c;
	c = h->v[2] >> 51, h->v[2] &= M51, h->v[3] += c;
	c = h->v[3] >> 51, h->v[3] &= M51, h->v[4] += c;
	c = h->v[4] >> 51, h->v[4] &= M51, h->v[0] += 19 * c;
}

static void fe_add(fe *h, const fe *f, const fe *g)
{
	for (int i = 0; i < 5; i++)
		h->v[i] = f->v[i] + g->v[i];
	fe_carry(h);
}

/* f + 2p - g: g's limbs are below 2^51 + 2^18 (carried), below 2p's */
static void fe_sub(fe *h, const fe *f, const fe *g)
{
	h->v[0] = f->v[0] + 0xfffffffffffdaull - g->v[0];
	for (int i = 1; i < 5; i++)
		h->v[i] = f->v[i] + 0xffffffffffffeull - g->v[i];
	fe_carry(h);
}

static void fe_neg(fe *h, const fe *f)
{
	fe z;

	fe_0(&z);
	fe_sub(h, &z, f);
}

static void fe_mul(fe *h, const fe *f, const fe *g)
{
	const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
	const uint64_t g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3], g4 = g->v[4];
	const uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
	u128 r0, r1, r2, r3, r4;
	uint64_t c;

	r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 + (u128)f4 * g1_19;
	r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 + (u128)f4 * g2_19;
	r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 + (u128)f4 * g3_19;
	r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 + (u128)f4 * g4_19;
	r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
	r1 += (uint64_t)(r0 >> 51);
	h->v[0] = (uint64_t)r0 & M51;
	r2 += (uint64_t)(r1 >> 51);
	h->v[1] = (uint64_t)r1 & M51;
	r3 += (uint64_t)(r2 >> 51);
	h->v[2] = (uint64_t)r2 & M51;
	r4 += (uint64_t)(r3 >> 51);
	h->v[3] = (uint64_t)r3 & M51;
	c = (uint64_t)(r4 >> 51);
	h->v[4] = (uint64_t)r4 & M51;
	h->v[0] += 19 * c;
	c = h->v[0] >> 51, h->v[0] &= M51, h->v[1] += c;
}

static void fe_sq(fe *h, const fe *f)
{
	fe_mul(h, f, f);
}

static void fe_sqn(fe *h, const fe *f, int n)
{
	fe_sq(h, f);
	while (--n > 0)
		fe_sq(h, h);
}

static void fe_frombytes(fe *h, const uint8_t s[32])
{
	uint64_t w[4];

	for (int i = 0; i < 4; i++) {
		w[i] = 0;
		for (int j = 7; j >= 0; j--)
			w[i] = w[i] << 8 | s[8 * i + j];
	}
	h->v[0] = w[0] & M51;
	h->v[1] = (w[0] >> 51 | w[1] << 13) & M51;
	h->v[2] = (w[1] >> 38 | w[2] << 26) & M51;
	h->v[3] = (w[2] >> 25 | w[3] << 39) & M51;
	h->v[4] = (w[3] >> 12) & M51; /* bit 255 (the sign of x in a point) dropped */
}

/* The canonical encoding: the value reduced below p. */
static void fe_tobytes(uint8_t s[32], const fe *f)
{
	fe h = *f;
	uint64_t q, w[4];

	fe_carry(&h);
	fe_carry(&h);
	/* h < 2^255 + 2^18 now; q = 1 iff h >= p */
	q = (h.v[0] + 19) >> 51;
	q = (h.v[1] + q) >> 51;
	q = (h.v[2] + q) >> 51;
	q = (h.v[3] + q) >> 51;
	q = (h.v[4] + q) >> 51;
	h.v[0] += 19 * q;
	h.v[1] += h.v[0] >> 51, h.v[0] &= M51;
	h.v[2] += h.v[1] >> 51, h.v[1] &= M51;
	h.v[3] += h.v[2] >> 51, h.v[2] &= M51;
	h.v[4] += h.v[3] >> 51, h.v[3] &= M51;
	h.v[4] &= M51; /* drops 2^255, i.e. subtracts p with the 19 added above */
	w[0] = h.v[0] | h.v[1] << 51;
	w[1] = h.v[1] >> 13 | h.v[2] << 38;
	w[2] = h.v[2] >> 26 | h.v[3] << 25;
	w[3] = h.v[3] >> 39 | h.v[4] << 12;
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 8; j++)
			s[8 * i + j] = (uint8_t)(w[i] >> (8 * j));
}

static bool fe_iszero(const fe *f)
{
	uint8_t s[32], acc = 0;

	fe_tobytes(s, f);
	for (int i = 0; i < 32; i++)
		acc |= s[i];
	return acc == 0;
}

static bool fe_isneg(const fe *f)
{
	uint8_t s[32];

	fe_tobytes(s, f);
	return s[0] & 1;
}

static bool fe_eq(const fe *f, const fe *g)
{
	fe t;

	fe_sub(&t, f, g);
	return fe_iszero(&t);
}

/* z^(2^250 - 1) and z^11, shared by the inversion and the square root (ref10's addition chain) */
static void fe_pow250(fe *t250, fe *z11, const fe *z)
{
	fe t0, t1, t2, t3;

	fe_sq(&t0, z);          /* 2 */
	fe_sqn(&t1, &t0, 2);    /* 8 */
	fe_mul(&t1, z, &t1);    /* 9 */
	fe_mul(z11, &t0, &t1);  /* 11 */
	fe_sq(&t2, z11);        /* 22 */
	fe_mul(&t1, &t1, &t2);  /* 2^5 - 1 */
	fe_sqn(&t2, &t1, 5);
	fe_mul(&t1, &t2, &t1);  /* 2^10 - 1 */
	fe_sqn(&t2, &t1, 10);
	fe_mul(&t2, &t2, &t1);  /* 2^20 - 1 */
	fe_sqn(&t3, &t2, 20);
	fe_mul(&t2, &t3, &t2);  /* 2^40 - 1 */
	fe_sqn(&t2, &t2, 10);
	fe_mul(&t1, &t2, &t1);  /* 2^50 - 1 */
	fe_sqn(&t2, &t1, 50);
	fe_mul(&t2, &t2, &t1);  /* 2^100 - 1 */
	fe_sqn(&t3, &t2, 100);
	fe_mul(&t2, &t3, &t2);  /* 2^200 - 1 */
	fe_sqn(&t2, &t2, 50);
	fe_mul(t250, &t2, &t1); /* 2^250 - 1 */
}

static void fe_invert(fe *h, const fe *z)
{
	fe t, z11;

	fe_pow250(&t, &z11, z);
	fe_sqn(&t, &t, 5);     /* 2^255 - 32 */
	fe_mul(h, &t, &z11);   /* 2^255 - 21 = p - 2 */
}

static void fe_pow22523(fe *h, const fe *z)
{
	fe t, z11;

	fe_pow250(&t, &z11, z);
	fe_sqn(&t, &t, 2);     /* 2^252 - 4 */
	fe_mul(h, &t, z);      /* 2^252 - 3 = (p - 5) / 8 */
}

/* ---- the group ---- */

typedef struct ge_p3 {
	fe X, Y, Z, T;
} ge_p3;
typedef struct ge_p1p1 {
	fe X, Y, Z, T;
} ge_p1p1;
typedef struct ge_precomp {
	fe yplusx, yminusx, xy2d;
} ge_precomp;
typedef struct ge_cached {
	fe YplusX, YminusX, Z, T2d;
} ge_cached;

#define TABLE_ROWS 64
#define TABLE_COLS 8
struct edverify_key {
	ge_precomp t[TABLE_ROWS][TABLE_COLS]; /* t[i][j-1] = j * 16^i * (-A) */
	uint8_t pub[32];                      /* A's encoding, hashed into k */
};

static ge_precomp base_table[TABLE_ROWS][TABLE_COLS]; /* j * 16^i * B */
static bool base_ok;
static pthread_once_t base_once = PTHREAD_ONCE_INIT;
static BIGNUM *order_l; /* L, for the reduction of k */

/* Per verifying thread, the BN_CTX of the reduction mod L, made on its first verification and freed at thread
 * exit, so that a verification allocates nothing. */
static pthread_key_t bn_key;
static bool bn_key_ok;
static _Thread_local BN_CTX *bn_tls;

static void bn_tls_free(void *p)
{
	BN_CTX_free(p);
	bn_tls = NULL;
}

static void p3_0(ge_p3 *h)
{
	fe_0(&h->X);
	fe_1(&h->Y);
	fe_1(&h->Z);
	fe_0(&h->T);
}

static void p1p1_to_p3(ge_p3 *r, const ge_p1p1 *p)
{
	fe_mul(&r->X, &p->X, &p->T);
	fe_mul(&r->Y, &p->Y, &p->Z);
	fe_mul(&r->Z, &p->Z, &p->T);
	fe_mul(&r->T, &p->X, &p->Y);
}

static void p3_to_cached(ge_cached *r, const ge_p3 *p)
{
	fe_add(&r->YplusX, &p->Y, &p->X);
	fe_sub(&r->YminusX, &p->Y, &p->X);
	r->Z = p->Z;
	fe_mul(&r->T2d, &p->T, &fe_d2);
}

/* r = p + q */
static void ge_add(ge_p1p1 *r, const ge_p3 *p, const ge_cached *q)
{
	fe t0;

	fe_add(&r->X, &p->Y, &p->X);
	fe_sub(&r->Y, &p->Y, &p->X);
	fe_mul(&r->Z, &r->X, &q->YplusX);
	fe_mul(&r->Y, &r->Y, &q->YminusX);
	fe_mul(&r->T, &q->T2d, &p->T);
	fe_mul(&r->X, &p->Z, &q->Z);
	fe_add(&t0, &r->X, &r->X);
	fe_sub(&r->X, &r->Z, &r->Y);
	fe_add(&r->Y, &r->Z, &r->Y);
	fe_add(&r->Z, &t0, &r->T);
	fe_sub(&r->T, &t0, &r->T);
}

/* r = p + q (sub: p - q) for an affine table entry q */
static void ge_madd(ge_p1p1 *r, const ge_p3 *p, const ge_precomp *q, bool sub)
{
	fe t0;

	fe_add(&r->X, &p->Y, &p->X);
	fe_sub(&r->Y, &p->Y, &p->X);
	fe_mul(&r->Z, &r->X, sub ? &q->yminusx : &q->yplusx);
	fe_mul(&r->Y, &r->Y, sub ? &q->yplusx : &q->yminusx);
	fe_mul(&r->T, &q->xy2d, &p->T);
	fe_add(&t0, &p->Z, &p->Z);
	fe_sub(&r->X, &r->Z, &r->Y);
	fe_add(&r->Y, &r->Z, &r->Y);
	if (sub) {
		fe_sub(&r->Z, &t0, &r->T);
		fe_add(&r->T, &t0, &r->T);
	} else {
		fe_add(&r->Z, &t0, &r->T);
		fe_sub(&r->T, &t0, &r->T);
	}
}

static void p3_tobytes(uint8_t s[32], const ge_p3 *h)
{
	fe recip, x, y;

	fe_invert(&recip, &h->Z);
	fe_mul(&x, &h->X, &recip);
	fe_mul(&y, &h->Y, &recip);
	fe_tobytes(s, &y);
	s[31] ^= (uint8_t)(fe_isneg(&x) << 7);
}

/* RFC 8032 §5.1.3 decoding, strict: 0, EDVERIFY_E_ARG (not on the curve) or EDVERIFY_E_UNAVAILABLE (an encoding
 * OpenSSL takes leniently: y >= p, or x = 0 with the sign bit set). */
static int p3_frombytes(ge_p3 *h, const uint8_t s[32])
{
	fe u, v, v3, vxx, t;
	uint8_t back[32];

	fe_frombytes(&h->Y, s);
	fe_tobytes(back, &h->Y);
	back[31] |= s[31] & 0x80;
	if (memcmp(back, s, 32) != 0)
		return EDVERIFY_E_UNAVAILABLE;
	fe_1(&h->Z);
	fe_sq(&u, &h->Y);
	fe_mul(&v, &u, &fe_d);
	fe_sub(&u, &u, &h->Z); /* y^2 - 1 */
	fe_add(&v, &v, &h->Z); /* d y^2 + 1 */
	fe_sq(&v3, &v);
	fe_mul(&v3, &v3, &v);  /* v^3 */
	fe_sq(&h->X, &v3);
	fe_mul(&h->X, &h->X, &v);
	fe_mul(&h->X, &h->X, &u); /* u v^7 */
	fe_pow22523(&h->X, &h->X);
	fe_mul(&h->X, &h->X, &v3);
	fe_mul(&h->X, &h->X, &u); /* u v^3 (u v^7)^((p-5)/8) */
	fe_sq(&vxx, &h->X);
	fe_mul(&vxx, &vxx, &v);
	if (!fe_eq(&vxx, &u)) {
		fe_neg(&t, &u);
		if (!fe_eq(&vxx, &t))
			return EDVERIFY_E_ARG;
		fe_mul(&h->X, &h->X, &fe_sqrtm1);
	}
	if (fe_iszero(&h->X) && (s[31] >> 7))
		return EDVERIFY_E_UNAVAILABLE;
	if (fe_isneg(&h->X) != (s[31] >> 7))
		fe_neg(&h->X, &h->X);
	fe_mul(&h->T, &h->X, &h->Y);
	return 0;
}

/* t[i][j-1] = j * 16^i * P, affine. */
static void table_build(ge_precomp t[TABLE_ROWS][TABLE_COLS], const ge_p3 *p)
{
	ge_p3 row = *p, acc;
	ge_cached c;
	ge_p1p1 r;

	for (int i = 0; i < TABLE_ROWS; i++) {
		p3_to_cached(&c, &row);
		acc = row;
		for (int j = 0; j < TABLE_COLS; j++) {
			fe recip, x, y;

			if (j > 0) {
				ge_add(&r, &acc, &c);
				p1p1_to_p3(&acc, &r);
			}
			fe_invert(&recip, &acc.Z);
			fe_mul(&x, &acc.X, &recip);
			fe_mul(&y, &acc.Y, &recip);
			fe_add(&t[i][j].yplusx, &y, &x);
			fe_sub(&t[i][j].yminusx, &y, &x);
			fe_mul(&t[i][j].xy2d, &x, &y);
			fe_mul(&t[i][j].xy2d, &t[i][j].xy2d, &fe_d2);
		}
		/* next row: 16 * row = 8 * row + 8 * row */
		p3_to_cached(&c, &acc);
		ge_add(&r, &acc, &c);
		p1p1_to_p3(&row, &r);
	}
}

static void base_init(void)
{
	static const uint8_t b[32] = { 0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
				       0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
				       0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66 };
	static const uint8_t l_be[32] = { 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					  0x14, 0xde, 0xf9, 0xde, 0xa2, 0xf7, 0x9c, 0xd6,
					  0x58, 0x12, 0x63, 0x1a, 0x5c, 0xf5, 0xd3, 0xed };
	ge_p3 B;

	bn_key_ok = pthread_key_create(&bn_key, bn_tls_free) == 0;
	if (p3_frombytes(&B, b) != 0 || (order_l = BN_bin2bn(l_be, 32, NULL)) == NULL)
		return;
	table_build(base_table, &B);
	base_ok = true;
}

/* 64 signed radix-16 digits in [-8, 8] of a 32-octet little-endian scalar below 2^253. */
static void recode(int8_t e[64], const uint8_t a[32])
{
	int carry = 0;

	for (int i = 0; i < 32; i++) {
		e[2 * i] = (int8_t)(a[i] & 15);
		e[2 * i + 1] = (int8_t)(a[i] >> 4);
	}
	for (int i = 0; i < 63; i++) {
		e[i] = (int8_t)(e[i] + carry);
		carry = (e[i] + 8) >> 4;
		e[i] = (int8_t)(e[i] - carry * 16);
	}
	e[63] = (int8_t)(e[63] + carry);
}

/* acc += sum of e[i] * table[i] */
static void add_digits(ge_p3 *acc, const ge_precomp *t, const int8_t e[64])
{
	ge_p1p1 r;

	for (int i = 0; i < 64; i++) {
		if (e[i] == 0)
			continue;
		ge_madd(&r, acc, &t[i * TABLE_COLS + (e[i] < 0 ? -e[i] : e[i]) - 1], e[i] < 0);
		p1p1_to_p3(acc, &r);
	}
}

int edverify_new(const uint8_t pub[32], edverify_key **out)
{
	edverify_key *k;
	ge_p3 A;
	int rc;

	pthread_once(&base_once, base_init);
	if (!base_ok)
		return EDVERIFY_E_NOMEM;
	rc = p3_frombytes(&A, pub);
	if (rc)
		return rc;
	/* the key's table holds multiples of -A: the verification computes [S]B + [k](-A) */
	fe_neg(&A.X, &A.X);
	fe_neg(&A.T, &A.T);
	if ((k = malloc(sizeof(*k))) == NULL)
		return EDVERIFY_E_NOMEM;
	table_build(k->t, &A);
	memcpy(k->pub, pub, 32);
	*out = k;
	return 0;
}

void edverify_free(edverify_key *k)
{
	free(k);
}

/* The group order L, little-endian. */
static const uint8_t order_le[32] = { 0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
				      0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10 };

/* s < L, both little-endian */
static bool below_order(const uint8_t s[32])
{
	for (int i = 31; i >= 0; i--)
		if (s[i] != order_le[i])
			return s[i] < order_le[i];
	return false;
}

int edverify_verify(const edverify_key *k, const uint8_t *msg, size_t len, const uint8_t sig[64])
{
	uint8_t h[64], kk[32], rcheck[32];
	int8_t es[64], ek[64];
	SHA512_CTX sh;
	BN_CTX *bc = bn_tls;
	bool own = false;
	BIGNUM *bn;
	ge_p3 acc;
	int rc = EDVERIFY_E_NOMEM;

	if (!below_order(sig + 32))
		return EDVERIFY_E_SIGNATURE;
	if (SHA512_Init(&sh) != 1 || SHA512_Update(&sh, sig, 32) != 1 || SHA512_Update(&sh, k->pub, 32) != 1 ||
	    SHA512_Update(&sh, msg, len) != 1 || SHA512_Final(h, &sh) != 1)
		return EDVERIFY_E_NOMEM;
	/* k = h mod L (h is 512 bits, little-endian) */
	if (bc == NULL) {
		if ((bc = BN_CTX_new()) == NULL)
			return EDVERIFY_E_NOMEM;
		if (bn_key_ok && pthread_setspecific(bn_key, bc) == 0)
			bn_tls = bc;
		else
			own = true;
	}
	BN_CTX_start(bc);
	if ((bn = BN_CTX_get(bc)) == NULL || BN_lebin2bn(h, 64, bn) == NULL || BN_nnmod(bn, bn, order_l, bc) != 1 ||
	    BN_bn2lebinpad(bn, kk, 32) != 32)
		goto out;
	recode(es, sig + 32);
	recode(ek, kk);
	p3_0(&acc);
	add_digits(&acc, &base_table[0][0], es);
	add_digits(&acc, &k->t[0][0], ek);
	p3_tobytes(rcheck, &acc);
	rc = CRYPTO_memcmp(rcheck, sig, 32) == 0 ? 0 : EDVERIFY_E_SIGNATURE;
out:
	BN_CTX_end(bc);
	if (own)
		BN_CTX_free(bc);
	return rc;
}

#endif
