/* test_satoken.c — token file parsing, first load, kubelet-style symlink swap, failures keeping the last value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "satoken.h"

static void test_parse_table(void **state)
{
	static const struct {
		const char *in;
		int rc;
		const char *tok;
	} t[] = {
		{"abc", SATOKEN_OK, "abc"},
		{"abc\n", SATOKEN_OK, "abc"},
		{"abc\r\n\t ", SATOKEN_OK, "abc"},
		{"\n  abc", SATOKEN_OK, "abc"},
		{"eyJhbGciOi.eyJzdWIi.c2ln", SATOKEN_OK, "eyJhbGciOi.eyJzdWIi.c2ln"},
		{"", SATOKEN_E_EMPTY, NULL},
		{" \n\t\r\n", SATOKEN_E_EMPTY, NULL},
		{"ab c", SATOKEN_E_INVALID, NULL},
		{"ab\nc", SATOKEN_E_INVALID, NULL},
		{"ab\x7f", SATOKEN_E_INVALID, NULL},
		{"t\xc3\xa9", SATOKEN_E_INVALID, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t off = 777, len = 777;
		int rc = satoken_parse((const uint8_t *)t[i].in, strlen(t[i].in), &off, &len);

		if (rc != t[i].rc)
			fail_msg("case %zu: rc %d want %d", i, rc, t[i].rc);
		if (rc == SATOKEN_OK) {
			assert_int_equal(len, strlen(t[i].tok));
			assert_memory_equal(t[i].in + off, t[i].tok, len);
		} else {
			assert_int_equal(off, 777);
		}
	}
	/* a NUL inside is refused, not taken as the end */
	{
		size_t off, len;

		assert_int_equal(satoken_parse((const uint8_t *)"ab\0cd", 5, &off, &len), SATOKEN_E_INVALID);
	}
}

typedef struct dir {
	char root[64];
	char path[128];
	int gen;
} dir;

static void write_file(const char *p, const char *s)
{
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fputs(s, f);
	fclose(f);
}

/* kubelet's AtomicWriter: <root>/..<gen>/token, <root>/..data -> ..<gen>, <root>/token -> ..data/token; a
 * rotation writes a new ..<gen> and renames a new ..data symlink over the old one. */
static void kubelet_write(dir *d, const char *content)
{
	char gdir[160], file[192], tmp[192], target[32], data[160];

	d->gen++;
	snprintf(gdir, sizeof(gdir), "%s/..%d", d->root, d->gen);
	assert_int_equal(mkdir(gdir, 0700), 0);
	snprintf(file, sizeof(file), "%s/token", gdir);
	write_file(file, content);
	snprintf(target, sizeof(target), "..%d", d->gen);
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", d->root);
	assert_int_equal(symlink(target, tmp), 0);
	snprintf(data, sizeof(data), "%s/..data", d->root);
	assert_int_equal(rename(tmp, data), 0);
	if (d->gen == 1)
		assert_int_equal(symlink("..data/token", d->path), 0);
}

static void dir_rm(dir *d)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->root);
	assert_int_equal(system(cmd), 0);
}

static void want_value(satoken *st, const char *want)
{
	satoken_val *v = satoken_acquire(st);

	if (want == NULL) {
		assert_null(v);
		return;
	}
	assert_non_null(v);
	assert_string_equal(v->str, want);
	assert_int_equal(v->len, strlen(want));
	satoken_val_release(v);
}

static void test_symlink_rotation(void **state)
{
	dir d;
	satoken *st;
	satoken_val *held;
	bool changed;
	uint64_t loads, fails;

	(void)state;
	memset(&d, 0, sizeof(d));
	snprintf(d.root, sizeof(d.root), "/tmp/kos-sat-XXXXXX");
	assert_non_null(mkdtemp(d.root));
	snprintf(d.path, sizeof(d.path), "%s/token", d.root);

	assert_int_equal(satoken_create(d.path, &st), 0);
	/* no file yet: an error, nothing published */
	assert_int_equal(satoken_reload(st, &changed), SATOKEN_E_READ);
	assert_false(changed);
	assert_false(satoken_loaded(st));
	want_value(st, NULL);

	kubelet_write(&d, "first-token\n");
	assert_int_equal(satoken_reload(st, &changed), 0);
	assert_true(changed);
	want_value(st, "Bearer first-token");
	/* unchanged file: not re-read, not news */
	assert_int_equal(satoken_reload(st, &changed), 0);
	assert_false(changed);

	/* a worker holds the old value across the rotation: it stays valid until released */
	held = satoken_acquire(st);
	kubelet_write(&d, "second-token");
	assert_int_equal(satoken_reload(st, &changed), 0);
	assert_true(changed);
	want_value(st, "Bearer second-token");
	assert_string_equal(held->str, "Bearer first-token");
	satoken_val_release(held);

	/* a broken rotation (empty file) keeps the last good token */
	kubelet_write(&d, "\n");
	assert_int_equal(satoken_reload(st, &changed), SATOKEN_E_EMPTY);
	assert_false(changed);
	want_value(st, "Bearer second-token");
	assert_true(satoken_loaded(st));

	/* then a good one again */
	kubelet_write(&d, "third-token");
	assert_int_equal(satoken_reload(st, &changed), 0);
	want_value(st, "Bearer third-token");
	satoken_counts(st, &loads, &fails);
	assert_int_equal(loads, 3);
	assert_int_equal(fails, 2);
	satoken_destroy(st);
	dir_rm(&d);
}

static void test_in_place_rewrite_and_size(void **state)
{
	char root[64], path[128];
	satoken *st;
	char *big;

	(void)state;
	snprintf(root, sizeof(root), "/tmp/kos-sat-XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/t", root);
	write_file(path, "aaa");
	assert_int_equal(satoken_create(path, &st), 0);
	assert_int_equal(satoken_reload(st, NULL), 0);
	/* same inode, other size: noticed */
	write_file(path, "bbbb");
	assert_int_equal(satoken_reload(st, NULL), 0);
	want_value(st, "Bearer bbbb");
	big = malloc(SATOKEN_MAX_BYTES + 2);
	assert_non_null(big);
	memset(big, 'x', SATOKEN_MAX_BYTES + 1);
	big[SATOKEN_MAX_BYTES + 1] = '\0';
	write_file(path, big);
	assert_int_equal(satoken_reload(st, NULL), SATOKEN_E_TOO_BIG);
	want_value(st, "Bearer bbbb");
	big[SATOKEN_MAX_BYTES] = '\0'; /* exactly the maximum is fine */
	write_file(path, big);
	assert_int_equal(satoken_reload(st, NULL), 0);
	free(big);
	satoken_destroy(st);
	unlink(path);
	rmdir(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_symlink_rotation),
		cmocka_unit_test(test_in_place_rewrite_and_size),
	};

	log_init(open("/dev/null", O_WRONLY), LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
