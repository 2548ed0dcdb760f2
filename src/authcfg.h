/*
 * authcfg.h — the Kubernetes structured authentication configuration (`--authentication-config FILE`, kind
 * AuthenticationConfiguration, apiVersion apiserver.config.k8s.io/v1beta1 or /v1), read from YAML (libyaml) or
 * JSON (cJSON) and validated with the API server's rules (k8s.io/apiserver pkg/apis/apiserver/validation).
 * The field reference and every rule, with its source, are in docs/authentication-config.md.
 * Three steps, each its own module behind this API: authcfg_load.h (bytes -> a generic YAML/JSON tree),
 * authcfg_decode.h (tree -> these structs, strictly) and authcfg_validate.h (the API server's rules).
 *
 * Owns: authcfg_parse()/authcfg_load_file() return one authcfg_config that owns every string and array in it;
 * authcfg_free() releases all of it. Everything reachable from it is read-only after load, so any number of
 * threads may read one config (and call authcfg_issuer_find()) at once without locking.
 *
 * Decoding is strict like the API server's (serializer.EnableStrict): an unknown or duplicated field, a value of
 * the wrong type, a YAML alias, an explicit YAML tag other than !!str, a second YAML document or a NUL byte in a
 * string is refused with the field path. Then validation runs and collects every error, each formatted the way
 * k8s.io/apimachinery's field.Error prints it (`jwt[0].issuer.url: Invalid value: "http://x": URL scheme must be
 * https`); several errors are joined like an aggregate ("[e1, e2]").
 *
 * CEL: expressions are not compiled here. Each is kept as an authcfg_expr with its kind (which CEL environment
 * and result type the API server uses for it) and its field path, for the caller to compile and to name in
 * errors. Rules that need a compiled expression (compile errors, "claims.email_verified must be used … when
 * claims.email is used in claimMappings.username.expression") belong to that step.
 */
#ifndef KOS_AUTHCFG_H
#define KOS_AUTHCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTHCFG_MAX_BYTES (1u << 20)  /* a larger file is refused before parsing */
#define AUTHCFG_MAX_DEPTH 32          /* nesting of YAML/JSON collections */
#define AUTHCFG_MAX_NODES 65536       /* scalars + collections in one document */
#define AUTHCFG_MAX_MEMBERS 256       /* members of one mapping (duplicate detection is quadratic) */
#define AUTHCFG_MAX_JWT 64            /* the API server's limit on jwt[] */
#define AUTHCFG_MAX_LIST 64           /* ours: audiences, claimValidationRules, extra, userValidationRules */
#define AUTHCFG_MAX_URL 2048          /* = OIDC_URL_MAX */
#define AUTHCFG_MAX_ERRORS 32         /* validation errors reported (the rest are counted) */

enum authcfg_err {
	AUTHCFG_OK = 0,
	AUTHCFG_E_SYNTAX = -1,    /* not YAML / not JSON */
	AUTHCFG_E_DECODE = -2,    /* strict decoding: unknown/duplicate field, wrong type, alias, tag, limits */
	AUTHCFG_E_INVALID = -3,   /* decoded, but validation failed (err lists every error) */
	AUTHCFG_E_TOO_LARGE = -4, /* more than AUTHCFG_MAX_BYTES, or empty */
	AUTHCFG_E_NOMEM = -5,
	AUTHCFG_E_IO = -6,        /* authcfg_load_file: cannot open or read */
};
const char *authcfg_strerror(int err);

enum authcfg_api_version { AUTHCFG_V1BETA1 = 1, AUTHCFG_V1 = 2 };

/* Which CEL environment and result type the API server compiles an expression with. */
enum authcfg_expr_kind {
	AUTHCFG_EXPR_CLAIM_VALIDATION = 1, /* claims -> bool (claimValidationRules[i].expression) */
	AUTHCFG_EXPR_USERNAME,             /* claims -> string */
	AUTHCFG_EXPR_GROUPS,               /* claims -> string or list(string) */
	AUTHCFG_EXPR_UID,                  /* claims -> string */
	AUTHCFG_EXPR_EXTRA,                /* claims -> string or list(string) (extra[i].valueExpression) */
	AUTHCFG_EXPR_USER_VALIDATION,      /* user -> bool (userValidationRules[i].expression) */
};

typedef struct authcfg_expr {
	char *expression;            /* NULL = not set (the API server treats "" as not set too) */
	char *path;                  /* e.g. "jwt[1].claimMappings.extra[0].valueExpression"; set with expression */
	enum authcfg_expr_kind kind;
} authcfg_expr;

/* claimMappings.username / .groups (PrefixedClaimOrExpression) and .uid (ClaimOrExpression: prefix stays NULL).
 * After validation at most one of claim and expr.expression is set; prefix is set only with claim (username
 * always, groups always: the API server requires it). */
typedef struct authcfg_mapping {
	char *claim;                 /* NULL = not set */
	char *prefix;                /* NULL = not set; "" = set to the empty string (no prefix) */
	authcfg_expr expr;
} authcfg_mapping;

typedef struct authcfg_claim_rule {
	char *claim;                 /* NULL when expr is used */
	char *required_value;        /* with claim: never NULL ("" = the claim must be the empty string) */
	authcfg_expr expr;           /* kind CLAIM_VALIDATION */
	char *message;               /* NULL = not set; only with expr */
} authcfg_claim_rule;

typedef struct authcfg_extra {
	char *key;                   /* lowercase domain-prefixed path, e.g. "example.com/tenant" */
	authcfg_expr value;          /* kind EXTRA */
} authcfg_extra;

typedef struct authcfg_user_rule {
	authcfg_expr expr;           /* kind USER_VALIDATION */
	char *message;               /* NULL = not set */
} authcfg_user_rule;

/* One jwt[] entry (a JWTAuthenticator). */
typedef struct authcfg_issuer {
	size_t index;                /* position in jwt[] */
	/* issuer */
	char *url;                   /* https, no user info/query/fragment; unique; the token's "iss" selects it */
	size_t url_len;
	char *discovery_url;         /* NULL = "<url>/.well-known/openid-configuration"; else https, unique, != url */
	char *certificate_authority; /* PEM (validated: at least one certificate), NULL = system roots */
	size_t certificate_authority_len;
	char **audiences;            /* >= 1, non-empty, unique */
	size_t naudiences;
	bool audience_match_any;     /* audienceMatchPolicy: MatchAny (required when naudiences > 1) */
	/* claimValidationRules, claimMappings, userValidationRules */
	authcfg_claim_rule *claim_rules;
	size_t nclaim_rules;
	authcfg_mapping username;    /* claim (with prefix) or expr: required */
	authcfg_mapping groups;      /* optional */
	authcfg_mapping uid;         /* optional; prefix always NULL */
	authcfg_extra *extra;
	size_t nextra;
	authcfg_user_rule *user_rules;
	size_t nuser_rules;
} authcfg_issuer;

typedef struct authcfg_config {
	enum authcfg_api_version api_version;
	authcfg_issuer *jwt;         /* njwt entries, in file order; 0 is valid (the API server allows it) */
	size_t njwt;
} authcfg_config;

/*
 * Parses and validates a configuration document p[0..len): JSON when its first non-blank byte is '{' (as the
 * API server decides), YAML otherwise. Never reads past len; p need not be NUL-terminated.
 * Returns 0 and *out (free with authcfg_free()), or a negative authcfg_err with the reason in err (one line,
 * truncated to errlen; field paths as the API server names them; never a certificate's bytes). Pure; any thread.
 */
int authcfg_parse(const uint8_t *p, size_t len, authcfg_config **out, char *err, size_t errlen);
/* Reads path (at most AUTHCFG_MAX_BYTES) and calls authcfg_parse(). AUTHCFG_E_IO when it cannot be read.
 * Blocking file I/O: call at start-up or from a reload thread, never from an event-loop thread. */
int authcfg_load_file(const char *path, authcfg_config **out, char *err, size_t errlen);
void authcfg_free(authcfg_config *c);

/* The authenticator whose issuer.url equals iss[0..len) byte for byte (the API server's selection by the
 * token's unverified "iss"), or NULL. No allocation; any thread. */
const authcfg_issuer *authcfg_issuer_find(const authcfg_config *c, const char *iss, size_t len);
/* Every CEL expression of one authenticator, in the API server's validation order (claim rules, username,
 * groups, uid, extra, user rules): fills out[0..max) and returns how many there are (may exceed max). */
size_t authcfg_issuer_exprs(const authcfg_issuer *is, const authcfg_expr **out, size_t max);

#endif
