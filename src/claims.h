/*
 * claims.h — the Kubernetes API server's OIDC claim rules (k8s.io/apiserver plugin/pkg/authenticator/token/oidc
 * with go-oidc's ID-token checks), applied to a payload whose signature was already verified.
 *
 * Owns: a claims_rules holds borrowed configuration strings (they must outlive it) plus the resolved username
 * prefix, which it owns (claims_rules_free). claims_map() returns a new identity (one reference) on success.
 *
 * The rules, in the API server's order:
 *   iss      a string equal to the issuer URL, byte for byte
 *   aud      a string or an array of strings containing the client ID
 *   exp      required, a JSON number; expired when exp < now (no leeway, exp == now still valid)
 *   nbf      when present (not null), a number; refused when now + 60 s < nbf
 *   iat      not checked
 *   username the username claim (default "sub") must be a string; if that claim is "email" and
 *            "email_verified" is present it must be the boolean true
 *   prefix   username prefix unset or "" → "<issuer>#" unless the claim is "email"; "-" → none; else literal
 *   groups   the groups claim, if configured and present (null = absent), is a string or an array of strings;
 *            each gets the groups prefix
 *   required each required claim is present, a string, and equal to the configured value
 * Stricter than the API server, always towards refusing (so we never grant what it would deny): an empty
 * username or group, a null inside the groups array, a number quoted as a string for exp/nbf, and any control
 * character (bytes 0x00-0x1f, 0x7f) in the user or a group name are refused. A user or group starting with
 * "system:" is refused unless allow_reserved.
 */
#ifndef KOS_CLAIMS_H
#define KOS_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "identity.h"

#define CLAIMS_NBF_LEEWAY_S 60

enum claims_err {
	CLAIMS_OK = 0,
	CLAIMS_E_ISSUER = -1,
	CLAIMS_E_AUDIENCE = -2,
	CLAIMS_E_EXPIRED = -3,
	CLAIMS_E_NOT_YET = -4,
	CLAIMS_E_CLAIM = -5,     /* a bad or missing claim; the detail says which */
	CLAIMS_E_RESERVED = -6,
	CLAIMS_E_NOMEM = -7,
	CLAIMS_E_CONFIG = -8,    /* claims_rules_init: bad configuration */
	CLAIMS_E_IDENTITY = -9,  /* a user or group an HTTP header cannot carry unchanged (identity_check) */
};

typedef struct claims_rules {
	const char *issuer;
	const char *client_id;
	const char *username_claim;    /* never NULL after init */
	char *username_prefix;         /* resolved, owned; "" = none */
	const char *groups_claim;      /* NULL = no groups */
	const char *groups_prefix;     /* never NULL after init */
	const char *const *req_keys;   /* nrequired pairs, borrowed */
	const char *const *req_values;
	size_t nrequired;
	bool allow_reserved;
} claims_rules;

/* username_claim NULL = "sub"; username_prefix NULL or "" = the default rule, "-" = none; groups_prefix NULL
 * = "". Returns 0 or CLAIMS_E_CONFIG / CLAIMS_E_NOMEM. */
int claims_rules_init(claims_rules *r, const char *issuer, const char *client_id, const char *username_claim,
		      const char *username_prefix, const char *groups_claim, const char *groups_prefix);
void claims_rules_free(claims_rules *r);

/* Applies the rules to a verified payload at time now. On success *out is a new identity (exp and key_fp
 * recorded). On failure a negative claims_err and, if detail != NULL, a static or thread-local string that
 * names the claim (never a claim value). Any thread. */
int claims_map(const claims_rules *r, const cJSON *payload, int64_t now, uint64_t key_fp, identity **out,
	       const char **detail);
const char *claims_strerror(int err);
/* The token checks that precede any mapping (iss, aud, exp, nbf; rules above), shared with the
 * AuthenticationConfiguration path (mapping.h): iss equals issuer; aud (string or array of strings) contains at
 * least one of auds[0..naud) (audienceMatchPolicy MatchAny; the flags' client ID is a list of one). 0 with
 * *exp (unix seconds), or a negative claims_err with a static detail. Any thread. */
int claims_check_std(const char *issuer, const char *const *auds, size_t naud, const cJSON *payload, int64_t now,
		     int64_t *exp, const char **detail);

#endif
