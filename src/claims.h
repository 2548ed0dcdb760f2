/*
 * claims.h — the token checks every authenticator makes before any claim mapping, as the Kubernetes API
 * server's OIDC authenticator makes them (go-oidc's ID-token verification, k8s.io/apiserver
 * plugin/pkg/authenticator/token/oidc), applied to a payload whose signature was already verified. The claim
 * mappings and rules after them (username, groups, uid, extra, required claims, CEL) are mapping.h's: the
 * --oidc-* flags reach them as a one-issuer AuthenticationConfiguration (flagcfg.h), so there is one
 * implementation of each rule.
 *
 * The rules:
 *   iss      a string equal to the issuer URL, byte for byte
 *   aud      a string or an array of strings containing at least one of the authenticator's audiences
 *            (audienceMatchPolicy MatchAny; the flags' client ID is a list of one)
 *   exp      required, a JSON number; expired when exp < now (no leeway, exp == now still valid)
 *   nbf      when present (not null), a number; refused when now + 60 s < nbf
 *   iat      not checked
 * Stricter than the API server, always towards refusing: a number quoted as a string for exp/nbf.
 *
 * Owns nothing; pure; any thread.
 */
#ifndef KOS_CLAIMS_H
#define KOS_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define CLAIMS_NBF_LEEWAY_S 60

enum claims_err {
	CLAIMS_OK = 0,
	CLAIMS_E_ISSUER = -1,
	CLAIMS_E_AUDIENCE = -2,
	CLAIMS_E_EXPIRED = -3,
	CLAIMS_E_NOT_YET = -4,
	CLAIMS_E_CLAIM = -5,     /* nbf not a number */
};

const char *claims_strerror(int err);
/* The checks above on payload at time now for issuer and auds[0..naud): 0 with *exp (unix seconds), or a
 * negative claims_err with a static detail. Any thread. */
int claims_check_std(const char *issuer, const char *const *auds, size_t naud, const cJSON *payload, int64_t now,
		     int64_t *exp, const char **detail);

#endif
