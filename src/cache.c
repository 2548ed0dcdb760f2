/*
 * cache.c — sharded, set-associative verified-token cache (see cache.h).
 *
 * SHA-256 output is uniform, so the key's own bytes pick the shard and the set: no second hash. Identities
 * leaving the table are released after the shard lock is dropped, so a free() never runs under a lock.
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

#include <openssl/sha.h>

#define SHARDS 64
#define WAYS 8

typedef struct entry {
	uint8_t key[CACHE_KEY_LEN];
	int64_t until;          /* valid while now <= until */
	const identity *id;     /* NULL = free slot */
} entry;

typedef struct shard {
	alignas(64) pthread_mutex_t mu;
	entry *e;               /* nsets * WAYS */
	size_t size;
	uint64_t hits, misses, evictions;
} shard;

struct cache {
	size_t nsets;           /* per shard */
	unsigned ttl_s;
	shard shards[SHARDS];
};

void cache_key(const uint8_t *token, size_t len, uint8_t key[CACHE_KEY_LEN])
{
	SHA256_CTX ctx;

	SHA256_Init(&ctx);
	SHA256_Update(&ctx, token, len);
	SHA256_Final(key, &ctx);
}

int cache_create(size_t max_entries, unsigned ttl_s, cache **out)
{
	cache *c;
	size_t per, i;

	if (max_entries == 0 || max_entries > (SIZE_MAX / sizeof(entry)) / 2)
		return -1;
	per = (max_entries + SHARDS - 1) / SHARDS;
	c = aligned_alloc(64, (sizeof(*c) + 63) & ~(size_t)63);
	if (!c)
		return -1;
	memset(c, 0, sizeof(*c));
	c->nsets = (per + WAYS - 1) / WAYS;
	c->ttl_s = ttl_s;
	for (i = 0; i < SHARDS; i++) {
		c->shards[i].e = calloc(c->nsets * WAYS, sizeof(entry));
		if (!c->shards[i].e || pthread_mutex_init(&c->shards[i].mu, NULL) != 0) {
			free(c->shards[i].e);
			while (i--) {
				pthread_mutex_destroy(&c->shards[i].mu);
				free(c->shards[i].e);
			}
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

		for (size_t j = 0; j < c->nsets * WAYS; j++)
			identity_release(s->e[j].id);
		pthread_mutex_destroy(&s->mu);
		free(s->e);
	}
	free(c);
}

size_t cache_capacity(const cache *c)
{
	return SHARDS * c->nsets * WAYS;
}

static entry *set_of(cache *c, const uint8_t key[CACHE_KEY_LEN], shard **sh)
{
	uint64_t v;

	memcpy(&v, key + 8, sizeof(v));
	*sh = &c->shards[key[0] % SHARDS];
	return &(*sh)->e[(v % c->nsets) * WAYS];
}

const identity *cache_get(cache *c, const uint8_t key[CACHE_KEY_LEN], int64_t now)
{
	shard *s;
	entry *set = set_of(c, key, &s);
	const identity *found = NULL, *stale = NULL;

	pthread_mutex_lock(&s->mu);
	for (int w = 0; w < WAYS; w++) {
		entry *e = &set[w];

		if (!e->id || memcmp(e->key, key, CACHE_KEY_LEN) != 0)
			continue;
		if (now > e->until) {
			stale = e->id;
			e->id = NULL;
			s->size--;
		} else {
			found = identity_ref(e->id);
		}
		break;
	}
	if (found)
		s->hits++;
	else
		s->misses++;
	pthread_mutex_unlock(&s->mu);
	identity_release(stale);
	return found;
}

void cache_put(cache *c, const uint8_t key[CACHE_KEY_LEN], const identity *id, int64_t now)
{
	shard *s;
	entry *set = set_of(c, key, &s), *slot = NULL;
	const identity *old = NULL;
	int64_t until = id->exp;

	if (c->ttl_s && now + (int64_t)c->ttl_s < until)
		until = now + (int64_t)c->ttl_s;
	if (until < now)
		return;
	identity_ref(id);
	pthread_mutex_lock(&s->mu);
	for (int w = 0; w < WAYS && !slot; w++)
		if (set[w].id && memcmp(set[w].key, key, CACHE_KEY_LEN) == 0)
			slot = &set[w];
	for (int w = 0; w < WAYS && !slot; w++)
		if (!set[w].id || now > set[w].until)
			slot = &set[w];
	if (!slot) {
		slot = &set[0];
		for (int w = 1; w < WAYS; w++)
			if (set[w].until < slot->until)
				slot = &set[w];
		s->evictions++;
	}
	old = slot->id;
	if (!old)
		s->size++;
	memcpy(slot->key, key, CACHE_KEY_LEN);
	slot->until = until;
	slot->id = id;
	pthread_mutex_unlock(&s->mu);
	identity_release(old);
}

void cache_drop(cache *c, const uint8_t key[CACHE_KEY_LEN])
{
	shard *s;
	entry *set = set_of(c, key, &s);
	const identity *old = NULL;

	pthread_mutex_lock(&s->mu);
	for (int w = 0; w < WAYS; w++)
		if (set[w].id && memcmp(set[w].key, key, CACHE_KEY_LEN) == 0) {
			old = set[w].id;
			set[w].id = NULL;
			s->size--;
			break;
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
		pthread_mutex_unlock(&s->mu);
	}
	*out = st;
}
