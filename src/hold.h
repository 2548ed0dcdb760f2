/*
 * hold.h — requests held until the key set or a claims fetch changes, and the one thread that waits for them
 * (see handler.h, "Held requests" and "Distributed groups", for when the handler holds one and why).
 *
 * Owns: the list of held requests (each a hold_req with its own copy of the token, the xk slots and the imh
 * header lines: the NOTIFY's bytes die when hold_add() returns), its lock and condition variable, and the
 * holding thread. Judging a request again and answering it are the owner's, through hold_ops; hold.c only
 * decides when. A hold_req is freed by hold.c once it leaves the list: after ops.expire() or an ops.retry()
 * that did not keep it, having called r->done(r->sink.ud) first unless ops.retry() said HOLD_TAKEN.
 *
 * Threads and locks: hold_add(), hold_gen() and hold_count() on any thread (the SPOP workers); hold_notify()
 * on whichever thread reports a key-set attempt or a finished claims fetch; ops.retry() and ops.expire() on
 * the holding thread only, without the lock (workers keep holding new requests meanwhile). One mutex guards
 * the list, the writes of the generation counter, the kick flag, stopping and the condition variable; the
 * generation and the count are atomics read without it. hold_shutdown(), hold_join(), hold_destroy(): main.
 */
#ifndef KOS_HOLD_H
#define KOS_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handler.h"

/* A held request: everything the verdict needs, copied out of the NOTIFY. */
typedef struct hold_req {
	struct hold_req *next; /* hold.c's list */
	handler_input in;      /* src, imp, sv; auth unused; xk and imh point into tok[] after the token */
	handler_sink sink;
	handler_done_fn done;
	uint64_t gen;          /* key-set attempts and claims fetches seen when the token was last judged */
	int why;               /* the verdict it waits on: VERIFY_E_UNKNOWN_KID or VERIFY_E_PENDING */
	int64_t deadline_ms;   /* monotonic */
	int64_t t0_ns;         /* first verification started (latency metric covers the wait) */
	size_t tlen;
	uint8_t tok[];
} hold_req;

/* ops.retry()'s answers */
enum hold_retry {
	HOLD_KEEP = 0,     /* still waiting (r->why may have changed): it stays on the list */
	HOLD_ANSWERED = 1, /* the verdict went through r->sink: hold.c calls r->done and frees r */
	HOLD_TAKEN = 2,    /* someone else completes it now (a SubjectAccessReview): hold.c frees r, no done */
};

typedef struct hold_ops {
	/* The key set or a claims fetch changed since r was last judged: the whole verdict again, holding on only
	 * while left_ms > 0. Returns an enum hold_retry. */
	int (*retry)(void *ud, hold_req *r, int64_t left_ms);
	/* r's time is up, or shutdown: write its answer through r->sink (hold.c then calls r->done). */
	void (*expire)(void *ud, hold_req *r, bool shutdown);
	void *ud;
} hold_ops;

/* hold_add()'s refusals (0 = held) */
enum hold_err {
	HOLD_E_NOMEM = -1,
	HOLD_E_STOPPING = -2, /* hold_shutdown() was called */
	HOLD_E_FULL = -3,     /* max_held requests wait already */
};

typedef struct hold hold;

/* Starts the holding thread. Every request waits at most wait_ms (> 0); at most max_held (> 0) at once.
 * 0 or -1. */
int hold_create(const hold_ops *ops, unsigned wait_ms, unsigned max_held, hold **out);
/* The listener for verifier_set_refresh_listener() and distclaims_set_listener() (ud: the hold): something a
 * held request may wait on changed; the holding thread judges its requests again. Any thread. */
void hold_notify(void *ud);
/* Changes seen so far. Read it before verifying a token that may be held, and pass it to hold_add(): a change
 * in between makes the holding thread judge the token again at once. Any thread. */
uint64_t hold_gen(hold *hd);
/* Holds a request: copies in (auth dropped: tok is the token), tok, in->xk and in->imh; k and done are kept as
 * they are. why: the verdict it waits on; t0_ns: when its first verification started (monotonic), from which
 * its deadline (t0 + wait_ms) counts. 0, or an enum hold_err (nothing held). Any thread. */
int hold_add(hold *hd, const handler_input *in, const uint8_t *tok, size_t tlen, const handler_sink *k,
	     handler_done_fn done, uint64_t gen, int why, int64_t t0_ns);
/* Requests held right now. Any thread. */
unsigned hold_count(hold *hd);
/* Nothing is held from now on (HOLD_E_STOPPING); the thread expires every held request (shutdown) and exits.
 * Remove the listeners between this and hold_join(). */
void hold_shutdown(hold *hd);
/* Waits for the thread to exit. After hold_shutdown(). */
void hold_join(hold *hd);
/* Frees hd; after hold_join(). NULL is a no-op. */
void hold_destroy(hold *hd);

#endif
