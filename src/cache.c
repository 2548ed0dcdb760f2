/*
 * cache.c — sharded, set-associative verified-token cache (see cache.h).
 *
 * SHA-256 output is uniform, so the key's own bytes pick the shard (byte 0), the set (bytes 8..15) and the tag
 * (bytes 16..19): no second hash. Identities leaving the table are released after the shard lock is dropped, so
 * a free() never runs under a lock.
 *
 * Layout, for a hit in a table far larger than the CPU caches (issue 7: "same cost with 1,000 or 1,000,000
 * entries"): a set is six cache lines — line 0 holds the eight tags and expiry times, line 1 the eight identity
 * pointers, lines 2..5 the eight full keys. A lookup reads lines 0 and 1 (independent, fetched in parallel),
 * then only the matching way's key line, while the identity it will take a reference on is prefetched: two
 * rounds of memory latency, not one line per way scanned. The tag only narrows the search; a hit always
 * compares all 32 bytes of the key. The table is one anonymous mapping (pages appear as entries arrive, so an
 * idle agent's RSS does not pay for it), and a large one asks for transparent huge pages so that random
 * lookups do not also miss the TLB.
 */
/* The one-shot SHA256_Init/Update/Final API is deprecated in OpenSSL 3 but is the only digest interface that
 * allocates nothing: EVP_DigestInit_ex2 allocates a provider context on every (re)initialisation, and a cache
 * hit must not allocate. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "cache.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/sha.h>

#define SHARDS 64
#define WAYS 8
/* Tables at least this large ask for huge pages (about 175,000 entries): below it the TLB covers them. */
#define HUGE_TABLE_BYTES (8u << 20)
#define HUGE_PAGE (2u << 20)

typedef struct set {
	uint32_t tag[WAYS];            /* key bytes 16..19 of the entry in this way */
	uint32_t until[WAYS];          /* valid while now <= until (unix seconds, clamped to 32 bits) */
	const identity *id[WAYS];      /* NULL = free way */
	uint8_t key[WAYS][CACHE_KEY_LEN];
} set;
_Static_assert(sizeof(set) == 6 * 64, "a set is six cache lines");

/* Most identities one round of byte-bound eviction takes out before the lock is dropped to release them. */
#define EVICT_BATCH 32

typedef struct shard {
	alignas(64) pthread_mutex_t mu;
	set *sets;              /* nsets, inside the cache's one mapping */
	size_t size;
	size_t bytes;           /* identity_bytes() of the identities held */
	size_t hand;            /* the set byte-bound eviction looks at next */
	uint64_t hits, misses, evictions;
} shard;

struct cache {
	size_t nsets;           /* per shard */
	size_t shard_budget;    /* identity bytes one shard may hold; 0 = no byte bound */
	unsigned ttl_s;
	void *map;
	size_t map_len;
	shard shards[SHARDS];
};

void cache_key(const uint8_t *token, size_t len, uint8_t key[CACHE_KEY_LEN])
{
	SHA256_CTX ctx;

	SHA256_Init(&ctx);
	SHA256_Update(&ctx, token, len);
	SHA256_Final(key, &ctx);
}

/* Sets per shard for max_entries (> 0, checked by the caller). */
static size_t nsets_for(size_t max_entries)
{
	size_t per = (max_entries + SHARDS - 1) / SHARDS;

	return (per + WAYS - 1) / WAYS;
}

static size_t map_len_for(size_t nsets)
{
	size_t len = SHARDS * nsets * sizeof(set);

	if (len >= HUGE_TABLE_BYTES)
		len = (len + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	return len;
}

static size_t cache_struct_bytes(void)
{
	return (sizeof(cache) + 63) & ~(size_t)63;
}

size_t cache_table_bytes(size_t max_entries)
{
	if (max_entries == 0 || max_entries > (SIZE_MAX / sizeof(set)) / 4)
		return SIZE_MAX;
	return cache_struct_bytes() + map_len_for(nsets_for(max_entries));
}

/* What one identity costs the cache: its one block (identity.h) counted from its fields, plus a malloc header.
 * Recomputed when the identity leaves (it is immutable), so no way of a set needs room for its size. */
static size_t identity_bytes(const identity *id)
{
	size_t n = sizeof(*id) + id->ngroups * sizeof(id->groups[0]) + id->nextra * sizeof(id->extra[0]) + 16;

	n += strlen(id->user) + 1 + (id->uid ? strlen(id->uid) + 1 : 0);
	for (size_t i = 0; i < id->ngroups; i++)
		n += strlen(id->groups[i]) + 1;
	for (size_t i = 0; i < id->nextra; i++)
		n += strlen(id->extra[i].key) + 1 + strlen(id->extra[i].value) + 1;
	return n;
}

int cache_create(size_t max_entries, size_t max_bytes, unsigned ttl_s, cache **out)
{
	cache *c;
	size_t len, i;
	uint8_t *base;

	if (max_entries == 0 || max_entries > (SIZE_MAX / sizeof(set)) / 4)
		return -1;
	if (max_bytes != 0 && cache_table_bytes(max_entries) > max_bytes)
		return -1;
	c = aligned_alloc(64, cache_struct_bytes());
	if (!c)
		return -1;
	memset(c, 0, sizeof(*c));
	c->nsets = nsets_for(max_entries);
	c->ttl_s = ttl_s;
	len = map_len_for(c->nsets);
	c->map_len = len;
	if (max_bytes != 0)
		c->shard_budget = (max_bytes - cache_table_bytes(max_entries)) / SHARDS;
	c->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->map == MAP_FAILED) {
		free(c);
		return -1;
	}
#ifdef MADV_HUGEPAGE
	/* advice only: without transparent huge pages the table still works, with more TLB misses */
	if (len >= HUGE_TABLE_BYTES)
		(void)madvise(c->map, len, MADV_HUGEPAGE);
#endif
	base = c->map;
	for (i = 0; i < SHARDS; i++) {
		c->shards[i].sets = (set *)(void *)(base + i * c->nsets * sizeof(set));
		if (pthread_mutex_init(&c->shards[i].mu, NULL) != 0) {
			while (i--)
				pthread_mutex_destroy(&c->shards[i].mu);
			munmap(c->map, c->map_len);
			free(c);
			return -1;
		}
	}
	*out = c;
	return 0;
}

void cache_destroy(cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < SHARDS; i++) {
		shard *s = &c->shards[i];

		for (size_t j = 0; j < c->nsets; j++)
			for (int w = 0; w < WAYS; w++)
				identity_release(s->sets[j].id[w]);
		pthread_mutex_destroy(&s->mu);
	}
	munmap(c->map, c->map_len);
	free(c);
}

size_t cache_capacity(const cache *c)
{
	return SHARDS * c->nsets * WAYS;
}

static set *set_of(cache *c, const uint8_t key[CACHE_KEY_LEN], shard **sh, uint32_t *tag)
{
	uint64_t v;

	memcpy(&v, key + 8, sizeof(v));
	memcpy(tag, key + 16, sizeof(*tag));
	*sh = &c->shards[key[0] % SHARDS];
	return &(*sh)->sets[v % c->nsets];
}

/* The way holding key, or -1. Reads the tag line and the identity line, then one key line per tag match. */
static int find_way(const set *st, const uint8_t key[CACHE_KEY_LEN], uint32_t tag)
{
	for (int w = 0; w < WAYS; w++) {
		if (st->tag[w] != tag || st->id[w] == NULL)
			continue;
		__builtin_prefetch(st->id[w]); /* the reference count a hit is about to take */
		if (memcmp(st->key[w], key, CACHE_KEY_LEN) == 0)
			return w;
	}
	return -1;
}

static uint32_t clamp_until(int64_t t)
{
	return t < 0 ? 0 : t > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

const identity *cache_get(cache *c, const uint8_t key[CACHE_KEY_LEN], int64_t now)
{
	shard *s;
	uint32_t tag;
	set *st = set_of(c, key, &s, &tag);
	const identity *found = NULL, *stale = NULL;
	int w;

	pthread_mutex_lock(&s->mu);
	w = find_way(st, key, tag);
	if (w >= 0) {
		if (now > (int64_t)st->until[w]) {
			stale = st->id[w];
			st->id[w] = NULL;
			s->size--;
			s->bytes -= identity_bytes(stale);
		} else {
			found = identity_ref(st->id[w]);
		}
	}
	if (found)
		s->hits++;
	else
		s->misses++;
	pthread_mutex_unlock(&s->mu);
	identity_release(stale);
	return found;
}

/* Byte bound: takes identities out of shard s, from its clock hand on, until `need` more bytes fit or
 * EVICT_BATCH are out, and returns how many (in gone[], for the caller to release once the lock is dropped).
 * Looks at each set at most once per call, so it finds something whenever the shard holds anything. The hand
 * makes this roughly first-in first-out over the sets, with no per-entry bookkeeping on the hit path. Called
 * with s->mu held. */
static size_t make_room(cache *c, shard *s, size_t need, const identity **gone)
{
	size_t n = 0;

	for (size_t k = 0; k < c->nsets && n < EVICT_BATCH && s->bytes + need > c->shard_budget; k++) {
		set *st = &s->sets[s->hand];

		s->hand = (s->hand + 1) % c->nsets;
		for (int w = 0; w < WAYS && n < EVICT_BATCH && s->bytes + need > c->shard_budget; w++) {
			if (st->id[w] == NULL)
				continue;
			s->bytes -= identity_bytes(st->id[w]);
			gone[n++] = st->id[w];
			st->id[w] = NULL;
			s->size--;
			s->evictions++;
		}
	}
	return n;
}

void cache_put(cache *c, const uint8_t key[CACHE_KEY_LEN], const identity *id, int64_t now)
{
	shard *s;
	uint32_t tag;
	set *st = set_of(c, key, &s, &tag);
	const identity *old = NULL, *gone[EVICT_BATCH];
	int64_t until = id->exp;
	size_t need = identity_bytes(id), old_bytes = 0, ngone;
	bool full = false;
	int w;

	if (c->ttl_s && now + (int64_t)c->ttl_s < until)
		until = now + (int64_t)c->ttl_s;
	if (until < now)
		return;
	/* larger than a shard may hold: not cached (each request pays a verification, memory stays bounded) */
	if (c->shard_budget && need > c->shard_budget)
		return;
	identity_ref(id);
	pthread_mutex_lock(&s->mu);
	while (c->shard_budget && s->bytes + need > c->shard_budget &&
	       (ngone = make_room(c, s, need, gone)) > 0) {
		pthread_mutex_unlock(&s->mu);
		for (size_t i = 0; i < ngone; i++)
			identity_release(gone[i]);
		pthread_mutex_lock(&s->mu);
	}
	w = find_way(st, key, tag);
	for (int i = 0; i < WAYS && w < 0; i++)
		if (!st->id[i] || now > (int64_t)st->until[i])
			w = i;
	if (w < 0) {
		full = true;
		w = 0;
		for (int i = 1; i < WAYS; i++)
			if (st->until[i] < st->until[w])
				w = i;
	}
	old = st->id[w];
	if (old)
		old_bytes = identity_bytes(old);
	if (c->shard_budget && s->bytes - old_bytes + need > c->shard_budget) {
		/* other threads filled the room made above: skip this one rather than exceed the bound */
		pthread_mutex_unlock(&s->mu);
		identity_release(id);
		return;
	}
	if (full)
		s->evictions++;
	if (!old)
		s->size++;
	s->bytes += need - old_bytes;
	st->tag[w] = tag;
	memcpy(st->key[w], key, CACHE_KEY_LEN);
	st->until[w] = clamp_until(until);
	st->id[w] = id;
	pthread_mutex_unlock(&s->mu);
	identity_release(old);
}

void cache_drop(cache *c, const uint8_t key[CACHE_KEY_LEN])
{
	shard *s;
	uint32_t tag;
	set *st = set_of(c, key, &s, &tag);
	const identity *old = NULL;
	int w;

	pthread_mutex_lock(&s->mu);
	w = find_way(st, key, tag);
	if (w >= 0) {
		old = st->id[w];
		st->id[w] = NULL;
		s->size--;
		s->bytes -= identity_bytes(old);
	}
	pthread_mutex_unlock(&s->mu);
	identity_release(old);
}

void cache_stats_get(cache *c, cache_stats *out)
{
	cache_stats st = { 0 };

	for (size_t i = 0; i < SHARDS; i++) {
		shard *s = &c->shards[i];

		pthread_mutex_lock(&s->mu);
		st.hits += s->hits;
		st.misses += s->misses;
		st.evictions += s->evictions;
		st.size += s->size;
		st.bytes += s->bytes;
		pthread_mutex_unlock(&s->mu);
	}
	st.bytes += cache_struct_bytes() + c->map_len;
	*out = st;
}
