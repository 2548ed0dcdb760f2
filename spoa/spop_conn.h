/*
 * spop_conn.h — one SPOP connection's state machine over byte buffers (AWAIT_HELLO -> RUNNING -> CLOSING).
 * No sockets, no threads: the owner copies received bytes in, calls spop_conn_process(), and writes out what
 * spop_conn_output() shows. The server (spoa_server.c) and the connection fuzzer drive it the same way.
 *
 * Ownership: a spop_conn owns its input buffer, output buffer and the spoa_request objects of its NOTIFYs.
 * Buffers are sized from the negotiated frame size with a hard cap (nothing is sized from an unchecked peer
 * length: before the HELLO the input buffer is 1 KiB and a first frame must be a HAPROXY-HELLO no bigger than
 * our cap). The owner calls spop_conn_close() once; the struct itself lives on until every deferred request
 * has been passed to spop_conn_complete(), which frees it (and the connection if it was the last reference).
 *
 * Threads: everything here runs on the connection's own thread. Crossing threads (spoa_request_complete)
 * is the server's business.
 */
#ifndef SPOP_CONN_H
#define SPOP_CONN_H

#include "spop_codec.h"

enum spop_conn_state {
	SPOP_CS_AWAIT_HELLO = 0,
	SPOP_CS_RUNNING = 1,
	SPOP_CS_CLOSING = 2, /* AGENT-DISCONNECT or health-check AGENT-HELLO queued; close once output is out */
};

/* Per-worker counters, written by one thread only; readers use relaxed atomic loads. */
typedef struct spop_counters {
	uint64_t frames_in;
	uint64_t frames_out;
	uint64_t bytes_out;          /* of the frames sent, length prefixes included */
	uint64_t notify;
	uint64_t healthchecks;
	uint64_t protocol_errors;
} spop_counters;

typedef struct spop_conn_config {
	uint32_t max_frame_size;     /* our cap; 0 = 65536; at least SPOP_MIN_FRAME_SIZE */
	unsigned max_inflight;       /* deferred NOTIFYs not yet ACKed; 0 = 256 */
	spoa_handler_fn handler;     /* NULL: every NOTIFY gets the default one-action ACK */
	void *handler_userdata;
	unsigned worker;             /* reported by spoa_request_worker() */
	void *route;                 /* owner's context, returned by spop_conn_route() (the worker) */
	spop_counters *counters;     /* may be NULL */
} spop_conn_config;

typedef struct spop_conn spop_conn;

/* The request object behind the opaque spoa_request of spoa.h (internal: the server queues them). */
struct spoa_request {
	spop_conn *conn;
	spop_wbuf w;            /* the ACK frame being built: length prefix, header, actions */
	size_t actions_off;     /* w.len right after the header: no action added while w.len == actions_off */
	spop_slice payload;     /* NOTIFY payload; valid only during the handler call */
	size_t msg_off;
	bool in_handler;        /* messages readable: from handler entry until a sync return or the completion */
	uint8_t *own;           /* where the ACK is built (frame size + 4 bytes), reused while requests stay sync */
	struct spoa_request *next;
};

/* Creates a connection in AWAIT_HELLO. Returns 0 or SPOP_E_SYS (allocation). */
int spop_conn_create(const spop_conn_config *cfg, spop_conn **out);
/* The owner is done with c (socket closed): frees the buffers now and the struct once no deferred request
 * refers to it. c must not be used by the owner afterwards. */
void spop_conn_close(spop_conn *c);

/* Where to put received bytes: *len == 0 means "stop reading" (the buffer is full until processing resumes,
 * or the connection is closing). */
void spop_conn_input(spop_conn *c, uint8_t **p, size_t *len);
/* n bytes were written at the place spop_conn_input() gave. */
void spop_conn_commit(spop_conn *c, size_t n);
/* Parses every complete frame it can, runs the handler for NOTIFYs and queues the replies. Stops early under
 * backpressure (output nearly full or too many deferred NOTIFYs). Returns the state afterwards. */
enum spop_conn_state spop_conn_process(spop_conn *c);

/* Bytes waiting to be sent (one contiguous run: one write per batch). */
void spop_conn_output(spop_conn *c, const uint8_t **p, size_t *len);
/* n bytes of the output were sent. */
void spop_conn_consume(spop_conn *c, size_t n);

/* True while the connection waits for the rest of a frame the peer has started: before a complete HELLO
 * (from the first moment: HAProxy sends its HELLO as soon as it connects), or with unprocessed input that does
 * not yet hold a whole frame. False when the input is empty or starts with a complete frame that waits for
 * output room (our backpressure is not the peer's fault). The server times this state out; idleness between
 * complete frames is never limited. */
bool spop_conn_partial(const spop_conn *c);
/* Frames taken from the input so far: with spop_conn_partial(), tells "still the same incomplete frame" from
 * "progress was made and a new frame is incomplete" (a steady stream is partial at most read boundaries). */
uint64_t spop_conn_frames_in(const spop_conn *c);
/* True once the connection should be closed: CLOSING and nothing left to send. */
bool spop_conn_done(const spop_conn *c);
enum spop_conn_state spop_conn_state(const spop_conn *c);
/* Why the connection is closing, for one log line ("" while it is not). */
const char *spop_conn_reason(const spop_conn *c);
/* True if the last CLOSING transition came from a peer protocol error. */
bool spop_conn_protocol_error(const spop_conn *c);
/* Negotiated frame size (0 before the HELLO). */
uint32_t spop_conn_frame_size(const spop_conn *c);
/* Deferred NOTIFYs not yet completed. */
unsigned spop_conn_inflight(const spop_conn *c);
void *spop_conn_route(const spop_conn *c);
/* An owner pointer for the server's per-socket state; spop_conn_close() resets it to NULL. */
void spop_conn_set_owner(spop_conn *c, void *owner);
void *spop_conn_owner(const spop_conn *c);

/* The peer closed its side: nothing more will arrive. */
void spop_conn_eof(spop_conn *c);
/* Graceful stop: process what is buffered, wait for deferred NOTIFYs, then AGENT-DISCONNECT(0) and CLOSING.
 * The owner should stop reading. Call spop_conn_process() afterwards. */
void spop_conn_drain(spop_conn *c);
/* Ends the connection now with AGENT-DISCONNECT(status) (drain timeout, shutdown). */
void spop_conn_abort(spop_conn *c, unsigned status, const char *msg);

/* Finishes a deferred request on c's thread: its ACK is queued (or dropped if the connection is gone) and
 * req is freed. Returns true if this freed a closed connection (c must not be touched again). */
bool spop_conn_complete(spop_conn *c, spoa_request *req);

#endif /* SPOP_CONN_H */
