/*
 * jws.h — JWS signature verification (RFC 7515 §5.2) of a parsed token with one key of the issuer's set, with
 * OpenSSL 3: RSASSA-PKCS1-v1_5, RSASSA-PSS, ECDSA (P-256/384/521) and Ed25519 (RFC 7518 §3, RFC 8037).
 *
 * Sits above jwt.h (the parsed token) and jwks.h (the prepared key); neither includes this. Owns nothing: the
 * digests are fetched once per process and each verifying thread keeps its digest contexts (freed at thread
 * exit), so OpenSSL's per-call EVP_PKEY_CTX is the only allocation of a verification.
 */
#ifndef KOS_JWS_H
#define KOS_JWS_H

#include "jwks.h"
#include "jwt.h"

/* Verifies t's signature with key k. 0 when it verifies; JWT_E_KEY when k cannot verify t's alg (type, curve
 * or the JWK's own "alg" differ); JWT_E_SIGNATURE otherwise (including a malformed signature); JWT_E_NOMEM
 * when OpenSSL failed. Any thread, concurrently. */
int jws_verify(const jwt_token *t, const jwks_key *k);

#endif
