/*
 * test_rsaverify.c — the IFMA RSA verifier (rsaverify.h) against OpenSSL, and the per-key contexts of jws.c.
 *
 * - the public operation s^e mod n against BN_mod_exp on moduli of every register count and at each boundary
 *   between them (2078/2079, 3326/3327 bits), exponents 3 to 2^32 - 1, random and edge values of s; s >= n and
 *   wrong sizes refused;
 * - verdicts against EVP_PKEY_verify (the context jwks.c prepares: padding, digest, PSS salt AUTO, MGF1) on real
 *   keys: valid signatures, and encodings signed raw with the private key (RSA_NO_PADDING) that break PKCS#1
 *   v1.5 or PSS in one place each — every case names the verdict it expects and EVP must give the same;
 * - Wycheproof's vectors (tests/fixtures/wycheproof/, extracted by extract.py there): PKCS#1 v1.5 with
 *   RSA-2048/SHA-256 and RSA-4096/SHA-512 keep Wycheproof's verdict and EVP's; PSS (RSA-2048, SHA-256) EVP's with
 *   RSA_PSS_SALTLEN_AUTO, since Wycheproof assumes one salt length and go-jose accepts any; Ed25519 through
 *   jws_verify (one key per set: the per-key table path of edverify) keeps Wycheproof's verdict;
 * - several threads on one key;
 * - jws_verify through key sets: RSA and Ed25519 keys of two sets interleaved on one thread, and a kid rotated
 *   to a new key: the old key's tokens are refused, so no context of a departed key is ever used.
 *
 * Where the CPU has no AVX-512 IFMA the rsaverify tests are skipped (rsaverify_new says UNAVAILABLE); the jws
 * test runs everywhere.
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
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "jose_test.h"
#include "jwks.h"
#include "jws.h"
#include "jwt.h"
#include "rsaverify.h"

static BN_CTX *bc;

/* A public-only RSA EVP_PKEY of (n, e): no key check, so any odd n of any size can be tried. */
static EVP_PKEY *pub_of(const BIGNUM *n, const BIGNUM *e)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *p = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *k = NULL;

	if (!b || !c || OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, e) != 1 || (p = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    EVP_PKEY_fromdata_init(c) != 1 || EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, p) != 1)
		fail_msg("public key from n, e");
	OSSL_PARAM_free(p);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_CTX_free(c);
	return k;
}

static rsaverify_key *new_or_skip(EVP_PKEY *k)
{
	rsaverify_key *v = NULL;
	int rc = rsaverify_new(k, &v);

	if (rc == RSAVERIFY_E_UNAVAILABLE) {
		EVP_PKEY_free(k);
		skip();
	}
	if (rc)
		fail_msg("rsaverify_new: %s", rsaverify_strerror(rc));
	return v;
}

/* ---- the public operation ---- */

static void check_pow(const rsaverify_key *v, const BIGNUM *n, const BIGNUM *e, const BIGNUM *s, size_t nb,
		      const char *what)
{
	uint8_t sig[512], em[512], want[512];
	BIGNUM *r = BN_new();

	if (!r || BN_bn2binpad(s, sig, (int)nb) != (int)nb || BN_mod_exp(r, s, e, n, bc) != 1 ||
	    BN_bn2binpad(r, want, (int)nb) != (int)nb)
		fail_msg("reference");
	if (rsaverify_public(v, sig, nb, em, nb) != 0 || memcmp(em, want, nb) != 0)
		fail_msg("%d-bit n, e %s: s^e mod n differs from BN_mod_exp (%s)", BN_num_bits(n), BN_bn2dec(e), what);
	BN_free(r);
}

static void test_public_vs_bn(void **state)
{
	static const int sizes[] = { 2048, 2049, 2078, 2079, 2304, 3072, 3326, 3327, 4095, 4096 };
	static const unsigned long exps[] = { 65537, 3, 5, 0x80000001ul, 0xfffffffful };

	(void)state;
	for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		for (size_t x = 0; x < sizeof(exps) / sizeof(exps[0]); x++) {
			BIGNUM *n = BN_new(), *e = BN_new(), *s = BN_new();
			size_t nb = (size_t)(sizes[z] + 7) / 8;
			EVP_PKEY *k;
			rsaverify_key *v;
			uint8_t sig[512], em[512];

			/* random odd n with its top bit set; the first one of each size all ones (the largest n) */
			if (!n || !e || !s || BN_set_word(e, exps[x]) != 1 ||
			    BN_rand(n, sizes[z], BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD) != 1)
				fail_msg("bn");
			if (x == 0) {
				BN_zero(n);
				if (BN_set_bit(n, sizes[z]) != 1 || BN_sub_word(n, 1) != 1)
					fail_msg("bn");
			}
			k = pub_of(n, e);
			v = new_or_skip(k);
			for (int i = 0; i < 60; i++) {
				const char *what = "random";

				switch (i) {
				case 0: BN_zero(s); what = "s = 0"; break;
				case 1: BN_one(s); what = "s = 1"; break;
				case 2: BN_sub(s, n, BN_value_one()); what = "s = n - 1"; break;
				case 3: BN_rshift1(s, n); what = "s = n / 2"; break;
				case 4: BN_set_word(s, 2); what = "s = 2"; break;
				default: BN_rand_range(s, n); break;
				}
				check_pow(v, n, e, s, nb, what);
			}
			/* s >= n: not a signature (RFC 8017 §5.2.2 step 1) */
			BN_bn2binpad(n, sig, (int)nb);
			assert_int_equal(rsaverify_public(v, sig, nb, em, nb), RSAVERIFY_E_SIGNATURE);
			memset(sig, 0xff, nb);
			assert_int_equal(rsaverify_public(v, sig, nb, em, nb), RSAVERIFY_E_SIGNATURE);
			/* the length is k, exactly */
			assert_int_equal(rsaverify_public(v, sig, nb - 1, em, nb - 1), RSAVERIFY_E_ARG);
			assert_int_equal(rsaverify_public(v, sig, nb + 1, em, nb + 1), RSAVERIFY_E_ARG);
			rsaverify_free(v);
			EVP_PKEY_free(k);
			BN_free(n);
			BN_free(e);
			BN_free(s);
		}
	}
}

/* Keys rsaverify does not take: even n, e = 1, even e, n above RSAVERIFY_MAX_BITS, not RSA. */
static void test_refused_keys(void **state)
{
	static const struct {
		int bits;
		unsigned long e;
		int odd;
		int want;
	} cases[] = {
		{ 2048, 65537, 0, RSAVERIFY_E_ARG },
		{ 2048, 1, 1, RSAVERIFY_E_ARG },
		{ 2048, 65536, 1, RSAVERIFY_E_ARG },
		{ RSAVERIFY_MAX_BITS + 1, 65537, 1, RSAVERIFY_E_UNAVAILABLE },
	};
	EVP_PKEY *ed = tj_keygen("Ed25519");
	rsaverify_key *v = NULL;

	(void)state;
	/* skip where the CPU has no IFMA (every key is UNAVAILABLE there) */
	{
		BIGNUM *n = BN_new(), *e = BN_new();
		EVP_PKEY *k;

		BN_rand(n, 2048, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD);
		BN_set_word(e, 65537);
		k = pub_of(n, e);
		BN_free(n);
		BN_free(e);
		v = new_or_skip(k);
		rsaverify_free(v);
		EVP_PKEY_free(k);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		BIGNUM *n = BN_new(), *e = BN_new();
		EVP_PKEY *k;

		v = NULL;
		BN_rand(n, cases[i].bits, BN_RAND_TOP_ONE, cases[i].odd ? BN_RAND_BOTTOM_ODD : BN_RAND_BOTTOM_ANY);
		if (!cases[i].odd)
			BN_clear_bit(n, 0);
		BN_set_word(e, cases[i].e);
		k = pub_of(n, e);
		if (rsaverify_new(k, &v) != cases[i].want)
			fail_msg("case %zu: want %d", i, cases[i].want);
		assert_null(v);
		EVP_PKEY_free(k);
		BN_free(n);
		BN_free(e);
	}
	assert_int_equal(rsaverify_new(ed, &v), RSAVERIFY_E_ARG);
	assert_null(v);
	EVP_PKEY_free(ed);
}

/* ---- verdicts against EVP ---- */

static const EVP_MD *md_of(size_t hl)
{
	return hl == 32 ? EVP_sha256() : hl == 48 ? EVP_sha384() : EVP_sha512();
}

/* EVP's verdict, on the context jwks.c builds for the alg: 1 verifies, 0 not. */
static int evp_verdict(EVP_PKEY *k, bool pss, const uint8_t *h, size_t hl, const uint8_t *sig, size_t sl)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	int ok;

	if (!c || EVP_PKEY_verify_init(c) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1 ||
	    (pss && (EVP_PKEY_CTX_set_rsa_pss_saltlen(c, RSA_PSS_SALTLEN_AUTO) != 1 ||
		     EVP_PKEY_CTX_set_rsa_mgf1_md(c, md_of(hl)) != 1)) ||
	    EVP_PKEY_CTX_set_signature_md(c, md_of(hl)) != 1)
		fail_msg("evp verify setup");
	ok = EVP_PKEY_verify(c, sig, sl, h, hl) == 1;
	EVP_PKEY_CTX_free(c);
	return ok;
}

/* The private operation on em (k octets, below n): the signature whose public operation gives em. */
static void raw_sign(EVP_PKEY *priv, const uint8_t *em, size_t k, uint8_t *sig)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	size_t sl = k;

	if (!c || EVP_PKEY_decrypt_init(c) != 1 || EVP_PKEY_CTX_set_rsa_padding(c, RSA_NO_PADDING) != 1 ||
	    EVP_PKEY_decrypt(c, sig, &sl, em, k) != 1 || sl != k)
		fail_msg("raw private operation");
	EVP_PKEY_CTX_free(c);
}

/* A proper signature of h (PKCS#1 v1.5 or PSS with salt length salt). */
static void sign(EVP_PKEY *priv, bool pss, int salt, const EVP_MD *mgf1, const uint8_t *h, size_t hl, uint8_t *sig,
		 size_t *sl)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);

	if (!c || EVP_PKEY_sign_init(c) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1 ||
	    (pss && (EVP_PKEY_CTX_set_rsa_pss_saltlen(c, salt) != 1 ||
		     EVP_PKEY_CTX_set_rsa_mgf1_md(c, mgf1 ? mgf1 : md_of(hl)) != 1)) ||
	    EVP_PKEY_CTX_set_signature_md(c, md_of(hl)) != 1 || EVP_PKEY_sign(c, sig, sl, h, hl) != 1)
		fail_msg("sign");
	EVP_PKEY_CTX_free(c);
}

static const uint8_t di256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
				 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };

/* PKCS#1 v1.5 encodings of a SHA-256 hash, each broken in one way, and the verdict each must get. */
enum { E_GOOD, E_BT2, E_LEAD1, E_FE, E_NO_NULL, E_OID384, E_NO_SEP, E_PS_SHORT, E_TRAIL, E_HASHBIT, E_N };
static const char *const e_name[E_N] = {
	"proper encoding", "block type 02", "leading octet 01", "an FE in the padding", "DigestInfo without NULL",
	"DigestInfo naming SHA-384", "no zero separator", "short padding with a zero prefix",
	"DigestInfo with an extra octet", "one hash bit flipped",
};

static void encode(int what, const uint8_t *h, size_t k, uint8_t *em)
{
	uint8_t t[64];
	size_t tl = sizeof(di256) + 32, ps;

	memcpy(t, di256, sizeof(di256));
	memcpy(t + sizeof(di256), h, 32);
	if (what == E_NO_NULL) { /* 30 2f 30 0b 06 09 <oid> 04 20 <h> */
		static const uint8_t d[] = { 0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48,
					     0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x04, 0x20 };
		memcpy(t, d, sizeof(d));
		memcpy(t + sizeof(d), h, 32);
		tl = sizeof(d) + 32;
	}
	if (what == E_OID384)
		t[14] = 0x02;
	if (what == E_HASHBIT)
		t[tl - 1] ^= 1;
	if (what == E_TRAIL)
		t[tl++] = 0;
	ps = k - tl - 3;
	em[0] = 0;
	em[1] = what == E_BT2 ? 2 : 1;
	memset(em + 2, 0xff, ps);
	em[2 + ps] = what == E_NO_SEP ? 0xff : 0;
	memcpy(em + 3 + ps, t, tl);
	if (what == E_LEAD1)
		em[0] = 1;
	if (what == E_FE)
		em[2 + ps / 2] = 0xfe;
	if (what == E_PS_SHORT) /* 00 01 FF x 9 00 00 ... 00 T: the padding ends early, zeros follow */
		memset(em + 11, 0, ps - 8);
}

static void check(EVP_PKEY *priv, const rsaverify_key *v, bool pss, const uint8_t *h, size_t hl, const uint8_t *sig,
		  size_t sl, int want_ok, const char *what)
{
	int e = evp_verdict(priv, pss, h, hl, sig, sl);
	int r = rsaverify_verify(v, pss, md_of(hl), h, hl, sig, sl);

	if (e != want_ok)
		fail_msg("%s: EVP says %d, the table %d", what, e, want_ok);
	if ((r == 0) != want_ok || (r != 0 && r != RSAVERIFY_E_SIGNATURE))
		fail_msg("%s (%s, %zu-byte hash): rsaverify %d, EVP %d", what, pss ? "PSS" : "PKCS#1 v1.5", hl, r, e);
}

static void verdicts_for(int bits)
{
	EVP_PKEY *priv = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	rsaverify_key *v;
	size_t k = (size_t)(bits + 7) / 8;
	uint8_t h[64], em[512], sig[512];
	size_t sl;

	if (!priv)
		fail_msg("keygen");
	if (rsaverify_new(priv, &v) == RSAVERIFY_E_UNAVAILABLE) {
		EVP_PKEY_free(priv);
		skip();
	}
	RAND_bytes(h, sizeof(h));
	/* proper signatures, every hash, both paddings; PSS with several salt lengths */
	for (size_t hl = 32; hl <= 64; hl += 16) {
		static const int salts[] = { RSA_PSS_SALTLEN_DIGEST, 0, 1, 20, RSA_PSS_SALTLEN_MAX };

		sl = sizeof(sig);
		sign(priv, false, 0, NULL, h, hl, sig, &sl);
		check(priv, v, false, h, hl, sig, sl, 1, "PKCS#1 v1.5");
		sig[k / 2] ^= 0x10;
		check(priv, v, false, h, hl, sig, sl, 0, "PKCS#1 v1.5, signature bit flipped");
		for (size_t i = 0; i < sizeof(salts) / sizeof(salts[0]); i++) {
			sl = sizeof(sig);
			sign(priv, true, salts[i], NULL, h, hl, sig, &sl);
			check(priv, v, true, h, hl, sig, sl, 1, "PSS");
			/* the same signature is not PKCS#1 v1.5, nor PSS over another hash */
			check(priv, v, false, h, hl, sig, sl, 0, "PSS signature as PKCS#1 v1.5");
			h[0] ^= 1;
			check(priv, v, true, h, hl, sig, sl, 0, "PSS, other hash");
			h[0] ^= 1;
		}
		sl = sizeof(sig);
		sign(priv, true, RSA_PSS_SALTLEN_DIGEST, EVP_sha1(), h, hl, sig, &sl);
		check(priv, v, true, h, hl, sig, sl, 0, "PSS with MGF1-SHA1");
	}
	/* PKCS#1 v1.5 encodings broken in one place, signed raw */
	for (int w = 0; w < E_N; w++) {
		encode(w, h, k, em);
		raw_sign(priv, em, k, sig);
		check(priv, v, false, h, 32, sig, k, w == E_GOOD, e_name[w]);
	}
	/* PSS: a proper encoding, recovered with the public operation, then one bit flipped at a time in each region
	 * (masked DB, H, the trailer 0xbc, the top bit that must be zero) and signed raw */
	sl = sizeof(sig);
	sign(priv, true, RSA_PSS_SALTLEN_DIGEST, NULL, h, 32, sig, &sl);
	assert_int_equal(rsaverify_public(v, sig, sl, em, k), 0);
	{
		const size_t at[] = { 0, 1, k / 2, k - 33, k - 20, k - 2, k - 1 };

		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
			uint8_t m[512];
			char what[64];

			memcpy(m, em, k);
			m[at[i]] ^= 0x01; /* stays below n: octet 0 is below n's top octet */
			raw_sign(priv, m, k, sig);
			snprintf(what, sizeof(what), "PSS encoding, octet %zu flipped", at[i]);
			check(priv, v, true, h, 32, sig, k, 0, what);
		}
		raw_sign(priv, em, k, sig);
		check(priv, v, true, h, 32, sig, k, 1, "PSS encoding recovered and signed again");
	}
	/* signatures that are not below n, or trivial */
	{
		BIGNUM *n = NULL;

		EVP_PKEY_get_bn_param(priv, OSSL_PKEY_PARAM_RSA_N, &n);
		BN_bn2binpad(n, sig, (int)k);
		check(priv, v, false, h, 32, sig, k, 0, "s = n");
		check(priv, v, true, h, 32, sig, k, 0, "s = n (PSS)");
		BN_add_word(n, 1);
		BN_bn2binpad(n, sig, (int)k);
		check(priv, v, false, h, 32, sig, k, 0, "s = n + 1");
		memset(sig, 0, k);
		check(priv, v, false, h, 32, sig, k, 0, "s = 0");
		sig[k - 1] = 1;
		check(priv, v, true, h, 32, sig, k, 0, "s = 1");
		BN_free(n);
	}
	rsaverify_free(v);
	EVP_PKEY_free(priv);
}

static void test_verdicts_2048(void **state)
{
	(void)state;
	verdicts_for(2048);
}

static void test_verdicts_3072_and_odd_size(void **state)
{
	(void)state;
	verdicts_for(3072);
	verdicts_for(2051);
}

/* ---- Wycheproof vectors (tests/fixtures/wycheproof/, made by extract.py from C2SP/wycheproof) ---- */

#define WP "tests/fixtures/wycheproof/"

/* Hex text (or "-" for empty) into a heap buffer; *n its length. */
static uint8_t *unhex(const char *h, size_t *n)
{
	size_t l = strcmp(h, "-") == 0 ? 0 : strlen(h);
	uint8_t *b = malloc(l / 2 + 1);

	if (!b || l % 2)
		fail_msg("hex");
	for (size_t i = 0; i < l / 2; i++) {
		unsigned v;

		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			fail_msg("hex");
		b[i] = (uint8_t)v;
	}
	*n = l / 2;
	return b;
}

/* One vector file: calls fn for each vector with the current key line's fields. Returns the number of vectors. */
typedef void (*wp_fn)(void *ud, const char *kn, const char *ke, int id, const char *result, const uint8_t *msg,
		      size_t ml, const uint8_t *sig, size_t sl, const char *flags);

static int wp_each(const char *file, wp_fn fn, void *ud)
{
	FILE *f = fopen(file, "r");
	char *line = NULL, kn[1100] = "", ke[80] = "";
	size_t cap = 0;
	int nv = 0;

	if (!f)
		fail_msg("%s: cannot open (run from the repository root)", file);
	while (getline(&line, &cap, f) > 0) {
		static char a[8192], b[8192], c[8192], d[256], r[16];
		int id;

		if (line[0] == '#')
			continue;
		if (sscanf(line, "key %1099s %79s", kn, ke) == 2)
			continue;
		if (sscanf(line, "v %d %15s %8191s %8191s %255s", &id, r, a, b, d) == 5) {
			size_t ml, sl;
			uint8_t *m = unhex(a, &ml), *sg = unhex(b, &sl);

			(void)c;
			fn(ud, kn, ke, id, r, m, ml, sg, sl, d);
			free(m);
			free(sg);
			nv++;
			continue;
		}
		fail_msg("%s: bad line %s", file, line);
	}
	free(line);
	fclose(f);
	return nv;
}

typedef struct wp_rsa {
	bool pss;
	const EVP_MD *md;
	char kn[1100];       /* the key of v below */
	EVP_PKEY *k;
	rsaverify_key *v;
	int checked, fast;
} wp_rsa;

static void wp_rsa_one(void *ud, const char *kn, const char *ke, int id, const char *result, const uint8_t *msg,
		       size_t ml, const uint8_t *sig, size_t sl, const char *flags)
{
	wp_rsa *w = ud;
	uint8_t h[64];
	unsigned hl = 0;
	int ours, evp;
	size_t k;

	if (strcmp(kn, w->kn) != 0) { /* a new key group */
		BIGNUM *n = NULL, *e = NULL;

		rsaverify_free(w->v);
		EVP_PKEY_free(w->k);
		w->v = NULL;
		if (!BN_hex2bn(&n, kn) || !BN_hex2bn(&e, ke))
			fail_msg("key");
		w->k = pub_of(n, e);
		if (rsaverify_new(w->k, &w->v) != 0)
			w->v = NULL; /* e.g. a key jwks.c would not take either: only EVP's verdict is checked */
		snprintf(w->kn, sizeof(w->kn), "%s", kn);
		BN_free(n);
		BN_free(e);
	}
	if (EVP_Digest(msg, ml, h, &hl, w->md, NULL) != 1)
		fail_msg("digest");
	k = (size_t)EVP_PKEY_get_size(w->k);
	/* jws_verify refuses any length but k before either verifier runs */
	evp = sl == k && evp_verdict(w->k, w->pss, h, hl, sig, sl);
	if (!w->pss && strcmp(result, "valid") == 0 && !evp)
		fail_msg("tcId %d (%s): valid, EVP refuses", id, flags);
	if (!w->pss && strcmp(result, "invalid") == 0 && evp)
		fail_msg("tcId %d (%s): invalid, EVP accepts", id, flags);
	if (w->pss && strcmp(result, "valid") == 0 && !evp)
		fail_msg("tcId %d (%s): valid PSS, EVP refuses", id, flags);
	if (!w->v)
		return;
	ours = sl == k && rsaverify_verify(w->v, w->pss, w->md, h, hl, sig, sl) == 0;
	/* PSS: Wycheproof's verdicts assume its one salt length; ours (and the API server's) is any length, so the
	 * reference is EVP with RSA_PSS_SALTLEN_AUTO */
	if (ours != evp)
		fail_msg("tcId %d (%s, %s): rsaverify %d, EVP %d", id, result, flags, ours, evp);
	w->fast++;
	w->checked++;
}

static void wp_rsa_file(const char *file, bool pss, const EVP_MD *md)
{
	wp_rsa w;
	int n;

	memset(&w, 0, sizeof(w));
	w.pss = pss;
	w.md = md;
	n = wp_each(file, wp_rsa_one, &w);
	rsaverify_free(w.v);
	EVP_PKEY_free(w.k);
	if (w.fast == 0) {
		rsaverify_key *v = NULL;
		EVP_PKEY *k = tj_keygen("RSA");

		if (rsaverify_new(k, &v) == RSAVERIFY_E_UNAVAILABLE) {
			EVP_PKEY_free(k);
			skip();
		}
		rsaverify_free(v);
		EVP_PKEY_free(k);
		fail_msg("%s: no vector reached rsaverify", file);
	}
	print_message("%s: %d vectors, %d through rsaverify\n", file, n, w.fast);
}

static void test_wycheproof_pkcs1(void **state)
{
	(void)state;
	wp_rsa_file(WP "rsa_signature_2048_sha256.txt", false, EVP_sha256());
	wp_rsa_file(WP "rsa_signature_4096_sha512.txt", false, EVP_sha512());
}

static void test_wycheproof_pss(void **state)
{
	(void)state;
	wp_rsa_file(WP "rsa_pss_2048_sha256_mgf1_32.txt", true, EVP_sha256());
}

/* Ed25519 through jws_verify (one key per set: edverify's table path, not the copied EVP context): Wycheproof's
 * verdict, and EVP's one-shot agrees. */
static void wp_ed_one(void *ud, const char *kn, const char *ke, int id, const char *result, const uint8_t *msg,
		      size_t ml, const uint8_t *sig, size_t sl, const char *flags)
{
	size_t pl;
	uint8_t *pk = unhex(kn, &pl);
	char *x = tj_b64(pk, pl), doc[256];
	jwks_keyset *s = NULL;
	const jwks_key *k;
	jwt_token t;
	int ours, want = strcmp(result, "valid") == 0;

	(void)ud, (void)ke;
	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}]}", x);
	if (jwks_parse((const uint8_t *)doc, strlen(doc), &s, NULL, 0) != 0) {
		/* a public key OpenSSL will not take: nothing can verify with it */
		assert_false(want);
		goto out;
	}
	k = jwks_keyset_key(s, 0);
	assert_non_null(k->edctx);
	memset(&t, 0, sizeof(t));
	t.alg = JWA_EDDSA;
	t.signing_input = msg;
	t.signing_input_len = ml;
	t.sig = (uint8_t *)sig;
	t.sig_len = sl;
	ours = jws_verify(&t, k) == 0;
	if (ours != want)
		fail_msg("Ed25519 tcId %d (%s, %s): jws_verify %d", id, result, flags, ours);
	jwks_keyset_release(s);
out:
	free(x);
	free(pk);
}

static void test_wycheproof_ed25519(void **state)
{
	(void)state;
	assert_true(wp_each(WP "ed25519.txt", wp_ed_one, NULL) > 100);
}

/* ---- threads ---- */

typedef struct thr_fx {
	const rsaverify_key *v;
	const uint8_t *h, *good, *bad;
	size_t sl;
	int wrong;
} thr_fx;

static void *thr_main(void *p)
{
	thr_fx *f = p;

	for (int i = 0; i < 150; i++) {
		if (rsaverify_verify(f->v, false, EVP_sha256(), f->h, 32, f->good, f->sl) != 0)
			f->wrong++;
		if (rsaverify_verify(f->v, false, EVP_sha256(), f->h, 32, f->bad, f->sl) != RSAVERIFY_E_SIGNATURE)
			f->wrong++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	EVP_PKEY *priv = tj_keygen("RSA");
	rsaverify_key *v = new_or_skip(priv);
	uint8_t h[32], good[256], bad[256];
	size_t sl = sizeof(good);
	pthread_t t[4];
	thr_fx f[4];

	(void)state;
	RAND_bytes(h, sizeof(h));
	sign(priv, false, 0, NULL, h, 32, good, &sl);
	memcpy(bad, good, sl);
	bad[100] ^= 4;
	for (int i = 0; i < 4; i++) {
		f[i] = (thr_fx){ v, h, good, bad, sl, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, thr_main, &f[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(f[i].wrong, 0);
	}
	rsaverify_free(v);
	EVP_PKEY_free(priv);
}

/* ---- jws_verify: per-key contexts, two keys interleaved, a kid rotated ---- */

static int pv(const char *tok, const jwks_keyset *s, const char *kid, int alg)
{
	jwt_token t;
	const jwks_key *k = NULL;
	int rc = jwt_parse((const uint8_t *)tok, strlen(tok), 0, &t);

	if (rc)
		return rc;
	rc = jwks_find(s, kid, strlen(kid), alg, &k);
	if (rc == 0)
		rc = jws_verify(&t, k);
	jwt_token_free(&t);
	return rc;
}

static jwks_keyset *set_of(EVP_PKEY *rsa, EVP_PKEY *ed)
{
	char *a = tj_jwk(rsa, "r", NULL), *b = tj_jwk(ed, "e", NULL), doc[8192];
	jwks_keyset *s = NULL;

	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
	free(a);
	free(b);
	if (jwks_parse((const uint8_t *)doc, strlen(doc), &s, NULL, 0) != 0)
		fail_msg("jwks_parse");
	return s;
}

static void test_jws_keys_interleaved_and_rotated(void **state)
{
	EVP_PKEY *r1 = tj_keygen("RSA"), *r2 = tj_keygen("RSA"), *e1 = tj_keygen("Ed25519"), *e2 = tj_keygen("Ed25519");
	jwks_keyset *s1 = set_of(r1, e1), *s2 = set_of(r2, e2);
	static const char P[] = "{\"sub\":\"a\"}";
	char *t_rs1 = tj_token(r1, "RS256", "{\"alg\":\"RS256\",\"kid\":\"r\"}", P, NULL);
	char *t_ps1 = tj_token(r1, "PS256", "{\"alg\":\"PS256\",\"kid\":\"r\"}", P, NULL);
	char *t_ed1 = tj_token(e1, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"e\"}", P, NULL);
	char *t_rs2 = tj_token(r2, "RS256", "{\"alg\":\"RS256\",\"kid\":\"r\"}", P, NULL);
	char *t_ps2 = tj_token(r2, "PS256", "{\"alg\":\"PS256\",\"kid\":\"r\"}", P, NULL);
	char *t_ed2 = tj_token(e2, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"e\"}", P, NULL);
	const jwks_key *k = NULL;

	(void)state;
	/* the fast paths are there: Ed25519 always, RSA where the CPU has IFMA */
	assert_int_equal(jwks_find(s1, "e", 1, JWA_EDDSA, &k), 0);
	assert_non_null(k->edctx);
	/* both sets alive, tokens of each in turn on one thread: each verifies with its own key only */
	for (int round = 0; round < 3; round++) {
		assert_int_equal(pv(t_ed1, s1, "e", JWA_EDDSA), 0);
		assert_int_equal(pv(t_ed2, s1, "e", JWA_EDDSA), JWT_E_SIGNATURE);
		assert_int_equal(pv(t_ed2, s2, "e", JWA_EDDSA), 0);
		assert_int_equal(pv(t_ed1, s2, "e", JWA_EDDSA), JWT_E_SIGNATURE);
		assert_int_equal(pv(t_rs1, s1, "r", JWA_RS256), 0);
		assert_int_equal(pv(t_rs2, s1, "r", JWA_RS256), JWT_E_SIGNATURE);
		assert_int_equal(pv(t_ps2, s2, "r", JWA_PS256), 0);
		assert_int_equal(pv(t_ps1, s2, "r", JWA_PS256), JWT_E_SIGNATURE);
		assert_int_equal(pv(t_rs2, s2, "r", JWA_RS256), 0);
		assert_int_equal(pv(t_ps1, s1, "r", JWA_PS256), 0);
	}
	/* rotation: the first set is gone (its keys freed); the kids now name the new keys, and the old tokens fail */
	jwks_keyset_release(s1);
	assert_int_equal(pv(t_ed1, s2, "e", JWA_EDDSA), JWT_E_SIGNATURE);
	assert_int_equal(pv(t_rs1, s2, "r", JWA_RS256), JWT_E_SIGNATURE);
	assert_int_equal(pv(t_ps1, s2, "r", JWA_PS256), JWT_E_SIGNATURE);
	assert_int_equal(pv(t_ed2, s2, "e", JWA_EDDSA), 0);
	assert_int_equal(pv(t_rs2, s2, "r", JWA_RS256), 0);
	jwks_keyset_release(s2);
	free(t_rs1), free(t_ps1), free(t_ed1), free(t_rs2), free(t_ps2), free(t_ed2);
	EVP_PKEY_free(r1), EVP_PKEY_free(r2), EVP_PKEY_free(e1), EVP_PKEY_free(e2);
}

static int setup(void **state)
{
	(void)state;
	bc = BN_CTX_new();
	return bc ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	BN_CTX_free(bc);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_public_vs_bn),
		cmocka_unit_test(test_refused_keys),
		cmocka_unit_test(test_verdicts_2048),
		cmocka_unit_test(test_verdicts_3072_and_odd_size),
		cmocka_unit_test(test_wycheproof_pkcs1),
		cmocka_unit_test(test_wycheproof_pss),
		cmocka_unit_test(test_wycheproof_ed25519),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_jws_keys_interleaved_and_rotated),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
