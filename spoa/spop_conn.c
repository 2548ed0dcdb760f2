/*
 * spop_conn.c — see spop_conn.h.
 *
 * Buffers: the input buffer is a flat array with a read offset (rd) and a fill offset (wr); it is compacted
 * once per spop_conn_process() call, not per frame. The output buffer is a flat array that is appended to and
 * drained from the front; a synchronous ACK is encoded straight into it (no copy), which is why a NOTIFY is only
 * processed while the output has room for a whole frame. Deferred ACKs that find the output full wait on a
 * FIFO until it drains.
 */
#include <stdlib.h>
#include <string.h>

#include "spop_conn.h"

#define HELLO_BUF 1024u
#define MIN_INBUF (16u * 1024u)
#define MIN_OUTBUF (32u * 1024u)
#define DEFAULT_FRAME 65536u
#define DEFAULT_INFLIGHT 256u

struct spop_conn {
	spop_conn_config cfg;
	enum spop_conn_state state;
	uint32_t frame_size; /* negotiated; 0 before the HELLO */
	bool draining;
	bool eof;
	bool closed;         /* owner called spop_conn_close() */
	bool proto_err;
	const char *reason;
	void *owner;

	uint8_t *in;
	size_t in_cap, rd, wr;
	uint8_t *out;
	size_t out_cap, out_off, out_len; /* pending bytes are out[out_off .. out_off+out_len) */

	uint64_t frames_in;        /* frames consumed from the input */
	unsigned inflight;         /* deferred requests not completed */
	spoa_request *spare;       /* reused request object for synchronous NOTIFYs */
	spoa_request *ready_head;  /* completed deferred ACKs waiting for output room */
	spoa_request *ready_tail;
};

#define ADD(c, field, n)                                                                            \
	do {                                                                                        \
		if ((c)->cfg.counters)                                                              \
			__atomic_store_n(&(c)->cfg.counters->field, (c)->cfg.counters->field + (n),  \
					 __ATOMIC_RELAXED);                                         \
	} while (0)
#define COUNT(c, field) ADD(c, field, 1)

int spop_conn_create(const spop_conn_config *cfg, spop_conn **out)
{
	spop_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return SPOP_E_SYS;
	c->cfg = *cfg;
	if (c->cfg.max_frame_size == 0)
		c->cfg.max_frame_size = DEFAULT_FRAME;
	if (c->cfg.max_frame_size < SPOP_MIN_FRAME_SIZE)
		c->cfg.max_frame_size = SPOP_MIN_FRAME_SIZE;
	if (c->cfg.max_inflight == 0)
		c->cfg.max_inflight = DEFAULT_INFLIGHT;
	c->reason = "";
	/* Before the HELLO only a small buffer: nothing a peer says can make us allocate more until it has
	 * shown a HELLO header with a length within our cap. */
	c->in_cap = HELLO_BUF;
	c->in = malloc(c->in_cap);
	c->out_cap = HELLO_BUF;
	c->out = malloc(c->out_cap);
	if (!c->in || !c->out) {
		free(c->in);
		free(c->out);
		free(c);
		return SPOP_E_SYS;
	}
	*out = c;
	return 0;
}

static void free_req(spoa_request *r)
{
	free(r->own);
	free(r);
}

static void free_conn(spop_conn *c)
{
	free(c->in);
	free(c->out);
	if (c->spare)
		free_req(c->spare);
	while (c->ready_head) {
		spoa_request *r = c->ready_head;
		c->ready_head = r->next;
		free_req(r);
	}
	free(c);
}

void spop_conn_close(spop_conn *c)
{
	c->closed = true;
	c->owner = NULL;
	if (c->inflight == 0) {
		free_conn(c);
		return;
	}
	/* Deferred requests still point here: keep the struct, drop what is no longer needed. */
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	c->in_cap = c->out_cap = c->rd = c->wr = c->out_off = c->out_len = 0;
	while (c->ready_head) {
		spoa_request *r = c->ready_head;
		c->ready_head = r->next;
		free_req(r);
	}
	c->ready_tail = NULL;
}

enum spop_conn_state spop_conn_state(const spop_conn *c) { return c->state; }
const char *spop_conn_reason(const spop_conn *c) { return c->reason; }
bool spop_conn_protocol_error(const spop_conn *c) { return c->proto_err; }
uint32_t spop_conn_frame_size(const spop_conn *c) { return c->frame_size; }
unsigned spop_conn_inflight(const spop_conn *c) { return c->inflight; }
void *spop_conn_route(const spop_conn *c) { return c->cfg.route; }
void spop_conn_set_owner(spop_conn *c, void *owner) { c->owner = owner; }
void *spop_conn_owner(const spop_conn *c) { return c->owner; }

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

bool spop_conn_partial(const spop_conn *c)
{
	if (c->closed)
		return false;
	if (c->state == SPOP_CS_AWAIT_HELLO)
		return true;
	if (c->state != SPOP_CS_RUNNING)
		return false;
	size_t avail = c->wr - c->rd;
	if (avail == 0)
		return false;
	if (avail < 4)
		return true;
	return avail - 4 < be32(c->in + c->rd);
}

uint64_t spop_conn_frames_in(const spop_conn *c)
{
	return c->frames_in;
}

bool spop_conn_done(const spop_conn *c)
{
	return c->state == SPOP_CS_CLOSING && c->out_len == 0;
}

void spop_conn_input(spop_conn *c, uint8_t **p, size_t *len)
{
	if (c->state == SPOP_CS_CLOSING || c->draining || c->eof) {
		*p = NULL;
		*len = 0;
		return;
	}
	if (c->rd > 0 && c->wr == c->in_cap) { /* full but with consumed bytes in front: compact */
		memmove(c->in, c->in + c->rd, c->wr - c->rd);
		c->wr -= c->rd;
		c->rd = 0;
	}
	*p = c->in + c->wr;
	*len = c->in_cap - c->wr;
}

void spop_conn_commit(spop_conn *c, size_t n)
{
	if (n > c->in_cap - c->wr) /* owner bug; never trust it into an overflow */
		n = c->in_cap - c->wr;
	c->wr += n;
}

void spop_conn_output(spop_conn *c, const uint8_t **p, size_t *len)
{
	*p = c->out ? c->out + c->out_off : NULL;
	*len = c->out_len;
}

/* Moves pending bytes to the front so appends have the whole tail. */
static void out_compact(spop_conn *c)
{
	if (c->out_off == 0)
		return;
	if (c->out_len)
		memmove(c->out, c->out + c->out_off, c->out_len);
	c->out_off = 0;
}

static size_t out_free(const spop_conn *c)
{
	return c->out_cap - c->out_off - c->out_len;
}

static void flush_ready(spop_conn *c);

void spop_conn_consume(spop_conn *c, size_t n)
{
	if (n > c->out_len)
		n = c->out_len;
	c->out_off += n;
	c->out_len -= n;
	if (c->out_len == 0)
		c->out_off = 0;
	if (c->ready_head)
		flush_ready(c);
}

/* Appends a small control frame (HELLO, DISCONNECT) to the output. */
static int out_append_ctl(spop_conn *c, unsigned status, const char *msg, bool hello)
{
	out_compact(c);
	spop_wbuf w;
	spop_wbuf_init(&w, c->out + c->out_len, c->out_cap - c->out_len);
	int r = hello ? spop_agent_hello_encode(&w, c->frame_size)
		      : spop_agent_disconnect_encode(&w, status, msg);
	if (r < 0)
		return r;
	c->out_len += w.len;
	COUNT(c, frames_out);
	ADD(c, bytes_out, w.len);
	return 0;
}

/* AGENT-DISCONNECT(status) and CLOSING. Input is dropped from now on. */
static void disconnect(spop_conn *c, unsigned status, const char *reason, bool proto_err)
{
	if (c->state == SPOP_CS_CLOSING)
		return;
	/* Usually the output has room for one control frame (NOTIFYs are only processed while a whole ACK fits),
	 * but completed deferred ACKs can fill it when the peer does not read. Then the DISCONNECT is left out:
	 * the pending bytes may start inside a half-sent frame, and dropping them would corrupt the stream. The
	 * owner closes a CLOSING connection once the output is out (or after its own timeout). */
	if (c->out) {
		out_compact(c);
		if (c->out_cap - c->out_len >= 320)
			(void)out_append_ctl(c, status, reason, false);
	}
	c->state = SPOP_CS_CLOSING;
	c->reason = reason ? reason : spop_status_str(status);
	c->proto_err = proto_err;
	if (proto_err)
		COUNT(c, protocol_errors);
	c->rd = c->wr = 0;
}

void spop_conn_eof(spop_conn *c)
{
	c->eof = true;
	if (c->state != SPOP_CS_CLOSING) {
		/* Nobody left to answer: no DISCONNECT, just close. */
		c->state = SPOP_CS_CLOSING;
		c->reason = "peer closed the connection";
		c->out_len = 0;
		c->out_off = 0;
	}
}

void spop_conn_drain(spop_conn *c)
{
	c->draining = true;
}

void spop_conn_abort(spop_conn *c, unsigned status, const char *msg)
{
	disconnect(c, status, msg, false);
}

/* ---- buffers after negotiation --------------------------------------------------------------------------- */

static int resize(uint8_t **buf, size_t *cap, size_t want, size_t keep)
{
	if (*cap == want)
		return 0;
	uint8_t *n = malloc(want);
	if (!n)
		return SPOP_E_SYS;
	if (keep)
		memcpy(n, *buf, keep);
	free(*buf);
	*buf = n;
	*cap = want;
	return 0;
}

/* Input holds a few frames at once (batching), output a few worst-case ACKs; both scale with the frame size
 * and are capped by it, so one connection's memory is bounded by a small multiple of max-frame-size. */
static int size_buffers(spop_conn *c)
{
	size_t fr = (size_t)c->frame_size + 4;
	size_t in = fr < MIN_INBUF ? MIN_INBUF : fr;
	size_t out = 2 * fr < MIN_OUTBUF ? MIN_OUTBUF : 2 * fr;
	size_t pending = c->wr - c->rd;
	if (pending && c->rd)
		memmove(c->in, c->in + c->rd, pending);
	c->wr = pending;
	c->rd = 0;
	if (pending > in)
		return SPOP_E_TOO_BIG;
	out_compact(c);
	if (resize(&c->in, &c->in_cap, in, pending) < 0 || resize(&c->out, &c->out_cap, out, c->out_len) < 0)
		return SPOP_E_SYS;
	return 0;
}

/* ---- requests -------------------------------------------------------------------------------------------- */

static void ack_finish(spoa_request *r)
{
	/* An empty ACK stalls HAProxy 3.1.x until its processing timeout: always carry one harmless action. */
	if (r->w.len == r->actions_off && !r->w.err)
		spop_put_unset_var(&r->w, SPOP_SCOPE_TXN, "_", 1);
	r->w.err = 0; /* a failed action was rolled back; the frame itself is whole */
	(void)spop_frame_end(&r->w, 0);
}

static void flush_ready(spop_conn *c)
{
	if (c->state == SPOP_CS_CLOSING) /* nothing goes out behind a DISCONNECT */
		return;
	while (c->ready_head) {
		spoa_request *r = c->ready_head;
		if (r->w.len > out_free(c)) {
			out_compact(c);
			if (r->w.len > out_free(c))
				return;
		}
		memcpy(c->out + c->out_off + c->out_len, r->w.p, r->w.len);
		c->out_len += r->w.len;
		COUNT(c, frames_out);
		ADD(c, bytes_out, r->w.len);
		c->ready_head = r->next;
		if (!c->ready_head)
			c->ready_tail = NULL;
		free_req(r);
	}
}

bool spop_conn_complete(spop_conn *c, spoa_request *req)
{
	req->in_handler = false; /* the NOTIFY's slices died with the handler call */
	req->payload.ptr = NULL;
	req->payload.len = 0;
	c->inflight--;
	if (c->closed || c->state == SPOP_CS_CLOSING) {
		free_req(req);
		if (c->closed && c->inflight == 0) {
			free_conn(c);
			return true;
		}
		return false;
	}
	ack_finish(req);
	req->next = NULL;
	if (c->ready_tail)
		c->ready_tail->next = req;
	else
		c->ready_head = req;
	c->ready_tail = req;
	flush_ready(c);
	return false;
}

/* Runs the handler for one NOTIFY. Returns 0, or <0 to end the connection (allocation failure). */
static int handle_notify(spop_conn *c, const spop_frame *f)
{
	size_t fr = (size_t)c->frame_size + 4;
	spoa_request *r = c->spare;
	if (!r) {
		/* The deferred-ACK buffer is allocated with the request, before the handler can defer it, so a
		 * deferral itself cannot fail; a synchronous request keeps reusing both. */
		r = calloc(1, sizeof(*r));
		if (!r)
			return SPOP_E_SYS;
		r->own = malloc(fr);
		if (!r->own) {
			free(r);
			return SPOP_E_SYS;
		}
		r->conn = c;
		c->spare = r;
	}
	/* The ACK is built in the request's own buffer, never in the shared output buffer: once the handler has
	 * handed a deferred request to another thread, that thread adds actions while this one carries on, so
	 * nothing the two could both touch may change after the handler returns. A synchronous ACK is copied out
	 * below (a few hundred bytes); the caller guaranteed room for a whole frame. */
	uint8_t *dst = c->out + c->out_off + c->out_len;
	/* One byte short of a whole max-size frame: HAProxy 3.1+ (mux-spop) stops reading a SPOP connection for
	 * good when one read fills its demux buffer exactly, and a frame of max-frame-size (tune.bufsize - 4) plus
	 * its length prefix is exactly that buffer (bench/big-ack-stall.md). */
	spop_wbuf_init(&r->w, r->own, fr - 1);
	(void)spop_frame_begin(&r->w, SPOP_FRAME_ACK, f->stream_id, f->frame_id);
	if (r->w.err) /* ids too long for a 256-byte frame cannot happen: 10+10 bytes */
		return SPOP_E_NOSPACE;
	r->actions_off = r->w.len;
	r->payload = f->payload;
	r->msg_off = 0;
	r->next = NULL;
	r->in_handler = true;

	int verdict = SPOA_DONE;
	if (c->cfg.handler)
		verdict = c->cfg.handler(r, c->cfg.handler_userdata);
	COUNT(c, notify);

	if (verdict == SPOA_DEFERRED) {
		/* r belongs to whoever completes it now; spop_conn_complete() closes its message view. */
		c->spare = NULL;
		c->inflight++;
		return 0;
	}
	r->in_handler = false;
	r->payload.ptr = NULL;
	r->payload.len = 0;
	ack_finish(r);
	memcpy(dst, r->own, r->w.len);
	c->out_len += r->w.len;
	COUNT(c, frames_out);
	ADD(c, bytes_out, r->w.len);
	return 0;
}

static void on_hello(spop_conn *c, const spop_frame *f)
{
	spop_hello h;
	int r = spop_hello_decode(f->payload.ptr, f->payload.len, &h);
	if (r < 0) {
		disconnect(c, SPOP_ST_INVALID, "malformed HAPROXY-HELLO", true);
		return;
	}
	uint32_t fs;
	unsigned st;
	r = spop_hello_check(&h, c->cfg.max_frame_size, &fs, &st);
	if (r < 0) {
		disconnect(c, st, NULL, true);
		return;
	}
	c->frame_size = fs;
	if (h.healthcheck) {
		COUNT(c, healthchecks);
		(void)out_append_ctl(c, 0, NULL, true);
		c->state = SPOP_CS_CLOSING;
		c->reason = "health check";
		c->rd = c->wr = 0;
		return;
	}
	if (size_buffers(c) < 0) {
		disconnect(c, SPOP_ST_RES_ALLOC, NULL, false);
		return;
	}
	(void)out_append_ctl(c, 0, NULL, true);
	c->state = SPOP_CS_RUNNING;
}


/* Validates every message of a NOTIFY before the handler sees it, so the handler's walk cannot fail. */
static bool notify_valid(spop_slice payload)
{
	size_t off = 0;
	spop_msg m;
	int r;
	while ((r = spop_msg_next(payload.ptr, payload.len, &off, &m)) == 1)
		;
	return r == 0;
}

enum spop_conn_state spop_conn_process(spop_conn *c)
{
	if (c->closed)
		return c->state;
	if (c->ready_head)
		flush_ready(c);
	while (c->state != SPOP_CS_CLOSING) {
		size_t avail = c->wr - c->rd;
		const uint8_t *p = c->in + c->rd;
		uint32_t cap = c->state == SPOP_CS_AWAIT_HELLO ? c->cfg.max_frame_size : c->frame_size;

		if (avail >= 5 && c->state == SPOP_CS_AWAIT_HELLO && p[4] != SPOP_FRAME_HAPROXY_HELLO) {
			disconnect(c, SPOP_ST_INVALID, "first frame is not a HAPROXY-HELLO", true);
			break;
		}
		if (avail < 4)
			break;
		uint32_t len = be32(p);
		if (len > cap) {
			disconnect(c, SPOP_ST_TOO_BIG, NULL, true);
			break;
		}
		if (len < SPOP_FRAME_HDR_MIN) {
			disconnect(c, SPOP_ST_INVALID, "frame shorter than its header", true);
			break;
		}
		if (avail - 4 < len) {
			/* Partial frame: make sure it can fit. Only the HELLO may need more than the 1 KiB start
			 * buffer, and its length is within our cap by now. */
			if ((size_t)len + 4 > c->in_cap) {
				size_t pending = c->wr - c->rd;
				if (c->rd)
					memmove(c->in, c->in + c->rd, pending);
				c->rd = 0;
				c->wr = pending;
				if (resize(&c->in, &c->in_cap, (size_t)len + 4, pending) < 0) {
					disconnect(c, SPOP_ST_RES_ALLOC, NULL, false);
					break;
				}
			}
			break;
		}
		if (c->state == SPOP_CS_RUNNING) {
			/* Backpressure: a NOTIFY needs room for a worst-case ACK and an in-flight slot. */
			if (out_free(c) < (size_t)c->frame_size + 4) {
				out_compact(c);
				if (out_free(c) < (size_t)c->frame_size + 4)
					break;
			}
			if (c->inflight >= c->cfg.max_inflight)
				break;
		}
		spop_frame f;
		int r = spop_frame_decode(p + 4, len, &f);
		if (r < 0) {
			disconnect(c, SPOP_ST_INVALID, "malformed frame header", true);
			break;
		}
		c->rd += 4 + (size_t)len;
		c->frames_in++;
		COUNT(c, frames_in);
		if (!(f.flags & SPOP_FLAG_FIN)) {
			disconnect(c, SPOP_ST_FRAG_NOT_SUPPORTED, NULL, true);
			break;
		}
		if (c->state == SPOP_CS_AWAIT_HELLO) {
			on_hello(c, &f);
			continue;
		}
		switch (f.type) {
		case SPOP_FRAME_NOTIFY:
			if (!notify_valid(f.payload)) {
				disconnect(c, SPOP_ST_INVALID, "malformed NOTIFY", true);
				break;
			}
			if (handle_notify(c, &f) < 0)
				disconnect(c, SPOP_ST_RES_ALLOC, NULL, false);
			break;
		case SPOP_FRAME_HAPROXY_DISCONNECT: {
			spop_disconnect d;
			if (spop_disconnect_decode(f.payload.ptr, f.payload.len, &d) < 0)
				disconnect(c, SPOP_ST_INVALID, "malformed HAPROXY-DISCONNECT", true);
			else
				disconnect(c, SPOP_ST_NORMAL, NULL, false);
			break;
		}
		case SPOP_FRAME_HAPROXY_HELLO:
			disconnect(c, SPOP_ST_INVALID, "second HAPROXY-HELLO", true);
			break;
		default:
			/* Unknown or agent-side frame types are skipped by length, as HAProxy does. */
			break;
		}
	}
	if (c->state != SPOP_CS_CLOSING) {
		if (c->rd == c->wr) {
			c->rd = c->wr = 0;
		} else if (c->rd > 0 && c->in_cap - c->wr < 512) {
			memmove(c->in, c->in + c->rd, c->wr - c->rd);
			c->wr -= c->rd;
			c->rd = 0;
		}
		if (c->draining && c->inflight == 0 && !c->ready_head) {
			disconnect(c, SPOP_ST_NORMAL, "agent shutting down", false);
		}
	}
	return c->state;
}

/* ---- the handler API of spoa.h that lives on a request --------------------------------------------------- */

int spoa_request_next_msg(spoa_request *req, spop_msg *out)
{
	if (!req->in_handler)
		return SPOP_E_STATE;
	return spop_msg_next(req->payload.ptr, req->payload.len, &req->msg_off, out);
}

unsigned spoa_request_worker(const spoa_request *req)
{
	return req->conn->cfg.worker;
}

static int ack_result(spoa_request *req)
{
	int e = req->w.err;
	/* Keep the frame usable after a failed action: the action was rolled back by the codec. */
	req->w.err = 0;
	return e;
}

int spoa_ack_set(spoa_request *req, enum spop_scope scope, const char *name, size_t name_len,
		 const spop_value *v)
{
	spop_put_set_var(&req->w, scope, name, name_len, v);
	return ack_result(req);
}

int spoa_ack_set_str(spoa_request *req, enum spop_scope scope, const char *name, const char *s, size_t len)
{
	spop_value v = { .type = SPOP_T_STR, .u.s = { (const uint8_t *)s, len } };
	spop_put_set_var(&req->w, scope, name, strlen(name), &v);
	return ack_result(req);
}

int spoa_ack_set_int(spoa_request *req, enum spop_scope scope, const char *name, int64_t i)
{
	spop_value v = { .type = SPOP_T_INT64, .u.i = i };
	spop_put_set_var(&req->w, scope, name, strlen(name), &v);
	return ack_result(req);
}

int spoa_ack_set_bool(spoa_request *req, enum spop_scope scope, const char *name, bool b)
{
	spop_value v = { .type = SPOP_T_BOOL, .u.b = b };
	spop_put_set_var(&req->w, scope, name, strlen(name), &v);
	return ack_result(req);
}

int spoa_ack_unset(spoa_request *req, enum spop_scope scope, const char *name)
{
	spop_put_unset_var(&req->w, scope, name, strlen(name));
	return ack_result(req);
}
