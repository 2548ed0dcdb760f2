/*
 * fuzz_spop_conn.c — arbitrary byte streams into a whole connection. The input is cut into chunks (the first
 * byte of each chunk gives its length) to exercise partial frames; the handler reads every argument, adds
 * actions and sometimes defers, completing later in a different order. The output must always be a sequence
 * of whole, well-formed frames with FIN.
 */
#include <stdlib.h>
#include <string.h>

#include "spop_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct st {
	spoa_request *deferred[512];
	size_t n;
	unsigned calls;
} st;

static int handler(spoa_request *req, void *ud)
{
	st *s = ud;
	spop_msg m;
	int r;
	while ((r = spoa_request_next_msg(req, &m)) == 1) {
		spop_arg a;
		while (spop_msg_next_arg(&m, &a) == 1)
			if (a.name.len < 64)
				spoa_ack_set(req, SPOP_SCOPE_TXN, (const char *)a.name.ptr, a.name.len, &a.value);
	}
	if (r < 0)
		abort(); /* the library validated the NOTIFY before calling us */
	if ((s->calls++ % 3) == 1 && s->n < 512) {
		s->deferred[s->n++] = req;
		return SPOA_DEFERRED;
	}
	return SPOA_DONE;
}

static void check_output(spop_conn *c)
{
	const uint8_t *p;
	size_t len;
	spop_conn_output(c, &p, &len);
	size_t off = 0;
	while (off < len) {
		if (len - off < 4)
			abort();
		uint32_t fl = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 | p[off + 3];
		if (fl > len - off - 4 || fl > 65536)
			abort();
		spop_frame f;
		if (spop_frame_decode(p + off + 4, fl, &f) < 0 || f.flags != SPOP_FLAG_FIN)
			abort();
		if (f.type == SPOP_FRAME_ACK) {
			size_t o = 0;
			spop_action a;
			int r, n = 0;
			while ((r = spop_action_next(f.payload.ptr, f.payload.len, &o, &a)) == 1)
				n++;
			if (r < 0 || n == 0)
				abort();
		}
		off += 4 + fl;
	}
	spop_conn_consume(c, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	st s;
	memset(&s, 0, sizeof(s));
	spop_conn_config cfg = { .max_frame_size = 4096, .max_inflight = 8, .handler = handler, .handler_userdata = &s };
	spop_conn *c;
	if (spop_conn_create(&cfg, &c) < 0)
		return 0;
	size_t off = 0, done;
	while (off < size) {
		size_t chunk = data[off++];
		if (chunk == 0)
			chunk = 1;
		if (chunk > size - off)
			chunk = size - off;
		uint8_t *dst;
		size_t room;
		spop_conn_input(c, &dst, &room);
		if (room == 0) {
			if (s.n > 0) { /* complete the newest first: ACKs out of arrival order */
				spop_conn_complete(c, s.deferred[--s.n]);
				spop_conn_process(c);
				check_output(c);
				off--; /* retry this chunk */
				continue;
			}
			break;
		}
		if (chunk > room)
			chunk = room;
		memcpy(dst, data + off, chunk);
		spop_conn_commit(c, chunk);
		off += chunk;
		spop_conn_process(c);
		check_output(c);
		if (spop_conn_done(c))
			break;
	}
	/* some complete while the connection is open, the rest after close */
	done = 0;
	size_t half = s.n / 2;
	for (; done < half; done++) {
		spop_conn_complete(c, s.deferred[done]);
		spop_conn_process(c);
		check_output(c);
	}
	spop_conn_eof(c);
	if (done == s.n) {
		spop_conn_close(c);
		return 0;
	}
	spop_conn_close(c);
	for (; done < s.n; done++)
		spop_conn_complete(c, s.deferred[done]);
	return 0;
}
