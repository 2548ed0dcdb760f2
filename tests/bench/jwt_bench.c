/*
 * jwt_bench.c — identity-core figures (never pass/fail): signature verifications per second on one core for
 * RS256, PS256, ES256, EdDSA (raw jwt_verify, and the whole uncached path: parse + verify + payload JSON +
 * claim rules), and the cost of a cache hit next to one SHA-256 over the same 1 KiB token, in one run.
 * Usage: jwt_bench [seconds per figure, default 1.5]. Prints "name value unit" lines for bench_jwt.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "claims.h"
#include "jwks.h"
#include "jwt.h"
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

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.5;
	static const char *const algs[] = { "RS256", "PS256", "ES256", "EdDSA" };
	jwks_keyset *ks = NULL;
	claims_rules rules;

	if (jwks_parse((const uint8_t *)FIX_JWKS, strlen(FIX_JWKS), &ks, NULL, 0) != 0 ||
	    claims_rules_init(&rules, FIX_ISS, FIX_AUD, NULL, NULL, "groups", NULL) != 0)
		return 1;
	for (size_t a = 0; a < 4; a++) {
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
				if (jwt_verify(&jt, k) != 0)
					return 1;
			n += 50;
		} while ((el = now_s() - t0) < secs);
		printf("verify_%s %.0f /s\n", algs[a], n / el);
		jwt_token_free(&jt);

		/* the uncached verifier path, minus the cache */
		n = 0;
		t0 = now_s();
		do {
			for (int i = 0; i < 50; i++) {
				cJSON *p = NULL;
				identity *id = NULL;
				const char *d;

				if (jwt_parse((const uint8_t *)t, strlen(t), 0, &jt) != 0 ||
				    jwks_find(ks, jt.kid, jt.kid_len, jt.alg, &k) != 0 || jwt_verify(&jt, k) != 0 ||
				    jwt_json_parse(jt.payload, jt.payload_len, &p) != 0 ||
				    claims_map(&rules, p, FIX_NOW, k->fp, &id, &d) != 0)
					return 1;
				identity_release(id);
				cJSON_Delete(p);
				jwt_token_free(&jt);
			}
			n += 50;
		} while ((el = now_s() - t0) < secs);
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
		if (cache_create(65536, 600, &c) != 0)
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
		} while ((el = now_s() - t0) < secs);
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
		} while ((el = now_s() - t0) < secs);
		hit_ns = el * 1e9 / n;
		printf("sha256_1k %.0f ns\n", sha_ns);
		printf("cache_hit_1k %.0f ns\n", hit_ns);
		printf("cache_hit_over_sha256 %.2f x\n", hit_ns / sha_ns);
		cache_destroy(c);
	}
	claims_rules_free(&rules);
	jwks_keyset_release(ks);
	return 0;
}
