/*
 * jsonstrict.c — strict JSON: a lexical pre-scan for what cJSON lets through, then cJSON, then Go's duplicate
 * rule; see jsonstrict.h for why.
 */
#include "jsonstrict.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kx.h"

/* ---- pre-scan: the RFC 8259 lexical rules cJSON does not enforce ---- */

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
			size_t adv = kx_utf8_seq(p + i, len - i);

			if (adv == 0)
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

int jsonstrict_check_duplicates(const cJSON *obj)
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
			return JSONSTRICT_E_NOMEM;
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
				rc = JSONSTRICT_E_SYNTAX;
		}
		return rc;
	}
	qsort(names, n, sizeof(*names), fold_cmp);
	for (i = 1; i < n; i++)
		if (fold_cmp(&names[i - 1], &names[i]) == 0) {
			rc = JSONSTRICT_E_SYNTAX;
			break;
		}
	if (names != small)
		free(names);
	return rc;
}

int jsonstrict_parse(const uint8_t *p, size_t len, cJSON **out)
{
	const char *end = NULL;
	cJSON *j;
	int rc;

	if (len == 0 || !json_prescan(p, len))
		return JSONSTRICT_E_SYNTAX;
	/* the pre-scan refused NUL bytes, so parsing exactly len bytes cannot stop early; end must reach len */
	j = cJSON_ParseWithLengthOpts((const char *)p, len, &end, 0);
	if (!j)
		return JSONSTRICT_E_SYNTAX;
	while (end && (size_t)(end - (const char *)p) < len &&
	       (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (!cJSON_IsObject(j) || !end || (size_t)(end - (const char *)p) != len) {
		cJSON_Delete(j);
		return JSONSTRICT_E_SYNTAX;
	}
	rc = jsonstrict_check_duplicates(j);
	if (rc) {
		cJSON_Delete(j);
		return rc;
	}
	*out = j;
	return 0;
}

