/*
 * kx.h — the shared layer of the agent (after curl's curlx): the small pieces every module needs once, not
 * once per module. Error text, the text checks (control bytes, UTF-8) and the capped growable buffer.
 *
 * Owns: nothing but a kx_buf's heap block, which kx_buf_free() releases (a kx_buf is the caller's struct;
 * kx_buf_steal() hands the block over). Every function here is safe on any thread; none blocks.
 */
#ifndef KOS_KX_H
#define KOS_KX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- error text ---- */

/* Writes one printf-formatted line into err[0..errlen). err NULL or errlen 0: nothing. The modules' one way of
 * filling their (err, errlen) out-parameters. */
void kx_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- time ---- */

/* CLOCK_MONOTONIC in milliseconds: deadlines and ages that wall-clock steps must not move. */
int64_t kx_mono_ms(void);
/* The same clock in nanoseconds (latencies). */
int64_t kx_mono_ns(void);

/* ---- text checks ---- */

/* A C0 control byte or DEL: what no identity value, header value or log field may carry as is. */
static inline bool kx_is_ctl(uint8_t c)
{
	return c < 0x20 || c == 0x7f;
}
/* Index of the first control byte (kx_is_ctl) in p[0..len), or len when there is none. */
size_t kx_ctl_find(const uint8_t *p, size_t len);
/* Length (1..4) of the valid UTF-8 sequence at p[0..len), 1 for ASCII, or 0 when the bytes there are not one:
 * overlongs, surrogates and code points past U+10FFFF are refused (RFC 3629), as Go's utf8.Valid does.
 * len must be at least 1. */
size_t kx_utf8_seq(const uint8_t *p, size_t len);

/* ---- capped growable buffer ---- */

/* Bytes with a hard maximum, after curl's dynbuf: an append that would pass max fails (and sticks), so a peer
 * or a runaway document cannot grow it without bound. Zero-initialised with kx_buf_init(); data stays
 * NUL-terminated after every successful append (the NUL is not counted in len and not in max). */
typedef struct kx_buf {
	char *data;   /* NULL until the first append */
	size_t len;   /* bytes held */
	size_t cap;   /* bytes allocated (len + 1 <= cap once data != NULL) */
	size_t max;   /* hard cap on len */
	bool failed;  /* an append failed (over max or out of memory): the content is incomplete */
} kx_buf;

enum kx_err {
	KX_OK = 0,
	KX_E_TOO_BIG = -1, /* the append would pass max */
	KX_E_NOMEM = -2,
};

void kx_buf_init(kx_buf *b, size_t max);
/* Appends p[0..n). 0, KX_E_TOO_BIG or KX_E_NOMEM; after a failure every later append fails too. */
int kx_buf_add(kx_buf *b, const void *p, size_t n);
int kx_buf_addf(kx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties the buffer (keeps the block and max; clears failed). */
void kx_buf_reset(kx_buf *b);
/* Hands over the block (NULL when nothing was appended); the buffer is empty afterwards. */
char *kx_buf_steal(kx_buf *b, size_t *len);
void kx_buf_free(kx_buf *b);

#endif
