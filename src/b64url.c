/*
 * b64url.c — strict base64url; see b64url.h for why each leniency of other decoders is refused.
 */
#include "b64url.h"

/* 0..63 for the alphabet, 0xff for everything else (including '=', '+', '/', whitespace, NUL). */
static const uint8_t dec_table[256] = {
#define X 0xff
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, 62, X, X, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X, X, X, X, X,
	X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X, X, X, X, 63,
	X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
	X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
#undef X
};

static const char enc_table[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64url_decode(const uint8_t *p, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	size_t rem = len % 4, need, i, o = 0;
	uint32_t v;

	if (rem == 1)
		return B64URL_E_LENGTH;
	need = b64url_decoded_max(len);
	if (need > cap)
		return B64URL_E_SPACE;
	for (i = 0; len - i >= 4; i += 4) {
		uint8_t a = dec_table[p[i]], b = dec_table[p[i + 1]], c = dec_table[p[i + 2]], d = dec_table[p[i + 3]];

		if ((a | b | c | d) & 0x80)
			return B64URL_E_CHAR;
		v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	if (rem) {
		uint8_t a = dec_table[p[i]], b = dec_table[p[i + 1]], c = rem == 3 ? dec_table[p[i + 2]] : 0;

		if ((a | b | c) & 0x80)
			return B64URL_E_CHAR;
		v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
		/* 2 chars carry 1 byte (4 spare bits), 3 chars carry 2 bytes (2 spare bits): spare bits must be 0 */
		if (rem == 2 ? (v & 0xffff) != 0 : (v & 0xff) != 0)
			return B64URL_E_BITS;
		out[o++] = (uint8_t)(v >> 16);
		if (rem == 3)
			out[o++] = (uint8_t)(v >> 8);
	}
	*outlen = o;
	return B64URL_OK;
}

int b64url_encode(const uint8_t *p, size_t len, char *out, size_t cap)
{
	size_t need = b64url_encoded_len(len), i, o = 0;

	if (need > cap || need > (size_t)INT32_MAX)
		return B64URL_E_SPACE;
	for (i = 0; len - i >= 3; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = enc_table[v >> 18];
		out[o++] = enc_table[(v >> 12) & 63];
		out[o++] = enc_table[(v >> 6) & 63];
		out[o++] = enc_table[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		out[o++] = enc_table[v >> 18];
		out[o++] = enc_table[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		out[o++] = enc_table[v >> 18];
		out[o++] = enc_table[(v >> 12) & 63];
		out[o++] = enc_table[(v >> 6) & 63];
	}
	return (int)o;
}

const char *b64url_strerror(int err)
{
	switch (err) {
	case B64URL_OK: return "ok";
	case B64URL_E_CHAR: return "invalid base64url character";
	case B64URL_E_LENGTH: return "invalid base64url length";
	case B64URL_E_BITS: return "non-canonical base64url";
	case B64URL_E_SPACE: return "base64url output too large";
	}
	return "unknown base64url error";
}
