/*
 * fuzz_rsaverdict.c — verdict-level differential fuzzing of rsaverify_verify (src/rsaverify.c, the IFMA path)
 * against EVP_PKEY_verify with jwks.c's settings, for both paddings (PKCS#1 v1.5 and PSS with any salt length).
 * fuzz_rsaverify checks the arithmetic; this checks the verdicts: random inputs almost never make a valid
 * signature, so each input starts from a valid encoded message (EMSA-PKCS1-v1_5 or EMSA-PSS, SHA-256/384/512,
 * a 2048- or 2051-bit key, salt length from the input), applies sparse XOR changes to it, and signs the result
 * raw with the private key: the two verifiers must agree on accept and refuse; else abort().
 *
 * Input: byte 0 picks the key (bit 0), the hash (bits 1-2, mod 3) and the base encoding (bit 3: PSS);
 * byte 1 the PSS salt length (255: the largest); then (offset hi, offset lo, xor) triples.
 * On a CPU without AVX-512 IFMA rsaverify is unavailable and every input is a no-op.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include "rsaverify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static EVP_PKEY *key[2];
static rsaverify_key *rv[2];
static int kbytes[2];

static int evp_verdict(EVP_PKEY *k, int pss, const EVP_MD *md, const uint8_t *h, size_t hl, const uint8_t *s, size_t sl)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	int ok;
	if (!c || EVP_PKEY_verify_init(c) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1 ||
	    (pss && (EVP_PKEY_CTX_set_rsa_pss_saltlen(c, RSA_PSS_SALTLEN_AUTO) != 1 ||
		     EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) != 1)) ||
	    EVP_PKEY_CTX_set_signature_md(c, md) != 1)
		abort();
	ok = EVP_PKEY_verify(c, s, sl, h, hl) == 1;
	EVP_PKEY_CTX_free(c);
	return ok;
}

static void init(void)
{
	static const int bits[2] = { 2048, 2051 };
	for (int i = 0; i < 2; i++) {
		key[i] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits[i]);
		if (!key[i])
			abort();
		if (rsaverify_new(key[i], &rv[i]) != 0)
			rv[i] = NULL; /* no IFMA here: nothing to compare */
		kbytes[i] = EVP_PKEY_get_size(key[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const EVP_MD *mds[3] = { EVP_sha256(), EVP_sha384(), EVP_sha512() };
	uint8_t h[64], em[512], s[512];
	unsigned hl;
	int ki, pssbase, k;
	const EVP_MD *md;
	RSA *r;
	BIGNUM *n = NULL, *emb;

	if (size < 2)
		return 0;
	if (!key[0])
		init();
	if (!rv[0] || !rv[1])
		return 0;
	ki = data[0] & 1;
	md = mds[(data[0] >> 1) % 3];
	pssbase = (data[0] >> 3) & 1;
	k = kbytes[ki];
	EVP_Digest("kos", 3, h, &hl, md, NULL);
	r = EVP_PKEY_get1_RSA(key[ki]);
	memset(em, 0, sizeof(em));
	if (pssbase) {
		int slen = data[1] == 255 ? RSA_PSS_SALTLEN_MAX : data[1];
		/* EMSA-PSS (emBits = modBits - 1; for 2048 bits the top octet is 0 and em is k octets) */
		if (RSA_padding_add_PKCS1_PSS_mgf1(r, em, h, md, md, slen) != 1) {
			RSA_free(r);
			return 0;
		}
	} else {
		/* 00 01 FF.. 00 DigestInfo H, via OpenSSL's own encoder */
		static const uint8_t p256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
		static const uint8_t p384[] = { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30 };
		static const uint8_t p512[] = { 0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40 };
		const uint8_t *p = hl == 32 ? p256 : hl == 48 ? p384 : p512;
		size_t t = 19 + hl;
		em[0] = 0; em[1] = 1;
		memset(em + 2, 0xff, (size_t)k - t - 3);
		em[k - t - 1] = 0;
		memcpy(em + k - t, p, 19);
		memcpy(em + k - hl, h, hl);
	}
	/* sparse mutations: (offset hi, offset lo, xor) triples */
	for (size_t i = 2; i + 2 < size; i += 3)
		em[((size_t)data[i] << 8 | data[i + 1]) % (size_t)k] ^= data[i + 2];
	/* keep em below n */
	EVP_PKEY_get_bn_param(key[ki], OSSL_PKEY_PARAM_RSA_N, &n);
	emb = BN_bin2bn(em, k, NULL);
	if (BN_cmp(emb, n) >= 0)
		em[0] = 0, em[1] &= 0x7f;
	BN_free(emb);
	BN_free(n);
	if (RSA_private_encrypt(k, em, s, r, RSA_NO_PADDING) != k)
		abort();
	RSA_free(r);
	for (int pss = 0; pss < 2; pss++) {
		int e = evp_verdict(key[ki], pss, md, h, hl, s, (size_t)k);
		int o = rsaverify_verify(rv[ki], pss, md, h, hl, s, (size_t)k);
		if (o != 0 && o != RSAVERIFY_E_SIGNATURE)
			abort();
		if ((o == 0) != e)
			abort();
	}
	return 0;
}
