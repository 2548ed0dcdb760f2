/* hold.c — held requests and the holding thread; see hold.h. */
#include "hold.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hold {
	hold_ops ops;
	unsigned wait_ms;
	unsigned max_held;
	pthread_t th;
	pthread_mutex_t mu;    /* guards the list, gen's writes, kick, stopping and the condvar */
	pthread_cond_t cv;
	hold_req *head, *tail; /* in deadline order: every hold lasts the same wait_ms */
	_Atomic unsigned nheld;
	_Atomic uint64_t gen;  /* key-set attempts reported by the verifier; read without the lock */
	uint64_t seen_gen;     /* gen the holding thread last judged its list at */
	bool kick;             /* a request was held after judging against an older gen */
	bool stopping;
};

static void *hold_main(void *arg);

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hold_create(const hold_ops *ops, unsigned wait_ms, unsigned max_held, hold **out)
{
	pthread_condattr_t ca;
	hold *hd = calloc(1, sizeof(*hd));

	if (hd == NULL)
		return -1;
	hd->ops = *ops;
	hd->wait_ms = wait_ms;
	hd->max_held = max_held;
	atomic_init(&hd->nheld, 0);
	atomic_init(&hd->gen, 0);
	if (pthread_mutex_init(&hd->mu, NULL) != 0)
		goto fail;
	if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&hd->cv, &ca) != 0) {
		pthread_mutex_destroy(&hd->mu);
		goto fail;
	}
	pthread_condattr_destroy(&ca);
	if (pthread_create(&hd->th, NULL, hold_main, hd) != 0) {
		pthread_cond_destroy(&hd->cv);
		pthread_mutex_destroy(&hd->mu);
		goto fail;
	}
	*out = hd;
	return 0;
fail:
	free(hd);
	return -1;
}

void hold_shutdown(hold *hd)
{
	pthread_mutex_lock(&hd->mu);
	hd->stopping = true;
	pthread_cond_signal(&hd->cv);
	pthread_mutex_unlock(&hd->mu);
}

void hold_join(hold *hd)
{
	pthread_join(hd->th, NULL);
}

void hold_destroy(hold *hd)
{
	if (hd == NULL)
		return;
	pthread_cond_destroy(&hd->cv);
	pthread_mutex_destroy(&hd->mu);
	free(hd);
}

unsigned hold_count(hold *hd)
{
	return atomic_load(&hd->nheld);
}

uint64_t hold_gen(hold *hd)
{
	return atomic_load(&hd->gen);
}

/* The verifier's listener: a key-set attempt ended (provider thread, or a test's thread). */
void hold_notify(void *ud)
{
	hold *hd = ud;

	pthread_mutex_lock(&hd->mu);
	atomic_fetch_add(&hd->gen, 1);
	pthread_cond_signal(&hd->cv);
	pthread_mutex_unlock(&hd->mu);
}

/* Answers a held request that was not judged again (time up, shutdown) and lets it go. */
static void held_finish(hold *hd, hold_req *r, bool shutdown)
{
	hd->ops.expire(hd->ops.ud, r, shutdown);
	atomic_fetch_sub(&hd->nheld, 1); /* before done(): whoever it wakes sees the count without this one */
	r->done(r->sink.ud);
	free(r);
}

/* One pass over the requests taken off the list (without the lock): judged again when the key set changed
 * since their last verdict, answered when their time is up, or at shutdown. Returns those still waiting, in
 * their order. */
static hold_req *hold_pass(hold *hd, hold_req *list, uint64_t gen, bool stop)
{
	hold_req *keep = NULL, **kt = &keep;

	while (list != NULL) {
		hold_req *r = list;
		int64_t left = r->deadline_ms - mono_ms();

		list = r->next;
		r->next = NULL;
		if (stop) {
			held_finish(hd, r, true);
			continue;
		}
		if (r->gen != gen) {
			r->gen = gen;
			/* the whole verdict again (never a shortcut to allow); holding on only while time is left */
			int jr = hd->ops.retry(hd->ops.ud, r, left > 0 ? left : 0);

			if (jr == HOLD_TAKEN) { /* waiting for SubjectAccessReviews now: they complete it */
				atomic_fetch_sub(&hd->nheld, 1);
				free(r);
				continue;
			}
			if (jr != HOLD_KEEP) {
				atomic_fetch_sub(&hd->nheld, 1);
				r->done(r->sink.ud);
				free(r);
				continue;
			}
		} else if (left <= 0) {
			held_finish(hd, r, false);
			continue;
		}
		*kt = r;
		kt = &r->next;
	}
	return keep;
}

static void *hold_main(void *arg)
{
	hold *hd = arg;

	pthread_mutex_lock(&hd->mu);
	for (;;) {
		uint64_t gen = atomic_load(&hd->gen);
		bool stop = hd->stopping;
		hold_req *list, *keep, *last;

		if (!stop && hd->head == NULL) {
			pthread_cond_wait(&hd->cv, &hd->mu);
			continue;
		}
		if (!stop && gen == hd->seen_gen && !hd->kick && hd->head->deadline_ms > mono_ms()) {
			struct timespec ts;
			int64_t d = hd->head->deadline_ms;

			ts.tv_sec = (time_t)(d / 1000);
			ts.tv_nsec = (long)(d % 1000) * 1000000L;
			pthread_cond_timedwait(&hd->cv, &hd->mu, &ts);
			continue;
		}
		hd->seen_gen = gen;
		hd->kick = false;
		list = hd->head;
		hd->head = hd->tail = NULL;
		pthread_mutex_unlock(&hd->mu);

		/* verdicts and completions run without the lock: workers keep holding new requests meanwhile */
		keep = hold_pass(hd, list, gen, stop);

		pthread_mutex_lock(&hd->mu);
		if (keep != NULL) {
			/* held before anything added meanwhile, so earlier deadlines: they go first */
			for (last = keep; last->next != NULL; last = last->next)
				;
			last->next = hd->head;
			if (hd->tail == NULL)
				hd->tail = last;
			hd->head = keep;
		}
		if (stop)
			break;
	}
	pthread_mutex_unlock(&hd->mu);
	return NULL;
}

int hold_add(hold *hd, const handler_input *in, const uint8_t *tok, size_t tlen, const handler_sink *k,
	     handler_done_fn done, uint64_t gen, int why, int64_t t0_ns)
{
	hold_req *r = malloc(sizeof(*r) + tlen + in->xk_len + in->imh_len);

	if (r == NULL)
		return HOLD_E_NOMEM;
	r->next = NULL;
	r->in = *in;
	r->in.auth = NULL;
	r->in.auth_len = 0;
	r->sink = *k;
	r->done = done;
	r->gen = gen;
	r->why = why;
	r->deadline_ms = t0_ns / 1000000 + hd->wait_ms;
	r->t0_ns = t0_ns;
	r->tlen = tlen;
	memcpy(r->tok, tok, tlen);
	if (in->xk != NULL) { /* the NOTIFY's bytes die with this call: the slots live on after the token */
		memcpy(r->tok + tlen, in->xk, in->xk_len);
		r->in.xk = r->tok + tlen;
	}
	if (in->imh != NULL) { /* likewise the client's header lines, for impersonation once the key is known */
		memcpy(r->tok + tlen + in->xk_len, in->imh, in->imh_len);
		r->in.imh = r->tok + tlen + in->xk_len;
	}

	pthread_mutex_lock(&hd->mu);
	if (hd->stopping || atomic_load(&hd->nheld) >= hd->max_held) {
		bool stopping = hd->stopping;

		pthread_mutex_unlock(&hd->mu);
		free(r);
		return stopping ? HOLD_E_STOPPING : HOLD_E_FULL;
	}
	if (hd->tail != NULL)
		hd->tail->next = r;
	else
		hd->head = r;
	hd->tail = r;
	atomic_fetch_add(&hd->nheld, 1);
	if (gen != atomic_load(&hd->gen))
		hd->kick = true;
	/* wake the thread only when it has something new to do: a first deadline to wait for, or a key set
	 * newer than this request's verdict */
	if (hd->head == r || hd->kick)
		pthread_cond_signal(&hd->cv);
	pthread_mutex_unlock(&hd->mu);
	return 0;
}
