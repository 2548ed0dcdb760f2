/*
 * fuzz_jwks.c — JWKS parsing: any document gives a key set or a reason, never a crash, leak or over-read;
 * every key of a returned set can be looked up by its kid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwks.h"
#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	jwks_keyset *ks = NULL;
	char err[160];

	if (jwks_parse(data, size, &ks, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < jwks_keyset_count(ks); i++) {
			const jwks_key *k = jwks_keyset_key(ks, i), *found = NULL;

			if (!k->pkey || !jwks_has_fp(ks, k->fp))
				abort();
			for (int a = 1; a <= JWT_ALG_MAX; a++)
				if (k->kid && jwks_key_fits(k, a) && jwks_find(ks, k->kid, k->kid_len, a, &found) != 0)
					abort();
		}
		jwks_keyset_release(ks);
	}
	return 0;
}
