/*
 * cel_eval.c — values (JSON claims, user fields, literals, arena-made), list/map iteration and the evaluator of
 * the CEL subset (see cel_eval.h).
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cel_eval.h"
#include "cel_program.h"


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

/* A list the evaluator built itself (items in the arena). */
static int native_list(cel_value *out, const cel_value *items, size_t n)
{
	memset(out, 0, sizeof(*out));
	out->kind = CEL_LIST;
	out->rep = CEL_REP_NATIVE;
	out->u.list.items = items;
	out->u.list.n = n;
	return 0;
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
	if (cel_kind_is_num(a->kind) && cel_kind_is_num(b->kind)) {
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
	if (cel_kind_is_num(a->kind) && cel_kind_is_num(b->kind)) {
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

static int do_add(struct ev *e, const cel_node *n, const cel_value *a, const cel_value *b, cel_value *out)
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
		return native_list(out, items, k);
	}
	return no_overload(e, n->pos, "_+_", a, b);
}

static int do_arith(struct ev *e, const cel_node *n, const cel_value *a, const cel_value *b, cel_value *out)
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
	return no_overload(e, n->pos, cel_op_name(n->op), a, b);
}

static int do_in(struct ev *e, const cel_node *n, const cel_value *x, const cel_value *c, bool *res)
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
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (v > (lim - (uint64_t)(p[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static int do_call(struct ev *e, const cel_node *n, cel_value *out)
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
		return native_list(out, items, cnt);
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

static int do_compre(struct ev *e, const cel_node *n, cel_value *out)
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
		return native_list(out, items, k);
	}
}

/* One operand of && or ||: evaluated, and a bool or an error. */
static int logic_operand(struct ev *e, const cel_node *n, int kid, cel_value *v)
{
	int rc = eval(e, n->kid[kid], v);

	if (rc == 0 && v->kind != CEL_BOOL)
		rc = no_overload(e, n->pos, cel_op_name(n->op), v, NULL);
	return rc;
}

/* && and ||: CEL is commutative here; an error on one side is absorbed when the other side decides. */
static int do_logic(struct ev *e, const cel_node *n, cel_value *out)
{
	bool is_and = n->op == OP_AND;
	cel_value l, r;
	cel_error saved;
	int lrc, rrc;

	memset(&saved, 0, sizeof(saved));
	lrc = logic_operand(e, n, 0, &l);
	if (fatal(lrc))
		return lrc;
	if (lrc == 0 && l.u.b != is_and)
		goto decided;
	if (lrc != 0)
		saved = e->a->err;
	rrc = logic_operand(e, n, 1, &r);
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

/* null, bool, int and double literals: the value is in the node. */
static int literal_value(const cel_node *n, cel_value *out)
{
	memset(out, 0, sizeof(*out));
	switch (n->op) {
	case OP_BOOL: out->kind = CEL_BOOL, out->u.b = n->v.b; break;
	case OP_INT: out->kind = CEL_INT, out->u.i = n->v.i; break;
	case OP_DOUBLE: out->kind = CEL_DOUBLE, out->u.d = n->v.d; break;
	default: out->kind = CEL_NULL; break;
	}
	return 0;
}

static int eval(struct ev *e, int32_t ni, cel_value *out)
{
	const cel_node *n = &e->g->nodes[ni];
	cel_value a, b;
	int rc;

	if ((rc = spend(e, 1, n->pos)) != 0)
		return rc;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	switch (n->op) {
	case OP_NULL:
	case OP_BOOL:
	case OP_INT:
	case OP_DOUBLE:
		return literal_value(n, out);
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
		return native_list(out, items, k);
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

		if ((rc = val_cmp(e, &a, &b, n->pos, cel_op_name(n->op), &c)) != 0)
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
