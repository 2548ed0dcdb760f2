/*
 * jsonstrict.h — strict JSON (RFC 8259) on top of cJSON, for every document that decides who someone is: ID
 * token headers and payloads, JWK sets, discovery documents, distributed-claims responses.
 *
 * cJSON is lenient where the API server's Go decoder is not, so a document is pre-scanned first: RFC 8259
 * strings and numbers, valid UTF-8, no raw control bytes, no \u0000 (cJSON would cut the string there), and
 * the whole input one object with nothing after it. Duplicated member names are refused rather than resolved,
 * because cJSON keeps the first and Go's encoding/json (the API server) keeps the last — and Go matches struct
 * fields case-insensitively ("ISS" sets iss; also U+017F and U+212A fold to 's' and 'k') — so names are
 * compared with Go's folding: any two that Go could confuse make the document malformed.
 *
 * Owns: nothing; the cJSON tree handed out belongs to the caller (cJSON_Delete). Any thread.
 */
#ifndef KOS_JSONSTRICT_H
#define KOS_JSONSTRICT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

enum jsonstrict_err {
	JSONSTRICT_OK = 0,
	JSONSTRICT_E_SYNTAX = -1, /* not one strict JSON object, or two member names Go would confuse */
	JSONSTRICT_E_NOMEM = -2,
};

/* Parses p[0..len) as one strict JSON object (see above). On success *out is the tree (caller frees with
 * cJSON_Delete); on failure *out is untouched. */
int jsonstrict_parse(const uint8_t *p, size_t len, cJSON **out);
/* The duplicate rule of jsonstrict_parse for one nested object (jwks.c applies it to each JWK): 0 when no two
 * member names fold to the same Go field name, JSONSTRICT_E_SYNTAX when two do, JSONSTRICT_E_NOMEM. */
int jsonstrict_check_duplicates(const cJSON *obj);

#endif
