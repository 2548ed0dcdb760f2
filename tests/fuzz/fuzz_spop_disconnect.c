/*
 * fuzz_spop_disconnect.c — DISCONNECT payloads: spop_disconnect_decode() on arbitrary bytes. What decodes is
 * sent back through spop_agent_disconnect_encode() (which truncates messages to 255 bytes) and must decode
 * to the same status and message prefix.
 */
#include "fuzz_spop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = fuzz_spop_copy(data, size);
	if (!p)
		return 0;
	spop_disconnect d;
	if (spop_disconnect_decode(p, size, &d) == 0) {
		if (d.message.len > size)
			abort();
		char msg[256];
		size_t n = d.message.len;
		if (n && memchr(d.message.ptr, 0, n)) /* the encoder takes a C string */
			n = (size_t)((const uint8_t *)memchr(d.message.ptr, 0, n) - d.message.ptr);
		if (n > 255)
			n = 255;
		if (n)
			memcpy(msg, d.message.ptr, n);
		msg[n] = 0;
		uint8_t buf[512];
		spop_wbuf w;
		spop_wbuf_init(&w, buf, sizeof(buf));
		spop_frame f;
		spop_disconnect back;
		if (spop_agent_disconnect_encode(&w, d.status, msg) != 0 ||
		    spop_frame_decode(buf + 4, w.len - 4, &f) != 0 || f.type != SPOP_FRAME_AGENT_DISCONNECT ||
		    spop_disconnect_decode(f.payload.ptr, f.payload.len, &back) != 0 || back.status != d.status ||
		    back.message.len != n || (n && memcmp(back.message.ptr, msg, n) != 0))
			abort();
	}
	free(p);
	return 0;
}
