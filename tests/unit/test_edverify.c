/*
 * test_edverify.c — the tabulated Ed25519 verifier (edverify.h) against OpenSSL's EVP_DigestVerify.
 *
 * - random keys and messages: valid signatures, and each mutated in one way (a bit of R, of S, of the message;
 *   S + L, the same S not reduced; R replaced by a non-canonical encoding of the same y; random bytes): the
 *   verdict must be EVP's, and the table names which the mutation must give;
 * - keys: encodings OpenSSL decodes leniently (y >= p, x = 0 with the sign bit) are left to EVP
 *   (EDVERIFY_E_UNAVAILABLE), points off the curve refused (EDVERIFY_E_ARG), small-order points taken and
 *   verifying as EVP does;
 * - several threads on one key.
 * Wycheproof's Ed25519 vectors run through jws_verify, hence edverify, in test_rsaverify.c.
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

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "edverify.h"

static const uint8_t L[32] = { 0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
			       0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10 };

/* EVP's verdict: 1 verifies, 0 not, -1 OpenSSL refuses the key. */
static int evp(const uint8_t pub[32], const uint8_t *m, size_t ml, const uint8_t sig[64])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *c;
	int ok;

	if (!k)
		return -1;
	c = EVP_MD_CTX_new();
	if (!c || EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) != 1)
		fail_msg("evp init");
	ok = EVP_DigestVerify(c, sig, 64, m, ml) == 1;
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
	return ok;
}

static void sign(EVP_PKEY *k, const uint8_t *m, size_t ml, uint8_t sig[64])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t sl = 64;

	if (!c || EVP_DigestSignInit(c, NULL, NULL, NULL, k) != 1 || EVP_DigestSign(c, sig, &sl, m, ml) != 1 || sl != 64)
		fail_msg("sign");
	EVP_MD_CTX_free(c);
}

enum { M_NONE, M_RBIT, M_SBIT, M_MSG, M_S_PLUS_L, M_R_NONCANON, M_RANDOM, M_N };
static const char *const m_name[M_N] = { "valid", "R bit", "S bit", "message bit", "S + L", "R non-canonical",
					 "random signature" };

static void test_random_vs_evp(void **state)
{
	int n = 0, valid = 0;

	(void)state;
	for (int key = 0; key < 12; key++) {
		EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		uint8_t pub[32];
		size_t pl = sizeof(pub);
		edverify_key *v = NULL;

		if (!pk || EVP_PKEY_get_raw_public_key(pk, pub, &pl) != 1)
			fail_msg("keygen");
		assert_int_equal(edverify_new(pub, &v), 0);
		for (int i = 0; i < 70; i++) {
			uint8_t m[128], sig[64];
			size_t ml = (size_t)(i * 7 % 128);
			int w = i % M_N, want = w == M_NONE, e, o;

			RAND_bytes(m, sizeof(m));
			sign(pk, m, ml, sig);
			switch (w) {
			case M_RBIT: sig[i % 32] ^= (uint8_t)(1 << (i % 8)); break;
			case M_SBIT: sig[32 + i % 31] ^= (uint8_t)(1 << (i % 8)); break; /* stays below 2^253 */
			case M_MSG:
				if (ml == 0)
					ml = 1;
				m[ml - 1] ^= 1;
				break;
			case M_S_PLUS_L: {
				unsigned c = 0;

				for (int j = 0; j < 32; j++) {
					unsigned s = sig[32 + j] + L[j] + c;

					sig[32 + j] = (uint8_t)s;
					c = s >> 8;
				}
				break;
			}
			case M_R_NONCANON:
				/* y + p for a y below 19 is another encoding of it; a signature's R never is one */
				memset(sig, 0, 32);
				sig[0] = (uint8_t)(0xed + i % 19);
				memset(sig + 1, 0xff, 30);
				sig[31] = 0x7f;
				break;
			case M_RANDOM: RAND_bytes(sig, 64); sig[63] &= 0x0f; break;
			}
			e = evp(pub, m, ml, sig);
			o = edverify_verify(v, m, ml, sig) == 0;
			if (e != o)
				fail_msg("key %d, %s: EVP %d, edverify %d", key, m_name[w], e, o);
			if (e != want)
				fail_msg("key %d, %s: EVP %d, the table %d", key, m_name[w], e, want);
			n++;
			valid += e;
		}
		edverify_free(v);
		EVP_PKEY_free(pk);
	}
	print_message("%d signatures, %d valid\n", n, valid);
}

static void test_keys(void **state)
{
	/* y = 1 with the sign bit (x = 0, "negative"): OpenSSL takes it as the identity; left to EVP */
	uint8_t id_neg[32] = { 1 }, id[32] = { 1 }, noncanon[32], off[32], small[32];
	edverify_key *v = NULL;
	uint8_t m[3] = { 1, 2, 3 }, sig[64];

	(void)state;
	id_neg[31] = 0x80;
	assert_int_equal(edverify_new(id_neg, &v), EDVERIFY_E_UNAVAILABLE);
	assert_null(v);
	/* y = p + 1, the non-canonical encoding of y = 1 */
	memset(noncanon, 0xff, 32);
	noncanon[0] = 0xee;
	noncanon[31] = 0x7f;
	assert_int_equal(edverify_new(noncanon, &v), EDVERIFY_E_UNAVAILABLE);
	assert_null(v);
	/* y = 2 is not on the curve ((y^2 - 1) / (d y^2 + 1) is not a square) */
	memset(off, 0, 32);
	off[0] = 2;
	assert_int_equal(edverify_new(off, &v), EDVERIFY_E_ARG);
	assert_null(v);
	assert_int_equal(evp(off, m, sizeof(m), (uint8_t[64]){ 0 }), 0);
	/* the identity and a point of order 2 (y = -1) are taken: verdicts as EVP's */
	memset(small, 0xff, 32);
	small[0] = 0xec;
	small[31] = 0x7f;
	for (int k = 0; k < 2; k++) {
		const uint8_t *pub = k ? small : id;

		assert_int_equal(edverify_new(pub, &v), 0);
		for (int i = 0; i < 40; i++) {
			RAND_bytes(sig, sizeof(sig));
			sig[63] &= 0x0f;
			if (i == 0) /* R = identity, S = 0: [0]B - [k]A is the identity for A of small order... sometimes */
				memcpy(sig, id, 32), memset(sig + 32, 0, 32);
			assert_int_equal(edverify_verify(v, m, sizeof(m), sig) == 0, evp(pub, m, sizeof(m), sig));
		}
		edverify_free(v);
		v = NULL;
	}
}

typedef struct thr {
	const edverify_key *v;
	const uint8_t *m, *good, *bad;
	int wrong;
} thr;

static void *thr_main(void *p)
{
	thr *t = p;

	for (int i = 0; i < 100; i++) {
		if (edverify_verify(t->v, t->m, 16, t->good) != 0)
			t->wrong++;
		if (edverify_verify(t->v, t->m, 16, t->bad) != EDVERIFY_E_SIGNATURE)
			t->wrong++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	uint8_t pub[32], m[16] = "sixteen bytes...", good[64], bad[64];
	size_t pl = sizeof(pub);
	edverify_key *v = NULL;
	pthread_t th[4];
	thr t[4];

	(void)state;
	assert_int_equal(EVP_PKEY_get_raw_public_key(pk, pub, &pl), 1);
	assert_int_equal(edverify_new(pub, &v), 0);
	sign(pk, m, 16, good);
	memcpy(bad, good, 64);
	bad[40] ^= 2;
	for (int i = 0; i < 4; i++) {
		t[i] = (thr){ v, m, good, bad, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].wrong, 0);
	}
	edverify_free(v);
	EVP_PKEY_free(pk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_vs_evp),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
