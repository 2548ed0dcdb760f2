/* test_kx.c — the shared layer: capped buffer, error text, control-byte and UTF-8 checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kx.h"

static void test_buf_cap_sticks(void **state)
{
	kx_buf b;
	char big[300];

	(void)state;
	memset(big, 'x', sizeof(big));
	kx_buf_init(&b, 10);
	assert_int_equal(kx_buf_add(&b, "hello", 5), 0);
	assert_string_equal(b.data, "hello");
	assert_int_equal(kx_buf_addf(&b, "%d%s", 12, "34"), 0); /* exactly max */
	assert_int_equal(b.len, 9);
	assert_int_equal(kx_buf_add(&b, "a", 1), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(kx_buf_add(&b, "b", 1), KX_E_TOO_BIG); /* one past max */
	assert_true(b.failed);
	assert_int_not_equal(kx_buf_add(&b, "", 0), 0); /* the failure sticks */
	assert_int_equal(b.len, 10);
	assert_true(b.cap <= 11); /* never allocates past max + NUL */
	kx_buf_reset(&b);
	assert_false(b.failed);
	assert_int_equal(kx_buf_addf(&b, "%.*s", 11, big), KX_E_TOO_BIG);
	kx_buf_free(&b);

	kx_buf_init(&b, 1000);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kx_buf_add(&b, big, sizeof(big)), 0);
	assert_int_equal(b.len, 900);
	assert_int_equal(b.data[900], '\0');
	{
		size_t n = 0;
		char *d = kx_buf_steal(&b, &n);

		assert_int_equal(n, 900);
		assert_null(b.data);
		free(d);
	}
	kx_buf_free(&b);
}

static void test_seterr(void **state)
{
	char e[8];

	(void)state;
	kx_seterr(e, sizeof(e), "abc %d", 12345678);
	assert_string_equal(e, "abc 123"); /* cut to fit, NUL-terminated */
	kx_seterr(NULL, 10, "x");           /* no buffer: nothing */
	e[0] = 'z';
	kx_seterr(e, 0, "x");
	assert_int_equal(e[0], 'z');
}

static void test_text(void **state)
{
	static const struct {
		const char *s;
		size_t n, want;
	} utf8[] = {
		{ "a", 1, 1 }, { "\xc3\xa9", 2, 2 }, { "\xe2\x84\xaa", 3, 3 }, { "\xf0\x9f\x98\x80", 4, 4 },
		{ "\xc0\xaf", 2, 0 },          /* overlong '/' */
		{ "\xe0\x80\xaf", 3, 0 },      /* overlong */
		{ "\xed\xa0\x80", 3, 0 },      /* surrogate */
		{ "\xf4\x90\x80\x80", 4, 0 },  /* past U+10FFFF */
		{ "\xc3", 1, 0 },              /* cut */
		{ "\x80", 1, 0 },              /* continuation byte first */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++)
		if (kx_utf8_seq((const uint8_t *)utf8[i].s, utf8[i].n) != utf8[i].want)
			fail_msg("utf8 case %zu", i);
	assert_true(kx_is_ctl(0) && kx_is_ctl(0x1f) && kx_is_ctl(0x7f) && kx_is_ctl('\t'));
	assert_false(kx_is_ctl(' ') || kx_is_ctl('~') || kx_is_ctl(0x80));
	assert_int_equal(kx_ctl_find((const uint8_t *)"ab\x7f" "c", 4), 2);
	assert_int_equal(kx_ctl_find((const uint8_t *)"abc", 3), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_cap_sticks),
		cmocka_unit_test(test_seterr),
		cmocka_unit_test(test_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
