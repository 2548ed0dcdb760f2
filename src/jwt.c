/*
 * jwt.c — compact JWS parsing and OpenSSL 3 signature verification; see jwt.h for the rules and why.
 *
 * Design: the digests are fetched once (EVP_MD_fetch) so a verification does no name lookup; keys arrive as
 * ready EVP_PKEYs from jwks.c; ECDSA's JOSE r||s is range-checked against the group order and DER-encoded on
 * the stack. OpenSSL's per-call EVP_MD_CTX/EVP_PKEY_CTX are the only allocations of a verification.
 */
#include "jwt.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "b64url.h"
#include "ecverify.h"

static const struct {
	const char *name;
	int alg;
} alg_names[] = {
	{ "RS256", JWT_ALG_RS256 }, { "RS384", JWT_ALG_RS384 }, { "RS512", JWT_ALG_RS512 },
	{ "PS256", JWT_ALG_PS256 }, { "PS384", JWT_ALG_PS384 }, { "PS512", JWT_ALG_PS512 },
	{ "ES256", JWT_ALG_ES256 }, { "ES384", JWT_ALG_ES384 }, { "ES512", JWT_ALG_ES512 },
	{ "EdDSA", JWT_ALG_EDDSA },
};

int jwt_alg_parse(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
		if (strlen(alg_names[i].name) == len && memcmp(alg_names[i].name, name, len) == 0)
			return alg_names[i].alg;
	return JWT_E_ALG;
}

const char *jwt_alg_name(int alg)
{
	for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
		if (alg_names[i].alg == alg)
			return alg_names[i].name;
	return "?";
}

int jwt_alg_list_parse(const char *list, unsigned *mask)
{
	unsigned m = 0;
	const char *s = list;

	if (!list || !*list) {
		*mask = JWT_ALG_BIT(JWT_ALG_RS256);
		return 0;
	}
	for (;;) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		int a;

		while (n && *s == ' ') {
			s++;
			n--;
		}
		while (n && s[n - 1] == ' ')
			n--;
		a = jwt_alg_parse(s, n);
		if (a < 0)
			return JWT_E_ALG;
		m |= JWT_ALG_BIT(a);
		if (!e)
			break;
		s = e + 1;
	}
	*mask = m;
	return 0;
}

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

/* ---- strict JSON pre-scan: the RFC 8259 lexical rules cJSON does not enforce ---- */

static bool utf8_seq_ok(const uint8_t *p, size_t len, size_t *adv)
{
	uint8_t c = p[0];
	size_t n;
	uint32_t cp;

	if (c < 0xc2 || c > 0xf4)
		return false;
	n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (len < n)
		return false;
	cp = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return false;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
		return false;
	*adv = n;
	return true;
}

static bool is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Returns the number of bytes of a valid string body starting after the opening quote, through the closing
 * quote, or 0 when invalid. */
static size_t scan_string(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = p[i];

		if (c == '"')
			return i + 1;
		if (c < 0x20)
			return 0;
		if (c == '\\') {
			if (len - i < 2)
				return 0;
			c = p[i + 1];
			if (c == 'u') {
				if (len - i < 6 || !is_hex(p[i + 2]) || !is_hex(p[i + 3]) || !is_hex(p[i + 4]) ||
				    !is_hex(p[i + 5]))
					return 0;
				if (memcmp(p + i + 2, "0000", 4) == 0)
					return 0; /* cJSON would end the C string here: a silent truncation */
				i += 6;
			} else if (strchr("\"\\/bfnrt", c) && c) {
				i += 2;
			} else {
				return 0;
			}
			continue;
		}
		if (c >= 0x80) {
			size_t adv;

			if (!utf8_seq_ok(p + i, len - i, &adv))
				return 0;
			i += adv;
			continue;
		}
		i++;
	}
	return 0;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; returns its length or 0. */
static size_t scan_number(const uint8_t *p, size_t len)
{
	size_t i = 0;

	if (i < len && p[i] == '-')
		i++;
	if (i >= len || !is_digit(p[i]))
		return 0;
	if (p[i] == '0')
		i++;
	else
		while (i < len && is_digit(p[i]))
			i++;
	if (i < len && p[i] == '.') {
		i++;
		if (i >= len || !is_digit(p[i]))
			return 0;
		while (i < len && is_digit(p[i]))
			i++;
	}
	if (i < len && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < len && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= len || !is_digit(p[i]))
			return 0;
		while (i < len && is_digit(p[i]))
			i++;
	}
	if (i < len && (is_digit(p[i]) || p[i] == '.' || p[i] == 'e' || p[i] == 'E' || p[i] == '-' || p[i] == '+'))
		return 0;
	return i;
}

static bool json_prescan(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = p[i];

		if (c == '"') {
			size_t n = scan_string(p + i + 1, len - i - 1);

			if (!n)
				return false;
			i += 1 + n;
		} else if (c == '-' || is_digit(c)) {
			size_t n = scan_number(p + i, len - i);

			if (!n)
				return false;
			i += n;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '{' || c == '}' || c == '[' ||
			   c == ']' || c == ':' || c == ',' || (c >= 'a' && c <= 'z')) {
			i++; /* structure and literal letters: cJSON checks the grammar */
		} else {
			return false;
		}
	}
	return true;
}

/* Go's encoding/json matches member names to struct fields with simple case folding; the only non-ASCII runes
 * that fold onto ASCII letters are U+017F (long s → s) and U+212A (Kelvin → k). */
static int fold_next(const unsigned char **s)
{
	const unsigned char *p = *s;

	if (p[0] == 0xc5 && p[1] == 0xbf) {
		*s = p + 2;
		return 's';
	}
	if (p[0] == 0xe2 && p[1] == 0x84 && p[2] == 0xaa) {
		*s = p + 3;
		return 'k';
	}
	*s = p + 1;
	return p[0] >= 'A' && p[0] <= 'Z' ? p[0] + 32 : p[0];
}

static int fold_cmp(const void *a, const void *b)
{
	const unsigned char *x = *(const unsigned char *const *)a, *y = *(const unsigned char *const *)b;

	for (;;) {
		int cx = *x ? fold_next(&x) : 0, cy = *y ? fold_next(&y) : 0;

		if (cx != cy)
			return cx < cy ? -1 : 1;
		if (!cx)
			return 0;
	}
}

int jwt_json_check_duplicates(const cJSON *obj)
{
	size_t n = 0, i;
	const cJSON *it;
	const char *small[32], **names = small; /* ID tokens and JWKs have a dozen members: no malloc per token */
	int rc = 0;

	for (it = obj->child; it; it = it->next)
		n++;
	if (n < 2)
		return 0;
	if (n > sizeof(small) / sizeof(small[0])) {
		names = malloc(n * sizeof(*names));
		if (!names)
			return JWT_E_NOMEM;
	}
	for (i = 0, it = obj->child; it; it = it->next)
		names[i++] = it->string ? it->string : "";
	if (names == small) {
		/* a dozen names: an insertion sort that stops at the first equal pair costs a fraction of qsort's
		 * setup (this runs twice per token, header and payload) */
		for (i = 1; i < n && !rc; i++) {
			const char *x = names[i];
			size_t j = i;
			int c = 1;

			while (j > 0 && (c = fold_cmp(&names[j - 1], &x)) > 0) {
				names[j] = names[j - 1];
				j--;
			}
			names[j] = x;
			if (j > 0 && c == 0)
				rc = JWT_E_JSON;
		}
		return rc;
	}
	qsort(names, n, sizeof(*names), fold_cmp);
	for (i = 1; i < n; i++)
		if (fold_cmp(&names[i - 1], &names[i]) == 0) {
			rc = JWT_E_JSON;
			break;
		}
	if (names != small)
		free(names);
	return rc;
}

int jwt_json_parse(const uint8_t *p, size_t len, cJSON **out)
{
	const char *end = NULL;
	cJSON *j;
	int rc;

	if (len == 0 || !json_prescan(p, len))
		return JWT_E_JSON;
	/* the pre-scan refused NUL bytes, so parsing exactly len bytes cannot stop early; end must reach len */
	j = cJSON_ParseWithLengthOpts((const char *)p, len, &end, 0);
	if (!j)
		return JWT_E_JSON;
	while (end && (size_t)(end - (const char *)p) < len &&
	       (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (!cJSON_IsObject(j) || !end || (size_t)(end - (const char *)p) != len) {
		cJSON_Delete(j);
		return JWT_E_JSON;
	}
	rc = jwt_json_check_duplicates(j);
	if (rc) {
		cJSON_Delete(j);
		return rc;
	}
	*out = j;
	return 0;
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
	rc = jwt_json_parse(hdr, hdr_n, &h);
	if (rc) {
		rc = rc == JWT_E_NOMEM ? rc : JWT_E_HEADER;
		goto out;
	}
	if (cJSON_GetObjectItemCaseSensitive(h, "crit")) {
		rc = JWT_E_CRIT;
		goto out;
	}
	alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
	if (!cJSON_IsString(alg) || (a = jwt_alg_parse(alg->valuestring, strlen(alg->valuestring))) < 0) {
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

/* ---- verify ---- */

static EVP_MD *md_sha[3]; /* SHA-256, -384, -512; fetched once, kept for the life of the process */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

/* Per thread, one digest context per hash, reused token after token: EVP_Digest() allocates and initialises
 * a provider context on every call, which costs as much as hashing a whole ID token's signing input. Freed by
 * the key's destructor when the thread exits. */
struct md_tls {
	EVP_MD_CTX *c[3];
};
static pthread_key_t md_tls_key;
static bool md_tls_ok;
static _Thread_local struct md_tls *md_tls;

static void md_tls_free(void *p)
{
	struct md_tls *t = p;

	for (size_t i = 0; i < 3; i++)
		EVP_MD_CTX_free(t->c[i]);
	free(t);
	md_tls = NULL;
}

static void md_init(void)
{
	md_sha[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
	md_sha[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
	md_sha[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
	md_tls_ok = pthread_key_create(&md_tls_key, md_tls_free) == 0;
}

/* The message digest of t's signing input; false on an OpenSSL failure (no memory). */
static bool digest(const jwt_token *t, const EVP_MD *md, uint8_t *h, unsigned *hl)
{
	size_t i = md == md_sha[0] ? 0 : md == md_sha[1] ? 1 : 2;
	EVP_MD_CTX *c;

	if (!md_tls && md_tls_ok) {
		struct md_tls *n = calloc(1, sizeof(*n));

		if (n && pthread_setspecific(md_tls_key, n) == 0)
			md_tls = n;
		else
			free(n);
	}
	if (!md_tls)
		return EVP_Digest(t->signing_input, t->signing_input_len, h, hl, md, NULL) == 1;
	c = md_tls->c[i];
	if (!c && !(c = md_tls->c[i] = EVP_MD_CTX_new()))
		return false;
	return EVP_DigestInit_ex2(c, md, NULL) == 1 && EVP_DigestUpdate(c, t->signing_input, t->signing_input_len) == 1 &&
	       EVP_DigestFinal_ex(c, h, hl) == 1;
}

static const EVP_MD *alg_md(int alg)
{
	pthread_once(&md_once, md_init);
	switch (alg) {
	case JWT_ALG_RS256: case JWT_ALG_PS256: case JWT_ALG_ES256: return md_sha[0];
	case JWT_ALG_RS384: case JWT_ALG_PS384: case JWT_ALG_ES384: return md_sha[1];
	case JWT_ALG_RS512: case JWT_ALG_PS512: case JWT_ALG_ES512: return md_sha[2];
	}
	return NULL;
}

/* DER INTEGER of a big-endian unsigned value; returns bytes written. out needs n + 3. */
static size_t der_uint(uint8_t *out, const uint8_t *v, size_t n)
{
	size_t o = 0;

	while (n > 1 && v[0] == 0) {
		v++;
		n--;
	}
	out[o++] = 0x02;
	out[o++] = (uint8_t)(n + (v[0] & 0x80 ? 1 : 0));
	if (v[0] & 0x80)
		out[o++] = 0;
	memcpy(out + o, v, n);
	return o + n;
}

static bool is_zero(const uint8_t *v, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= v[i];
	return acc == 0;
}

/* JOSE ECDSA: r||s, each exactly the field size; both in [1, n-1] (RFC 7518 §3.4; r = s = 0 is the
 * "psychic signature" that broken verifiers accepted). */
static int ecdsa_jose_check(const jwt_token *t, const jwks_key *k)
{
	size_t half = (k->bits + 7) / 8;
	const uint8_t *r = t->sig, *s = t->sig + half;

	if (t->sig_len != 2 * half || half != k->ec_order_len)
		return JWT_E_SIGNATURE;
	if (is_zero(r, half) || is_zero(s, half) || memcmp(r, k->ec_order, half) >= 0 ||
	    memcmp(s, k->ec_order, half) >= 0)
		return JWT_E_SIGNATURE;
	return 0;
}

/* The DER encoding OpenSSL's EVP verification wants; the signature passed ecdsa_jose_check(). */
static void ecdsa_jose_to_der(const jwt_token *t, uint8_t *der, size_t *der_len)
{
	size_t half = t->sig_len / 2, o, body;
	const uint8_t *r = t->sig, *s = t->sig + half;
	uint8_t ints[2 * (66 + 3)];

	body = der_uint(ints, r, half);
	body += der_uint(ints + body, s, half);
	o = 0;
	der[o++] = 0x30;
	if (body >= 0x80)
		der[o++] = 0x81;
	der[o++] = (uint8_t)body;
	memcpy(der + o, ints, body);
	*der_len = o + body;
}

EVP_PKEY_CTX *jwt_key_ctx_new(const jwks_key *k, int alg)
{
	const EVP_MD *md = alg_md(alg);
	EVP_PKEY_CTX *c;
	bool pss = alg >= JWT_ALG_PS256 && alg <= JWT_ALG_PS512;

	if (!md || !jwks_key_fits(k, alg))
		return NULL;
	c = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
	if (!c || EVP_PKEY_verify_init(c) != 1)
		goto fail;
	if (k->kty == JWKS_KTY_RSA) {
		if (EVP_PKEY_CTX_set_rsa_padding(c, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1)
			goto fail;
		/* go-jose verifies PSS with PSSSaltLengthAuto; do the same so every token the API server accepts
		 * verifies here (RFC 7518 issuers use the hash length, which AUTO accepts). */
		if (pss && (EVP_PKEY_CTX_set_rsa_pss_saltlen(c, RSA_PSS_SALTLEN_AUTO) != 1 ||
			    EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) != 1))
			goto fail;
	}
	if (EVP_PKEY_CTX_set_signature_md(c, md) != 1)
		goto fail;
	return c;
fail:
	EVP_PKEY_CTX_free(c);
	return NULL;
}

int jwt_verify(const jwt_token *t, const jwks_key *k)
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = NULL;
	uint8_t der[2 * (66 + 3) + 3];
	const uint8_t *sig = t->sig;
	size_t sig_len = t->sig_len;
	int rc = JWT_E_SIGNATURE;

	if (!jwks_key_fits(k, t->alg))
		return JWT_E_KEY;
	if (t->alg != JWT_ALG_EDDSA) {
		md = alg_md(t->alg);
		if (!md)
			return JWT_E_NOMEM;
	}
	if (k->kty == JWKS_KTY_EC) {
		rc = ecdsa_jose_check(t, k);
		if (rc)
			return rc;
		if (k->ecv) {
			uint8_t h[EVP_MAX_MD_SIZE];
			unsigned int hl = 0;
			size_t half = t->sig_len / 2;

			if (!digest(t, md, h, &hl))
				return JWT_E_NOMEM;
			rc = ecverify_verify(k->ecv, h, hl, t->sig, half, t->sig + half, half);
			if (rc == 0 || rc == ECVERIFY_E_SIGNATURE)
				return rc == 0 ? 0 : JWT_E_SIGNATURE;
			/* no verdict (OpenSSL could not allocate): EVP below decides */
		}
		ecdsa_jose_to_der(t, der, &sig_len);
		sig = der;
		rc = JWT_E_SIGNATURE;
	} else if (sig_len != (k->kty == JWKS_KTY_RSA ? (k->bits + 7) / 8 : 64)) {
		/* RFC 8017 §8.1.2/§8.2.2: an RSA signature is exactly k octets (Go's crypto/rsa checks it for PKCS#1
		 * v1.5 and PSS alike). OpenSSL does for PKCS#1 v1.5 only: its PSS path takes a shorter one, the same
		 * integer without its leading zero octet, so a second encoding of one signature would verify here and
		 * not in the API server. Ed25519 signatures are 64 octets (RFC 8032 §5.1.6). */
		return JWT_E_SIGNATURE;
	}
	if (t->alg >= 0 && (size_t)t->alg < sizeof(k->vctx) / sizeof(k->vctx[0]) && k->vctx[t->alg]) {
		uint8_t h[EVP_MAX_MD_SIZE];
		unsigned int hl = 0;

		if (!digest(t, md, h, &hl))
			return JWT_E_NOMEM;
		pctx = EVP_PKEY_CTX_dup(k->vctx[t->alg]);
		if (!pctx)
			return JWT_E_NOMEM;
		rc = EVP_PKEY_verify(pctx, sig, sig_len, h, hl) == 1 ? 0 : JWT_E_SIGNATURE;
		EVP_PKEY_CTX_free(pctx);
		return rc;
	}
	mctx = EVP_MD_CTX_new();
	if (!mctx)
		return JWT_E_NOMEM;
	if (EVP_DigestVerifyInit(mctx, &pctx, md, NULL, k->pkey) != 1)
		goto out;
	if (k->kty == JWKS_KTY_RSA) {
		bool pss = t->alg >= JWT_ALG_PS256 && t->alg <= JWT_ALG_PS512;

		if (EVP_PKEY_CTX_set_rsa_padding(pctx, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1)
			goto out;
		/* go-jose verifies PSS with PSSSaltLengthAuto; do the same so every token the API server accepts
		 * verifies here (RFC 7518 issuers use the hash length, which AUTO accepts). */
		if (pss && (EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1 ||
			    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1))
			goto out;
	}
	if (EVP_DigestVerify(mctx, sig, sig_len, t->signing_input, t->signing_input_len) == 1)
		rc = 0;
out:
	EVP_MD_CTX_free(mctx);
	return rc;
}
