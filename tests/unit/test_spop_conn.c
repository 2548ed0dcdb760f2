/*
 * test_spop_conn.c — the connection state machine fed with bytes: negotiation, health check, bad first frames,
 * oversize frames, DISCONNECT, opaque ids, many NOTIFYs in flight (sync and deferred, ACKed out of order),
 * backpressure, drain, empty NOTIFY, byte-by-byte delivery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spop_conn.h"

/* ---- helpers ------------------------------------------------------------------------------------------- */

typedef struct out_frame {
	uint8_t type;
	uint64_t sid, fid;
	uint32_t len;             /* the frame's length field (the frame minus its 4-byte prefix) */
	unsigned nactions;
	uint32_t status;          /* DISCONNECT */
	uint32_t max_frame_size;  /* AGENT-HELLO */
	char caps[32];
	char version[8];
	char first_action_name[16];
} out_frame;

typedef struct harness {
	spop_conn *c;
	out_frame frames[512];
	size_t nframes;
	bool defer;
	spoa_request *deferred[512];
	size_t ndeferred;
	unsigned calls;
	unsigned msgs_seen;
} harness;

static int handler(spoa_request *req, void *ud)
{
	harness *h = ud;
	h->calls++;
	spop_msg m;
	while (spoa_request_next_msg(req, &m) == 1)
		h->msgs_seen++;
	if (h->defer) {
		h->deferred[h->ndeferred++] = req;
		return SPOA_DEFERRED;
	}
	spoa_ack_set_int(req, SPOP_SCOPE_TXN, "n", h->calls);
	return SPOA_DONE;
}

static void make(harness *h, uint32_t our_max, unsigned max_inflight)
{
	memset(h, 0, sizeof(*h));
	spop_conn_config cfg = { .max_frame_size = our_max, .max_inflight = max_inflight, .handler = handler,
				 .handler_userdata = h };
	assert_int_equal(spop_conn_create(&cfg, &h->c), 0);
}

static void parse_output(harness *h)
{
	const uint8_t *p;
	size_t len;
	spop_conn_output(h->c, &p, &len);
	size_t off = 0;
	while (len - off >= 4) {
		uint32_t fl = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 | p[off + 3];
		assert_true(fl <= len - off - 4); /* never a frame split by the library */
		spop_frame f;
		assert_int_equal(spop_frame_decode(p + off + 4, fl, &f), 0);
		assert_int_equal(f.flags, SPOP_FLAG_FIN);
		out_frame *o = &h->frames[h->nframes++];
		memset(o, 0, sizeof(*o));
		o->type = f.type;
		o->len = fl;
		o->sid = f.stream_id;
		o->fid = f.frame_id;
		size_t ko = 0;
		spop_slice k;
		spop_value v;
		if (f.type == SPOP_FRAME_ACK) {
			spop_action a;
			while (spop_action_next(f.payload.ptr, f.payload.len, &ko, &a) == 1) {
				if (o->nactions == 0)
					memcpy(o->first_action_name, a.name.ptr, a.name.len < 15 ? a.name.len : 15);
				o->nactions++;
			}
			assert_int_equal(ko, f.payload.len);
		} else {
			while (spop_kv_next(f.payload.ptr, f.payload.len, &ko, &k, &v) == 1) {
				if (k.len == 11 && !memcmp(k.ptr, "status-code", 11))
					o->status = (uint32_t)v.u.u;
				if (k.len == 14 && !memcmp(k.ptr, "max-frame-size", 14))
					o->max_frame_size = (uint32_t)v.u.u;
				if (k.len == 12 && !memcmp(k.ptr, "capabilities", 12))
					memcpy(o->caps, v.u.s.ptr, v.u.s.len < 31 ? v.u.s.len : 31);
				if (k.len == 7 && !memcmp(k.ptr, "version", 7))
					memcpy(o->version, v.u.s.ptr, v.u.s.len < 7 ? v.u.s.len : 7);
			}
		}
		off += 4 + fl;
	}
	assert_int_equal(off, len);
	spop_conn_consume(h->c, len);
}

/* Feeds bytes in chunks of at most `chunk`, processing after each. */
static void feed(harness *h, const uint8_t *p, size_t n, size_t chunk)
{
	size_t off = 0;
	while (off < n) {
		uint8_t *dst;
		size_t room;
		spop_conn_input(h->c, &dst, &room);
		if (room == 0)
			break;
		size_t k = n - off;
		if (k > room)
			k = room;
		if (k > chunk)
			k = chunk;
		memcpy(dst, p + off, k);
		spop_conn_commit(h->c, k);
		off += k;
		spop_conn_process(h->c);
		parse_output(h);
	}
}

static void put(uint8_t *buf, size_t *n, const void *p, size_t len)
{
	memcpy(buf + *n, p, len);
	*n += len;
}
static void put_str(uint8_t *buf, size_t *n, const char *s)
{
	size_t l = strlen(s);
	buf[(*n)++] = (uint8_t)l;
	put(buf, n, s, l);
}
static void set_len(uint8_t *frame, size_t total)
{
	uint32_t l = (uint32_t)(total - 4);
	frame[0] = (uint8_t)(l >> 24);
	frame[1] = (uint8_t)(l >> 16);
	frame[2] = (uint8_t)(l >> 8);
	frame[3] = (uint8_t)l;
}

static size_t hello(uint8_t *buf, uint32_t fs, bool hc)
{
	size_t n = 4;
	buf[n++] = 1;
	put(buf, &n, (const uint8_t[]){ 0, 0, 0, 1, 0, 0 }, 6);
	put_str(buf, &n, "supported-versions");
	buf[n++] = 0x08;
	put_str(buf, &n, "2.0");
	put_str(buf, &n, "max-frame-size");
	buf[n++] = 0x03;
	n += spop_varint_encode(fs, buf + n);
	put_str(buf, &n, "capabilities");
	buf[n++] = 0x08;
	put_str(buf, &n, hc ? "" : "pipelining,async");
	if (hc) {
		put_str(buf, &n, "healthcheck");
		buf[n++] = 0x11;
	}
	set_len(buf, n);
	return n;
}

/* NOTIFY with nmsgs messages of two args each. */
static size_t notify(uint8_t *buf, uint64_t sid, uint64_t fid, int nmsgs, uint32_t flags)
{
	size_t n = 4;
	buf[n++] = 3;
	put(buf, &n, (const uint8_t[]){ (uint8_t)(flags >> 24), (uint8_t)(flags >> 16), (uint8_t)(flags >> 8),
					 (uint8_t)flags }, 4);
	n += spop_varint_encode(sid, buf + n);
	n += spop_varint_encode(fid, buf + n);
	for (int i = 0; i < nmsgs; i++) {
		put_str(buf, &n, "check-auth");
		buf[n++] = 2;
		put_str(buf, &n, "auth");
		buf[n++] = 0x08;
		put_str(buf, &n, "Bearer x");
		put_str(buf, &n, "src");
		put(buf, &n, (const uint8_t[]){ 0x06, 127, 0, 0, 1 }, 5);
	}
	set_len(buf, n);
	return n;
}

static void handshake(harness *h, uint32_t fs)
{
	uint8_t buf[256];
	size_t n = hello(buf, fs, false);
	feed(h, buf, n, n);
	assert_int_equal(h->nframes, 1);
	assert_int_equal(h->frames[0].type, SPOP_FRAME_AGENT_HELLO);
	assert_int_equal(spop_conn_state(h->c), SPOP_CS_RUNNING);
	h->nframes = 0;
}

/* ---- tests --------------------------------------------------------------------------------------------- */

static const struct {
	const char *name;
	uint32_t ours, theirs, want;
} negotiations[] = {
	{ "HAProxy default below ours", 65536, 16380, 16380 },
	{ "HAProxy larger than ours: min, not refused", 65536, 1048576, 65536 },
	{ "equal", 16380, 16380, 16380 },
	{ "protocol floor", 65536, 256, 256 },
};

static void test_hello_negotiation(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(negotiations) / sizeof(negotiations[0]); i++) {
		harness h;
		make(&h, negotiations[i].ours, 0);
		uint8_t buf[256];
		size_t n = hello(buf, negotiations[i].theirs, false);
		feed(&h, buf, n, n);
		assert_int_equal(h.nframes, 1);
		if (h.frames[0].max_frame_size != negotiations[i].want)
			fail_msg("%s: announced %u", negotiations[i].name, h.frames[0].max_frame_size);
		assert_string_equal(h.frames[0].caps, "pipelining");
		assert_string_equal(h.frames[0].version, "2.0");
		assert_int_equal(spop_conn_frame_size(h.c), negotiations[i].want);
		assert_false(spop_conn_done(h.c));
		spop_conn_close(h.c);
	}
}

static void test_healthcheck(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	uint8_t buf[256];
	size_t n = hello(buf, 16380, true);
	feed(&h, buf, n, 7); /* in pieces */
	assert_int_equal(h.nframes, 1);
	assert_int_equal(h.frames[0].type, SPOP_FRAME_AGENT_HELLO);
	assert_int_equal(h.frames[0].max_frame_size, 16380);
	assert_true(spop_conn_done(h.c));
	assert_false(spop_conn_protocol_error(h.c));
	spop_conn_close(h.c);
}

/* Bad first frames: each gets AGENT-DISCONNECT with the status it names, and the connection closes. */
static const struct {
	const char *name;
	const char *bytes;
	size_t n;
	uint32_t status;
} bad_first[] = {
	{ "HTTP request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, SPOP_ST_INVALID },
	{ "NOTIFY before HELLO", "\x00\x00\x00\x07\x03\x00\x00\x00\x01\x01\x01", 11, SPOP_ST_INVALID },
	{ "HELLO with 1 GB length", "\x40\x00\x00\x00\x01", 5, SPOP_ST_TOO_BIG },
	{ "HELLO too big, type not yet seen", "\x7f\xff\xff\xff", 4, SPOP_ST_TOO_BIG },
	{ "HELLO shorter than a header", "\x00\x00\x00\x02\x01\x00", 6, SPOP_ST_INVALID },
	{ "HELLO without FIN", "\x00\x00\x00\x07\x01\x00\x00\x00\x00\x00\x00", 11, SPOP_ST_FRAG_NOT_SUPPORTED },
	{ "HELLO with no keys", "\x00\x00\x00\x07\x01\x00\x00\x00\x01\x00\x00", 11, SPOP_ST_NO_VSN },
	{ "HELLO with bad KV", "\x00\x00\x00\x09\x01\x00\x00\x00\x01\x00\x00\x05x", 13, SPOP_ST_INVALID },
};

static void test_bad_first_frames(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_first) / sizeof(bad_first[0]); i++) {
		harness h;
		make(&h, 0, 0);
		feed(&h, (const uint8_t *)bad_first[i].bytes, bad_first[i].n, 1024);
		if (h.nframes != 1 || h.frames[0].type != SPOP_FRAME_AGENT_DISCONNECT ||
		    h.frames[0].status != bad_first[i].status)
			fail_msg("%s: %zu frames, type %u status %u", bad_first[i].name, h.nframes,
				 h.nframes ? h.frames[0].type : 0, h.nframes ? h.frames[0].status : 0);
		assert_true(spop_conn_done(h.c));
		/* closing: no more input is taken, and nothing was sized from the peer's length */
		uint8_t *p;
		size_t room;
		spop_conn_input(h.c, &p, &room);
		assert_int_equal(room, 0);
		spop_conn_close(h.c);
	}
}

static void test_hello_bigger_than_start_buffer(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	uint8_t buf[4096];
	size_t n = hello(buf, 16380, false);
	/* an unknown key with a 2 KiB value is skipped, and needs the buffer to grow within our cap */
	put_str(buf, &n, "x-future");
	buf[n++] = 0x09;
	n += spop_varint_encode(2000, buf + n);
	memset(buf + n, 'z', 2000);
	n += 2000;
	set_len(buf, n);
	feed(&h, buf, n, 300);
	assert_int_equal(h.nframes, 1);
	assert_int_equal(h.frames[0].type, SPOP_FRAME_AGENT_HELLO);
	spop_conn_close(h.c);
}

static void test_notify_ids_echoed(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	handshake(&h, 16380);
	static const uint64_t ids[][2] = { { 0, 1 }, { 1, 1 }, { 3, 1 }, { 2, 7 }, { 1000000, 2 },
					   { UINT64_MAX, UINT64_MAX } };
	uint8_t buf[512];
	for (size_t i = 0; i < 6; i++) {
		size_t n = notify(buf, ids[i][0], ids[i][1], 1, SPOP_FLAG_FIN);
		feed(&h, buf, n, n);
	}
	assert_int_equal(h.nframes, 6);
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(h.frames[i].type, SPOP_FRAME_ACK);
		assert_true(h.frames[i].sid == ids[i][0] && h.frames[i].fid == ids[i][1]);
		assert_int_equal(h.frames[i].nactions, 1);
		assert_string_equal(h.frames[i].first_action_name, "n");
	}
	assert_int_equal(h.msgs_seen, 6);
	spop_conn_close(h.c);
}

static void test_empty_notify_gets_an_action(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	handshake(&h, 16380);
	h.defer = false;
	uint8_t buf[64];
	size_t n = notify(buf, 5, 1, 0, SPOP_FLAG_FIN);
	/* a handler that adds nothing: the harness handler always adds one, so use none at all */
	spop_conn_close(h.c);
	spop_conn_config cfg = { .handler = NULL };
	assert_int_equal(spop_conn_create(&cfg, &h.c), 0);
	handshake(&h, 16380);
	feed(&h, buf, n, n);
	assert_int_equal(h.nframes, 1);
	assert_int_equal(h.frames[0].type, SPOP_FRAME_ACK);
	assert_int_equal(h.frames[0].nactions, 1); /* the library's harmless unset of "_" */
	assert_string_equal(h.frames[0].first_action_name, "_");
	spop_conn_close(h.c);
}

static void test_many_in_flight_one_feed(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	handshake(&h, 16380);
	static uint8_t buf[300 * 64];
	size_t n = 0;
	for (int i = 0; i < 300; i++)
		n += notify(buf + n, (uint64_t)(2 * i + 1), 1, 1, SPOP_FLAG_FIN);
	feed(&h, buf, n, n);
	/* the output may have throttled processing: drain until everything is answered */
	for (int round = 0; round < 100 && h.nframes < 300; round++) {
		spop_conn_process(h.c);
		parse_output(&h);
		feed(&h, NULL, 0, 1);
	}
	assert_int_equal(h.nframes, 300);
	for (int i = 0; i < 300; i++)
		assert_true(h.frames[i].sid == (uint64_t)(2 * i + 1));
	spop_conn_close(h.c);
}

static void test_deferred_out_of_order_and_backpressure(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 4); /* at most 4 deferred in flight */
	handshake(&h, 16380);
	h.defer = true;
	uint8_t buf[128 * 10];
	size_t n = 0;
	for (int i = 0; i < 10; i++)
		n += notify(buf + n, (uint64_t)i, 1, 2, SPOP_FLAG_FIN);
	feed(&h, buf, n, n);
	assert_int_equal(h.ndeferred, 4);
	assert_int_equal(spop_conn_inflight(h.c), 4);
	assert_int_equal(h.nframes, 0);
	/* complete in reverse order; each completion lets one more NOTIFY in */
	size_t done = 0;
	while (done < 10) {
		size_t pending = h.ndeferred - done;
		assert_true(pending > 0);
		spoa_request *r = h.deferred[h.ndeferred - 1];
		h.deferred[h.ndeferred - 1] = h.deferred[done];
		h.deferred[done] = r;
		spoa_ack_set_bool(r, SPOP_SCOPE_SESS, "late", true);
		spoa_ack_set_bool(r, SPOP_SCOPE_SESS, "late2", false);
		assert_false(spop_conn_complete(h.c, r));
		done++;
		spop_conn_process(h.c);
		parse_output(&h);
	}
	assert_int_equal(h.nframes, 10);
	bool seen[10] = { 0 };
	for (int i = 0; i < 10; i++) {
		assert_int_equal(h.frames[i].nactions, 2);
		assert_true(h.frames[i].sid < 10);
		seen[h.frames[i].sid] = true;
	}
	for (int i = 0; i < 10; i++)
		assert_true(seen[i]);
	assert_int_equal(h.msgs_seen, 20);
	spop_conn_close(h.c);
}

static void test_deferred_outlives_connection(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	handshake(&h, 16380);
	h.defer = true;
	uint8_t buf[128];
	size_t n = notify(buf, 1, 1, 1, SPOP_FLAG_FIN);
	feed(&h, buf, n, n);
	n = notify(buf, 3, 1, 1, SPOP_FLAG_FIN);
	feed(&h, buf, n, n);
	assert_int_equal(h.ndeferred, 2);
	spop_conn_close(h.c); /* socket gone; requests still valid */
	spoa_ack_set_int(h.deferred[0], SPOP_SCOPE_TXN, "x", 1);
	assert_false(spop_conn_complete(h.c, h.deferred[0]));
	assert_true(spop_conn_complete(h.c, h.deferred[1])); /* the last one frees the connection */
}

static const struct {
	const char *name;
	uint32_t len_field;
	uint8_t type;
	uint32_t flags;
	uint32_t status;
} bad_running[] = {
	{ "frame bigger than negotiated", 16381, 3, 1, SPOP_ST_TOO_BIG },
	{ "NOTIFY without FIN", 0, 3, 0, SPOP_ST_FRAG_NOT_SUPPORTED },
	{ "second HELLO", 0, 1, 1, SPOP_ST_INVALID },
	{ "HAPROXY-DISCONNECT", 0, 2, 1, SPOP_ST_NORMAL },
};

static void test_bad_frames_when_running(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_running) / sizeof(bad_running[0]); i++) {
		harness h;
		make(&h, 0, 0);
		handshake(&h, 16380);
		uint8_t buf[64];
		size_t n = 4;
		buf[n++] = bad_running[i].type;
		uint32_t f = bad_running[i].flags;
		put(buf, &n, (const uint8_t[]){ (uint8_t)(f >> 24), (uint8_t)(f >> 16), (uint8_t)(f >> 8), (uint8_t)f }, 4);
		buf[n++] = 0;
		buf[n++] = 0;
		set_len(buf, n);
		if (bad_running[i].len_field) {
			buf[0] = 0;
			buf[1] = (uint8_t)(bad_running[i].len_field >> 16);
			buf[2] = (uint8_t)(bad_running[i].len_field >> 8);
			buf[3] = (uint8_t)bad_running[i].len_field;
		}
		feed(&h, buf, n, n);
		if (h.nframes != 1 || h.frames[0].type != SPOP_FRAME_AGENT_DISCONNECT ||
		    h.frames[0].status != bad_running[i].status)
			fail_msg("%s: %zu frames, status %u", bad_running[i].name, h.nframes,
				 h.nframes ? h.frames[0].status : 0);
		assert_true(spop_conn_done(h.c));
		spop_conn_close(h.c);
	}
}

static void test_malformed_notify(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	handshake(&h, 16380);
	uint8_t buf[128];
	size_t n = notify(buf, 1, 1, 1, SPOP_FLAG_FIN);
	buf[n - 5] = 0x0C; /* the src argument's type byte becomes reserved type 12 */
	feed(&h, buf, n, n);
	assert_int_equal(h.nframes, 1);
	assert_int_equal(h.frames[0].status, SPOP_ST_INVALID);
	assert_int_equal(h.calls, 0); /* the handler never saw it */
	assert_true(spop_conn_protocol_error(h.c));
	spop_conn_close(h.c);
}

static void test_unknown_frame_type_skipped(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	handshake(&h, 16380);
	uint8_t buf[128];
	size_t n = 0;
	uint8_t unk[] = { 0, 0, 0, 9, 42, 0, 0, 0, 1, 0, 0, 0xAA, 0xBB };
	put(buf, &n, unk, sizeof(unk));
	n += notify(buf + n, 9, 1, 1, SPOP_FLAG_FIN);
	feed(&h, buf, n, n);
	assert_int_equal(h.nframes, 1);
	assert_int_equal(h.frames[0].type, SPOP_FRAME_ACK);
	assert_true(h.frames[0].sid == 9);
	spop_conn_close(h.c);
}

static void test_byte_by_byte(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	uint8_t buf[1024];
	size_t n = hello(buf, 16380, false);
	for (int i = 0; i < 5; i++)
		n += notify(buf + n, (uint64_t)i, 1, 3, SPOP_FLAG_FIN);
	feed(&h, buf, n, 1);
	assert_int_equal(h.nframes, 6);
	assert_int_equal(h.frames[0].type, SPOP_FRAME_AGENT_HELLO);
	for (int i = 1; i < 6; i++)
		assert_true(h.frames[i].type == SPOP_FRAME_ACK && h.frames[i].sid == (uint64_t)(i - 1));
	assert_int_equal(h.msgs_seen, 15);
	spop_conn_close(h.c);
}

static void test_drain_waits_for_deferred(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	handshake(&h, 16380);
	h.defer = true;
	uint8_t buf[128];
	size_t n = notify(buf, 1, 1, 1, SPOP_FLAG_FIN);
	feed(&h, buf, n, n);
	spop_conn_drain(h.c);
	spop_conn_process(h.c);
	parse_output(&h);
	assert_int_equal(h.nframes, 0);
	assert_false(spop_conn_done(h.c));
	spop_conn_complete(h.c, h.deferred[0]);
	spop_conn_process(h.c);
	parse_output(&h);
	assert_int_equal(h.nframes, 2);
	assert_int_equal(h.frames[0].type, SPOP_FRAME_ACK);
	assert_int_equal(h.frames[1].type, SPOP_FRAME_AGENT_DISCONNECT);
	assert_int_equal(h.frames[1].status, 0);
	assert_true(spop_conn_done(h.c));
	spop_conn_close(h.c);
}

/* A connection with a 256-byte max-frame-size and one NOTIFY whose request the handler deferred: ACK actions are
 * then added by the test, as a worker thread would. */
static spoa_request *deferred_request(harness *h)
{
	make(h, 0, 0);
	handshake(h, 256);
	h->defer = true;
	uint8_t buf[128];
	size_t n = notify(buf, 1, 1, 1, SPOP_FLAG_FIN);
	feed(h, buf, n, n);
	return h->deferred[0];
}

static void test_ack_too_big_is_refused_not_truncated(void **state)
{
	(void)state;
	harness h;
	spoa_request *r = deferred_request(&h);
	char big[300];
	memset(big, 'a', sizeof(big));
	assert_int_equal(spoa_ack_set_str(r, SPOP_SCOPE_TXN, "big", big, sizeof(big)), SPOP_E_NOSPACE);
	assert_int_equal(spoa_ack_set_str(r, SPOP_SCOPE_TXN, "ok", big, 100), 0);
	spop_conn_complete(h.c, r);
	spop_conn_process(h.c);
	parse_output(&h);
	assert_int_equal(h.nframes, 1);
	assert_int_equal(h.frames[0].nactions, 1);
	assert_string_equal(h.frames[0].first_action_name, "ok");
	spop_conn_close(h.c);
}

/* The largest ACK is one byte shorter than max-frame-size: a frame of exactly max-frame-size (+ its 4-byte prefix)
 * fills HAProxy 3.1+'s demux buffer exactly, which wedges the SPOP connection there (bench/big-ack-stall.md). A
 * 4-byte variable name makes the frame length reach every value around 256, so without the margin one ACK
 * length here would be exactly 256. */
static void test_ack_never_fills_a_whole_frame(void **state)
{
	(void)state;
	uint32_t longest = 0;
	char big[300];
	memset(big, 'a', sizeof(big));
	for (size_t l = 200; l < 260; l++) {
		harness h;
		spoa_request *r = deferred_request(&h);
		int rc = spoa_ack_set_str(r, SPOP_SCOPE_TXN, "bigg", big, l);
		spop_conn_complete(h.c, r);
		spop_conn_process(h.c);
		parse_output(&h);
		assert_int_equal(h.nframes, 1);
		if (rc == 0) {
			assert_int_equal(h.frames[0].nactions, 1);
			if (h.frames[0].len > longest)
				longest = h.frames[0].len;
		} else {
			assert_int_equal(rc, SPOP_E_NOSPACE);
		}
		spop_conn_close(h.c);
	}
	assert_int_equal(longest, 255);
}

/* spop_conn_partial() drives the server's incomplete-frame timeout: true before a HELLO and inside a frame,
 * false at frame boundaries, while whole frames wait for output room, and once closing. */
static void test_partial_frame_state(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 2);
	assert_true(spop_conn_partial(h.c)); /* connected, nothing sent: waiting for the HELLO */
	uint8_t buf[256 * 4];
	size_t n = hello(buf, 16380, false);
	feed(&h, buf, n - 1, n);
	assert_true(spop_conn_partial(h.c));
	feed(&h, buf + n - 1, 1, 1);
	assert_int_equal(spop_conn_state(h.c), SPOP_CS_RUNNING);
	assert_false(spop_conn_partial(h.c)); /* idle between frames: never timed out */
	h.nframes = 0;

	n = notify(buf, 1, 1, 1, SPOP_FLAG_FIN);
	feed(&h, buf, 3, 3); /* not even the length yet */
	assert_true(spop_conn_partial(h.c));
	feed(&h, buf + 3, n - 4, n);
	assert_true(spop_conn_partial(h.c));
	feed(&h, buf + n - 1, 1, 1);
	assert_false(spop_conn_partial(h.c));
	assert_int_equal(h.nframes, 1);

	/* whole frames held back by our own limit (2 deferred in flight) are not the peer's fault */
	h.defer = true;
	size_t m = 0;
	for (int i = 0; i < 3; i++)
		m += notify(buf + m, (uint64_t)i + 2, 1, 1, SPOP_FLAG_FIN);
	feed(&h, buf, m, m);
	assert_int_equal(h.ndeferred, 2);
	assert_false(spop_conn_partial(h.c));
	/* ... but a partial frame behind them is, once they have been processed */
	n = notify(buf, 9, 1, 1, SPOP_FLAG_FIN);
	feed(&h, buf, n - 2, n);
	h.defer = false;
	assert_false(spop_conn_complete(h.c, h.deferred[0]));
	assert_false(spop_conn_complete(h.c, h.deferred[1]));
	spop_conn_process(h.c);
	parse_output(&h);
	assert_true(spop_conn_partial(h.c));

	spop_conn_abort(h.c, SPOP_ST_TIMEOUT, NULL);
	assert_false(spop_conn_partial(h.c));
	spop_conn_close(h.c);
}

/* A DISCONNECT that finds the output full (peer not reading, a frame half sent) must not cut the stream: the
 * rest of the half-sent frame and the frames behind it stay, and the DISCONNECT is only added where it fits
 * whole (regression: the pending output was dropped, so the peer got 3 bytes of an ACK followed by a
 * DISCONNECT, a corrupt stream). */
static void test_disconnect_with_full_output_keeps_stream_whole(void **state)
{
	(void)state;
	harness h;
	make(&h, 0, 0);
	handshake(&h, 16380);
	h.defer = true;
	static uint8_t buf[300 * 64];
	size_t n = 0;
	for (int i = 0; i < 300; i++)
		n += notify(buf + n, (uint64_t)i, 1, 1, SPOP_FLAG_FIN);
	size_t off = 0;
	while (off < n) { /* feed without reading the output */
		uint8_t *dst;
		size_t room;
		spop_conn_input(h.c, &dst, &room);
		if (room == 0)
			break;
		size_t k = n - off < room ? n - off : room;
		memcpy(dst, buf + off, k);
		spop_conn_commit(h.c, k);
		off += k;
		spop_conn_process(h.c);
	}
	char big[200]; /* 256 deferred ACKs of ~220 bytes: more than the 32 KiB output */
	memset(big, 'x', sizeof(big));
	for (size_t i = 0; i < h.ndeferred; i++) {
		spoa_ack_set_str(h.deferred[i], SPOP_SCOPE_TXN, "v", big, sizeof(big));
		spop_conn_complete(h.c, h.deferred[i]);
	}
	const uint8_t *p;
	size_t len;
	spop_conn_output(h.c, &p, &len);
	assert_true(len > 32768 - 320); /* nearly full */
	static uint8_t stream[65536];
	memcpy(stream, p, 3);
	spop_conn_consume(h.c, 3);
	spop_conn_abort(h.c, SPOP_ST_TIMEOUT, NULL);
	spop_conn_output(h.c, &p, &len);
	memcpy(stream + 3, p, len);
	size_t total = len + 3, o = 0;
	unsigned acks = 0;
	while (o < total) {
		assert_true(total - o >= 4);
		uint32_t fl = (uint32_t)stream[o] << 24 | (uint32_t)stream[o + 1] << 16 | (uint32_t)stream[o + 2] << 8 |
			      stream[o + 3];
		assert_true(fl <= total - o - 4);
		spop_frame f;
		assert_int_equal(spop_frame_decode(stream + o + 4, fl, &f), 0);
		assert_true(f.type == SPOP_FRAME_ACK || f.type == SPOP_FRAME_AGENT_DISCONNECT);
		acks += f.type == SPOP_FRAME_ACK;
		o += 4 + fl;
	}
	assert_true(acks > 100);
	assert_int_equal(spop_conn_state(h.c), SPOP_CS_CLOSING);
	spop_conn_close(h.c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_negotiation),
		cmocka_unit_test(test_healthcheck),
		cmocka_unit_test(test_bad_first_frames),
		cmocka_unit_test(test_hello_bigger_than_start_buffer),
		cmocka_unit_test(test_notify_ids_echoed),
		cmocka_unit_test(test_empty_notify_gets_an_action),
		cmocka_unit_test(test_many_in_flight_one_feed),
		cmocka_unit_test(test_deferred_out_of_order_and_backpressure),
		cmocka_unit_test(test_deferred_outlives_connection),
		cmocka_unit_test(test_bad_frames_when_running),
		cmocka_unit_test(test_malformed_notify),
		cmocka_unit_test(test_unknown_frame_type_skipped),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_drain_waits_for_deferred),
		cmocka_unit_test(test_ack_too_big_is_refused_not_truncated),
		cmocka_unit_test(test_ack_never_fills_a_whole_frame),
		cmocka_unit_test(test_partial_frame_state),
		cmocka_unit_test(test_disconnect_with_full_output_keeps_stream_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
