/*
 * test_identity.c — the one rule for what an identity value may be (identity_value_problem / identity_check):
 * whatever Go's net/http would read back differently from what HAProxy writes is refused, everything else
 * passes byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "identity.h"

static const struct {
	const char *v;
	const char *want; /* NULL = fine */
} values[] = {
	{"alice", NULL},
	{"bob smith", NULL},                       /* inner space: Go keeps it */
	{"a,b", NULL},                             /* one header line each: commas are data */
	{"\xc3\xa9l\xc3\xa8ve", NULL},             /* UTF-8 */
	{"x\xc2\xa0", NULL},                       /* U+00A0 at the end: Go trims only SP/HTAB */
	{"x\xc2\x85", NULL},                       /* U+0085 likewise */
	{"", "empty"},
	{" ", "leading or trailing space or tab"},
	{" system:masters", "leading or trailing space or tab"},
	{"system:masters ", "leading or trailing space or tab"},
	{"\tsystem:masters", "leading or trailing space or tab"},
	{"bob\t", "leading or trailing space or tab"},
	{"b\tob", "control character"},
	{"a\rb", "control character"},
	{"a\nb", "control character"},
	{"\x01", "control character"},
	{"a\x7f", "control character"},
};

static void test_values(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		const char *got = identity_value_problem(values[i].v);

		if ((got == NULL) != (values[i].want == NULL) || (got != NULL && strcmp(got, values[i].want) != 0))
			fail_msg("value %zu: got \"%s\", want \"%s\"", i, got ? got : "(ok)",
				 values[i].want ? values[i].want : "(ok)");
	}
}

static void test_check_names_the_field(void **state)
{
	const char *groups[] = {"dev", " system:masters"};
	identity_extra ex[] = {{"example.com/t", "x "}};
	identity_extra nokey[] = {{"", "x"}};
	char d[160];

	(void)state;
	assert_int_equal(identity_check("alice", NULL, groups, 1, NULL, 0, d, sizeof(d)), 0);
	assert_int_equal(identity_check("alice", NULL, groups, 2, NULL, 0, d, sizeof(d)), -1);
	assert_string_equal(d, "group 2 of 2: leading or trailing space or tab");
	assert_int_equal(identity_check(" alice", NULL, NULL, 0, NULL, 0, d, sizeof(d)), -1);
	assert_string_equal(d, "username: leading or trailing space or tab");
	assert_int_equal(identity_check("alice", "", NULL, 0, NULL, 0, d, sizeof(d)), -1);
	assert_string_equal(d, "uid: empty");
	assert_int_equal(identity_check("alice", NULL, NULL, 0, ex, 1, d, sizeof(d)), -1);
	assert_string_equal(d, "extra \"example.com/t\": leading or trailing space or tab");
	assert_int_equal(identity_check("alice", NULL, NULL, 0, nokey, 1, d, sizeof(d)), -1);
	assert_string_equal(d, "extra 1: empty key");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_check_names_the_field),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
