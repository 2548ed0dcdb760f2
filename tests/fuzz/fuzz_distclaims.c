/*
 * fuzz_distclaims.c — the distributed-claims reference reader never reads past len and keeps its contract: a
 * result from its enum only; an endpoint only with DISTCLAIMS_FETCH, then non-empty and NUL-terminated within
 * its buffer; the same verdict for every claim name it is asked about twice (it only reads).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distclaims.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const claims[] = {"groups", "roles", ""};
	char ep[128], tok[128];

	for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
		int rc = distclaims_parse(data, size, claims[i], ep, sizeof(ep), tok, sizeof(tok));

		if (rc < DISTCLAIMS_E_JSON || rc > DISTCLAIMS_FETCH)
			abort();
		if (strnlen(ep, sizeof(ep)) == sizeof(ep) || strnlen(tok, sizeof(tok)) == sizeof(tok))
			abort();
		if ((rc == DISTCLAIMS_FETCH) != (ep[0] != '\0'))
			abort();
		if (distclaims_parse(data, size, claims[i], ep, sizeof(ep), tok, sizeof(tok)) != rc)
			abort();
	}
	return 0;
}
