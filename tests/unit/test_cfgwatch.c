/* test_cfgwatch.c — content-change detection behind kubelet's ConfigMap symlinks: a swap to new content is one
 * change, a swap to the same content or a touch is none, an unreadable path is one change (not repeated). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfgwatch.h"

static char dir[64];
static int version;

/* kubelet's layout: <dir>/..vN/cfg, <dir>/..data -> ..vN (swapped by rename), <dir>/cfg -> ..data/cfg */
static void publish(const char *content)
{
	char vdir[128], file[160], tmp[128], data[128];
	FILE *f;

	version++;
	snprintf(vdir, sizeof(vdir), "%s/..v%d", dir, version);
	assert_int_equal(mkdir(vdir, 0700), 0);
	snprintf(file, sizeof(file), "%s/cfg", vdir);
	f = fopen(file, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
	snprintf(data, sizeof(data), "%s/..data", dir);
	snprintf(vdir, sizeof(vdir), "..v%d", version);
	assert_int_equal(symlink(vdir, tmp), 0);
	assert_int_equal(rename(tmp, data), 0);
}

static void test_configmap_swaps(void **state)
{
	char path[128], target[160];
	cfgwatch *w;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/kos-cfgwatch-XXXXXX");
	assert_non_null(mkdtemp(dir));
	publish("a: 1\n");
	snprintf(path, sizeof(path), "%s/cfg", dir);
	assert_int_equal(symlink("..data/cfg", path), 0);
	assert_int_equal(cfgwatch_create(path, &w), 0);
	assert_int_equal(cfgwatch_size(w), 5);
	assert_int_equal(cfgwatch_poll(w), 0);
	/* the same content in a new directory (a new inode): no change */
	publish("a: 1\n");
	assert_int_equal(cfgwatch_poll(w), 0);
	/* new content of the same size: one change, reported once */
	publish("a: 2\n");
	assert_int_equal(cfgwatch_poll(w), 1);
	assert_int_equal(cfgwatch_poll(w), 0);
	/* gone (the version directory removed under the symlink): one change, then quiet */
	snprintf(target, sizeof(target), "%s/..v%d/cfg", dir, version);
	assert_int_equal(unlink(target), 0);
	assert_int_equal(cfgwatch_poll(w), 1);
	assert_int_equal(cfgwatch_size(w), 0);
	assert_int_equal(cfgwatch_poll(w), 0);
	/* back: a change again */
	publish("a: 3\nb: 4\n");
	assert_int_equal(cfgwatch_poll(w), 1);
	assert_int_equal(cfgwatch_size(w), 10);
	cfgwatch_destroy(w);
	/* the test's files: best effort */
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_configmap_swaps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
