/*
 * flagcfg.h — the `--oidc-*` flags as a one-issuer AuthenticationConfiguration, built at start-up exactly as
 * kube-apiserver builds its JWTAuthenticator from the same flags (k8s.io/kubernetes
 * pkg/kubeapiserver/options/authentication.go, ToAuthenticationConfig), so that flags and
 * --authentication-config share one claim-rule implementation (mapping.h):
 *   --oidc-issuer-url       issuer.url
 *   --oidc-client-id        issuer.audiences = [client ID] (one audience: MatchAny and MatchExact agree)
 *   --oidc-username-claim   claimMappings.username.claim ("sub" when unset, the flag's default)
 *   --oidc-username-prefix  claimMappings.username.prefix: unset or "" → "<issuer URL>#" unless the claim is
 *                           "email" (then ""); "-" → ""; anything else as given
 *   --oidc-groups-claim     claimMappings.groups.claim, with prefix --oidc-groups-prefix ("" when unset)
 *   --oidc-required-claim   one claimValidationRules entry {claim, requiredValue} each
 * --oidc-ca-file and --oidc-signing-algs stay outside the configuration, as in the API server (the CA goes to
 * the provider as a file, the algorithms to the verifier).
 *
 * The document is written as JSON and read back with authcfg_parse(), so the flags pass the API server's
 * validation of an AuthenticationConfiguration (ValidateAuthenticationConfiguration runs on the converted
 * flags there too) and come out in the same structures a file would.
 *
 * Owns: nothing kept; flagcfg_build() returns a new authcfg_config (authcfg_free()). Pure; any thread.
 */
#ifndef KOS_FLAGCFG_H
#define KOS_FLAGCFG_H

#include <stddef.h>

#include "authcfg.h"

typedef struct flagcfg {
	const char *issuer_url;       /* required */
	const char *client_id;        /* required */
	const char *username_claim;   /* NULL or "" = "sub" */
	const char *username_prefix;  /* NULL = unset (the default rule above) */
	const char *groups_claim;     /* NULL or "" = no groups */
	const char *groups_prefix;    /* NULL = "" */
	const char *const (*required)[2]; /* nrequired {claim, value} pairs */
	size_t nrequired;
} flagcfg;

/* 0 and *out (one jwt[] entry), or a negative authcfg_err with one line in err (which flag, then the
 * configuration's own error). */
int flagcfg_build(const flagcfg *f, authcfg_config **out, char *err, size_t errlen);

#endif
