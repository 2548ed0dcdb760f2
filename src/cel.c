/*
 * cel.c — compile (lexer, recursive-descent parser, light type checker) and evaluate the CEL subset of cel.h.
 *
 * The program is a flat array of nodes addressed by index, so it is one allocation to free and holds no pointers
 * into the caller's source. Evaluation is a recursive walk whose depth is the tree height, capped at compile
 * time; every node visited and every comprehension iteration spends one step of the budget, and byte-heavy
 * operations spend one step per 16 bytes, so no configuration can make a single evaluation run away.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cel.h"

enum op {
	OP_NULL, OP_BOOL, OP_INT, OP_DOUBLE, OP_STRING, OP_LIST,
	OP_CLAIMS, OP_USERF, OP_HASUSER, OP_VAR,
	OP_SELECT, OP_HAS, OP_INDEX,
	OP_NOT, OP_NEG,
	OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD,
	OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN,
	OP_AND, OP_OR, OP_COND,
	OP_CALL, OP_COMPRE, OP_OPTSEL,
};

enum fn { FN_SIZE, FN_STRING, FN_INT, FN_DOUBLE, FN_DYN, FN_STARTS, FN_ENDS, FN_CONTAINS, FN_LOWER, FN_UPPER,
	  FN_JOIN, FN_SPLIT, FN_OR_VALUE, FN_HAS_VALUE, FN_VALUE };
enum compre { CK_ALL, CK_EXISTS, CK_EXISTS_ONE, CK_MAP, CK_FILTER };
enum userf { UF_USERNAME, UF_UID, UF_GROUPS, UF_EXTRA };

/* Static types: kind in the low 4 bits, then the element (list) or value (map) type's kind, then its element. */
typedef uint16_t stype;
#define TK(t) ((cel_kind)((t) & 15))
#define TELEM(t) ((stype)((t) >> 4))
#define T_LIST_OF(e) ((stype)(CEL_LIST | (((e) & 0xff) << 4)))
#define T_MAP_OF(v) ((stype)(CEL_MAP | (((v) & 0xff) << 4)))
/* optional(T) of `x.?f`: only usable through orValue(), hasValue() and value(); at run time an absent optional
 * is a value of this kind and a present one is the plain value */
#define K_OPT 8
#define T_OPT_OF(v) ((stype)(K_OPT | (((v) & 0xff) << 4)))

typedef struct node {
	uint8_t op, fn, slot, nargs;
	stype type;
	uint16_t height;
	uint32_t pos;
	int32_t kid[3];
	int32_t next; /* OP_LIST: the next element */
	union {
		int64_t i;
		double d;
		bool b;
		struct {
			uint32_t off, len;
		} s;
	} v;
} node;

struct cel_program {
	node *nodes;
	uint32_t nnodes, cap;
	int32_t root;
	char *pool; /* decoded string literals and field names, each NUL-terminated */
	size_t pool_len, pool_cap;
	unsigned vars;
};

#define MAX_NODES (4 * CEL_MAX_EXPR_LEN)

const char *cel_strerror(int err)
{
	switch (err) {
	case CEL_OK: return "ok";
	case CEL_E_SYNTAX: return "syntax error";
	case CEL_E_UNSUPPORTED: return "outside the supported CEL subset";
	case CEL_E_TYPE: return "type error";
	case CEL_E_LIMIT: return "limit exceeded";
	case CEL_E_NOMEM: return "out of memory";
	case CEL_E_EVAL: return "evaluation error";
	case CEL_E_ARG: return "bad argument";
	}
	return "unknown cel error";
}

const char *cel_kind_name(cel_kind k)
{
	switch (k) {
	case CEL_DYN: return "dyn";
	case CEL_NULL: return "null_type";
	case CEL_BOOL: return "bool";
	case CEL_INT: return "int";
	case CEL_DOUBLE: return "double";
	case CEL_STRING: return "string";
	case CEL_LIST: return "list";
	case CEL_MAP: return "map";
	}
	return (int)k == K_OPT ? "optional" : "?";
}

/* ---------------------------------------------------------------- lexer */

enum tok {
	T_EOF, T_ERR, T_INT, T_DOUBLE, T_STRING, T_IDENT, T_TRUE, T_FALSE, T_NULL, T_IN,
	T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE, T_DOT, T_COMMA, T_COLON, T_QUESTION,
	T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT, T_NOT, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_AND, T_OR,
};

struct scope {
	const uint8_t *name;
	size_t len;
	stype type;
};

struct ps {
	const uint8_t *p;
	size_t len, off;
	int tok;
	size_t tpos, tend;
	uint64_t uval;      /* T_INT, before sign */
	double dval;        /* T_DOUBLE */
	uint32_t soff, slen; /* T_STRING: decoded into the pool */
	cel_program *prog;
	cel_error *err;
	int rc;
	unsigned allowed;
	int rdepth;
	struct scope scope[CEL_MAX_SCOPES];
	int nscope;
};

static int ps_fail(struct ps *s, int code, size_t pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int ps_fail(struct ps *s, int code, size_t pos, const char *fmt, ...)
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

/* Length of the valid UTF-8 sequence at p[0..n), or 0 (overlongs, surrogates and > U+10FFFF refused). */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	size_t need;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4, cp = c & 0x07;
	else
		return 0;
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return need;
}

static int pool_put(struct ps *s, uint8_t c)
{
	cel_program *g = s->prog;

	if (g->pool_len >= g->pool_cap) /* the pool is sized from the source length; cannot happen */
		return ps_fail(s, CEL_E_LIMIT, s->tpos, "internal: literal pool full");
	g->pool[g->pool_len++] = (char)c;
	return 0;
}

static int pool_utf8(struct ps *s, uint32_t cp)
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
		if (pool_put(s, b[i]) != 0)
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
static void lex_string(struct ps *s, bool raw)
{
	uint8_t q = s->p[s->off];
	bool triple = s->len - s->off >= 3 && s->p[s->off + 1] == q && s->p[s->off + 2] == q;
	size_t i = s->off + (triple ? 3 : 1);

	s->soff = (uint32_t)s->prog->pool_len;
	for (;;) {
		uint8_t c;

		if (i >= s->len) {
			ps_fail(s, CEL_E_SYNTAX, s->tpos, "unterminated string literal");
			return;
		}
		c = s->p[i];
		if (c == q && (!triple || (s->len - i >= 3 && s->p[i + 1] == q && s->p[i + 2] == q))) {
			i += triple ? 3 : 1;
			break;
		}
		if ((c == '\n' || c == '\r') && !triple) {
			ps_fail(s, CEL_E_SYNTAX, i, "newline in a single-quoted string literal");
			return;
		}
		if (c != '\\' || raw) {
			if (pool_put(s, c) != 0)
				return;
			i++;
			continue;
		}
		/* an escape sequence */
		if (s->len - i < 2) {
			ps_fail(s, CEL_E_SYNTAX, i, "unterminated string literal");
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
				if (pool_put(s, (uint8_t)simple_out[hit - simple_in]) != 0)
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
					ps_fail(s, CEL_E_SYNTAX, i, "truncated escape sequence");
					return;
				}
				for (size_t k = 0; k < nd; k++) {
					int h = hexval(s->p[i + 2 + k]);

					if (h < 0) {
						ps_fail(s, CEL_E_SYNTAX, i, "invalid escape sequence");
						return;
					}
					cp = cp << 4 | (uint32_t)h;
				}
				skip = 2 + nd;
			} else if (c >= '0' && c <= '3') {
				if (s->len - i < 4) {
					ps_fail(s, CEL_E_SYNTAX, i, "truncated escape sequence");
					return;
				}
				for (size_t k = 1; k < 4; k++) {
					uint8_t o = s->p[i + k];

					if (o < '0' || o > '7') {
						ps_fail(s, CEL_E_SYNTAX, i, "invalid octal escape sequence");
						return;
					}
					cp = cp << 3 | (uint32_t)(o - '0');
				}
				skip = 4;
			} else {
				ps_fail(s, CEL_E_SYNTAX, i, "invalid escape sequence '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
				return;
			}
			if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
				ps_fail(s, CEL_E_SYNTAX, i, "invalid code point in escape sequence");
				return;
			}
			if (pool_utf8(s, cp) != 0)
				return;
			i += skip;
		}
	}
	s->slen = (uint32_t)(s->prog->pool_len - s->soff);
	if (pool_put(s, 0) != 0)
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

static bool word_is(const uint8_t *p, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(p, w, n) == 0;
}

static void lex_number(struct ps *s)
{
	size_t i = s->off;
	bool is_float = false;

	if (s->p[i] == '0' && s->len - i >= 2 && (s->p[i + 1] == 'x' || s->p[i + 1] == 'X')) {
		uint64_t v = 0;
		size_t start = i + 2;

		for (i = start; i < s->len && hexval(s->p[i]) >= 0; i++) {
			if (v > UINT64_MAX >> 4) {
				ps_fail(s, CEL_E_SYNTAX, s->tpos, "integer literal out of range");
				return;
			}
			v = v << 4 | (uint64_t)hexval(s->p[i]);
		}
		if (i == start) {
			ps_fail(s, CEL_E_SYNTAX, s->tpos, "invalid hexadecimal literal");
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
			ps_fail(s, CEL_E_SYNTAX, s->tpos, "floating-point literal too long");
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
				ps_fail(s, CEL_E_SYNTAX, s->tpos, "integer literal out of range");
				return;
			}
			v = v * 10 + d;
		}
		s->uval = v;
	}
suffix:
	if (i < s->len && (s->p[i] == 'u' || s->p[i] == 'U')) {
		ps_fail(s, CEL_E_UNSUPPORTED, s->tpos, "unsigned integer literals are outside the supported CEL subset");
		return;
	}
	if (i < s->len && (is_ident_start(s->p[i]) || is_digit(s->p[i]))) {
		ps_fail(s, CEL_E_SYNTAX, i, "unexpected character after number");
		return;
	}
	s->off = i;
	s->tok = T_INT;
}

static void lex_next(struct ps *s)
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
					ps_fail(s, CEL_E_UNSUPPORTED, s->tpos, "bytes literals are outside the supported CEL subset");
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

			if (word_is(w, n, "true"))
				s->tok = T_TRUE;
			else if (word_is(w, n, "false"))
				s->tok = T_FALSE;
			else if (word_is(w, n, "null"))
				s->tok = T_NULL;
			else if (word_is(w, n, "in"))
				s->tok = T_IN;
			else
				s->tok = T_IDENT;
			for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
				if (word_is(w, n, reserved[k])) {
					ps_fail(s, CEL_E_SYNTAX, s->tpos, "reserved identifier '%s'", reserved[k]);
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
	case '!':
		if (d == '=')
			s->off++, s->tok = T_NE;
		else
			s->tok = T_NOT;
		return;
	case '=':
		if (d == '=') {
			s->off++, s->tok = T_EQ;
			return;
		}
		break;
	case '<':
		if (d == '=')
			s->off++, s->tok = T_LE;
		else
			s->tok = T_LT;
		return;
	case '>':
		if (d == '=')
			s->off++, s->tok = T_GE;
		else
			s->tok = T_GT;
		return;
	case '&':
		if (d == '&') {
			s->off++, s->tok = T_AND;
			return;
		}
		break;
	case '|':
		if (d == '|') {
			s->off++, s->tok = T_OR;
			return;
		}
		break;
	}
	if (c >= 0x20 && c < 0x7f)
		ps_fail(s, CEL_E_SYNTAX, s->tpos, "unexpected character '%c'", c);
	else
		ps_fail(s, CEL_E_SYNTAX, s->tpos, "unexpected byte 0x%02x", c);
}

/* ---------------------------------------------------------------- parser and checker */

static int32_t new_node(struct ps *s, uint8_t op, size_t pos, stype type, int32_t a, int32_t b, int32_t c)
{
	cel_program *g = s->prog;
	node *n;
	uint16_t h = 0;
	int32_t kids[3] = { a, b, c };

	if (s->rc != 0)
		return -1;
	if (g->nnodes >= MAX_NODES) {
		ps_fail(s, CEL_E_LIMIT, pos, "expression too complex");
		return -1;
	}
	if (g->nnodes == g->cap) {
		uint32_t nc = g->cap ? g->cap * 2 : 32;
		node *nn = realloc(g->nodes, (size_t)nc * sizeof(*nn));

		if (nn == NULL) {
			ps_fail(s, CEL_E_NOMEM, pos, "out of memory");
			return -1;
		}
		g->nodes = nn;
		g->cap = nc;
	}
	for (int k = 0; k < 3; k++) {
		if (kids[k] < 0)
			continue;
		if (g->nodes[kids[k]].height > h)
			h = g->nodes[kids[k]].height;
		if (TK(g->nodes[kids[k]].type) == K_OPT && !(k == 0 && (op == OP_OPTSEL || op == OP_CALL))) {
			ps_fail(s, CEL_E_UNSUPPORTED, g->nodes[kids[k]].pos,
				"an optional value can only be used with .?field, orValue(), hasValue() or value()");
			return -1;
		}
	}
	if (h + 1 > CEL_MAX_DEPTH) {
		ps_fail(s, CEL_E_LIMIT, pos, "expression nested deeper than %d", CEL_MAX_DEPTH);
		return -1;
	}
	n = &g->nodes[g->nnodes];
	memset(n, 0, sizeof(*n));
	n->op = op;
	n->pos = (uint32_t)pos;
	n->type = type;
	n->height = (uint16_t)(h + 1);
	n->kid[0] = a, n->kid[1] = b, n->kid[2] = c;
	n->next = -1;
	return (int32_t)g->nnodes++;
}

#define N(s, i) (&(s)->prog->nodes[(i)])

static bool expect(struct ps *s, int tok, const char *what)
{
	if (s->rc != 0)
		return false;
	if (s->tok != tok) {
		if (s->tok == T_EOF)
			ps_fail(s, CEL_E_SYNTAX, s->tpos, "unexpected end of expression, expected %s", what);
		else
			ps_fail(s, CEL_E_SYNTAX, s->tpos, "expected %s", what);
		return false;
	}
	lex_next(s);
	return s->rc == 0;
}

static int32_t parse_expr(struct ps *s);

static const char *op_name(int op)
{
	switch (op) {
	case OP_ADD: return "_+_";
	case OP_SUB: return "_-_";
	case OP_MUL: return "_*_";
	case OP_DIV: return "_/_";
	case OP_MOD: return "_%_";
	case OP_EQ: return "_==_";
	case OP_NE: return "_!=_";
	case OP_LT: return "_<_";
	case OP_LE: return "_<=_";
	case OP_GT: return "_>_";
	case OP_GE: return "_>=_";
	case OP_IN: return "@in";
	case OP_AND: return "_&&_";
	case OP_OR: return "_||_";
	case OP_NOT: return "!_";
	case OP_NEG: return "-_";
	}
	return "?";
}

static int32_t overload_fail(struct ps *s, size_t pos, int op, stype a, stype b)
{
	if (b == 0xffff)
		ps_fail(s, CEL_E_TYPE, pos, "found no matching overload for '%s' applied to '(%s)'", op_name(op),
			cel_kind_name(TK(a)));
	else
		ps_fail(s, CEL_E_TYPE, pos, "found no matching overload for '%s' applied to '(%s, %s)'", op_name(op),
			cel_kind_name(TK(a)), cel_kind_name(TK(b)));
	return -1;
}

static bool is_num(cel_kind k)
{
	return k == CEL_INT || k == CEL_DOUBLE;
}

/* Types a binary operator the way cel-go's overloads would: a mismatch between two statically known types is
 * refused at load time; anything involving dyn is left to run time. */
static int32_t binary(struct ps *s, int op, size_t pos, int32_t a, int32_t b)
{
	stype ta, tb, t = CEL_DYN;
	cel_kind ka, kb;

	if (a < 0 || b < 0 || s->rc != 0)
		return -1;
	ta = N(s, a)->type, tb = N(s, b)->type;
	ka = TK(ta), kb = TK(tb);
	if (ka == K_OPT || kb == K_OPT) {
		ps_fail(s, CEL_E_UNSUPPORTED, N(s, ka == K_OPT ? a : b)->pos,
			"an optional value can only be used with .?field, orValue(), hasValue() or value()");
		return -1;
	}
	switch (op) {
	case OP_ADD:
		if (ka == CEL_DYN && kb == CEL_DYN)
			t = CEL_DYN;
		else if (ka == CEL_DYN || kb == CEL_DYN) {
			cel_kind k = ka == CEL_DYN ? kb : ka;

			if (k == CEL_INT || k == CEL_DOUBLE || k == CEL_STRING)
				t = k;
			else if (k == CEL_LIST)
				t = CEL_LIST;
			else
				return overload_fail(s, pos, op, ta, tb);
		} else if (ka == kb && (ka == CEL_INT || ka == CEL_DOUBLE || ka == CEL_STRING))
			t = ka;
		else if (ka == CEL_LIST && kb == CEL_LIST)
			t = ta == tb ? ta : CEL_LIST;
		else
			return overload_fail(s, pos, op, ta, tb);
		break;
	case OP_SUB:
	case OP_MUL:
	case OP_DIV:
	case OP_MOD: {
		bool ok_a = ka == CEL_DYN || ka == CEL_INT || (op != OP_MOD && ka == CEL_DOUBLE);
		bool ok_b = kb == CEL_DYN || kb == CEL_INT || (op != OP_MOD && kb == CEL_DOUBLE);

		if (!ok_a || !ok_b || (ka != CEL_DYN && kb != CEL_DYN && ka != kb))
			return overload_fail(s, pos, op, ta, tb);
		t = ka != CEL_DYN ? ka : kb;
		break;
	}
	case OP_EQ:
	case OP_NE:
		if (ka != CEL_DYN && kb != CEL_DYN && ka != kb && ka != CEL_NULL && kb != CEL_NULL)
			return overload_fail(s, pos, op, ta, tb);
		t = CEL_BOOL;
		break;
	case OP_LT:
	case OP_LE:
	case OP_GT:
	case OP_GE: {
		bool ok = (ka == CEL_DYN || kb == CEL_DYN) ? (ka == CEL_DYN || is_num(ka) || ka == CEL_STRING ||
							     ka == CEL_BOOL) &&
								    (kb == CEL_DYN || is_num(kb) || kb == CEL_STRING ||
								     kb == CEL_BOOL)
							  : (is_num(ka) && is_num(kb)) ||
								    (ka == kb && (ka == CEL_STRING || ka == CEL_BOOL));

		if (!ok)
			return overload_fail(s, pos, op, ta, tb);
		t = CEL_BOOL;
		break;
	}
	case OP_IN:
		if (kb != CEL_DYN && kb != CEL_LIST && kb != CEL_MAP)
			return overload_fail(s, pos, op, ta, tb);
		t = CEL_BOOL;
		break;
	case OP_AND:
	case OP_OR:
		if ((ka != CEL_DYN && ka != CEL_BOOL) || (kb != CEL_DYN && kb != CEL_BOOL))
			return overload_fail(s, pos, op, ta, tb);
		t = CEL_BOOL;
		break;
	}
	return new_node(s, (uint8_t)op, pos, t, a, b, -1);
}

/* An identifier not followed by '(': a comprehension variable, claims, or user.<field>. */
static int32_t parse_ident(struct ps *s, const uint8_t *w, size_t n, size_t pos)
{
	for (int k = s->nscope - 1; k >= 0; k--)
		if (s->scope[k].len == n && memcmp(s->scope[k].name, w, n) == 0) {
			int32_t r = new_node(s, OP_VAR, pos, s->scope[k].type, -1, -1, -1);

			if (r >= 0)
				N(s, r)->slot = (uint8_t)k;
			return r;
		}
	if (word_is(w, n, "claims") && (s->allowed & CEL_VAR_CLAIMS)) {
		s->prog->vars |= CEL_VAR_CLAIMS;
		return new_node(s, OP_CLAIMS, pos, T_MAP_OF(CEL_DYN), -1, -1, -1);
	}
	if (word_is(w, n, "user") && (s->allowed & CEL_VAR_USER)) {
		static const struct {
			const char *name;
			stype type;
		} fields[] = {
			{ "username", CEL_STRING },
			{ "uid", CEL_STRING },
			{ "groups", T_LIST_OF(CEL_STRING) },
			{ "extra", T_MAP_OF(T_LIST_OF(CEL_STRING)) },
		};
		const uint8_t *f;
		size_t fl, fpos;

		s->prog->vars |= CEL_VAR_USER;
		if (s->tok != T_DOT) {
			ps_fail(s, CEL_E_UNSUPPORTED, pos,
				"'user' must be used with a field (user.username, user.uid, user.groups, user.extra)");
			return -1;
		}
		lex_next(s);
		if (s->tok != T_IDENT) {
			ps_fail(s, CEL_E_SYNTAX, s->tpos, "expected a field name after 'user.'");
			return -1;
		}
		f = s->p + s->tpos, fl = s->tend - s->tpos, fpos = s->tpos;
		for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
			if (word_is(f, fl, fields[k].name)) {
				int32_t r = new_node(s, OP_USERF, fpos, fields[k].type, -1, -1, -1);

				if (r >= 0)
					N(s, r)->fn = (uint8_t)k;
				lex_next(s);
				return r;
			}
		ps_fail(s, CEL_E_TYPE, fpos, "undefined field '%.*s'", (int)(fl > 64 ? 64 : fl), (const char *)f);
		return -1;
	}
	ps_fail(s, CEL_E_TYPE, pos, "undeclared reference to '%.*s'", (int)(n > 64 ? 64 : n), (const char *)w);
	return -1;
}

/* Copies an identifier into the pool (field names of selections). */
static bool pool_ident(struct ps *s, const uint8_t *w, size_t n, uint32_t *off)
{
	*off = (uint32_t)s->prog->pool_len;
	for (size_t i = 0; i < n; i++)
		if (pool_put(s, w[i]) != 0)
			return false;
	return pool_put(s, 0) == 0;
}

/* Parses "(a, b, ...)" after the opening parenthesis was consumed; at most max arguments. */
static int parse_args(struct ps *s, int32_t *args, int max, size_t pos, const char *fname)
{
	int n = 0;

	if (s->tok == T_RPAREN) {
		lex_next(s);
		return 0;
	}
	for (;;) {
		int32_t a = parse_expr(s);

		if (a < 0)
			return -1;
		if (n == max) {
			ps_fail(s, CEL_E_TYPE, pos, "too many arguments to '%s'", fname);
			return -1;
		}
		args[n++] = a;
		if (s->tok == T_COMMA) {
			lex_next(s);
			continue;
		}
		if (!expect(s, T_RPAREN, "')'"))
			return -1;
		return n;
	}
}

static bool kind_ok(stype t, cel_kind a, cel_kind b, cel_kind c)
{
	cel_kind k = TK(t);

	return k == CEL_DYN || k == a || k == b || k == c;
}

static int32_t call_fail(struct ps *s, size_t pos, const char *fname, int32_t target, const int32_t *args, int n)
{
	char sig[96];
	size_t o = 0;

	sig[0] = 0;
	for (int k = 0; k < n && o < sizeof(sig); k++)
		o += (size_t)snprintf(sig + o, sizeof(sig) - o, "%s%s", k ? ", " : "",
				      cel_kind_name(TK(N(s, args[k])->type)));
	if (target >= 0)
		ps_fail(s, CEL_E_TYPE, pos, "found no matching overload for '%s' applied to '%s.(%s)'", fname,
			cel_kind_name(TK(N(s, target)->type)), sig);
	else
		ps_fail(s, CEL_E_TYPE, pos, "found no matching overload for '%s' applied to '(%s)'", fname, sig);
	return -1;
}

/* A function or method call (target < 0 for a global call); the name token is current, '(' next. */
static int32_t parse_call(struct ps *s, int32_t target, const uint8_t *w, size_t n, size_t pos)
{
	static const struct {
		const char *name;
		uint8_t fn;
		bool method, global;
		int8_t nmin, nmax;
	} fns[] = {
		{ "size", FN_SIZE, true, true, 0, 1 },
		{ "string", FN_STRING, false, true, 1, 1 },
		{ "int", FN_INT, false, true, 1, 1 },
		{ "double", FN_DOUBLE, false, true, 1, 1 },
		{ "dyn", FN_DYN, false, true, 1, 1 },
		{ "startsWith", FN_STARTS, true, false, 1, 1 },
		{ "endsWith", FN_ENDS, true, false, 1, 1 },
		{ "contains", FN_CONTAINS, true, false, 1, 1 },
		{ "lowerAscii", FN_LOWER, true, false, 0, 0 },
		{ "upperAscii", FN_UPPER, true, false, 0, 0 },
		{ "join", FN_JOIN, true, false, 0, 1 },
		{ "split", FN_SPLIT, true, false, 1, 1 },
		{ "orValue", FN_OR_VALUE, true, false, 1, 1 },
		{ "hasValue", FN_HAS_VALUE, true, false, 0, 0 },
		{ "value", FN_VALUE, true, false, 0, 0 },
	};
	static const struct {
		const char *name;
		uint8_t kind;
	} macros[] = {
		{ "all", CK_ALL }, { "exists", CK_EXISTS }, { "exists_one", CK_EXISTS_ONE },
		{ "map", CK_MAP }, { "filter", CK_FILTER },
	};
	int32_t args[2] = { -1, -1 }, r;
	int nargs, idx = -1;
	char fname[32];
	stype t = CEL_DYN;

	snprintf(fname, sizeof(fname), "%.*s", (int)(n > 24 ? 24 : n), (const char *)w);
	lex_next(s); /* '(' */
	lex_next(s);
	if (s->rc != 0)
		return -1;

	if (target < 0 && word_is(w, n, "has")) {
		int32_t a;

		nargs = parse_args(s, args, 1, pos, "has");
		if (nargs != 1) {
			if (nargs >= 0)
				ps_fail(s, CEL_E_SYNTAX, pos, "has() takes exactly one argument");
			return -1;
		}
		a = args[0];
		if (N(s, a)->op == OP_SELECT)
			N(s, a)->op = OP_HAS;
		else if (N(s, a)->op == OP_USERF)
			N(s, a)->op = OP_HASUSER;
		else {
			ps_fail(s, CEL_E_SYNTAX, N(s, a)->pos, "invalid argument to has() macro: it must be a field selection");
			return -1;
		}
		N(s, a)->type = CEL_BOOL;
		return a;
	}
	if (target >= 0) {
		for (size_t k = 0; k < sizeof(macros) / sizeof(macros[0]); k++) {
			int32_t e1, e2 = -1;
			stype tt = N(s, target)->type, vt;
			const uint8_t *vn;
			size_t vl, vpos;

			if (!word_is(w, n, macros[k].name))
				continue;
			if (!kind_ok(tt, CEL_LIST, CEL_MAP, CEL_MAP)) {
				ps_fail(s, CEL_E_TYPE, pos, "%s() applies to a list or a map, not %s", fname,
					cel_kind_name(TK(tt)));
				return -1;
			}
			vt = TK(tt) == CEL_LIST ? TELEM(tt) : TK(tt) == CEL_MAP ? CEL_STRING : CEL_DYN;
			if (s->tok != T_IDENT) {
				ps_fail(s, CEL_E_SYNTAX, s->tpos, "%s() argument must be a simple name", fname);
				return -1;
			}
			vn = s->p + s->tpos, vl = s->tend - s->tpos, vpos = s->tpos;
			if (word_is(vn, vl, "claims") || word_is(vn, vl, "user")) {
				ps_fail(s, CEL_E_UNSUPPORTED, vpos, "iteration variable '%s' would shadow a variable",
					word_is(vn, vl, "user") ? "user" : "claims");
				return -1;
			}
			if (s->nscope >= CEL_MAX_SCOPES) {
				ps_fail(s, CEL_E_LIMIT, pos, "comprehensions nested deeper than %d", CEL_MAX_SCOPES);
				return -1;
			}
			lex_next(s);
			if (!expect(s, T_COMMA, "',' after the iteration variable"))
				return -1;
			s->scope[s->nscope].name = vn;
			s->scope[s->nscope].len = vl;
			s->scope[s->nscope].type = vt;
			s->nscope++;
			e1 = parse_expr(s);
			if (e1 >= 0 && s->tok == T_COMMA && macros[k].kind == CK_MAP) {
				lex_next(s);
				e2 = parse_expr(s);
			}
			s->nscope--;
			if (e1 < 0 || (s->tok == T_COMMA ? (ps_fail(s, CEL_E_SYNTAX, s->tpos, "too many arguments to %s()",
								fname), true) : false) ||
			    !expect(s, T_RPAREN, "')'"))
				return -1;
			if (macros[k].kind != CK_MAP || e2 >= 0) {
				/* e1 is a predicate */
				if (!kind_ok(N(s, e1)->type, CEL_BOOL, CEL_BOOL, CEL_BOOL)) {
					ps_fail(s, CEL_E_TYPE, N(s, e1)->pos, "%s() predicate must be bool, not %s", fname,
						cel_kind_name(TK(N(s, e1)->type)));
					return -1;
				}
			}
			switch (macros[k].kind) {
			case CK_MAP: t = T_LIST_OF(N(s, e2 >= 0 ? e2 : e1)->type); break;
			case CK_FILTER: t = T_LIST_OF(vt); break;
			default: t = CEL_BOOL; break;
			}
			/* map(x, e) keeps e in kid[2] and no predicate; map(x, p, e) both */
			if (macros[k].kind == CK_MAP && e2 < 0)
				r = new_node(s, OP_COMPRE, pos, t, target, -1, e1);
			else
				r = new_node(s, OP_COMPRE, pos, t, target, e1, e2);
			if (r >= 0) {
				N(s, r)->fn = macros[k].kind;
				N(s, r)->slot = (uint8_t)s->nscope;
			}
			return r;
		}
	}
	for (size_t k = 0; k < sizeof(fns) / sizeof(fns[0]); k++)
		if (word_is(w, n, fns[k].name) && (target >= 0 ? fns[k].method : fns[k].global)) {
			idx = (int)k;
			break;
		}
	if (idx < 0) {
		ps_fail(s, CEL_E_UNSUPPORTED, pos, "function '%s' is outside the supported CEL subset%s", fname,
			target >= 0 ? " (as a method)" : "");
		return -1;
	}
	nargs = parse_args(s, args, 2, pos, fname);
	if (nargs < 0)
		return -1;
	if (target < 0) {
		/* every global function takes one argument; f(x) is evaluated as x.f() */
		if (nargs != 1)
			return call_fail(s, pos, fname, -1, args, nargs);
		target = args[0];
		args[0] = -1;
		nargs = 0;
	} else if (nargs < fns[idx].nmin || nargs > fns[idx].nmax || (fns[idx].fn == FN_SIZE && nargs != 0)) {
		return call_fail(s, pos, fname, target, args, nargs);
	}
	if ((fns[idx].fn >= FN_OR_VALUE) != (target >= 0 && TK(N(s, target)->type) == K_OPT)) {
		if (fns[idx].fn >= FN_OR_VALUE)
			ps_fail(s, CEL_E_UNSUPPORTED, pos, "%s() applies to an optional value (x.?field)", fname);
		else
			ps_fail(s, CEL_E_UNSUPPORTED, pos,
				"an optional value can only be used with .?field, orValue(), hasValue() or value()");
		return -1;
	}
	switch (fns[idx].fn) {
	case FN_SIZE:
		if (!kind_ok(N(s, target)->type, CEL_STRING, CEL_LIST, CEL_MAP))
			return call_fail(s, pos, fname, target, args, 0);
		t = CEL_INT;
		break;
	case FN_STRING:
		if (!kind_ok(N(s, target)->type, CEL_STRING, CEL_INT, CEL_DOUBLE) && TK(N(s, target)->type) != CEL_BOOL)
			return call_fail(s, pos, fname, -1, &target, 1);
		t = CEL_STRING;
		break;
	case FN_INT:
		if (!kind_ok(N(s, target)->type, CEL_STRING, CEL_INT, CEL_DOUBLE))
			return call_fail(s, pos, fname, -1, &target, 1);
		t = CEL_INT;
		break;
	case FN_DOUBLE:
		if (!kind_ok(N(s, target)->type, CEL_STRING, CEL_INT, CEL_DOUBLE))
			return call_fail(s, pos, fname, -1, &target, 1);
		t = CEL_DOUBLE;
		break;
	case FN_DYN:
		t = CEL_DYN;
		break;
	case FN_STARTS:
	case FN_ENDS:
	case FN_CONTAINS:
		if (!kind_ok(N(s, target)->type, CEL_STRING, CEL_STRING, CEL_STRING) ||
		    !kind_ok(N(s, args[0])->type, CEL_STRING, CEL_STRING, CEL_STRING))
			return call_fail(s, pos, fname, target, args, 1);
		t = CEL_BOOL;
		break;
	case FN_LOWER:
	case FN_UPPER:
		if (!kind_ok(N(s, target)->type, CEL_STRING, CEL_STRING, CEL_STRING))
			return call_fail(s, pos, fname, target, args, 0);
		t = CEL_STRING;
		break;
	case FN_JOIN:
		if (!kind_ok(N(s, target)->type, CEL_LIST, CEL_LIST, CEL_LIST) ||
		    (TK(N(s, target)->type) == CEL_LIST &&
		     !kind_ok(TELEM(N(s, target)->type), CEL_STRING, CEL_STRING, CEL_STRING)) ||
		    (nargs == 1 && !kind_ok(N(s, args[0])->type, CEL_STRING, CEL_STRING, CEL_STRING)))
			return call_fail(s, pos, fname, target, args, nargs);
		t = CEL_STRING;
		break;
	case FN_SPLIT:
		if (!kind_ok(N(s, target)->type, CEL_STRING, CEL_STRING, CEL_STRING) ||
		    !kind_ok(N(s, args[0])->type, CEL_STRING, CEL_STRING, CEL_STRING))
			return call_fail(s, pos, fname, target, args, 1);
		t = T_LIST_OF(CEL_STRING);
		break;
	case FN_OR_VALUE:
		t = TELEM(N(s, target)->type) == N(s, args[0])->type ? N(s, args[0])->type : (stype)CEL_DYN;
		break;
	case FN_HAS_VALUE:
		t = CEL_BOOL;
		break;
	case FN_VALUE:
		t = TELEM(N(s, target)->type);
		break;
	}
	r = new_node(s, OP_CALL, pos, t, target, args[0], args[1]);
	if (r >= 0) {
		N(s, r)->fn = fns[idx].fn;
		N(s, r)->nargs = (uint8_t)nargs;
	}
	return r;
}

static int32_t parse_primary(struct ps *s)
{
	size_t pos = s->tpos;
	int32_t r = -1;

	switch (s->tok) {
	case T_INT:
		if (s->uval > (uint64_t)INT64_MAX) {
			ps_fail(s, CEL_E_SYNTAX, pos, "integer literal out of range");
			return -1;
		}
		r = new_node(s, OP_INT, pos, CEL_INT, -1, -1, -1);
		if (r >= 0)
			N(s, r)->v.i = (int64_t)s->uval;
		lex_next(s);
		return r;
	case T_DOUBLE:
		r = new_node(s, OP_DOUBLE, pos, CEL_DOUBLE, -1, -1, -1);
		if (r >= 0)
			N(s, r)->v.d = s->dval;
		lex_next(s);
		return r;
	case T_STRING:
		r = new_node(s, OP_STRING, pos, CEL_STRING, -1, -1, -1);
		if (r >= 0)
			N(s, r)->v.s.off = s->soff, N(s, r)->v.s.len = s->slen;
		lex_next(s);
		return r;
	case T_TRUE:
	case T_FALSE:
		r = new_node(s, OP_BOOL, pos, CEL_BOOL, -1, -1, -1);
		if (r >= 0)
			N(s, r)->v.b = s->tok == T_TRUE;
		lex_next(s);
		return r;
	case T_NULL:
		r = new_node(s, OP_NULL, pos, CEL_NULL, -1, -1, -1);
		lex_next(s);
		return r;
	case T_LPAREN:
		lex_next(s);
		r = parse_expr(s);
		if (r < 0 || !expect(s, T_RPAREN, "')'"))
			return -1;
		return r;
	case T_LBRACK: {
		int32_t first = -1, last = -1;
		uint32_t count = 0;
		stype et = 0xffff;
		uint16_t h = 0;

		lex_next(s);
		while (s->rc == 0 && s->tok != T_RBRACK) {
			int32_t e = parse_expr(s);

			if (e < 0)
				return -1;
			if (TK(N(s, e)->type) == K_OPT) {
				ps_fail(s, CEL_E_UNSUPPORTED, N(s, e)->pos,
					"an optional value can only be used with .?field, orValue(), hasValue() or value()");
				return -1;
			}
			if (first < 0)
				first = e;
			else
				N(s, last)->next = e;
			last = e;
			count++;
			et = et == 0xffff ? N(s, e)->type : et == N(s, e)->type ? et : (stype)CEL_DYN;
			if (N(s, e)->height > h)
				h = N(s, e)->height;
			if (s->tok == T_COMMA)
				lex_next(s);
			else if (s->tok != T_RBRACK) {
				expect(s, T_RBRACK, "',' or ']'");
				return -1;
			}
		}
		if (!expect(s, T_RBRACK, "']'"))
			return -1;
		r = new_node(s, OP_LIST, pos, T_LIST_OF(et == 0xffff ? (stype)CEL_DYN : et), first, -1, -1);
		if (r >= 0) {
			N(s, r)->v.i = count;
			if (h + 1 > CEL_MAX_DEPTH) {
				ps_fail(s, CEL_E_LIMIT, pos, "expression nested deeper than %d", CEL_MAX_DEPTH);
				return -1;
			}
			N(s, r)->height = (uint16_t)(h + 1);
		}
		return r;
	}
	case T_LBRACE:
		ps_fail(s, CEL_E_UNSUPPORTED, pos, "map literals are outside the supported CEL subset");
		return -1;
	case T_DOT:
		ps_fail(s, CEL_E_UNSUPPORTED, pos, "qualified names ('.name') are outside the supported CEL subset");
		return -1;
	case T_IDENT: {
		const uint8_t *w = s->p + s->tpos;
		size_t n = s->tend - s->tpos;

		if (s->len - s->off >= 1) {
			/* peek: '(' right after optional spaces means a global call */
			size_t k = s->off;

			while (k < s->len && (s->p[k] == ' ' || s->p[k] == '\t' || s->p[k] == '\n' || s->p[k] == '\r'))
				k++;
			if (k < s->len && s->p[k] == '(') {
				s->off = k; /* parse_call consumes '(' via lex_next */
				s->tok = T_IDENT;
				return parse_call(s, -1, w, n, pos);
			}
		}
		lex_next(s);
		if (s->rc != 0)
			return -1;
		return parse_ident(s, w, n, pos);
	}
	case T_EOF:
		ps_fail(s, CEL_E_SYNTAX, pos, "unexpected end of expression");
		return -1;
	case T_ERR:
		return -1;
	default:
		ps_fail(s, CEL_E_SYNTAX, pos, "unexpected token");
		return -1;
	}
}

static int32_t parse_member(struct ps *s)
{
	int32_t r = parse_primary(s);

	while (r >= 0 && s->rc == 0) {
		size_t pos = s->tpos;

		if (s->tok == T_DOT) {
			const uint8_t *w;
			size_t n, k;

			bool opt = false;

			lex_next(s);
			if (s->tok == T_QUESTION) {
				opt = true;
				lex_next(s);
			}
			if (s->tok != T_IDENT) {
				ps_fail(s, CEL_E_SYNTAX, s->tpos, "expected a field or method name after '.'");
				return -1;
			}
			w = s->p + s->tpos, n = s->tend - s->tpos, pos = s->tpos;
			k = s->off;
			while (k < s->len && (s->p[k] == ' ' || s->p[k] == '\t' || s->p[k] == '\n' || s->p[k] == '\r'))
				k++;
			if (k < s->len && s->p[k] == '(' && !opt) {
				s->off = k;
				r = parse_call(s, r, w, n, pos);
				continue;
			}
			if (opt) {
				stype tt = N(s, r)->type, vt;
				uint32_t off;
				int32_t sel;

				if (TK(tt) == K_OPT)
					tt = TELEM(tt);
				if (!kind_ok(tt, CEL_MAP, CEL_MAP, CEL_MAP)) {
					ps_fail(s, CEL_E_TYPE, pos, "type '%s' does not support field selection",
						cel_kind_name(TK(tt)));
					return -1;
				}
				vt = TK(tt) == CEL_MAP ? TELEM(tt) : (stype)CEL_DYN;
				if (!pool_ident(s, w, n, &off))
					return -1;
				sel = new_node(s, OP_OPTSEL, pos, T_OPT_OF(vt), r, -1, -1);
				if (sel >= 0)
					N(s, sel)->v.s.off = off, N(s, sel)->v.s.len = (uint32_t)n;
				r = sel;
				lex_next(s);
				continue;
			}
			{
				stype tt = N(s, r)->type;
				uint32_t off;
				int32_t sel;

				if (!kind_ok(tt, CEL_MAP, CEL_MAP, CEL_MAP)) {
					ps_fail(s, CEL_E_TYPE, pos, "type '%s' does not support field selection",
						cel_kind_name(TK(tt)));
					return -1;
				}
				if (!pool_ident(s, w, n, &off))
					return -1;
				sel = new_node(s, OP_SELECT, pos, TK(tt) == CEL_MAP ? TELEM(tt) : (stype)CEL_DYN, r, -1, -1);
				if (sel >= 0)
					N(s, sel)->v.s.off = off, N(s, sel)->v.s.len = (uint32_t)n;
				r = sel;
				lex_next(s);
			}
		} else if (s->tok == T_LBRACK) {
			int32_t ix;
			stype tt = N(s, r)->type, ti, t;

			lex_next(s);
			if (s->tok == T_QUESTION) {
				ps_fail(s, CEL_E_UNSUPPORTED, s->tpos, "optional index is outside the supported CEL subset");
				return -1;
			}
			ix = parse_expr(s);
			if (ix < 0 || !expect(s, T_RBRACK, "']'"))
				return -1;
			ti = N(s, ix)->type;
			if (TK(tt) == CEL_LIST) {
				if (!kind_ok(ti, CEL_INT, CEL_INT, CEL_INT))
					goto badindex;
				t = TELEM(tt);
			} else if (TK(tt) == CEL_MAP) {
				if (!kind_ok(ti, CEL_STRING, CEL_STRING, CEL_STRING))
					goto badindex;
				t = TELEM(tt);
			} else if (TK(tt) == CEL_DYN) {
				t = CEL_DYN;
			} else {
badindex:
				ps_fail(s, CEL_E_TYPE, pos, "found no matching overload for '_[_]' applied to '(%s, %s)'",
					cel_kind_name(TK(tt)), cel_kind_name(TK(ti)));
				return -1;
			}
			r = new_node(s, OP_INDEX, pos, t, r, ix, -1);
		} else {
			break;
		}
	}
	return s->rc == 0 ? r : -1;
}

static int32_t parse_unary(struct ps *s)
{
	size_t pos = s->tpos;
	int32_t r;
	stype t;

	if (s->tok == T_NOT) {
		lex_next(s);
		r = parse_unary(s);
		if (r < 0)
			return -1;
		t = N(s, r)->type;
		if (!kind_ok(t, CEL_BOOL, CEL_BOOL, CEL_BOOL))
			return overload_fail(s, pos, OP_NOT, t, 0xffff);
		return new_node(s, OP_NOT, pos, CEL_BOOL, r, -1, -1);
	}
	if (s->tok == T_MINUS) {
		lex_next(s);
		if (s->tok == T_INT && s->uval == (uint64_t)INT64_MAX + 1) {
			/* the one literal only writable negated */
			r = new_node(s, OP_INT, pos, CEL_INT, -1, -1, -1);
			if (r >= 0)
				N(s, r)->v.i = INT64_MIN;
			lex_next(s);
			return r;
		}
		r = parse_unary(s);
		if (r < 0)
			return -1;
		t = N(s, r)->type;
		if (!kind_ok(t, CEL_INT, CEL_DOUBLE, CEL_DOUBLE))
			return overload_fail(s, pos, OP_NEG, t, 0xffff);
		return new_node(s, OP_NEG, pos, TK(t), r, -1, -1);
	}
	if (++s->rdepth > CEL_MAX_DEPTH) {
		ps_fail(s, CEL_E_LIMIT, pos, "expression nested deeper than %d", CEL_MAX_DEPTH);
		return -1;
	}
	r = parse_member(s);
	s->rdepth--;
	return r;
}

static int32_t parse_mul(struct ps *s)
{
	int32_t r = parse_unary(s);

	while (r >= 0 && (s->tok == T_STAR || s->tok == T_SLASH || s->tok == T_PERCENT)) {
		int op = s->tok == T_STAR ? OP_MUL : s->tok == T_SLASH ? OP_DIV : OP_MOD;
		size_t pos = s->tpos;

		lex_next(s);
		r = binary(s, op, pos, r, parse_unary(s));
	}
	return r;
}

static int32_t parse_add(struct ps *s)
{
	int32_t r = parse_mul(s);

	while (r >= 0 && (s->tok == T_PLUS || s->tok == T_MINUS)) {
		int op = s->tok == T_PLUS ? OP_ADD : OP_SUB;
		size_t pos = s->tpos;

		lex_next(s);
		r = binary(s, op, pos, r, parse_mul(s));
	}
	return r;
}

static int32_t parse_rel(struct ps *s)
{
	int32_t r = parse_add(s);

	for (;;) {
		int op;
		size_t pos = s->tpos;

		switch (s->tok) {
		case T_EQ: op = OP_EQ; break;
		case T_NE: op = OP_NE; break;
		case T_LT: op = OP_LT; break;
		case T_LE: op = OP_LE; break;
		case T_GT: op = OP_GT; break;
		case T_GE: op = OP_GE; break;
		case T_IN: op = OP_IN; break;
		default: return r;
		}
		if (r < 0)
			return -1;
		lex_next(s);
		r = binary(s, op, pos, r, parse_add(s));
	}
}

static int32_t parse_and(struct ps *s)
{
	int32_t r = parse_rel(s);

	while (r >= 0 && s->tok == T_AND) {
		size_t pos = s->tpos;

		lex_next(s);
		r = binary(s, OP_AND, pos, r, parse_rel(s));
	}
	return r;
}

static int32_t parse_or(struct ps *s)
{
	int32_t r = parse_and(s);

	while (r >= 0 && s->tok == T_OR) {
		size_t pos = s->tpos;

		lex_next(s);
		r = binary(s, OP_OR, pos, r, parse_and(s));
	}
	return r;
}

static int32_t parse_expr(struct ps *s)
{
	int32_t c, a, b;
	size_t pos;
	stype t;

	if (++s->rdepth > CEL_MAX_DEPTH) {
		ps_fail(s, CEL_E_LIMIT, s->tpos, "expression nested deeper than %d", CEL_MAX_DEPTH);
		return -1;
	}
	c = parse_or(s);
	if (c < 0 || s->tok != T_QUESTION) {
		s->rdepth--;
		return c;
	}
	pos = s->tpos;
	lex_next(s);
	a = parse_or(s);
	if (a < 0 || !expect(s, T_COLON, "':'"))
		return -1;
	b = parse_expr(s);
	if (b < 0)
		return -1;
	s->rdepth--;
	if (!kind_ok(N(s, c)->type, CEL_BOOL, CEL_BOOL, CEL_BOOL)) {
		ps_fail(s, CEL_E_TYPE, pos, "found no matching overload for '_?_:_' applied to '(%s, %s, %s)'",
			cel_kind_name(TK(N(s, c)->type)), cel_kind_name(TK(N(s, a)->type)),
			cel_kind_name(TK(N(s, b)->type)));
		return -1;
	}
	t = N(s, a)->type == N(s, b)->type ? N(s, a)->type : (stype)CEL_DYN;
	return new_node(s, OP_COND, pos, t, c, a, b);
}

int cel_compile_vars(const uint8_t *p, size_t len, unsigned vars, cel_program **out, cel_error *err)
{
	struct ps s;
	cel_program *g = NULL;
	int32_t root;
	int rc;

	memset(&s, 0, sizeof(s));
	s.err = err;
	if (out == NULL || (p == NULL && len > 0))
		return ps_fail(&s, CEL_E_ARG, 0, "bad argument");
	if (len > CEL_MAX_EXPR_LEN)
		return ps_fail(&s, CEL_E_LIMIT, CEL_MAX_EXPR_LEN, "expression longer than %d bytes", CEL_MAX_EXPR_LEN);
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(p + i, len - i);

		if (n == 0)
			return ps_fail(&s, CEL_E_SYNTAX, i, "invalid UTF-8");
		if (p[i] == 0)
			return ps_fail(&s, CEL_E_SYNTAX, i, "NUL byte in expression");
		i += n;
	}
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return ps_fail(&s, CEL_E_NOMEM, 0, "out of memory");
	g->pool_cap = len + 16;
	g->pool = malloc(g->pool_cap);
	if (g->pool == NULL) {
		rc = ps_fail(&s, CEL_E_NOMEM, 0, "out of memory");
		goto out;
	}
	s.p = p;
	s.len = len;
	s.prog = g;
	s.allowed = vars;
	lex_next(&s);
	root = parse_expr(&s);
	if (root >= 0 && s.rc == 0 && s.tok != T_EOF)
		ps_fail(&s, CEL_E_SYNTAX, s.tpos, "unexpected input after the expression");
	if (root >= 0 && s.rc == 0 && TK(g->nodes[root].type) == K_OPT)
		ps_fail(&s, CEL_E_UNSUPPORTED, g->nodes[root].pos,
			"an optional value can only be used with .?field, orValue(), hasValue() or value()");
	rc = s.rc;
	if (rc == 0 && root < 0)
		rc = ps_fail(&s, CEL_E_SYNTAX, 0, "empty expression");
	if (rc != 0)
		goto out;
	g->root = root;
	*out = g;
	g = NULL;
out:
	cel_program_free(g);
	return rc;
}

int cel_compile(const uint8_t *p, size_t len, cel_program **out, cel_error *err)
{
	return cel_compile_vars(p, len, CEL_VAR_CLAIMS | CEL_VAR_USER, out, err);
}

void cel_program_free(cel_program *prog)
{
	if (prog == NULL)
		return;
	free(prog->nodes);
	free(prog->pool);
	free(prog);
}

void cel_result_type(const cel_program *prog, cel_kind *kind, cel_kind *elem)
{
	stype t = prog->nodes[prog->root].type;

	if (kind != NULL)
		*kind = TK(t);
	if (elem != NULL)
		*elem = TK(TELEM(t));
}

unsigned cel_program_vars(const cel_program *prog)
{
	return prog->vars;
}

bool cel_program_uses_claim(const cel_program *prog, const char *name)
{
	size_t nl = strlen(name);

	for (uint32_t i = 0; i < prog->nnodes; i++) {
		const node *n = &prog->nodes[i];
		const node *key = NULL;

		if (n->op != OP_SELECT && n->op != OP_HAS && n->op != OP_OPTSEL && n->op != OP_INDEX)
			continue;
		if (prog->nodes[n->kid[0]].op != OP_CLAIMS)
			continue;
		if (n->op == OP_INDEX) {
			key = &prog->nodes[n->kid[1]];
			if (key->op != OP_STRING)
				continue;
			n = key;
		}
		if (n->v.s.len == nl && memcmp(prog->pool + n->v.s.off, name, nl) == 0)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------- values */

void cel_arena_init(cel_arena *a, void *buf, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->cap = buf != NULL ? cap : 0;
}

void cel_arena_reset(cel_arena *a)
{
	a->used = 0;
	memset(&a->err, 0, sizeof(a->err));
}

/* cJSON numbers are doubles; an integral value in int64 range is an int, as Kubernetes' JSON decoding makes
 * every number without a fraction or exponent (docs/cel.md: "1.0" is an int here, a double there). */
static void from_json(const cJSON *j, cel_value *v)
{
	memset(v, 0, sizeof(*v));
	if (cJSON_IsString(j)) {
		v->kind = CEL_STRING;
		v->u.s.p = j->valuestring != NULL ? j->valuestring : "";
		v->u.s.len = strlen(v->u.s.p);
	} else if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;

		if (d == trunc(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
			v->kind = CEL_INT;
			v->u.i = (int64_t)d;
		} else {
			v->kind = CEL_DOUBLE;
			v->u.d = d;
		}
	} else if (cJSON_IsBool(j)) {
		v->kind = CEL_BOOL;
		v->u.b = cJSON_IsTrue(j);
	} else if (cJSON_IsArray(j)) {
		v->kind = CEL_LIST;
		v->rep = CEL_REP_JSON;
		v->u.json = j;
	} else if (cJSON_IsObject(j)) {
		v->kind = CEL_MAP;
		v->rep = CEL_REP_JSON;
		v->u.json = j;
	} else {
		v->kind = CEL_NULL;
	}
}

static void str_value(cel_value *v, const char *p, size_t len)
{
	memset(v, 0, sizeof(*v));
	v->kind = CEL_STRING;
	v->u.s.p = p != NULL ? p : "";
	v->u.s.len = p != NULL ? len : 0;
}

size_t cel_list_len(const cel_value *v)
{
	size_t n = 0;

	if (v->kind != CEL_LIST && v->kind != CEL_MAP)
		return 0;
	switch (v->rep) {
	case CEL_REP_JSON:
		for (const cJSON *c = v->u.json->child; c != NULL; c = c->next)
			n++;
		return n;
	case CEL_REP_STRS: return v->u.strs.n;
	case CEL_REP_EXTRA: return v->u.extra.n;
	default: return v->u.list.n;
	}
}

void cel_iter_init(cel_iter *it, const cel_value *v)
{
	it->v = v;
	it->i = 0;
	it->next = (v->kind == CEL_LIST || v->kind == CEL_MAP) && v->rep == CEL_REP_JSON ? v->u.json->child : NULL;
}

bool cel_iter_next(cel_iter *it, cel_value *out)
{
	const cel_value *v = it->v;

	if (v->kind != CEL_LIST && v->kind != CEL_MAP)
		return false;
	switch (v->rep) {
	case CEL_REP_JSON:
		if (it->next == NULL)
			return false;
		if (v->kind == CEL_MAP)
			str_value(out, it->next->string, it->next->string != NULL ? strlen(it->next->string) : 0);
		else
			from_json(it->next, out);
		it->next = it->next->next;
		return true;
	case CEL_REP_STRS:
		if (it->i >= v->u.strs.n)
			return false;
		str_value(out, v->u.strs.items[it->i].p, v->u.strs.items[it->i].len);
		it->i++;
		return true;
	case CEL_REP_EXTRA:
		if (it->i >= v->u.extra.n)
			return false;
		str_value(out, v->u.extra.items[it->i].key.p, v->u.extra.items[it->i].key.len);
		it->i++;
		return true;
	default:
		if (v->kind != CEL_LIST || it->i >= v->u.list.n)
			return false;
		*out = v->u.list.items[it->i++];
		return true;
	}
}

/* Looks a string key up in a map; JSON objects match keys by exact length and bytes (first duplicate wins, as
 * everywhere else cJSON is read here). */
static bool map_get(const cel_value *m, const char *k, size_t kl, cel_value *out)
{
	if (m->rep == CEL_REP_JSON) {
		for (const cJSON *c = m->u.json->child; c != NULL; c = c->next)
			if (c->string != NULL && strlen(c->string) == kl && memcmp(c->string, k, kl) == 0) {
				if (out != NULL)
					from_json(c, out);
				return true;
			}
		return false;
	}
	if (m->rep == CEL_REP_EXTRA) {
		for (size_t i = 0; i < m->u.extra.n; i++) {
			const cel_user_extra *x = &m->u.extra.items[i];

			if (x->key.len == kl && (kl == 0 || memcmp(x->key.p, k, kl) == 0)) {
				if (out != NULL) {
					memset(out, 0, sizeof(*out));
					out->kind = CEL_LIST;
					out->rep = CEL_REP_STRS;
					out->u.strs.items = x->values;
					out->u.strs.n = x->values != NULL ? x->nvalues : 0;
				}
				return true;
			}
		}
	}
	return false;
}

/* ---------------------------------------------------------------- evaluation */

struct ev {
	const cel_program *g;
	const cel_env *env;
	cel_arena *a;
	uint64_t steps, max_steps;
	cel_value vars[CEL_MAX_SCOPES];
};

static int ev_fail(struct ev *e, int code, uint32_t pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int ev_fail(struct ev *e, int code, uint32_t pos, const char *fmt, ...)
{
	va_list ap;

	e->a->err.code = code;
	e->a->err.pos = pos;
	va_start(ap, fmt);
	vsnprintf(e->a->err.msg, sizeof(e->a->err.msg), fmt, ap);
	va_end(ap);
	return code;
}

/* Resource errors end the evaluation; the others are CEL error values that && / || / all / exists may absorb. */
static bool fatal(int rc)
{
	return rc == CEL_E_LIMIT || rc == CEL_E_NOMEM;
}

static int spend(struct ev *e, uint64_t n, uint32_t pos)
{
	e->steps += n;
	if (e->steps > e->max_steps)
		return ev_fail(e, CEL_E_LIMIT, pos, "evaluation cost limit of %llu steps exceeded",
			       (unsigned long long)e->max_steps);
	return 0;
}

static void *arena_alloc(struct ev *e, size_t n, uint32_t pos, int *rc)
{
	cel_arena *a = e->a;
	size_t off = (a->used + 7) & ~(size_t)7;

	if (off < a->used || off > a->cap || a->cap - off < n) {
		*rc = ev_fail(e, CEL_E_NOMEM, pos, "evaluation arena exhausted (%zu bytes)", a->cap);
		return NULL;
	}
	a->used = off + n;
	return a->buf + off;
}

static int eval(struct ev *e, int32_t ni, cel_value *out);

static int no_overload(struct ev *e, uint32_t pos, const char *what, const cel_value *a, const cel_value *b)
{
	if (b == NULL)
		return ev_fail(e, CEL_E_TYPE, pos, "no such overload: %s(%s)", what, cel_kind_name(a->kind));
	return ev_fail(e, CEL_E_TYPE, pos, "no such overload: %s(%s, %s)", what, cel_kind_name(a->kind),
		       cel_kind_name(b->kind));
}

/* Heterogeneous equality: values of different kinds are unequal (numbers compare by value across int/double). */
static int val_eq(struct ev *e, const cel_value *a, const cel_value *b, uint32_t pos, bool *res)
{
	int rc = spend(e, 1, pos);

	if (rc != 0)
		return rc;
	if (is_num(a->kind) && is_num(b->kind)) {
		if (a->kind == CEL_INT && b->kind == CEL_INT)
			*res = a->u.i == b->u.i;
		else if (a->kind == CEL_DOUBLE && b->kind == CEL_DOUBLE)
			*res = a->u.d == b->u.d;
		else {
			int64_t i = a->kind == CEL_INT ? a->u.i : b->u.i;
			double d = a->kind == CEL_DOUBLE ? a->u.d : b->u.d;

			*res = d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == trunc(d) &&
			       (int64_t)d == i;
		}
		return 0;
	}
	if (a->kind != b->kind) {
		*res = false;
		return 0;
	}
	switch (a->kind) {
	case CEL_NULL: *res = true; return 0;
	case CEL_BOOL: *res = a->u.b == b->u.b; return 0;
	case CEL_STRING:
		*res = a->u.s.len == b->u.s.len && (a->u.s.len == 0 || memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0);
		return spend(e, a->u.s.len / 16, pos);
	case CEL_LIST: {
		cel_iter ia, ib;
		cel_value x, y;

		if (cel_list_len(a) != cel_list_len(b)) {
			*res = false;
			return 0;
		}
		cel_iter_init(&ia, a);
		cel_iter_init(&ib, b);
		while (cel_iter_next(&ia, &x) && cel_iter_next(&ib, &y)) {
			rc = val_eq(e, &x, &y, pos, res);
			if (rc != 0 || !*res)
				return rc;
		}
		*res = true;
		return 0;
	}
	case CEL_MAP: {
		cel_iter ia;
		cel_value k, x, y;

		if (cel_list_len(a) != cel_list_len(b)) {
			*res = false;
			return 0;
		}
		cel_iter_init(&ia, a);
		while (cel_iter_next(&ia, &k)) {
			if ((rc = spend(e, 1, pos)) != 0)
				return rc;
			if (!map_get(a, k.u.s.p, k.u.s.len, &x) || !map_get(b, k.u.s.p, k.u.s.len, &y)) {
				*res = false;
				return 0;
			}
			rc = val_eq(e, &x, &y, pos, res);
			if (rc != 0 || !*res)
				return rc;
		}
		*res = true;
		return 0;
	}
	}
	*res = false;
	return 0;
}

/* -1, 0, 1 for an ordering; only numbers (across int/double), strings and bools are ordered. */
static int val_cmp(struct ev *e, const cel_value *a, const cel_value *b, uint32_t pos, const char *op, int *res)
{
	if (is_num(a->kind) && is_num(b->kind)) {
		if (a->kind == CEL_INT && b->kind == CEL_INT)
			*res = (a->u.i > b->u.i) - (a->u.i < b->u.i);
		else {
			double x = a->kind == CEL_INT ? (double)a->u.i : a->u.d;
			double y = b->kind == CEL_INT ? (double)b->u.i : b->u.d;

			if (isnan(x) || isnan(y))
				*res = 2; /* unordered: every comparison false */
			else
				*res = (x > y) - (x < y);
		}
		return 0;
	}
	if (a->kind == CEL_STRING && b->kind == CEL_STRING) {
		size_t n = a->u.s.len < b->u.s.len ? a->u.s.len : b->u.s.len;
		int c = n ? memcmp(a->u.s.p, b->u.s.p, n) : 0;

		*res = c != 0 ? (c > 0) - (c < 0) : (a->u.s.len > b->u.s.len) - (a->u.s.len < b->u.s.len);
		return spend(e, n / 16, pos);
	}
	if (a->kind == CEL_BOOL && b->kind == CEL_BOOL) {
		*res = (int)a->u.b - (int)b->u.b;
		return 0;
	}
	return no_overload(e, pos, op, a, b);
}

static int new_string(struct ev *e, size_t len, uint32_t pos, char **p, cel_value *out)
{
	int rc = spend(e, len / 16, pos);

	if (rc != 0)
		return rc;
	*p = arena_alloc(e, len + 1, pos, &rc);
	if (*p == NULL)
		return rc;
	(*p)[len] = 0;
	str_value(out, *p, len);
	return 0;
}

static int do_add(struct ev *e, const node *n, const cel_value *a, const cel_value *b, cel_value *out)
{
	int rc;

	if (a->kind == CEL_INT && b->kind == CEL_INT) {
		int64_t r;

		if (__builtin_add_overflow(a->u.i, b->u.i, &r))
			return ev_fail(e, CEL_E_EVAL, n->pos, "integer overflow");
		out->kind = CEL_INT, out->u.i = r;
		return 0;
	}
	if (a->kind == CEL_DOUBLE && b->kind == CEL_DOUBLE) {
		out->kind = CEL_DOUBLE, out->u.d = a->u.d + b->u.d;
		return 0;
	}
	if (a->kind == CEL_STRING && b->kind == CEL_STRING) {
		char *p;

		if ((rc = new_string(e, a->u.s.len + b->u.s.len, n->pos, &p, out)) != 0)
			return rc;
		if (a->u.s.len)
			memcpy(p, a->u.s.p, a->u.s.len);
		if (b->u.s.len)
			memcpy(p + a->u.s.len, b->u.s.p, b->u.s.len);
		return 0;
	}
	if (a->kind == CEL_LIST && b->kind == CEL_LIST) {
		size_t la = cel_list_len(a), lb = cel_list_len(b), k = 0;
		cel_value *items;
		cel_iter it;

		if ((rc = spend(e, la + lb, n->pos)) != 0)
			return rc;
		items = arena_alloc(e, (la + lb) * sizeof(*items), n->pos, &rc);
		if (items == NULL)
			return rc;
		cel_iter_init(&it, a);
		while (k < la && cel_iter_next(&it, &items[k]))
			k++;
		cel_iter_init(&it, b);
		while (k < la + lb && cel_iter_next(&it, &items[k]))
			k++;
		memset(out, 0, sizeof(*out));
		out->kind = CEL_LIST;
		out->rep = CEL_REP_NATIVE;
		out->u.list.items = items;
		out->u.list.n = k;
		return 0;
	}
	return no_overload(e, n->pos, "_+_", a, b);
}

static int do_arith(struct ev *e, const node *n, const cel_value *a, const cel_value *b, cel_value *out)
{
	if (a->kind == CEL_INT && b->kind == CEL_INT) {
		int64_t r = 0, x = a->u.i, y = b->u.i;
		bool ovf = false;

		switch (n->op) {
		case OP_SUB: ovf = __builtin_sub_overflow(x, y, &r); break;
		case OP_MUL: ovf = __builtin_mul_overflow(x, y, &r); break;
		case OP_DIV:
		case OP_MOD:
			if (y == 0)
				return ev_fail(e, CEL_E_EVAL, n->pos, n->op == OP_DIV ? "division by zero" : "modulus by zero");
			if (x == INT64_MIN && y == -1)
				ovf = true;
			else
				r = n->op == OP_DIV ? x / y : x % y;
			break;
		}
		if (ovf)
			return ev_fail(e, CEL_E_EVAL, n->pos, "integer overflow");
		out->kind = CEL_INT, out->u.i = r;
		return 0;
	}
	if (a->kind == CEL_DOUBLE && b->kind == CEL_DOUBLE && n->op != OP_MOD) {
		double x = a->u.d, y = b->u.d;

		out->kind = CEL_DOUBLE;
		out->u.d = n->op == OP_SUB ? x - y : n->op == OP_MUL ? x * y : x / y;
		return 0;
	}
	return no_overload(e, n->pos, op_name(n->op), a, b);
}

static int do_in(struct ev *e, const node *n, const cel_value *x, const cel_value *c, bool *res)
{
	cel_iter it;
	cel_value v;
	int rc;

	if (c->kind == CEL_MAP) {
		*res = x->kind == CEL_STRING && map_get(c, x->u.s.p, x->u.s.len, NULL);
		return spend(e, cel_list_len(c) / 8, n->pos);
	}
	if (c->kind != CEL_LIST)
		return no_overload(e, n->pos, "@in", x, c);
	cel_iter_init(&it, c);
	while (cel_iter_next(&it, &v)) {
		if ((rc = val_eq(e, x, &v, n->pos, res)) != 0 || *res)
			return rc;
	}
	*res = false;
	return 0;
}

/* Go's %g with the shortest representation that reads back exactly (what cel-go's string(double) prints). */
static void fmt_double(double d, char *buf, size_t cap)
{
	char e[40];
	int p, exp10;

	if (isnan(d)) {
		snprintf(buf, cap, "NaN");
		return;
	}
	if (isinf(d)) {
		snprintf(buf, cap, d > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (p = 1; p < 17; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, d);
		if (strtod(e, NULL) == d)
			break;
	}
	snprintf(e, sizeof(e), "%.*e", p - 1, d);
	exp10 = atoi(strchr(e, 'e') + 1);
	if (exp10 < -4 || exp10 >= 6) {
		snprintf(buf, cap, "%s", e);
		return;
	}
	snprintf(buf, cap, "%.*f", p - 1 - exp10 > 0 ? p - 1 - exp10 : 0, d);
}

/* Go's strconv.ParseInt(s, 10, 64). */
static bool parse_int(const char *p, size_t len, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	uint64_t v = 0, lim;

	if (len > 0 && (p[0] == '+' || p[0] == '-'))
		neg = p[0] == '-', i = 1;
	if (i == len)
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		if (!is_digit((uint8_t)p[i]))
			return false;
		if (v > (lim - (uint64_t)(p[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static int do_call(struct ev *e, const node *n, cel_value *out)
{
	cel_value t, a;
	int rc;

	memset(&t, 0, sizeof(t));
	memset(&a, 0, sizeof(a));
	if (n->kid[0] >= 0 && (rc = eval(e, n->kid[0], &t)) != 0)
		return rc;
	if (n->kid[1] >= 0 && (rc = eval(e, n->kid[1], &a)) != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	switch (n->fn) {
	case FN_OR_VALUE:
		*out = t.kind == K_OPT ? a : t;
		return 0;
	case FN_HAS_VALUE:
		out->kind = CEL_BOOL, out->u.b = t.kind != K_OPT;
		return 0;
	case FN_VALUE:
		if (t.kind == K_OPT)
			return ev_fail(e, CEL_E_EVAL, n->pos, "optional.none() dereference");
		*out = t;
		return 0;
	case FN_SPLIT: {
		size_t cnt = 1, k = 0, start = 0;
		cel_value *items;
		const char *sp = t.u.s.p, *sep = a.u.s.p;
		size_t tl = t.u.s.len, sl = a.u.s.len;

		if (t.kind != CEL_STRING || a.kind != CEL_STRING)
			return no_overload(e, n->pos, "split", &t, &a);
		if ((rc = spend(e, tl / 4, n->pos)) != 0)
			return rc;
		/* Go's strings.Split: an empty separator splits after each UTF-8 sequence, "" gives [""] */
		if (sl == 0) {
			cnt = 0;
			for (size_t i = 0; i < tl; i++)
				cnt += ((uint8_t)sp[i] & 0xc0) != 0x80;
		} else {
			for (size_t i = 0; tl >= sl && i <= tl - sl;)
				if (memcmp(sp + i, sep, sl) == 0)
					cnt++, i += sl;
				else
					i++;
		}
		items = arena_alloc(e, (cnt ? cnt : 1) * sizeof(*items), n->pos, &rc);
		if (items == NULL)
			return rc;
		for (size_t i = 0; k < cnt;) {
			size_t end;
			char *p;

			if (sl == 0) {
				end = i + 1;
				while (end < tl && ((uint8_t)sp[end] & 0xc0) == 0x80)
					end++;
				start = i;
				i = end;
			} else {
				end = start;
				while (end < tl && !(tl - end >= sl && memcmp(sp + end, sep, sl) == 0))
					end++;
			}
			if ((rc = new_string(e, end - start, n->pos, &p, &items[k])) != 0)
				return rc;
			if (end > start)
				memcpy(p, sp + start, end - start);
			k++;
			if (sl != 0)
				start = end + sl;
		}
		out->kind = CEL_LIST;
		out->rep = CEL_REP_NATIVE;
		out->u.list.items = items;
		out->u.list.n = cnt;
		return 0;
	}
	case FN_SIZE:
		out->kind = CEL_INT;
		if (t.kind == CEL_STRING) {
			int64_t cps = 0;

			for (size_t i = 0; i < t.u.s.len; i++)
				cps += ((uint8_t)t.u.s.p[i] & 0xc0) != 0x80;
			out->u.i = cps;
			return spend(e, t.u.s.len / 16, n->pos);
		}
		if (t.kind == CEL_LIST || t.kind == CEL_MAP) {
			out->u.i = (int64_t)cel_list_len(&t);
			return spend(e, t.rep == CEL_REP_JSON ? (uint64_t)out->u.i / 16 : 0, n->pos);
		}
		return no_overload(e, n->pos, "size", &t, NULL);
	case FN_DYN:
		*out = t;
		return 0;
	case FN_STRING: {
		char buf[40], *p;

		switch (t.kind) {
		case CEL_STRING: *out = t; return 0;
		case CEL_INT: snprintf(buf, sizeof(buf), "%lld", (long long)t.u.i); break;
		case CEL_DOUBLE: fmt_double(t.u.d, buf, sizeof(buf)); break;
		case CEL_BOOL: snprintf(buf, sizeof(buf), "%s", t.u.b ? "true" : "false"); break;
		default: return no_overload(e, n->pos, "string", &t, NULL);
		}
		if ((rc = new_string(e, strlen(buf), n->pos, &p, out)) != 0)
			return rc;
		memcpy(p, buf, strlen(buf));
		return 0;
	}
	case FN_INT:
		out->kind = CEL_INT;
		switch (t.kind) {
		case CEL_INT: out->u.i = t.u.i; return 0;
		case CEL_DOUBLE:
			if (!(t.u.d > -9223372036854775809.0 && t.u.d < 9223372036854775808.0))
				return ev_fail(e, CEL_E_EVAL, n->pos, "integer overflow converting double to int");
			out->u.i = (int64_t)t.u.d;
			return 0;
		case CEL_STRING:
			if (!parse_int(t.u.s.p, t.u.s.len, &out->u.i))
				return ev_fail(e, CEL_E_EVAL, n->pos, "cannot convert string to int");
			return 0;
		default: return no_overload(e, n->pos, "int", &t, NULL);
		}
	case FN_DOUBLE:
		out->kind = CEL_DOUBLE;
		switch (t.kind) {
		case CEL_INT: out->u.d = (double)t.u.i; return 0;
		case CEL_DOUBLE: out->u.d = t.u.d; return 0;
		case CEL_STRING: {
			char buf[64], *end;

			if (t.u.s.len == 0 || t.u.s.len >= sizeof(buf) || strchr(" \t\n\r\f\v", t.u.s.p[0]) != NULL)
				return ev_fail(e, CEL_E_EVAL, n->pos, "cannot convert string to double");
			memcpy(buf, t.u.s.p, t.u.s.len);
			buf[t.u.s.len] = 0;
			out->u.d = strtod(buf, &end);
			if (*end != 0 || strlen(buf) != t.u.s.len)
				return ev_fail(e, CEL_E_EVAL, n->pos, "cannot convert string to double");
			return 0;
		}
		default: return no_overload(e, n->pos, "double", &t, NULL);
		}
	case FN_STARTS:
	case FN_ENDS:
	case FN_CONTAINS: {
		const char *names[] = { "startsWith", "endsWith", "contains" };
		size_t tl, al;

		if (t.kind != CEL_STRING || a.kind != CEL_STRING)
			return no_overload(e, n->pos, names[n->fn - FN_STARTS], &t, &a);
		tl = t.u.s.len, al = a.u.s.len;
		out->kind = CEL_BOOL;
		if (al > tl)
			out->u.b = false;
		else if (al == 0)
			out->u.b = true;
		else if (n->fn == FN_STARTS)
			out->u.b = memcmp(t.u.s.p, a.u.s.p, al) == 0;
		else if (n->fn == FN_ENDS)
			out->u.b = memcmp(t.u.s.p + tl - al, a.u.s.p, al) == 0;
		else
			out->u.b = memmem(t.u.s.p, tl, a.u.s.p, al) != NULL;
		return spend(e, (tl + al) / 16, n->pos);
	}
	case FN_LOWER:
	case FN_UPPER: {
		char *p;

		if (t.kind != CEL_STRING)
			return no_overload(e, n->pos, n->fn == FN_LOWER ? "lowerAscii" : "upperAscii", &t, NULL);
		if ((rc = new_string(e, t.u.s.len, n->pos, &p, out)) != 0)
			return rc;
		for (size_t i = 0; i < t.u.s.len; i++) {
			char c = t.u.s.p[i];

			if (n->fn == FN_LOWER && c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			else if (n->fn == FN_UPPER && c >= 'a' && c <= 'z')
				c = (char)(c - 'a' + 'A');
			p[i] = c;
		}
		return 0;
	}
	case FN_JOIN: {
		cel_iter it;
		cel_value v;
		size_t total = 0, cnt = 0, sl = n->nargs ? a.u.s.len : 0;
		char *p, *w;

		if (t.kind != CEL_LIST || (n->nargs && a.kind != CEL_STRING))
			return no_overload(e, n->pos, "join", &t, n->nargs ? &a : NULL);
		cel_iter_init(&it, &t);
		while (cel_iter_next(&it, &v)) {
			if (v.kind != CEL_STRING)
				return ev_fail(e, CEL_E_TYPE, n->pos, "join: list element is %s, not string",
					       cel_kind_name(v.kind));
			if (cnt > 0)
				total += sl;
			total += v.u.s.len;
			cnt++;
			if ((rc = spend(e, 1, n->pos)) != 0)
				return rc;
		}
		if ((rc = new_string(e, total, n->pos, &p, out)) != 0)
			return rc;
		w = p;
		cel_iter_init(&it, &t);
		for (size_t k = 0; cel_iter_next(&it, &v); k++) {
			if (k > 0 && sl)
				memcpy(w, a.u.s.p, sl), w += sl;
			if (v.u.s.len)
				memcpy(w, v.u.s.p, v.u.s.len), w += v.u.s.len;
		}
		return 0;
	}
	}
	return ev_fail(e, CEL_E_EVAL, n->pos, "internal: unknown function");
}

static int do_compre(struct ev *e, const node *n, cel_value *out)
{
	cel_value range, x, r;
	cel_iter it;
	cel_value *items = NULL;
	size_t cap = 0, k = 0, ntrue = 0;
	int rc, saved = 0;
	cel_error first;
	bool any_false = false;

	memset(&first, 0, sizeof(first));
	if ((rc = eval(e, n->kid[0], &range)) != 0)
		return rc;
	if (range.kind != CEL_LIST && range.kind != CEL_MAP)
		return ev_fail(e, CEL_E_TYPE, n->pos, "comprehension over %s: expected a list or a map",
			       cel_kind_name(range.kind));
	if (n->fn == CK_MAP || n->fn == CK_FILTER) {
		cap = cel_list_len(&range);
		if ((rc = spend(e, cap / 16, n->pos)) != 0)
			return rc;
		items = arena_alloc(e, (cap ? cap : 1) * sizeof(*items), n->pos, &rc);
		if (items == NULL)
			return rc;
	}
	cel_iter_init(&it, &range);
	while (cel_iter_next(&it, &x)) {
		if ((rc = spend(e, 1, n->pos)) != 0)
			return rc;
		e->vars[n->slot] = x;
		if (n->kid[1] >= 0) {
			rc = eval(e, n->kid[1], &r);
			if (rc == 0 && r.kind != CEL_BOOL)
				rc = ev_fail(e, CEL_E_TYPE, e->g->nodes[n->kid[1]].pos,
					     "no such overload: predicate is %s, not bool", cel_kind_name(r.kind));
			if (rc != 0) {
				/* all() and exists() are folds over && and ||: an error is kept but a later false
				 * (all) or true (exists) still decides the result */
				if (fatal(rc) || (n->fn != CK_ALL && n->fn != CK_EXISTS))
					return rc;
				if (!saved)
					first = e->a->err, saved = rc;
				continue;
			}
			if (n->fn == CK_ALL && !r.u.b) {
				any_false = true;
				break;
			}
			if (n->fn == CK_EXISTS && r.u.b) {
				ntrue = 1;
				break;
			}
			if (n->fn == CK_EXISTS_ONE && r.u.b)
				ntrue++;
			if ((n->fn == CK_MAP || n->fn == CK_FILTER) && !r.u.b)
				continue;
		}
		if (n->fn == CK_MAP) {
			if ((rc = eval(e, n->kid[2], &r)) != 0)
				return rc;
			if (k < cap)
				items[k++] = r;
		} else if (n->fn == CK_FILTER) {
			if (k < cap)
				items[k++] = x;
		}
	}
	memset(out, 0, sizeof(*out));
	switch (n->fn) {
	case CK_ALL:
	case CK_EXISTS:
		if ((n->fn == CK_ALL && any_false) || (n->fn == CK_EXISTS && ntrue)) {
			out->kind = CEL_BOOL, out->u.b = n->fn == CK_EXISTS;
			return 0;
		}
		if (saved) {
			e->a->err = first;
			return saved;
		}
		out->kind = CEL_BOOL, out->u.b = n->fn == CK_ALL;
		return 0;
	case CK_EXISTS_ONE:
		out->kind = CEL_BOOL, out->u.b = ntrue == 1;
		return 0;
	default:
		out->kind = CEL_LIST;
		out->rep = CEL_REP_NATIVE;
		out->u.list.items = items;
		out->u.list.n = k;
		return 0;
	}
}

/* && and ||: CEL is commutative here; an error on one side is absorbed when the other side decides. */
static int do_logic(struct ev *e, const node *n, cel_value *out)
{
	bool is_and = n->op == OP_AND;
	cel_value l, r;
	cel_error saved;
	int lrc, rrc;

	memset(&saved, 0, sizeof(saved));
	lrc = eval(e, n->kid[0], &l);
	if (lrc == 0 && l.kind != CEL_BOOL)
		lrc = no_overload(e, n->pos, op_name(n->op), &l, NULL);
	if (fatal(lrc))
		return lrc;
	if (lrc == 0 && l.u.b != is_and)
		goto decided;
	if (lrc != 0)
		saved = e->a->err;
	rrc = eval(e, n->kid[1], &r);
	if (rrc == 0 && r.kind != CEL_BOOL)
		rrc = no_overload(e, n->pos, op_name(n->op), &r, NULL);
	if (fatal(rrc))
		return rrc;
	if (rrc == 0 && r.u.b != is_and)
		goto decided;
	if (lrc != 0) {
		e->a->err = saved;
		return lrc;
	}
	if (rrc != 0)
		return rrc;
	memset(out, 0, sizeof(*out));
	out->kind = CEL_BOOL, out->u.b = is_and;
	return 0;
decided:
	memset(out, 0, sizeof(*out));
	out->kind = CEL_BOOL, out->u.b = !is_and;
	return 0;
}

static int eval(struct ev *e, int32_t ni, cel_value *out)
{
	const node *n = &e->g->nodes[ni];
	cel_value a, b;
	int rc;

	if ((rc = spend(e, 1, n->pos)) != 0)
		return rc;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	switch (n->op) {
	case OP_NULL:
		memset(out, 0, sizeof(*out));
		out->kind = CEL_NULL;
		return 0;
	case OP_BOOL:
		memset(out, 0, sizeof(*out));
		out->kind = CEL_BOOL, out->u.b = n->v.b;
		return 0;
	case OP_INT:
		memset(out, 0, sizeof(*out));
		out->kind = CEL_INT, out->u.i = n->v.i;
		return 0;
	case OP_DOUBLE:
		memset(out, 0, sizeof(*out));
		out->kind = CEL_DOUBLE, out->u.d = n->v.d;
		return 0;
	case OP_STRING:
		str_value(out, e->g->pool + n->v.s.off, n->v.s.len);
		return 0;
	case OP_LIST: {
		size_t cnt = (size_t)n->v.i, k = 0;
		cel_value *items = arena_alloc(e, (cnt ? cnt : 1) * sizeof(*items), n->pos, &rc);

		if (items == NULL)
			return rc;
		for (int32_t c = n->kid[0]; c >= 0 && k < cnt; c = e->g->nodes[c].next)
			if ((rc = eval(e, c, &items[k++])) != 0)
				return rc;
		memset(out, 0, sizeof(*out));
		out->kind = CEL_LIST;
		out->rep = CEL_REP_NATIVE;
		out->u.list.items = items;
		out->u.list.n = k;
		return 0;
	}
	case OP_CLAIMS:
		if (e->env->claims == NULL || !cJSON_IsObject(e->env->claims))
			return ev_fail(e, CEL_E_EVAL, n->pos, "no claims to evaluate against");
		from_json(e->env->claims, out);
		return 0;
	case OP_USERF:
	case OP_HASUSER: {
		const cel_user *u = e->env->user;

		if (u == NULL)
			return ev_fail(e, CEL_E_EVAL, n->pos, "no user to evaluate against");
		memset(out, 0, sizeof(*out));
		if (n->op == OP_HASUSER) {
			out->kind = CEL_BOOL;
			switch (n->fn) {
			case UF_USERNAME: out->u.b = u->username.p != NULL && u->username.len > 0; break;
			case UF_UID: out->u.b = u->uid.p != NULL && u->uid.len > 0; break;
			case UF_GROUPS: out->u.b = u->groups != NULL && u->ngroups > 0; break;
			default: out->u.b = u->extra != NULL && u->nextra > 0; break;
			}
			return 0;
		}
		switch (n->fn) {
		case UF_USERNAME: str_value(out, u->username.p, u->username.len); break;
		case UF_UID: str_value(out, u->uid.p, u->uid.len); break;
		case UF_GROUPS:
			out->kind = CEL_LIST, out->rep = CEL_REP_STRS;
			out->u.strs.items = u->groups, out->u.strs.n = u->groups != NULL ? u->ngroups : 0;
			break;
		default:
			out->kind = CEL_MAP, out->rep = CEL_REP_EXTRA;
			out->u.extra.items = u->extra, out->u.extra.n = u->extra != NULL ? u->nextra : 0;
			break;
		}
		return 0;
	}
	case OP_VAR:
		*out = e->vars[n->slot];
		return 0;
	case OP_SELECT:
	case OP_HAS:
		if ((rc = eval(e, n->kid[0], &a)) != 0)
			return rc;
		if (a.kind != CEL_MAP)
			return ev_fail(e, CEL_E_TYPE, n->pos, "type '%s' does not support field selection",
				       cel_kind_name(a.kind));
		if ((rc = spend(e, cel_list_len(&a) / 16, n->pos)) != 0)
			return rc;
		if (n->op == OP_HAS) {
			memset(out, 0, sizeof(*out));
			out->kind = CEL_BOOL;
			out->u.b = map_get(&a, e->g->pool + n->v.s.off, n->v.s.len, NULL);
			return 0;
		}
		if (!map_get(&a, e->g->pool + n->v.s.off, n->v.s.len, out))
			return ev_fail(e, CEL_E_EVAL, n->pos, "no such key: %.*s", (int)(n->v.s.len > 64 ? 64 : n->v.s.len),
				       e->g->pool + n->v.s.off);
		return 0;
	case OP_INDEX:
		if ((rc = eval(e, n->kid[0], &a)) != 0 || (rc = eval(e, n->kid[1], &b)) != 0)
			return rc;
		if (a.kind == CEL_LIST) {
			size_t len = cel_list_len(&a);
			cel_iter it;

			if (b.kind != CEL_INT)
				return no_overload(e, n->pos, "_[_]", &a, &b);
			if (b.u.i < 0 || (uint64_t)b.u.i >= len)
				return ev_fail(e, CEL_E_EVAL, n->pos, "index out of bounds: %lld", (long long)b.u.i);
			if ((rc = spend(e, a.rep == CEL_REP_JSON ? len / 16 : 0, n->pos)) != 0)
				return rc;
			if (a.rep == CEL_REP_NATIVE) {
				*out = a.u.list.items[b.u.i];
				return 0;
			}
			cel_iter_init(&it, &a);
			for (int64_t k = 0; k <= b.u.i; k++)
				cel_iter_next(&it, out);
			return 0;
		}
		if (a.kind == CEL_MAP) {
			if ((rc = spend(e, cel_list_len(&a) / 16, n->pos)) != 0)
				return rc;
			if (b.kind != CEL_STRING)
				return ev_fail(e, CEL_E_EVAL, n->pos, "no such key: (%s)", cel_kind_name(b.kind));
			if (!map_get(&a, b.u.s.p, b.u.s.len, out))
				return ev_fail(e, CEL_E_EVAL, n->pos, "no such key: %.*s",
					       (int)(b.u.s.len > 64 ? 64 : b.u.s.len), b.u.s.p);
			return 0;
		}
		return no_overload(e, n->pos, "_[_]", &a, &b);
	case OP_NOT:
		if ((rc = eval(e, n->kid[0], &a)) != 0)
			return rc;
		if (a.kind != CEL_BOOL)
			return no_overload(e, n->pos, "!_", &a, NULL);
		memset(out, 0, sizeof(*out));
		out->kind = CEL_BOOL, out->u.b = !a.u.b;
		return 0;
	case OP_NEG:
		if ((rc = eval(e, n->kid[0], &a)) != 0)
			return rc;
		memset(out, 0, sizeof(*out));
		if (a.kind == CEL_INT) {
			if (a.u.i == INT64_MIN)
				return ev_fail(e, CEL_E_EVAL, n->pos, "integer overflow");
			out->kind = CEL_INT, out->u.i = -a.u.i;
			return 0;
		}
		if (a.kind == CEL_DOUBLE) {
			out->kind = CEL_DOUBLE, out->u.d = -a.u.d;
			return 0;
		}
		return no_overload(e, n->pos, "-_", &a, NULL);
	case OP_AND:
	case OP_OR:
		return do_logic(e, n, out);
	case OP_COND:
		if ((rc = eval(e, n->kid[0], &a)) != 0)
			return rc;
		if (a.kind != CEL_BOOL)
			return no_overload(e, n->pos, "_?_:_", &a, NULL);
		return eval(e, n->kid[a.u.b ? 1 : 2], out);
	case OP_OPTSEL:
		if ((rc = eval(e, n->kid[0], &a)) != 0)
			return rc;
		if (a.kind == K_OPT) {
			*out = a;
			return 0;
		}
		if (a.kind != CEL_MAP)
			return ev_fail(e, CEL_E_TYPE, n->pos, "type '%s' does not support field selection",
				       cel_kind_name(a.kind));
		if ((rc = spend(e, cel_list_len(&a) / 16, n->pos)) != 0)
			return rc;
		if (!map_get(&a, e->g->pool + n->v.s.off, n->v.s.len, out)) {
			memset(out, 0, sizeof(*out));
			out->kind = K_OPT;
		}
		return 0;
	case OP_CALL:
		return do_call(e, n, out);
	case OP_COMPRE:
		return do_compre(e, n, out);
	default:
		break;
	}
	/* the binary operators */
	if ((rc = eval(e, n->kid[0], &a)) != 0 || (rc = eval(e, n->kid[1], &b)) != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	switch (n->op) {
	case OP_ADD:
		return do_add(e, n, &a, &b, out);
	case OP_SUB:
	case OP_MUL:
	case OP_DIV:
	case OP_MOD:
		return do_arith(e, n, &a, &b, out);
	case OP_EQ:
	case OP_NE: {
		bool eq = false;

		if ((rc = val_eq(e, &a, &b, n->pos, &eq)) != 0)
			return rc;
		out->kind = CEL_BOOL, out->u.b = n->op == OP_EQ ? eq : !eq;
		return 0;
	}
	case OP_LT:
	case OP_LE:
	case OP_GT:
	case OP_GE: {
		int c = 0;

		if ((rc = val_cmp(e, &a, &b, n->pos, op_name(n->op), &c)) != 0)
			return rc;
		out->kind = CEL_BOOL;
		out->u.b = c != 2 && (n->op == OP_LT ? c < 0 : n->op == OP_LE ? c <= 0 : n->op == OP_GT ? c > 0 : c >= 0);
		return 0;
	}
	case OP_IN: {
		bool in = false;

		if ((rc = do_in(e, n, &a, &b, &in)) != 0)
			return rc;
		out->kind = CEL_BOOL, out->u.b = in;
		return 0;
	}
	}
	return ev_fail(e, CEL_E_EVAL, n->pos, "internal: unknown operator");
}

int cel_eval(const cel_program *prog, const cel_env *env, cel_value *out, cel_arena *arena)
{
	struct ev e;
	cel_value v;
	int rc;

	if (prog == NULL || env == NULL || out == NULL || arena == NULL)
		return CEL_E_ARG;
	memset(&e, 0, sizeof(e));
	e.g = prog;
	e.env = env;
	e.a = arena;
	e.max_steps = env->max_steps ? env->max_steps : CEL_DEFAULT_STEPS;
	memset(&arena->err, 0, sizeof(arena->err));
	rc = eval(&e, prog->root, &v);
	if (rc != 0)
		return rc;
	*out = v;
	return 0;
}
