/*
 * test_b64url.c — strict base64url: RFC 4648 vectors, every leniency refused with its own verdict, round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "b64url.h"

static const struct {
	const char *enc, *dec;
} good[] = {
	{ "", "" }, { "Zg", "f" }, { "Zm8", "fo" }, { "Zm9v", "foo" }, { "Zm9vYg", "foob" }, { "Zm9vYmE", "fooba" },
	{ "Zm9vYmFy", "foobar" }, { "-_8", "\xfb\xff" }, { "__--", "\xff\xff\xbe" },
};

static const struct {
	const char *name, *enc;
	int expect;
} bad[] = {
	{ "padding", "Zg==", B64URL_E_CHAR },
	{ "padding one", "Zm8=", B64URL_E_CHAR },
	{ "space", "Zm9 v", B64URL_E_LENGTH },
	{ "space inside a quad", "Zm 9", B64URL_E_CHAR },
	{ "newline", "Zm9v\nYmFy", B64URL_E_LENGTH },
	{ "CRLF", "Zm9v\r\nYmFy", B64URL_E_CHAR },
	{ "standard alphabet +", "+/8", B64URL_E_CHAR },
	{ "standard alphabet /", "ab/d", B64URL_E_CHAR },
	{ "length 4k+1", "Zm9vY", B64URL_E_LENGTH },
	{ "single char", "Z", B64URL_E_LENGTH },
	{ "non-canonical 2 chars", "Zh", B64URL_E_BITS },
	{ "non-canonical 3 chars", "Zm9", B64URL_E_BITS },
	{ "dot", "Zm.v", B64URL_E_CHAR },
	{ "high byte", "Zm\xc3\xa9", B64URL_E_CHAR },
	{ "NUL", "Zm\0v", B64URL_E_CHAR },
};

static void test_good_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint8_t out[16];
		char enc[32];
		size_t n = 99, el = strlen(good[i].enc);

		assert_int_equal(b64url_decode((const uint8_t *)good[i].enc, el, out, sizeof(out), &n), 0);
		assert_int_equal(n, strlen(good[i].dec));
		assert_memory_equal(out, good[i].dec, n);
		assert_int_equal(b64url_decoded_max(el), n);
		assert_int_equal(b64url_encode((const uint8_t *)good[i].dec, n, enc, sizeof(enc)), (int)el);
		assert_memory_equal(enc, good[i].enc, el);
		assert_int_equal(b64url_encoded_len(n), el);
	}
}

static void test_bad_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t out[16];
		size_t n = 12345;
		size_t len = strcmp(bad[i].name, "NUL") == 0 ? 4 : strlen(bad[i].enc);
		int rc = b64url_decode((const uint8_t *)bad[i].enc, len, out, sizeof(out), &n);

		if (rc != bad[i].expect)
			fail_msg("%s: got %d (%s), want %d", bad[i].name, rc, b64url_strerror(rc), bad[i].expect);
		assert_int_equal(n, 12345); /* out-param untouched on failure */
	}
}

static void test_output_space(void **state)
{
	uint8_t out[2];
	char enc[3];
	size_t n;

	(void)state;
	assert_int_equal(b64url_decode((const uint8_t *)"Zm9v", 4, out, sizeof(out), &n), B64URL_E_SPACE);
	assert_int_equal(b64url_encode((const uint8_t *)"foo", 3, enc, sizeof(enc)), B64URL_E_SPACE);
}

/* every byte value as the last char of a 2- and 3-char tail: exactly the canonical ones decode */
static void test_canonical_tail(void **state)
{
	int accepted2 = 0, accepted3 = 0;

	(void)state;
	for (int c = 0; c < 256; c++) {
		uint8_t in2[2] = { 'Q', (uint8_t)c }, in3[3] = { 'Q', 'Q', (uint8_t)c }, out[4];
		size_t n;

		accepted2 += b64url_decode(in2, 2, out, sizeof(out), &n) == 0;
		accepted3 += b64url_decode(in3, 3, out, sizeof(out), &n) == 0;
	}
	assert_int_equal(accepted2, 4);  /* A, Q, g, w: low 4 bits zero */
	assert_int_equal(accepted3, 16); /* low 2 bits zero */
}

static void test_round_trip_random(void **state)
{
	(void)state;
	srand(42);
	for (int iter = 0; iter < 2000; iter++) {
		uint8_t in[64], out[64];
		char enc[100];
		size_t len = (size_t)(rand() % 64), n;
		int el;

		for (size_t i = 0; i < len; i++)
			in[i] = (uint8_t)rand();
		el = b64url_encode(in, len, enc, sizeof(enc));
		assert_true(el >= 0);
		assert_int_equal(b64url_decode((const uint8_t *)enc, (size_t)el, out, sizeof(out), &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(in, out, len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_vectors),     cmocka_unit_test(test_bad_vectors),
		cmocka_unit_test(test_output_space),     cmocka_unit_test(test_canonical_tail),
		cmocka_unit_test(test_round_trip_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
