/*
 * fuzz_discovery.c — libFuzzer target for oidc_discovery_parse() and oidc_max_age_parse().
 *
 * The first input byte picks the parser (even: discovery document, odd: a Cache-Control value); the rest is the
 * input, copied into an exact-size heap buffer so that ASan sees any read past its end. Invariants checked: a
 * success returns an https jwks_uri and leaves err alone; a failure leaves the out-param untouched and gives a
 * NUL-terminated reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ISSUER "https://127.0.0.1:8443"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	size_t len = size - 1;
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, len);

	if ((sel & 1) == 0) {
		char *uri = (char *)&sel; /* sentinel: must be untouched on failure */
		char err[128];
		int rc = oidc_discovery_parse(buf, len, FUZZ_ISSUER, &uri, err, sizeof err);
		if (rc == 0) {
			if (uri == (char *)&sel || strncmp(uri, "https://", 8) != 0)
				abort();
			free(uri);
		} else {
			if (uri != (char *)&sel || rc > 0 || memchr(err, '\0', sizeof err) == NULL)
				abort();
		}
	} else {
		uint32_t v = 12345;
		int rc = oidc_max_age_parse(buf, len, &v);
		if (rc < -1 || rc > 1 || (rc != 1 && v != 12345) || (rc == 1 && v > 0x7fffffffu))
			abort();
	}
	free(buf);
	return 0;
}
