/*
 * fuzz_spop_frame.c — the frame envelope: spop_frame_decode() on a frame body (the bytes after the 4-byte
 * length). The payload must be the tail of the input; a frame begun and ended with the same ids must decode
 * to them.
 */
#include "fuzz_spop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = fuzz_spop_copy(data, size);
	if (!p)
		return 0;
	spop_frame f;
	if (spop_frame_decode(p, size, &f) == 0) {
		if (f.payload.len > size || f.payload.ptr + f.payload.len != p + size)
			abort();
		uint8_t buf[4 + 5 + 2 * SPOP_VARINT_MAX];
		spop_wbuf w;
		spop_wbuf_init(&w, buf, sizeof(buf));
		size_t o = spop_frame_begin(&w, f.type, f.stream_id, f.frame_id);
		spop_frame g;
		if (spop_frame_end(&w, o) != 0 || spop_frame_decode(buf + 4, w.len - 4, &g) != 0 || g.type != f.type ||
		    g.stream_id != f.stream_id || g.frame_id != f.frame_id || g.flags != SPOP_FLAG_FIN ||
		    g.payload.len != 0)
			abort();
	}
	free(p);
	return 0;
}
