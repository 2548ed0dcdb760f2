/*
 * fuzz_spop_value.c — typed data and raw strings: spop_value_decode() and spop_rawstr_decode() on arbitrary
 * bytes. Whatever decodes must lie inside the input and survive an encode/decode round trip.
 */
#include "fuzz_spop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = fuzz_spop_copy(data, size);
	if (!p)
		return 0;
	spop_value v;
	int r = spop_value_decode(p, size, &v);
	if (r > 0) {
		if ((size_t)r > size)
			abort();
		if ((v.type == SPOP_T_STR || v.type == SPOP_T_BIN) &&
		    (v.u.s.ptr < p || (size_t)(v.u.s.ptr - p) > size || v.u.s.len > size - (size_t)(v.u.s.ptr - p)))
			abort();
		fuzz_spop_value_roundtrip(&v);
	}
	spop_slice s;
	r = spop_rawstr_decode(p, size, &s);
	if (r > 0 && ((size_t)r > size || s.len > size))
		abort();
	free(p);
	return 0;
}
