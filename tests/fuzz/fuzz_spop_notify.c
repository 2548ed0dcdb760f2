/*
 * fuzz_spop_notify.c — NOTIFY payloads: spop_msg_next() over every message, then each message's arguments
 * with spop_msg_next_arg() and spop_msg_find_arg(). spop_msg_next() validates a message's arguments, so
 * walking them afterwards must never fail, and every slice must lie inside the input.
 */
#include "fuzz_spop.h"

static int inside(const uint8_t *p, size_t len, spop_slice s)
{
	return s.ptr >= p && (size_t)(s.ptr - p) <= len && s.len <= len - (size_t)(s.ptr - p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = fuzz_spop_copy(data, size);
	if (!p)
		return 0;
	size_t off = 0;
	spop_msg m;
	int r;
	while ((r = spop_msg_next(p, size, &off, &m)) == 1) {
		if (!inside(p, size, m.name) || !inside(p, size, m.args) || off > size)
			abort();
		spop_arg a, first = { 0 };
		unsigned n = 0;
		while ((r = spop_msg_next_arg(&m, &a)) == 1) {
			if (!inside(p, size, a.name))
				abort();
			if (n++ == 0)
				first = a;
		}
		if (r < 0 || n != m.nargs)
			abort();
		/* find_arg by the first argument's name (when it has no NUL) must find an argument of that name */
		if (n > 0 && first.name.len < 64 && !memchr(first.name.ptr, 0, first.name.len)) {
			char name[64];
			memcpy(name, first.name.ptr, first.name.len);
			name[first.name.len] = 0;
			spop_arg f;
			if (spop_msg_find_arg(&m, name, &f) != 1 || f.name.len != first.name.len)
				abort();
		}
	}
	free(p);
	return 0;
}
