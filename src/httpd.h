/*
 * httpd.h — the small HTTP/1.x endpoint on --readiness-probe-port: /ready, /healthz, /metrics.
 *
 * Owns: its listening socket and connections, all on the caller's libev loop (the main thread). One request
 * per connection (the response says Connection: close); GET and HEAD only; a request head larger than
 * HTTPD_MAX_REQUEST is answered 431, a slow one is dropped after HTTPD_TIMEOUT_S. At most HTTPD_MAX_CONNS
 * connections; a new one past that closes the oldest connection of the source address that holds the most
 * (counting the newcomer), so neither slow clients nor a flood of new connections from one address can evict
 * kubelet's probe, which comes from the node's own address. Request bytes are parsed by httpd_parse(), which
 * is pure and fuzzed.
 * The routes' callbacks run on the loop thread and must not block.
 */
#ifndef KOS_HTTPD_H
#define KOS_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTPD_MAX_REQUEST 4096
#define HTTPD_MAX_HEADERS 64
#define HTTPD_MAX_CONNS 32
#define HTTPD_TIMEOUT_S 10

/* ---- parser (no allocation; slices point into the caller's buffer) ------------------------------------- */

enum httpd_parse_result {
	HTTPD_BAD = -1,      /* not an HTTP/1.x request head we accept: answer 400 */
	HTTPD_PARTIAL = -2,  /* valid so far, needs more bytes */
};

typedef struct httpd_request {
	const uint8_t *method;
	size_t method_len;
	const uint8_t *path;   /* origin-form target up to '?' */
	size_t path_len;
	const uint8_t *query;  /* after '?', may be empty */
	size_t query_len;
	int minor_version;     /* HTTP/1.<minor> */
	unsigned nheaders;
} httpd_request;

/* Parses the request head in p[0..len). Returns the number of bytes up to and including the blank line that
 * ends the head (*out filled), HTTPD_PARTIAL, or HTTPD_BAD. Accepts CRLF or bare LF line ends; refuses
 * obsolete line folding, control bytes, targets that are not origin-form, and more than HTTPD_MAX_HEADERS. */
int httpd_parse(const uint8_t *p, size_t len, httpd_request *out);

/* ---- server ------------------------------------------------------------------------------------------------ */

typedef struct httpd_routes {
	/* true when ready; otherwise writes a short human reason (what is missing) into why. When ready it may
	 * still write a description (e.g. a degraded part): it is served as "detail". verbose is true for
	 * /ready?verbose (a "verbose" query parameter, any value): the route then describes every part (each issuer
	 * of --authentication-config), ready or not */
	bool (*ready)(void *ud, bool verbose, char *why, size_t whylen);
	/* the /metrics body, malloc'd (httpd frees it); 0 or -1. Called with metrics_ud (main.c: the metrics
	 * registry, metrics_scrape) */
	int (*metrics)(void *ud, char **body, size_t *len);
	void *ud;         /* for ready */
	void *metrics_ud; /* for metrics */
} httpd_routes;

typedef struct httpd httpd;
struct ev_loop;

/* Binds address (an IP literal; NULL = all addresses, IPv6 and IPv4) and port (0 = any, see httpd_port()),
 * and starts serving on loop. routes is copied. */
int httpd_start(struct ev_loop *loop, const char *address, unsigned port, const httpd_routes *routes,
		httpd **out, char *err, size_t errlen);
int httpd_port(const httpd *h);
/* Closes the listener and every connection. NULL is fine. */
void httpd_stop(httpd *h);

#endif
