/*
 * test_handler_hold.c — requests held for an unknown kid (handler_submit): a fake verifier whose key set "rotates"
 * when the test says so, and a fake provider signal (the listener the handler registers, called by the test as
 * the provider thread would after a JWKS attempt, or the distributed-claims fetcher after a fetch). Every case
 * names the verdict it expects.
 *
 * Waits here are bounds (a broken handler fails after them), never timing assertions: holds that must end by a
 * verdict use a 60 s deadline, so an answer within the 10 s bound can only come from the verdict path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "handler.h"
#include "log.h"
#include "handler_fake.h"

#define LONG_WAIT_MS 60000u
#define BOUND_S 10

/* ---- a small recording sink, one per request --------------------------------------------------------------- */

typedef struct slot {
	int status;            /* -1 until written */
	char reason[64];
	char user[32];
	bool has_sa;
	char x1v0[32];         /* the first value of HAProxy's first extra slot */
	unsigned nvars;
	int done;              /* times done() was called */
} slot;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static unsigned g_done;

static int slot_str(void *ud, const char *name, const char *s, size_t len)
{
	slot *r = ud;

	r->nvars++;
	if (strcmp(name, "reason") == 0)
		snprintf(r->reason, sizeof(r->reason), "%.*s", (int)len, s);
	else if (strcmp(name, "user") == 0)
		snprintf(r->user, sizeof(r->user), "%.*s", (int)len, s);
	else if (strcmp(name, "x1v0") == 0)
		snprintf(r->x1v0, sizeof(r->x1v0), "%.*s", (int)len, s);
	else if (strcmp(name, "sv") == 0)
		r->has_sa = true; /* the version HAProxy checks its copy against: part of every allow */
	return 0;
}

static int slot_proc(void *ud, const char *name, const char *s, size_t len)
{
	slot *r = ud;

	(void)s;
	(void)len;
	r->nvars++;
	assert_string_equal(name, "sa");
	return 0;
}

static int slot_int(void *ud, const char *name, int64_t v)
{
	slot *r = ud;

	r->nvars++;
	if (strcmp(name, "status") == 0)
		r->status = (int)v;
	return 0;
}

static void slot_done(void *ud)
{
	slot *r = ud;

	pthread_mutex_lock(&g_mu);
	r->done++;
	g_done++;
	pthread_cond_broadcast(&g_cv);
	pthread_mutex_unlock(&g_mu);
}

static void slot_init(slot *r)
{
	memset(r, 0, sizeof(*r));
	r->status = -1;
}

/* Waits (bounded) until n completions in total have been seen. */
static void wait_done(unsigned n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += BOUND_S;
	pthread_mutex_lock(&g_mu);
	while (g_done < n) {
		if (pthread_cond_timedwait(&g_cv, &g_mu, &ts) != 0 && g_done < n) {
			pthread_mutex_unlock(&g_mu);
			fail_msg("only %u of %u held requests completed within %d s", g_done, n, BOUND_S);
		}
	}
	pthread_mutex_unlock(&g_mu);
}

static unsigned done_count(void)
{
	unsigned n;

	pthread_mutex_lock(&g_mu);
	n = g_done;
	pthread_mutex_unlock(&g_mu);
	return n;
}

/* ---- fake verifier + provider -------------------------------------------------------------------------------- */

static atomic_bool g_rotated;      /* the new key is in the key set */
static atomic_bool g_soon;         /* a download is in flight or may start within the wait */
static atomic_bool g_fetched;      /* the distributed-claims fetch has ended */
static atomic_uint g_verifies;     /* verify calls (to know a re-judgement happened) */
static atomic_uint g_soon_asks;
static atomic_uint g_bad_asks;
static void (*g_listener)(void *);
static void *g_listener_ud;
static pthread_mutex_t g_lmu = PTHREAD_MUTEX_INITIALIZER; /* like the verifier's listen_mu */

static void provider_signal(void)
{
	pthread_mutex_lock(&g_lmu);
	if (g_listener)
		g_listener(g_listener_ud);
	pthread_mutex_unlock(&g_lmu);
}

static int fake_verify(void *ctx, const uint8_t *tok, size_t len, int64_t now, const identity **id,
		       const char **detail)
{
	static const char *const groups[] = {"dev"};
	char t[32];

	(void)ctx;
	(void)detail;
	atomic_fetch_add(&g_verifies, 1);
	if (len >= sizeof(t))
		return VERIFY_E_TOO_LARGE;
	memcpy(t, tok, len);
	t[len] = '\0';
	if (strcmp(t, "good") == 0 || ((strcmp(t, "newkid") == 0 || strcmp(t, "racekid") == 0) && g_rotated)) {
		*id = identity_build("alice", NULL, groups, 1, NULL, 0, now + 60, 1);
		return VERIFY_OK;
	}
	if (strcmp(t, "newkid-extra") == 0 && g_rotated) {
		identity_extra ex[] = {{"example.com/team", "blue"}};

		*id = identity_build("alice", NULL, groups, 1, ex, 1, now + 60, 1);
		return VERIFY_OK;
	}
	if (strcmp(t, "newkid-expired") == 0 && g_rotated)
		return VERIFY_E_EXPIRED;
	if (strcmp(t, "racekid") == 0) {
		/* the download ends between this verdict and the hold: the hold must not miss it */
		atomic_store(&g_rotated, true);
		provider_signal();
		return VERIFY_E_UNKNOWN_KID;
	}
	if (strncmp(t, "newkid", 6) == 0 || strcmp(t, "randomkid") == 0)
		return VERIFY_E_UNKNOWN_KID;
	if (strcmp(t, "distgroups") == 0 && g_fetched) {
		static const char *const fetched[] = {"from-source"};

		*id = identity_build("dana", NULL, fetched, 1, NULL, 0, now + 60, 1);
		return VERIFY_OK;
	}
	if (strncmp(t, "distgroups", 10) == 0)
		return VERIFY_E_PENDING;
	return VERIFY_E_SIGNATURE;
}

static bool fake_ready(void *ctx)
{
	(void)ctx;
	return true;
}

static void fake_set_listener(void *ctx, void (*fn)(void *ud), void *ud)
{
	(void)ctx;
	pthread_mutex_lock(&g_lmu);
	g_listener = fn;
	g_listener_ud = ud;
	pthread_mutex_unlock(&g_lmu);
}

static bool fake_refresh_soon(void *ctx, unsigned within_ms)
{
	(void)ctx;
	if (within_ms == 0)
		atomic_fetch_add(&g_bad_asks, 1); /* checked on the test's thread: this one may be the holding thread */
	atomic_fetch_add(&g_soon_asks, 1);
	return g_soon;
}

/* ---- fixture ---------------------------------------------------------------------------------------------- */

static fx *fx_new(unsigned wait_ms, unsigned max_held)
{
	handler_config hc;
	fx *f;

	atomic_store(&g_rotated, false);
	atomic_store(&g_fetched, false);
	atomic_store(&g_soon, true);
	atomic_store(&g_verifies, 0);
	atomic_store(&g_soon_asks, 0);
	pthread_mutex_lock(&g_mu);
	g_done = 0;
	pthread_mutex_unlock(&g_mu);
	f = fx_base_new("/tmp/kos-thh-XXXXXX", true, &hc);
	hc.vops.verify = fake_verify;
	hc.vops.ready = fake_ready;
	hc.vops.set_listener = fake_set_listener;
	hc.vops.refresh_soon = fake_refresh_soon;
	hc.unknown_kid_wait_ms = wait_ms;
	hc.max_held = max_held;
	assert_int_equal(handler_create(&hc, &f->h), 0);
	return f;
}

static void fx_free(fx *f)
{
	handler_destroy(f->h);
	/* destroy removed the listener */
	pthread_mutex_lock(&g_lmu);
	assert_null(g_listener);
	pthread_mutex_unlock(&g_lmu);
	assert_int_equal(atomic_load(&g_bad_asks), 0);
	fx_base_free(f);
}

static int submit(fx *f, const char *auth, bool imp, slot *r)
{
	char buf[64];
	handler_input in;
	handler_sink k = {slot_str, slot_int, slot_proc, r};
	int st;

	/* a private copy that the test scribbles over after submit: a held request must have copied it */
	snprintf(buf, sizeof(buf), "%s", auth);
	in = input_auth(buf);
	in.imp = imp;
	slot_init(r);
	st = handler_submit(f->h, &in, 1700000000, &k, slot_done);
	memset(buf, 'X', sizeof(buf)); /* the NOTIFY's bytes die with the handler call */
	return st;
}

/* Waits (bounded) until the fake verifier has been called n times in total. */
static void wait_verifies(unsigned n)
{
	for (int i = 0; i < BOUND_S * 1000 && atomic_load(&g_verifies) < n; i++)
		usleep(1000);
	assert_true(atomic_load(&g_verifies) >= n);
}

/* ---- the cases ------------------------------------------------------------------------------------------------ */

/* The regression: the key arrives after the request came; the held request is allowed once it does. */
static void test_key_arrives(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 0);
	slot r;

	(void)state;
	assert_int_equal(submit(f, "Bearer newkid", false, &r), HANDLER_HELD);
	assert_int_equal(r.nvars, 0);      /* nothing written while held */
	assert_int_equal(handler_held(f->h), 1);
	atomic_store(&g_rotated, true);
	provider_signal();
	wait_done(1);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.status, HANDLER_ALLOW);
	assert_string_equal(r.user, "alice");
	assert_true(r.has_sa);
	assert_int_equal(handler_held(f->h), 0);
	assert_int_equal(metrics_count(f->m, METRICS_ALLOW, HR_OK), 1);
	fx_free(f);
}

/* A held request keeps HAProxy's slot list (xk) although the NOTIFY's bytes are gone: its extra goes to the slot
 * when the key arrives (the list was copied into the held request, not pointed at). */
static void test_held_request_keeps_the_slots(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 0);
	char buf[64], xk[64];
	handler_input in;
	slot r;
	handler_sink k = {slot_str, slot_int, slot_proc, &r};

	(void)state;
	snprintf(buf, sizeof(buf), "Bearer newkid-extra");
	snprintf(xk, sizeof(xk), "example.com%%2Fteam|||||||");
	in = input_auth(buf);
	in.xk = (const uint8_t *)xk;
	in.xk_len = strlen(xk);
	slot_init(&r);
	assert_int_equal(handler_submit(f->h, &in, 1700000000, &k, slot_done), HANDLER_HELD);
	memset(buf, 'X', sizeof(buf));
	memset(xk, 'X', sizeof(xk));
	atomic_store(&g_rotated, true);
	provider_signal();
	wait_done(1);
	assert_int_equal(r.status, HANDLER_ALLOW);
	assert_string_equal(r.x1v0, "blue");
	fx_free(f);
}

/* Held requests are judged in full again: impersonation → 403, a now-visible problem → its own 401. */
static void test_rejudged_in_full(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 0);
	slot imp, exp;

	(void)state;
	assert_int_equal(submit(f, "Bearer newkid", true, &imp), HANDLER_HELD);
	assert_int_equal(submit(f, "Bearer newkid-expired", false, &exp), HANDLER_HELD);
	atomic_store(&g_rotated, true);
	provider_signal();
	wait_done(2);
	assert_int_equal(imp.status, HANDLER_IMPERSONATION);
	assert_string_equal(imp.reason, "impersonation requests are disabled");
	assert_false(imp.has_sa);
	assert_int_equal(exp.status, HANDLER_UNAUTHENTICATED);
	assert_string_equal(exp.reason, "token expired");
	assert_false(exp.has_sa);
	fx_free(f);
}

/* No download can come before the deadline: 401 at once, nothing held. */
static void test_no_refresh_soon(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 0);
	slot r;

	(void)state;
	atomic_store(&g_soon, false);
	assert_int_equal(submit(f, "Bearer newkid", false, &r), HANDLER_UNAUTHENTICATED);
	assert_int_equal(r.status, HANDLER_UNAUTHENTICATED);
	assert_string_equal(r.reason, "unknown key id");
	assert_int_equal(r.done, 0); /* a synchronous answer: no completion */
	assert_int_equal(handler_held(f->h), 0);
	fx_free(f);
}

/* Holding disabled (wait 0): the old behaviour, 401 at once, refresh_soon not even asked. */
static void test_disabled(void **state)
{
	fx *f = fx_new(0, 0);
	slot r;

	(void)state;
	assert_int_equal(submit(f, "Bearer newkid", false, &r), HANDLER_UNAUTHENTICATED);
	assert_string_equal(r.reason, "unknown key id");
	assert_int_equal(atomic_load(&g_soon_asks), 0);
	fx_free(f);
}

/* Other verdicts are never held: the hold is for unknown kids only. */
static void test_only_unknown_kid(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 0);
	slot r;

	(void)state;
	assert_int_equal(submit(f, "Bearer good", false, &r), HANDLER_ALLOW);
	assert_int_equal(r.status, HANDLER_ALLOW);
	assert_int_equal(submit(f, "Bearer forged", false, &r), HANDLER_UNAUTHENTICATED);
	assert_string_equal(r.reason, "invalid signature");
	assert_int_equal(submit(f, "Basic x", false, &r), HANDLER_UNAUTHENTICATED);
	assert_string_equal(r.reason, "malformed Authorization header");
	assert_int_equal(atomic_load(&g_soon_asks), 0);
	fx_free(f);
}

/* The deadline passes without any attempt ending: 401 "unknown key id". */
static void test_deadline(void **state)
{
	fx *f = fx_new(30, 0);
	slot r;

	(void)state;
	assert_int_equal(submit(f, "Bearer randomkid", false, &r), HANDLER_HELD);
	wait_done(1);
	assert_int_equal(r.status, HANDLER_UNAUTHENTICATED);
	assert_string_equal(r.reason, "unknown key id");
	assert_false(r.has_sa);
	assert_int_equal(handler_held(f->h), 0);
	assert_int_equal(metrics_count(f->m, METRICS_UNAUTHENTICATED, HR_V_UNKNOWN_KID), 1);
	fx_free(f);
}

/* Distributed groups being fetched (VERIFY_E_PENDING) are held whether or not a JWKS download may come, and
 * judged again when the fetch's end is signalled (the fetcher calls the same listener): allowed with the groups. */
static void test_distributed_groups_fetched(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 0);
	slot r;

	(void)state;
	atomic_store(&g_soon, false);
	assert_int_equal(submit(f, "Bearer distgroups", false, &r), HANDLER_HELD);
	assert_int_equal(r.nvars, 0);
	assert_int_equal(atomic_load(&g_soon_asks), 0); /* not an unknown kid: no JWKS question */
	atomic_store(&g_fetched, true);
	provider_signal();
	wait_done(1);
	assert_int_equal(r.status, HANDLER_ALLOW);
	assert_string_equal(r.user, "dana");
	assert_int_equal(metrics_count(f->m, METRICS_ALLOW, HR_OK), 1);
	fx_free(f);
}

/* Still pending at the deadline: 401 "invalid claims" (the source did not answer in time), never an allow
 * without the groups; with holding off, the same 401 at once. */
static void test_distributed_groups_deadline_and_no_hold(void **state)
{
	fx *f = fx_new(30, 0);
	slot r;

	(void)state;
	assert_int_equal(submit(f, "Bearer distgroups-late", false, &r), HANDLER_HELD);
	wait_done(1);
	assert_int_equal(r.status, HANDLER_UNAUTHENTICATED);
	assert_string_equal(r.reason, "invalid claims");
	assert_false(r.has_sa);
	assert_int_equal(metrics_count(f->m, METRICS_UNAUTHENTICATED, HR_V_CLAIMS), 1);
	fx_free(f);
	f = fx_new(0, 0);
	assert_int_equal(submit(f, "Bearer distgroups-late", false, &r), HANDLER_UNAUTHENTICATED);
	assert_string_equal(r.reason, "invalid claims");
	fx_free(f);
}

/* An attempt ended without the key and none can come in time (rate limit): 401 at that signal, not at the
 * 60 s deadline. */
static void test_attempt_without_key_then_none(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 0);
	slot r;

	(void)state;
	assert_int_equal(submit(f, "Bearer newkid", false, &r), HANDLER_HELD);
	atomic_store(&g_soon, false);
	provider_signal();
	wait_done(1);
	assert_int_equal(r.status, HANDLER_UNAUTHENTICATED);
	assert_string_equal(r.reason, "unknown key id");
	fx_free(f);
}

/* An attempt ended without the key but another may still come in time: keep waiting; the next one brings it. */
static void test_attempt_without_key_keeps_waiting(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 0);
	slot r;

	(void)state;
	assert_int_equal(submit(f, "Bearer newkid", false, &r), HANDLER_HELD);
	assert_int_equal(atomic_load(&g_verifies), 1);
	provider_signal();        /* download failed or still the old keys */
	wait_verifies(2);         /* judged again ... */
	usleep(20000);            /* (grace for a wrong completion to show; not a speed requirement) */
	assert_int_equal(done_count(), 0); /* ... and still held */
	assert_int_equal(handler_held(f->h), 1);
	atomic_store(&g_rotated, true);
	provider_signal();
	wait_done(1);
	assert_int_equal(r.status, HANDLER_ALLOW);
	fx_free(f);
}

/* The attempt ends between the worker's verdict and the hold: the holding thread must still judge again. */
static void test_signal_before_hold(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 0);
	slot r;

	(void)state;
	assert_int_equal(submit(f, "Bearer racekid", false, &r), HANDLER_HELD);
	wait_done(1);
	assert_int_equal(r.status, HANDLER_ALLOW);
	fx_free(f);
}

/* At most max_held wait; the next gets 401 at once; handler_stop answers the held ones 503 "agent shutting
 * down" (completed exactly once), and later ones are not held. */
static void test_cap_and_shutdown(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, 2);
	slot a, b, c, d;

	(void)state;
	assert_int_equal(submit(f, "Bearer newkid", false, &a), HANDLER_HELD);
	assert_int_equal(submit(f, "Bearer newkid", false, &b), HANDLER_HELD);
	assert_int_equal(submit(f, "Bearer newkid", false, &c), HANDLER_UNAUTHENTICATED);
	assert_string_equal(c.reason, "unknown key id");
	assert_int_equal(c.done, 0);
	assert_int_equal(handler_held(f->h), 2);
	handler_stop(f->h);
	assert_int_equal(done_count(), 2); /* handler_stop returns only after completing them */
	assert_int_equal(a.done, 1);
	assert_int_equal(b.done, 1);
	assert_int_equal(a.status, HANDLER_UNAVAILABLE);
	assert_string_equal(a.reason, "agent shutting down");
	assert_int_equal(b.status, HANDLER_UNAVAILABLE);
	assert_int_equal(handler_held(f->h), 0);
	assert_int_equal(submit(f, "Bearer newkid", false, &d), HANDLER_UNAVAILABLE);
	assert_string_equal(d.reason, "agent shutting down");
	handler_stop(f->h); /* idempotent */
	provider_signal();  /* listener removed: nothing happens */
	fx_free(f);
}

/* Several workers hold requests while signals without the key keep coming; then the key arrives and every
 * request is allowed, each completed exactly once. Under ASan/TSan-style builds this is the race check. */
#define NTHREADS 4
#define PER_THREAD 100

typedef struct worker_arg {
	fx *f;
	slot *slots;
} worker_arg;

static void *worker(void *arg)
{
	worker_arg *w = arg;

	for (int i = 0; i < PER_THREAD; i++)
		if (submit(w->f, "Bearer newkid", false, &w->slots[i]) != HANDLER_HELD)
			return (void *)1;
	return NULL;
}

static void test_concurrent(void **state)
{
	fx *f = fx_new(LONG_WAIT_MS, NTHREADS * PER_THREAD);
	slot *slots = calloc(NTHREADS * PER_THREAD, sizeof(slot));
	pthread_t th[NTHREADS];
	worker_arg wa[NTHREADS];
	void *ret;

	(void)state;
	assert_non_null(slots);
	for (int t = 0; t < NTHREADS; t++) {
		wa[t] = (worker_arg){f, slots + t * PER_THREAD};
		assert_int_equal(pthread_create(&th[t], NULL, worker, &wa[t]), 0);
	}
	for (int i = 0; i < 20; i++)
		provider_signal(); /* attempts that bring nothing, racing with the holds */
	for (int t = 0; t < NTHREADS; t++) {
		assert_int_equal(pthread_join(th[t], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(done_count(), 0);
	atomic_store(&g_rotated, true);
	provider_signal();
	wait_done(NTHREADS * PER_THREAD);
	for (int i = 0; i < NTHREADS * PER_THREAD; i++) {
		assert_int_equal(slots[i].done, 1);
		assert_int_equal(slots[i].status, HANDLER_ALLOW);
	}
	assert_int_equal(handler_held(f->h), 0);
	fx_free(f);
	free(slots);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_arrives),
		cmocka_unit_test(test_held_request_keeps_the_slots),
		cmocka_unit_test(test_rejudged_in_full),
		cmocka_unit_test(test_no_refresh_soon),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_only_unknown_kid),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_distributed_groups_fetched),
		cmocka_unit_test(test_distributed_groups_deadline_and_no_hold),
		cmocka_unit_test(test_attempt_without_key_then_none),
		cmocka_unit_test(test_attempt_without_key_keeps_waiting),
		cmocka_unit_test(test_signal_before_hold),
		cmocka_unit_test(test_cap_and_shutdown),
		cmocka_unit_test(test_concurrent),
	};

	log_init(open("/dev/null", O_WRONLY), LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
