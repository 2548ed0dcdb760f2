/*
 * jwt.c — compact JWS parsing: three strict base64url parts, a strict JSON header with an allowed alg; see
 * jwt.h for the rules and why. The decoded parts share one heap block.
 */
#include "jwt.h"

#include <stdlib.h>
#include <string.h>

#include "b64url.h"

const char *jwt_strerror(int err)
{
	switch (err) {
	case JWT_OK: return "ok";
	case JWT_E_TOO_LARGE: return "token too large";
	case JWT_E_FORMAT: return "not a compact JWS";
	case JWT_E_HEADER: return "malformed header";
	case JWT_E_ALG: return "signing algorithm not supported";
	case JWT_E_CRIT: return "unsupported critical header";
	case JWT_E_SIGNATURE: return "invalid signature";
	case JWT_E_JSON: return "malformed payload";
	case JWT_E_KEY: return "key does not fit the algorithm";
	case JWT_E_NOMEM: return "out of memory";
	}
	return "unknown jwt error";
}

/* ---- parse ---- */

int jwt_parse(const uint8_t *p, size_t len, size_t max_len, jwt_token *out)
{
	const uint8_t *d1, *d2;
	size_t hlen, plen, slen, n;
	uint8_t *buf = NULL, *hdr, *pay, *sig;
	size_t hdr_n, pay_n, sig_n;
	cJSON *h = NULL;
	const cJSON *alg, *kid;
	int rc, a;

	if (!max_len)
		max_len = JWT_DEFAULT_MAX_BYTES;
	if (len > max_len)
		return JWT_E_TOO_LARGE;
	d1 = memchr(p, '.', len);
	if (!d1)
		return JWT_E_FORMAT;
	hlen = (size_t)(d1 - p);
	d2 = memchr(d1 + 1, '.', len - hlen - 1);
	if (!d2)
		return JWT_E_FORMAT;
	plen = (size_t)(d2 - d1 - 1);
	slen = len - hlen - plen - 2;
	if (memchr(d2 + 1, '.', slen)) /* a JWE has five parts */
		return JWT_E_FORMAT;
	if (hlen == 0 || plen == 0)
		return JWT_E_FORMAT;

	n = b64url_decoded_max(hlen) + b64url_decoded_max(plen) + b64url_decoded_max(slen) + 1;
	buf = malloc(n);
	if (!buf)
		return JWT_E_NOMEM;
	hdr = buf;
	if (b64url_decode(p, hlen, hdr, b64url_decoded_max(hlen), &hdr_n)) {
		rc = JWT_E_FORMAT;
		goto out;
	}
	pay = hdr + hdr_n;
	if (b64url_decode(d1 + 1, plen, pay, b64url_decoded_max(plen), &pay_n)) {
		rc = JWT_E_FORMAT;
		goto out;
	}
	sig = pay + pay_n;
	if (b64url_decode(d2 + 1, slen, sig, b64url_decoded_max(slen), &sig_n)) {
		rc = JWT_E_FORMAT;
		goto out;
	}
	rc = jsonstrict_parse(hdr, hdr_n, &h);
	if (rc) {
		rc = rc == JSONSTRICT_E_NOMEM ? JWT_E_NOMEM : JWT_E_HEADER;
		goto out;
	}
	if (cJSON_GetObjectItemCaseSensitive(h, "crit")) {
		rc = JWT_E_CRIT;
		goto out;
	}
	alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
	if (!cJSON_IsString(alg) || (a = jwa_parse(alg->valuestring, strlen(alg->valuestring))) < 0) {
		rc = JWT_E_ALG;
		goto out;
	}
	kid = cJSON_GetObjectItemCaseSensitive(h, "kid");
	if (kid && !cJSON_IsString(kid)) {
		rc = JWT_E_HEADER;
		goto out;
	}
	/* The header bytes are no longer needed: move payload and signature to the front of the block so one
	 * free() releases everything and the owned pointers are stable. */
	memmove(buf, pay, pay_n + sig_n);
	out->alg = a;
	out->kid = kid ? kid->valuestring : NULL;
	out->kid_len = kid ? strlen(kid->valuestring) : 0;
	out->signing_input = p;
	out->signing_input_len = hlen + 1 + plen;
	out->payload = buf;
	out->payload_len = pay_n;
	out->sig = buf + pay_n;
	out->sig_len = sig_n;
	out->header = h;
	return 0;
out:
	cJSON_Delete(h);
	free(buf);
	return rc;
}

void jwt_token_free(jwt_token *t)
{
	if (!t)
		return;
	cJSON_Delete(t->header);
	free(t->payload);
	t->header = NULL;
	t->payload = NULL;
	t->sig = NULL;
}
