/* log.c — JSON-lines logger; see log.h for the line format. */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kx.h"

static atomic_int log_fd = 2;
static atomic_int log_lvl = LOG_LEVEL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(int fd, enum log_level level)
{
	atomic_store(&log_fd, fd);
	atomic_store(&log_lvl, (int)level);
}

void log_set_level(enum log_level level)
{
	atomic_store(&log_lvl, (int)level);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_lvl, memory_order_relaxed);
}

int log_level_parse(const char *s, enum log_level *out)
{
	if (s == NULL)
		return -1;
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level > LOG_LEVEL_DEBUG)
		return "?";
	return level_names[level];
}

size_t log_json_escape(char *dst, size_t cap, const uint8_t *p, size_t len, bool *cut)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i = 0;

	while (i < len) {
		uint8_t c = p[i];
		char esc[6];
		size_t elen = 0, seq = 0;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			elen = 2;
		} else if (c == '\n') {
			esc[0] = '\\';
			esc[1] = 'n';
			elen = 2;
		} else if (c == '\t') {
			esc[0] = '\\';
			esc[1] = 't';
			elen = 2;
		} else if (c == '\r') {
			esc[0] = '\\';
			esc[1] = 'r';
			elen = 2;
		} else if (kx_is_ctl(c) || (c >= 0x80 && (seq = kx_utf8_seq(p + i, len - i)) == 0)) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		if (elen > 0) {
			if (cap - o < elen)
				goto full;
			memcpy(dst + o, esc, elen);
			o += elen;
			i++;
			continue;
		}
		if (seq == 0)
			seq = 1;
		if (cap - o < seq)
			goto full;
		memcpy(dst + o, p + i, seq);
		o += seq;
		i += seq;
	}
	return o;
full:
	if (cut != NULL)
		*cut = true;
	return o;
}

/* Room kept at the end of every line for ',"truncated":true}\n'. */
#define LOG_TAIL 24

static void put_raw(log_line *l, const char *s, size_t n)
{
	if (LOG_LINE_MAX - LOG_TAIL - l->len < n) {
		l->truncated = true;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void put_key(log_line *l, const char *key)
{
	size_t klen = strlen(key);

	/* key and the quotes/colon/comma must fit whole, else the line would be invalid JSON */
	if (LOG_LINE_MAX - LOG_TAIL - l->len < klen + 8) {
		l->truncated = true;
		return;
	}
	put_raw(l, ",\"", 2);
	l->len += log_json_escape(l->buf + l->len, LOG_LINE_MAX - LOG_TAIL - l->len, (const uint8_t *)key, klen,
				  &l->truncated);
	put_raw(l, "\":", 2);
}

static bool room_for_field(log_line *l, const char *key, size_t min_val)
{
	return l->on && LOG_LINE_MAX - LOG_TAIL - l->len >= strlen(key) + 8 + min_val;
}

void log_begin(log_line *l, enum log_level level, const char *event)
{
	struct timespec ts;
	struct tm tm;
	char tbuf[64];
	int n;

	l->on = log_enabled(level);
	l->truncated = false;
	l->len = 0;
	if (!l->on)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(tbuf, sizeof(tbuf), "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\"",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, log_level_name(level));
	if (n > 0 && (size_t)n < sizeof(tbuf))
		put_raw(l, tbuf, (size_t)n);
	log_str(l, "event", event);
}

void log_strn(log_line *l, const char *key, const uint8_t *val, size_t len)
{
	if (!room_for_field(l, key, 2)) {
		if (l->on)
			l->truncated = true;
		return;
	}
	put_key(l, key);
	put_raw(l, "\"", 1);
	/* keep one byte for the closing quote */
	l->len += log_json_escape(l->buf + l->len, LOG_LINE_MAX - LOG_TAIL - 1 - l->len, val, len, &l->truncated);
	put_raw(l, "\"", 1);
}

void log_str(log_line *l, const char *key, const char *val)
{
	if (val == NULL) {
		if (!room_for_field(l, key, 4)) {
			if (l->on)
				l->truncated = true;
			return;
		}
		put_key(l, key);
		put_raw(l, "null", 4);
		return;
	}
	log_strn(l, key, (const uint8_t *)val, strlen(val));
}

/* A number's digits as the field's raw JSON value (when the line has room for it). */
static void put_number(log_line *l, const char *key, const char *b, int n)
{
	if (!room_for_field(l, key, (size_t)n)) {
		if (l->on)
			l->truncated = true;
		return;
	}
	put_key(l, key);
	put_raw(l, b, (size_t)n);
}

void log_int(log_line *l, const char *key, int64_t v)
{
	char b[32];

	put_number(l, key, b, snprintf(b, sizeof(b), "%lld", (long long)v));
}

void log_uint(log_line *l, const char *key, uint64_t v)
{
	char b[32];

	put_number(l, key, b, snprintf(b, sizeof(b), "%llu", (unsigned long long)v));
}

void log_bool(log_line *l, const char *key, bool v)
{
	if (!room_for_field(l, key, 5)) {
		if (l->on)
			l->truncated = true;
		return;
	}
	put_key(l, key);
	put_raw(l, v ? "true" : "false", v ? 4 : 5);
}

void log_end(log_line *l)
{
	static const char tail[] = ",\"truncated\":true";
	int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
	size_t off = 0;

	if (!l->on)
		return;
	/* LOG_TAIL bytes were kept free for this */
	if (l->truncated) {
		memcpy(l->buf + l->len, tail, sizeof(tail) - 1);
		l->len += sizeof(tail) - 1;
	}
	l->buf[l->len++] = '}';
	l->buf[l->len++] = '\n';
	while (off < l->len) {
		ssize_t n = write(fd, l->buf + off, l->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* nowhere to report a failing log fd */
		off += (size_t)n;
	}
	l->on = false;
}

void log_msg(enum log_level level, const char *event, const char *msg)
{
	log_line l;

	log_begin(&l, level, event);
	if (msg != NULL)
		log_str(&l, "msg", msg);
	log_end(&l);
}
