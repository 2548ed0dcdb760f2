/*
 * spoa_server.c — see spoa_server.h and spoa.h.
 *
 * Threads: every worker runs its own ev_loop and watches the one shared listening socket (level-triggered, so
 * a worker that is busy leaves new connections to the others; a worker that already holds more than its share
 * lets them go first). A connection lives on the worker that accepted it for its whole life. Other threads
 * talk to a worker only through its ev_async watcher: spoa_request_complete() queues under a mutex,
 * spoa_server_stop() sets a flag.
 *
 * I/O: per read event, up to a few recv() calls into the connection's input buffer, one spop_conn_process()
 * per recv, then one send() of everything queued. Writing is retried on EV_WRITE only when the socket is full.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "spoa_server.h"
#include "spop_conn.h"

#define ACCEPT_BATCH 8
#define READS_PER_EVENT 4
#define EMFILE_PAUSE 0.1
#define DEFAULT_FRAME_TIMEOUT_MS 30000u

struct worker;

typedef struct sconn {
	ev_io io;
	ev_timer ft;          /* incomplete-frame timeout; armed lazily, re-armed from partial_since */
	ev_tstamp partial_since;
	bool partial;         /* spop_conn_partial() at the last check */
	uint64_t partial_frames; /* spop_conn_frames_in() when partial_since was taken */
	int fd;
	int events; /* what io currently watches */
	spop_conn *pc;
	struct worker *w;
	struct sconn *prev, *next;
	struct sconn *dirty_next; /* on the worker's flush list after completions */
	bool dirty;
} sconn;

typedef struct worker {
	spoa_server *srv;
	unsigned idx;
	pthread_t th;
	bool th_started;
	struct ev_loop *loop;
	ev_io accept_w;
	ev_timer accept_pause;
	int accept_paused; /* atomic: accept_w stopped for EMFILE_PAUSE (other workers must not defer to us) */
	ev_async wake;
	ev_timer drain_t;
	bool stopping;

	pthread_mutex_t qlock;
	spoa_request *q_head, *q_tail; /* completed deferred requests from any thread */

	sconn *conns;
	unsigned nconns;
	spop_counters ctr;
	uint64_t accepted, rejected;
} worker;

struct spoa_server {
	spoa_server_config cfg;
	int lfd;
	int port;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned n;
	worker *w;
	unsigned nconns;       /* atomic: open connections over all workers */
	int stop_flag;         /* atomic */
	int accept_starved;    /* atomic: 1 while accepts fail for lack of descriptors/memory (one log line) */
	unsigned drain_ms;     /* atomic */
	bool started;
};

static void slog(spoa_server *s, enum spoa_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void slog(spoa_server *s, enum spoa_log_level lvl, const char *fmt, ...)
{
	if (!s->cfg.log || lvl > s->cfg.log_level)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.log_userdata, lvl, buf);
}

/* ---- listen address ------------------------------------------------------------------------------------ */

int spoa_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
	memset(ss, 0, sizeof(*ss));
	if (!spec)
		return SPOP_E_ARG;
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		size_t n = strlen(spec + 5);
		if (n == 0 || n >= sizeof(un->sun_path))
			return SPOP_E_ARG;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, spec + 5, n + 1);
		*sslen = (socklen_t)sizeof(*un);
		return 0;
	}
	const char *colon = strrchr(spec, ':');
	if (!colon || !colon[1])
		return SPOP_E_ARG;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 0 || port > 65535)
		return SPOP_E_ARG;
	char host[64];
	size_t hl = (size_t)(colon - spec);
	if (hl >= sizeof(host))
		return SPOP_E_ARG;
	memcpy(host, spec, hl);
	host[hl] = 0;
	if (hl == 0) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_addr = in6addr_any;
		a6->sin6_port = htons((uint16_t)port);
		*sslen = sizeof(*a6);
		return 0;
	}
	if (host[0] == '[') {
		if (hl < 3 || host[hl - 1] != ']')
			return SPOP_E_ARG;
		host[hl - 1] = 0;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return SPOP_E_ARG;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*sslen = sizeof(*a6);
		return 0;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		return SPOP_E_ARG;
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	*sslen = sizeof(*a4);
	return 0;
}

static int open_listener(spoa_server *s, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (spoa_parse_listen(s->cfg.listen, &ss, &sl) < 0) {
		snprintf(err, errlen, "bad listen address '%s'", s->cfg.listen ? s->cfg.listen : "(null)");
		return SPOP_E_ARG;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr)) {
		/* ":port" on a host without IPv6: all IPv4 addresses instead. */
		uint16_t port = ((struct sockaddr_in6 *)&ss)->sin6_port;
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		memset(&ss, 0, sizeof(ss));
		a4->sin_family = AF_INET;
		a4->sin_port = port;
		a4->sin_addr.s_addr = htonl(INADDR_ANY);
		sl = sizeof(*a4);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return SPOP_E_SYS;
	}
	int one = 1, zero = 0;
	if (ss.ss_family == AF_UNIX) {
		/* A stale socket file from a previous run would make bind fail; remove only a socket. */
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		struct stat st;
		if (lstat(un->sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(un->sun_path);
		memcpy(s->unix_path, un->sun_path, sizeof(s->unix_path));
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		snprintf(err, errlen, "bind %s: %s", s->cfg.listen, strerror(errno));
		s->unix_path[0] = 0;
		close(fd);
		return SPOP_E_SYS;
	}
	if (ss.ss_family == AF_UNIX) {
		/* Connecting needs write permission on the socket file, and the agent's answers carry the
		 * service-account token: the owner and the socket's group only (0660), never "others". The group is
		 * the one HAProxy shares with the agent: in a pod, the fsGroup that kubelet gives both containers and
		 * sets on the emptyDir (setgid, so the socket inherits it); elsewhere, a setgid directory of a group
		 * HAProxy is in (README). bind() created it as 0777 & ~umask; changed before listen(), so no peer can
		 * connect while it is wider. chmod on the path: Linux ignores fchmod() on a socket's descriptor. */
		if (chmod(s->unix_path, 0660) < 0) {
			snprintf(err, errlen, "chmod %s: %s", s->unix_path, strerror(errno));
			close(fd);
			unlink(s->unix_path);
			s->unix_path[0] = 0;
			return SPOP_E_SYS;
		}
	}
	/* HAProxy reloads open all their agent connections at once: take the kernel's largest backlog. */
	if (listen(fd, 65535) < 0) {
		snprintf(err, errlen, "listen %s: %s", s->cfg.listen, strerror(errno));
		close(fd);
		return SPOP_E_SYS;
	}
	if (ss.ss_family != AF_UNIX) {
		struct sockaddr_storage b;
		socklen_t bl = sizeof(b);
		if (getsockname(fd, (struct sockaddr *)&b, &bl) == 0)
			s->port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
								: ((struct sockaddr_in *)&b)->sin_port);
	}
	s->lfd = fd;
	return 0;
}

/* ---- connections ----------------------------------------------------------------------------------------- */

static void conn_close(sconn *c)
{
	worker *w = c->w;
	spoa_server *s = w->srv;
	if (spop_conn_protocol_error(c->pc))
		slog(s, SPOA_LOG_WARN, "spoa: worker %u fd %d closed: %s", w->idx, c->fd, spop_conn_reason(c->pc));
	else
		slog(s, SPOA_LOG_DEBUG, "spoa: worker %u fd %d closed: %s", w->idx, c->fd, spop_conn_reason(c->pc));
	ev_io_stop(w->loop, &c->io);
	ev_timer_stop(w->loop, &c->ft);
	close(c->fd);
	spop_conn_close(c->pc);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	__atomic_store_n(&w->nconns, w->nconns - 1, __ATOMIC_RELAXED); /* read by other workers' accept_cb */
	__atomic_fetch_sub(&s->nconns, 1, __ATOMIC_RELAXED);
	if (c->dirty) {
		/* still on the flush list: the list walker skips it via pc == NULL */
		c->pc = NULL;
		return;
	}
	free(c);
}

static void set_events(sconn *c, int ev)
{
	if (ev == c->events)
		return;
	ev_io_stop(c->w->loop, &c->io);
	c->events = ev;
	if (ev) {
		ev_io_set(&c->io, c->fd, ev);
		ev_io_start(c->w->loop, &c->io);
	}
}

static double frame_timeout(const sconn *c)
{
	return c->w->srv->cfg.frame_timeout_ms / 1000.0;
}

/* Starts the incomplete-frame clock when the connection enters the partial state or a new frame starts. The timer is started once
 * and re-armed from its callback, so the hot path (frames split across reads) costs a compare, not a timer
 * heap operation per read. */
static void track_partial(sconn *c)
{
	/* A closing connection whose peer does not read would keep its last frame (and its descriptor) for ever:
	 * the same clock bounds it. */
	bool part = spop_conn_partial(c->pc) || spop_conn_state(c->pc) == SPOP_CS_CLOSING;
	uint64_t frames = spop_conn_frames_in(c->pc);
	/* The clock runs per frame: a stream whose reads end mid-frame is partial at every check, but each
	 * consumed frame restarts it. */
	if (part && (!c->partial || frames != c->partial_frames)) {
		c->partial_since = ev_now(c->w->loop);
		c->partial_frames = frames;
		if (!ev_is_active(&c->ft)) {
			ev_timer_set(&c->ft, frame_timeout(c), 0.);
			ev_timer_start(c->w->loop, &c->ft);
		}
	}
	c->partial = part;
}

static bool conn_flush(sconn *c);

static void frame_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	sconn *c = t->data;
	if (!c->partial)
		return;
	double left = c->partial_since + frame_timeout(c) - ev_now(loop);
	if (left > 0.) {
		ev_timer_set(t, left, 0.);
		ev_timer_start(loop, t);
		return;
	}
	enum spop_conn_state st = spop_conn_state(c->pc);
	if (st == SPOP_CS_CLOSING) {
		slog(c->w->srv, SPOA_LOG_DEBUG, "spoa: worker %u fd %d: peer did not take its last frame", c->w->idx,
		     c->fd);
		conn_close(c);
		return;
	}
	slog(c->w->srv, SPOA_LOG_WARN, "spoa: worker %u fd %d: %s after %u ms, disconnecting", c->w->idx, c->fd,
	     st == SPOP_CS_AWAIT_HELLO ? "no complete HELLO" : "frame incomplete", c->w->srv->cfg.frame_timeout_ms);
	spop_conn_abort(c->pc, SPOP_ST_TIMEOUT, NULL);
	c->partial = false;
	if (conn_flush(c)) /* best effort: a peer that does not read does not get to keep the descriptor */
		conn_close(c);
}

/* Sends what is queued (one send per batch), re-runs processing when that freed room, updates the watcher.
 * Returns false if the connection was closed. */
static bool conn_flush(sconn *c)
{
	for (int round = 0; round < 4; round++) {
		const uint8_t *p;
		size_t len;
		spop_conn_output(c->pc, &p, &len);
		if (len == 0)
			break;
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			spop_conn_eof(c->pc);
			conn_close(c);
			return false;
		}
		spop_conn_consume(c->pc, (size_t)n);
		if ((size_t)n < len)
			break;
		/* Everything went out: frames that waited for output room can run now. */
		spop_conn_process(c->pc);
	}
	if (spop_conn_done(c->pc)) {
		conn_close(c);
		return false;
	}
	track_partial(c);
	const uint8_t *p;
	size_t olen, ilen;
	uint8_t *ip;
	spop_conn_output(c->pc, &p, &olen);
	spop_conn_input(c->pc, &ip, &ilen);
	set_events(c, (ilen ? EV_READ : 0) | (olen ? EV_WRITE : 0));
	return true;
}

static void conn_io(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	sconn *c = (sconn *)io;
	if (revents & EV_READ) {
		for (int i = 0; i < READS_PER_EVENT; i++) {
			uint8_t *p;
			size_t len;
			spop_conn_input(c->pc, &p, &len);
			if (len == 0)
				break;
			ssize_t n = recv(c->fd, p, len, MSG_DONTWAIT);
			if (n > 0) {
				spop_conn_commit(c->pc, (size_t)n);
				spop_conn_process(c->pc);
				if ((size_t)n < len)
					break;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n < 0 && errno == EINTR)
				continue;
			/* EOF or reset: the peer will read nothing more. */
			spop_conn_eof(c->pc);
			conn_close(c);
			return;
		}
	}
	conn_flush(c);
}

static void accept_one(worker *w, int fd)
{
	spoa_server *s = w->srv;
	unsigned open_now = __atomic_add_fetch(&s->nconns, 1, __ATOMIC_RELAXED);
	if (open_now > s->cfg.max_conns) {
		__atomic_fetch_sub(&s->nconns, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&w->rejected, w->rejected + 1, __ATOMIC_RELAXED);
		slog(s, SPOA_LOG_WARN, "spoa: connection refused: %u connections open (max-conns)", open_now - 1);
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails harmlessly on unix sockets */
	sconn *c = calloc(1, sizeof(*c));
	spop_conn_config cc = {
		.max_frame_size = s->cfg.max_frame_size,
		.max_inflight = s->cfg.max_inflight_per_conn,
		.handler = s->cfg.handler,
		.handler_userdata = s->cfg.handler_userdata,
		.worker = w->idx,
		.route = w,
		.counters = &w->ctr,
	};
	if (!c || spop_conn_create(&cc, &c->pc) < 0) {
		free(c);
		__atomic_fetch_sub(&s->nconns, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&w->rejected, w->rejected + 1, __ATOMIC_RELAXED);
		slog(s, SPOA_LOG_ERROR, "spoa: out of memory accepting a connection");
		close(fd);
		return;
	}
	spop_conn_set_owner(c->pc, c);
	c->fd = fd;
	c->w = w;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	__atomic_store_n(&w->nconns, w->nconns + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&w->accepted, w->accepted + 1, __ATOMIC_RELAXED);
	ev_io_init(&c->io, conn_io, fd, EV_READ);
	c->events = EV_READ;
	ev_io_start(w->loop, &c->io);
	ev_timer_init(&c->ft, frame_timeout_cb, 0., 0.);
	c->ft.data = c;
	track_partial(c); /* the HELLO clock starts at accept */
}

static bool over_share(const worker *w, unsigned total)
{
	return __atomic_load_n(&w->nconns, __ATOMIC_RELAXED) > total / w->srv->n + 1;
}

/* True if some other worker watches the listening socket and would take the connection (not paused, not over
 * its share itself). A worker over its share leaves a connection to the others only then: if they are paused
 * (EMFILE) or all deferring to each other, the socket stays readable and returning without an accept would
 * spin level-triggered loops at full CPU. */
static bool other_worker_accepting(const worker *w, unsigned total)
{
	const spoa_server *s = w->srv;
	for (unsigned i = 0; i < s->n; i++)
		if (&s->w[i] != w && !__atomic_load_n(&s->w[i].accept_paused, __ATOMIC_RELAXED) &&
		    !over_share(&s->w[i], total))
			return true;
	return false;
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)revents;
	worker *w = io->data;
	spoa_server *s = w->srv;
	/* Share connections between workers: one that holds more than its share lets the others take this one
	 * (they watch the same socket and it stays readable until someone accepts). */
	unsigned total = __atomic_load_n(&s->nconns, __ATOMIC_RELAXED);
	if (s->n > 1 && over_share(w, total) && other_worker_accepting(w, total))
		return;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			if (__atomic_load_n(&s->accept_starved, __ATOMIC_RELAXED) &&
			    __atomic_exchange_n(&s->accept_starved, 0, __ATOMIC_RELAXED))
				slog(s, SPOA_LOG_WARN, "spoa: accepting connections again");
			accept_one(w, fd);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
			return;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of descriptors: the pending connection stays queued and the socket stays readable, so
			 * stop watching for a moment instead of spinning; connections that close free descriptors. */
			/* Retried every EMFILE_PAUSE by every worker: log the episode once, not each retry. */
			int e = errno;
			__atomic_store_n(&w->rejected, w->rejected + 1, __ATOMIC_RELAXED);
			if (!__atomic_exchange_n(&s->accept_starved, 1, __ATOMIC_RELAXED))
				slog(s, SPOA_LOG_ERROR, "spoa: accept: %s; retrying every %.0f ms until descriptors free up",
				     strerror(e), EMFILE_PAUSE * 1000);
			ev_io_stop(loop, &w->accept_w);
			__atomic_store_n(&w->accept_paused, 1, __ATOMIC_RELAXED);
			ev_timer_set(&w->accept_pause, EMFILE_PAUSE, 0.);
			ev_timer_start(loop, &w->accept_pause);
			return;
		}
		slog(s, SPOA_LOG_ERROR, "spoa: accept: %s", strerror(errno));
		return;
	}
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	worker *w = t->data;
	if (!w->stopping) {
		__atomic_store_n(&w->accept_paused, 0, __ATOMIC_RELAXED);
		ev_io_start(loop, &w->accept_w);
	}
}

/* ---- stop and completions -------------------------------------------------------------------------------- */

static void maybe_exit(worker *w)
{
	if (w->stopping && w->nconns == 0) {
		ev_timer_stop(w->loop, &w->drain_t);
		ev_break(w->loop, EVBREAK_ALL);
	}
}

static void drain_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	worker *w = t->data;
	sconn *c = w->conns;
	while (c) {
		sconn *next = c->next;
		spop_conn_abort(c->pc, SPOP_ST_NORMAL, "agent shutting down");
		if (conn_flush(c)) /* best effort: whatever the socket takes now */
			conn_close(c);
		c = next;
	}
	maybe_exit(w);
}

static void begin_stop(worker *w)
{
	spoa_server *s = w->srv;
	w->stopping = true;
	ev_io_stop(w->loop, &w->accept_w);
	ev_timer_stop(w->loop, &w->accept_pause);
	sconn *c = w->conns;
	while (c) {
		sconn *next = c->next;
		spop_conn_drain(c->pc);
		spop_conn_process(c->pc);
		conn_flush(c);
		c = next;
	}
	unsigned ms = __atomic_load_n(&s->drain_ms, __ATOMIC_RELAXED);
	ev_timer_set(&w->drain_t, ms / 1000.0, 0.);
	ev_timer_start(w->loop, &w->drain_t);
	maybe_exit(w);
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)revents;
	worker *w = a->data;
	pthread_mutex_lock(&w->qlock);
	spoa_request *r = w->q_head;
	w->q_head = w->q_tail = NULL;
	pthread_mutex_unlock(&w->qlock);

	sconn *dirty = NULL;
	while (r) {
		spoa_request *next = r->next;
		spop_conn *pc = r->conn;
		sconn *c = spop_conn_owner(pc);
		spop_conn_complete(pc, r);
		if (c && !c->dirty) {
			c->dirty = true;
			c->dirty_next = dirty;
			dirty = c;
		}
		r = next;
	}
	while (dirty) {
		sconn *c = dirty;
		dirty = c->dirty_next;
		c->dirty = false;
		if (!c->pc) { /* closed while on the list */
			free(c);
			continue;
		}
		spop_conn_process(c->pc);
		conn_flush(c);
	}
	if (!w->stopping && __atomic_load_n(&w->srv->stop_flag, __ATOMIC_ACQUIRE))
		begin_stop(w);
	else
		maybe_exit(w);
}

void spoa_request_complete(spoa_request *req)
{
	worker *w = spop_conn_route(req->conn);
	req->next = NULL;
	pthread_mutex_lock(&w->qlock);
	if (w->q_tail)
		w->q_tail->next = req;
	else
		w->q_head = req;
	w->q_tail = req;
	pthread_mutex_unlock(&w->qlock);
	ev_async_send(w->loop, &w->wake);
}

/* ---- lifecycle ------------------------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	worker *w = arg;
	ev_run(w->loop, 0);
	return NULL;
}

int spoa_server_create(const spoa_server_config *cfg, spoa_server **out, char *err, size_t errlen)
{
	char dummy[1];
	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = 0;
	if (!cfg || !cfg->listen) {
		snprintf(err, errlen, "no listen address");
		return SPOP_E_ARG;
	}
	if (cfg->max_frame_size && cfg->max_frame_size < SPOP_MIN_FRAME_SIZE) {
		snprintf(err, errlen, "max_frame_size below %u", SPOP_MIN_FRAME_SIZE);
		return SPOP_E_ARG;
	}
	spoa_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return SPOP_E_SYS;
	}
	s->cfg = *cfg;
	s->lfd = -1;
	if (!s->cfg.max_frame_size)
		s->cfg.max_frame_size = 65536;
	if (!s->cfg.max_inflight_per_conn)
		s->cfg.max_inflight_per_conn = 256;
	if (!s->cfg.max_conns)
		s->cfg.max_conns = 65536;
	if (!s->cfg.frame_timeout_ms)
		s->cfg.frame_timeout_ms = DEFAULT_FRAME_TIMEOUT_MS;
	s->n = cfg->nthreads;
	if (s->n == 0) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		s->n = ncpu > 0 ? (unsigned)ncpu : 1;
	}
	int rc = open_listener(s, err, errlen);
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->w = calloc(s->n, sizeof(worker));
	if (!s->w) {
		snprintf(err, errlen, "out of memory");
		rc = SPOP_E_SYS;
		goto out;
	}
	for (unsigned i = 0; i < s->n; i++) {
		worker *w = &s->w[i];
		w->srv = s;
		w->idx = i;
		pthread_mutex_init(&w->qlock, NULL);
		w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
		if (!w->loop) {
			snprintf(err, errlen, "ev_loop_new failed");
			rc = SPOP_E_SYS;
			goto out;
		}
		ev_io_init(&w->accept_w, accept_cb, s->lfd, EV_READ);
		w->accept_w.data = w;
		ev_timer_init(&w->accept_pause, accept_resume_cb, EMFILE_PAUSE, 0.);
		w->accept_pause.data = w;
		ev_timer_init(&w->drain_t, drain_timeout_cb, 1., 0.);
		w->drain_t.data = w;
		ev_async_init(&w->wake, wake_cb);
		w->wake.data = w;
		ev_async_start(w->loop, &w->wake);
	}
	*out = s;
	return 0;
out:
	spoa_server_destroy(s);
	return rc;
}

int spoa_server_start(spoa_server *s)
{
	if (s->started)
		return SPOP_E_STATE;
	for (unsigned i = 0; i < s->n; i++) {
		worker *w = &s->w[i];
		ev_io_start(w->loop, &w->accept_w);
		if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
			slog(s, SPOA_LOG_ERROR, "spoa: pthread_create failed");
			spoa_server_stop(s, 0);
			return SPOP_E_SYS;
		}
		w->th_started = true;
	}
	s->started = true;
	slog(s, SPOA_LOG_INFO, "spoa: listening on %s with %u worker(s)", s->cfg.listen, s->n);
	return 0;
}

void spoa_server_stop(spoa_server *s, unsigned drain_ms)
{
	/* Only atomics and ev_async_send: safe from a signal handler. */
	__atomic_store_n(&s->drain_ms, drain_ms, __ATOMIC_RELAXED);
	__atomic_store_n(&s->stop_flag, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < s->n; i++)
		if (s->w[i].loop)
			ev_async_send(s->w[i].loop, &s->w[i].wake);
}

void spoa_server_destroy(spoa_server *s)
{
	if (!s)
		return;
	if (s->w) {
		bool any = false;
		for (unsigned i = 0; i < s->n; i++)
			any |= s->w[i].th_started;
		if (any && !__atomic_load_n(&s->stop_flag, __ATOMIC_ACQUIRE))
			spoa_server_stop(s, 0);
		for (unsigned i = 0; i < s->n; i++) {
			worker *w = &s->w[i];
			if (w->th_started)
				pthread_join(w->th, NULL);
		}
		for (unsigned i = 0; i < s->n; i++) {
			worker *w = &s->w[i];
			while (w->conns) {
				spop_conn_abort(w->conns->pc, SPOP_ST_NORMAL, "agent shutting down");
				conn_close(w->conns);
			}
			/* Completions that arrived after the loop ended: release them (their connections are closed). */
			spoa_request *r = w->q_head;
			while (r) {
				spoa_request *next = r->next;
				spop_conn_complete(r->conn, r);
				r = next;
			}
			if (w->loop)
				ev_loop_destroy(w->loop);
			pthread_mutex_destroy(&w->qlock);
		}
		free(s->w);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->unix_path[0])
		unlink(s->unix_path);
	free(s);
}

void spoa_server_stats(const spoa_server *s, spoa_stats *out)
{
	spoa_stats st;
	memset(&st, 0, sizeof(st));
	for (unsigned i = 0; i < s->n; i++) {
		const worker *w = &s->w[i];
		st.conns_accepted += __atomic_load_n(&w->accepted, __ATOMIC_RELAXED);
		st.conns_rejected += __atomic_load_n(&w->rejected, __ATOMIC_RELAXED);
		st.frames_in += __atomic_load_n(&w->ctr.frames_in, __ATOMIC_RELAXED);
		st.frames_out += __atomic_load_n(&w->ctr.frames_out, __ATOMIC_RELAXED);
		st.bytes_out += __atomic_load_n(&w->ctr.bytes_out, __ATOMIC_RELAXED);
		st.notify += __atomic_load_n(&w->ctr.notify, __ATOMIC_RELAXED);
		st.healthchecks += __atomic_load_n(&w->ctr.healthchecks, __ATOMIC_RELAXED);
		st.protocol_errors += __atomic_load_n(&w->ctr.protocol_errors, __ATOMIC_RELAXED);
	}
	st.conns_open = __atomic_load_n(&s->nconns, __ATOMIC_RELAXED);
	*out = st;
}

int spoa_server_port(const spoa_server *s)
{
	return s->port;
}
