/*
 * fuzz_kosmsg.c — kosmsg_read(): the kos-auth arguments of a NOTIFY into kosmsg_args. Input: one byte with the
 * argument count, then the encoded arguments (as spop_msg.args holds them). Invariants: -1 exactly when
 * bad_msg is set; every slice it keeps (auth, xk, imh, xff<n>) lies inside the input (or is the empty string
 * for an empty xff entry); src_family is 0, 4 or 6; an accepted xk has exactly KOSMSG_XK_SLOTS slots.
 */
#include <stdlib.h>
#include <string.h>

#include "kosmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const uint8_t *p, size_t len, const uint8_t *base, size_t size)
{
	return p >= base && len <= size && (size_t)(p - base) <= size - len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kosmsg_args in;
	spop_msg m;
	uint8_t *p;
	size_t n;
	int rc;

	if (size < 1)
		return 0;
	n = size - 1;
	p = malloc(n ? n : 1); /* exact size: ASan sees a read of one byte past the arguments */
	if (p == NULL)
		return 0;
	memcpy(p, data + 1, n);
	memset(&m, 0, sizeof(m));
	m.name = (spop_slice){(const uint8_t *)"kos-auth", 8};
	m.nargs = data[0];
	m.args = (spop_slice){p, n};
	memset(&in, 0, sizeof(in));
	rc = kosmsg_read(&m, &in);
	if ((rc == -1) != in.bad_msg || (rc != 0 && rc != -1))
		abort();
	if (in.src_family != 0 && in.src_family != 4 && in.src_family != 6)
		abort();
	if (in.have_auth && !inside(in.auth, in.auth_len, p, n))
		abort();
	if (in.imh != NULL && !inside(in.imh, in.imh_len, p, n))
		abort();
	if (in.xk != NULL) {
		unsigned bars = 0;

		if (!inside(in.xk, in.xk_len, p, n))
			abort();
		for (size_t i = 0; i < in.xk_len; i++)
			bars += in.xk[i] == '|';
		if (rc == 0 && bars != KOSMSG_XK_SLOTS - 1)
			abort();
	}
	for (size_t i = 0; i < CADDR_MAX_HOPS; i++) {
		const caddr_slice *x = &in.xff[i];

		if (x->p != NULL && !(x->len == 0 ? 1 : inside(x->p, x->len, p, n)))
			abort();
	}
	free(p);
	return 0;
}
