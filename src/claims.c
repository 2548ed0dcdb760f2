/*
 * claims.c — Kubernetes OIDC claim rules; the list and the deliberate deviations are in claims.h.
 */
#include "claims.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char detail_buf[160];

/* claim names come from our configuration, not from the token: safe to log */
#define detailf(fmt, name) (snprintf(detail_buf, sizeof(detail_buf), fmt, name), (const char *)detail_buf)

const char *claims_strerror(int err)
{
	switch (err) {
	case CLAIMS_OK: return "ok";
	case CLAIMS_E_ISSUER: return "issuer mismatch";
	case CLAIMS_E_AUDIENCE: return "audience mismatch";
	case CLAIMS_E_EXPIRED: return "token expired";
	case CLAIMS_E_NOT_YET: return "token not yet valid";
	case CLAIMS_E_CLAIM: return "bad claim";
	case CLAIMS_E_RESERVED: return "reserved identity refused";
	case CLAIMS_E_IDENTITY: return "identity cannot be forwarded unchanged";
	case CLAIMS_E_NOMEM: return "out of memory";
	case CLAIMS_E_CONFIG: return "bad claim configuration";
	}
	return "unknown claims error";
}

int claims_rules_init(claims_rules *r, const char *issuer, const char *client_id, const char *username_claim,
		      const char *username_prefix, const char *groups_claim, const char *groups_prefix)
{
	char *prefix;

	if (!issuer || !*issuer || !client_id || !*client_id)
		return CLAIMS_E_CONFIG;
	if (!username_claim || !*username_claim)
		username_claim = "sub";
	if (username_prefix && strcmp(username_prefix, "-") == 0) {
		prefix = strdup("");
	} else if (username_prefix && *username_prefix) {
		prefix = strdup(username_prefix);
	} else if (strcmp(username_claim, "email") == 0) {
		prefix = strdup("");
	} else {
		size_t n = strlen(issuer);

		prefix = malloc(n + 2);
		if (prefix) {
			memcpy(prefix, issuer, n);
			prefix[n] = '#';
			prefix[n + 1] = 0;
		}
	}
	if (!prefix)
		return CLAIMS_E_NOMEM;
	memset(r, 0, sizeof(*r));
	r->issuer = issuer;
	r->client_id = client_id;
	r->username_claim = username_claim;
	r->username_prefix = prefix;
	r->groups_claim = groups_claim && *groups_claim ? groups_claim : NULL;
	r->groups_prefix = groups_prefix ? groups_prefix : "";
	return 0;
}

void claims_rules_free(claims_rules *r)
{
	if (!r)
		return;
	free(r->username_prefix);
	r->username_prefix = NULL;
}

static bool reserved(const char *s)
{
	return strncmp(s, "system:", 7) == 0;
}

/* The prefixed user and group names live only until identity_build() copies them: they go into a bounded
 * buffer on the stack, in order, and only what does not fit (and everything after it) is malloc'd. Item k
 * (0 = user, 1.. = groups) is on the stack iff k < nin. */
struct strbuf {
	char b[1024];
	size_t used, nin;
	bool full;
};

static char *concat(struct strbuf *sb, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b), n = na + nb + 1;
	char *s;

	if (!sb->full && n <= sizeof(sb->b) - sb->used) {
		s = sb->b + sb->used;
		sb->used += n;
		sb->nin++;
	} else {
		sb->full = true;
		s = malloc(n);
		if (!s)
			return NULL;
	}
	memcpy(s, a, na);
	memcpy(s + na, b, nb + 1);
	return s;
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

int claims_map(const claims_rules *r, const cJSON *payload, int64_t now, uint64_t key_fp, identity **out,
	       const char **detail)
{
	const cJSON *c, *g;
	const char *d = NULL, *uname;
	const char **groups = NULL, *gsmall[32];
	char *user = NULL;
	size_t ngroups = 0, i;
	int64_t exp;
	identity *id;
	struct strbuf sb;
	int rc;

	sb.used = sb.nin = 0;
	sb.full = false;

	rc = claims_check_std(r->issuer, &r->client_id, 1, payload, now, &exp, &d);
	if (rc)
		goto out;

	c = cJSON_GetObjectItemCaseSensitive(payload, r->username_claim);
	if (!c) {
		rc = CLAIMS_E_CLAIM;
		d = detailf("missing claim \"%s\"", r->username_claim);
		goto out;
	}
	if (!cJSON_IsString(c) || !c->valuestring[0]) {
		rc = CLAIMS_E_CLAIM;
		d = detailf("claim \"%s\" is not a non-empty string", r->username_claim);
		goto out;
	}
	uname = c->valuestring;
	if (strcmp(r->username_claim, "email") == 0) {
		const cJSON *ev = cJSON_GetObjectItemCaseSensitive(payload, "email_verified");

		if (ev && !cJSON_IsTrue(ev)) {
			rc = CLAIMS_E_CLAIM;
			d = "email not verified";
			goto out;
		}
	}
	user = concat(&sb, r->username_prefix, uname);
	if (!user) {
		rc = CLAIMS_E_NOMEM;
		goto out;
	}

	g = r->groups_claim ? cJSON_GetObjectItemCaseSensitive(payload, r->groups_claim) : NULL;
	if (g && !cJSON_IsNull(g)) {
		const cJSON *it;
		size_t n = 0;

		if (cJSON_IsString(g)) {
			n = 1;
		} else if (cJSON_IsArray(g)) {
			for (it = g->child; it; it = it->next)
				n++;
		} else {
			rc = CLAIMS_E_CLAIM;
			d = detailf("claim \"%s\" is not a string or an array of strings", r->groups_claim);
			goto out;
		}
		groups = n <= sizeof(gsmall) / sizeof(gsmall[0]) ? gsmall : calloc(n, sizeof(*groups));
		if (!groups) {
			rc = CLAIMS_E_NOMEM;
			goto out;
		}
		for (it = cJSON_IsString(g) ? g : g->child; ngroups < n; it = it->next) {
			if (!cJSON_IsString(it) || !it->valuestring[0]) {
				rc = CLAIMS_E_CLAIM;
				d = detailf("claim \"%s\" holds an empty or non-string group", r->groups_claim);
				goto out;
			}
			groups[ngroups] = concat(&sb, r->groups_prefix, it->valuestring);
			if (!groups[ngroups]) {
				rc = CLAIMS_E_NOMEM;
				goto out;
			}
			ngroups++;
		}
	}

	for (i = 0; i < r->nrequired; i++) {
		c = cJSON_GetObjectItemCaseSensitive(payload, r->req_keys[i]);
		if (!c) {
			rc = CLAIMS_E_CLAIM;
			d = detailf("required claim \"%s\" not present", r->req_keys[i]);
			goto out;
		}
		if (!cJSON_IsString(c) || strcmp(c->valuestring, r->req_values[i]) != 0) {
			rc = CLAIMS_E_CLAIM;
			d = detailf("required claim \"%s\" does not match", r->req_keys[i]);
			goto out;
		}
	}

	/* before the reserved guard: " system:masters" is refused here, not let through to become system:masters */
	if (identity_check(user, NULL, (const char *const *)groups, ngroups, NULL, 0, detail_buf,
			   sizeof(detail_buf)) != 0) {
		rc = CLAIMS_E_IDENTITY;
		d = detail_buf;
		goto out;
	}
	if (!r->allow_reserved) {
		bool bad = reserved(user);

		for (i = 0; i < ngroups && !bad; i++)
			bad = reserved(groups[i]);
		if (bad) {
			rc = CLAIMS_E_RESERVED;
			d = "system: user or group";
			goto out;
		}
	}

	id = identity_build(user, NULL, groups, ngroups, NULL, 0, exp, key_fp);
	if (!id) {
		rc = CLAIMS_E_NOMEM;
		goto out;
	}
	*out = id;
	rc = 0;
out:
	for (i = 0; i < ngroups; i++)
		if (i + 1 >= sb.nin)
			free((char *)groups[i]);
	if (groups != gsmall)
		free(groups);
	if (sb.nin == 0)
		free(user);
	if (rc && detail)
		*detail = d ? d : claims_strerror(rc);
	return rc;
}
