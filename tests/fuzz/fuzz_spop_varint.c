/*
 * fuzz_spop_varint.c — spop_varint_decode() on arbitrary bytes. A decoded value must re-encode to a varint of
 * spop_varint_size() bytes that decodes back to the same value; a consumed count is never beyond the input or
 * the 10-byte cap.
 */
#include "fuzz_spop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = fuzz_spop_copy(data, size);
	if (!p)
		return 0;
	uint64_t v;
	int r = spop_varint_decode(p, size, &v);
	if (r > 0) {
		if ((size_t)r > size || r > SPOP_VARINT_MAX)
			abort();
		uint8_t out[SPOP_VARINT_MAX];
		size_t n = spop_varint_encode(v, out);
		uint64_t back;
		if (n != spop_varint_size(v) || n > (size_t)r || spop_varint_decode(out, n, &back) != (int)n ||
		    back != v)
			abort();
	} else if (r != SPOP_E_TRUNCATED && r != SPOP_E_INVALID) {
		abort();
	}
	free(p);
	return 0;
}
