/*
 * fuzz_impersonate.c — imp_parse() (the client's header lines from req.hdrs_bin) never reads past len and keeps
 * its contract: an accepted request has a user, at most IMP_MAX_ITEMS items in the API server's order (the user
 * first, the uid last), NUL-terminated values without control bytes, and every item yields a SubjectAccessReview
 * body and a 403 message that fit; a refusal leaves the output untouched and says why. Also the SAR answer parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "impersonate.h"
#include "tokenreview.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void clean(const char *s)
{
	if (s == NULL || s[0] == '\0')
		abort();
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const groups[] = {"dev"};
	imp_request *r = (imp_request *)(uintptr_t)0x5a;
	tokenreview_sar_parsed sp;
	char err[200] = "", msg[512];
	identity *who;
	uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees any read past len */
	int rc;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	rc = imp_parse(copy, size, &r, err, sizeof(err));
	if (rc == IMP_OK) {
		if (r->nitems == 0 || r->nitems > IMP_MAX_ITEMS || r->user == NULL)
			abort();
		if (r->items[0].kind != IMP_USER && r->items[0].kind != IMP_SA)
			abort();
		who = identity_build("alice", NULL, groups, 1, NULL, 0, 0, 0);
		for (size_t i = 0; i < r->nitems; i++) {
			char *body;

			clean(r->items[i].name);
			if (r->items[i].kind == IMP_UID && i != r->nitems - 1)
				abort();
			if (r->items[i].kind == IMP_EXTRA)
				clean(r->items[i].key);
			body = who ? imp_sar_body(who, &r->items[i]) : NULL;
			free(body);
			if (who) {
				imp_forbidden(who, &r->items[i], "", msg, sizeof(msg));
				if (strnlen(msg, sizeof(msg)) == sizeof(msg))
					abort();
			}
		}
		identity_release(who);
		imp_free(r);
	} else if (rc == IMP_E_BAD) {
		if (r != (imp_request *)(uintptr_t)0x5a || err[0] == '\0')
			abort();
	} else if (rc != IMP_E_NOMEM) {
		abort();
	}
	memset(&sp, 0x5a, sizeof(sp));
	if (tokenreview_sar_parse(copy, size, &sp) == TOKENREVIEW_OK &&
	    strnlen(sp.reason, sizeof(sp.reason)) == sizeof(sp.reason))
		abort();
	free(copy);
	return 0;
}
