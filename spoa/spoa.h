/*
 * spoa.h — the one public header of libspoa, an HAProxy SPOP 2.0 agent library on libev.
 *
 * The library owns: sockets, per-connection buffers, the HELLO/NOTIFY/ACK/DISCONNECT state machine, worker
 * threads and their event loops. The application owns: its handler and whatever the handler's userdata points
 * to. Nothing here knows what the messages mean.
 *
 * Layers (each usable alone; see the module headers for the details):
 *   spop_codec.h  pure codec: varint, typed data, KV lists, messages, actions, frames. No I/O, no allocation.
 *   spop_conn.h   one connection's state machine over byte buffers. No sockets.
 *   spoa_server   libev server: listeners, worker threads, I/O, the handler API below.
 *
 * Memory: slices handed to a handler borrow the connection's input buffer and are valid only until the handler
 * returns. A deferred request (SPOA_DEFERRED) stays valid until spoa_request_complete() is called on it, even if
 * its connection has gone away meanwhile (its ACK is then dropped).
 *
 * Errors: 0 is success, negative values are enum spop_err codes; spop_strerror() names them.
 *
 * HAProxy 3.1+ (mux-spop) never reads a SPOP connection again once one read fills its demux buffer (tune.bufsize)
 * exactly, which 20 pipelined ACKs of ~820+ bytes can do under load. An application whose ACKs are that big
 * should have HAProxy 3.1+ run without pipelining (`no option pipelining` in the spoe-agent) or with buffers
 * larger than 20 ACKs (bench/big-ack-stall.md).
 */
#ifndef SPOA_H
#define SPOA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- borrowed bytes ------------------------------------------------------------------------------------ */

typedef struct spop_slice {
	const uint8_t *ptr;
	size_t len;
} spop_slice;

/* ---- typed data (SPOP 2.0 §3.1: type in the low nibble, flags in the high nibble) --------------------- */

enum spop_type {
	SPOP_T_NULL = 0,
	SPOP_T_BOOL = 1,
	SPOP_T_INT32 = 2,
	SPOP_T_UINT32 = 3,
	SPOP_T_INT64 = 4,
	SPOP_T_UINT64 = 5,
	SPOP_T_IPV4 = 6,
	SPOP_T_IPV6 = 7,
	SPOP_T_STR = 8,
	SPOP_T_BIN = 9,
};

typedef struct spop_value {
	enum spop_type type;
	union {
		bool b;
		int64_t i;   /* INT32, INT64 (sign-extended two's complement as HAProxy sends it) */
		uint64_t u;  /* UINT32, UINT64 */
		uint8_t ip4[4];
		uint8_t ip6[16];
		spop_slice s; /* STR, BIN: borrowed */
	} u;
} spop_value;

enum spop_scope {
	SPOP_SCOPE_PROC = 0,
	SPOP_SCOPE_SESS = 1,
	SPOP_SCOPE_TXN = 2,
	SPOP_SCOPE_REQ = 3,
	SPOP_SCOPE_RES = 4,
};

/* ---- errors (also the source of AGENT-DISCONNECT status codes where one applies) ------------------------ */

enum spop_err {
	SPOP_OK = 0,
	SPOP_E_TRUNCATED = -1,  /* input ends inside an item */
	SPOP_E_INVALID = -2,    /* malformed item */
	SPOP_E_TOO_BIG = -3,    /* a length beyond the negotiated or advertised maximum */
	SPOP_E_NOSPACE = -4,    /* output buffer full */
	SPOP_E_VERSION = -5,    /* no supported version offered */
	SPOP_E_FRAMESIZE = -6,  /* max-frame-size missing or unusable */
	SPOP_E_STATE = -7,      /* frame not allowed in this connection state */
	SPOP_E_SYS = -8,        /* system call failed; errno kept by the caller */
	SPOP_E_ARG = -9,        /* bad argument from the application */
};
const char *spop_strerror(int err);

/* ---- messages of a NOTIFY, read with iterators (no allocation, no copy) -------------------------------- */

typedef struct spop_arg {
	spop_slice name;
	spop_value value;
} spop_arg;

typedef struct spop_msg {
	spop_slice name;
	unsigned nargs;
	spop_slice args; /* raw encoded arguments, walked by spop_msg_next_arg() */
	size_t off;      /* iterator state */
	unsigned seen;
} spop_msg;

/* Next argument of m; 1 = *out filled, 0 = no more, <0 = malformed. */
int spop_msg_next_arg(spop_msg *m, spop_arg *out);
/* First argument whose name equals name (exact length match); 1 found, 0 absent, <0 malformed. */
int spop_msg_find_arg(const spop_msg *m, const char *name, spop_arg *out);

/* ---- handler API ----------------------------------------------------------------------------------------- */

typedef struct spoa_request spoa_request;

enum spoa_verdict {
	SPOA_DONE = 0,     /* ACK is sent now with the actions the handler added */
	SPOA_DEFERRED = 1, /* the handler will call spoa_request_complete() later, from any thread */
};

/*
 * Called on a worker thread once per NOTIFY. Must not block. Reads messages with spoa_request_next_msg(), adds
 * actions with spoa_ack_*(), returns a spoa_verdict. If it adds no action, the library adds none either and
 * HAProxy gets an ACK with a NOOP-safe unset of "_" — an empty ACK stalls HAProxy 3.1.x.
 */
typedef int (*spoa_handler_fn)(spoa_request *req, void *userdata);

/* Next message of the NOTIFY; 1 = *out filled, 0 = no more, <0 = malformed. Only valid inside the handler. */
int spoa_request_next_msg(spoa_request *req, spop_msg *out);
/* Index of the worker thread serving the request, 0 … nthreads-1 (for per-thread state in the application). */
unsigned spoa_request_worker(const spoa_request *req);

/* Actions. Names are raw bytes without the scope/prefix (HAProxy adds "<scope>.<var-prefix>."). Values are
 * copied into the ACK buffer, so they may point anywhere. Return 0 or SPOP_E_NOSPACE (the ACK would reach the
 * negotiated frame size: an ACK stays at least one byte under it, which HAProxy 3.1+ needs; already-added
 * actions stay). Callable inside the handler, or between SPOA_DEFERRED and
 * spoa_request_complete() by the one thread that completes it. */
int spoa_ack_set(spoa_request *req, enum spop_scope scope, const char *name, size_t name_len,
		 const spop_value *v);
int spoa_ack_set_str(spoa_request *req, enum spop_scope scope, const char *name, const char *s, size_t len);
int spoa_ack_set_int(spoa_request *req, enum spop_scope scope, const char *name, int64_t v);
int spoa_ack_set_bool(spoa_request *req, enum spop_scope scope, const char *name, bool v);
int spoa_ack_unset(spoa_request *req, enum spop_scope scope, const char *name);

/* Finishes a deferred request: queues its ACK on its connection's loop (thread-safe; wakes the loop with
 * ev_async). After this call req is gone. A deferred handler must copy whatever it needs from the messages
 * before returning SPOA_DEFERRED: the slices die with the handler call. */
void spoa_request_complete(spoa_request *req);

/* ---- server ---------------------------------------------------------------------------------------------- */

enum spoa_log_level { SPOA_LOG_ERROR = 0, SPOA_LOG_WARN = 1, SPOA_LOG_INFO = 2, SPOA_LOG_DEBUG = 3 };
typedef void (*spoa_log_fn)(void *userdata, enum spoa_log_level level, const char *msg);

typedef struct spoa_server_config {
	const char *listen;              /* "127.0.0.1:12345", "[::1]:12345", ":12345" (all), "unix:/path" (made
	                                  * 0660: its owner and group may connect; a stale socket there is replaced) */
	unsigned nthreads;               /* 0 = number of CPUs */
	uint32_t max_frame_size;         /* our cap; 0 = default 65536; we announce min(HAProxy's, ours) */
	unsigned max_inflight_per_conn;  /* 0 = default 256 NOTIFYs parsed but not yet ACKed */
	unsigned max_conns;              /* 0 = default 65536 across all workers */
	spoa_handler_fn handler;
	void *handler_userdata;
	spoa_log_fn log;                 /* may be NULL; called from any thread, one line per call, no newline */
	void *log_userdata;
	enum spoa_log_level log_level;
	/* How long a peer may leave a frame incomplete (counted from the moment its first bytes are seen, not
	 * reset by more bytes) or take to send its HELLO after connecting, before AGENT-DISCONNECT(2 "a timeout
	 * occurred") and a close; 0 = default 30000. A slow-loris peer cannot hold a frame-sized buffer for
	 * ever. Idleness between complete frames is never limited: HAProxy 3.x keeps idle connections for hours. */
	unsigned frame_timeout_ms;
} spoa_server_config;

typedef struct spoa_stats {
	uint64_t conns_accepted;
	uint64_t conns_open;
	uint64_t conns_rejected;    /* accept failures, over max_conns */
	uint64_t frames_in;
	uint64_t frames_out;
	uint64_t bytes_out;         /* of the frames sent, length prefixes included (ACK sizes: bytes_out / notify) */
	uint64_t notify;
	uint64_t healthchecks;
	uint64_t protocol_errors;   /* connections closed for a peer's protocol error */
} spoa_stats;

typedef struct spoa_server spoa_server;

/* Binds the listener and prepares the workers; nothing runs yet. On error writes a message to err. */
int spoa_server_create(const spoa_server_config *cfg, spoa_server **out, char *err, size_t errlen);
/* Starts the worker threads; returns at once. */
int spoa_server_start(spoa_server *s);
/* Thread- and async-signal-safe. Stops accepting, lets in-flight NOTIFYs get their ACK (for up to
 * drain_ms), sends AGENT-DISCONNECT(0) to every connection, and lets the workers exit. */
void spoa_server_stop(spoa_server *s, unsigned drain_ms);
/* Waits for the workers after spoa_server_stop(), then frees everything. */
void spoa_server_destroy(spoa_server *s);
/* Counters, summed over workers (relaxed atomics: a consistent-enough view for metrics). */
void spoa_server_stats(const spoa_server *s, spoa_stats *out);
/* The bound port of a TCP listener (useful with port 0 in tests), 0 for a unix socket. */
int spoa_server_port(const spoa_server *s);

#endif /* SPOA_H */
