/*
 * test_spop_codec.c — the SPOP codec against exact bytes from docs/spop.md (HAProxy 2.6 captures, worked
 * examples) and round trips of every type; table-driven bad inputs, each naming the verdict it expects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spop_codec.h"

#define B(...) ((const uint8_t[]){ __VA_ARGS__ })
#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

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

/* ---- varint ---------------------------------------------------------------------------------------------- */

static const struct {
	uint64_t v;
	uint8_t bytes[10];
	size_t n;
} varints[] = {
	{ 0, { 0x00 }, 1 },
	{ 239, { 0xEF }, 1 },
	{ 240, { 0xF0, 0x00 }, 2 },
	{ 1000, { 0xF8, 0x2F }, 2 },             /* docs/spop.md §2 */
	{ 2287, { 0xFF, 0x7F }, 2 },
	{ 2288, { 0xF0, 0x80, 0x00 }, 3 },
	{ 16380, { 0xFC, 0xF0, 0x06 }, 3 },      /* worked example 2: HAProxy's default max-frame-size */
	{ 264431, { 0xFF, 0xFF, 0x7F }, 3 },
	{ 264432, { 0xF0, 0x80, 0x80, 0x00 }, 4 },
	{ UINT64_MAX, { 0xFF, 0xF0, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0x0E }, 10 }, /* -1 as HAProxy sends it */
};

static void test_varint_exact(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(varints) / sizeof(varints[0]); i++) {
		uint8_t out[10];
		size_t n = spop_varint_encode(varints[i].v, out);
		assert_int_equal(n, varints[i].n);
		assert_memory_equal(out, varints[i].bytes, n);
		uint64_t v = 0;
		assert_int_equal(spop_varint_decode(varints[i].bytes, varints[i].n, &v), (int)varints[i].n);
		assert_true(v == varints[i].v);
		assert_int_equal(spop_varint_size(varints[i].v), varints[i].n);
		/* one byte short is always "truncated" */
		if (varints[i].n > 1)
			assert_int_equal(spop_varint_decode(varints[i].bytes, varints[i].n - 1, &v), SPOP_E_TRUNCATED);
	}
}

static void test_varint_ranges(void **state)
{
	(void)state;
	const uint64_t edges[] = { 33818863, 33818864, 4328786159ULL, 4328786160ULL, 1ULL << 32, 1ULL << 63,
				   UINT64_MAX - 1 };
	const size_t sizes[] = { 4, 5, 5, 6, 5, 10, 10 };
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		uint8_t out[10];
		size_t n = spop_varint_encode(edges[i], out);
		assert_int_equal(n, sizes[i]);
		uint64_t v;
		assert_int_equal(spop_varint_decode(out, n, &v), (int)n);
		assert_true(v == edges[i]);
	}
	/* every value around each power of two round-trips */
	for (unsigned b = 0; b < 64; b++) {
		for (int d = -2; d <= 2; d++) {
			uint64_t x = (1ULL << b) + (uint64_t)(int64_t)d;
			uint8_t out[10];
			uint64_t v;
			size_t n = spop_varint_encode(x, out);
			assert_int_equal(spop_varint_decode(out, n, &v), (int)n);
			assert_true(v == x);
		}
	}
}

static const struct {
	const char *name;
	uint8_t bytes[12];
	size_t n;
	int verdict;
} bad_varints[] = {
	{ "empty", { 0 }, 0, SPOP_E_TRUNCATED },
	{ "continuation then end", { 0xF0, 0x80 }, 2, SPOP_E_TRUNCATED },
	{ "11 bytes", { 0xF0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 }, 11, SPOP_E_INVALID },
	{ "overflows 64 bits", { 0xFF, 0xF0, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0x7F }, 10, SPOP_E_INVALID },
};

static void test_varint_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_varints) / sizeof(bad_varints[0]); i++) {
		uint64_t v = 12345;
		int r = spop_varint_decode(bad_varints[i].bytes, bad_varints[i].n, &v);
		if (r != bad_varints[i].verdict)
			fail_msg("%s: got %d want %d", bad_varints[i].name, r, bad_varints[i].verdict);
		assert_true(v == 12345); /* out-param untouched on failure */
	}
}

/* ---- typed data ------------------------------------------------------------------------------------------ */

static void roundtrip(const spop_value *v, const uint8_t *want, size_t wantlen)
{
	uint8_t buf[64];
	spop_wbuf w;
	spop_wbuf_init(&w, buf, sizeof(buf));
	spop_put_value(&w, v);
	assert_int_equal(w.err, 0);
	if (want) {
		assert_int_equal(w.len, wantlen);
		assert_memory_equal(buf, want, wantlen);
	}
	spop_value d;
	assert_int_equal(spop_value_decode(buf, w.len, &d), (int)w.len);
	assert_int_equal(d.type, v->type);
	switch (v->type) {
	case SPOP_T_NULL: break;
	case SPOP_T_BOOL: assert_int_equal(d.u.b, v->u.b); break;
	case SPOP_T_INT32:
	case SPOP_T_INT64: assert_true(d.u.i == v->u.i); break;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64: assert_true(d.u.u == v->u.u); break;
	case SPOP_T_IPV4: assert_memory_equal(d.u.ip4, v->u.ip4, 4); break;
	case SPOP_T_IPV6: assert_memory_equal(d.u.ip6, v->u.ip6, 16); break;
	case SPOP_T_STR:
	case SPOP_T_BIN:
		assert_int_equal(d.u.s.len, v->u.s.len);
		if (v->u.s.len)
			assert_memory_equal(d.u.s.ptr, v->u.s.ptr, v->u.s.len);
		break;
	}
	/* every strict prefix is truncated, never accepted */
	for (size_t k = 0; k < w.len; k++)
		assert_int_equal(spop_value_decode(buf, k, &d), SPOP_E_TRUNCATED);
}

static void test_types_roundtrip(void **state)
{
	(void)state;
	spop_value v;
	memset(&v, 0, sizeof(v));
	v.type = SPOP_T_NULL;
	roundtrip(&v, B(0x00), 1);
	v.type = SPOP_T_BOOL;
	v.u.b = true;
	roundtrip(&v, B(0x11), 1);
	v.u.b = false;
	roundtrip(&v, B(0x01), 1);
	v.type = SPOP_T_INT32;
	v.u.i = -1;
	roundtrip(&v, B(0x02, 0xFF, 0xF0, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0x0E), 11);
	v.u.i = INT32_MIN;
	roundtrip(&v, NULL, 0);
	v.u.i = INT32_MAX;
	roundtrip(&v, NULL, 0);
	v.type = SPOP_T_UINT32;
	v.u.u = 16380;
	roundtrip(&v, B(0x03, 0xFC, 0xF0, 0x06), 4);
	v.u.u = UINT32_MAX;
	roundtrip(&v, NULL, 0);
	v.type = SPOP_T_INT64;
	v.u.i = INT64_MIN;
	roundtrip(&v, NULL, 0);
	v.u.i = 1;
	roundtrip(&v, B(0x04, 0x01), 2);
	v.type = SPOP_T_UINT64;
	v.u.u = UINT64_MAX;
	roundtrip(&v, NULL, 0);
	v.type = SPOP_T_IPV4;
	memcpy(v.u.ip4, B(127, 0, 0, 1), 4);
	roundtrip(&v, B(0x06, 0x7f, 0, 0, 1), 5);
	v.type = SPOP_T_IPV6;
	memcpy(v.u.ip6, B(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), 16);
	roundtrip(&v, B(0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), 17);
	v.type = SPOP_T_STR;
	v.u.s.ptr = (const uint8_t *)"GET";
	v.u.s.len = 3;
	roundtrip(&v, B(0x08, 0x03, 'G', 'E', 'T'), 5);
	v.u.s.len = 0;
	roundtrip(&v, B(0x08, 0x00), 2);
	v.type = SPOP_T_BIN;
	v.u.s.ptr = B(0x00, 0xFF);
	v.u.s.len = 2;
	roundtrip(&v, B(0x09, 0x02, 0x00, 0xFF), 4);
}

static void test_value_encode_rejects(void **state)
{
	(void)state;
	uint8_t buf[32];
	spop_wbuf w;
	spop_value v = { .type = SPOP_T_INT32, .u.i = (int64_t)INT32_MAX + 1 };
	spop_wbuf_init(&w, buf, sizeof(buf));
	spop_put_value(&w, &v);
	assert_int_equal(w.err, SPOP_E_ARG);
	v.type = SPOP_T_UINT32;
	v.u.u = (uint64_t)UINT32_MAX + 1;
	spop_wbuf_init(&w, buf, sizeof(buf));
	spop_put_value(&w, &v);
	assert_int_equal(w.err, SPOP_E_ARG);
	v.type = (enum spop_type)10;
	spop_wbuf_init(&w, buf, sizeof(buf));
	spop_put_value(&w, &v);
	assert_int_equal(w.err, SPOP_E_ARG);
	v.type = SPOP_T_STR; /* does not fit: sticky NOSPACE, nothing written */
	v.u.s.ptr = (const uint8_t *)"0123456789";
	v.u.s.len = 10;
	spop_wbuf_init(&w, buf, 5);
	spop_put_value(&w, &v);
	assert_int_equal(w.err, SPOP_E_NOSPACE);
}

static const struct {
	const char *name;
	uint8_t bytes[8];
	size_t n;
	int verdict;
} bad_values[] = {
	{ "reserved type 10", { 0x0A }, 1, SPOP_E_INVALID },
	{ "reserved type 15 with flags", { 0xFF }, 1, SPOP_E_INVALID },
	{ "ipv4 3 bytes", { 0x06, 1, 2, 3 }, 4, SPOP_E_TRUNCATED },
	{ "ipv6 short", { 0x07, 1, 2, 3, 4, 5, 6, 7 }, 8, SPOP_E_TRUNCATED },
	{ "string longer than input", { 0x08, 0x05, 'a', 'b' }, 4, SPOP_E_TRUNCATED },
	{ "string huge length", { 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F }, 6, SPOP_E_TRUNCATED },
	{ "int without varint", { 0x04 }, 1, SPOP_E_TRUNCATED },
	{ "empty", { 0 }, 0, SPOP_E_TRUNCATED },
};

static void test_values_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
		spop_value v;
		int r = spop_value_decode(bad_values[i].bytes, bad_values[i].n, &v);
		if (r != bad_values[i].verdict)
			fail_msg("%s: got %d want %d", bad_values[i].name, r, bad_values[i].verdict);
	}
}

/* ---- frames from docs/spop.md ---------------------------------------------------------------------------- */

/* docs/spop.md §6: HAProxy 2.6 health-check HELLO, as captured. */
static const uint8_t hc_hello[] = {
	0x00, 0x00, 0x00, 0x4e, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
	0x12, 's', 'u', 'p', 'p', 'o', 'r', 't', 'e', 'd', '-', 'v', 'e', 'r', 's', 'i', 'o', 'n', 's',
	0x08, 0x03, '2', '.', '0',
	0x0e, 'm', 'a', 'x', '-', 'f', 'r', 'a', 'm', 'e', '-', 's', 'i', 'z', 'e', 0x03, 0xfc, 0xf0, 0x06,
	0x0c, 'c', 'a', 'p', 'a', 'b', 'i', 'l', 'i', 't', 'i', 'e', 's', 0x08, 0x00,
	0x0b, 'h', 'e', 'a', 'l', 't', 'h', 'c', 'h', 'e', 'c', 'k', 0x11,
};

static void test_hello_healthcheck_capture(void **state)
{
	(void)state;
	assert_int_equal(sizeof(hc_hello), 4 + 0x4e);
	spop_frame f;
	assert_int_equal(spop_frame_decode(hc_hello + 4, sizeof(hc_hello) - 4, &f), 0);
	assert_int_equal(f.type, SPOP_FRAME_HAPROXY_HELLO);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_true(f.stream_id == 0 && f.frame_id == 0);
	spop_hello h;
	assert_int_equal(spop_hello_decode(f.payload.ptr, f.payload.len, &h), 0);
	assert_true(h.has_version && h.v2 && h.has_frame_size && h.healthcheck);
	assert_int_equal(h.max_frame_size, 16380);
	assert_int_equal(h.capabilities.len, 0);
	assert_int_equal(h.engine_id.len, 0);
	uint32_t fs;
	unsigned st;
	assert_int_equal(spop_hello_check(&h, 65536, &fs, &st), 0);
	assert_int_equal(fs, 16380);
}

/* A 2.6 HELLO of a real connection: capabilities "pipelining,async" and an engine-id. */
static size_t build_hello(uint8_t *buf, const char *versions, long fs, const char *caps, bool with_engine)
{
	size_t n = 4;
	buf[n++] = 1;
	put(buf, &n, B(0, 0, 0, 1, 0, 0), 6);
	if (versions) {
		put_str(buf, &n, "supported-versions");
		buf[n++] = 0x08;
		put_str(buf, &n, versions);
	}
	if (fs >= 0) {
		put_str(buf, &n, "max-frame-size");
		buf[n++] = 0x03;
		n += spop_varint_encode((uint64_t)fs, buf + n);
	}
	put_str(buf, &n, "capabilities");
	buf[n++] = 0x08;
	put_str(buf, &n, caps);
	if (with_engine) {
		put_str(buf, &n, "engine-id");
		buf[n++] = 0x08;
		put_str(buf, &n, "6b6f2d2e-8c67-4b5b-9a3e-1f0b8f2f7d11");
	}
	uint32_t l = (uint32_t)(n - 4);
	buf[0] = (uint8_t)(l >> 24);
	buf[1] = (uint8_t)(l >> 16);
	buf[2] = (uint8_t)(l >> 8);
	buf[3] = (uint8_t)l;
	return n;
}

static const struct {
	const char *name;
	const char *versions;
	long fs;
	int verdict;
	unsigned status;
	uint32_t negotiated;
} hellos[] = {
	{ "2.6 defaults", "2.0", 16380, 0, 0, 16380 },
	{ "bigger than ours is taken down, never refused", "2.0", 1048576, 0, 0, 65536 },
	{ "exactly 256", "2.0", 256, 0, 0, 256 },
	{ "list of versions", "1.0, 2.0", 16380, 0, 0, 16380 },
	{ "no version key", NULL, 16380, SPOP_E_VERSION, 5, 0 },
	{ "only 1.0", "1.0", 16380, SPOP_E_VERSION, 8, 0 },
	{ "2.00 is not 2.0", "2.00", 16380, SPOP_E_VERSION, 8, 0 },
	{ "no frame size", "2.0", -1, SPOP_E_FRAMESIZE, 6, 0 },
	{ "frame size too small", "2.0", 255, SPOP_E_FRAMESIZE, 9, 0 },
};

static void test_hello_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hellos) / sizeof(hellos[0]); i++) {
		uint8_t buf[256];
		size_t n = build_hello(buf, hellos[i].versions, hellos[i].fs, "pipelining,async", true);
		spop_frame f;
		spop_hello h;
		assert_int_equal(spop_frame_decode(buf + 4, n - 4, &f), 0);
		assert_int_equal(spop_hello_decode(f.payload.ptr, f.payload.len, &h), 0);
		assert_false(h.healthcheck);
		assert_int_equal(h.engine_id.len, 36);
		uint32_t fs = 0;
		unsigned st = 77;
		int r = spop_hello_check(&h, 65536, &fs, &st);
		if (r != hellos[i].verdict || (r == 0 && fs != hellos[i].negotiated) ||
		    (r < 0 && st != hellos[i].status))
			fail_msg("%s: got %d/%u/%u", hellos[i].name, r, st, fs);
	}
}

static void test_agent_hello_bytes(void **state)
{
	(void)state;
	uint8_t buf[128];
	spop_wbuf w;
	spop_wbuf_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_agent_hello_encode(&w, 16380), 0);
	uint8_t want[128];
	size_t n = 4;
	want[n++] = 101;
	put(want, &n, B(0, 0, 0, 1, 0, 0), 6);
	put_str(want, &n, "version");
	want[n++] = 0x08;
	put_str(want, &n, "2.0");
	put_str(want, &n, "max-frame-size");
	put(want, &n, B(0x03, 0xFC, 0xF0, 0x06), 4);
	put_str(want, &n, "capabilities");
	want[n++] = 0x08;
	put_str(want, &n, "pipelining");
	put(want, &(size_t){ 0 }, B(0, 0, 0, (uint8_t)(n - 4)), 4);
	assert_int_equal(w.len, n);
	assert_memory_equal(buf, want, n);
}

/* docs/spop.md §7: the NOTIFY captured from 2.6.12. */
static const uint8_t notify_capture[] = {
	0x00, 0x00, 0x00, 0x78, 0x03, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01,
	0x0a, 'c', 'h', 'e', 'c', 'k', '-', 'a', 'u', 't', 'h', 0x06,
	0x04, 'a', 'u', 't', 'h', 0x08, 0x0a, 'B', 'e', 'a', 'r', 'e', 'r', ' ', 'b', 'a', 'd',
	0x03, 's', 'r', 'c', 0x06, 0x7f, 0x00, 0x00, 0x01,
	0x03, 'i', 'm', 'p', 0x00,
	0x08, 'h', 'd', 'r', 'n', 'a', 'm', 'e', 's', 0x08, 0x24,
	'h', 'o', 's', 't', ',', 'u', 's', 'e', 'r', '-', 'a', 'g', 'e', 'n', 't', ',', 'a', 'c', 'c', 'e', 'p', 't',
	',', 'a', 'u', 't', 'h', 'o', 'r', 'i', 'z', 'a', 't', 'i', 'o', 'n',
	0x06, 'm', 'e', 't', 'h', 'o', 'd', 0x08, 0x03, 'G', 'E', 'T',
	0x04, 'p', 'a', 't', 'h', 0x08, 0x04, '/', 'a', 'p', 'i',
};

static void test_notify_capture(void **state)
{
	(void)state;
	assert_int_equal(sizeof(notify_capture), 4 + 0x78);
	spop_frame f;
	assert_int_equal(spop_frame_decode(notify_capture + 4, sizeof(notify_capture) - 4, &f), 0);
	assert_int_equal(f.type, SPOP_FRAME_NOTIFY);
	assert_int_equal(f.flags, SPOP_FLAG_FIN);
	assert_true(f.stream_id == 2 && f.frame_id == 1);
	size_t off = 0;
	spop_msg m;
	assert_int_equal(spop_msg_next(f.payload.ptr, f.payload.len, &off, &m), 1);
	assert_int_equal(m.name.len, 10);
	assert_memory_equal(m.name.ptr, "check-auth", 10);
	assert_int_equal(m.nargs, 6);
	static const struct { const char *name; enum spop_type t; } want[] = {
		{ "auth", SPOP_T_STR }, { "src", SPOP_T_IPV4 }, { "imp", SPOP_T_NULL },
		{ "hdrnames", SPOP_T_STR }, { "method", SPOP_T_STR }, { "path", SPOP_T_STR },
	};
	spop_arg a;
	for (int i = 0; i < 6; i++) {
		assert_int_equal(spop_msg_next_arg(&m, &a), 1);
		assert_int_equal(a.name.len, strlen(want[i].name));
		assert_memory_equal(a.name.ptr, want[i].name, a.name.len);
		assert_int_equal(a.value.type, want[i].t);
	}
	assert_int_equal(spop_msg_next_arg(&m, &a), 0);
	assert_int_equal(spop_msg_find_arg(&m, "src", &a), 1);
	assert_memory_equal(a.value.u.ip4, B(127, 0, 0, 1), 4);
	assert_int_equal(spop_msg_find_arg(&m, "auth", &a), 1);
	assert_int_equal(a.value.u.s.len, 10);
	assert_memory_equal(a.value.u.s.ptr, "Bearer bad", 10);
	assert_int_equal(spop_msg_find_arg(&m, "aut", &a), 0); /* exact length, never a prefix */
	assert_int_equal(spop_msg_find_arg(&m, "authx", &a), 0);
	assert_int_equal(spop_msg_next(f.payload.ptr, f.payload.len, &off, &m), 0);
	/* every truncation of the payload is refused */
	for (size_t k = 1; k < f.payload.len; k++) {
		size_t o = 0;
		assert_true(spop_msg_next(f.payload.ptr, k, &o, &m) < 0);
	}
}

static const struct {
	const char *name;
	uint8_t bytes[16];
	size_t n;
	int verdict;
} bad_msgs[] = {
	{ "name past end", { 0x05, 'a' }, 2, SPOP_E_TRUNCATED },
	{ "no nb-args", { 0x01, 'm' }, 2, SPOP_E_TRUNCATED },
	{ "2 args announced, 1 present", { 0x01, 'm', 0x02, 0x01, 'a', 0x00 }, 6, SPOP_E_TRUNCATED },
	{ "arg with reserved type", { 0x01, 'm', 0x01, 0x01, 'a', 0x0B }, 6, SPOP_E_INVALID },
};

static void test_msgs_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_msgs) / sizeof(bad_msgs[0]); i++) {
		size_t off = 0;
		spop_msg m;
		int r = spop_msg_next(bad_msgs[i].bytes, bad_msgs[i].n, &off, &m);
		if (r != bad_msgs[i].verdict)
			fail_msg("%s: got %d want %d", bad_msgs[i].name, r, bad_msgs[i].verdict);
	}
}

/* docs/spop.md §8: ACK sid 2 fid 1: set txn.status=1 (INT32), set txn.user="alice", unset txn.reason. */
static void test_ack_example_bytes(void **state)
{
	(void)state;
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x2c, 0x67, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01,
		0x01, 0x03, 0x02, 0x06, 's', 't', 'a', 't', 'u', 's', 0x02, 0x01,
		0x01, 0x03, 0x02, 0x04, 'u', 's', 'e', 'r', 0x08, 0x05, 'a', 'l', 'i', 'c', 'e',
		0x02, 0x02, 0x02, 0x06, 'r', 'e', 'a', 's', 'o', 'n',
	};
	uint8_t buf[128];
	spop_wbuf w;
	spop_wbuf_init(&w, buf, sizeof(buf));
	size_t off = spop_frame_begin(&w, SPOP_FRAME_ACK, 2, 1);
	spop_value v = { .type = SPOP_T_INT32, .u.i = 1 };
	spop_put_set_var(&w, SPOP_SCOPE_TXN, "status", 6, &v);
	v.type = SPOP_T_STR;
	v.u.s.ptr = (const uint8_t *)"alice";
	v.u.s.len = 5;
	spop_put_set_var(&w, SPOP_SCOPE_TXN, "user", 4, &v);
	spop_put_unset_var(&w, SPOP_SCOPE_TXN, "reason", 6);
	assert_int_equal(spop_frame_end(&w, off), 0);
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	/* and it reads back */
	spop_frame f;
	assert_int_equal(spop_frame_decode(buf + 4, w.len - 4, &f), 0);
	size_t o = 0;
	spop_action a;
	assert_int_equal(spop_action_next(f.payload.ptr, f.payload.len, &o, &a), 1);
	assert_int_equal(a.type, SPOP_ACT_SET_VAR);
	assert_int_equal(a.value.type, SPOP_T_INT32);
	assert_int_equal(spop_action_next(f.payload.ptr, f.payload.len, &o, &a), 1);
	assert_int_equal(spop_action_next(f.payload.ptr, f.payload.len, &o, &a), 1);
	assert_int_equal(a.type, SPOP_ACT_UNSET_VAR);
	assert_int_equal(spop_action_next(f.payload.ptr, f.payload.len, &o, &a), 0);
}

static void test_action_every_scope_and_type(void **state)
{
	(void)state;
	uint8_t buf[2048];
	spop_wbuf w;
	spop_wbuf_init(&w, buf, sizeof(buf));
	spop_value vals[10];
	memset(vals, 0, sizeof(vals));
	for (int t = 0; t < 10; t++)
		vals[t].type = (enum spop_type)t;
	vals[SPOP_T_INT32].u.i = -5;
	vals[SPOP_T_STR].u.s.ptr = (const uint8_t *)"x";
	vals[SPOP_T_STR].u.s.len = 1;
	for (int sc = 0; sc <= 4; sc++)
		for (int t = 0; t < 10; t++)
			spop_put_set_var(&w, (enum spop_scope)sc, "v", 1, &vals[t]);
	assert_int_equal(w.err, 0);
	size_t o = 0;
	spop_action a;
	for (int sc = 0; sc <= 4; sc++)
		for (int t = 0; t < 10; t++) {
			assert_int_equal(spop_action_next(buf, w.len, &o, &a), 1);
			assert_int_equal(a.scope, sc);
			assert_int_equal(a.value.type, t);
		}
	assert_int_equal(spop_action_next(buf, w.len, &o, &a), 0);
	/* a bad scope is refused and leaves nothing behind */
	size_t before = w.len;
	spop_put_set_var(&w, (enum spop_scope)5, "v", 1, &vals[0]);
	assert_int_equal(w.err, SPOP_E_ARG);
	assert_int_equal(w.len, before);
}

/* docs/spop.md §9: AGENT-DISCONNECT(0, "normal"). */
static void test_disconnect_bytes(void **state)
{
	(void)state;
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x25, 0x66, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x0b, 's', 't', 'a', 't', 'u', 's', '-', 'c', 'o', 'd', 'e', 0x03, 0x00,
		0x07, 'm', 'e', 's', 's', 'a', 'g', 'e', 0x08, 0x06, 'n', 'o', 'r', 'm', 'a', 'l',
	};
	uint8_t buf[128];
	spop_wbuf w;
	spop_wbuf_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_agent_disconnect_encode(&w, 0, NULL), 0);
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	spop_frame f;
	spop_disconnect d;
	assert_int_equal(spop_frame_decode(buf + 4, w.len - 4, &f), 0);
	assert_int_equal(spop_disconnect_decode(f.payload.ptr, f.payload.len, &d), 0);
	assert_int_equal(d.status, 0);
	assert_int_equal(d.message.len, 6);

	/* a long message is cut at 255 bytes (HAProxy 2.6 refuses longer ones) */
	char longmsg[400];
	memset(longmsg, 'x', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = 0;
	uint8_t big[512];
	spop_wbuf_init(&w, big, sizeof(big));
	assert_int_equal(spop_agent_disconnect_encode(&w, 3, longmsg), 0);
	assert_int_equal(spop_frame_decode(big + 4, w.len - 4, &f), 0);
	assert_int_equal(spop_disconnect_decode(f.payload.ptr, f.payload.len, &d), 0);
	assert_int_equal(d.status, 3);
	assert_int_equal(d.message.len, 255);
}

static void test_strerror_and_status(void **state)
{
	(void)state;
	for (int e = 0; e >= -9; e--)
		assert_string_not_equal(spop_strerror(e), "unknown error");
	assert_string_equal(spop_strerror(-100), "unknown error");
	assert_string_equal(spop_status_str(3), "frame is too big");
	assert_int_equal(spop_status_from_err(SPOP_E_TOO_BIG), 3);
	assert_int_equal(spop_status_from_err(SPOP_E_INVALID), 4);
	assert_string_equal(spop_status_str(1000), "an unknown error occurred");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_exact),
		cmocka_unit_test(test_varint_ranges),
		cmocka_unit_test(test_varint_bad),
		cmocka_unit_test(test_types_roundtrip),
		cmocka_unit_test(test_value_encode_rejects),
		cmocka_unit_test(test_values_bad),
		cmocka_unit_test(test_hello_healthcheck_capture),
		cmocka_unit_test(test_hello_table),
		cmocka_unit_test(test_agent_hello_bytes),
		cmocka_unit_test(test_notify_capture),
		cmocka_unit_test(test_msgs_bad),
		cmocka_unit_test(test_ack_example_bytes),
		cmocka_unit_test(test_action_every_scope_and_type),
		cmocka_unit_test(test_disconnect_bytes),
		cmocka_unit_test(test_strerror_and_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
