/*
 * ecverify.c — ECDSA verification with a precomputed table for the public key; see ecverify.h for why.
 *
 * Design: two groups per key. g is the named curve (its generator G has OpenSSL's built-in table on P-256 and
 * P-521); gq is a copy whose generator is the public key Q, with EC_GROUP_precompute_mult() run once. A
 * verification multiplies u1*G in g and u2*Q in gq, each a fixed-base multiplication, and adds the two.
 * OpenSSL's generic curve code (P-384 in OpenSSL 3.0, and every curve where no assembly is built) computes a
 * lone k*generator with a constant-time ladder that ignores any table, so there (mode WNAF) each product is
 * asked for with one extra point times zero, which takes the table-using wNAF path instead; g then gets its
 * own table for G as well.
 *
 * x(R) is compared without leaving Jacobian coordinates: x = X/Z^2, so x == v iff X == v*Z^2 (mod p), which
 * spares the field inversion of the affine conversion (~4 us of ~20 on P-256). x(R) mod n == r means x(R) is r
 * or r+n (p < 2n on these curves); r+n is checked when r+n < p, which happens only when r < p-n.
 *
 * s^-1 mod n uses batched divsteps (below) instead of BN_mod_inverse: 1.2 us instead of 8-12 us on P-256.
 *
 * Measured on P-256 (2-core x86-64, OpenSSL 3.0): u1*G 7.8 us, u2*Q 8.3 us (49 us without the table), add
 * 1 us, inverse 1.2 us, the rest under 2 us: ~20 us against EVP_PKEY_verify's ~70 us.
 */

/* EC_GROUP_precompute_mult(), EC_POINT_get_Jprojective_coordinates_GFp() and the EC_GFp_*_method() getters are
 * deprecated in OpenSSL 3.0 with no replacement: no other API precomputes multiples of a chosen point, exposes
 * Jacobian coordinates or tells the generic curve code apart. All are present in every OpenSSL 3.x; a build
 * without the deprecated API gets ECVERIFY_E_UNAVAILABLE and callers stay on EVP. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "ecverify.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

const char *ecverify_strerror(int err)
{
	switch (err) {
	case ECVERIFY_OK: return "ok";
	case ECVERIFY_E_SIGNATURE: return "invalid signature";
	case ECVERIFY_E_ARG: return "unsupported key or input too long";
	case ECVERIFY_E_NOMEM: return "out of memory";
	case ECVERIFY_E_UNAVAILABLE: return "precomputed ECDSA not available in this OpenSSL";
	}
	return "unknown ecverify error";
}

#ifdef OPENSSL_NO_DEPRECATED_3_0

int ecverify_new(const struct evp_pkey_st *pkey, ecverify_key **out)
{
	(void)pkey;
	(void)out;
	return ECVERIFY_E_UNAVAILABLE;
}

void ecverify_free(ecverify_key *k)
{
	(void)k;
}

int ecverify_verify(const ecverify_key *k, const uint8_t *hash, size_t hash_len, const uint8_t *r, size_t r_len,
		    const uint8_t *s, size_t s_len)
{
	(void)k, (void)hash, (void)hash_len, (void)r, (void)r_len, (void)s, (void)s_len;
	return ECVERIFY_E_UNAVAILABLE;
}

unsigned ecverify_bits(const ecverify_key *k)
{
	(void)k;
	return 0;
}

#else

enum { CURVE_P256, CURVE_P384, CURVE_P521, NCURVES };
enum { MODE_SEPARATE, MODE_WNAF };

static const struct {
	const char *name;
	int nid;
	unsigned bits;
} curves[NCURVES] = {
	[CURVE_P256] = { "P-256", NID_X9_62_prime256v1, 256 },
	[CURVE_P384] = { "P-384", NID_secp384r1, 384 },
	[CURVE_P521] = { "P-521", NID_secp521r1, 521 },
};

/* ---- modular inverse mod the group order: Bernstein-Yang divsteps, variable time ----
 *
 * BN_mod_inverse costs ~12 us on a 256-bit order, a third of a verification. s is public (it is in the
 * signature), so a variable-time algorithm is fine: batches of 62 divsteps are run on the low 64 bits of f and
 * g alone (each step looks only at bit 0), giving a 2x2 matrix that is then applied to the full numbers. Numbers
 * are little-endian limbs of 62 bits, the top limb signed. (Bernstein, Yang: "Fast constant-time gcd computation
 * and modular inversion", 2019; the batching follows the paper's §11 and its public implementations.) */

#define INV_LIMBS 9 /* 9 x 62 = 558 bits: room for P-521's order and a sign */
#define M62 ((uint64_t)-1 >> 2)

typedef struct inv_mod {
	int nl;                  /* limbs in use: bits/62 + 1 */
	int64_t m[INV_LIMBS];    /* the modulus (odd) */
	uint64_t minv;           /* m^-1 mod 2^62 */
} inv_mod;

typedef struct inv_mat {
	int64_t u, v, q, r;
} inv_mat;

/* 62 divsteps on the low bits of f and g, starting at delta; the matrix that maps (f, g) to 2^62 times the new
 * (f, g). Each step: delta > 0 and g odd: (f, g) <- (g, (g - f)/2), delta <- 1 - delta; g odd:
 * g <- (g + f)/2, delta <- 1 + delta; g even: g <- g/2, delta <- 1 + delta. |u|+|v| and |q|+|r| stay <= 2^62. */
static int64_t divsteps62(int64_t delta, uint64_t f, uint64_t g, inv_mat *t)
{
	uint64_t u = 1, v = 0, q = 0, r = 1; /* two's complement in uint64_t: no signed overflow, no UB shifts */
	int left = 62;

	while (left > 0) {
		int z = g ? __builtin_ctzll(g) : left;

		if (z > left)
			z = left;
		/* the even steps at once: g halves, the f row doubles */
		g >>= z;
		u <<= z;
		v <<= z;
		delta += z;
		left -= z;
		if (left == 0)
			break;
		/* g is odd */
		if (delta > 0) {
			uint64_t tf = f, tu = u, tv = v;

			f = g;
			g = (g - tf) >> 1;
			u = q << 1;
			v = r << 1;
			q -= tu;
			r -= tv;
			delta = 1 - delta;
		} else {
			g = (g + f) >> 1;
			q += u;
			r += v;
			u <<= 1;
			v <<= 1;
			delta = 1 + delta;
		}
		left--;
	}
	t->u = (int64_t)u;
	t->v = (int64_t)v;
	t->q = (int64_t)q;
	t->r = (int64_t)r;
	return delta;
}

/* (f, g) <- (u f + v g, q f + r g) / 2^62, exact. */
static void update_fg(const inv_mod *md, int64_t *f, int64_t *g, const inv_mat *t)
{
	__int128 cf = (__int128)t->u * f[0] + (__int128)t->v * g[0];
	__int128 cg = (__int128)t->q * f[0] + (__int128)t->r * g[0];

	cf >>= 62;
	cg >>= 62;
	for (int i = 1; i < md->nl; i++) {
		cf += (__int128)t->u * f[i] + (__int128)t->v * g[i];
		cg += (__int128)t->q * f[i] + (__int128)t->r * g[i];
		f[i - 1] = (int64_t)((uint64_t)cf & M62);
		g[i - 1] = (int64_t)((uint64_t)cg & M62);
		cf >>= 62;
		cg >>= 62;
	}
	f[md->nl - 1] = (int64_t)cf;
	g[md->nl - 1] = (int64_t)cg;
}

/* x += sign * m, normalising limbs; sign is +1 or -1. */
static void add_m(const inv_mod *md, int64_t *x, int sign)
{
	__int128 c = 0;

	for (int i = 0; i < md->nl; i++) {
		c += (__int128)x[i] + (sign > 0 ? (__int128)md->m[i] : -(__int128)md->m[i]);
		if (i < md->nl - 1) {
			x[i] = (int64_t)((uint64_t)c & M62);
			c >>= 62;
		} else {
			x[i] = (int64_t)c;
		}
	}
}

/* x >= m, both normalised (x's top limb may be negative: then no) */
static bool ge_m(const inv_mod *md, const int64_t *x)
{
	for (int i = md->nl - 1; i >= 0; i--)
		if (x[i] != md->m[i])
			return x[i] > md->m[i];
	return true;
}

/* (d, e) <- (u d + v e, q d + r e) / 2^62 mod m, kept in [0, m). */
static void update_de(const inv_mod *md, int64_t *d, int64_t *e, const inv_mat *t)
{
	/* add the multiple of m that clears the low 62 bits: then the division is exact */
	uint64_t kd = ((uint64_t)0 - ((uint64_t)t->u * (uint64_t)d[0] + (uint64_t)t->v * (uint64_t)e[0])) * md->minv & M62;
	uint64_t ke = ((uint64_t)0 - ((uint64_t)t->q * (uint64_t)d[0] + (uint64_t)t->r * (uint64_t)e[0])) * md->minv & M62;
	__int128 cd = (__int128)t->u * d[0] + (__int128)t->v * e[0] + (__int128)kd * md->m[0];
	__int128 ce = (__int128)t->q * d[0] + (__int128)t->r * e[0] + (__int128)ke * md->m[0];

	cd >>= 62;
	ce >>= 62;
	for (int i = 1; i < md->nl; i++) {
		cd += (__int128)t->u * d[i] + (__int128)t->v * e[i] + (__int128)kd * md->m[i];
		ce += (__int128)t->q * d[i] + (__int128)t->r * e[i] + (__int128)ke * md->m[i];
		d[i - 1] = (int64_t)((uint64_t)cd & M62);
		e[i - 1] = (int64_t)((uint64_t)ce & M62);
		cd >>= 62;
		ce >>= 62;
	}
	d[md->nl - 1] = (int64_t)cd;
	e[md->nl - 1] = (int64_t)ce;
	/* from [0, m) the result lies in (-m, 2m): one correction */
	if (d[md->nl - 1] < 0)
		add_m(md, d, 1);
	else if (ge_m(md, d))
		add_m(md, d, -1);
	if (e[md->nl - 1] < 0)
		add_m(md, e, 1);
	else if (ge_m(md, e))
		add_m(md, e, -1);
}

/* Big-endian bytes (value < 2^(62 nl - 1)) to limbs, and back into exactly len bytes. */
static void limbs_from_bytes(int nl, const uint8_t *p, size_t len, int64_t *x)
{
	memset(x, 0, (size_t)nl * sizeof(*x));
	for (size_t i = 0; i < len; i++) {
		size_t bit = (len - 1 - i) * 8; /* position of this byte's lowest bit */
		uint64_t b = p[i];

		x[bit / 62] |= (int64_t)((b << (bit % 62)) & M62);
		if (bit % 62 > 54)
			x[bit / 62 + 1] |= (int64_t)(b >> (62 - bit % 62));
	}
}

static void limbs_to_bytes(const int64_t *x, uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		size_t bit = (len - 1 - i) * 8;
		uint64_t b = (uint64_t)x[bit / 62] >> (bit % 62);

		if (bit % 62 > 54)
			b |= (uint64_t)x[bit / 62 + 1] << (62 - bit % 62);
		p[i] = (uint8_t)b;
	}
}

static bool inv_mod_init(inv_mod *md, const BIGNUM *m)
{
	uint8_t b[ECVERIFY_MAX_SCALAR];
	int n = BN_num_bytes(m);
	uint64_t inv;

	if (!BN_is_odd(m) || n > (int)sizeof(b) || BN_bn2binpad(m, b, n) != n)
		return false;
	md->nl = BN_num_bits(m) / 62 + 1;
	if (md->nl > INV_LIMBS)
		return false;
	limbs_from_bytes(md->nl, b, (size_t)n, md->m);
	/* Newton: each round doubles the correct low bits (3 to start: any odd m is its own inverse mod 8) */
	inv = (uint64_t)md->m[0];
	for (int i = 0; i < 5; i++)
		inv *= 2 - (uint64_t)md->m[0] * inv;
	md->minv = inv & M62;
	return true;
}

/* out = a^-1 mod m for 0 < a < m given as len big-endian bytes; out gets len bytes. False when no inverse was
 * found (a and m not coprime), which a prime m never gives. */
static bool inv_mod_run(const inv_mod *md, const uint8_t *a, size_t len, uint8_t *out)
{
	int64_t f[INV_LIMBS], g[INV_LIMBS], d[INV_LIMBS] = { 0 }, e[INV_LIMBS] = { 0 };
	int64_t delta = 1;
	int nl = md->nl, i;

	memcpy(f, md->m, sizeof(f));
	limbs_from_bytes(nl, a, len, g);
	e[0] = 1;
	/* bounded so that a bug cannot loop: the proven worst case is under 3 divsteps per bit (Bernstein-Yang
	 * theorem 11.2), i.e. under 26 batches for 521 bits; typical inputs take half that */
	for (int round = 0; round < 4 * nl + 40; round++) {
		inv_mat t;
		bool zero = true;

		delta = divsteps62(delta, (uint64_t)f[0], (uint64_t)g[0], &t);
		update_fg(md, f, g, &t);
		update_de(md, d, e, &t);
		for (i = 0; i < nl; i++)
			if (g[i]) {
				zero = false;
				break;
			}
		if (!zero)
			continue;
		/* f = +-1: d is the inverse, or its negation */
		for (i = 1; i < nl; i++)
			if (f[i] != (f[0] == 1 ? 0 : i == nl - 1 ? -1 : (int64_t)M62))
				return false;
		if (f[0] == 1) {
			limbs_to_bytes(d, out, len);
			return true;
		}
		if (f[0] != (int64_t)M62)
			return false;
		/* -d mod m = m - d (d != 0 since a is invertible) */
		for (i = 0; i < nl; i++)
			d[i] = -d[i];
		add_m(md, d, 1);
		limbs_to_bytes(d, out, len);
		return true;
	}
	return false;
}

struct ecverify_key {
	int curve; /* CURVE_* */
	int mode;  /* MODE_* */
	EC_GROUP *g;  /* the named curve; MODE_WNAF: with a table for G */
	EC_GROUP *gq; /* the same curve with generator Q and a table for it */
	EC_POINT *q;  /* the public key (MODE_WNAF: the zero-scalar point of the u1*G product) */
	BIGNUM *p_minus_n; /* r < p - n: x(R) may also be r + n */
	size_t olen;       /* the order's length in bytes */
	bool fast_inv;     /* ninv usable (else BN_mod_inverse) */
	inv_mod ninv;      /* the order, for the divsteps inverse */
};

/* Per-thread scratch: one BN_CTX (its BIGNUMs keep their storage between calls) and three points per curve.
 * A point records only its curve, not the EC_GROUP it was made with, so one set serves every key of that
 * curve and outlives any of them. */
struct ecv_tls {
	BN_CTX *bc;
	EC_POINT *pt[NCURVES][3];
};
static pthread_key_t tls_key;
static bool tls_ok;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Thread_local struct ecv_tls *tls;

static void tls_free(void *p)
{
	struct ecv_tls *t = p;

	for (size_t c = 0; c < NCURVES; c++)
		for (size_t i = 0; i < 3; i++)
			EC_POINT_free(t->pt[c][i]);
	BN_CTX_free(t->bc);
	free(t);
	tls = NULL;
}

static void tls_init(void)
{
	tls_ok = pthread_key_create(&tls_key, tls_free) == 0;
}

/* This thread's scratch with the three points of k's curve, or NULL on failure. */
static struct ecv_tls *scratch(const ecverify_key *k)
{
	struct ecv_tls *t = tls;

	if (!t) {
		pthread_once(&tls_once, tls_init);
		if (!tls_ok || !(t = calloc(1, sizeof(*t))))
			return NULL;
		if (!(t->bc = BN_CTX_new()) || pthread_setspecific(tls_key, t) != 0) {
			BN_CTX_free(t->bc);
			free(t);
			return NULL;
		}
		tls = t;
	}
	for (size_t i = 0; i < 3; i++)
		if (!t->pt[k->curve][i] && !(t->pt[k->curve][i] = EC_POINT_new(k->g)))
			return NULL;
	return t;
}

/* Generic curve code (no specialised point multiplication): the ladder trap described at the top applies. */
static bool generic_method(const EC_GROUP *g)
{
	const EC_METHOD *m = EC_GROUP_method_of(g);

	return m == EC_GFp_mont_method() || m == EC_GFp_nist_method() || m == EC_GFp_simple_method();
}

void ecverify_free(ecverify_key *k)
{
	if (!k)
		return;
	EC_POINT_free(k->q);
	EC_GROUP_free(k->gq);
	EC_GROUP_free(k->g);
	BN_free(k->p_minus_n);
	free(k);
}

int ecverify_new(const struct evp_pkey_st *pkey, ecverify_key **out)
{
	char name[32];
	uint8_t pub[1 + 2 * ECVERIFY_MAX_SCALAR];
	size_t name_len = 0, pub_len = 0;
	ecverify_key *k = NULL;
	BN_CTX *bc = NULL;
	int c, rc = ECVERIFY_E_ARG;

	if (!pkey || !EVP_PKEY_is_a(pkey, "EC") ||
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), &name_len) != 1 ||
	    EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &pub_len) != 1)
		goto out;
	for (c = 0; c < NCURVES; c++)
		if (OBJ_txt2nid(name) == curves[c].nid || strcmp(name, curves[c].name) == 0)
			break;
	if (c == NCURVES)
		goto out;
	rc = ECVERIFY_E_NOMEM;
	if (!(k = calloc(1, sizeof(*k))) || !(bc = BN_CTX_new()))
		goto out;
	k->curve = c;
	k->g = EC_GROUP_new_by_curve_name(curves[c].nid);
	if (!k->g || !(k->q = EC_POINT_new(k->g)))
		goto out;
	if (EC_POINT_oct2point(k->g, k->q, pub, pub_len, bc) != 1 || EC_POINT_is_at_infinity(k->g, k->q) ||
	    EC_POINT_is_on_curve(k->g, k->q, bc) != 1) {
		rc = ECVERIFY_E_ARG;
		goto out;
	}
	k->mode = generic_method(k->g) ? MODE_WNAF : MODE_SEPARATE;
	/* prime-order curves: every point but infinity has order n, so Q generates the same group as G */
	if (!(k->gq = EC_GROUP_dup(k->g)) ||
	    EC_GROUP_set_generator(k->gq, k->q, EC_GROUP_get0_order(k->g), BN_value_one()) != 1 ||
	    EC_GROUP_precompute_mult(k->gq, bc) != 1)
		goto out;
	if (k->mode == MODE_WNAF && EC_GROUP_precompute_mult(k->g, bc) != 1)
		goto out;
	if (!(k->p_minus_n = BN_new()) ||
	    !BN_sub(k->p_minus_n, EC_GROUP_get0_field(k->g), EC_GROUP_get0_order(k->g)))
		goto out;
	k->olen = (size_t)BN_num_bytes(EC_GROUP_get0_order(k->g));
	k->fast_inv = inv_mod_init(&k->ninv, EC_GROUP_get0_order(k->g));
	*out = k;
	k = NULL;
	rc = 0;
out:
	BN_CTX_free(bc);
	ecverify_free(k);
	return rc;
}

/* w = s^-1 mod n, 0 < s < n. The divsteps inverse when the key has it, checked by one multiplication (a bug
 * there must never change a verdict: it falls back to BN_mod_inverse, and aborts fuzzing builds). */
static bool invert(const ecverify_key *k, const BIGNUM *s, BIGNUM *w, BN_CTX *bc)
{
	const BIGNUM *n = EC_GROUP_get0_order(k->g);
	uint8_t sb[ECVERIFY_MAX_SCALAR], wb[ECVERIFY_MAX_SCALAR];

	if (k->fast_inv && BN_bn2binpad(s, sb, (int)k->olen) == (int)k->olen &&
	    inv_mod_run(&k->ninv, sb, k->olen, wb) && BN_bin2bn(wb, (int)k->olen, w)) {
		BIGNUM *c = BN_CTX_get(bc);

		if (c && BN_mod_mul(c, s, w, n, bc) && BN_is_one(c))
			return true;
#ifdef KOS_FUZZING
		abort();
#endif
	}
	return BN_mod_inverse(w, s, n, bc) != NULL;
}

unsigned ecverify_bits(const ecverify_key *k)
{
	return curves[k->curve].bits;
}

int ecverify_verify(const ecverify_key *k, const uint8_t *hash, size_t hash_len, const uint8_t *r_, size_t r_len,
		    const uint8_t *s_, size_t s_len)
{
	const BIGNUM *n = EC_GROUP_get0_order(k->g), *p = EC_GROUP_get0_field(k->g);
	struct ecv_tls *t;
	BN_CTX *bc;
	BIGNUM *e, *r, *s, *w, *u1, *u2, *X, *Z, *v, *zero;
	EC_POINT *R1, *R2, *R;
	int nbits, rc = ECVERIFY_E_NOMEM;

	if (hash_len > ECVERIFY_MAX_HASH || r_len > ECVERIFY_MAX_SCALAR || s_len > ECVERIFY_MAX_SCALAR)
		return ECVERIFY_E_ARG;
	t = scratch(k);
	if (!t)
		return ECVERIFY_E_NOMEM;
	bc = t->bc;
	R1 = t->pt[k->curve][0];
	R2 = t->pt[k->curve][1];
	R = t->pt[k->curve][2];
	BN_CTX_start(bc);
	e = BN_CTX_get(bc);
	r = BN_CTX_get(bc);
	s = BN_CTX_get(bc);
	w = BN_CTX_get(bc);
	u1 = BN_CTX_get(bc);
	u2 = BN_CTX_get(bc);
	X = BN_CTX_get(bc);
	Z = BN_CTX_get(bc);
	v = BN_CTX_get(bc);
	zero = BN_CTX_get(bc);
	if (!zero || !BN_bin2bn(r_, (int)r_len, r) || !BN_bin2bn(s_, (int)s_len, s))
		goto out;
	rc = ECVERIFY_E_SIGNATURE;
	if (BN_is_zero(r) || BN_is_zero(s) || BN_cmp(r, n) >= 0 || BN_cmp(s, n) >= 0)
		goto out;
	rc = ECVERIFY_E_NOMEM;
	/* SEC1 4.1.4 step 5: the leftmost bits of the hash, as many as the order has */
	nbits = BN_num_bits(n);
	if (hash_len * 8 > (size_t)nbits)
		hash_len = ((size_t)nbits + 7) / 8;
	if (!BN_bin2bn(hash, (int)hash_len, e) || (hash_len * 8 > (size_t)nbits && !BN_rshift(e, e, 8 - (nbits & 7))))
		goto out;
	if (!invert(k, s, w, bc) || !BN_mod_mul(u1, e, w, n, bc) || !BN_mod_mul(u2, r, w, n, bc))
		goto out;
	if (k->mode == MODE_SEPARATE) {
		if (EC_POINT_mul(k->g, R1, u1, NULL, NULL, bc) != 1 || EC_POINT_mul(k->gq, R2, u2, NULL, NULL, bc) != 1)
			goto out;
	} else {
		BN_zero(zero);
		if (EC_POINT_mul(k->g, R1, u1, k->q, zero, bc) != 1 ||
		    EC_POINT_mul(k->gq, R2, u2, EC_GROUP_get0_generator(k->g), zero, bc) != 1)
			goto out;
	}
	if (EC_POINT_add(k->g, R, R1, R2, bc) != 1)
		goto out;
	rc = ECVERIFY_E_SIGNATURE;
	if (EC_POINT_is_at_infinity(k->g, R))
		goto out;
	rc = ECVERIFY_E_NOMEM;
	if (EC_POINT_get_Jprojective_coordinates_GFp(k->g, R, X, NULL, Z, bc) != 1)
		goto out;
	if (BN_cmp(X, p) >= 0 && !BN_nnmod(X, X, p, bc))
		goto out;
	if (!BN_mod_sqr(Z, Z, p, bc) || !BN_mod_mul(v, r, Z, p, bc))
		goto out;
	if (BN_cmp(v, X) == 0) {
		rc = 0;
		goto out;
	}
	if (BN_cmp(r, k->p_minus_n) < 0) {
		if (!BN_add(v, r, n) || !BN_mod_mul(v, v, Z, p, bc))
			goto out;
		if (BN_cmp(v, X) == 0) {
			rc = 0;
			goto out;
		}
	}
	rc = ECVERIFY_E_SIGNATURE;
out:
	BN_CTX_end(bc);
	return rc;
}

#endif
