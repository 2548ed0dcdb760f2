/* negcache.c — the refused-token memory (see negcache.h). */
#include "negcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4
#define NSETS (NEGCACHE_ENTRIES / WAYS)
#define NLOCKS 16 /* sets share locks: enough to keep worker threads apart, small enough to stay in a few lines */

typedef struct nentry {
	uint8_t key[32];
	uint64_t serial; /* 0 = free slot (key sets are numbered from 1) */
	int64_t since;
	int rc;
	char detail[NEGCACHE_DETAIL_MAX];
} nentry;

struct negcache {
	pthread_mutex_t mu[NLOCKS];
	atomic_uint_fast64_t hits;
	nentry e[NSETS][WAYS];
};

int negcache_create(negcache **out)
{
	negcache *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return -1;
	for (int i = 0; i < NLOCKS; i++) {
		if (pthread_mutex_init(&n->mu[i], NULL) != 0) {
			while (i--)
				pthread_mutex_destroy(&n->mu[i]);
			free(n);
			return -1;
		}
	}
	atomic_init(&n->hits, 0);
	*out = n;
	return 0;
}

void negcache_destroy(negcache *n)
{
	if (n == NULL)
		return;
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_destroy(&n->mu[i]);
	free(n);
}

/* SHA-256 output is uniform: its last bytes pick the set (cache.c uses the first ones for its own sets). */
static size_t set_of(const uint8_t key[32])
{
	uint32_t v;

	memcpy(&v, key + 28, sizeof(v));
	return v % NSETS;
}

static bool live(const nentry *e, uint64_t serial, int64_t now)
{
	return e->serial != 0 && e->serial == serial && now >= e->since && now - e->since < NEGCACHE_TTL_S;
}

int negcache_get(negcache *n, const uint8_t key[32], uint64_t serial, int64_t now, const char **detail)
{
	static _Thread_local char d[NEGCACHE_DETAIL_MAX];
	size_t s = set_of(key);
	int rc = 0;

	if (serial == 0)
		return 0;
	pthread_mutex_lock(&n->mu[s % NLOCKS]);
	for (int w = 0; w < WAYS; w++) {
		const nentry *e = &n->e[s][w];

		if (live(e, serial, now) && memcmp(e->key, key, 32) == 0) {
			rc = e->rc;
			memcpy(d, e->detail, sizeof(d));
			break;
		}
	}
	pthread_mutex_unlock(&n->mu[s % NLOCKS]);
	if (rc != 0) {
		atomic_fetch_add_explicit(&n->hits, 1, memory_order_relaxed);
		*detail = d;
	}
	return rc;
}

void negcache_put(negcache *n, const uint8_t key[32], uint64_t serial, int64_t now, int rc, const char *detail)
{
	size_t s = set_of(key);
	int w, pick = -1;
	nentry *e;

	if (serial == 0 || rc == 0)
		return;
	pthread_mutex_lock(&n->mu[s % NLOCKS]);
	/* the same token again, else a slot that no longer counts, else the oldest */
	for (w = 0; w < WAYS && pick < 0; w++)
		if (n->e[s][w].serial != 0 && memcmp(n->e[s][w].key, key, 32) == 0)
			pick = w;
	for (w = 0; w < WAYS && pick < 0; w++)
		if (!live(&n->e[s][w], serial, now))
			pick = w;
	if (pick < 0) {
		pick = 0;
		for (w = 1; w < WAYS; w++)
			if (n->e[s][w].since < n->e[s][pick].since)
				pick = w;
	}
	e = &n->e[s][pick];
	memcpy(e->key, key, 32);
	e->serial = serial;
	e->since = now;
	e->rc = rc;
	e->detail[0] = '\0';
	if (detail != NULL) {
		size_t len = strnlen(detail, sizeof(e->detail) - 1);

		memcpy(e->detail, detail, len);
		e->detail[len] = '\0';
	}
	pthread_mutex_unlock(&n->mu[s % NLOCKS]);
}

uint64_t negcache_hits(negcache *n)
{
	return n ? atomic_load_explicit(&n->hits, memory_order_relaxed) : 0;
}
