/*
 * jwt.h — JWS compact serialization (RFC 7515) for OIDC ID tokens: strict parsing of the three parts.
 *
 * Owns: a jwt_token holds the parsed header (cJSON), and one heap block with the decoded payload and signature;
 * jwt_token_free() releases both. The signing input is a slice borrowed from the caller's token buffer, which
 * must outlive the jwt_token. Nothing here trusts the payload: jwt_parse() only decodes it; callers parse it as
 * JSON (jsonstrict_parse) and, before jws_verify() succeeded, read only its "iss" (to pick the issuer, as the API
 * server does) and nothing else.
 *
 * Header rules: a JSON object with a string "alg" from jwa.h's table (none, HS*, anything else: refused),
 * "kid" a string if present, no "crit" at all (we implement no extension, so any listed one is unknown);
 * "jku", "x5u", "jwk", "x5c" are ignored — keys come only from the issuer's JWKS.
 *
 * The header and payload are strict JSON (jsonstrict.h); algorithm names come from jwa.h; the signature is
 * checked by jws.h. This module does no crypto and knows no keys.
 */
#ifndef KOS_JWT_H
#define KOS_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "jsonstrict.h"
#include "jwa.h"

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
	int alg;                       /* enum jwa_alg */
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
void jwt_token_free(jwt_token *t);
const char *jwt_strerror(int err);

#endif
