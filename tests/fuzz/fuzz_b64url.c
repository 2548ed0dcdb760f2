/*
 * fuzz_b64url.c — strict base64url decoding never reads past len, and whatever decodes re-encodes to exactly
 * the input (one canonical encoding per byte string).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = b64url_decoded_max(size), n = 0;
	uint8_t *out = malloc(cap ? cap : 1);
	char *enc;

	if (!out)
		return 0;
	if (b64url_decode(data, size, out, cap, &n) == 0) {
		enc = malloc(size ? size : 1);
		if (enc) {
			int el = b64url_encode(out, n, enc, size);

			if (el < 0 || (size_t)el != size || memcmp(enc, data, size) != 0)
				abort();
			free(enc);
		}
	}
	free(out);
	return 0;
}
