/*
 * b64url.h — strict base64url (RFC 4648 §5) without padding, as JWS compact serialization requires (RFC 7515 §2).
 *
 * Owns nothing: every function works on caller buffers and never allocates. Decoding is strict on purpose: no
 * '=' padding, no whitespace or line breaks, no characters of the standard alphabet ('+', '/'), a length of
 * 4k+1 refused, and the unused low bits of the last character must be zero (a canonical encoding), so one byte
 * string has exactly one accepted encoding. Go's decoder (used by the Kubernetes API server) skips CR/LF and
 * ignores non-zero trailing bits; issuers never emit either, so refusing them only removes ambiguity.
 */
#ifndef KOS_B64URL_H
#define KOS_B64URL_H

#include <stddef.h>
#include <stdint.h>

enum b64url_err {
	B64URL_OK = 0,
	B64URL_E_CHAR = -1,    /* a byte outside the base64url alphabet (includes '=' and whitespace) */
	B64URL_E_LENGTH = -2,  /* 4k+1 characters cannot encode whole bytes */
	B64URL_E_BITS = -3,    /* non-zero unused bits in the last character: not canonical */
	B64URL_E_SPACE = -4,   /* output buffer too small */
};

/* Upper bound of the decoded size of n input characters (exact for valid input). */
static inline size_t b64url_decoded_max(size_t n)
{
	return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}
/* Exact encoded size of n bytes. */
static inline size_t b64url_encoded_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Decodes p[0..len) into out[0..cap). On success writes *outlen and returns 0; otherwise a negative b64url_err
 * and *outlen untouched (out may have been partly written). Any thread. */
int b64url_decode(const uint8_t *p, size_t len, uint8_t *out, size_t cap, size_t *outlen);
/* Encodes p[0..len) into out[0..cap) without padding and without a NUL; returns the length written or
 * B64URL_E_SPACE. Any thread. */
int b64url_encode(const uint8_t *p, size_t len, char *out, size_t cap);
const char *b64url_strerror(int err);

#endif
