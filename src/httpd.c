/* httpd.c — bounded HTTP/1.x request parser and the probe/metrics endpoint; see httpd.h. */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kx.h"
#include "log.h"

/* ---- parser ------------------------------------------------------------------------------------------------ */

static bool is_tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Finds the end of the line starting at off: sets *eol to the index of '\r' or '\n' and *next past the line
 * end. 0 found, HTTPD_PARTIAL, or HTTPD_BAD for a lone CR. */
static int line_end(const uint8_t *p, size_t len, size_t off, size_t *eol, size_t *next)
{
	for (size_t i = off; i < len; i++) {
		if (p[i] == '\n') {
			*eol = i;
			*next = i + 1;
			return 0;
		}
		if (p[i] == '\r') {
			if (len - i < 2)
				return HTTPD_PARTIAL;
			if (p[i + 1] != '\n')
				return HTTPD_BAD;
			*eol = i;
			*next = i + 2;
			return 0;
		}
	}
	return HTTPD_PARTIAL;
}

int httpd_parse(const uint8_t *p, size_t len, httpd_request *out)
{
	httpd_request r;
	size_t off = 0, eol, next, i;
	int rc;

	memset(&r, 0, sizeof(r));
	/* request line: METHOD SP TARGET SP HTTP/1.d */
	for (i = 0; i < len && is_tchar(p[i]); i++)
		;
	if (i == len)
		return len > 32 ? HTTPD_BAD : HTTPD_PARTIAL;
	if (i == 0 || i > 32 || p[i] != ' ')
		return HTTPD_BAD;
	r.method = p;
	r.method_len = i;
	off = i + 1;
	if (off == len)
		return HTTPD_PARTIAL;
	if (p[off] != '/')
		return HTTPD_BAD;
	r.path = p + off;
	for (i = off; i < len && p[i] > 0x20 && p[i] < 0x7f; i++) {
		if (p[i] == '?' && r.query == NULL) {
			r.path_len = i - off;
			r.query = p + i + 1;
		}
	}
	if (i == len)
		return HTTPD_PARTIAL;
	if (p[i] != ' ')
		return HTTPD_BAD;
	if (r.query != NULL)
		r.query_len = (size_t)(p + i - r.query);
	else
		r.path_len = i - off;
	off = i + 1;
	if (len - off < 8) {
		if (memcmp(p + off, "HTTP/1.", len - off < 7 ? len - off : 7) != 0)
			return HTTPD_BAD;
		return HTTPD_PARTIAL;
	}
	if (memcmp(p + off, "HTTP/1.", 7) != 0 || p[off + 7] < '0' || p[off + 7] > '9')
		return HTTPD_BAD;
	r.minor_version = p[off + 7] - '0';
	off += 8;
	rc = line_end(p, len, off, &eol, &next);
	if (rc != 0)
		return rc;
	if (eol != off)
		return HTTPD_BAD;
	off = next;
	/* header fields until the empty line */
	for (;;) {
		size_t colon;

		rc = line_end(p, len, off, &eol, &next);
		if (rc != 0)
			return rc;
		if (eol == off)
			break;
		if (r.nheaders == HTTPD_MAX_HEADERS)
			return HTTPD_BAD;
		/* a line starting with SP/HT is obsolete folding; refusing it avoids request smuggling doubts */
		for (colon = off; colon < eol && is_tchar(p[colon]); colon++)
			;
		if (colon == off || colon == eol || p[colon] != ':')
			return HTTPD_BAD;
		for (i = colon + 1; i < eol; i++)
			if (kx_is_ctl(p[i]) && p[i] != '\t') /* a field value may hold HT (RFC 9110 §5.5) */
				return HTTPD_BAD;
		r.nheaders++;
		off = next;
	}
	*out = r;
	return (int)next;
}

/* ---- server ------------------------------------------------------------------------------------------------ */

typedef struct hconn hconn;

struct httpd {
	struct ev_loop *loop;
	ev_io lio;
	int lfd;
	int port;
	httpd_routes routes;
	hconn *conns;
	unsigned nconns;
};

struct hconn {
	ev_io io;
	ev_timer tmo;
	httpd *h;
	hconn *prev, *next;
	int fd;
	uint8_t src[16];        /* peer address, IPv4 as v4-mapped IPv6 (see source_of) */
	size_t inlen;
	char *out;
	size_t outlen, outoff;
	uint8_t in[HTTPD_MAX_REQUEST];
};

static void conn_close(hconn *c)
{
	httpd *h = c->h;

	ev_io_stop(h->loop, &c->io);
	ev_timer_stop(h->loop, &c->tmo);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->nconns--;
	free(c->out);
	free(c);
}

static void conn_flush(hconn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_stop(c->h->loop, &c->io);
			ev_io_set(&c->io, c->fd, EV_WRITE);
			ev_io_start(c->h->loop, &c->io);
			return;
		}
		if (n <= 0)
			break;
		c->outoff += (size_t)n;
	}
	conn_close(c);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

/* Takes ownership of body (malloc'd or NULL). */
static void respond(hconn *c, int status, const char *ctype, char *body, size_t blen, bool head)
{
	char hdr[320];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
			 "Connection: close\r\n%s\r\n",
			 status, status_text(status), ctype, blen, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	size_t total = (size_t)n + (head ? 0 : blen);

	if (body == NULL && blen > 0) {
		conn_close(c);
		return;
	}
	c->out = malloc(total);
	if (c->out == NULL) {
		free(body);
		conn_close(c);
		return;
	}
	memcpy(c->out, hdr, (size_t)n);
	if (!head && blen > 0)
		memcpy(c->out + n, body, blen);
	free(body);
	c->outlen = total;
	c->outoff = 0;
	conn_flush(c);
}

static void respond_text(hconn *c, int status, const char *text, bool head)
{
	char *b = strdup(text);

	respond(c, status, "text/plain; charset=utf-8", b, b ? strlen(b) : 0, head);
}

static bool path_is(const httpd_request *r, const char *s)
{
	return r->path_len == strlen(s) && memcmp(r->path, s, r->path_len) == 0;
}

/* True when the query has a parameter named name (with or without a value): "verbose", "a=1&verbose=1". */
static bool query_has(const httpd_request *r, const char *name)
{
	size_t n = strlen(name), i = 0;

	while (i < r->query_len) {
		size_t j = i;

		while (j < r->query_len && r->query[j] != '&')
			j++;
		if (j - i >= n && memcmp(r->query + i, name, n) == 0 && (j - i == n || r->query[i + n] == '='))
			return true;
		i = j + 1;
	}
	return false;
}

static void route(hconn *c, const httpd_request *r)
{
	httpd *h = c->h;
	bool head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
	bool get = r->method_len == 3 && memcmp(r->method, "GET", 3) == 0;

	if (!path_is(r, "/ready") && !path_is(r, "/healthz") && !path_is(r, "/metrics")) {
		respond_text(c, 404, "not found\n", head);
		return;
	}
	if (!get && !head) {
		respond_text(c, 405, "method not allowed\n", false);
		return;
	}
	if (path_is(r, "/healthz")) {
		/* liveness: the main loop answered, which is what a hung agent would fail to do */
		respond_text(c, 200, "ok\n", head);
	} else if (path_is(r, "/ready")) {
		char why[1024] = "";
		char esc[2400];
		char body[2500];
		size_t elen;

		if (h->routes.ready != NULL && h->routes.ready(h->routes.ud, query_has(r, "verbose"), why, sizeof(why))) {
			if (why[0] == '\0') {
				respond(c, 200, "application/json", strdup("{\"ready\":true}\n"), 15, head);
				return;
			}
			/* a ready route may still describe its parts (a degraded issuer, or every one when verbose) */
			elen = log_json_escape(esc, sizeof(esc), (const uint8_t *)why, strnlen(why, sizeof(why)), NULL);
			snprintf(body, sizeof(body), "{\"ready\":true,\"detail\":\"%.*s\"}\n", (int)elen, esc);
			respond(c, 200, "application/json", strdup(body), strlen(body), head);
			return;
		}
		elen = log_json_escape(esc, sizeof(esc), (const uint8_t *)why, strnlen(why, sizeof(why)), NULL);
		snprintf(body, sizeof(body), "{\"ready\":false,\"missing\":\"%.*s\"}\n", (int)elen, esc);
		respond(c, 503, "application/json", strdup(body), strlen(body), head);
	} else {
		char *body = NULL;
		size_t blen = 0;

		if (h->routes.metrics == NULL || h->routes.metrics(h->routes.metrics_ud, &body, &blen) != 0) {
			respond_text(c, 500, "metrics unavailable\n", head);
			return;
		}
		respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, blen, head);
	}
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	hconn *c = w->data;
	httpd_request r;
	ssize_t n;
	int rc;

	(void)loop;
	if (revents & EV_WRITE) {
		conn_flush(c);
		return;
	}
	n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->inlen += (size_t)n;
	rc = httpd_parse(c->in, c->inlen, &r);
	if (rc == HTTPD_PARTIAL) {
		if (c->inlen == sizeof(c->in))
			respond_text(c, 431, "request too large\n", false);
		return;
	}
	ev_io_stop(c->h->loop, &c->io);
	if (rc == HTTPD_BAD) {
		respond_text(c, 400, "bad request\n", false);
		return;
	}
	route(c, &r);
}

static void conn_tmo_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	conn_close(w->data);
}

/* The peer's address as 16 bytes, an IPv4 peer as its v4-mapped IPv6 form, so the dual-stack listener and an
 * IPv4 one give the same key for the same client. Whole addresses, not prefixes: in a cluster kubelet probes
 * from the node's address and every pod has its own, and grouping an IPv6 /64 could put kubelet in a pod's
 * group. Unknown families (none expected on a TCP listener) share the all-zero key. */
static void source_of(const struct sockaddr_storage *ss, uint8_t out[16])
{
	memset(out, 0, 16);
	if (ss->ss_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	} else if (ss->ss_family == AF_INET) {
		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
}

/*
 * Which connection to close for a newcomer from src when HTTPD_MAX_CONNS are open: the oldest connection of the
 * source that would hold the most connections, counting the newcomer (ties: the oldest such connection).
 *
 * Why (issue 14, finding 5): closing the oldest connection overall let a flood of new connections evict a
 * probe between its connect and its request (8 of 10,508 /ready failed). Closing newcomers instead lets a few
 * slow clients starve the probes (the earlier slow-loris finding). Counting per source keeps both away from
 * kubelet, which probes from the node's own address with one connection at a time: a flooding or slow client
 * only ever evicts its own connections once it holds more than anyone else, and kubelet's never hold more than
 * one or two. A flood from the prober's own address is not told apart (it degrades to oldest-first, the old
 * behaviour); a flood spread over more addresses than HTTPD_MAX_CONNS needs that many addresses. 32 x 32
 * address compares per newcomer when full: nothing next to accept() itself.
 */
static hconn *victim(httpd *h, const uint8_t src[16])
{
	hconn *best = NULL;
	unsigned best_n = 0;

	for (hconn *c = h->conns; c != NULL; c = c->next) {
		unsigned n = memcmp(c->src, src, 16) == 0 ? 1 : 0;

		for (hconn *d = h->conns; d != NULL; d = d->next)
			n += memcmp(c->src, d->src, 16) == 0;
		/* the list runs newest to oldest: >= keeps the oldest of equals */
		if (n >= best_n) {
			best = c;
			best_n = n;
		}
	}
	return best;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	httpd *h = w->data;

	(void)revents;
	/* bounded: never spin here for long on a flood */
	for (int k = 0; k < 16; k++) {
		struct sockaddr_storage ss;
		socklen_t slen = sizeof(ss);
		int fd = accept4(h->lfd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		uint8_t src[16];
		hconn *c;

		if (fd < 0)
			return;
		source_of(&ss, src);
		if (h->nconns >= HTTPD_MAX_CONNS) {
			/* Full: close a connection of the busiest source, never the newcomer (see victim()). */
			conn_close(victim(h, src));
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->h = h;
		memcpy(c->src, src, sizeof(c->src));
		c->next = h->conns;
		if (h->conns)
			h->conns->prev = c;
		h->conns = c;
		h->nconns++;
		ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
		c->io.data = c;
		/* A loop iteration that finds both a request to read and connections to accept serves the request
		 * first, so accepting cannot close a connection whose request has already arrived. */
		ev_set_priority(&c->io, EV_MAXPRI);
		ev_timer_init(&c->tmo, conn_tmo_cb, HTTPD_TIMEOUT_S, 0);
		c->tmo.data = c;
		ev_io_start(loop, &c->io);
		ev_timer_start(loop, &c->tmo);
	}
}

static int bind_listener(const char *address, unsigned port, int *out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	int fd = -1, one = 1, zero = 0, fam;

	memset(&ss, 0, sizeof(ss));
	if (address == NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;
		s6->sin6_port = htons((uint16_t)port);
		slen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, address, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)port);
			slen = sizeof(*s4);
		} else if (inet_pton(AF_INET6, address, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)port);
			slen = sizeof(*s6);
		} else {
			snprintf(err, errlen, "readiness probe address %s is not an IP address", address);
			return -1;
		}
	}
	fam = ss.ss_family;
	fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && address == NULL && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
		/* a host without IPv6: all IPv4 addresses then */
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		memset(&ss, 0, sizeof(ss));
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		s4->sin_port = htons((uint16_t)port);
		slen = sizeof(*s4);
		fam = AF_INET;
		fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fam == AF_INET6 && address == NULL)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, slen) != 0 || listen(fd, 64) != 0)
		goto fail;
	*out = fd;
	return 0;
fail:
	snprintf(err, errlen, "readiness probe %s port %u: %s", address ? address : "(all)", port, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int httpd_start(struct ev_loop *loop, const char *address, unsigned port, const httpd_routes *routes,
		httpd **out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	httpd *h;
	int fd;

	if (port > 65535) {
		snprintf(err, errlen, "readiness probe port %u out of range", port);
		return -1;
	}
	if (bind_listener(address, port, &fd, err, errlen) != 0)
		return -1;
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->loop = loop;
	h->lfd = fd;
	h->routes = *routes;
	if (getsockname(fd, (struct sockaddr *)&ss, &slen) == 0)
		h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	ev_io_init(&h->lio, accept_cb, fd, EV_READ);
	h->lio.data = h;
	ev_io_start(loop, &h->lio);
	*out = h;
	return 0;
}

int httpd_port(const httpd *h)
{
	return h->port;
}

void httpd_stop(httpd *h)
{
	if (h == NULL)
		return;
	while (h->conns)
		conn_close(h->conns);
	ev_io_stop(h->loop, &h->lio);
	close(h->lfd);
	free(h);
}
