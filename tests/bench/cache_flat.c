/*
 * cache_flat.c — is a cache hit as cheap with 1,000,000 entries as with 1,000? (issue 7, "cost flat as the work
 * grows"). Filling the agent's cache with a million verified tokens would take minutes of signing and verifying,
 * so this drives src/cache.c directly: each entry has its own identity (as in the agent, where a hit touches the
 * identity's reference count), keys are pseudo-random 32-byte values, and lookups go to random entries so the CPU
 * caches do not hide the table size. Prints, per size, the median over rounds of ns per lookup, and of ns per hit
 * including the SHA-256 of a 1 KiB token (what the agent pays per cache hit), plus the 1M / 1k ratios.
 *
 *   cache_flat [rounds] [lookups per round]     defaults 5, 300000
 *
 * Bench only; the identities and the caches are freed before exit.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "identity.h"

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void key_of(uint64_t i, uint8_t key[CACHE_KEY_LEN])
{
	uint64_t s = i * 4 + 1;
	for (int k = 0; k < CACHE_KEY_LEN; k += 8) {
		uint64_t v = splitmix(&s);
		memcpy(key + k, &v, 8);
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef struct sized {
	size_t n;
	cache *c;
	const identity **ids;
	double lookup_ns[32], hit_ns[32];
	uint64_t found;
} sized;

static int fill(sized *z, int64_t now)
{
	size_t cap = z->n < 65536 ? 65536 : z->n * 2; /* the agent's default, or room for every entry */
	if (cache_create(cap, 0, 0, &z->c) < 0)
		return -1;
	z->ids = calloc(z->n, sizeof(*z->ids));
	if (!z->ids)
		return -1;
	for (size_t i = 0; i < z->n; i++) {
		char user[64], g1[32];
		snprintf(user, sizeof(user), "https://issuer.example#user-%06zu", i);
		snprintf(g1, sizeof(g1), "team-%zu", i % 50);
		const char *groups[] = { g1, "developers", "all-staff" };
		identity *id = identity_build(user, NULL, groups, 3, NULL, 0, now + 3600, 1);
		if (!id)
			return -1;
		uint8_t key[CACHE_KEY_LEN];
		key_of(i, key);
		cache_put(z->c, key, id, now);
		z->ids[i] = id;
	}
	return 0;
}

static void round_of(sized *z, int r, unsigned long lookups, const uint8_t *token, int64_t now)
{
	uint64_t s = 12345 + (uint64_t)r;
	uint8_t key[CACHE_KEY_LEN];
	double t0 = now_s();
	for (unsigned long i = 0; i < lookups; i++) {
		key_of(splitmix(&s) % z->n, key);
		const identity *id = cache_get(z->c, key, now);
		z->found += id != NULL;
		identity_release(id);
	}
	double t1 = now_s();
	for (unsigned long i = 0; i < lookups; i++) {
		cache_key(token, 1024, key); /* the agent hashes the token first: same cost for every size */
		key_of(splitmix(&s) % z->n, key);
		const identity *id = cache_get(z->c, key, now);
		identity_release(id);
	}
	double t2 = now_s();
	z->lookup_ns[r] = (t1 - t0) * 1e9 / (double)lookups;
	z->hit_ns[r] = (t2 - t1) * 1e9 / (double)lookups;
}

static double median(double *v, int n)
{
	double t[32];
	memcpy(t, v, (size_t)n * sizeof(double));
	qsort(t, (size_t)n, sizeof(double), cmp_d);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	unsigned long lookups = argc > 2 ? strtoul(argv[2], NULL, 10) : 300000;
	if (rounds < 1 || rounds > 32 || lookups == 0)
		return 2;
	int64_t now = (int64_t)time(NULL);
	uint8_t token[1024];
	for (size_t i = 0; i < sizeof(token); i++)
		token[i] = (uint8_t)('A' + i % 26);
	sized zs[2] = { { .n = 1000 }, { .n = 1000000 } };
	int rc = 1;
	for (int k = 0; k < 2; k++)
		if (fill(&zs[k], now) < 0) {
			fprintf(stderr, "cache_flat: out of memory\n");
			goto out;
		}
	for (int r = 0; r < rounds; r++) /* interleaved, so that machine noise hits both sizes alike */
		for (int k = 0; k < 2; k++)
			round_of(&zs[k], r, lookups, token, now);
	for (int k = 0; k < 2; k++) {
		cache_stats st;
		cache_stats_get(zs[k].c, &st);
		printf("entries=%zu held=%zu capacity=%zu found=%.3f lookup_ns=%.1f hit_ns=%.1f\n", zs[k].n, st.size,
		       cache_capacity(zs[k].c), (double)zs[k].found / ((double)rounds * (double)lookups),
		       median(zs[k].lookup_ns, rounds), median(zs[k].hit_ns, rounds));
	}
	double rl[32], rh[32];
	for (int r = 0; r < rounds; r++) {
		rl[r] = zs[1].lookup_ns[r] / zs[0].lookup_ns[r];
		rh[r] = zs[1].hit_ns[r] / zs[0].hit_ns[r];
	}
	printf("ratio_1M_over_1k lookup=%.2f hit=%.2f\n", median(rl, rounds), median(rh, rounds));
	rc = 0;
out:
	for (int k = 0; k < 2; k++) {
		if (zs[k].c)
			cache_destroy(zs[k].c);
		for (size_t i = 0; zs[k].ids && i < zs[k].n; i++)
			identity_release(zs[k].ids[i]);
		free(zs[k].ids);
	}
	return rc;
}
