/*
 * test_ecverify.c — the precomputed ECDSA verifier against OpenSSL's own EVP_PKEY_verify, on P-256, P-384 and
 * P-521: random valid signatures, a table of mutations (each names the verdict it expects, and EVP must give
 * the same), constructed edge cases no random signature reaches (x(R) between n and p, R at infinity, a hash
 * equal to the order, P-521's bit-level hash truncation), several threads on one key, and the jwks rules
 * (at most JWKS_EC_FAST_MAX prepared EC keys per set, every key still verifying tokens through jws_verify).
 *
 * The reference is "raw" ECDSA: EVP_PKEY_verify on a context with no digest set, which takes a hash of any
 * length and truncates it as SEC1 says, like ecverify_verify.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "ecverify.h"
#include "jose_test.h"
#include "jwks.h"
#include "jws.h"
#include "jwt.h"

typedef struct curve_fx {
	const char *name;  /* "P-256" … */
	int nid;
	size_t flen;       /* field and order size in bytes */
	size_t hlen;       /* the JWS hash for this curve */
	EVP_PKEY *k, *other;
	ecverify_key *v;
	EC_GROUP *g;
	const BIGNUM *n, *p;
} curve_fx;

static curve_fx curves[3] = {
	{ "P-256", NID_X9_62_prime256v1, 32, 32, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "P-384", NID_secp384r1, 48, 48, NULL, NULL, NULL, NULL, NULL, NULL },
	{ "P-521", NID_secp521r1, 66, 64, NULL, NULL, NULL, NULL, NULL, NULL },
};

static BN_CTX *bc;

/* A signature as two fixed-width big-endian integers (wider than flen when a mutation overflows). */
typedef struct sig_fx {
	uint8_t r[ECVERIFY_MAX_SCALAR], s[ECVERIFY_MAX_SCALAR];
	size_t rl, sl;
} sig_fx;

/* OpenSSL's verdict: 1 valid, 0 not. */
static int evp_verdict(EVP_PKEY *k, const uint8_t *h, size_t hl, const sig_fx *sg)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sg->r, (int)sg->rl, NULL), *s = BN_bin2bn(sg->s, (int)sg->sl, NULL);
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	unsigned char *der = NULL;
	int dl = 0, ok;

	if (!es || !r || !s || !c || ECDSA_SIG_set0(es, r, s) != 1 || (dl = i2d_ECDSA_SIG(es, &der)) <= 0 ||
	    EVP_PKEY_verify_init(c) != 1)
		fail_msg("evp verify setup");
	ok = EVP_PKEY_verify(c, der, (size_t)dl, h, hl) == 1;
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_PKEY_CTX_free(c);
	return ok;
}

/* Our verdict: 1 valid, 0 invalid; any other result fails the test. */
static int fast_verdict(const ecverify_key *v, const uint8_t *h, size_t hl, const sig_fx *sg)
{
	int rc = ecverify_verify(v, h, hl, sg->r, sg->rl, sg->s, sg->sl);

	if (rc != 0 && rc != ECVERIFY_E_SIGNATURE)
		fail_msg("ecverify_verify: %s", ecverify_strerror(rc));
	return rc == 0;
}

static void sign(EVP_PKEY *k, const uint8_t *h, size_t hl, size_t flen, sig_fx *out)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	unsigned char der[160];
	const unsigned char *pp = der;
	size_t dl = sizeof(der);
	ECDSA_SIG *es;

	if (!c || EVP_PKEY_sign_init(c) != 1 || EVP_PKEY_sign(c, der, &dl, h, hl) != 1)
		fail_msg("sign");
	EVP_PKEY_CTX_free(c);
	es = d2i_ECDSA_SIG(NULL, &pp, (long)dl);
	if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), out->r, (int)flen) != (int)flen ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), out->s, (int)flen) != (int)flen)
		fail_msg("sig to r||s");
	out->rl = out->sl = flen;
	ECDSA_SIG_free(es);
}

static void bn_out(const BIGNUM *b, uint8_t *o, size_t *ol, size_t flen)
{
	size_t w = (size_t)BN_num_bytes(b) > flen ? (size_t)BN_num_bytes(b) : flen;

	if (BN_bn2binpad(b, o, (int)w) != (int)w)
		fail_msg("bn2binpad");
	*ol = w;
}

/* EC public key on curve c from a point. */
static EVP_PKEY *pkey_from_point(const curve_fx *c, const EC_POINT *q)
{
	uint8_t pub[1 + 2 * 66];
	size_t pl = EC_POINT_point2oct(c->g, q, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), bc);
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pk = NULL;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)c->name, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, pl);
	params[2] = OSSL_PARAM_construct_end();
	if (!pl || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		fail_msg("pkey from point");
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

static int setup(void **state)
{
	(void)state;
	bc = BN_CTX_new();
	for (size_t i = 0; i < 3; i++) {
		curve_fx *c = &curves[i];

		c->k = tj_keygen(c->name);
		c->other = tj_keygen(c->name);
		c->g = EC_GROUP_new_by_curve_name(c->nid);
		if (!bc || !c->k || !c->other || !c->g || ecverify_new(c->k, &c->v) != 0)
			return -1;
		c->n = EC_GROUP_get0_order(c->g);
		c->p = EC_GROUP_get0_field(c->g);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < 3; i++) {
		ecverify_free(curves[i].v);
		EVP_PKEY_free(curves[i].k);
		EVP_PKEY_free(curves[i].other);
		EC_GROUP_free(curves[i].g);
	}
	BN_CTX_free(bc);
	return 0;
}

/* Both verdicts must equal the expected one. */
static void expect(const char *what, const curve_fx *c, EVP_PKEY *k, const ecverify_key *v, const uint8_t *h,
		   size_t hl, const sig_fx *sg, int want)
{
	int e = evp_verdict(k, h, hl, sg), f = fast_verdict(v, h, hl, sg);

	if (e != want || f != want)
		fail_msg("%s %s: expected %s, EVP says %s, ecverify says %s", c->name, what,
			 want ? "valid" : "invalid", e ? "valid" : "invalid", f ? "valid" : "invalid");
}

static void test_random_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < 3; i++) {
		curve_fx *c = &curves[i];
		int count = i == 0 ? 300 : 200;

		for (int j = 0; j < count; j++) {
			uint8_t h[64];
			/* mostly the JWS hash; now and then SHA-1-sized, or longer than the order */
			size_t hl = j % 10 == 1 ? 20 : j % 10 == 2 ? 64 : c->hlen;
			sig_fx sg;

			if (RAND_bytes(h, (int)hl) != 1)
				fail_msg("rand");
			sign(c->k, h, hl, c->flen, &sg);
			expect("random signature", c, c->k, c->v, h, hl, &sg, 1);
		}
	}
}

enum mut {
	M_NONE, M_R_PLUS1, M_R_MINUS1, M_S_PLUS1, M_S_MINUS1, M_S_NEG, M_R0, M_S0, M_RN, M_SN, M_R_PLUS_N, M_SWAP,
	M_HASH_BIT, M_HASH_LONGER, M_HASH_SHORTER, M_OTHER_KEY, M_R_LEAD0, M_NMUT
};

static const struct {
	const char *name;
	int valid; /* -1: depends on the curve (see below) */
} mutations[M_NMUT] = {
	[M_NONE] = { "unchanged", 1 },
	[M_R_PLUS1] = { "r+1", 0 },
	[M_R_MINUS1] = { "r-1", 0 },
	[M_S_PLUS1] = { "s+1", 0 },
	[M_S_MINUS1] = { "s-1", 0 },
	[M_S_NEG] = { "s -> n-s (high s)", 1 },
	[M_R0] = { "r = 0", 0 },
	[M_S0] = { "s = 0", 0 },
	[M_RN] = { "r = n", 0 },
	[M_SN] = { "s = n", 0 },
	[M_R_PLUS_N] = { "r -> r+n", 0 },
	[M_SWAP] = { "r and s swapped", 0 },
	[M_HASH_BIT] = { "one hash bit flipped", 0 },
	/* one more byte after the hash: past the order's length it is truncated away (P-256, P-384: valid); on
	 * P-521 the JWS hash is shorter than the order, so the longer hash is another number */
	[M_HASH_LONGER] = { "hash with a byte appended", -1 },
	[M_HASH_SHORTER] = { "hash without its last byte", 0 },
	[M_OTHER_KEY] = { "signature of another key", 0 },
	[M_R_LEAD0] = { "r with a leading zero octet", 1 },
};

static void mutate(const curve_fx *c, int m, sig_fx *sg, uint8_t *h, size_t *hl)
{
	BIGNUM *r = BN_bin2bn(sg->r, (int)sg->rl, NULL), *s = BN_bin2bn(sg->s, (int)sg->sl, NULL);
	uint8_t tmp[ECVERIFY_MAX_SCALAR];

	switch (m) {
	case M_R_PLUS1: BN_add_word(r, 1); break;
	case M_R_MINUS1: BN_sub_word(r, 1); break;
	case M_S_PLUS1: BN_add_word(s, 1); break;
	case M_S_MINUS1: BN_sub_word(s, 1); break;
	case M_S_NEG: BN_sub(s, c->n, s); break;
	case M_R0: BN_zero(r); break;
	case M_S0: BN_zero(s); break;
	case M_RN: BN_copy(r, c->n); break;
	case M_SN: BN_copy(s, c->n); break;
	case M_R_PLUS_N: BN_add(r, r, c->n); break;
	case M_SWAP: BN_swap(r, s); break;
	case M_HASH_BIT: h[*hl / 2] ^= 0x10; break;
	case M_HASH_LONGER: h[(*hl)++] = 0x5a; break;
	case M_HASH_SHORTER: (*hl)--; break;
	}
	bn_out(r, sg->r, &sg->rl, c->flen);
	bn_out(s, sg->s, &sg->sl, c->flen);
	if (m == M_R_LEAD0) {
		memcpy(tmp, sg->r, sg->rl);
		sg->r[0] = 0;
		memcpy(sg->r + 1, tmp, sg->rl);
		sg->rl++;
	}
	BN_free(r);
	BN_free(s);
}

static void test_mutations(void **state)
{
	(void)state;
	for (size_t i = 0; i < 3; i++) {
		curve_fx *c = &curves[i];

		for (int j = 0; j < 12; j++) {
			uint8_t h0[65], h[65];
			sig_fx sg0;

			if (RAND_bytes(h0, (int)c->hlen) != 1)
				fail_msg("rand");
			sign(c->k, h0, c->hlen, c->flen, &sg0);
			for (int m = 0; m < M_NMUT; m++) {
				sig_fx sg = sg0;
				size_t hl = c->hlen;
				int want = mutations[m].valid;
				EVP_PKEY *k = c->k;
				const ecverify_key *v = c->v;
				ecverify_key *ov = NULL;

				if (m == M_R_LEAD0 && c->flen == ECVERIFY_MAX_SCALAR)
					continue; /* P-521's r is already as wide as the API takes */
				memcpy(h, h0, c->hlen);
				mutate(c, m, &sg, h, &hl);
				if (want < 0)
					want = c->hlen * 8 >= (size_t)BN_num_bits(c->n);
				if (m == M_OTHER_KEY) {
					assert_int_equal(ecverify_new(c->other, &ov), 0);
					k = c->other;
					v = ov;
				}
				expect(mutations[m].name, c, k, v, h, hl, &sg, want);
				ecverify_free(ov);
			}
		}
	}
}

/* Inputs the API refuses before any arithmetic. */
static void test_arg_limits(void **state)
{
	uint8_t h[ECVERIFY_MAX_HASH + 1] = { 1 }, big[ECVERIFY_MAX_SCALAR + 1] = { 0 };
	ecverify_key *v = NULL;
	EVP_PKEY *rsa = tj_keygen("RSA"), *ed = tj_keygen("Ed25519");

	(void)state;
	big[ECVERIFY_MAX_SCALAR] = 1;
	assert_int_equal(ecverify_verify(curves[0].v, h, ECVERIFY_MAX_HASH + 1, big, 1, big, 1), ECVERIFY_E_ARG);
	assert_int_equal(ecverify_verify(curves[0].v, h, 32, big, sizeof(big), big + 1, 1), ECVERIFY_E_ARG);
	assert_int_equal(ecverify_verify(curves[0].v, h, 32, big, 0, big, 0), ECVERIFY_E_SIGNATURE);
	assert_int_equal(ecverify_new(rsa, &v), ECVERIFY_E_ARG);
	assert_int_equal(ecverify_new(ed, &v), ECVERIFY_E_ARG);
	assert_null(v);
	assert_int_equal(ecverify_bits(curves[0].v), 256);
	assert_int_equal(ecverify_bits(curves[2].v), 521);
	assert_string_equal(ecverify_strerror(ECVERIFY_E_SIGNATURE), "invalid signature");
	ecverify_free(NULL);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
}

/* A key Q and signature (r, s) over hash e chosen so that u1*G + u2*Q is the point R: with u1 = e/s and
 * u2 = r/s, Q = (R - u1*G) / u2. R = NULL asks for R at infinity (Q = -u1/u2 * G). Returns the key. */
static EVP_PKEY *forge(const curve_fx *c, const EC_POINT *R, const BIGNUM *e, const BIGNUM *r, const BIGNUM *s)
{
	BIGNUM *w = BN_new(), *u1 = BN_new(), *u2 = BN_new(), *i2 = BN_new();
	EC_POINT *t = EC_POINT_new(c->g), *q = EC_POINT_new(c->g);
	EVP_PKEY *pk;

	if (!w || !u1 || !u2 || !i2 || !t || !q || !BN_mod_inverse(w, s, c->n, bc) ||
	    !BN_mod_mul(u1, e, w, c->n, bc) || !BN_mod_mul(u2, r, w, c->n, bc) || !BN_mod_inverse(i2, u2, c->n, bc))
		fail_msg("forge scalars");
	/* t = u1*G, negated; q = (R - u1*G) * u2^-1 */
	if (EC_POINT_mul(c->g, t, u1, NULL, NULL, bc) != 1 || EC_POINT_invert(c->g, t, bc) != 1)
		fail_msg("forge u1*G");
	if (R && EC_POINT_add(c->g, t, t, R, bc) != 1)
		fail_msg("forge add");
	if (EC_POINT_mul(c->g, q, NULL, t, i2, bc) != 1 || EC_POINT_is_at_infinity(c->g, q))
		fail_msg("forge q");
	pk = pkey_from_point(c, q);
	EC_POINT_free(t);
	EC_POINT_free(q);
	BN_free(w);
	BN_free(u1);
	BN_free(u2);
	BN_free(i2);
	return pk;
}

static void test_constructed_edges(void **state)
{
	(void)state;
	for (size_t i = 0; i < 3; i++) {
		curve_fx *c = &curves[i];
		BIGNUM *x = BN_new(), *e = BN_new(), *r = BN_new(), *s = BN_new();
		EC_POINT *R = EC_POINT_new(c->g);
		uint8_t h[66];
		size_t hl = c->hlen;
		sig_fx sg;
		EVP_PKEY *pk;
		ecverify_key *v = NULL;
		int tries;

		if (!x || !e || !r || !s || !R)
			fail_msg("alloc");
		/* x(R) in [n, p): a point whose x is n + small; then r = x - n < p - n and only the r+n comparison
		 * matches. No random signature gets there (probability ~2^-128 on P-256). */
		for (tries = 1; tries < 1000; tries++) {
			BN_copy(x, c->n);
			BN_add_word(x, (BN_ULONG)tries);
			if (EC_POINT_set_compressed_coordinates(c->g, R, x, 0, bc) == 1)
				break;
		}
		assert_true(tries < 1000);
		if (RAND_bytes(h, (int)hl) != 1 || !BN_bin2bn(h, (int)hl, e) || !BN_rand_range(s, c->n) || BN_is_zero(s))
			fail_msg("rand");
		if (hl * 8 > (size_t)BN_num_bits(c->n))
			fail_msg("hash longer than the order");
		BN_sub(r, x, c->n);
		pk = forge(c, R, e, r, s);
		assert_int_equal(ecverify_new(pk, &v), 0);
		bn_out(r, sg.r, &sg.rl, c->flen);
		bn_out(s, sg.s, &sg.sl, c->flen);
		expect("x(R) >= n, r = x(R) - n", c, pk, v, h, hl, &sg, 1);
		/* the same with r = x(R) itself: out of range */
		bn_out(x, sg.r, &sg.rl, c->flen);
		expect("x(R) >= n, r = x(R)", c, pk, v, h, hl, &sg, 0);
		/* off by one around it */
		BN_add_word(r, 1);
		bn_out(r, sg.r, &sg.rl, c->flen);
		expect("x(R) >= n, r = x(R) - n + 1", c, pk, v, h, hl, &sg, 0);
		ecverify_free(v);
		v = NULL;
		EVP_PKEY_free(pk);

		/* R at infinity: refused even though "x" would be anything */
		if (!BN_rand_range(r, c->n) || BN_is_zero(r))
			fail_msg("rand");
		pk = forge(c, NULL, e, r, s);
		assert_int_equal(ecverify_new(pk, &v), 0);
		bn_out(r, sg.r, &sg.rl, c->flen);
		bn_out(s, sg.s, &sg.sl, c->flen);
		expect("R at infinity", c, pk, v, h, hl, &sg, 0);
		ecverify_free(v);
		v = NULL;
		EVP_PKEY_free(pk);

		/* a hash equal to the order (e = n: u1 = 0, R = u2*Q), signed by OpenSSL */
		if (c->flen * 8 == (size_t)BN_num_bits(c->n)) {
			BN_bn2binpad(c->n, h, (int)c->flen);
			sign(c->k, h, c->flen, c->flen, &sg);
			expect("hash = n", c, c->k, c->v, h, c->flen, &sg, 1);
			memset(h, 0, c->flen);
			sign(c->k, h, c->flen, c->flen, &sg);
			expect("hash = 0", c, c->k, c->v, h, c->flen, &sg, 1);
		}
		EC_POINT_free(R);
		BN_free(x);
		BN_free(e);
		BN_free(r);
		BN_free(s);
	}
}

/* P-521's order has 521 bits: a 66-byte hash keeps its leftmost 521 bits, so the low 7 bits of the last byte do
 * not count and the 8th does. */
static void test_p521_bit_truncation(void **state)
{
	curve_fx *c = &curves[2];
	uint8_t h[66], h2[66];
	sig_fx sg;

	(void)state;
	for (int j = 0; j < 8; j++) {
		if (RAND_bytes(h, sizeof(h)) != 1)
			fail_msg("rand");
		sign(c->k, h, sizeof(h), c->flen, &sg);
		expect("66-byte hash", c, c->k, c->v, h, sizeof(h), &sg, 1);
		memcpy(h2, h, sizeof(h));
		h2[65] ^= 0x7f;
		expect("66-byte hash, low 7 bits changed", c, c->k, c->v, h2, sizeof(h2), &sg, 1);
		memcpy(h2, h, sizeof(h));
		h2[65] ^= 0x80;
		expect("66-byte hash, bit 521 changed", c, c->k, c->v, h2, sizeof(h2), &sg, 0);
		expect("65-byte prefix", c, c->k, c->v, h, 65, &sg, 0);
	}
}

struct thr_arg {
	const curve_fx *c;
	const uint8_t *h;
	const sig_fx *good, *bad;
	int ok;
};

static void *thr_main(void *p)
{
	struct thr_arg *a = p;

	a->ok = 1;
	for (int i = 0; i < 60; i++) {
		if (ecverify_verify(a->c->v, a->h, a->c->hlen, a->good->r, a->good->rl, a->good->s, a->good->sl) != 0 ||
		    ecverify_verify(a->c->v, a->h, a->c->hlen, a->bad->r, a->bad->rl, a->bad->s, a->bad->sl) !=
			    ECVERIFY_E_SIGNATURE)
			a->ok = 0;
	}
	return NULL;
}

/* One key shared by threads, each with its own scratch (freed at thread exit: the leak checker sees it). */
static void test_threads(void **state)
{
	const curve_fx *c = &curves[0];
	uint8_t h[32];
	sig_fx good, bad;
	pthread_t th[4];
	struct thr_arg a[4];

	(void)state;
	if (RAND_bytes(h, sizeof(h)) != 1)
		fail_msg("rand");
	sign(c->k, h, sizeof(h), c->flen, &good);
	bad = good;
	bad.s[c->flen - 1] ^= 1;
	for (int i = 0; i < 4; i++) {
		a[i] = (struct thr_arg){ c, h, &good, &bad, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, thr_main, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(a[i].ok);
	}
}

/* jwks: the first JWKS_EC_FAST_MAX EC keys of a set get a verifier, later ones (and other types) do not, and
 * every key verifies its tokens either way; tampered tokens fail on both paths. */
static void test_jwks_fast_limit(void **state)
{
	enum { NEC = JWKS_EC_FAST_MAX + 2 };
	EVP_PKEY *ks_keys[NEC + 2];
	const char *algs[NEC + 2];
	char *doc = malloc(64 * 1024), *p;
	jwks_keyset *ks = NULL;
	size_t total = sizeof(ks_keys) / sizeof(ks_keys[0]);

	(void)state;
	assert_non_null(doc);
	/* one RSA key first (never prepared), then NEC P-256 keys, then one P-384 key past the limit */
	ks_keys[0] = tj_keygen("RSA");
	algs[0] = "RS256";
	for (size_t i = 1; i <= NEC; i++) {
		ks_keys[i] = tj_keygen("P-256");
		algs[i] = "ES256";
	}
	ks_keys[NEC + 1] = tj_keygen("P-384");
	algs[NEC + 1] = "ES384";
	p = doc + sprintf(doc, "{\"keys\":[");
	for (size_t i = 0; i < total; i++) {
		char kid[16], *jwk;

		snprintf(kid, sizeof(kid), "k%zu", i);
		jwk = tj_jwk(ks_keys[i], kid, NULL);
		p += sprintf(p, "%s%s", i ? "," : "", jwk);
		free(jwk);
	}
	strcpy(p, "]}");
	assert_int_equal(jwks_parse((const uint8_t *)doc, strlen(doc), &ks, NULL, 0), 0);
	assert_int_equal(jwks_keyset_count(ks), total);
	for (size_t i = 0; i < total; i++) {
		const jwks_key *k = jwks_keyset_key(ks, i);
		char kid[16], hdr[64], *tok;
		unsigned char *sig;
		size_t sl;
		jwt_token t;

		/* keys 1..8 are the first eight EC keys */
		if (i >= 1 && i <= JWKS_EC_FAST_MAX)
			assert_non_null(k->ecv);
		else
			assert_null(k->ecv);
		snprintf(kid, sizeof(kid), "k%zu", i);
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\"}", algs[i], kid);
		tok = tj_token(ks_keys[i], algs[i], hdr, "{\"sub\":\"a\"}", NULL);
		assert_int_equal(jwt_parse((const uint8_t *)tok, strlen(tok), 0, &t), 0);
		assert_int_equal(jws_verify(&t, k), 0);
		/* flip the last bit of s */
		sig = tj_sig_of(tok, &sl);
		sig[sl - 1] ^= 1;
		jwt_token_free(&t);
		p = tj_with_sig(tok, sig, sl);
		free(tok);
		tok = p;
		assert_int_equal(jwt_parse((const uint8_t *)tok, strlen(tok), 0, &t), 0);
		assert_int_equal(jws_verify(&t, k), JWT_E_SIGNATURE);
		jwt_token_free(&t);
		free(tok);
		free(sig);
	}
	jwks_keyset_release(ks);
	for (size_t i = 0; i < total; i++)
		EVP_PKEY_free(ks_keys[i]);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_valid),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_arg_limits),
		cmocka_unit_test(test_constructed_edges),
		cmocka_unit_test(test_p521_bit_truncation),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_jwks_fast_limit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
