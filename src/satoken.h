/*
 * satoken.h — the service-account token HAProxy sends to the API server, kept current as kubelet rotates it.
 *
 * Owns: the token file's path and the current value, published as an immutable, reference-counted
 * satoken_val holding the full header value "Bearer <token>". satoken_reload() runs on the main thread (a
 * one-second timer in main.c): it stat()s the path and reads the file only when its identity (device, inode,
 * size, mtime) changed — kubelet swaps a "..data" symlink atomically, which changes the inode behind the path.
 * Worker threads call satoken_acquire()/satoken_val_release() and never touch the file. A failed re-read keeps
 * the last good value (the old token stays valid for a while; refusing all traffic would be worse) and is
 * counted and logged. Never logs the token.
 *
 * HAProxy keeps the value between rotations (conf/CONTRACT.md, "The service-account token"): each value has a
 * version, the first SATOKEN_VER_LEN hex digits of SHA-256 of the header value — derived from the content, so a
 * restarted agent reading the same file gives the same version and a rotated file a different one — and a
 * process-scope form "<version>|Bearer <token>" that the agent hands to HAProxy only when HAProxy's copy is
 * missing or has another version.
 */
#ifndef KOS_SATOKEN_H
#define KOS_SATOKEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SATOKEN_MAX_BYTES 16384 /* projected tokens are ~1 KiB; a bigger file is a mistake */

enum satoken_err {
	SATOKEN_OK = 0,
	SATOKEN_E_READ = -1,    /* open/stat/read failed (errno kept) */
	SATOKEN_E_EMPTY = -2,   /* nothing but whitespace */
	SATOKEN_E_TOO_BIG = -3,
	SATOKEN_E_INVALID = -4, /* bytes that cannot go into an HTTP header (controls, spaces inside, non-ASCII) */
	SATOKEN_E_NOMEM = -5,
};
const char *satoken_strerror(int err);

#define SATOKEN_VER_LEN 16

typedef struct satoken_val {
	atomic_uint refs;
	const char *str;   /* "Bearer <token>", NUL-terminated (points into buf) */
	size_t len;        /* of str, without the NUL */
	const char *proc;  /* "<ver>|Bearer <token>": what HAProxy keeps in proc.kos.sa (points into buf) */
	size_t proc_len;
	char ver[SATOKEN_VER_LEN + 1]; /* hex, NUL-terminated */
	char buf[];
} satoken_val;

typedef struct satoken satoken;

/* Copies path; reads nothing yet. */
int satoken_create(const char *path, satoken **out);
/* Main thread. Re-reads the file if it changed (always on the first call). *changed (may be NULL) is set to
 * true when a new value was published. Returns 0, or a negative satoken_err when the file could not be used;
 * the previous value, if any, stays published. */
int satoken_reload(satoken *st, bool *changed);
/* Any thread: the current value with a reference, or NULL if none was ever loaded. Takes a mutex for the
 * pointer copy and the increment only (no allocation, no I/O). */
satoken_val *satoken_acquire(satoken *st);
void satoken_val_release(satoken_val *v); /* NULL is fine */
bool satoken_loaded(satoken *st);
/* Successful loads (including the first) and failed attempts, for /metrics. */
void satoken_counts(satoken *st, uint64_t *loads, uint64_t *failures);
void satoken_destroy(satoken *st);

/* Validates file contents p[0..len): trims trailing (and leading) ASCII whitespace; on success *off and *tlen give
 * the token inside p. Exposed for tests. */
int satoken_parse(const uint8_t *p, size_t len, size_t *off, size_t *tlen);

#endif
