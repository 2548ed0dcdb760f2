/*
 * mapping.c — AuthenticationConfiguration claim mappings and rules; semantics and ownership in mapping.h.
 */
#include "mapping.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cel.h"
#include "kx.h"

typedef struct map_expr {
	char *text;       /* NULL = not set */
	char *path;
	cel_program *prog;
} map_expr;

typedef struct map_field {
	char *claim;      /* NULL = expression (or unset) */
	char *prefix;     /* "" = none */
	map_expr ex;
} map_field;

typedef struct map_extra {
	char *key;
	map_expr ex;
} map_extra;

typedef struct map_crule {
	char *claim, *required; /* claim rule, or: */
	map_expr ex;
	char *message;          /* "" when unset */
} map_crule;

typedef struct map_urule {
	map_expr ex;
	char *message;
} map_urule;

struct mapping {
	map_field username, groups, uid;
	map_extra *extra;
	size_t nextra;
	map_crule *crules;
	size_t ncrules;
	map_urule *urules;
	size_t nurules;
};

const char *mapping_strerror(int err)
{
	switch (err) {
	case MAPPING_OK: return "ok";
	case MAPPING_E_COMPILE: return "expression refused";
	case MAPPING_E_CLAIM: return "claim mapping or rule refused the token";
	case MAPPING_E_RESERVED: return "reserved identity refused";
	case MAPPING_E_IDENTITY: return "identity cannot be forwarded unchanged";
	case MAPPING_E_NOMEM: return "out of memory";
	case MAPPING_E_INTERNAL: return "expression evaluation limit";
	}
	return "unknown mapping error";
}

static char *dup_opt(const char *s, bool *fail)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*fail = true;
	return d;
}

static void expr_free(map_expr *e)
{
	free(e->text);
	free(e->path);
	cel_program_free(e->prog);
}

static void field_free(map_field *f)
{
	free(f->claim);
	free(f->prefix);
	expr_free(&f->ex);
}

void mapping_free(mapping *m)
{
	if (m == NULL)
		return;
	field_free(&m->username);
	field_free(&m->groups);
	field_free(&m->uid);
	for (size_t i = 0; i < m->nextra; i++) {
		free(m->extra[i].key);
		expr_free(&m->extra[i].ex);
	}
	free(m->extra);
	for (size_t i = 0; i < m->ncrules; i++) {
		free(m->crules[i].claim);
		free(m->crules[i].required);
		free(m->crules[i].message);
		expr_free(&m->crules[i].ex);
	}
	free(m->crules);
	for (size_t i = 0; i < m->nurules; i++) {
		free(m->urules[i].message);
		expr_free(&m->urules[i].ex);
	}
	free(m->urules);
	free(m);
}

/* What static result types a kind accepts (the run-time checks stay: CEL_DYN passes here). */
static const char *type_problem(enum authcfg_expr_kind kind, cel_kind k, cel_kind elem)
{
	switch (kind) {
	case AUTHCFG_EXPR_CLAIM_VALIDATION:
	case AUTHCFG_EXPR_USER_VALIDATION:
		return k == CEL_BOOL ? NULL : "must evaluate to bool";
	case AUTHCFG_EXPR_USERNAME:
	case AUTHCFG_EXPR_UID:
		return k == CEL_STRING || k == CEL_DYN ? NULL : "must evaluate to string";
	case AUTHCFG_EXPR_GROUPS:
	case AUTHCFG_EXPR_EXTRA:
		if (k == CEL_STRING || k == CEL_DYN || k == CEL_NULL ||
		    (k == CEL_LIST && (elem == CEL_STRING || elem == CEL_DYN)))
			return NULL;
		return "must evaluate to a string or a list of strings";
	}
	return "unknown expression kind";
}

/* The expression as Go's %q would show it in a field.Error: quotes and backslashes escaped, control bytes as
 * \xNN, cut at 200 bytes. */
static const char *quoted(const char *src, char *buf, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; src[i] != '\0' && i < 200 && o + 5 < cap; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch == '"' || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
		} else {
			buf[o++] = (char)ch;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* Compiles one expression from the configuration into e (copies text and path). */
static int expr_compile(const authcfg_expr *src, map_expr *e, char *err, size_t errlen)
{
	unsigned vars = src->kind == AUTHCFG_EXPR_USER_VALIDATION ? CEL_VAR_USER : CEL_VAR_CLAIMS;
	const char *path = src->path ? src->path : "expression";
	cel_error ce;
	cel_kind k, elem;
	const char *why;
	char q[1024];
	int rc;

	memset(&ce, 0, sizeof(ce));
	e->text = strdup(src->expression);
	e->path = strdup(path);
	if (e->text == NULL || e->path == NULL) {
		kx_seterr(err, errlen, "out of memory");
		return MAPPING_E_NOMEM;
	}
	rc = cel_compile_vars((const uint8_t *)src->expression, strlen(src->expression), vars, &e->prog, &ce);
	if (rc != 0) {
		e->prog = NULL;
		if (rc == CEL_E_NOMEM) {
			kx_seterr(err, errlen, "out of memory");
			return MAPPING_E_NOMEM;
		}
		kx_seterr(err, errlen, "%s: Invalid value: \"%s\": compilation failed: %s (at byte %zu)", path,
		       quoted(src->expression, q, sizeof(q)), ce.msg[0] ? ce.msg : cel_strerror(rc), ce.pos);
		return MAPPING_E_COMPILE;
	}
	cel_result_type(e->prog, &k, &elem);
	why = type_problem(src->kind, k, elem);
	if (why != NULL) {
		kx_seterr(err, errlen, "%s: Invalid value: \"%s\": %s (its type is %s)", path,
		       quoted(src->expression, q, sizeof(q)), why, cel_kind_name(k));
		return MAPPING_E_COMPILE;
	}
	return 0;
}

static int field_compile(const authcfg_mapping *src, map_field *f, char *err, size_t errlen)
{
	bool nomem = false;

	f->claim = dup_opt(src->claim, &nomem);
	f->prefix = dup_opt(src->prefix ? src->prefix : "", &nomem);
	if (nomem) {
		kx_seterr(err, errlen, "out of memory");
		return MAPPING_E_NOMEM;
	}
	if (src->expr.expression != NULL && src->expr.expression[0] != '\0')
		return expr_compile(&src->expr, &f->ex, err, errlen);
	return 0;
}

int mapping_compile(const authcfg_issuer *is, mapping **out, char *err, size_t errlen)
{
	mapping *m;
	bool nomem = false;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		goto nomem;
	/* the API server's validation order: claim rules, username, groups, uid, extra, user rules */
	/* the arrays are zeroed: counting every slot at once lets mapping_free() release a half-built one */
	if (is->nclaim_rules > 0 && (m->crules = calloc(is->nclaim_rules, sizeof(*m->crules))) == NULL)
		goto nomem;
	m->ncrules = is->nclaim_rules;
	for (size_t i = 0; i < is->nclaim_rules; i++) {
		const authcfg_claim_rule *r = &is->claim_rules[i];
		map_crule *c = &m->crules[i];

		c->claim = dup_opt(r->claim, &nomem);
		c->required = dup_opt(r->claim ? (r->required_value ? r->required_value : "") : NULL, &nomem);
		c->message = dup_opt(r->message ? r->message : "", &nomem);
		if (nomem)
			goto nomem;
		if (r->claim == NULL && r->expr.expression != NULL) {
			rc = expr_compile(&r->expr, &c->ex, err, errlen);
			if (rc != 0)
				goto fail;
		}
	}
	if ((rc = field_compile(&is->username, &m->username, err, errlen)) != 0 ||
	    (rc = field_compile(&is->groups, &m->groups, err, errlen)) != 0 ||
	    (rc = field_compile(&is->uid, &m->uid, err, errlen)) != 0)
		goto fail;
	if (is->nextra > 0 && (m->extra = calloc(is->nextra, sizeof(*m->extra))) == NULL)
		goto nomem;
	m->nextra = is->nextra;
	for (size_t i = 0; i < is->nextra; i++) {
		m->extra[i].key = dup_opt(is->extra[i].key, &nomem);
		if (nomem)
			goto nomem;
		rc = expr_compile(&is->extra[i].value, &m->extra[i].ex, err, errlen);
		if (rc != 0)
			goto fail;
	}
	if (is->nuser_rules > 0 && (m->urules = calloc(is->nuser_rules, sizeof(*m->urules))) == NULL)
		goto nomem;
	m->nurules = is->nuser_rules;
	for (size_t i = 0; i < is->nuser_rules; i++) {
		m->urules[i].message = dup_opt(is->user_rules[i].message ? is->user_rules[i].message : "", &nomem);
		if (nomem)
			goto nomem;
		rc = expr_compile(&is->user_rules[i].expr, &m->urules[i].ex, err, errlen);
		if (rc != 0)
			goto fail;
	}
	if (m->username.claim == NULL && m->username.ex.prog == NULL) {
		kx_seterr(err, errlen, "jwt[%zu].claimMappings.username: Required value: claim or expression is required",
		       is->index);
		rc = MAPPING_E_COMPILE;
		goto fail;
	}
	/* validation.go usesEmailClaim / usesEmailVerifiedClaim */
	if (m->username.ex.prog != NULL && cel_program_uses_claim(m->username.ex.prog, "email")) {
		bool verified = cel_program_uses_claim(m->username.ex.prog, "email_verified");

		for (size_t i = 0; i < m->nextra && !verified; i++)
			verified = cel_program_uses_claim(m->extra[i].ex.prog, "email_verified");
		for (size_t i = 0; i < m->ncrules && !verified; i++)
			verified = m->crules[i].ex.prog != NULL &&
				   cel_program_uses_claim(m->crules[i].ex.prog, "email_verified");
		if (!verified) {
			char q[1024];

			kx_seterr(err, errlen, "%s: Invalid value: \"%s\": claims.email_verified must be used in "
			       "claimMappings.username.expression or claimMappings.extra[*].valueExpression or "
			       "claimValidationRules[*].expression when claims.email is used in "
			       "claimMappings.username.expression", m->username.ex.path,
			       quoted(m->username.ex.text, q, sizeof(q)));
			rc = MAPPING_E_COMPILE;
			goto fail;
		}
	}
	*out = m;
	return 0;
nomem:
	kx_seterr(err, errlen, "out of memory");
	rc = MAPPING_E_NOMEM;
fail:
	mapping_free(m);
	return rc;
}

/* ---- apply ---------------------------------------------------------------------------------------------- */

static _Thread_local uint8_t arena_buf[MAPPING_ARENA_BYTES];
static _Thread_local char detail_buf[512];

static const char *detailf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *detailf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail_buf, sizeof(detail_buf), fmt, ap);
	va_end(ap);
	return detail_buf;
}

void mapping_tracef(const mapping_trace *t, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (t == NULL || t->line == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	t->line(t->ud, line);
}

/* Everything one application collects; strings point into the payload, the arena or owned[] (freed at end). */
typedef struct work {
	const char *user;
	const char *uid;
	const char **groups;
	size_t ngroups, capgroups;
	identity_extra *extra;
	size_t nextra, capextra;
	char **owned;
	size_t nowned, capowned;
} work;

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 8;
	void *p;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	p = realloc(*arr, n * elem);
	if (p == NULL)
		return false;
	*arr = p;
	*cap = n;
	return true;
}

/* A copy of a+b kept until the end of the application. */
static const char *own_concat(work *w, const char *a, const char *b, size_t blen)
{
	size_t na = strlen(a);
	char *s;

	if (!grow((void **)&w->owned, &w->capowned, w->nowned + 1, sizeof(char *)))
		return NULL;
	s = malloc(na + blen + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, a, na);
	memcpy(s + na, b, blen);
	s[na + blen] = '\0';
	w->owned[w->nowned++] = s;
	return s;
}

static int eval(const map_expr *e, const cJSON *payload, const cel_user *user, cel_value *out, cel_arena *a,
		const char *what)
{
	cel_env env = {payload, user, 0};
	int rc = cel_eval(e->prog, &env, out, a);

	if (rc == 0)
		return 0;
	if (rc == CEL_E_NOMEM || rc == CEL_E_LIMIT) {
		detailf("oidc: error evaluating %s: %s", what, a->err.msg[0] ? a->err.msg : cel_strerror(rc));
		return MAPPING_E_INTERNAL;
	}
	detailf("oidc: error evaluating %s: %s", what, a->err.msg[0] ? a->err.msg : cel_strerror(rc));
	return MAPPING_E_CLAIM;
}

/* One validation rule (claimValidationRules' expressions, or userValidationRules): 0 when it evaluates to true,
 * else MAPPING_E_CLAIM with the API server's wording (what: "claim validation expression" or "user info
 * validation rule") or eval()'s error. label names the rule in the trace. */
static int rule_holds(const map_expr *ex, const char *message, const cJSON *payload, const cel_user *u,
		      cel_arena *a, const mapping_trace *t, const char *label, const char *what)
{
	cel_value v;
	int rc = eval(ex, payload, u, &v, a, what);

	if (rc != 0) {
		mapping_tracef(t, "%s %s (%s): FAIL (%s)", label, ex->path, ex->text, detail_buf);
		return rc;
	}
	if (v.kind != CEL_BOOL || !v.u.b) {
		mapping_tracef(t, "%s %s (%s): FAIL (%s)", label, ex->path, ex->text,
			       v.kind != CEL_BOOL ? "not a boolean" : "false");
		if (v.kind != CEL_BOOL)
			detailf("oidc: error evaluating %s: validation expression must return a boolean", what);
		else
			detailf("oidc: error evaluating %s: validation expression '%.200s' failed: %.200s", what,
				ex->text, message);
		return MAPPING_E_CLAIM;
	}
	mapping_tracef(t, "%s %s (%s): ok", label, ex->path, ex->text);
	return 0;
}

/* convertCELValueToStringList: a string, a list of strings or null; "" entries dropped. Appends a copy of
 * each value (via add) and returns 0, or -1 for another type. */
typedef int (*add_fn)(work *w, void *ctx, const char *s, size_t len);

static int string_list(const cel_value *v, work *w, void *ctx, add_fn add)
{
	cel_iter it;
	cel_value e;
	int rc;

	if (v->kind == CEL_NULL)
		return 0;
	if (v->kind == CEL_STRING)
		return v->u.s.len == 0 ? 0 : add(w, ctx, v->u.s.p, v->u.s.len);
	if (v->kind != CEL_LIST)
		return -1;
	cel_iter_init(&it, v);
	while (cel_iter_next(&it, &e)) {
		if (e.kind != CEL_STRING)
			return -1;
		if (e.u.s.len == 0)
			continue;
		rc = add(w, ctx, e.u.s.p, e.u.s.len);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int add_group(work *w, void *ctx, const char *s, size_t len)
{
	const char *g;

	if (w->ngroups >= MAPPING_MAX_VALUES)
		return -2;
	if (memchr(s, '\0', len) != NULL)
		return -3;
	g = own_concat(w, ctx ? ctx : "", s, len);
	if (g == NULL || !grow((void **)&w->groups, &w->capgroups, w->ngroups + 1, sizeof(char *)))
		return -4;
	w->groups[w->ngroups++] = g;
	return 0;
}

static int add_extra(work *w, void *ctx, const char *s, size_t len)
{
	const char *v;

	if (w->nextra >= MAPPING_MAX_VALUES)
		return -2;
	if (memchr(s, '\0', len) != NULL)
		return -3;
	v = own_concat(w, "", s, len);
	if (v == NULL || !grow((void **)&w->extra, &w->capextra, w->nextra + 1, sizeof(identity_extra)))
		return -4;
	w->extra[w->nextra].key = ctx;
	w->extra[w->nextra].value = v;
	w->nextra++;
	return 0;
}

static int list_error(int rc, const char *what)
{
	if (rc == -4)
		return MAPPING_E_NOMEM;
	if (rc == -2)
		detailf("oidc: error evaluating %s: more than %d values", what, MAPPING_MAX_VALUES);
	else if (rc == -3)
		detailf("oidc: error evaluating %s: NUL byte in a value", what);
	else
		detailf("oidc: error evaluating %s: expression must return a string or a list of strings", what);
	return MAPPING_E_CLAIM;
}

static int map_username(const mapping *m, const cJSON *payload, work *w, cel_arena *a)
{
	const map_field *f = &m->username;
	cel_value v;
	const cJSON *c;
	int rc;

	if (f->ex.prog != NULL) {
		rc = eval(&f->ex, payload, NULL, &v, a, "username claim expression");
		if (rc != 0)
			return rc;
		if (v.kind != CEL_STRING) {
			detailf("oidc: error evaluating username claim expression: username claim expression must "
				"return a string");
			return MAPPING_E_CLAIM;
		}
		if (memchr(v.u.s.p, '\0', v.u.s.len) != NULL)
			goto bad_user;
		w->user = own_concat(w, "", v.u.s.p, v.u.s.len);
		return w->user ? 0 : MAPPING_E_NOMEM;
	}
	c = cJSON_GetObjectItemCaseSensitive(payload, f->claim);
	if (c == NULL) {
		detailf("oidc: parse username claims \"%s\": claim not present", f->claim);
		return MAPPING_E_CLAIM;
	}
	if (!cJSON_IsString(c)) {
		detailf("oidc: parse username claims \"%s\": not a string", f->claim);
		return MAPPING_E_CLAIM;
	}
	if (strcmp(f->claim, "email") == 0) {
		const cJSON *ev = cJSON_GetObjectItemCaseSensitive(payload, "email_verified");

		if (ev != NULL && !cJSON_IsBool(ev) && !cJSON_IsNull(ev)) {
			detailf("oidc: parse 'email_verified' claim: not a boolean");
			return MAPPING_E_CLAIM;
		}
		if (ev != NULL && !cJSON_IsTrue(ev)) {
			detailf("oidc: email not verified");
			return MAPPING_E_CLAIM;
		}
	}
	w->user = own_concat(w, f->prefix, c->valuestring, strlen(c->valuestring));
	if (w->user == NULL)
		return MAPPING_E_NOMEM;
	if (c->valuestring[0] == '\0')
		goto bad_user;
	return 0;
bad_user:
	detailf("oidc: username is empty or holds a NUL byte");
	return MAPPING_E_CLAIM;
}

static int map_groups(const mapping *m, const cJSON *payload, work *w, cel_arena *a)
{
	const map_field *f = &m->groups;
	const cJSON *g, *it;
	cel_value v;
	int rc;

	if (f->claim != NULL) {
		g = cJSON_GetObjectItemCaseSensitive(payload, f->claim);
		if (g == NULL || cJSON_IsNull(g))
			return 0;
		if (cJSON_IsString(g)) {
			rc = g->valuestring[0] ? add_group(w, f->prefix, g->valuestring, strlen(g->valuestring)) : -5;
		} else if (cJSON_IsArray(g)) {
			rc = 0;
			for (it = g->child; it != NULL && rc == 0; it = it->next)
				rc = cJSON_IsString(it) && it->valuestring[0]
					     ? add_group(w, f->prefix, it->valuestring, strlen(it->valuestring))
					     : -5;
		} else {
			rc = -5;
		}
		if (rc == -5) {
			detailf("oidc: parse groups claim \"%s\": not a non-empty string or an array of them", f->claim);
			return MAPPING_E_CLAIM;
		}
		return rc ? list_error(rc, "groups claim") : 0;
	}
	if (f->ex.prog == NULL)
		return 0;
	rc = eval(&f->ex, payload, NULL, &v, a, "group claim expression");
	if (rc != 0)
		return rc;
	rc = string_list(&v, w, NULL, add_group);
	return rc ? list_error(rc, "group claim expression") : 0;
}

static int map_uid(const mapping *m, const cJSON *payload, work *w, cel_arena *a)
{
	const map_field *f = &m->uid;
	const cJSON *c;
	cel_value v;
	int rc;

	if (f->claim != NULL) {
		c = cJSON_GetObjectItemCaseSensitive(payload, f->claim);
		if (c == NULL) {
			detailf("oidc: parse uid claim \"%s\": claim not present", f->claim);
			return MAPPING_E_CLAIM;
		}
		if (cJSON_IsNull(c))
			return 0;
		if (!cJSON_IsString(c)) {
			detailf("oidc: parse uid claim \"%s\": not a string", f->claim);
			return MAPPING_E_CLAIM;
		}
		if (c->valuestring[0] != '\0')
			w->uid = c->valuestring;
		return 0;
	}
	if (f->ex.prog == NULL)
		return 0;
	rc = eval(&f->ex, payload, NULL, &v, a, "uid claim expression");
	if (rc != 0)
		return rc;
	if (v.kind != CEL_STRING) {
		detailf("oidc: error evaluating uid claim expression: uid claim expression must return a string");
		return MAPPING_E_CLAIM;
	}
	if (memchr(v.u.s.p, '\0', v.u.s.len) != NULL) {
		detailf("oidc: error evaluating uid claim expression: NUL byte in the uid");
		return MAPPING_E_CLAIM;
	}
	if (v.u.s.len > 0) {
		w->uid = own_concat(w, "", v.u.s.p, v.u.s.len);
		if (w->uid == NULL)
			return MAPPING_E_NOMEM;
	}
	return 0;
}

static int map_extras(const mapping *m, const cJSON *payload, work *w, cel_arena *a, const mapping_trace *t)
{
	for (size_t i = 0; i < m->nextra; i++) {
		const map_extra *x = &m->extra[i];
		size_t before = w->nextra;
		cel_value v;
		char what[300];
		int rc;

		snprintf(what, sizeof(what), "extra claim expression: %.200s", x->ex.text);
		rc = eval(&x->ex, payload, NULL, &v, a, what);
		if (rc != 0)
			return rc;
		rc = string_list(&v, w, x->key, add_extra);
		if (rc != 0)
			return list_error(rc, what);
		if (w->nextra == before)
			mapping_tracef(t, "extra %s: no value (omitted)", x->key);
	}
	return 0;
}

static int claim_rules(const mapping *m, const cJSON *payload, cel_arena *a, const mapping_trace *t)
{
	/* the API server checks every claim+requiredValue rule first (its requiredClaims map), then the
	 * expressions, each in file order */
	for (size_t i = 0; i < m->ncrules; i++) {
		const map_crule *r = &m->crules[i];
		const cJSON *c;

		if (r->claim == NULL)
			continue;
		c = cJSON_GetObjectItemCaseSensitive(payload, r->claim);
		if (c == NULL) {
			mapping_tracef(t, "claim rule: claim \"%s\" == \"%s\": FAIL (not present)", r->claim, r->required);
			detailf("oidc: required claim %s not present in ID token", r->claim);
			return MAPPING_E_CLAIM;
		}
		if (!cJSON_IsString(c) || strcmp(c->valuestring, r->required) != 0) {
			mapping_tracef(t, "claim rule: claim \"%s\" == \"%s\": FAIL (%s)", r->claim, r->required,
			       cJSON_IsString(c) ? "different value" : "not a string");
			detailf("oidc: required claim %s value does not match", r->claim);
			return MAPPING_E_CLAIM;
		}
		mapping_tracef(t, "claim rule: claim \"%s\" == \"%s\": ok", r->claim, r->required);
	}
	for (size_t i = 0; i < m->ncrules; i++) {
		const map_crule *r = &m->crules[i];
		int rc;

		if (r->ex.prog == NULL)
			continue;
		rc = rule_holds(&r->ex, r->message, payload, NULL, a, t, "claim rule", "claim validation expression");
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int user_rules(const mapping *m, const work *w, cel_arena *a, const mapping_trace *t)
{
	cel_str *groups = NULL, *vals = NULL;
	cel_user_extra *ux = NULL;
	cel_user u;
	size_t nux = 0;
	int rc = 0;

	if (m->nurules == 0)
		return 0;
	groups = calloc(w->ngroups + 1, sizeof(*groups));
	vals = calloc(w->nextra + 1, sizeof(*vals));
	ux = calloc(w->nextra + 1, sizeof(*ux));
	if (groups == NULL || vals == NULL || ux == NULL) {
		rc = MAPPING_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < w->ngroups; i++)
		groups[i] = (cel_str){w->groups[i], strlen(w->groups[i])};
	/* extras were appended key by key (one expression at a time), so each key's values are contiguous */
	for (size_t i = 0; i < w->nextra; i++) {
		vals[i] = (cel_str){w->extra[i].value, strlen(w->extra[i].value)};
		if (nux == 0 || strcmp(ux[nux - 1].key.p, w->extra[i].key) != 0) {
			ux[nux].key = (cel_str){w->extra[i].key, strlen(w->extra[i].key)};
			ux[nux].values = &vals[i];
			nux++;
		}
		ux[nux - 1].nvalues++;
	}
	memset(&u, 0, sizeof(u));
	u.username = (cel_str){w->user, strlen(w->user)};
	if (w->uid != NULL)
		u.uid = (cel_str){w->uid, strlen(w->uid)};
	u.groups = groups;
	u.ngroups = w->ngroups;
	u.extra = ux;
	u.nextra = nux;
	for (size_t i = 0; i < m->nurules; i++) {
		const map_urule *r = &m->urules[i];

		rc = rule_holds(&r->ex, r->message, NULL, &u, a, t, "user rule", "user info validation rule");
		if (rc != 0)
			goto out;
	}
out:
	free(groups);
	free(vals);
	free(ux);
	return rc;
}

int mapping_apply(const mapping *m, const cJSON *payload, int64_t exp, uint64_t key_fp, bool allow_reserved,
		  identity **out, const char **detail, const mapping_trace *t)
{
	cel_arena a;
	work w;
	identity *id;
	int rc;

	memset(&w, 0, sizeof(w));
	detail_buf[0] = '\0';
	cel_arena_init(&a, arena_buf, sizeof(arena_buf));
	if ((rc = map_username(m, payload, &w, &a)) != 0) {
		mapping_tracef(t, "username: FAIL (%s)", detail_buf);
		goto out;
	}
	mapping_tracef(t, "username: %s", w.user);
	if ((rc = map_groups(m, payload, &w, &a)) != 0) {
		mapping_tracef(t, "groups: FAIL (%s)", detail_buf);
		goto out;
	}
	mapping_tracef(t, "groups: %zu", w.ngroups);
	for (size_t i = 0; i < w.ngroups; i++)
		mapping_tracef(t, "  group: %s", w.groups[i]);
	if ((rc = map_uid(m, payload, &w, &a)) != 0) {
		mapping_tracef(t, "uid: FAIL (%s)", detail_buf);
		goto out;
	}
	mapping_tracef(t, "uid: %s", w.uid ? w.uid : "(none)");
	if ((rc = map_extras(m, payload, &w, &a, t)) != 0) {
		mapping_tracef(t, "extra: FAIL (%s)", detail_buf);
		goto out;
	}
	for (size_t i = 0; i < w.nextra; i++)
		mapping_tracef(t, "extra %s: %s", w.extra[i].key, w.extra[i].value);
	if ((rc = claim_rules(m, payload, &a, t)) != 0)
		goto out;
	if ((rc = user_rules(m, &w, &a, t)) != 0)
		goto out;
	/* before the reserved guard: " system:masters" is refused here, not let through to become system:masters */
	if (identity_check(w.user, w.uid, w.groups, w.ngroups, w.extra, w.nextra, detail_buf,
			   sizeof(detail_buf)) != 0) {
		mapping_tracef(t, "header-safe identity: FAIL (%s)", detail_buf);
		rc = MAPPING_E_IDENTITY;
		goto out;
	}
	if (!allow_reserved) {
		bool bad = strncmp(w.user, "system:", 7) == 0;

		for (size_t i = 0; i < w.ngroups && !bad; i++)
			bad = strncmp(w.groups[i], "system:", 7) == 0;
		if (bad) {
			detailf("system: user or group");
			mapping_tracef(t, "reserved identity: FAIL (a user or group starts with system:)");
			rc = MAPPING_E_RESERVED;
			goto out;
		}
	}
	id = identity_build(w.user, w.uid, w.groups, w.ngroups, w.extra, w.nextra, exp, key_fp);
	if (id == NULL) {
		rc = MAPPING_E_NOMEM;
		goto out;
	}
	*out = id;
out:
	if (rc != 0 && detail != NULL)
		*detail = detail_buf[0] ? detail_buf : mapping_strerror(rc);
	for (size_t i = 0; i < w.nowned; i++)
		free(w.owned[i]);
	free(w.owned);
	free(w.groups);
	free(w.extra);
	return rc;
}
