/*
 * claims.c — the standard token checks (iss, aud, exp, nbf); the rules are listed in claims.h.
 */
#include "claims.h"

#include <math.h>
#include <string.h>

const char *claims_strerror(int err)
{
	switch (err) {
	case CLAIMS_OK: return "ok";
	case CLAIMS_E_ISSUER: return "issuer mismatch";
	case CLAIMS_E_AUDIENCE: return "audience mismatch";
	case CLAIMS_E_EXPIRED: return "token expired";
	case CLAIMS_E_NOT_YET: return "token not yet valid";
	case CLAIMS_E_CLAIM: return "bad claim";
	}
	return "unknown claims error";
}

static bool aud_wanted(const char *a, const char *const *auds, size_t naud)
{
	for (size_t i = 0; i < naud; i++)
		if (strcmp(a, auds[i]) == 0)
			return true;
	return false;
}

/* MatchAny: at least one of the token's audiences is one of ours (one audience = the flags' client ID). */
static int check_aud(const char *const *auds, size_t naud, const cJSON *aud)
{
	const cJSON *it;
	bool found = false;

	if (cJSON_IsString(aud))
		return aud_wanted(aud->valuestring, auds, naud) ? 0 : CLAIMS_E_AUDIENCE;
	if (!cJSON_IsArray(aud))
		return CLAIMS_E_AUDIENCE;
	/* Go unmarshals the whole array into []string first: one non-string member fails the token */
	for (it = aud->child; it; it = it->next) {
		if (!cJSON_IsString(it))
			return CLAIMS_E_AUDIENCE;
		if (aud_wanted(it->valuestring, auds, naud))
			found = true;
	}
	return found ? 0 : CLAIMS_E_AUDIENCE;
}

static int64_t clamp_i64(double d)
{
	if (d >= 9.2e18)
		return INT64_MAX;
	if (d <= -9.2e18)
		return INT64_MIN;
	return (int64_t)floor(d);
}

int claims_check_std(const char *issuer, const char *const *auds, size_t naud, const cJSON *payload, int64_t now,
		     int64_t *exp_out, const char **detail)
{
	const cJSON *c;
	const char *d = NULL;
	int64_t exp;
	int rc;

	c = cJSON_GetObjectItemCaseSensitive(payload, "iss");
	if (!cJSON_IsString(c) || strcmp(c->valuestring, issuer) != 0) {
		rc = CLAIMS_E_ISSUER;
		d = "issuer mismatch";
		goto out;
	}
	if (check_aud(auds, naud, cJSON_GetObjectItemCaseSensitive(payload, "aud"))) {
		rc = CLAIMS_E_AUDIENCE;
		d = "audience mismatch";
		goto out;
	}
	c = cJSON_GetObjectItemCaseSensitive(payload, "exp");
	if (!cJSON_IsNumber(c)) {
		rc = CLAIMS_E_EXPIRED;
		d = "missing or non-numeric exp";
		goto out;
	}
	if (c->valuedouble < (double)now) {
		rc = CLAIMS_E_EXPIRED;
		d = "token expired";
		goto out;
	}
	/* The API server turns exp into an int64 through Go's float conversion, which yields INT64_MIN for
	 * 2^63 and above (1e19, 1e300): such a token is expired there, so it must not live forever here
	 * (found by the attack corpus, tests/security). */
	if (c->valuedouble >= 9223372036854775808.0) {
		rc = CLAIMS_E_EXPIRED;
		d = "exp out of range";
		goto out;
	}
	exp = clamp_i64(c->valuedouble);
	c = cJSON_GetObjectItemCaseSensitive(payload, "nbf");
	if (c && !cJSON_IsNull(c)) {
		if (!cJSON_IsNumber(c)) {
			rc = CLAIMS_E_CLAIM;
			d = "non-numeric nbf";
			goto out;
		}
		if ((double)now + CLAIMS_NBF_LEEWAY_S < c->valuedouble) {
			rc = CLAIMS_E_NOT_YET;
			d = "token not yet valid";
			goto out;
		}
	}

	*exp_out = exp;
	return 0;
out:
	if (detail)
		*detail = d;
	return rc;
}
