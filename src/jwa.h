/*
 * jwa.h — the JSON Web Algorithms (RFC 7518, EdDSA of RFC 8037) this agent verifies with: the table of names,
 * and what each one needs (digest, padding). No crypto here: the table is what jwt.c checks a header against,
 * what jwks.c checks a key's "alg" against and what jws.c maps to OpenSSL.
 *
 * The list is an allow-list: "none", the HMAC algorithms and anything else are unknown names, refused wherever
 * a name is parsed. Owns nothing; any thread.
 */
#ifndef KOS_JWA_H
#define KOS_JWA_H

#include <stdbool.h>
#include <stddef.h>

enum jwa_alg {
	JWA_RS256 = 1, JWA_RS384, JWA_RS512,
	JWA_PS256, JWA_PS384, JWA_PS512,
	JWA_ES256, JWA_ES384, JWA_ES512,
	JWA_EDDSA,
	JWA_MAX = JWA_EDDSA,
};
#define JWA_BIT(a) (1u << (a))

#define JWA_E_UNKNOWN (-1) /* a name not in the table (none, HS256, "rs256"…) */

/* "RS256" … "EdDSA" (exact, case-sensitive) → enum jwa_alg, else JWA_E_UNKNOWN. */
int jwa_parse(const char *name, size_t len);
/* The name of alg, or "?". */
const char *jwa_name(int alg);
/* Comma-separated alg list (spaces around names allowed) → bit mask of JWA_BIT(); NULL or "" = RS256.
 * An unknown or refused name (none, HS256…) is an error: returns JWA_E_UNKNOWN and leaves *mask untouched. */
int jwa_list_parse(const char *list, unsigned *mask);
/* The SHA-2 digest alg signs with, by its size in bits (256, 384, 512); 0 for EdDSA (it hashes internally)
 * and for an unknown alg. */
unsigned jwa_digest_bits(int alg);
/* True for RSASSA-PSS (PS256/384/512). */
bool jwa_is_pss(int alg);

#endif
