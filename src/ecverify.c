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
 * spares the field inversion of the affine conversion. x(R) mod n == r means x(R) is r or r+n (p < 2n on these
 * curves); r+n is checked when r+n < p, which happens only when r < p-n.
 */

/* EC_GROUP_precompute_mult() and EC_POINT_get_Jprojective_coordinates_GFp() are deprecated in OpenSSL 3.0 with
 * no replacement: no other API precomputes multiples of a chosen point or exposes Jacobian coordinates. Both
 * are present in every OpenSSL 3.x; a build without the deprecated API gets ECVERIFY_E_UNAVAILABLE. */
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

struct ecverify_key {
	int curve; /* CURVE_* */
	int mode;  /* MODE_* */
	EC_GROUP *g;  /* the named curve; MODE_WNAF: with a table for G */
	EC_GROUP *gq; /* the same curve with generator Q and a table for it */
	EC_POINT *q;  /* the public key (MODE_WNAF: the zero-scalar point of the u1*G product) */
	BIGNUM *p_minus_n; /* r < p - n: x(R) may also be r + n */
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
	*out = k;
	k = NULL;
	rc = 0;
out:
	BN_CTX_free(bc);
	ecverify_free(k);
	return rc;
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
	if (!BN_mod_inverse(w, s, n, bc) || !BN_mod_mul(u1, e, w, n, bc) || !BN_mod_mul(u2, r, w, n, bc))
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
