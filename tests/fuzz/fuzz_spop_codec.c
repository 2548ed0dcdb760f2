/*
 * fuzz_spop_codec.c — every SPOP decoder on arbitrary bytes: the first byte picks the decoder, the rest is its
 * input (copied to an exact-size heap buffer so ASan catches any read past len). Whatever decodes is
 * re-encoded where an encoder exists and must decode to the same value.
 */
#include <stdlib.h>
#include <string.h>

#include "spop_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value_roundtrip(const spop_value *v)
{
	uint8_t buf[64 + 65536];
	spop_wbuf w;
	spop_wbuf_init(&w, buf, sizeof(buf));
	spop_put_value(&w, v);
	if (w.err)
		return; /* INT32 values out of range are legal on the wire but not re-encodable as INT32 */
	spop_value d;
	if (spop_value_decode(buf, w.len, &d) != (int)w.len || d.type != v->type)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	size_t len = size - 1;
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		return 0;
	memcpy(p, data + 1, len);
	switch (sel % 8) {
	case 0: {
		uint64_t v;
		int r = spop_varint_decode(p, len, &v);
		if (r > 0) {
			uint8_t out[10];
			size_t n = spop_varint_encode(v, out);
			uint64_t back;
			if (spop_varint_decode(out, n, &back) != (int)n || back != v)
				abort();
		}
		break;
	}
	case 1: {
		spop_value v;
		if (spop_value_decode(p, len, &v) > 0)
			check_value_roundtrip(&v);
		break;
	}
	case 2: {
		size_t off = 0;
		spop_slice k;
		spop_value v;
		while (spop_kv_next(p, len, &off, &k, &v) == 1)
			if (off > len)
				abort();
		break;
	}
	case 3: {
		spop_hello h;
		if (spop_hello_decode(p, len, &h) == 0) {
			uint32_t fs;
			unsigned st;
			if (spop_hello_check(&h, 65536, &fs, &st) == 0 && (fs > 65536 || fs < 256))
				abort();
		}
		break;
	}
	case 4: {
		spop_disconnect d;
		(void)spop_disconnect_decode(p, len, &d);
		break;
	}
	case 5: {
		size_t off = 0;
		spop_msg m;
		while (spop_msg_next(p, len, &off, &m) == 1) {
			spop_arg a;
			int r;
			while ((r = spop_msg_next_arg(&m, &a)) == 1)
				;
			if (r < 0) /* validated by spop_msg_next: walking cannot fail */
				abort();
		}
		break;
	}
	case 6: {
		size_t off = 0;
		spop_action a;
		while (spop_action_next(p, len, &off, &a) == 1)
			;
		break;
	}
	case 7: {
		spop_frame f;
		if (spop_frame_decode(p, len, &f) == 0 && f.payload.len > len)
			abort();
		break;
	}
	}
	free(p);
	return 0;
}
