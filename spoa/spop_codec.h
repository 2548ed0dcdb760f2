/*
 * spop_codec.h — the pure SPOP 2.0 codec: varints, typed data, raw strings, KV lists, NOTIFY messages, ACK
 * actions, HELLO and DISCONNECT frames. No I/O, no allocation, no global state: every function is reentrant.
 *
 * Ownership: decoders return slices that borrow the caller's input; encoders write into a caller-owned
 * buffer through a spop_wbuf cursor and never grow it. Nothing here frees anything.
 *
 * Decoders take (const uint8_t *p, size_t len), compare remaining lengths (never pointers) and cap varints at
 * 10 bytes. Encoders are sticky: once a spop_wbuf overflowed, further writes are no-ops and wbuf.err stays
 * SPOP_E_NOSPACE, so a sequence of writes needs one check at the end.
 *
 * Wire notes (docs/spop.md §2-3): varints are HAProxy's peers encoding (not LEB128); the typed-data byte has
 * the type in the low nibble and flags in the high nibble; BOOL carries its value in flag 0x10; signed ints are
 * sent as the 64-bit two's complement cast to unsigned.
 */
#ifndef SPOP_CODEC_H
#define SPOP_CODEC_H

#include "spoa.h"

#define SPOP_VARINT_MAX 10
#define SPOP_FRAME_HDR_MIN 7      /* type + flags + two 1-byte ids */
#define SPOP_MIN_FRAME_SIZE 256   /* HAProxy refuses anything smaller */
#define SPOP_FLAG_FIN 0x00000001u
#define SPOP_FLAG_ABORT 0x00000002u

enum spop_frame_type {
	SPOP_FRAME_UNSET = 0,
	SPOP_FRAME_HAPROXY_HELLO = 1,
	SPOP_FRAME_HAPROXY_DISCONNECT = 2,
	SPOP_FRAME_NOTIFY = 3,
	SPOP_FRAME_AGENT_HELLO = 101,
	SPOP_FRAME_AGENT_DISCONNECT = 102,
	SPOP_FRAME_ACK = 103,
};

/* DISCONNECT status codes (SPOP 2.0). */
enum spop_status {
	SPOP_ST_NORMAL = 0,
	SPOP_ST_IO = 1,
	SPOP_ST_TIMEOUT = 2,
	SPOP_ST_TOO_BIG = 3,
	SPOP_ST_INVALID = 4,
	SPOP_ST_NO_VSN = 5,
	SPOP_ST_NO_FRAME_SIZE = 6,
	SPOP_ST_NO_CAP = 7,
	SPOP_ST_BAD_VSN = 8,
	SPOP_ST_BAD_FRAME_SIZE = 9,
	SPOP_ST_FRAG_NOT_SUPPORTED = 10,
	SPOP_ST_INTERLACED = 11,
	SPOP_ST_FRAMEID_NOTFOUND = 12,
	SPOP_ST_RES_ALLOC = 13,
	SPOP_ST_UNKNOWN = 99,
};
/* Human text for a status code ("normal", "frame is too big", …); never NULL. */
const char *spop_status_str(unsigned status);
/* The status code that best describes a codec/state error (SPOP_E_TOO_BIG -> 3, …). */
unsigned spop_status_from_err(int err);

enum spop_action_type { SPOP_ACT_SET_VAR = 1, SPOP_ACT_UNSET_VAR = 2 };

/* ---- varint ---------------------------------------------------------------------------------------------- */

/* Decodes one varint from p[0..len). Returns bytes consumed (1..10), SPOP_E_TRUNCATED if len ends inside it,
 * SPOP_E_INVALID if it runs past 10 bytes or overflows 64 bits. *out written only on success. */
int spop_varint_decode(const uint8_t *p, size_t len, uint64_t *out);
/* Encodes v into out (room for SPOP_VARINT_MAX bytes); returns the byte count. */
size_t spop_varint_encode(uint64_t v, uint8_t *out);
/* Encoded size of v. */
size_t spop_varint_size(uint64_t v);

/* ---- typed data and raw strings -------------------------------------------------------------------------- */

/* Decodes one typed value. Returns bytes consumed or <0. STR/BIN values borrow p. Reserved types 10-15 are
 * SPOP_E_INVALID. */
int spop_value_decode(const uint8_t *p, size_t len, spop_value *out);
/* Decodes a raw string (varint length + bytes, no type byte). Returns bytes consumed or <0. */
int spop_rawstr_decode(const uint8_t *p, size_t len, spop_slice *out);

/* ---- write cursor ---------------------------------------------------------------------------------------- */

typedef struct spop_wbuf {
	uint8_t *p;
	size_t cap;
	size_t len;
	int err; /* 0, or SPOP_E_NOSPACE once a write did not fit (sticky) */
} spop_wbuf;

static inline void spop_wbuf_init(spop_wbuf *w, uint8_t *p, size_t cap)
{
	w->p = p;
	w->cap = cap;
	w->len = 0;
	w->err = 0;
}
void spop_put_u8(spop_wbuf *w, uint8_t v);
void spop_put_u32be(spop_wbuf *w, uint32_t v);
void spop_put_bytes(spop_wbuf *w, const void *p, size_t n);
void spop_put_varint(spop_wbuf *w, uint64_t v);
void spop_put_rawstr(spop_wbuf *w, const void *s, size_t n);
/* Typed value; SPOP_E_ARG in w->err for a type outside 0..9 or INT32/UINT32 out of range. */
void spop_put_value(spop_wbuf *w, const spop_value *v);

/* ---- frames ---------------------------------------------------------------------------------------------- */

typedef struct spop_frame {
	uint8_t type;
	uint32_t flags;
	uint64_t stream_id;
	uint64_t frame_id;
	spop_slice payload; /* borrowed */
} spop_frame;

/* Parses the frame body p[0..len) (the bytes after the 4-byte length). Returns 0 or <0. */
int spop_frame_decode(const uint8_t *p, size_t len, spop_frame *out);

/* Starts a frame at w->len: reserves the 4-byte length, writes type, flags (FIN) and the ids. Returns the
 * offset to pass to spop_frame_end(). */
size_t spop_frame_begin(spop_wbuf *w, uint8_t type, uint64_t stream_id, uint64_t frame_id);
/* Patches the length of the frame started at off. Returns 0, or w->err. */
int spop_frame_end(spop_wbuf *w, size_t off);

/* ---- KV lists -------------------------------------------------------------------------------------------- */

/* Walks a KV list: *off is the cursor (start at 0). Returns 1 with key/value filled, 0 at the end, <0 on a
 * malformed item (the cursor is then unusable). */
int spop_kv_next(const uint8_t *p, size_t len, size_t *off, spop_slice *key, spop_value *val);

/* ---- HELLO ----------------------------------------------------------------------------------------------- */

typedef struct spop_hello {
	bool has_version;    /* supported-versions was present */
	bool v2;             /* "2.0" is among them */
	bool has_frame_size;
	uint32_t max_frame_size;
	spop_slice capabilities;
	spop_slice engine_id;
	bool healthcheck;
} spop_hello;

/* Decodes a HAPROXY-HELLO payload. Unknown keys are skipped; known keys with the wrong type are
 * SPOP_E_INVALID. Returns 0 or <0 (a missing key is not an error here; see spop_hello_check()). */
int spop_hello_decode(const uint8_t *p, size_t len, spop_hello *out);
/* Validates a decoded HELLO against our cap; on success *frame_size = min(HAProxy's, ours).
 * Returns 0, SPOP_E_VERSION (status 5 or 8 via *status) or SPOP_E_FRAMESIZE (status 6 or 9). */
int spop_hello_check(const spop_hello *h, uint32_t our_max, uint32_t *frame_size, unsigned *status);
/* Writes a whole AGENT-HELLO frame (version 2.0, max-frame-size, capabilities "pipelining"). */
int spop_agent_hello_encode(spop_wbuf *w, uint32_t max_frame_size);

/* ---- DISCONNECT ------------------------------------------------------------------------------------------ */

typedef struct spop_disconnect {
	uint32_t status;
	spop_slice message;
} spop_disconnect;

/* Decodes a DISCONNECT payload (status-code, message; both optional, unknown keys skipped). */
int spop_disconnect_decode(const uint8_t *p, size_t len, spop_disconnect *out);
/* Writes a whole AGENT-DISCONNECT frame; msg may be NULL (then the standard text), truncated to 255 bytes. */
int spop_agent_disconnect_encode(spop_wbuf *w, unsigned status, const char *msg);

/* ---- NOTIFY messages ------------------------------------------------------------------------------------- */

/* Next message of a NOTIFY payload: *off is the cursor (start at 0). The message's arguments are validated
 * here (every name and value decodes, within the message), so walking them later cannot fail. Returns 1, 0 at
 * the end, <0 malformed. */
int spop_msg_next(const uint8_t *p, size_t len, size_t *off, spop_msg *out);

/* ---- ACK actions ----------------------------------------------------------------------------------------- */

void spop_put_set_var(spop_wbuf *w, enum spop_scope scope, const void *name, size_t name_len,
		      const spop_value *v);
void spop_put_unset_var(spop_wbuf *w, enum spop_scope scope, const void *name, size_t name_len);

typedef struct spop_action {
	uint8_t type;   /* SPOP_ACT_* */
	uint8_t scope;
	spop_slice name;
	spop_value value; /* SET_VAR only */
} spop_action;

/* Walks an ACK payload (for tests and the load generator). Returns 1, 0 at the end, <0 malformed. */
int spop_action_next(const uint8_t *p, size_t len, size_t *off, spop_action *out);

#endif /* SPOP_CODEC_H */
