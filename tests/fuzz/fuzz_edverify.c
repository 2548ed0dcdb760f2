/*
 * fuzz_edverify.c — differential fuzzing of the tabulated Ed25519 verifier (edverify.h) against OpenSSL's
 * EVP_DigestVerify: the two must give the same verdict on every input, else abort().
 *
 * Input: byte 0 bit 0 picks the mode.
 *   fixed key (bit 0 clear): a key from a fixed seed ("kos-edverify-fuzz" padded) and its signature of the fixed
 *     message "kos"; bytes 1-64 are XORed into that signature (all zero: the valid one), the rest, if any, is the
 *     message instead of "kos";
 *   any key (bit 0 set): bytes 1-32 are the public key, 33-96 the signature, the rest the message (zeros past the
 *     end of the input). A key edverify leaves to EVP (lenient encodings) is skipped; one it calls off the curve
 *     must verify nothing through EVP either.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "edverify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fixed_pub[32], fixed_sig[64];
static edverify_key *fixed;

static int evp(const uint8_t pub[32], const uint8_t *m, size_t ml, const uint8_t sig[64])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok;

	if (!k || !c || EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) != 1)
		abort();
	ok = EVP_DigestVerify(c, sig, 64, m, ml) == 1;
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
	return ok;
}

static void init(void)
{
	static const uint8_t seed[32] = "kos-edverify-fuzz";
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t pl = 32, sl = 64;

	if (!k || !c || EVP_PKEY_get_raw_public_key(k, fixed_pub, &pl) != 1 ||
	    EVP_DigestSignInit(c, NULL, NULL, NULL, k) != 1 ||
	    EVP_DigestSign(c, fixed_sig, &sl, (const uint8_t *)"kos", 3) != 1 || edverify_new(fixed_pub, &fixed) != 0)
		abort();
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pub[32], sig[64];
	const uint8_t *msg;
	size_t ml;
	edverify_key *v = NULL;
	int rc, ours;

	if (size < 1)
		return 0;
	if (!fixed)
		init();
	if (!(data[0] & 1)) {
		memcpy(sig, fixed_sig, 64);
		for (size_t i = 0; i < 64 && 1 + i < size; i++)
			sig[i] ^= data[1 + i];
		msg = size > 65 ? data + 65 : (const uint8_t *)"kos";
		ml = size > 65 ? size - 65 : 3;
		ours = edverify_verify(fixed, msg, ml, sig);
		if (ours != 0 && ours != EDVERIFY_E_SIGNATURE)
			abort();
		if ((ours == 0) != evp(fixed_pub, msg, ml, sig))
			abort();
		return 0;
	}
	memset(pub, 0, sizeof(pub));
	memset(sig, 0, sizeof(sig));
	memcpy(pub, data + 1, size - 1 < 32 ? size - 1 : 32);
	if (size > 33)
		memcpy(sig, data + 33, size - 33 < 64 ? size - 33 : 64);
	msg = size > 97 ? data + 97 : data;
	ml = size > 97 ? size - 97 : 0;
	rc = edverify_new(pub, &v);
	if (rc == EDVERIFY_E_UNAVAILABLE)
		return 0;
	if (rc == EDVERIFY_E_ARG) {
		if (evp(pub, msg, ml, sig))
			abort();
		return 0;
	}
	if (rc != 0)
		abort();
	ours = edverify_verify(v, msg, ml, sig);
	if ((ours == 0) != evp(pub, msg, ml, sig))
		abort();
	edverify_free(v);
	return 0;
}
