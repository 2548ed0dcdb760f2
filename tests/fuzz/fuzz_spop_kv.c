/*
 * fuzz_spop_kv.c — KV lists and the HAPROXY-HELLO built on them: spop_kv_next() walked to the end, then
 * spop_hello_decode() and spop_hello_check(). A HELLO that passes the check must yield a usable frame size
 * (256 … our cap), and the AGENT-HELLO we would answer must encode and decode as a KV list.
 */
#include "fuzz_spop.h"

#define OUR_MAX 65536u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = fuzz_spop_copy(data, size);
	if (!p)
		return 0;
	size_t off = 0, prev = 0;
	spop_slice k;
	spop_value v;
	int r;
	while ((r = spop_kv_next(p, size, &off, &k, &v)) == 1) {
		if (off <= prev || off > size) /* every item consumes bytes and stays inside */
			abort();
		prev = off;
		fuzz_spop_value_roundtrip(&v);
	}
	if (r == 0 && off != size)
		abort();

	spop_hello h;
	if (spop_hello_decode(p, size, &h) == 0) {
		uint32_t fs;
		unsigned st;
		if (spop_hello_check(&h, OUR_MAX, &fs, &st) == 0) {
			if (fs > OUR_MAX || fs < SPOP_MIN_FRAME_SIZE || fs > h.max_frame_size || st != SPOP_ST_NORMAL)
				abort();
			uint8_t buf[256];
			spop_wbuf w;
			spop_wbuf_init(&w, buf, sizeof(buf));
			spop_frame f;
			if (spop_agent_hello_encode(&w, fs) != 0 || spop_frame_decode(buf + 4, w.len - 4, &f) != 0)
				abort();
			spop_hello back;
			if (spop_hello_decode(f.payload.ptr, f.payload.len, &back) != 0 || back.max_frame_size != fs)
				abort();
		} else if (st == SPOP_ST_NORMAL) {
			abort(); /* a refusal always names its status */
		}
	}
	free(p);
	return 0;
}
