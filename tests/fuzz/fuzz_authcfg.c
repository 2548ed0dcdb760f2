/* fuzz_authcfg.c — libFuzzer target for authcfg_parse() (YAML via libyaml, JSON via cJSON, strict decoding and
 * validation). Checks it never crashes or leaks, that a failure leaves *out alone and says why on one line, and
 * that an accepted configuration keeps the invariants the verifier will rely on. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authcfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const authcfg_config *c)
{
	const authcfg_expr *ex[8];

	if (c->njwt > AUTHCFG_MAX_JWT || (c->api_version != AUTHCFG_V1 && c->api_version != AUTHCFG_V1BETA1))
		abort();
	for (size_t i = 0; i < c->njwt; i++) {
		const authcfg_issuer *is = &c->jwt[i];
		size_t n;

		if (is->index != i || !is->url || strncmp(is->url, "https://", 8) != 0 || strlen(is->url) != is->url_len ||
		    is->naudiences == 0 || (is->naudiences > 1 && !is->audience_match_any))
			abort();
		if (authcfg_issuer_find(c, is->url, is->url_len) != is) /* unique issuers */
			abort();
		for (size_t k = 0; k < is->naudiences; k++)
			if (!is->audiences[k] || !is->audiences[k][0])
				abort();
		if (!!is->username.claim == !!is->username.expr.expression || (is->username.claim && !is->username.prefix))
			abort();
		if (is->groups.claim && (is->groups.expr.expression || !is->groups.prefix))
			abort();
		for (size_t k = 0; k < is->nclaim_rules; k++) {
			const authcfg_claim_rule *r = &is->claim_rules[k];

			if (!!r->claim == !!r->expr.expression || (r->claim && !r->required_value))
				abort();
		}
		for (size_t k = 0; k < is->nextra; k++)
			if (!is->extra[k].key || !strchr(is->extra[k].key, '/') || !is->extra[k].value.expression)
				abort();
		n = authcfg_issuer_exprs(is, ex, 8);
		for (size_t k = 0; k < n && k < 8; k++)
			if (!ex[k]->expression || !ex[k]->path || strncmp(ex[k]->path, "jwt[", 4) != 0)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	authcfg_config *c = (authcfg_config *)&size; /* a sentinel: must stay untouched on failure */
	char err[512];
	int rc;

	if (size > 65536)
		return 0; /* the caps are tested in tests/unit; keep iterations fast */
	rc = authcfg_parse(data, size, &c, err, sizeof(err));
	if (rc == AUTHCFG_OK) {
		check(c);
		authcfg_free(c);
	} else {
		if (c != (authcfg_config *)&size || rc < AUTHCFG_E_IO)
			abort();
		if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0' || strchr(err, '\n') != NULL)
			abort();
	}
	return 0;
}
