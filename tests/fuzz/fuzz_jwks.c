/*
 * fuzz_jwks.c — JWKS parsing: any document gives a key set or a reason, never a crash, leak or over-read;
 * every key of a returned set is reached by jwks_find() + jwks_find_next() on its kid for each alg it fits, and
 * that walk only returns keys with that kid which fit the alg.
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
			/* the verifier's work cap sums these: a usable key always costs something (issue 14) */
			if (k->work == 0 || k->work > 1000)
				abort();
			for (int a = 1; a <= JWA_MAX; a++) {
				int reached = 0;

				if (!k->kid || !jwks_key_fits(k, a))
					continue;
				if (jwks_find(ks, k->kid, k->kid_len, a, &found) != 0)
					abort();
				do {
					if (found->kid_len != k->kid_len || memcmp(found->kid, k->kid, k->kid_len) != 0 ||
					    !jwks_key_fits(found, a))
						abort();
					reached |= found == k;
				} while (jwks_find_next(ks, found, a, &found) == 0);
				if (!reached)
					abort();
			}
		}
		jwks_keyset_release(ks);
	}
	return 0;
}
