/*
 * fuzz_spop.h — helpers shared by the thin per-decoder SPOP fuzz targets (fuzz_spop_*.c). Header-only so that
 * nothing is added to tests/fuzz/util_*.c, which every fuzzer of the project links.
 *
 * fuzz_spop_copy() gives each decoder an exact-size heap copy of the input, so ASan reports a read of even one
 * byte past len (libFuzzer's own buffer may have slack behind it). The caller frees it.
 */
#ifndef FUZZ_SPOP_H
#define FUZZ_SPOP_H

#include <stdlib.h>
#include <string.h>

#include "spop_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline uint8_t *fuzz_spop_copy(const uint8_t *data, size_t size)
{
	uint8_t *p = malloc(size ? size : 1);
	if (p && size)
		memcpy(p, data, size);
	return p;
}

/* Two decoded values are the same value (slices compared by content). */
static inline int fuzz_spop_value_eq(const spop_value *a, const spop_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case SPOP_T_NULL: return 1;
	case SPOP_T_BOOL: return a->u.b == b->u.b;
	case SPOP_T_INT32:
	case SPOP_T_INT64: return a->u.i == b->u.i;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64: return a->u.u == b->u.u;
	case SPOP_T_IPV4: return memcmp(a->u.ip4, b->u.ip4, 4) == 0;
	case SPOP_T_IPV6: return memcmp(a->u.ip6, b->u.ip6, 16) == 0;
	case SPOP_T_STR:
	case SPOP_T_BIN:
		return a->u.s.len == b->u.s.len && (a->u.s.len == 0 || memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0);
	}
	return 0;
}

/* Re-encodes a decoded value and decodes it again: it must come back equal. INT32/UINT32 values outside
 * their 32-bit range are legal on the wire (HAProxy decodes every int type as 64 bits) but our encoder
 * refuses them, so those are skipped. */
static inline void fuzz_spop_value_roundtrip(const spop_value *v)
{
	static uint8_t buf[16 + 65536];
	spop_wbuf w;
	spop_wbuf_init(&w, buf, sizeof(buf));
	spop_put_value(&w, v);
	if (w.err == SPOP_E_ARG && (v->type == SPOP_T_INT32 || v->type == SPOP_T_UINT32))
		return;
	if (w.err)
		abort();
	spop_value d;
	if (spop_value_decode(buf, w.len, &d) != (int)w.len || !fuzz_spop_value_eq(&d, v))
		abort();
}

#endif /* FUZZ_SPOP_H */
