/*
 * kx.c — the shared layer; see kx.h.
 */
#include "kx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


void kx_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int64_t kx_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t kx_mono_ms(void)
{
	return kx_mono_ns() / 1000000;
}

size_t kx_ctl_find(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (kx_is_ctl(p[i]))
			break;
	return i;
}

size_t kx_utf8_seq(const uint8_t *p, size_t len)
{
	uint8_t c = p[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void kx_buf_init(kx_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

/* Makes room for n more bytes plus the NUL; doubles, but never allocates past max + 1. */
static int grow(kx_buf *b, size_t n)
{
	size_t need, ncap;
	char *d;

	if (b->failed)
		return KX_E_NOMEM;
	if (n > b->max - b->len) {
		b->failed = true;
		return KX_E_TOO_BIG;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	d = realloc(b->data, ncap);
	if (d == NULL) {
		b->failed = true;
		return KX_E_NOMEM;
	}
	b->data = d;
	b->cap = ncap;
	return 0;
}

int kx_buf_add(kx_buf *b, const void *p, size_t n)
{
	int rc = grow(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int kx_buf_addf(kx_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	if (b->failed)
		return KX_E_NOMEM;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return KX_E_NOMEM;
	}
	rc = grow(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void kx_buf_reset(kx_buf *b)
{
	b->len = 0;
	b->failed = false;
	if (b->data)
		b->data[0] = '\0';
}

char *kx_buf_steal(kx_buf *b, size_t *len)
{
	char *d = b->data;

	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
	return d;
}

void kx_buf_free(kx_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
