/*
 * jwks.h — a JSON Web Key Set: parsing (RFC 7517/7518/8037) into OpenSSL public keys, and lookup.
 *
 * A key set is immutable after jwks_parse() and reference-counted: the fetcher thread builds a new one and swaps
 * it in atomically (see oidc.h); verifying threads hold a reference for the length of one verification. Keys of
 * unknown type, unknown curve or `use: enc` are skipped, not fatal; a set with no usable key is an error.
 */
#ifndef KOS_JWKS_H
#define KOS_JWKS_H

#include <stddef.h>
#include <stdint.h>

#define JWKS_MAX_BYTES (1u << 20) /* a larger document is refused before parsing */
#define JWKS_MAX_KEYS 256

typedef struct jwks_keyset jwks_keyset;

enum jwks_err {
	JWKS_OK = 0,
	JWKS_E_TOO_BIG = -1,
	JWKS_E_JSON = -2,     /* not JSON, or not an object with a "keys" array */
	JWKS_E_NO_KEYS = -3,  /* no usable key */
	JWKS_E_NOMEM = -4,
};

/* Parses p[0..len). On success *out holds a new set with one reference. err gets a one-line reason on
 * failure (and a note of skipped keys on success, if errlen > 0). */
int jwks_parse(const uint8_t *p, size_t len, jwks_keyset **out, char *err, size_t errlen);
void jwks_keyset_ref(jwks_keyset *ks);
void jwks_keyset_release(jwks_keyset *ks); /* NULL is fine */
size_t jwks_keyset_count(const jwks_keyset *ks);
const char *jwks_strerror(int err);

#endif
