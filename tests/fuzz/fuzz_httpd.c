/* fuzz_httpd.c — libFuzzer target for httpd_parse(): never reads past len, and what it reports is inside. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	httpd_request r;
	uint8_t *copy;
	int rc;

	if (size > HTTPD_MAX_REQUEST)
		return 0;
	/* an exact-size heap copy lets ASan catch a read one past the end */
	copy = malloc(size ? size : 1);
	if (copy == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	rc = httpd_parse(copy, size, &r);
	if (rc > 0) {
		if ((size_t)rc > size)
			abort();
		if (r.path < copy || r.path_len > (size_t)rc || (size_t)(r.path - copy) > (size_t)rc - r.path_len)
			abort();
		if (r.path_len == 0 || r.path[0] != '/' || r.method_len == 0)
			abort();
		/* the head is a prefix: parsing exactly it gives the same answer */
		if (httpd_parse(copy, (size_t)rc, &r) != rc)
			abort();
	} else if (rc != HTTPD_BAD && rc != HTTPD_PARTIAL) {
		abort();
	}
	free(copy);
	return 0;
}
