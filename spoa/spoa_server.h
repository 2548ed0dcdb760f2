/*
 * spoa_server.h — the libev server behind spoa.h: listener, worker threads (one event loop each), socket I/O
 * for spop_conn, deferred completions across threads, graceful stop.
 *
 * Ownership: the server owns the listening socket, every accepted socket, every spop_conn and the workers; a
 * deferred spoa_request belongs to the application between SPOA_DEFERRED and spoa_request_complete(), then to
 * the server again. The public functions are declared in spoa.h; this header only adds the listen-address
 * parser, exposed for tests.
 */
#ifndef SPOA_SERVER_H
#define SPOA_SERVER_H

#include <sys/socket.h>

#include "spoa.h"

/* Parses "host:port", "[v6]:port", ":port" (all addresses) or "unix:/path" into a sockaddr. Returns 0 or
 * SPOP_E_ARG. */
int spoa_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen);

#endif /* SPOA_SERVER_H */
