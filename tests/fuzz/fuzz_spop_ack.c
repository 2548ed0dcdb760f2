/*
 * fuzz_spop_ack.c — ACK payloads: spop_action_next() to the end. Every decoded action is re-encoded with the
 * encoder the agent uses (spop_put_set_var / spop_put_unset_var) and must decode to the same action.
 */
#include "fuzz_spop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = fuzz_spop_copy(data, size);
	if (!p)
		return 0;
	static uint8_t buf[32 + 2 * 65536];
	size_t off = 0;
	spop_action a;
	while (spop_action_next(p, size, &off, &a) == 1) {
		if (off > size || a.scope > SPOP_SCOPE_RES)
			abort();
		spop_wbuf w;
		spop_wbuf_init(&w, buf, sizeof(buf));
		if (a.type == SPOP_ACT_SET_VAR)
			spop_put_set_var(&w, (enum spop_scope)a.scope, a.name.ptr, a.name.len, &a.value);
		else if (a.type == SPOP_ACT_UNSET_VAR)
			spop_put_unset_var(&w, (enum spop_scope)a.scope, a.name.ptr, a.name.len);
		else
			abort();
		if (w.err == SPOP_E_ARG && (a.value.type == SPOP_T_INT32 || a.value.type == SPOP_T_UINT32))
			continue; /* out-of-range 32-bit ints decode but are not re-encodable as such */
		size_t o2 = 0;
		spop_action b;
		if (w.err || spop_action_next(buf, w.len, &o2, &b) != 1 || o2 != w.len || b.type != a.type ||
		    b.scope != a.scope || b.name.len != a.name.len ||
		    (a.name.len && memcmp(b.name.ptr, a.name.ptr, a.name.len) != 0) ||
		    (a.type == SPOP_ACT_SET_VAR && !fuzz_spop_value_eq(&a.value, &b.value)))
			abort();
	}
	free(p);
	return 0;
}
