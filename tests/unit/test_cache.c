/*
 * test_cache.c — the verified-token cache alone: insert/lookup, expiry at min(exp, insertion + ttl) with the
 * clock passed in, replacement, bounded eviction of the entry closest to its end, shard independence, drops,
 * reference counts, concurrent readers and writers, and that a hit (cache_get, and issuers_verify served from
 * the cache) allocates nothing.
 *
 * Counting allocations: under ASan (how tests/run_all.py runs unit tests) malloc cannot be interposed — ASan
 * owns it — so the count comes from ASan's own allocator hooks (__sanitizer_install_malloc_and_free_hooks),
 * which see every malloc/calloc/realloc of every library, OpenSSL's included. Without ASan this file
 * interposes malloc/calloc/realloc itself (the executable's definitions win over libc's for every shared
 * library) and forwards to glibc's __libc_* entry points. Either way a positive control proves the counter
 * counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "identity.h"
#include "jwks.h"
#include "issuers.h"
#include "verifier.h"

#include "../fixtures/tokens.inc"

/* ---- allocation counter ---- */

#if defined(__SANITIZE_ADDRESS__)
#define KOS_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KOS_TEST_ASAN 1
#endif
#endif

static _Thread_local int counting;
static atomic_ulong nallocs;

#ifdef KOS_TEST_ASAN
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
					      void (*free_hook)(const volatile void *));

static void on_malloc(const volatile void *p, size_t n)
{
	(void)p;
	(void)n;
	if (counting)
		atomic_fetch_add(&nallocs, 1);
}

static void on_free(const volatile void *p)
{
	(void)p;
}

static void counter_init(void)
{
	static int done;

	if (!done)
		assert_int_not_equal(__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free), 0);
	done = 1;
}
#else
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t m, size_t n);
void *__libc_realloc(void *p, size_t n);
void *malloc(size_t n);
void *calloc(size_t m, size_t n);
void *realloc(void *p, size_t n);

void *malloc(size_t n)
{
	if (counting)
		atomic_fetch_add(&nallocs, 1);
	return __libc_malloc(n);
}

void *calloc(size_t m, size_t n)
{
	if (counting)
		atomic_fetch_add(&nallocs, 1);
	return __libc_calloc(m, n);
}

void *realloc(void *p, size_t n)
{
	if (counting)
		atomic_fetch_add(&nallocs, 1);
	return __libc_realloc(p, n);
}

static void counter_init(void)
{
}
#endif

static void count_start(void)
{
	counter_init();
	atomic_store(&nallocs, 0);
	counting = 1;
}

static unsigned long count_stop(void)
{
	counting = 0;
	return atomic_load(&nallocs);
}

/* ---- helpers ---- */

#define NOW 1000000

static void mkkey(uint8_t key[CACHE_KEY_LEN], unsigned shard, unsigned n)
{
	memset(key, 0, CACHE_KEY_LEN);
	key[0] = (uint8_t)shard; /* cache.c: key[0] picks the shard, key[8..16) the set */
	key[20] = (uint8_t)n;
	key[21] = (uint8_t)(n >> 8);
}

static identity *mkid(const char *user, int64_t exp)
{
	static const char *const groups[] = { "dev", "ops" };
	identity *id = identity_build(user, NULL, groups, 2, NULL, 0, exp, 42);

	assert_non_null(id);
	return id;
}

static unsigned refs(const identity *id)
{
	return atomic_load(&((identity *)id)->refs);
}

static cache *mk(size_t n, unsigned ttl)
{
	cache *c = NULL;

	assert_int_equal(cache_create(n, 0, ttl, &c), 0);
	return c;
}

/* ---- tests ---- */

static void test_create_bounds(void **state)
{
	cache *c = (cache *)0x1;

	(void)state;
	assert_int_equal(cache_create(0, 0, 0, &c), -1);
	assert_int_equal(cache_create(SIZE_MAX, 0, 0, &c), -1);
	assert_ptr_equal(c, (cache *)0x1);
	c = mk(1, 0);
	assert_int_equal(cache_capacity(c), 512); /* 64 shards x one 8-way set */
	cache_destroy(c);
	c = mk(513, 0);
	assert_int_equal(cache_capacity(c), 1024);
	cache_destroy(c);
	cache_destroy(NULL);
}

static void test_put_get(void **state)
{
	cache *c = mk(1000, 0);
	identity *a = mkid("alice", NOW + 100), *b = mkid("bob", NOW + 100);
	uint8_t ka[CACHE_KEY_LEN], kb[CACHE_KEY_LEN];
	const identity *got;
	cache_stats st;

	(void)state;
	cache_key((const uint8_t *)"token-a", 7, ka);
	cache_key((const uint8_t *)"token-b", 7, kb);
	assert_memory_not_equal(ka, kb, CACHE_KEY_LEN);
	assert_null(cache_get(c, ka, NOW));
	cache_put(c, ka, a, NOW);
	assert_int_equal(refs(a), 2); /* the cache holds its own reference */
	got = cache_get(c, ka, NOW);
	assert_ptr_equal(got, a);
	assert_int_equal(refs(a), 3); /* and hands the caller a new one */
	identity_release(got);
	assert_null(cache_get(c, kb, NOW));
	cache_put(c, kb, b, NOW);
	assert_ptr_equal((got = cache_get(c, kb, NOW)), b);
	identity_release(got);
	/* same key again: replaced, the old identity's reference released */
	cache_put(c, ka, b, NOW);
	assert_int_equal(refs(a), 1);
	assert_ptr_equal((got = cache_get(c, ka, NOW)), b);
	identity_release(got);
	cache_stats_get(c, &st);
	assert_int_equal(st.size, 2);
	assert_int_equal(st.hits, 3);
	assert_int_equal(st.misses, 2);
	assert_int_equal(st.evictions, 0);
	/* drop: gone, reference released; dropping an absent key is a no-op */
	cache_drop(c, ka);
	cache_drop(c, ka);
	assert_null(cache_get(c, ka, NOW));
	assert_int_equal(refs(b), 2); /* the test's and kb's */
	cache_stats_get(c, &st);
	assert_int_equal(st.size, 1);
	cache_destroy(c);
	assert_int_equal(refs(b), 1); /* destroy releases what it held */
	identity_release(a);
	identity_release(b);
}

/* an entry lives while now <= min(exp, insertion + ttl) */
static void test_expiry(void **state)
{
	static const struct {
		const char *name;
		unsigned ttl;
		int64_t exp_in;   /* exp - now at insertion */
		int64_t last_ok;  /* last second (relative) a get hits */
	} cases[] = {
		{ "ttl shorter than exp", 30, 100, 30 },
		{ "exp shorter than ttl", 30, 10, 10 },
		{ "ttl 0: until exp", 0, 100, 100 },
		{ "exp == ttl", 50, 50, 50 },
		{ "exp == now (still valid, as the claim rules say)", 30, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cache *c = mk(512, cases[i].ttl);
		identity *id = mkid("alice", NOW + cases[i].exp_in);
		uint8_t k[CACHE_KEY_LEN];
		const identity *got;
		cache_stats st;

		mkkey(k, 3, 1);
		cache_put(c, k, id, NOW);
		got = cache_get(c, k, NOW + cases[i].last_ok);
		if (got != id)
			fail_msg("%s: miss at +%lld", cases[i].name, (long long)cases[i].last_ok);
		identity_release(got);
		if (cache_get(c, k, NOW + cases[i].last_ok + 1))
			fail_msg("%s: hit at +%lld", cases[i].name, (long long)cases[i].last_ok + 1);
		/* the expired entry was removed on that lookup, its reference released */
		cache_stats_get(c, &st);
		assert_int_equal(st.size, 0);
		assert_int_equal(refs(id), 1);
		/* a clock going backwards does not revive it */
		assert_null(cache_get(c, k, NOW));
		cache_destroy(c);
		identity_release(id);
	}
	/* a token already expired at insertion is not stored */
	{
		cache *c = mk(512, 30);
		identity *id = mkid("alice", NOW - 1);
		uint8_t k[CACHE_KEY_LEN];
		cache_stats st;

		mkkey(k, 3, 1);
		cache_put(c, k, id, NOW);
		cache_stats_get(c, &st);
		assert_int_equal(st.size, 0);
		assert_int_equal(refs(id), 1);
		assert_null(cache_get(c, k, NOW - 5));
		cache_destroy(c);
		identity_release(id);
	}
}

/* one set (8 ways) full: the entry closest to its end goes; expired ones are reused first, not counted as
 * evictions; the table never grows */
static void test_eviction(void **state)
{
	cache *c = mk(512, 0); /* one set per shard: every key of shard 5 shares a set */
	identity *ids[10];
	uint8_t k[10][CACHE_KEY_LEN];
	cache_stats st;
	const identity *got;

	(void)state;
	for (int i = 0; i < 10; i++) {
		/* until: 8 entries with ends 1000..8000 s away, the one ending soonest is #3 */
		ids[i] = mkid("u", NOW + (i == 3 ? 500 : 1000 * (i + 1)));
		mkkey(k[i], 5, (unsigned)i);
	}
	for (int i = 0; i < 8; i++)
		cache_put(c, k[i], ids[i], NOW);
	cache_stats_get(c, &st);
	assert_int_equal(st.size, 8);
	cache_put(c, k[8], ids[8], NOW);
	cache_stats_get(c, &st);
	assert_int_equal(st.size, 8);
	assert_int_equal(st.evictions, 1);
	assert_null(cache_get(c, k[3], NOW)); /* the soonest to end was evicted… */
	assert_int_equal(refs(ids[3]), 1);    /* …and released */
	for (int i = 0; i < 9; i++)
		if (i != 3) {
			assert_non_null((got = cache_get(c, k[i], NOW)));
			identity_release(got);
		}
	/* at NOW + 1500 the entry of #0 (ends at +1000) is expired: #9 takes its slot without an eviction */
	cache_put(c, k[9], ids[9], NOW + 1500);
	cache_stats_get(c, &st);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(refs(ids[0]), 1);
	assert_non_null((got = cache_get(c, k[9], NOW + 1500)));
	identity_release(got);
	cache_destroy(c);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(refs(ids[i]), 1);
		identity_release(ids[i]);
	}
}

/* many more distinct tokens than capacity: size stays at capacity, every evicted reference is released */
static void test_bounded(void **state)
{
	cache *c = mk(600, 0);
	identity *id = mkid("u", NOW + 100);
	cache_stats st;
	size_t cap = cache_capacity(c);

	(void)state;
	for (unsigned i = 0; i < 20000; i++) {
		uint8_t k[CACHE_KEY_LEN];
		char tok[32];

		snprintf(tok, sizeof(tok), "token-%u", i);
		cache_key((const uint8_t *)tok, strlen(tok), k);
		cache_put(c, k, id, NOW);
	}
	cache_stats_get(c, &st);
	assert_int_equal(cap, 1024);
	assert_true(st.size <= cap);
	assert_true(st.size > cap * 9 / 10); /* uniform keys fill nearly every way */
	assert_int_equal(st.evictions, 20000 - st.size);
	assert_int_equal(refs(id), 1 + st.size);
	cache_destroy(c);
	assert_int_equal(refs(id), 1);
	identity_release(id);
}

/* a full set in one shard does not evict anything elsewhere */
static void test_shard_independence(void **state)
{
	cache *c = mk(512, 0);
	identity *id = mkid("u", NOW + 100);
	uint8_t k[CACHE_KEY_LEN];
	cache_stats st;
	const identity *got;

	(void)state;
	for (unsigned s = 0; s < 64; s++) {
		mkkey(k, s, 0);
		cache_put(c, k, id, NOW);
	}
	for (unsigned i = 1; i < 100; i++) { /* hammer shard 7 */
		mkkey(k, 7, i);
		cache_put(c, k, id, NOW);
	}
	cache_stats_get(c, &st);
	assert_int_equal(st.evictions, 100 - 8);
	assert_int_equal(st.size, 63 + 8);
	for (unsigned s = 0; s < 64; s++) {
		if (s == 7)
			continue;
		mkkey(k, s, 0);
		assert_non_null((got = cache_get(c, k, NOW)));
		identity_release(got);
	}
	/* same low bytes, other shard byte: distinct entries */
	mkkey(k, 64 + 9, 0); /* shard 9 again (key[0] % 64) but another key */
	assert_null(cache_get(c, k, NOW));
	cache_destroy(c);
	identity_release(id);
}

/* ---- threads ---- */

#define NTHREADS 4
#define NIDS 16
#define OPS 20000

static identity *shared_ids[NIDS];

struct targ {
	cache *c;
	unsigned seed;
	unsigned long hits, bad;
};

static void *worker(void *p)
{
	struct targ *a = p;

	for (int i = 0; i < OPS; i++) {
		unsigned r = a->seed = a->seed * 1103515245u + 12345u;
		uint8_t k[CACHE_KEY_LEN];
		const identity *got;

		mkkey(k, (r >> 8) % 64, (r >> 16) % 24); /* 1536 keys over 512 slots: constant eviction */
		switch ((r >> 4) % 8) {
		case 0: case 1: case 2:
			cache_put(a->c, k, shared_ids[(r >> 20) % NIDS], NOW + (r >> 28));
			break;
		case 3:
			cache_drop(a->c, k);
			break;
		default:
			got = cache_get(a->c, k, NOW + (r >> 28));
			if (got) {
				int known = 0;

				for (int j = 0; j < NIDS; j++)
					known |= got == shared_ids[j];
				if (!known || strcmp(got->user, "shared") != 0 || refs(got) < 2)
					a->bad++;
				a->hits++;
				identity_release(got);
			}
		}
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	cache *c = mk(512, 10);
	pthread_t th[NTHREADS];
	struct targ args[NTHREADS];
	cache_stats st;
	unsigned long hits = 0;

	(void)state;
	for (int i = 0; i < NIDS; i++)
		shared_ids[i] = mkid("shared", NOW + 5 + i);
	for (int t = 0; t < NTHREADS; t++) {
		args[t] = (struct targ){ c, (unsigned)t * 7919u + 1u, 0, 0 };
		assert_int_equal(pthread_create(&th[t], NULL, worker, &args[t]), 0);
	}
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].bad, 0);
		hits += args[t].hits;
	}
	cache_stats_get(c, &st);
	assert_true(hits > 0);
	assert_int_equal(st.hits, hits);
	assert_true(st.size <= cache_capacity(c));
	/* every reference the cache took is accounted for: after destroy only the test's remain */
	{
		size_t held = 0;

		for (int i = 0; i < NIDS; i++)
			held += refs(shared_ids[i]) - 1;
		assert_int_equal(held, st.size);
	}
	cache_destroy(c);
	for (int i = 0; i < NIDS; i++) {
		assert_int_equal(refs(shared_ids[i]), 1);
		identity_release(shared_ids[i]);
	}
}

/* ---- a hit allocates nothing ---- */

/* An identity whose one group is glen bytes long (identities are about as large as their token's claims). */
static identity *mkbig(const char *user, size_t glen, int64_t exp)
{
	char *g = malloc(glen + 1);
	const char *groups[1];
	identity *id;

	assert_non_null(g);
	memset(g, 'g', glen);
	g[glen] = 0;
	groups[0] = g;
	id = identity_build(user, NULL, groups, 1, NULL, 0, exp, 42);
	assert_non_null(id);
	free(g);
	return id;
}

/* issue 14 finding 6: the cache is bounded in bytes, not only in entries. 64 shards of 4 KiB for identities
 * (plus the table): thousands of ~1 KiB identities leave at most ~4 KiB per shard, the newest stays, every
 * evicted identity is released, and one larger than a shard's share is not cached at all. */
static void test_byte_bound(void **state)
{
	size_t table = cache_table_bytes(512), max = table + 64 * 4096;
	cache *c = NULL;
	cache_stats st;
	identity *keep = mkbig("first", 1000, NOW + 100), *huge = mkbig("huge", 5000, NOW + 100);
	uint8_t k[CACHE_KEY_LEN], klast[CACHE_KEY_LEN];
	const identity *got;

	(void)state;
	assert_true(table >= 512 * 48);
	assert_int_equal(cache_create(512, table - 1, 0, &c), -1); /* not even the table fits */
	assert_int_equal(cache_create(512, max, 0, &c), 0);
	cache_key((const uint8_t *)"first", 5, k);
	cache_put(c, k, keep, NOW);
	assert_int_equal(refs(keep), 2);
	for (unsigned i = 0; i < 4000; i++) {
		char name[32];
		identity *id;

		snprintf(name, sizeof(name), "user-%u", i);
		id = mkbig(name, 1000, NOW + 100);
		cache_key((const uint8_t *)name, strlen(name), klast);
		cache_put(c, klast, id, NOW);
		identity_release(id); /* the cache holds the only reference now, or none */
		cache_stats_get(c, &st);
		if (st.bytes > max)
			fail_msg("after %u puts the cache holds %zu bytes, bound %zu", i + 1, st.bytes, max);
	}
	cache_stats_get(c, &st);
	/* ~1.1 KiB each: three per shard fit in 4 KiB, so about 192 of 4001 stay (the 512 slots are not the limit) */
	assert_true(st.size <= 64 * 3);
	assert_true(st.size >= 64);
	assert_true(st.evictions >= 4000 - 64 * 3);
	assert_true(st.bytes > table);
	/* the newest is there; the first one was evicted long ago and its reference released */
	assert_non_null((got = cache_get(c, klast, NOW)));
	identity_release(got);
	assert_int_equal(refs(keep), 1);
	assert_null(cache_get(c, k, NOW));
	/* larger than a shard's share: never cached, its reference untouched */
	cache_key((const uint8_t *)"huge", 4, k);
	cache_put(c, k, huge, NOW);
	assert_null(cache_get(c, k, NOW));
	assert_int_equal(refs(huge), 1);
	/* drops and expiry give the bytes back */
	cache_drop(c, klast);
	cache_stats_get(c, &st);
	assert_true(st.bytes <= max);
	cache_destroy(c);
	identity_release(keep);
	identity_release(huge);
	/* 0 = no byte bound: the same puts fill every slot they hash to */
	c = mk(512, 0);
	for (unsigned i = 0; i < 2000; i++) {
		char name[32];
		identity *id;

		snprintf(name, sizeof(name), "user-%u", i);
		id = mkbig(name, 1000, NOW + 100);
		cache_key((const uint8_t *)name, strlen(name), k);
		cache_put(c, k, id, NOW);
		identity_release(id);
	}
	cache_stats_get(c, &st);
	assert_true(st.size > 64 * 3);
	cache_destroy(c);
}

/* through the issuer set that owns the cache (the flags' one): cache_max_bytes below the table of cache_entries is
 * a configuration error */
static void test_verifier_cache_max_bytes(void **state)
{
	verifier_config cfg;
	issuers *v = NULL;
	char err[200];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.oidc.issuer_url = FIX_ISS;
	cfg.client_id = FIX_AUD;
	cfg.cache_entries = 1u << 20;
	cfg.cache_max_bytes = 1u << 20;
	assert_int_equal(issuers_create_flags_with_keys(&cfg, NULL, &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--cache-max-bytes"));
	cfg.cache_max_bytes = 0; /* the default, 64 MiB, holds a 1M-entry table (48 MiB) */
	assert_int_equal(issuers_create_flags_with_keys(&cfg, NULL, &v, err, sizeof(err)), 0);
	issuers_destroy(v);
}

static void test_counter_counts(void **state)
{
	void *volatile p;

	(void)state;
	count_start();
	p = malloc(24);
	assert_true(count_stop() >= 1); /* positive control: the counter sees allocations */
	free(p);
}

static void test_hit_allocates_nothing(void **state)
{
	cache *c = mk(512, 0);
	identity *id = mkid("alice", NOW + 100);
	uint8_t k[CACHE_KEY_LEN];
	const char *tok = "header.payload.signature";
	const identity *got = NULL;
	unsigned long n;

	(void)state;
	cache_key((const uint8_t *)tok, strlen(tok), k);
	cache_put(c, k, id, NOW);
	count_start();
	for (int i = 0; i < 100; i++) {
		uint8_t k2[CACHE_KEY_LEN];

		cache_key((const uint8_t *)tok, strlen(tok), k2);
		got = cache_get(c, k2, NOW);
		identity_release(got);
	}
	n = count_stop();
	assert_ptr_equal(got, id);
	assert_int_equal(n, 0);
	cache_destroy(c);
	identity_release(id);
}

/* the same through the agent's path (the flags' issuer set): a second verification of a token is served from the
 * cache without a single allocation (set reference, SHA-256, shard lookup, the verifying key still published) */
static void test_verifier_hit_allocates_nothing(void **state)
{
	verifier_config cfg;
	jwks_keyset *ks = NULL;
	issuers *v = NULL;
	const identity *id = NULL;
	char err[200];
	const char *tok = NULL;
	unsigned long n;
	verifier_cache_stats st;

	(void)state;
	for (size_t i = 0; i < FIX_NTOKENS; i++)
		if (strcmp(FIX_TOKENS[i].name, "good_ES256") == 0)
			tok = FIX_TOKENS[i].token;
	assert_non_null(tok);
	memset(&cfg, 0, sizeof(cfg));
	cfg.oidc.issuer_url = FIX_ISS;
	cfg.client_id = FIX_AUD;
	cfg.groups_claim = "groups";
	cfg.signing_algs = "ES256";
	assert_int_equal(jwks_parse((const uint8_t *)FIX_JWKS, strlen(FIX_JWKS), &ks, err, sizeof(err)), 0);
	assert_int_equal(issuers_create_flags_with_keys(&cfg, ks, &v, err, sizeof(err)), 0);
	/* the miss allocates (and the counter sees it) */
	count_start();
	assert_int_equal(issuers_verify(v, (const uint8_t *)tok, strlen(tok), FIX_NOW, &id, NULL), VERIFY_OK);
	assert_true(count_stop() > 0);
	identity_release(id);
	count_start();
	for (int i = 0; i < 100; i++) {
		assert_int_equal(issuers_verify(v, (const uint8_t *)tok, strlen(tok), FIX_NOW, &id, NULL), VERIFY_OK);
		identity_release(id);
	}
	n = count_stop();
	issuers_cache_stats(v, &st);
	assert_int_equal(st.hits, 100);
	assert_int_equal(n, 0);
	issuers_destroy(v);
	jwks_keyset_release(ks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_bounds),
		cmocka_unit_test(test_put_get),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_eviction),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_shard_independence),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_byte_bound),
		cmocka_unit_test(test_verifier_cache_max_bytes),
		cmocka_unit_test(test_counter_counts),
		cmocka_unit_test(test_hit_allocates_nothing),
		cmocka_unit_test(test_verifier_hit_allocates_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
