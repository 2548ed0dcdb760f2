/* test_log.c — JSON escaping and whole lines as written to a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static void test_escape_table(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} t[] = {
		{"plain", 5, "plain"},
		{"a\"b\\c", 5, "a\\\"b\\\\c"},
		{"l1\nl2\r\t", 7, "l1\\nl2\\r\\t"},
		{"\x01\x1f\x7f", 3, "\\u0001\\u001f\\u007f"},
		{"nul\0x", 5, "nul\\u0000x"},
		{"caf\xc3\xa9", 5, "caf\xc3\xa9"},               /* valid UTF-8 passes */
		{"\xe2\x82\xac", 3, "\xe2\x82\xac"},
		{"\xf0\x9f\x94\x91", 4, "\xf0\x9f\x94\x91"},
		{"bad\xc3", 4, "bad\\u00c3"},                   /* truncated sequence */
		{"\xc0\xaf", 2, "\\u00c0\\u00af"},               /* overlong */
		{"\xed\xa0\x80", 3, "\\u00ed\\u00a0\\u0080"},    /* surrogate */
		{"\xff", 1, "\\u00ff"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char out[128];
		bool cut = false;
		size_t n = log_json_escape(out, sizeof(out), (const uint8_t *)t[i].in, t[i].len, &cut);

		if (n != strlen(t[i].out) || memcmp(out, t[i].out, n) != 0)
			fail_msg("case %zu: got \"%.*s\"", i, (int)n, out);
		assert_false(cut);
	}
}

static void test_escape_never_splits(void **state)
{
	char out[5];
	bool cut = false;
	/* "ab" then a 6-byte escape: only "ab" fits */
	size_t n = log_json_escape(out, sizeof(out), (const uint8_t *)"ab\x01", 3, &cut);

	(void)state;
	assert_int_equal(n, 2);
	assert_true(cut);
}

static size_t read_lines(int fd, char *buf, size_t cap)
{
	ssize_t n = read(fd, buf, cap - 1);

	assert_true(n > 0);
	buf[n] = '\0';
	return (size_t)n;
}

static void test_lines(void **state)
{
	int p[2];
	char buf[8192];
	log_line l;
	char big[5000];

	(void)state;
	assert_int_equal(pipe(p), 0);
	log_init(p[1], LOG_LEVEL_INFO);

	log_begin(&l, LOG_LEVEL_INFO, "reject");
	log_str(&l, "reason", "token expired");
	log_str(&l, "user", NULL);
	log_int(&l, "status", -1);
	log_uint(&l, "n", 18446744073709551615ULL);
	log_bool(&l, "ok", false);
	log_end(&l);
	read_lines(p[0], buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "{\"ts\":\"", 7), 0);
	assert_non_null(strstr(buf, "Z\",\"level\":\"info\",\"event\":\"reject\",\"reason\":\"token expired\","
				    "\"user\":null,\"status\":-1,\"n\":18446744073709551615,\"ok\":false}\n"));

	/* filtered out: nothing written at all */
	log_begin(&l, LOG_LEVEL_DEBUG, "noise");
	log_str(&l, "k", "v");
	log_end(&l);
	log_msg(LOG_LEVEL_WARN, "x", "y");
	read_lines(p[0], buf, sizeof(buf));
	assert_null(strstr(buf, "noise"));
	assert_non_null(strstr(buf, "\"level\":\"warn\",\"event\":\"x\",\"msg\":\"y\"}\n"));

	/* a value bigger than the line: cut, marked, still one valid line */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_begin(&l, LOG_LEVEL_ERROR, "big");
	log_str(&l, "v", big);
	log_str(&l, "after", "x");
	log_end(&l);
	read_lines(p[0], buf, sizeof(buf));
	assert_true(strlen(buf) <= LOG_LINE_MAX);
	assert_non_null(strstr(buf, "\",\"truncated\":true}\n"));
	assert_null(strchr(buf, '\n') + 1 == buf + strlen(buf) ? NULL : "more than one line");
	close(p[0]);
	close(p[1]);
	log_init(2, LOG_LEVEL_INFO);
}

static void test_level_parse(void **state)
{
	enum log_level l = LOG_LEVEL_ERROR;

	(void)state;
	assert_int_equal(log_level_parse("DEBUG", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("warning", &l), 0);
	assert_int_equal(l, LOG_LEVEL_WARN);
	assert_int_equal(log_level_parse("verbose", &l), -1);
	assert_int_equal(l, LOG_LEVEL_WARN);
	assert_int_equal(log_level_parse(NULL, &l), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_escape_never_splits),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_level_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
