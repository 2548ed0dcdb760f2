/*
 * log.h — structured logs: one JSON object per line on one file descriptor (stderr by default).
 *
 * Owns: the process-wide log level and output fd. A line is built in a caller-owned log_line (stack, fixed
 * size, no allocation) and written with one write(2), so lines from different threads never interleave.
 * Any thread may log at any time after log_init(); before it, lines go to fd 2 at level info.
 *
 * Line format (every line; fields after "event" depend on the event):
 *   {"ts":"2026-01-02T03:04:05.678Z","level":"info","event":"start","msg":"…", …}
 *   ts      UTC, RFC 3339 with milliseconds
 *   level   "error" | "warn" | "info" | "debug"
 *   event   a stable name: start, config, listening, issuer, keys, satoken, reject, allow, httpd, spoa, stop …
 *   msg     optional human text
 *   others  event-specific: reason, detail, user, client_ip, status, path, error …
 * Strings are JSON-escaped (control bytes as \u00XX, invalid UTF-8 bytes as \u00XX of the byte), values that do
 * not fit are cut and the line gets "truncated":true. Never pass a token or secret to any of these functions.
 */
#ifndef KOS_LOG_H
#define KOS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN = 1, LOG_LEVEL_INFO = 2, LOG_LEVEL_DEBUG = 3 };

#define LOG_LINE_MAX 2048

typedef struct log_line {
	bool on;        /* false when the level is filtered out: every call below is then a no-op */
	bool truncated;
	size_t len;
	char buf[LOG_LINE_MAX];
} log_line;

/* Sets the output fd and level. Call once from main before starting threads. */
void log_init(int fd, enum log_level level);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
/* "error", "warn" (or "warning"), "info", "debug" (case-insensitive) → 0, else -1 and *out untouched. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

/* Builds one line. log_begin() writes ts/level/event; the field calls append; log_end() writes the line. */
void log_begin(log_line *l, enum log_level level, const char *event);
void log_str(log_line *l, const char *key, const char *val); /* val NULL → JSON null */
void log_strn(log_line *l, const char *key, const uint8_t *val, size_t len);
void log_int(log_line *l, const char *key, int64_t v);
void log_uint(log_line *l, const char *key, uint64_t v);
void log_bool(log_line *l, const char *key, bool v);
void log_end(log_line *l);

/* One-shot: {"event":event,"msg":msg}. */
void log_msg(enum log_level level, const char *event, const char *msg);

/* JSON string escaping of p[0..len) into dst (no quotes added). Returns the bytes written; stops early (never
 * splitting an escape) when dst is full and sets *cut if cut != NULL. dst is not NUL-terminated. */
size_t log_json_escape(char *dst, size_t cap, const uint8_t *p, size_t len, bool *cut);

#endif
