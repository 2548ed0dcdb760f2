/*
 * cel_lex.c — the CEL lexer of cel_lex.h: whitespace and // comments, identifiers and reserved words, int, uint
 * and double literals, string literals decoded into the program's pool, punctuation and operators.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cel_lex.h"

int cel_lex_fail(struct cel_lex *s, int code, size_t pos, const char *fmt, ...)
{
	va_list ap;

	if (s->rc != 0)
		return s->rc;
	s->rc = code;
	if (s->err != NULL) {
		s->err->code = code;
		s->err->pos = pos;
		va_start(ap, fmt);
		vsnprintf(s->err->msg, sizeof(s->err->msg), fmt, ap);
		va_end(ap);
	}
	s->tok = T_ERR;
	return code;
}

int cel_lex_pool_put(struct cel_lex *s, uint8_t c)
{
	cel_program *g = s->prog;

	if (g->pool_len >= g->pool_cap) /* the pool is sized from the source length; cannot happen */
		return cel_lex_fail(s, CEL_E_LIMIT, s->tpos, "internal: literal pool full");
	g->pool[g->pool_len++] = (char)c;
	return 0;
}

static int pool_utf8(struct cel_lex *s, uint32_t cp)
{
	uint8_t b[4];
	size_t n;

	if (cp < 0x80)
		b[0] = (uint8_t)cp, n = 1;
	else if (cp < 0x800)
		b[0] = (uint8_t)(0xc0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
	else if (cp < 0x10000)
		b[0] = (uint8_t)(0xe0 | cp >> 12), b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)),
		b[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
	else
		b[0] = (uint8_t)(0xf0 | cp >> 18), b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f)),
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
	for (size_t i = 0; i < n; i++)
		if (cel_lex_pool_put(s, b[i]) != 0)
			return s->rc;
	return 0;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string literal starting at s->off (after any r prefix). Decodes into the pool. */
static void lex_string(struct cel_lex *s, bool raw)
{
	uint8_t q = s->p[s->off];
	bool triple = s->len - s->off >= 3 && s->p[s->off + 1] == q && s->p[s->off + 2] == q;
	size_t i = s->off + (triple ? 3 : 1);

	s->soff = (uint32_t)s->prog->pool_len;
	for (;;) {
		uint8_t c;

		if (i >= s->len) {
			cel_lex_fail(s, CEL_E_SYNTAX, s->tpos, "unterminated string literal");
			return;
		}
		c = s->p[i];
		if (c == q && (!triple || (s->len - i >= 3 && s->p[i + 1] == q && s->p[i + 2] == q))) {
			i += triple ? 3 : 1;
			break;
		}
		if ((c == '\n' || c == '\r') && !triple) {
			cel_lex_fail(s, CEL_E_SYNTAX, i, "newline in a single-quoted string literal");
			return;
		}
		if (c != '\\' || raw) {
			if (cel_lex_pool_put(s, c) != 0)
				return;
			i++;
			continue;
		}
		/* an escape sequence */
		if (s->len - i < 2) {
			cel_lex_fail(s, CEL_E_SYNTAX, i, "unterminated string literal");
			return;
		}
		c = s->p[i + 1];
		{
			static const char simple_in[] = "abfnrtv\\'\"`?";
			static const char simple_out[] = "\a\b\f\n\r\t\v\\'\"`?";
			const char *hit = c ? strchr(simple_in, c) : NULL;
			uint32_t cp = 0;
			size_t nd = 0, skip = 2;

			if (hit != NULL) {
				if (cel_lex_pool_put(s, (uint8_t)simple_out[hit - simple_in]) != 0)
					return;
				i += 2;
				continue;
			}
			if (c == 'x' || c == 'X')
				nd = 2;
			else if (c == 'u')
				nd = 4;
			else if (c == 'U')
				nd = 8;
			if (nd > 0) {
				if (s->len - i < 2 + nd) {
					cel_lex_fail(s, CEL_E_SYNTAX, i, "truncated escape sequence");
					return;
				}
				for (size_t k = 0; k < nd; k++) {
					int h = hexval(s->p[i + 2 + k]);

					if (h < 0) {
						cel_lex_fail(s, CEL_E_SYNTAX, i, "invalid escape sequence");
						return;
					}
					cp = cp << 4 | (uint32_t)h;
				}
				skip = 2 + nd;
			} else if (c >= '0' && c <= '3') {
				if (s->len - i < 4) {
					cel_lex_fail(s, CEL_E_SYNTAX, i, "truncated escape sequence");
					return;
				}
				for (size_t k = 1; k < 4; k++) {
					uint8_t o = s->p[i + k];

					if (o < '0' || o > '7') {
						cel_lex_fail(s, CEL_E_SYNTAX, i, "invalid octal escape sequence");
						return;
					}
					cp = cp << 3 | (uint32_t)(o - '0');
				}
				skip = 4;
			} else {
				cel_lex_fail(s, CEL_E_SYNTAX, i, "invalid escape sequence '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
				return;
			}
			if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
				cel_lex_fail(s, CEL_E_SYNTAX, i, "invalid code point in escape sequence");
				return;
			}
			if (pool_utf8(s, cp) != 0)
				return;
			i += skip;
		}
	}
	s->slen = (uint32_t)(s->prog->pool_len - s->soff);
	if (cel_lex_pool_put(s, 0) != 0)
		return;
	s->off = i;
	s->tok = T_STRING;
}

static bool is_ident_start(uint8_t c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

bool cel_lex_word_is(const uint8_t *p, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(p, w, n) == 0;
}

static void lex_number(struct cel_lex *s)
{
	size_t i = s->off;
	bool is_float = false;

	if (s->p[i] == '0' && s->len - i >= 2 && (s->p[i + 1] == 'x' || s->p[i + 1] == 'X')) {
		uint64_t v = 0;
		size_t start = i + 2;

		for (i = start; i < s->len && hexval(s->p[i]) >= 0; i++) {
			if (v > UINT64_MAX >> 4) {
				cel_lex_fail(s, CEL_E_SYNTAX, s->tpos, "integer literal out of range");
				return;
			}
			v = v << 4 | (uint64_t)hexval(s->p[i]);
		}
		if (i == start) {
			cel_lex_fail(s, CEL_E_SYNTAX, s->tpos, "invalid hexadecimal literal");
			return;
		}
		s->uval = v;
		goto suffix;
	}
	while (i < s->len && is_digit(s->p[i]))
		i++;
	if (s->len - i >= 2 && s->p[i] == '.' && is_digit(s->p[i + 1])) {
		is_float = true;
		i++;
		while (i < s->len && is_digit(s->p[i]))
			i++;
	}
	if (i < s->len && (s->p[i] == 'e' || s->p[i] == 'E')) {
		size_t j = i + 1;

		if (j < s->len && (s->p[j] == '+' || s->p[j] == '-'))
			j++;
		if (j < s->len && is_digit(s->p[j])) {
			is_float = true;
			while (j < s->len && is_digit(s->p[j]))
				j++;
			i = j;
		}
	}
	if (is_float) {
		char buf[64];

		if (i - s->off >= sizeof(buf)) {
			cel_lex_fail(s, CEL_E_SYNTAX, s->tpos, "floating-point literal too long");
			return;
		}
		memcpy(buf, s->p + s->off, i - s->off);
		buf[i - s->off] = 0;
		s->dval = strtod(buf, NULL);
		s->off = i;
		s->tok = T_DOUBLE;
		return;
	}
	{
		uint64_t v = 0;

		for (size_t k = s->off; k < i; k++) {
			uint64_t d = (uint64_t)(s->p[k] - '0');

			if (v > (UINT64_MAX - d) / 10) {
				cel_lex_fail(s, CEL_E_SYNTAX, s->tpos, "integer literal out of range");
				return;
			}
			v = v * 10 + d;
		}
		s->uval = v;
	}
suffix:
	if (i < s->len && (s->p[i] == 'u' || s->p[i] == 'U')) {
		cel_lex_fail(s, CEL_E_UNSUPPORTED, s->tpos, "unsigned integer literals are outside the supported CEL subset");
		return;
	}
	if (i < s->len && (is_ident_start(s->p[i]) || is_digit(s->p[i]))) {
		cel_lex_fail(s, CEL_E_SYNTAX, i, "unexpected character after number");
		return;
	}
	s->off = i;
	s->tok = T_INT;
}

void cel_lex_next(struct cel_lex *s)
{
	uint8_t c, d;

	if (s->rc != 0) {
		s->tok = T_ERR;
		return;
	}
	for (;;) {
		while (s->off < s->len && strchr(" \t\n\r\f", s->p[s->off]) != NULL && s->p[s->off] != 0)
			s->off++;
		if (s->len - s->off >= 2 && s->p[s->off] == '/' && s->p[s->off + 1] == '/') {
			while (s->off < s->len && s->p[s->off] != '\n')
				s->off++;
			continue;
		}
		break;
	}
	s->tpos = s->off;
	if (s->off >= s->len) {
		s->tok = T_EOF;
		return;
	}
	c = s->p[s->off];
	d = s->len - s->off >= 2 ? s->p[s->off + 1] : 0;
	if (is_digit(c) || (c == '.' && is_digit(d))) {
		lex_number(s);
		return;
	}
	if (c == '"' || c == '\'') {
		lex_string(s, false);
		return;
	}
	if (is_ident_start(c)) {
		size_t i = s->off;

		while (i < s->len && (is_ident_start(s->p[i]) || is_digit(s->p[i])))
			i++;
		/* string prefixes: r/R raw; b/B bytes (refused) */
		if (i < s->len && (s->p[i] == '"' || s->p[i] == '\'') && i - s->off <= 2) {
			const uint8_t *w = s->p + s->off;
			size_t n = i - s->off;
			bool raw = false, bytes = false;

			for (size_t k = 0; k < n; k++) {
				if (w[k] == 'r' || w[k] == 'R')
					raw = true;
				else if (w[k] == 'b' || w[k] == 'B')
					bytes = true;
			}
			if ((n == 1 && (raw || bytes)) || (n == 2 && raw && bytes)) {
				if (bytes) {
					cel_lex_fail(s, CEL_E_UNSUPPORTED, s->tpos, "bytes literals are outside the supported CEL subset");
					return;
				}
				s->off = i;
				lex_string(s, raw);
				return;
			}
		}
		s->tend = i;
		s->off = i;
		{
			const uint8_t *w = s->p + s->tpos;
			size_t n = i - s->tpos;
			static const char *const reserved[] = {
				"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let",
				"loop", "package", "namespace", "return", "var", "void", "while",
			};

			if (cel_lex_word_is(w, n, "true"))
				s->tok = T_TRUE;
			else if (cel_lex_word_is(w, n, "false"))
				s->tok = T_FALSE;
			else if (cel_lex_word_is(w, n, "null"))
				s->tok = T_NULL;
			else if (cel_lex_word_is(w, n, "in"))
				s->tok = T_IN;
			else
				s->tok = T_IDENT;
			for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
				if (cel_lex_word_is(w, n, reserved[k])) {
					cel_lex_fail(s, CEL_E_SYNTAX, s->tpos, "reserved identifier '%s'", reserved[k]);
					return;
				}
		}
		return;
	}
	s->off++;
	switch (c) {
	case '(': s->tok = T_LPAREN; return;
	case ')': s->tok = T_RPAREN; return;
	case '[': s->tok = T_LBRACK; return;
	case ']': s->tok = T_RBRACK; return;
	case '{': s->tok = T_LBRACE; return;
	case '}': s->tok = T_RBRACE; return;
	case '.': s->tok = T_DOT; return;
	case ',': s->tok = T_COMMA; return;
	case ':': s->tok = T_COLON; return;
	case '?': s->tok = T_QUESTION; return;
	case '+': s->tok = T_PLUS; return;
	case '-': s->tok = T_MINUS; return;
	case '*': s->tok = T_STAR; return;
	case '/': s->tok = T_SLASH; return;
	case '%': s->tok = T_PERCENT; return;
	}
	/* Two-byte operators, and the one-byte operator each starts with where there is one. */
	{
		static const struct {
			uint8_t c, d;
			int8_t two, one; /* enum cel_tok; one < 0: the first byte alone is not a token */
		} ops2[] = {
			{ '!', '=', T_NE, T_NOT }, { '=', '=', T_EQ, -1 }, { '<', '=', T_LE, T_LT },
			{ '>', '=', T_GE, T_GT },  { '&', '&', T_AND, -1 }, { '|', '|', T_OR, -1 },
		};

		for (size_t k = 0; k < sizeof(ops2) / sizeof(ops2[0]); k++) {
			if (c != ops2[k].c)
				continue;
			if (d == ops2[k].d) {
				s->off++, s->tok = ops2[k].two;
				return;
			}
			if (ops2[k].one >= 0) {
				s->tok = ops2[k].one;
				return;
			}
			break;
		}
	}
	if (c >= 0x20 && c < 0x7f)
		cel_lex_fail(s, CEL_E_SYNTAX, s->tpos, "unexpected character '%c'", c);
	else
		cel_lex_fail(s, CEL_E_SYNTAX, s->tpos, "unexpected byte 0x%02x", c);
}
