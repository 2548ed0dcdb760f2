/*
 * fuzz_jwt.c — the uncached verification path on arbitrary tokens: strict parse (and the parse-once form the
 * issuer pick reads, verifier_token_parse), key lookup in the fixture JWKS, signature check, strict payload
 * JSON, Kubernetes claim rules (the flags' authenticator, flagcfg.h, through claims_check_std + mapping_apply). Nothing may crash, leak or read past
 * the token; a token the fuzzer forges must never verify.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "claims.h"
#include "flagcfg.h"
#include "jwks.h"
#include "jws.h"
#include "jwt.h"
#include "verifier.h" /* the verdict names used by the fixture table */

#include "../fixtures/tokens.inc"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static jwks_keyset *keys;
static mapping *rules;

static void init(void)
{
	const flagcfg fc = { .issuer_url = FIX_ISS, .client_id = FIX_AUD, .groups_claim = "groups" };
	authcfg_config *ac = NULL;

	if (jwks_parse((const uint8_t *)FIX_JWKS, strlen(FIX_JWKS), &keys, NULL, 0) != 0)
		abort();
	if (flagcfg_build(&fc, &ac, NULL, 0) != 0 || mapping_compile(&ac->jwt[0], &rules, NULL, 0) != 0)
		abort();
	authcfg_free(ac);
}

/* The verifier's claim steps on a payload: standard claims, then the mapping. */
static void apply_rules(const cJSON *payload, uint64_t fp)
{
	const char *aud = FIX_AUD, *detail;
	identity *id = NULL;
	int64_t exp;

	if (claims_check_std(FIX_ISS, &aud, 1, payload, FIX_NOW, &exp, &detail) == 0 &&
	    mapping_apply(rules, payload, exp, fp, false, &id, &detail, NULL) == 0)
		identity_release(id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	jwt_token t;
	verifier_token vt;
	const jwks_key *k = NULL;
	cJSON *payload = NULL;
	int rc;

	if (!keys)
		init();
	/* the payload JSON and claim rules are reachable only behind a valid signature; exercise them directly
	 * too, on the input taken as a payload */
	if (jsonstrict_parse(data, size, &payload) == 0) {
		apply_rules(payload, 1);
		cJSON_Delete(payload);
		payload = NULL;
	}
	verifier_token_parse(data, size, 0, &vt);
	if (vt.iss != NULL && strlen(vt.iss) > size)
		abort(); /* iss comes from inside the input */
	verifier_token_free(&vt);
	if (jwt_parse(data, size, 0, &t) != 0)
		return 0;
	if (t.kid)
		rc = jwks_find(keys, t.kid, t.kid_len, t.alg, &k);
	else
		rc = (k = jwks_keyset_key(keys, 0)) ? 0 : -1;
	if (rc == 0 && jws_verify(&t, k) == 0) {
		/* only the committed seeds carry real signatures */
		int known = 0;

		for (size_t i = 0; i < FIX_NTOKENS; i++)
			if (strlen(FIX_TOKENS[i].token) == size && memcmp(FIX_TOKENS[i].token, data, size) == 0)
				known = 1;
		if (!known)
			abort();
		if (jsonstrict_parse(t.payload, t.payload_len, &payload) == 0) {
			apply_rules(payload, k->fp);
			cJSON_Delete(payload);
		}
	}
	jwt_token_free(&t);
	return 0;
}
