/*
 * fuzz_tokenreview.c — the TokenReview response parser and the unverified-iss reader never read past len and
 * keep their contracts: an accepted answer has a NUL-terminated username without control bytes, audience_ok is
 * true whenever no audience was asked for, a refused one leaves the output untouched; an iss is returned only
 * NUL-terminated within its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenreview.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const auds[] = {"https://kubernetes.default.svc", "kos"};
	tokenreview_parsed p, q;
	char iss[64];
	int rc;

	memset(&p, 0x5a, sizeof(p));
	rc = tokenreview_parse(data, size, auds, 2, &p);
	if (rc == TOKENREVIEW_OK) {
		size_t n = strnlen(p.user, sizeof(p.user));

		if (n == sizeof(p.user))
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p.user[i] < 0x20 || p.user[i] == 0x7f)
				abort();
		if (tokenreview_parse(data, size, NULL, 0, &q) != TOKENREVIEW_OK || !q.audience_ok ||
		    q.authenticated != p.authenticated || strcmp(q.user, p.user) != 0)
			abort();
	} else if (rc != TOKENREVIEW_E_RESPONSE && rc != TOKENREVIEW_E_NOMEM) {
		abort();
	} else if (p.user[0] != 0x5a) {
		abort();
	}
	rc = tokenreview_token_issuer(data, size, iss, sizeof(iss));
	if (rc == 1 && strnlen(iss, sizeof(iss)) == sizeof(iss))
		abort();
	if (rc != 0 && rc != 1 && rc != -1)
		abort();
	return 0;
}
