/*
 * jwt.h — JWS compact serialization (RFC 7515) for OIDC ID tokens: strict parsing and signature verification.
 *
 * Owns: a jwt_token holds the parsed header (cJSON), and one heap block with the decoded payload and signature;
 * jwt_token_free() releases both. The signing input is a slice borrowed from the caller's token buffer, which
 * must outlive the jwt_token. Nothing here trusts the payload: jwt_parse() only decodes it; callers parse it as
 * JSON (jwt_json_parse) and, before jwt_verify() succeeded, read only its "iss" (to pick the issuer, as the API
 * server does) and nothing else.
 *
 * Header rules: a JSON object with a string "alg" from the list below (none, HS*, anything else: refused),
 * "kid" a string if present, no "crit" at all (we implement no extension, so any listed one is unknown);
 * "jku", "x5u", "jwk", "x5c" are ignored — keys come only from the issuer's JWKS.
 *
 * JSON is strict (jwt_json_parse): RFC 8259 strings and numbers, valid UTF-8, no raw control bytes, no \u0000
 * (cJSON would cut the string there), and no duplicated top-level member names. Duplicates are refused rather
 * than resolved because cJSON keeps the first and Go's encoding/json (the API server) keeps the last — and Go
 * matches struct fields case-insensitively ("ISS" sets iss; also U+017F and U+212A fold to 's' and 'k') — so
 * names are compared with Go's folding: any two that Go could confuse make the token malformed.
 */
#ifndef KOS_JWT_H
#define KOS_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "jwks.h"

enum jwt_alg {
	JWT_ALG_RS256 = 1, JWT_ALG_RS384, JWT_ALG_RS512,
	JWT_ALG_PS256, JWT_ALG_PS384, JWT_ALG_PS512,
	JWT_ALG_ES256, JWT_ALG_ES384, JWT_ALG_ES512,
	JWT_ALG_EDDSA,
	JWT_ALG_MAX = JWT_ALG_EDDSA,
};
#define JWT_ALG_BIT(a) (1u << (a))

#define JWT_DEFAULT_MAX_BYTES 16384u

enum jwt_err {
	JWT_OK = 0,
	JWT_E_TOO_LARGE = -1,  /* token longer than the cap */
	JWT_E_FORMAT = -2,     /* not three strict base64url parts */
	JWT_E_HEADER = -3,     /* header not a strict JSON object, or kid not a string */
	JWT_E_ALG = -4,        /* alg missing, none, HMAC or unknown */
	JWT_E_CRIT = -5,       /* crit present */
	JWT_E_SIGNATURE = -6,  /* signature does not verify (or is malformed) */
	JWT_E_JSON = -7,       /* payload not a strict JSON object */
	JWT_E_KEY = -8,        /* key does not fit the token's alg */
	JWT_E_NOMEM = -9,
};

typedef struct jwt_token {
	int alg;                       /* enum jwt_alg */
	const char *kid;               /* into header; NULL when the header has no kid */
	size_t kid_len;
	const uint8_t *signing_input;  /* borrowed: "<header>.<payload>" of the caller's token */
	size_t signing_input_len;
	uint8_t *payload;              /* decoded, owned (same block as sig) */
	size_t payload_len;
	uint8_t *sig;                  /* decoded */
	size_t sig_len;
	cJSON *header;                 /* owned */
} jwt_token;

/* Parses p[0..len) (no "Bearer "), refusing more than max_len bytes (0 = JWT_DEFAULT_MAX_BYTES). On success
 * *out is filled and must be released with jwt_token_free(); on failure *out is untouched. Any thread. */
int jwt_parse(const uint8_t *p, size_t len, size_t max_len, jwt_token *out);
/* Verifies the signature with key k (EVP_PKEY prepared by jwks_parse). 0, JWT_E_KEY when k cannot verify this
 * alg, JWT_E_SIGNATURE otherwise. Any thread; allocates only OpenSSL's per-call context. */
int jwt_verify(const jwt_token *t, const jwks_key *k);
void jwt_token_free(jwt_token *t);
/* For jwks.c: a verify context for key k and alg, initialised once (padding, salt length, digest), or NULL for
 * EdDSA (one-shot only) and on failure. The caller frees it with EVP_PKEY_CTX_free(). */
struct evp_pkey_ctx_st *jwt_key_ctx_new(const jwks_key *k, int alg);

/* Strict JSON object parse (see above). *out (caller frees with cJSON_Delete) on success. */
int jwt_json_parse(const uint8_t *p, size_t len, cJSON **out);
/* The duplicate rule of jwt_json_parse for one nested object (jwks.c applies it to each JWK): 0 when no two
 * member names fold to the same Go field name, JWT_E_JSON when two do, JWT_E_NOMEM. */
int jwt_json_check_duplicates(const cJSON *obj);

/* "RS256" … "EdDSA" (exact, case-sensitive) → enum jwt_alg, else JWT_E_ALG. */
int jwt_alg_parse(const char *name, size_t len);
const char *jwt_alg_name(int alg);
/* Comma-separated alg list (spaces around names allowed) → bit mask of JWT_ALG_BIT(); NULL or "" = RS256.
 * An unknown or refused name (none, HS256…) is an error: returns JWT_E_ALG and leaves *mask untouched. */
int jwt_alg_list_parse(const char *list, unsigned *mask);
const char *jwt_strerror(int err);

#endif
