/*
 * spoa_example.c — a small SPOE agent on libspoa, driven by the library's HAProxy tests and benchmarks.
 *
 *   spoa_example [--listen ADDR] [--threads N] [--delay-ms MS] [--noop] [--max-frame-size N] [--max-conns N]
 *                [--frame-timeout-ms MS] [--debug]
 *
 * For every NOTIFY it echoes each argument of each message back as a txn-scope variable of the same name and
 * type (an argument without a name becomes "argN"), plus "<name>_t" holding the type id (so a NULL argument is
 * visible as 0); then it sets one variable of every type in every scope: null bool i32 u32 i64 u64 ip4 ip6 str
 * bin, and "nmsg" (messages in the NOTIFY). --noop answers with the library's default one-action ACK (for
 * benchmarks). --delay-ms answers late through the deferred API from a timer thread, which also adds "late".
 * Prints "listening on ADDR port N" once ready; SIGTERM/SIGINT drain and exit 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spoa.h"

static bool noop;
static unsigned delay_ms;

/* ---- delayed completions: one thread, FIFO (every request waits the same delay) ---------------------------- */

typedef struct delayed {
	spoa_request *req;
	struct timespec due;
	struct delayed *next;
} delayed;

static pthread_mutex_t dl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dl_cond = PTHREAD_COND_INITIALIZER;
static delayed *dl_head, *dl_tail;
static bool dl_stop;

static void *delay_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&dl_lock);
	for (;;) {
		if (!dl_head) {
			if (dl_stop)
				break;
			pthread_cond_wait(&dl_cond, &dl_lock);
			continue;
		}
		delayed *d = dl_head;
		int r = dl_stop ? ETIMEDOUT : pthread_cond_timedwait(&dl_cond, &dl_lock, &d->due);
		if (r != ETIMEDOUT)
			continue;
		dl_head = d->next;
		if (!dl_head)
			dl_tail = NULL;
		pthread_mutex_unlock(&dl_lock);
		/* Between SPOA_DEFERRED and completion, the one completing thread may still add actions. */
		spoa_ack_set_bool(d->req, SPOP_SCOPE_TXN, "late", true);
		spoa_request_complete(d->req);
		free(d);
		pthread_mutex_lock(&dl_lock);
	}
	pthread_mutex_unlock(&dl_lock);
	return NULL;
}

static bool defer(spoa_request *req)
{
	delayed *d = calloc(1, sizeof(*d));
	if (!d)
		return false;
	d->req = req;
	clock_gettime(CLOCK_REALTIME, &d->due);
	d->due.tv_sec += delay_ms / 1000;
	d->due.tv_nsec += (long)(delay_ms % 1000) * 1000000L;
	if (d->due.tv_nsec >= 1000000000L) {
		d->due.tv_sec++;
		d->due.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&dl_lock);
	if (dl_tail)
		dl_tail->next = d;
	else
		dl_head = d;
	dl_tail = d;
	pthread_cond_signal(&dl_cond);
	pthread_mutex_unlock(&dl_lock);
	return true;
}

/* ---- the handler --------------------------------------------------------------------------------------------- */

static void set_every_type(spoa_request *req, enum spop_scope sc)
{
	spop_value v;
	v.type = SPOP_T_NULL;
	spoa_ack_set(req, sc, "null", 4, &v);
	spoa_ack_set_bool(req, sc, "bool", true);
	v.type = SPOP_T_INT32;
	v.u.i = -42;
	spoa_ack_set(req, sc, "i32", 3, &v);
	v.type = SPOP_T_UINT32;
	v.u.u = 4000000000u;
	spoa_ack_set(req, sc, "u32", 3, &v);
	v.type = SPOP_T_INT64;
	v.u.i = -1234567890123LL;
	spoa_ack_set(req, sc, "i64", 3, &v);
	v.type = SPOP_T_UINT64;
	v.u.u = 1234567890123ULL;
	spoa_ack_set(req, sc, "u64", 3, &v);
	v.type = SPOP_T_IPV4;
	memcpy(v.u.ip4, (const uint8_t[]){ 192, 0, 2, 1 }, 4);
	spoa_ack_set(req, sc, "ip4", 3, &v);
	v.type = SPOP_T_IPV6;
	memcpy(v.u.ip6, (const uint8_t[]){ 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 16);
	spoa_ack_set(req, sc, "ip6", 3, &v);
	spoa_ack_set_str(req, sc, "str", "hello", 5);
	v.type = SPOP_T_BIN;
	v.u.s.ptr = (const uint8_t *)"\x00\xff" "A";
	v.u.s.len = 3;
	spoa_ack_set(req, sc, "bin", 3, &v);
}

static int handler(spoa_request *req, void *ud)
{
	(void)ud;
	if (noop)
		return SPOA_DONE;
	spop_msg m;
	int nmsg = 0;
	while (spoa_request_next_msg(req, &m) == 1) {
		nmsg++;
		spop_arg a;
		unsigned i = 0;
		while (spop_msg_next_arg(&m, &a) == 1) {
			char name[64];
			int n;
			if (a.name.len == 0)
				n = snprintf(name, sizeof(name), "arg%u", i);
			else
				n = snprintf(name, sizeof(name), "%.*s", (int)(a.name.len > 40 ? 40 : a.name.len),
					     (const char *)a.name.ptr);
			i++;
			spoa_ack_set(req, SPOP_SCOPE_TXN, name, (size_t)n, &a.value);
			char tname[72];
			snprintf(tname, sizeof(tname), "%s_t", name);
			spoa_ack_set_int(req, SPOP_SCOPE_TXN, tname, (int64_t)a.value.type);
		}
	}
	for (int sc = SPOP_SCOPE_PROC; sc <= SPOP_SCOPE_RES; sc++)
		set_every_type(req, (enum spop_scope)sc);
	spoa_ack_set_int(req, SPOP_SCOPE_TXN, "nmsg", nmsg);
	if (delay_ms && defer(req))
		return SPOA_DEFERRED;
	return SPOA_DONE;
}

static void log_line(void *ud, enum spoa_log_level lvl, const char *msg)
{
	(void)ud;
	static const char *const names[] = { "error", "warn", "info", "debug" };
	fprintf(stderr, "spoa_example: %s: %s\n", names[lvl], msg);
}

static void usage(void)
{
	fprintf(stderr, "usage: spoa_example [--listen ADDR] [--threads N] [--delay-ms MS] [--noop] "
			"[--max-frame-size N] [--max-conns N] [--frame-timeout-ms MS] [--debug]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	spoa_server_config cfg = { .listen = "127.0.0.1:12345", .handler = handler, .log = log_line,
				   .log_level = SPOA_LOG_INFO };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--listen") == 0 && v) {
			cfg.listen = v;
			i++;
		} else if (strcmp(a, "--threads") == 0 && v) {
			cfg.nthreads = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (strcmp(a, "--delay-ms") == 0 && v) {
			delay_ms = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (strcmp(a, "--max-frame-size") == 0 && v) {
			cfg.max_frame_size = (uint32_t)strtoul(v, NULL, 10);
			i++;
		} else if (strcmp(a, "--max-conns") == 0 && v) {
			cfg.max_conns = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (strcmp(a, "--frame-timeout-ms") == 0 && v) {
			cfg.frame_timeout_ms = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (strcmp(a, "--noop") == 0) {
			noop = true;
		} else if (strcmp(a, "--debug") == 0) {
			cfg.log_level = SPOA_LOG_DEBUG;
		} else {
			usage();
		}
	}

	/* Workers inherit this mask; the main thread takes the signals with sigwait(). */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	char err[256];
	spoa_server *s;
	if (spoa_server_create(&cfg, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "spoa_example: %s\n", err);
		return 1;
	}
	pthread_t dth;
	bool dth_started = false;
	if (delay_ms) {
		if (pthread_create(&dth, NULL, delay_main, NULL) != 0) {
			fprintf(stderr, "spoa_example: pthread_create failed\n");
			spoa_server_destroy(s);
			return 1;
		}
		dth_started = true;
	}
	if (spoa_server_start(s) < 0) {
		fprintf(stderr, "spoa_example: cannot start workers\n");
		spoa_server_destroy(s);
		return 1;
	}
	printf("listening on %s port %d\n", cfg.listen, spoa_server_port(s));
	fflush(stdout);

	int sig;
	sigwait(&set, &sig);
	fprintf(stderr, "spoa_example: signal %d, draining\n", sig);
	spoa_server_stop(s, 2000);
	if (dth_started) {
		/* Finish what is waiting so every deferred request is completed before the server goes. */
		pthread_mutex_lock(&dl_lock);
		dl_stop = true;
		pthread_cond_signal(&dl_cond);
		pthread_mutex_unlock(&dl_lock);
		pthread_join(dth, NULL);
	}
	spoa_stats st;
	spoa_server_stats(s, &st);
	spoa_server_destroy(s);
	fprintf(stderr, "spoa_example: done: conns=%llu notify=%llu healthchecks=%llu protocol_errors=%llu\n",
		(unsigned long long)st.conns_accepted, (unsigned long long)st.notify,
		(unsigned long long)st.healthchecks, (unsigned long long)st.protocol_errors);
	return 0;
}
