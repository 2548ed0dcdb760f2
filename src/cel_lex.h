/*
 * cel_lex.h — the CEL lexer: turns the expression's bytes into tokens for the parser (cel_parse.c), one token of
 * look-ahead at a time. Internal to the cel_* modules; callers use cel.h.
 *
 * String literals (quoted, triple-quoted, raw; escapes \x \u \U octal...) are decoded as they are lexed into the
 * program's literal pool (prog->pool), so the parser only keeps an offset and a length. Numbers are lexed
 * unsigned; the parser applies the sign. Bytes literals are refused as outside the subset.
 *
 * Errors are sticky: the first cel_lex_fail() records code, byte offset and message in *err (if not NULL) and
 * rc, later failures are ignored and every later token is T_ERR, so the recursive-descent parser can return at
 * its own pace without overwriting the first (most useful) message.
 *
 * Owns: nothing. p[0..len) is the caller's source (never NUL-terminated here); prog and err are the parser's.
 */
#ifndef KOS_CEL_LEX_H
#define KOS_CEL_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cel_program.h"

enum cel_tok {
	T_EOF, T_ERR, T_INT, T_DOUBLE, T_STRING, T_IDENT, T_TRUE, T_FALSE, T_NULL, T_IN,
	T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE, T_DOT, T_COMMA, T_COLON, T_QUESTION,
	T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT, T_NOT, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_AND, T_OR,
};

struct cel_lex {
	const uint8_t *p;
	size_t len, off;
	int tok;             /* enum cel_tok of the current token */
	size_t tpos, tend;   /* the current token's first byte; T_IDENT: one past its last */
	uint64_t uval;       /* T_INT, before sign */
	double dval;         /* T_DOUBLE */
	uint32_t soff, slen; /* T_STRING: decoded into prog->pool */
	cel_program *prog;
	cel_error *err;      /* may be NULL */
	int rc;              /* 0, or the first failure's enum cel_err */
};

/* Reads the next token into s (s->tok, s->tpos...); T_EOF at the end, T_ERR after any failure. */
void cel_lex_next(struct cel_lex *s);
/* Records the first failure (see above) and returns the code that stands, so callers can `return cel_lex_fail()`. */
int cel_lex_fail(struct cel_lex *s, int code, size_t pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Appends one byte to prog->pool; CEL_E_LIMIT (and a failure) if the pool is full. */
int cel_lex_pool_put(struct cel_lex *s, uint8_t c);
/* Whether p[0..n) is exactly the word w. */
bool cel_lex_word_is(const uint8_t *p, size_t n, const char *w);

#endif
