/* test_httpd.c — the request parser (table, every prefix, guard page) and the endpoint on a real loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"

typedef struct pcase {
	const char *in;
	int rc;            /* > 0: consumed must equal strlen(in) */
	const char *path;  /* expected path when rc > 0 */
} pcase;

static const pcase cases[] = {
	{"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", 1, "/ready"},
	{"GET /metrics HTTP/1.0\r\n\r\n", 1, "/metrics"},
	{"HEAD /healthz?x=1 HTTP/1.1\nHost: a\nUser-Agent: kube-probe/1.29\n\n", 1, "/healthz"},
	{"GET / HTTP/1.1\r\nX-Empty:\r\n\r\n", 1, "/"},
	{"GET /ready HTTP/1.1\r\nA: b\tc\r\n\r\n", 1, "/ready"},
	{"GET /ready HTTP/2.0\r\n\r\n", HTTPD_BAD, NULL},
	{"GET /ready HTTP/1.x\r\n\r\n", HTTPD_BAD, NULL},
	{"GET ready HTTP/1.1\r\n\r\n", HTTPD_BAD, NULL},          /* not origin-form */
	{"GET http://a/ready HTTP/1.1\r\n\r\n", HTTPD_BAD, NULL},
	{"GET  /ready HTTP/1.1\r\n\r\n", HTTPD_BAD, NULL},
	{" GET /ready HTTP/1.1\r\n\r\n", HTTPD_BAD, NULL},
	{"GET /ready HTTP/1.1 \r\n\r\n", HTTPD_BAD, NULL},
	{"GET /ready HTTP/1.1\r\n folded\r\n\r\n", HTTPD_BAD, NULL}, /* obsolete folding */
	{"GET /ready HTTP/1.1\r\nNoColon\r\n\r\n", HTTPD_BAD, NULL},
	{"GET /ready HTTP/1.1\r\nBad Name: x\r\n\r\n", HTTPD_BAD, NULL},
	{"GET /ready HTTP/1.1\r\n: x\r\n\r\n", HTTPD_BAD, NULL},
	{"GET /ready HTTP/1.1\r\nA: b\x01\r\n\r\n", HTTPD_BAD, NULL},
	{"GET /ready HTTP/1.1\rX\r\n\r\n", HTTPD_BAD, NULL},      /* lone CR */
	{"GET /re\x01dy HTTP/1.1\r\n\r\n", HTTPD_BAD, NULL},
	{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", HTTPD_BAD, NULL}, /* TLS ClientHello on the plain port */
	{"GETGETGETGETGETGETGETGETGETGETGETGET /", HTTPD_BAD, NULL}, /* method longer than 32 */
	{"GET /ready HTTP/1.1\r\nHost: x\r\n", HTTPD_PARTIAL, NULL},
	{"GET /ready", HTTPD_PARTIAL, NULL},
	{"", HTTPD_PARTIAL, NULL},
};

/* Places the input at the end of a page followed by an inaccessible page: any over-read faults. */
static uint8_t *guarded(const char *s, size_t len, void **map)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t pages = (len + (size_t)pg - 1) / (size_t)pg + 1;
	uint8_t *m = mmap(NULL, pages * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + (pages - 1) * (size_t)pg, (size_t)pg, PROT_NONE), 0);
	*map = m;
	memcpy(m + (pages - 1) * (size_t)pg - len, s, len);
	return m + (pages - 1) * (size_t)pg - len;
}

static void unguard(void *map, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);

	munmap(map, ((len + (size_t)pg - 1) / (size_t)pg + 1) * (size_t)pg);
}

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);
		void *map;
		const uint8_t *p = guarded(cases[i].in, len, &map);
		httpd_request r;
		int rc = httpd_parse(p, len, &r);

		if (cases[i].rc > 0) {
			if (rc != (int)len)
				fail_msg("case %zu: rc %d want %zu", i, rc, len);
			assert_int_equal(r.path_len, strlen(cases[i].path));
			assert_memory_equal(r.path, cases[i].path, r.path_len);
		} else if (rc != cases[i].rc) {
			fail_msg("case %zu: rc %d want %d", i, rc, cases[i].rc);
		}
		unguard(map, len);
	}
}

static void test_every_prefix_is_partial(void **state)
{
	static const char req[] = "GET /metrics?a=b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n\r\nBODY";
	size_t head = strlen(req) - 4;

	(void)state;
	for (size_t n = 0; n <= strlen(req); n++) {
		void *map;
		const uint8_t *p = guarded(req, n, &map);
		httpd_request r;
		int rc = httpd_parse(p, n, &r);

		if (n < head)
			assert_int_equal(rc, HTTPD_PARTIAL);
		else
			assert_int_equal(rc, (int)head); /* bytes after the head are not consumed */
		unguard(map, n);
	}
}

static void test_too_many_headers(void **state)
{
	char buf[4096];
	size_t o = 0;
	httpd_request r;

	(void)state;
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "GET / HTTP/1.1\r\n");
	for (int i = 0; i <= HTTPD_MAX_HEADERS; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "H%d: v\r\n", i);
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\r\n");
	assert_int_equal(httpd_parse((const uint8_t *)buf, o, &r), HTTPD_BAD);
}

/* ---- the endpoint on a real loop ---------------------------------------------------------------------------- */

static bool ready_v;

static bool t_ready(void *ud, bool verbose, char *why, size_t whylen)
{
	(void)ud;
	if (!ready_v)
		snprintf(why, whylen, "issuer keys not loaded \"x\"");
	else if (verbose)
		snprintf(why, whylen, "every part ready");
	return ready_v;
}

static int t_metrics(void *ud, char **body, size_t *len)
{
	(void)ud;
	*body = strdup("kos_ready 1\n");
	*len = strlen(*body);
	return 0;
}

/* Sends req, runs the loop until the server closes, returns the response. Bounded: 2000 × 5 ms at most. */
static void roundtrip(struct ev_loop *loop, int port, const char *req, size_t reqlen, char *out, size_t outcap)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t got = 0;

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (reqlen > 0)
		assert_int_equal(send(fd, req, reqlen, MSG_NOSIGNAL), (ssize_t)reqlen);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 2000; i++) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t n;

		ev_run(loop, EVRUN_NOWAIT);
		if (poll(&pfd, 1, 5) <= 0)
			continue;
		n = recv(fd, out + got, outcap - 1 - got, 0);
		if (n == 0)
			break;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	close(fd);
}

static void test_server(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	httpd_routes routes = {t_ready, t_metrics, NULL, NULL};
	httpd *h;
	char err[128], out[8192];
	char big[HTTPD_MAX_REQUEST]; /* exactly the buffer: no unread bytes, so no RST races the 431 */
	static const struct {
		const char *req;
		const char *status_line;
		const char *body_has;
	} t[] = {
		{"GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n", "ok"},
		{"GET /ready HTTP/1.1\r\n\r\n", "HTTP/1.1 503 ", "\"missing\":\"issuer keys not loaded \\\"x\\\"\""},
		{"GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n", "kos_ready 1"},
		{"HEAD /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n", NULL},
		{"POST /ready HTTP/1.1\r\n\r\n", "HTTP/1.1 405 ", "method not allowed"},
		{"GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 ", "not found"},
		{"GET /ready/ HTTP/1.1\r\n\r\n", "HTTP/1.1 404 ", NULL},
		{"BREW /pot HTCPCP/1.0\r\n\r\n", "HTTP/1.1 400 ", NULL},
	};

	(void)state;
	assert_non_null(loop);
	assert_int_equal(httpd_start(loop, "127.0.0.1", 0, &routes, &h, err, sizeof(err)), 0);
	assert_true(httpd_port(h) > 0);
	ready_v = false;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		roundtrip(loop, httpd_port(h), t[i].req, strlen(t[i].req), out, sizeof(out));
		if (strncmp(out, t[i].status_line, strlen(t[i].status_line)) != 0)
			fail_msg("case %zu: got \"%.60s\"", i, out);
		if (t[i].body_has != NULL && strstr(out, t[i].body_has) == NULL)
			fail_msg("case %zu: body lacks %s: %s", i, t[i].body_has, out);
		assert_non_null(strstr(out, "Connection: close\r\n"));
	}
	/* HEAD: headers only */
	roundtrip(loop, httpd_port(h), "HEAD /healthz HTTP/1.1\r\n\r\n", 26, out, sizeof(out));
	assert_non_null(strstr(out, "Content-Length: 3\r\n"));
	assert_true(strlen(out) >= 4 && strcmp(out + strlen(out) - 4, "\r\n\r\n") == 0);
	/* readiness is not latched either way */
	ready_v = true;
	roundtrip(loop, httpd_port(h), "GET /ready HTTP/1.1\r\n\r\n", 23, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	assert_null(strstr(out, "every part ready"));
	/* ?verbose (alone, with a value, after another parameter) asks the route for every part; a parameter that
	 * only starts with the word does not */
	static const char *const verbose_reqs[] = {"GET /ready?verbose HTTP/1.1\r\n\r\n",
						   "GET /ready?verbose=1 HTTP/1.1\r\n\r\n",
						   "GET /ready?x=1&verbose HTTP/1.1\r\n\r\n"};
	for (size_t i = 0; i < 3; i++) {
		roundtrip(loop, httpd_port(h), verbose_reqs[i], strlen(verbose_reqs[i]), out, sizeof(out));
		assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
		assert_non_null(strstr(out, "\"detail\":\"every part ready\""));
	}
	roundtrip(loop, httpd_port(h), "GET /ready?verbosity HTTP/1.1\r\n\r\n", 33, out, sizeof(out));
	assert_null(strstr(out, "every part ready"));
	ready_v = false;
	roundtrip(loop, httpd_port(h), "GET /ready HTTP/1.1\r\n\r\n", 23, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 503"));
	/* a head that never ends within the buffer: 431 */
	memcpy(big, "GET /ready HTTP/1.1\r\nX: ", 24);
	memset(big + 24, 'a', sizeof(big) - 24);
	roundtrip(loop, httpd_port(h), big, sizeof(big), out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 431"));
	httpd_stop(h);
	ev_loop_destroy(loop);
}

static int connect_from(const char *src, int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, src, &sa.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	sa.sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr), 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void spin(struct ev_loop *loop)
{
	for (int i = 0; i < 20; i++)
		ev_run(loop, EVRUN_NOWAIT);
}

/* issue 14 finding 5: kubelet connects from the node's address, then a flood of new idle connections from
 * another address (a pod) arrives before its request. The flood may only evict its own connections: the probe
 * still gets its answer. Before, the 33rd newer connection closed it. */
static void test_flood_keeps_probe(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	httpd_routes routes = {t_ready, t_metrics, NULL, NULL};
	httpd *h;
	char err[128], out[4096];
	int probe, flood[100], port;
	size_t got = 0;

	(void)state;
	assert_int_equal(httpd_start(loop, "127.0.0.1", 0, &routes, &h, err, sizeof(err)), 0);
	port = httpd_port(h);
	probe = connect_from("127.0.0.1", port);
	spin(loop);
	for (int i = 0; i < 100; i++) {
		flood[i] = connect_from("127.0.0.2", port);
		spin(loop);
	}
	/* the flood's oldest connections were the ones closed */
	{
		struct pollfd pfd = {flood[0], POLLIN, 0};
		char b;

		assert_int_equal(poll(&pfd, 1, 1000), 1);
		assert_true(recv(flood[0], &b, 1, MSG_DONTWAIT) <= 0);
	}
	assert_int_equal(send(probe, "GET /healthz HTTP/1.1\r\n\r\n", 25, MSG_NOSIGNAL), 25);
	fcntl(probe, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 400; i++) {
		struct pollfd pfd = {probe, POLLIN, 0};
		ssize_t n;

		ev_run(loop, EVRUN_NOWAIT);
		if (poll(&pfd, 1, 5) <= 0)
			continue;
		n = recv(probe, out + got, sizeof(out) - 1 - got, 0);
		if (n <= 0 && !(n < 0 && errno == EAGAIN))
			break;
		if (n > 0)
			got += (size_t)n;
	}
	out[got] = '\0';
	if (strncmp(out, "HTTP/1.1 200 OK\r\n", 17) != 0)
		fail_msg("the probe got \"%.40s\" (%zu bytes) after a flood from another address", out, got);
	close(probe);
	for (int i = 0; i < 100; i++)
		close(flood[i]);
	httpd_stop(h);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_every_prefix_is_partial),
		cmocka_unit_test(test_too_many_headers),
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_flood_keeps_probe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
