/*
 * mapping.h — one AuthenticationConfiguration authenticator's claim mappings and validation rules, compiled
 * once (CEL through cel.h) and applied to a verified payload: the Kubernetes API server's getUsername,
 * getGroups, getUID, getExtra, required claims, claimValidationRules and userValidationRules, in that order
 * (k8s.io/apiserver plugin/pkg/authenticator/token/oidc). The token checks before it (iss, aud, exp, nbf) are
 * claims_check_std() (claims.h).
 *
 * Owns: a mapping owns copies of every claim name, prefix, key, message and expression text, and its compiled
 * programs; it borrows nothing from the authcfg_issuer it was compiled from (that may be freed at once).
 * mapping_free() releases it. A compiled mapping is read-only: any number of threads apply it at once.
 *
 * Semantics (API server first, then where we are stricter — always towards refusing):
 *   username  claim: present and a string ("email" with email_verified present needs it to be true); the prefix
 *             is prepended when non-empty. expression: must give a string.
 *   groups    claim: absent or null = none; a string or an array of strings, each prefixed. expression: a
 *             string, a list of strings or null; "" entries dropped, empty = none.
 *   uid       claim: present, a string (null = none). expression: a string ("" = none).
 *   extra     each valueExpression: a string, a list of strings or null; "" dropped; an empty result omits
 *             the key.
 *   rules     claim + requiredValue: present, a string, equal. expression rules and user rules: a false result
 *             refuses the token with "validation expression '<expr>' failed: <message>".
 *   stricter  an empty username, an empty group from a claim, any control byte in the user, a group, the uid or
 *             an extra value, and (unless allow_reserved) a user or group starting with "system:" are refused.
 *             At load, a mapping expression whose static type can never be acceptable (e.g. a username
 *             expression of type bool) is refused, where the API server would fail every token at run time.
 */
#ifndef KOS_MAPPING_H
#define KOS_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "authcfg.h"
#include "identity.h"

#define MAPPING_ARENA_BYTES (64u * 1024) /* per-thread CEL scratch (no allocation per evaluation) */
/* groups, or values of one extra key, from one token: the API server has no limit, and the handler refuses more
 * groups than --max-groups (at most CONFIG_MAX_GROUPS_LIMIT, 4096) with its own 403, so every count it may allow
 * must get through here */
#define MAPPING_MAX_VALUES 4096

enum mapping_err {
	MAPPING_OK = 0,
	MAPPING_E_COMPILE = -1,  /* mapping_compile: an expression is refused (err names the field) */
	MAPPING_E_CLAIM = -2,    /* apply: a mapping or rule refused the token (detail says which) */
	MAPPING_E_RESERVED = -3, /* apply: system: user or group */
	MAPPING_E_NOMEM = -4,
	MAPPING_E_INTERNAL = -5, /* apply: CEL arena or step budget exhausted */
	MAPPING_E_IDENTITY = -6, /* apply: a value an HTTP header cannot carry unchanged (identity_check) */
};
const char *mapping_strerror(int err);

typedef struct mapping mapping;

/* Compiles every expression of is (claims environment for mappings and claim rules, user for user rules) and
 * adds the load-time rules that need a syntax tree: validation rules must be boolean; a username expression
 * using claims.email needs claims.email_verified in the username expression, an extra valueExpression or a
 * claim validation rule. On failure err gets one line in the API server's field.Error form:
 * `jwt[0].claimMappings.username.expression: Invalid value: "claims.x(": compilation failed: <message> (at
 * byte N)`. 0 and *out, or MAPPING_E_COMPILE / MAPPING_E_NOMEM. Any thread. */
int mapping_compile(const authcfg_issuer *is, mapping **out, char *err, size_t errlen);
void mapping_free(mapping *m);

/* Optional step-by-step report of mapping_apply() for `kube-oidc-spoa explain`: line() gets one human line per
 * check (never token bytes; claim values only as mapped results). */
typedef struct mapping_trace {
	void (*line)(void *ud, const char *text);
	void *ud;
} mapping_trace;

/* printf into one trace line (cut at 1 KiB); nothing when t or t->line is NULL. Shared by the explain paths of
 * mapping, verifier and issuers. */
void mapping_tracef(const mapping_trace *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Applies the mappings and rules to a payload whose signature and standard claims were verified. On success
 * *out is a new identity (exp and key_fp recorded). Otherwise a negative mapping_err and *detail (static or
 * thread-local, the API server's wording, e.g. "oidc: error evaluating username claim expression: no such key:
 * email"). trace may be NULL (the hot path). Any thread. */
int mapping_apply(const mapping *m, const cJSON *payload, int64_t exp, uint64_t key_fp, bool allow_reserved,
		  identity **out, const char **detail, const mapping_trace *trace);

#endif
