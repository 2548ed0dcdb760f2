/*
 * fuzz_rsaverify.c — differential fuzzing of the IFMA RSA public operation (rsaverify_public) against
 * OpenSSL's BN_mod_exp: for any modulus size the fast path takes, any odd 32-bit exponent (a superset of what jwks.c admits, which stops at Go's 2^31 - 1) and any s, the two
 * must agree (s < n), or rsaverify must refuse s (s >= n); else abort().
 *
 * Input: bytes 0-1 pick the modulus size, 2048 + (LE16 % 2049) bits (every register count and each boundary
 * between them); byte 2 the exponent (3, 5, 17, 65537, 2^31 + 1, 2^32 - 1, or bytes 3-6 made odd and > 1);
 * then the modulus (its top bit and bit 0 forced on) and s, big-endian, k octets each, 0xa5 past the end of the
 * input. Where the CPU lacks AVX-512 IFMA, rsaverify_new() is UNAVAILABLE and every input returns at once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "rsaverify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static BN_CTX *bc;

static EVP_PKEY *pub_of(const BIGNUM *n, const BIGNUM *e)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *p = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *k = NULL;

	if (!b || !c || OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, e) != 1 || (p = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    EVP_PKEY_fromdata_init(c) != 1 || EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, p) != 1)
		abort();
	OSSL_PARAM_free(p);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_CTX_free(c);
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned long exps[] = { 3, 5, 17, 65537, 0x80000001ul, 0xfffffffful };
	uint8_t nb[512], sb[512], em[512], want[512];
	size_t bits, k, off = 7;
	unsigned long e;
	BIGNUM *n, *be, *s, *r;
	EVP_PKEY *pk;
	rsaverify_key *v = NULL;
	int rc;

	if (size < 7)
		return 0;
	if (!bc && !(bc = BN_CTX_new()))
		abort();
	bits = 2048 + ((size_t)data[0] | (size_t)data[1] << 8) % 2049;
	k = (bits + 7) / 8;
	if (data[2] % 7 < 6)
		e = exps[data[2] % 7];
	else
		e = ((unsigned long)data[3] << 24 | (unsigned long)data[4] << 16 | (unsigned long)data[5] << 8 | data[6]) | 1;
	if (e == 1)
		e = 3;
	for (size_t i = 0; i < k; i++)
		nb[i] = off < size ? data[off++] : 0xa5;
	for (size_t i = 0; i < k; i++)
		sb[i] = off < size ? data[off++] : 0xa5;
	n = BN_bin2bn(nb, (int)k, NULL);
	be = BN_new();
	s = BN_bin2bn(sb, (int)k, NULL);
	r = BN_new();
	if (!n || !be || !s || !r || BN_set_word(be, e) != 1)
		abort();
	/* exactly bits long and odd: clear above, set the top bit and bit 0 */
	for (size_t i = bits; i < 8 * k; i++)
		BN_clear_bit(n, (int)i);
	if (BN_set_bit(n, (int)bits - 1) != 1 || BN_set_bit(n, 0) != 1 || BN_bn2binpad(n, nb, (int)k) != (int)k)
		abort();
	pk = pub_of(n, be);
	rc = rsaverify_new(pk, &v);
	if (rc == RSAVERIFY_E_UNAVAILABLE)
		goto out;
	if (rc != 0)
		abort();
	rc = rsaverify_public(v, sb, k, em, k);
	if (BN_cmp(s, n) >= 0) {
		if (rc != RSAVERIFY_E_SIGNATURE)
			abort();
	} else {
		if (rc != 0 || BN_mod_exp(r, s, be, n, bc) != 1 || BN_bn2binpad(r, want, (int)k) != (int)k ||
		    memcmp(em, want, k) != 0)
			abort();
	}
out:
	rsaverify_free(v);
	EVP_PKEY_free(pk);
	BN_free(n);
	BN_free(be);
	BN_free(s);
	BN_free(r);
	return 0;
}
