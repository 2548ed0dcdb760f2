/*
 * cel_parse.c — recursive-descent parser and light type checker for the CEL subset (see cel_parse.h).
 *
 * Precedence, lowest first: ?: , ||, &&, relations (== != < <= > >= in), + -, * / %, unary ! -, member (.f .?f
 * [i] calls), primary. Each parse_* returns a node index or -1 with the failure recorded in the lexer.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cel_lex.h"
#include "cel_parse.h"
#include "kx.h"
#include "cel_program.h"

struct scope {
	const uint8_t *name;
	size_t len;
	stype type;
};

/* The parser's state: the lexer (current token, sticky error, program being built) and the names in scope. */
struct ps {
	struct cel_lex lx;
	unsigned allowed; /* CEL_VAR_* the expression may reference */
	int rdepth;
	struct scope scope[CEL_MAX_SCOPES];
	int nscope;
};

static int32_t new_node(struct ps *s, uint8_t op, size_t pos, stype type, int32_t a, int32_t b, int32_t c)
{
	cel_program *g = s->lx.prog;
	cel_node *n;
	uint16_t h = 0;
	int32_t kids[3] = { a, b, c };

	if (s->lx.rc != 0)
		return -1;
	if (g->nnodes >= CEL_MAX_NODES) {
		cel_lex_fail(&s->lx, CEL_E_LIMIT, pos, "expression too complex");
		return -1;
	}
	if (g->nnodes == g->cap) {
		uint32_t nc = g->cap ? g->cap * 2 : 32;
		cel_node *nn = realloc(g->nodes, (size_t)nc * sizeof(*nn));

		if (nn == NULL) {
			cel_lex_fail(&s->lx, CEL_E_NOMEM, pos, "out of memory");
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
			cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, g->nodes[kids[k]].pos,
				"an optional value can only be used with .?field, orValue(), hasValue() or value()");
			return -1;
		}
	}
	if (h + 1 > CEL_MAX_DEPTH) {
		cel_lex_fail(&s->lx, CEL_E_LIMIT, pos, "expression nested deeper than %d", CEL_MAX_DEPTH);
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

#define N(s, i) (&(s)->lx.prog->nodes[(i)])

static bool expect(struct ps *s, int tok, const char *what)
{
	if (s->lx.rc != 0)
		return false;
	if (s->lx.tok != tok) {
		if (s->lx.tok == T_EOF)
			cel_lex_fail(&s->lx, CEL_E_SYNTAX, s->lx.tpos, "unexpected end of expression, expected %s", what);
		else
			cel_lex_fail(&s->lx, CEL_E_SYNTAX, s->lx.tpos, "expected %s", what);
		return false;
	}
	cel_lex_next(&s->lx);
	return s->lx.rc == 0;
}

static int32_t parse_expr(struct ps *s);

static int32_t overload_fail(struct ps *s, size_t pos, int op, stype a, stype b)
{
	if (b == 0xffff)
		cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "found no matching overload for '%s' applied to '(%s)'", cel_op_name(op),
			cel_kind_name(TK(a)));
	else
		cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "found no matching overload for '%s' applied to '(%s, %s)'", cel_op_name(op),
			cel_kind_name(TK(a)), cel_kind_name(TK(b)));
	return -1;
}

/* Types a binary operator the way cel-go's overloads would: a mismatch between two statically known types is
 * refused at load time; anything involving dyn is left to run time. */
static int32_t binary(struct ps *s, int op, size_t pos, int32_t a, int32_t b)
{
	stype ta, tb, t = CEL_DYN;
	cel_kind ka, kb;

	if (a < 0 || b < 0 || s->lx.rc != 0)
		return -1;
	ta = N(s, a)->type, tb = N(s, b)->type;
	ka = TK(ta), kb = TK(tb);
	if (ka == K_OPT || kb == K_OPT) {
		cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, N(s, ka == K_OPT ? a : b)->pos,
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
		bool ok = (ka == CEL_DYN || kb == CEL_DYN) ? (ka == CEL_DYN || cel_kind_is_num(ka) || ka == CEL_STRING ||
							     ka == CEL_BOOL) &&
								    (kb == CEL_DYN || cel_kind_is_num(kb) || kb == CEL_STRING ||
								     kb == CEL_BOOL)
							  : (cel_kind_is_num(ka) && cel_kind_is_num(kb)) ||
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
	if (cel_lex_word_is(w, n, "claims") && (s->allowed & CEL_VAR_CLAIMS)) {
		s->lx.prog->vars |= CEL_VAR_CLAIMS;
		return new_node(s, OP_CLAIMS, pos, T_MAP_OF(CEL_DYN), -1, -1, -1);
	}
	if (cel_lex_word_is(w, n, "user") && (s->allowed & CEL_VAR_USER)) {
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

		s->lx.prog->vars |= CEL_VAR_USER;
		if (s->lx.tok != T_DOT) {
			cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, pos,
				"'user' must be used with a field (user.username, user.uid, user.groups, user.extra)");
			return -1;
		}
		cel_lex_next(&s->lx);
		if (s->lx.tok != T_IDENT) {
			cel_lex_fail(&s->lx, CEL_E_SYNTAX, s->lx.tpos, "expected a field name after 'user.'");
			return -1;
		}
		f = s->lx.p + s->lx.tpos, fl = s->lx.tend - s->lx.tpos, fpos = s->lx.tpos;
		for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
			if (cel_lex_word_is(f, fl, fields[k].name)) {
				int32_t r = new_node(s, OP_USERF, fpos, fields[k].type, -1, -1, -1);

				if (r >= 0)
					N(s, r)->fn = (uint8_t)k;
				cel_lex_next(&s->lx);
				return r;
			}
		cel_lex_fail(&s->lx, CEL_E_TYPE, fpos, "undefined field '%.*s'", (int)(fl > 64 ? 64 : fl), (const char *)f);
		return -1;
	}
	cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "undeclared reference to '%.*s'", (int)(n > 64 ? 64 : n), (const char *)w);
	return -1;
}

/* Copies an identifier into the pool (field names of selections). */
static bool pool_ident(struct ps *s, const uint8_t *w, size_t n, uint32_t *off)
{
	*off = (uint32_t)s->lx.prog->pool_len;
	for (size_t i = 0; i < n; i++)
		if (cel_lex_pool_put(&s->lx, w[i]) != 0)
			return false;
	return cel_lex_pool_put(&s->lx, 0) == 0;
}

/* Parses "(a, b, ...)" after the opening parenthesis was consumed; at most max arguments. */
static int parse_args(struct ps *s, int32_t *args, int max, size_t pos, const char *fname)
{
	int n = 0;

	if (s->lx.tok == T_RPAREN) {
		cel_lex_next(&s->lx);
		return 0;
	}
	for (;;) {
		int32_t a = parse_expr(s);

		if (a < 0)
			return -1;
		if (n == max) {
			cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "too many arguments to '%s'", fname);
			return -1;
		}
		args[n++] = a;
		if (s->lx.tok == T_COMMA) {
			cel_lex_next(&s->lx);
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
		cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "found no matching overload for '%s' applied to '%s.(%s)'", fname,
			cel_kind_name(TK(N(s, target)->type)), sig);
	else
		cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "found no matching overload for '%s' applied to '(%s)'", fname, sig);
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
	cel_lex_next(&s->lx); /* '(' */
	cel_lex_next(&s->lx);
	if (s->lx.rc != 0)
		return -1;

	if (target < 0 && cel_lex_word_is(w, n, "has")) {
		int32_t a;

		nargs = parse_args(s, args, 1, pos, "has");
		if (nargs != 1) {
			if (nargs >= 0)
				cel_lex_fail(&s->lx, CEL_E_SYNTAX, pos, "has() takes exactly one argument");
			return -1;
		}
		a = args[0];
		if (N(s, a)->op == OP_SELECT)
			N(s, a)->op = OP_HAS;
		else if (N(s, a)->op == OP_USERF)
			N(s, a)->op = OP_HASUSER;
		else {
			cel_lex_fail(&s->lx, CEL_E_SYNTAX, N(s, a)->pos, "invalid argument to has() macro: it must be a field selection");
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

			if (!cel_lex_word_is(w, n, macros[k].name))
				continue;
			if (!kind_ok(tt, CEL_LIST, CEL_MAP, CEL_MAP)) {
				cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "%s() applies to a list or a map, not %s", fname,
					cel_kind_name(TK(tt)));
				return -1;
			}
			vt = TK(tt) == CEL_LIST ? TELEM(tt) : TK(tt) == CEL_MAP ? CEL_STRING : CEL_DYN;
			if (s->lx.tok != T_IDENT) {
				cel_lex_fail(&s->lx, CEL_E_SYNTAX, s->lx.tpos, "%s() argument must be a simple name", fname);
				return -1;
			}
			vn = s->lx.p + s->lx.tpos, vl = s->lx.tend - s->lx.tpos, vpos = s->lx.tpos;
			if (cel_lex_word_is(vn, vl, "claims") || cel_lex_word_is(vn, vl, "user")) {
				cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, vpos, "iteration variable '%s' would shadow a variable",
					cel_lex_word_is(vn, vl, "user") ? "user" : "claims");
				return -1;
			}
			if (s->nscope >= CEL_MAX_SCOPES) {
				cel_lex_fail(&s->lx, CEL_E_LIMIT, pos, "comprehensions nested deeper than %d", CEL_MAX_SCOPES);
				return -1;
			}
			cel_lex_next(&s->lx);
			if (!expect(s, T_COMMA, "',' after the iteration variable"))
				return -1;
			s->scope[s->nscope].name = vn;
			s->scope[s->nscope].len = vl;
			s->scope[s->nscope].type = vt;
			s->nscope++;
			e1 = parse_expr(s);
			if (e1 >= 0 && s->lx.tok == T_COMMA && macros[k].kind == CK_MAP) {
				cel_lex_next(&s->lx);
				e2 = parse_expr(s);
			}
			s->nscope--;
			if (e1 < 0 || (s->lx.tok == T_COMMA ? (cel_lex_fail(&s->lx, CEL_E_SYNTAX, s->lx.tpos, "too many arguments to %s()",
								fname), true) : false) ||
			    !expect(s, T_RPAREN, "')'"))
				return -1;
			if (macros[k].kind != CK_MAP || e2 >= 0) {
				/* e1 is a predicate */
				if (!kind_ok(N(s, e1)->type, CEL_BOOL, CEL_BOOL, CEL_BOOL)) {
					cel_lex_fail(&s->lx, CEL_E_TYPE, N(s, e1)->pos, "%s() predicate must be bool, not %s", fname,
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
		if (cel_lex_word_is(w, n, fns[k].name) && (target >= 0 ? fns[k].method : fns[k].global)) {
			idx = (int)k;
			break;
		}
	if (idx < 0) {
		cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, pos, "function '%s' is outside the supported CEL subset%s", fname,
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
			cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, pos, "%s() applies to an optional value (x.?field)", fname);
		else
			cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, pos,
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
	size_t pos = s->lx.tpos;
	int32_t r = -1;

	switch (s->lx.tok) {
	case T_INT:
		if (s->lx.uval > (uint64_t)INT64_MAX) {
			cel_lex_fail(&s->lx, CEL_E_SYNTAX, pos, "integer literal out of range");
			return -1;
		}
		r = new_node(s, OP_INT, pos, CEL_INT, -1, -1, -1);
		if (r >= 0)
			N(s, r)->v.i = (int64_t)s->lx.uval;
		cel_lex_next(&s->lx);
		return r;
	case T_DOUBLE:
		r = new_node(s, OP_DOUBLE, pos, CEL_DOUBLE, -1, -1, -1);
		if (r >= 0)
			N(s, r)->v.d = s->lx.dval;
		cel_lex_next(&s->lx);
		return r;
	case T_STRING:
		r = new_node(s, OP_STRING, pos, CEL_STRING, -1, -1, -1);
		if (r >= 0)
			N(s, r)->v.s.off = s->lx.soff, N(s, r)->v.s.len = s->lx.slen;
		cel_lex_next(&s->lx);
		return r;
	case T_TRUE:
	case T_FALSE:
		r = new_node(s, OP_BOOL, pos, CEL_BOOL, -1, -1, -1);
		if (r >= 0)
			N(s, r)->v.b = s->lx.tok == T_TRUE;
		cel_lex_next(&s->lx);
		return r;
	case T_NULL:
		r = new_node(s, OP_NULL, pos, CEL_NULL, -1, -1, -1);
		cel_lex_next(&s->lx);
		return r;
	case T_LPAREN:
		cel_lex_next(&s->lx);
		r = parse_expr(s);
		if (r < 0 || !expect(s, T_RPAREN, "')'"))
			return -1;
		return r;
	case T_LBRACK: {
		int32_t first = -1, last = -1;
		uint32_t count = 0;
		stype et = 0xffff;
		uint16_t h = 0;

		cel_lex_next(&s->lx);
		while (s->lx.rc == 0 && s->lx.tok != T_RBRACK) {
			int32_t e = parse_expr(s);

			if (e < 0)
				return -1;
			if (TK(N(s, e)->type) == K_OPT) {
				cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, N(s, e)->pos,
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
			if (s->lx.tok == T_COMMA)
				cel_lex_next(&s->lx);
			else if (s->lx.tok != T_RBRACK) {
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
				cel_lex_fail(&s->lx, CEL_E_LIMIT, pos, "expression nested deeper than %d", CEL_MAX_DEPTH);
				return -1;
			}
			N(s, r)->height = (uint16_t)(h + 1);
		}
		return r;
	}
	case T_LBRACE:
		cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, pos, "map literals are outside the supported CEL subset");
		return -1;
	case T_DOT:
		cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, pos, "qualified names ('.name') are outside the supported CEL subset");
		return -1;
	case T_IDENT: {
		const uint8_t *w = s->lx.p + s->lx.tpos;
		size_t n = s->lx.tend - s->lx.tpos;

		if (s->lx.len - s->lx.off >= 1) {
			/* peek: '(' right after optional spaces means a global call */
			size_t k = s->lx.off;

			while (k < s->lx.len && (s->lx.p[k] == ' ' || s->lx.p[k] == '\t' || s->lx.p[k] == '\n' || s->lx.p[k] == '\r'))
				k++;
			if (k < s->lx.len && s->lx.p[k] == '(') {
				s->lx.off = k; /* parse_call consumes '(' via lex_next */
				s->lx.tok = T_IDENT;
				return parse_call(s, -1, w, n, pos);
			}
		}
		cel_lex_next(&s->lx);
		if (s->lx.rc != 0)
			return -1;
		return parse_ident(s, w, n, pos);
	}
	case T_EOF:
		cel_lex_fail(&s->lx, CEL_E_SYNTAX, pos, "unexpected end of expression");
		return -1;
	case T_ERR:
		return -1;
	default:
		cel_lex_fail(&s->lx, CEL_E_SYNTAX, pos, "unexpected token");
		return -1;
	}
}

static int32_t parse_member(struct ps *s)
{
	int32_t r = parse_primary(s);

	while (r >= 0 && s->lx.rc == 0) {
		size_t pos = s->lx.tpos;

		if (s->lx.tok == T_DOT) {
			const uint8_t *w;
			size_t n, k;

			bool opt = false;

			cel_lex_next(&s->lx);
			if (s->lx.tok == T_QUESTION) {
				opt = true;
				cel_lex_next(&s->lx);
			}
			if (s->lx.tok != T_IDENT) {
				cel_lex_fail(&s->lx, CEL_E_SYNTAX, s->lx.tpos, "expected a field or method name after '.'");
				return -1;
			}
			w = s->lx.p + s->lx.tpos, n = s->lx.tend - s->lx.tpos, pos = s->lx.tpos;
			k = s->lx.off;
			while (k < s->lx.len && (s->lx.p[k] == ' ' || s->lx.p[k] == '\t' || s->lx.p[k] == '\n' || s->lx.p[k] == '\r'))
				k++;
			if (k < s->lx.len && s->lx.p[k] == '(' && !opt) {
				s->lx.off = k;
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
					cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "type '%s' does not support field selection",
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
				cel_lex_next(&s->lx);
				continue;
			}
			{
				stype tt = N(s, r)->type;
				uint32_t off;
				int32_t sel;

				if (!kind_ok(tt, CEL_MAP, CEL_MAP, CEL_MAP)) {
					cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "type '%s' does not support field selection",
						cel_kind_name(TK(tt)));
					return -1;
				}
				if (!pool_ident(s, w, n, &off))
					return -1;
				sel = new_node(s, OP_SELECT, pos, TK(tt) == CEL_MAP ? TELEM(tt) : (stype)CEL_DYN, r, -1, -1);
				if (sel >= 0)
					N(s, sel)->v.s.off = off, N(s, sel)->v.s.len = (uint32_t)n;
				r = sel;
				cel_lex_next(&s->lx);
			}
		} else if (s->lx.tok == T_LBRACK) {
			int32_t ix;
			stype tt = N(s, r)->type, ti, t;

			cel_lex_next(&s->lx);
			if (s->lx.tok == T_QUESTION) {
				cel_lex_fail(&s->lx, CEL_E_UNSUPPORTED, s->lx.tpos, "optional index is outside the supported CEL subset");
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
				cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "found no matching overload for '_[_]' applied to '(%s, %s)'",
					cel_kind_name(TK(tt)), cel_kind_name(TK(ti)));
				return -1;
			}
			r = new_node(s, OP_INDEX, pos, t, r, ix, -1);
		} else {
			break;
		}
	}
	return s->lx.rc == 0 ? r : -1;
}

static int32_t parse_unary(struct ps *s)
{
	size_t pos = s->lx.tpos;
	int32_t r;
	stype t;

	if (s->lx.tok == T_NOT) {
		cel_lex_next(&s->lx);
		r = parse_unary(s);
		if (r < 0)
			return -1;
		t = N(s, r)->type;
		if (!kind_ok(t, CEL_BOOL, CEL_BOOL, CEL_BOOL))
			return overload_fail(s, pos, OP_NOT, t, 0xffff);
		return new_node(s, OP_NOT, pos, CEL_BOOL, r, -1, -1);
	}
	if (s->lx.tok == T_MINUS) {
		cel_lex_next(&s->lx);
		if (s->lx.tok == T_INT && s->lx.uval == (uint64_t)INT64_MAX + 1) {
			/* the one literal only writable negated */
			r = new_node(s, OP_INT, pos, CEL_INT, -1, -1, -1);
			if (r >= 0)
				N(s, r)->v.i = INT64_MIN;
			cel_lex_next(&s->lx);
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
		cel_lex_fail(&s->lx, CEL_E_LIMIT, pos, "expression nested deeper than %d", CEL_MAX_DEPTH);
		return -1;
	}
	r = parse_member(s);
	s->rdepth--;
	return r;
}

/* The binary operators by precedence level, loosest first; all are left-associative. */
enum { LV_OR, LV_AND, LV_REL, LV_ADD, LV_MUL, LV_COUNT };

static int level_op(int level, int tok)
{
	static const struct {
		uint8_t level, tok, op;
	} ops[] = {
		{ LV_OR, T_OR, OP_OR },     { LV_AND, T_AND, OP_AND },  { LV_REL, T_EQ, OP_EQ },
		{ LV_REL, T_NE, OP_NE },    { LV_REL, T_LT, OP_LT },    { LV_REL, T_LE, OP_LE },
		{ LV_REL, T_GT, OP_GT },    { LV_REL, T_GE, OP_GE },    { LV_REL, T_IN, OP_IN },
		{ LV_ADD, T_PLUS, OP_ADD }, { LV_ADD, T_MINUS, OP_SUB }, { LV_MUL, T_STAR, OP_MUL },
		{ LV_MUL, T_SLASH, OP_DIV }, { LV_MUL, T_PERCENT, OP_MOD },
	};

	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
		if (ops[k].level == level && ops[k].tok == tok)
			return ops[k].op;
	return -1;
}

/* One precedence level: operands of the next tighter level joined by this level's operators. */
static int32_t parse_binary(struct ps *s, int level)
{
	int32_t r = level + 1 < LV_COUNT ? parse_binary(s, level + 1) : parse_unary(s);

	for (;;) {
		int op = level_op(level, s->lx.tok);
		size_t pos = s->lx.tpos;

		if (op < 0 || r < 0)
			return r;
		cel_lex_next(&s->lx);
		r = binary(s, op, pos, r, level + 1 < LV_COUNT ? parse_binary(s, level + 1) : parse_unary(s));
	}
}

static int32_t parse_or(struct ps *s)
{
	return parse_binary(s, LV_OR);
}

static int32_t parse_expr(struct ps *s)
{
	int32_t c, a, b;
	size_t pos;
	stype t;

	if (++s->rdepth > CEL_MAX_DEPTH) {
		cel_lex_fail(&s->lx, CEL_E_LIMIT, s->lx.tpos, "expression nested deeper than %d", CEL_MAX_DEPTH);
		return -1;
	}
	c = parse_or(s);
	if (c < 0 || s->lx.tok != T_QUESTION) {
		s->rdepth--;
		return c;
	}
	pos = s->lx.tpos;
	cel_lex_next(&s->lx);
	a = parse_or(s);
	if (a < 0 || !expect(s, T_COLON, "':'"))
		return -1;
	b = parse_expr(s);
	if (b < 0)
		return -1;
	s->rdepth--;
	if (!kind_ok(N(s, c)->type, CEL_BOOL, CEL_BOOL, CEL_BOOL)) {
		cel_lex_fail(&s->lx, CEL_E_TYPE, pos, "found no matching overload for '_?_:_' applied to '(%s, %s, %s)'",
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
	s.lx.err = err;
	if (out == NULL || (p == NULL && len > 0))
		return cel_lex_fail(&s.lx, CEL_E_ARG, 0, "bad argument");
	if (len > CEL_MAX_EXPR_LEN)
		return cel_lex_fail(&s.lx, CEL_E_LIMIT, CEL_MAX_EXPR_LEN, "expression longer than %d bytes", CEL_MAX_EXPR_LEN);
	for (size_t i = 0; i < len;) {
		size_t n = kx_utf8_seq(p + i, len - i);

		if (n == 0)
			return cel_lex_fail(&s.lx, CEL_E_SYNTAX, i, "invalid UTF-8");
		if (p[i] == 0)
			return cel_lex_fail(&s.lx, CEL_E_SYNTAX, i, "NUL byte in expression");
		i += n;
	}
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return cel_lex_fail(&s.lx, CEL_E_NOMEM, 0, "out of memory");
	g->pool_cap = len + 16;
	g->pool = malloc(g->pool_cap);
	if (g->pool == NULL) {
		rc = cel_lex_fail(&s.lx, CEL_E_NOMEM, 0, "out of memory");
		goto out;
	}
	s.lx.p = p;
	s.lx.len = len;
	s.lx.prog = g;
	s.allowed = vars;
	cel_lex_next(&s.lx);
	root = parse_expr(&s);
	if (root >= 0 && s.lx.rc == 0 && s.lx.tok != T_EOF)
		cel_lex_fail(&s.lx, CEL_E_SYNTAX, s.lx.tpos, "unexpected input after the expression");
	if (root >= 0 && s.lx.rc == 0 && TK(g->nodes[root].type) == K_OPT)
		cel_lex_fail(&s.lx, CEL_E_UNSUPPORTED, g->nodes[root].pos,
			"an optional value can only be used with .?field, orValue(), hasValue() or value()");
	rc = s.lx.rc;
	if (rc == 0 && root < 0)
		rc = cel_lex_fail(&s.lx, CEL_E_SYNTAX, 0, "empty expression");
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
