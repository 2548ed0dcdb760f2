/*
 * flagcfg.c — the --oidc-* flags written as an AuthenticationConfiguration and read back (see flagcfg.h).
 */
#include "flagcfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* The username prefix the API server derives from the flags (authentication.go). Returns a malloc'd string. */
static char *username_prefix(const char *issuer, const char *claim, const char *prefix)
{
	char *p;
	size_t n;

	if (prefix != NULL && strcmp(prefix, "-") == 0)
		return strdup("");
	if (prefix != NULL && *prefix)
		return strdup(prefix);
	if (strcmp(claim, "email") == 0)
		return strdup("");
	n = strlen(issuer);
	p = malloc(n + 2);
	if (p != NULL) {
		memcpy(p, issuer, n);
		memcpy(p + n, "#", 2);
	}
	return p;
}

/* {"claim": c, "prefix": p} under parent[name]; false when out of memory. */
static bool add_claim(cJSON *parent, const char *name, const char *claim, const char *prefix)
{
	cJSON *o = cJSON_AddObjectToObject(parent, name);

	return o != NULL && cJSON_AddStringToObject(o, "claim", claim) != NULL &&
	       cJSON_AddStringToObject(o, "prefix", prefix) != NULL;
}

int flagcfg_build(const flagcfg *f, authcfg_config **out, char *err, size_t errlen)
{
	const char *uclaim = f->username_claim != NULL && *f->username_claim ? f->username_claim : "sub";
	cJSON *doc = NULL, *jwt, *is, *auds, *maps, *rules, *r;
	char *uprefix = NULL, *text = NULL, e[512] = "";
	int rc = AUTHCFG_E_NOMEM;

	if (f->issuer_url == NULL || !*f->issuer_url || f->client_id == NULL || !*f->client_id) {
		snprintf(err, errlen, "--oidc-issuer-url and --oidc-client-id are required");
		return AUTHCFG_E_INVALID;
	}
	uprefix = username_prefix(f->issuer_url, uclaim, f->username_prefix);
	doc = cJSON_CreateObject();
	if (uprefix == NULL || doc == NULL || !cJSON_AddStringToObject(doc, "apiVersion", "apiserver.config.k8s.io/v1") ||
	    !cJSON_AddStringToObject(doc, "kind", "AuthenticationConfiguration") ||
	    (jwt = cJSON_AddArrayToObject(doc, "jwt")) == NULL || (r = cJSON_CreateObject()) == NULL)
		goto out;
	if (!cJSON_AddItemToArray(jwt, r)) {
		cJSON_Delete(r);
		goto out;
	}
	if ((is = cJSON_AddObjectToObject(r, "issuer")) == NULL || !cJSON_AddStringToObject(is, "url", f->issuer_url) ||
	    (auds = cJSON_AddArrayToObject(is, "audiences")) == NULL ||
	    !cJSON_AddItemToArray(auds, cJSON_CreateString(f->client_id)))
		goto out;
	if ((maps = cJSON_AddObjectToObject(r, "claimMappings")) == NULL ||
	    !add_claim(maps, "username", uclaim, uprefix) ||
	    (f->groups_claim != NULL && *f->groups_claim &&
	     !add_claim(maps, "groups", f->groups_claim, f->groups_prefix != NULL ? f->groups_prefix : "")))
		goto out;
	if (f->nrequired > 0) {
		if ((rules = cJSON_AddArrayToObject(r, "claimValidationRules")) == NULL)
			goto out;
		for (size_t i = 0; i < f->nrequired; i++) {
			cJSON *rule;
			bool later = false;

			/* the flag is a Go map: a claim named twice keeps its last value */
			for (size_t k = i + 1; k < f->nrequired && !later; k++)
				later = strcmp(f->required[i][0], f->required[k][0]) == 0;
			if (later)
				continue;
			if ((rule = cJSON_CreateObject()) == NULL)
				goto out;
			if (!cJSON_AddItemToArray(rules, rule)) {
				cJSON_Delete(rule);
				goto out;
			}
			if (!cJSON_AddStringToObject(rule, "claim", f->required[i][0]) ||
			    !cJSON_AddStringToObject(rule, "requiredValue", f->required[i][1]))
				goto out;
		}
	}
	if ((text = cJSON_PrintUnformatted(doc)) == NULL)
		goto out;
	rc = authcfg_parse((const uint8_t *)text, strlen(text), out, e, sizeof(e));
	if (rc != 0)
		snprintf(err, errlen, "the --oidc-* flags as an authentication configuration: %s",
			 e[0] ? e : authcfg_strerror(rc));
out:
	if (rc == AUTHCFG_E_NOMEM && err != NULL && errlen > 0 && !e[0])
		snprintf(err, errlen, "out of memory");
	free(text);
	cJSON_Delete(doc);
	free(uprefix);
	return rc;
}
