/*
 * jwt_bench.c — identity-core figures (never pass/fail): signature verifications per second on one core for
 * RS256, PS256, ES256, EdDSA, ES384, ES512 (raw jws_verify, and the whole uncached path: parse + verify + payload JSON +
 * claim rules), the bare OpenSSL verification of the same token with the same key in the same process
 * (EVP_DigestVerifyInit + EVP_DigestVerify: what any verifier must pay, the "physical limit"), and the cost of
 * a cache hit next to one SHA-256 over the same 1 KiB token, in one run.
 * Usage: jwt_bench [seconds per figure, default 1.5] | jwt_bench -n COUNT (fixed iteration count per figure,
 * for callgrind: instruction counts of our path and of the bare OpenSSL path in one run). Prints
 * "name value unit" lines for bench_jwt.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "cache.h"
#include "claims.h"
#include "flagcfg.h"
#include "jwks.h"
#include "jws.h"
#include "jwt.h"
#include "mapping.h"
#include "verifier.h"

#include "../fixtures/tokens.inc"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *tok(const char *name)
{
	for (size_t i = 0; i < FIX_NTOKENS; i++)
		if (strcmp(FIX_TOKENS[i].name, name) == 0)
			return FIX_TOKENS[i].token;
	abort();
}

static volatile unsigned sink;
static unsigned long fixed_n; /* -n: run exactly this many iterations per figure */

/* The loop condition of every figure: timed, or a fixed count. */
static int more(unsigned long n, double t0, double secs, double *el)
{
	*el = now_s() - t0;
	return fixed_n ? n < fixed_n : *el < secs;
}

/* The JWS digest of an alg (the fixture tokens are RS256, PS256, ES256/384/512 and EdDSA). */
static const char *md_name(int alg)
{
	return alg == JWA_ES384 ? "SHA384" : alg == JWA_ES512 ? "SHA512" : "SHA256";
}

/* The same token verified by OpenSSL alone: digest + verify through EVP_DigestVerify, a fresh context per
 * token as every verifier needs, padding as the algorithm says. ES256's JOSE r||s is turned into DER once,
 * outside the loop. Returns 1 when the signature verifies. */
static int evp_verify_once(const jwt_token *t, const jwks_key *k, const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = NULL;
	const char *md = t->alg == JWA_EDDSA ? NULL : md_name(t->alg);
	int ok = 0;

	if (!m || EVP_DigestVerifyInit_ex(m, &pc, md, NULL, NULL, k->pkey, NULL) != 1)
		goto out;
	if (t->alg == JWA_PS256 && (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1 ||
					EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_AUTO) != 1))
		goto out;
	ok = EVP_DigestVerify(m, sig, sig_len, t->signing_input, t->signing_input_len) == 1;
out:
	EVP_MD_CTX_free(m);
	return ok;
}

static size_t es_der(const jwt_token *t, uint8_t *der, size_t cap)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(t->sig, (int)t->sig_len / 2, NULL), *s = BN_bin2bn(t->sig + t->sig_len / 2,
										 (int)t->sig_len / 2, NULL);
	unsigned char *o = der;
	int n;

	if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1 || i2d_ECDSA_SIG(es, NULL) > (int)cap)
		abort();
	n = i2d_ECDSA_SIG(es, &o);
	ECDSA_SIG_free(es);
	return (size_t)n;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.5;
	/* ES384/ES512 last: bench_jwt.sh reads the first four; jws_verify uses the precomputed ECDSA verifier
	 * (ecverify.h) for all three curves, and bare_ is OpenSSL's EVP path on the same key */
	static const char *const algs[] = { "RS256", "PS256", "ES256", "EdDSA", "ES384", "ES512" };
	jwks_keyset *ks = NULL;
	/* the claim rules of --oidc-issuer-url FIX_ISS --oidc-client-id FIX_AUD --oidc-groups-claim groups, as the
	 * verifier builds them (flagcfg.h, mapping.h) */
	const flagcfg fc = { .issuer_url = FIX_ISS, .client_id = FIX_AUD, .groups_claim = "groups" };
	const char *aud = FIX_AUD;
	authcfg_config *ac = NULL;
	mapping *rules = NULL;

	if (argc > 2 && strcmp(argv[1], "-n") == 0)
		fixed_n = strtoul(argv[2], NULL, 10);
	if (jwks_parse((const uint8_t *)FIX_JWKS, strlen(FIX_JWKS), &ks, NULL, 0) != 0 ||
	    flagcfg_build(&fc, &ac, NULL, 0) != 0 || mapping_compile(&ac->jwt[0], &rules, NULL, 0) != 0)
		return 1;
	authcfg_free(ac);
	for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
		char name[32];
		const char *t;
		jwt_token jt;
		const jwks_key *k = NULL;
		double t0, el;
		unsigned long n = 0;

		snprintf(name, sizeof(name), "good_%s", algs[a]);
		t = tok(name);
		if (jwt_parse((const uint8_t *)t, strlen(t), 0, &jt) != 0 ||
		    jwks_find(ks, jt.kid, jt.kid_len, jt.alg, &k) != 0)
			return 1;
		t0 = now_s();
		do {
			for (int i = 0; i < 50; i++)
				if (jws_verify(&jt, k) != 0)
					return 1;
			n += 50;
		} while (more(n, t0, secs, &el));
		printf("verify_%s %.0f /s\n", algs[a], n / el);

		/* the same token, OpenSSL alone */
		{
			uint8_t der[160];
			const uint8_t *sig = jt.sig;
			size_t sig_len = jt.sig_len;

			if (jt.alg == JWA_ES256 || jt.alg == JWA_ES384 || jt.alg == JWA_ES512) {
				sig_len = es_der(&jt, der, sizeof(der));
				sig = der;
			}
			n = 0;
			t0 = now_s();
			do {
				for (int i = 0; i < 50; i++)
					if (!evp_verify_once(&jt, k, sig, sig_len))
						return 1;
				n += 50;
			} while (more(n, t0, secs, &el));
			printf("evp_%s %.0f /s\n", algs[a], n / el);

			/* what `openssl speed` times: the bare public-key operation on a context prepared once, the
			 * digest already computed (RSA/ECDSA), or a one-shot Ed25519 context reused */
			n = 0;
			if (jt.alg == JWA_EDDSA) {
				EVP_MD_CTX *m = EVP_MD_CTX_new();

				if (!m || EVP_DigestVerifyInit_ex(m, NULL, NULL, NULL, NULL, k->pkey, NULL) != 1)
					return 1;
				t0 = now_s();
				do {
					for (int i = 0; i < 50; i++)
						if (EVP_DigestVerify(m, sig, sig_len, jt.signing_input,
								     jt.signing_input_len) != 1)
							return 1;
					n += 50;
				} while (more(n, t0, secs, &el));
				EVP_MD_CTX_free(m);
			} else {
				uint8_t h[64];
				unsigned hl = 0;

				if (EVP_Digest(jt.signing_input, jt.signing_input_len, h, &hl,
					       EVP_get_digestbyname(md_name(jt.alg)), NULL) != 1)
					return 1;
				t0 = now_s();
				do {
					for (int i = 0; i < 50; i++)
						if (EVP_PKEY_verify(k->vctx[jt.alg], sig, sig_len, h, hl) != 1)
							return 1;
					n += 50;
				} while (more(n, t0, secs, &el));
			}
			printf("bare_%s %.0f /s\n", algs[a], n / el);
		}
		jwt_token_free(&jt);

		/* the uncached verifier path, minus the cache */
		n = 0;
		t0 = now_s();
		do {
			for (int i = 0; i < 50; i++) {
				cJSON *p = NULL;
				identity *id = NULL;
				const char *d;
				int64_t exp;

				if (jwt_parse((const uint8_t *)t, strlen(t), 0, &jt) != 0 ||
				    jwks_find(ks, jt.kid, jt.kid_len, jt.alg, &k) != 0 || jws_verify(&jt, k) != 0 ||
				    jsonstrict_parse(jt.payload, jt.payload_len, &p) != 0 ||
				    claims_check_std(FIX_ISS, &aud, 1, p, FIX_NOW, &exp, &d) != 0 ||
				    mapping_apply(rules, p, exp, k->fp, false, &id, &d, NULL) != 0)
					return 1;
				identity_release(id);
				cJSON_Delete(p);
				jwt_token_free(&jt);
			}
			n += 50;
		} while (more(n, t0, secs, &el));
		printf("uncached_%s %.0f /s\n", algs[a], n / el);
	}

	/* cache hit on a 1 KiB token vs one SHA-256 of it */
	{
		char big[1025];
		uint8_t key[CACHE_KEY_LEN];
		cache *c = NULL;
		identity *id;
		double t0, el, sha_ns, hit_ns;
		unsigned long n = 0;
		const char *gs[1] = { "dev" };

		memset(big, 'a', 1024);
		big[1024] = 0;
		if (cache_create(65536, 0, 600, &c) != 0)
			return 1;
		id = identity_build(FIX_ISS "#alice", NULL, gs, 1, NULL, 0, FIX_NOW + 3600, 1);
		cache_key((const uint8_t *)big, 1024, key);
		cache_put(c, key, id, FIX_NOW);
		identity_release(id);
		t0 = now_s();
		do {
			for (int i = 0; i < 1000; i++) {
				big[0] = (char)('a' + (i & 1)); /* defeat any hoisting; same length */
				cache_key((const uint8_t *)big, 1024, key);
				sink += key[0];
			}
			n += 1000;
		} while (more(n, t0, secs, &el));
		sha_ns = el * 1e9 / n;
		big[0] = 'a';
		n = 0;
		t0 = now_s();
		do {
			for (int i = 0; i < 1000; i++) {
				const identity *h;

				cache_key((const uint8_t *)big, 1024, key);
				h = cache_get(c, key, FIX_NOW);
				if (!h)
					return 1;
				sink += (unsigned)h->ngroups;
				identity_release(h);
			}
			n += 1000;
		} while (more(n, t0, secs, &el));
		hit_ns = el * 1e9 / n;
		printf("sha256_1k %.0f ns\n", sha_ns);
		printf("cache_hit_1k %.0f ns\n", hit_ns);
		printf("cache_hit_over_sha256 %.2f x\n", hit_ns / sha_ns);
		cache_destroy(c);
	}
	mapping_free(rules);
	jwks_keyset_release(ks);
	return 0;
}
