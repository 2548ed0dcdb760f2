/*
 * test_cel.c — the CEL subset: Kubernetes documentation examples, operators and functions with their results,
 * compile-time refusals (code, message, byte offset), run-time errors in CEL's wording, error absorption by
 * && / || / all / exists, static result types, limits (length, depth, steps, arena), and no reads past the
 * expression (every compile reads a heap copy of exactly len bytes, so ASan sees an over-read).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cel.h"

/* The claims most rows run against; the K8s docs payload is the second set. */
static const char *const claim_sets[] = {
	"{\"iss\":\"https://issuer.example\",\"sub\":\"u1\",\"username\":\"jane\",\"email\":\"jane@example.com\","
	"\"email_verified\":true,\"groups\":[\"dev\",\"ops\"],\"roles\":[\"admin\",\"viewer\"],\"exp\":1700086400,"
	"\"nbf\":1700000000,\"aud\":[\"kubernetes\"],\"n\":5,\"f\":1.5,\"nested\":{\"a\":{\"b\":\"deep\"}},"
	"\"empty\":[],\"nul\":null,\"hd\":\"example.com\",\"mixed\":[\"a\",1],\"name\":\"J\\u00e9r\\u00f4me\","
	"\"neg\":-7,\"csv\":\"a,b,,c\",\"s\":\"system:x\"}",
	"{\"aud\":\"kubernetes\",\"exp\":1703232949,\"iat\":1701107233,\"iss\":\"https://example.com\","
	"\"jti\":\"7c337942807e73caa2c30c868ac0ce910bce02ddcbfebe8c23b8b5f27ad62873\",\"nbf\":1701107233,"
	"\"roles\":\"user,admin\",\"sub\":\"auth\",\"tenant\":\"72f988bf-86f1-41af-91ab-2d7cd011db4a\","
	"\"username\":\"foo\"}",
};

static const cel_str groups0[] = { { "oidc:dev", 8 }, { "oidc:ops", 8 } };
static const cel_str groups1[] = { { "oidc:dev", 8 }, { "system:masters", 14 } };
static const cel_str team[] = { { "blue", 4 }, { "green", 5 } };
static const cel_user_extra extra0[] = { { { "example.org/team", 16 }, team, 2 } };
static const cel_user users[] = {
	{ { "oidc:jane", 9 }, { "u-42", 4 }, groups0, 2, extra0, 1 },
	{ { "system:admin", 12 }, { NULL, 0 }, groups1, 2, NULL, 0 },
};

/* Renders a value as JSON (strings unescaped but quoted) for table comparison. */
static void render(const cel_value *v, char *buf, size_t cap, size_t *o)
{
	cel_iter it;
	cel_value x;
	bool first = true;

#define PUT(...) (*o += (size_t)snprintf(buf + *o, *o < cap ? cap - *o : 0, __VA_ARGS__))
	switch (v->kind) {
	case CEL_NULL: PUT("null"); break;
	case CEL_BOOL: PUT("%s", v->u.b ? "true" : "false"); break;
	case CEL_INT: PUT("%lld", (long long)v->u.i); break;
	case CEL_DOUBLE: PUT("%gd", v->u.d); break;
	case CEL_STRING:
		assert_int_equal(v->u.s.p[v->u.s.len], 0);
		PUT("\"%.*s\"", (int)v->u.s.len, v->u.s.p);
		break;
	case CEL_LIST:
		PUT("[");
		cel_iter_init(&it, v);
		while (cel_iter_next(&it, &x)) {
			PUT("%s", first ? "" : ",");
			first = false;
			render(&x, buf, cap, o);
		}
		PUT("]");
		break;
	case CEL_MAP:
		PUT("{");
		cel_iter_init(&it, v);
		while (cel_iter_next(&it, &x)) {
			PUT("%s\"%.*s\"", first ? "" : ",", (int)x.u.s.len, x.u.s.p);
			first = false;
		}
		PUT("}");
		break;
	default: PUT("?"); break;
	}
#undef PUT
}

struct row {
	const char *expr;
	int claims; /* index into claim_sets, -1 = none */
	int user;   /* index into users, -1 = none */
	const char *want; /* rendered result, or NULL when an error is expected */
	int code;         /* expected error (compile or eval) */
	const char *msg;  /* expected substring of the message */
	long pos;         /* expected byte offset, -1 = not checked */
};

#define OK(e, w) { e, 0, 0, w, 0, NULL, -1 }
#define OKC(e, c, w) { e, c, 0, w, 0, NULL, -1 }
#define OKU(e, u, w) { e, 0, u, w, 0, NULL, -1 }
#define ERR(e, code, msg, pos) { e, 0, 0, NULL, code, msg, pos }

static const struct row good[] = {
	/* Kubernetes AuthenticationConfiguration documentation */
	OK("claims.username + ':external-user'", "\"jane:external-user\""),
	OKC("claims.username + \":external-user\"", 1, "\"foo:external-user\""),
	OKC("claims.roles.split(\",\")", 1, "[\"user\",\"admin\"]"),
	OKC("claims.sub", 1, "\"auth\""),
	OKC("claims.tenant", 1, "\"72f988bf-86f1-41af-91ab-2d7cd011db4a\""),
	OKC("\"system:\" + claims.username", 1, "\"system:foo\""),
	OK("claims.exp - claims.nbf <= 86400", "true"),
	OKC("claims.exp - claims.nbf <= 86400", 1, "false"),
	OK("claims.hd == \"example.com\"", "true"),
	OK("'admin' in claims.roles", "true"),
	OK("'root' in claims.roles", "false"),
	OK("claims.groups.map(g, 'oidc:' + g)", "[\"oidc:dev\",\"oidc:ops\"]"),
	OK("has(claims.email_verified) ? claims.email_verified : false", "true"),
	OKC("has(claims.email_verified) ? claims.email_verified : false", 1, "false"),
	OK("claims.?email_verified.orValue(true)", "true"),
	OKC("claims.?email_verified.orValue(true)", 1, "true"),
	OKC("claims.?email_verified.orValue(true) == true", 1, "true"),
	OK("has(claims.preferred_username) ? claims.preferred_username : null", "null"),
	OKU("!user.username.startsWith('system:')", 0, "true"),
	OKU("!user.username.startsWith('system:')", 1, "false"),
	OKU("user.groups.all(group, !group.startsWith('system:'))", 0, "true"),
	OKU("user.groups.all(group, !group.startsWith('system:'))", 1, "false"),
	/* user fields */
	OKU("user.uid", 0, "\"u-42\""),
	OKU("user.uid", 1, "\"\""),
	OKU("has(user.uid)", 1, "false"),
	OKU("has(user.uid) && has(user.groups)", 0, "true"),
	OKU("user.extra['example.org/team']", 0, "[\"blue\",\"green\"]"),
	OKU("'example.org/team' in user.extra", 0, "true"),
	OKU("user.extra.size()", 1, "0"),
	OKU("size(user.groups) == 2 && user.groups[1] == 'system:masters'", 1, "true"),
	OKU("user.groups.exists(g, g == 'oidc:ops')", 0, "true"),
	OKU("user.extra.all(k, user.extra[k].size() > 0)", 0, "true"),
	/* selection, index, has */
	OK("claims.nested.a.b", "\"deep\""),
	OK("claims['nested']['a'].b", "\"deep\""),
	OK("has(claims.nested.a)", "true"),
	OK("has(claims.nested.z)", "false"),
	OK("has(claims.nul)", "true"),
	OK("claims.nul == null", "true"),
	OK("claims.groups[0]", "\"dev\""),
	OK("claims.groups[1]", "\"ops\""),
	OK("[10, 20, 30][2]", "30"),
	OK("'email' in claims", "true"),
	OK("'missing' in claims", "false"),
	OK("claims.?nested.?a.?b.orValue('none')", "\"deep\""),
	OK("claims.?nested.?x.?b.orValue('none')", "\"none\""),
	OK("claims.?nested.hasValue()", "true"),
	OK("claims.?missing.hasValue()", "false"),
	OK("claims.?username.value()", "\"jane\""),
	/* literals and strings */
	OK("'a\\tb\\x41\\u00e9\\101\\'\"'", "\"a\tbA\xc3\xa9" "A'\"\""),
	OK("r'a\\tb'", "\"a\\tb\""),
	OK("'''multi\nline'''", "\"multi\nline\""),
	OK("\"\"\"it's\"\"\"", "\"it's\""),
	OK("0x1F + 1", "32"),
	OK("-9223372036854775808", "-9223372036854775808"),
	OK("1.5e3", "1500d"),
	OK(".5 + 0.25", "0.75d"),
	OK("[]", "[]"),
	OK("[1, 'a', true, null, [2]]", "[1,\"a\",true,null,[2]]"),
	OK("[1, 2,]", "[1,2]"),
	OK("'a' // a comment\n + 'b'", "\"ab\""),
	/* arithmetic */
	OK("7 / 2", "3"),
	OK("-7 / 2", "-3"),
	OK("-7 % 3", "-1"),
	OK("7.0 / 2.0", "3.5d"),
	OK("1.0 / 0.0 > 1e308", "true"),
	OK("2 * 3 + 4 * 5", "26"),
	OK("2 * (3 + 4)", "14"),
	OK("claims.n * 2", "10"),
	OK("claims.f * 2.0", "3d"),
	OK("-claims.neg", "7"),
	OK("claims.groups + ['x']", "[\"dev\",\"ops\",\"x\"]"),
	OK("[1] + [] + [2, 3]", "[1,2,3]"),
	/* comparisons */
	OK("1 < 2.5", "true"),
	OK("claims.f > claims.n", "false"),
	OK("'abc' < 'abd'", "true"),
	OK("'ab' < 'abc'", "true"),
	OK("false < true", "true"),
	OK("claims.n == 5.0", "true"),
	OK("claims.n == '5'", "false"),
	OK("claims.groups == ['dev', 'ops']", "true"),
	OK("claims.groups != ['ops', 'dev']", "true"),
	OK("claims.nested == claims.nested", "true"),
	OK("null == null", "true"),
	OK("1 in [1.0, 2]", "true"),
	/* logic, absorption of errors */
	OK("true && false || true", "true"),
	OK("!true || !false", "true"),
	OK("false && claims.missing", "false"),
	OK("claims.missing && false", "false"),
	OK("true || claims.missing", "true"),
	OK("claims.missing || true", "true"),
	OK("claims.missing == 'x' || claims.n == 5", "true"),
	OK("claims.mixed.exists(x, x == 1)", "true"),
	OK("claims.mixed.exists(x, x.startsWith('a'))", "true"),
	OK("claims.mixed.all(x, x.startsWith('z'))", "false"),
	OK("true ? 1 : claims.missing", "1"),
	/* functions */
	OK("size('Jérôme')", "6"),
	OK("claims.name.size()", "6"),
	OK("size(claims.groups)", "2"),
	OK("size(claims)", "21"),
	OK("claims.email.endsWith('@example.com')", "true"),
	OK("claims.email.contains('@exa')", "true"),
	OK("claims.email.contains('')", "true"),
	OK("'ab'.startsWith('abc')", "false"),
	OK("'MiXeD-1'.lowerAscii() + 'MiXeD-é'.upperAscii()", "\"mixed-1MIXED-é\""),
	OK("claims.groups.join(',')", "\"dev,ops\""),
	OK("claims.groups.join()", "\"devops\""),
	OK("claims.empty.join('-')", "\"\""),
	OK("claims.csv.split(',')", "[\"a\",\"b\",\"\",\"c\"]"),
	OK("''.split(',')", "[\"\"]"),
	OK("'aé'.split('')", "[\"a\",\"é\"]"),
	OK("string(42) + string(-1) + string(true)", "\"42-1true\""),
	OK("string(1.5) + ' ' + string(1e6) + ' ' + string(100000.0) + ' ' + string(0.0001)",
	   "\"1.5 1e+06 100000 0.0001\""),
	OK("int('-12') + int(3.9) + int(-3.9)", "-12"),
	OK("int(claims.exp)", "1700086400"),
	OK("double(claims.n) / 2.0", "2.5d"),
	OK("double('2.5')", "2.5d"),
	OK("dyn(1) + 2", "3"),
	/* macros */
	OK("claims.groups.filter(g, g != 'dev')", "[\"ops\"]"),
	OK("claims.groups.map(g, g != 'dev', g + '!')", "[\"ops!\"]"),
	OK("claims.groups.exists_one(g, g.startsWith('d'))", "true"),
	OK("claims.roles.exists_one(g, size(g) > 0)", "false"),
	OK("claims.empty.all(x, false)", "true"),
	OK("claims.empty.exists(x, true)", "false"),
	OK("claims.empty.map(x, x)", "[]"),
	OK("claims.nested.map(k, k)", "[\"a\"]"),
	OK("claims.groups.map(g, claims.roles.map(r, g + ':' + r))",
	   "[[\"dev:admin\",\"dev:viewer\"],[\"ops:admin\",\"ops:viewer\"]]"),
	OK("claims.groups.exists(g, claims.roles.exists(g, g == 'admin'))", "true"),
	OK("[1, 2, 3].filter(x, x % 2 == 1).map(x, x * 10)", "[10,30]"),
};

static const struct row bad[] = {
	/* compile: syntax */
	ERR("", CEL_E_SYNTAX, "unexpected end", 0),
	ERR("claims.", CEL_E_SYNTAX, "expected a field", 7),
	ERR("claims.x +", CEL_E_SYNTAX, "unexpected end", 10),
	ERR("(1 + 2", CEL_E_SYNTAX, "expected ')'", 6),
	ERR("'abc", CEL_E_SYNTAX, "unterminated string", 0),
	ERR("'a\nb'", CEL_E_SYNTAX, "newline", 2),
	ERR("'\\q'", CEL_E_SYNTAX, "invalid escape", 1),
	ERR("'\\ud800'", CEL_E_SYNTAX, "invalid code point", 1),
	ERR("1 = 2", CEL_E_SYNTAX, "unexpected character '='", 2),
	ERR("1 & 2", CEL_E_SYNTAX, "unexpected character '&'", 2),
	ERR("claims.x #", CEL_E_SYNTAX, "unexpected character '#'", 9),
	ERR("1 2", CEL_E_SYNTAX, "unexpected input after", 2),
	ERR("9223372036854775808", CEL_E_SYNTAX, "out of range", 0),
	ERR("99999999999999999999", CEL_E_SYNTAX, "out of range", 0),
	ERR("1.", CEL_E_SYNTAX, "expected a field", 2),
	ERR("claims.if", CEL_E_SYNTAX, "reserved identifier 'if'", 7),
	ERR("has(claims['x'])", CEL_E_SYNTAX, "invalid argument to has()", 10),
	ERR("claims.groups.map(1, 2)", CEL_E_SYNTAX, "simple name", 18),
	ERR("claims.groups.all(g, true, false)", CEL_E_SYNTAX, "too many arguments", 25),
	ERR("'\xff'", CEL_E_SYNTAX, "invalid UTF-8", 1),
	/* compile: outside the subset */
	ERR("claims.email.matches('^a')", CEL_E_UNSUPPORTED, "'matches' is outside", 13),
	ERR("timestamp(claims.iat)", CEL_E_UNSUPPORTED, "'timestamp' is outside", 0),
	ERR("claims.x.trim()", CEL_E_UNSUPPORTED, "'trim' is outside", 9),
	ERR("{'a': 1}", CEL_E_UNSUPPORTED, "map literals", 0),
	ERR("1u", CEL_E_UNSUPPORTED, "unsigned", 0),
	ERR("b'abc'", CEL_E_UNSUPPORTED, "bytes", 0),
	ERR(".claims", CEL_E_UNSUPPORTED, "qualified names", 0),
	ERR("claims[?'x']", CEL_E_UNSUPPORTED, "optional index", 7),
	ERR("claims.?x", CEL_E_UNSUPPORTED, "optional value", 8),
	ERR("claims.?x == 1", CEL_E_UNSUPPORTED, "optional value", 8),
	ERR("[claims.?x]", CEL_E_UNSUPPORTED, "optional value", 9),
	ERR("claims.x.orValue(1)", CEL_E_UNSUPPORTED, "applies to an optional", 9),
	ERR("user", CEL_E_UNSUPPORTED, "'user' must be used with a field", 0),
	ERR("claims.groups.map(claims, 1)", CEL_E_UNSUPPORTED, "shadow", 18),
	/* compile: types and names */
	ERR("foo.bar", CEL_E_TYPE, "undeclared reference to 'foo'", 0),
	ERR("user.name", CEL_E_TYPE, "undefined field 'name'", 5),
	ERR("'a' + 1", CEL_E_TYPE, "'_+_' applied to '(string, int)'", 4),
	ERR("1 + 1.0", CEL_E_TYPE, "'_+_' applied to '(int, double)'", 2),
	ERR("1 == 'a'", CEL_E_TYPE, "'_==_' applied to '(int, string)'", 2),
	ERR("!1", CEL_E_TYPE, "'!_' applied to '(int)'", 0),
	ERR("-'a'", CEL_E_TYPE, "'-_' applied to '(string)'", 0),
	ERR("1 ? 2 : 3", CEL_E_TYPE, "'_?_:_'", 2),
	ERR("'a' && true", CEL_E_TYPE, "'_&&_'", 4),
	ERR("1 in 'abc'", CEL_E_TYPE, "'@in'", 2),
	ERR("'a'.size(1)", CEL_E_TYPE, "no matching overload for 'size'", 4),
	ERR("size(1)", CEL_E_TYPE, "no matching overload for 'size'", 0),
	ERR("'abc'.startsWith(1)", CEL_E_TYPE, "no matching overload for 'startsWith'", 6),
	ERR("[1, 2].join(',')", CEL_E_TYPE, "no matching overload for 'join'", 7),
	ERR("'a'.b", CEL_E_TYPE, "does not support field selection", 4),
	ERR("'abc'[0]", CEL_E_TYPE, "'_[_]'", 5),
	ERR("[1][claims]", CEL_E_TYPE, "'_[_]'", 3),
	ERR("1.5 % 2.0", CEL_E_TYPE, "'_%_'", 4),
	ERR("[1, 2].all(x, x)", CEL_E_TYPE, "predicate must be bool", 14),
	ERR("user.groups.filter(g, g + 1)", CEL_E_TYPE, "'_+_' applied to '(string, int)'", 24),
	ERR("'a'.all(x, true)", CEL_E_TYPE, "applies to a list or a map", 4),
	/* run time: CEL error values */
	ERR("claims.missing", CEL_E_EVAL, "no such key: missing", 7),
	ERR("claims['missing']", CEL_E_EVAL, "no such key: missing", 6),
	ERR("has(claims.missing.x)", CEL_E_EVAL, "no such key: missing", 11),
	ERR("claims.groups[2]", CEL_E_EVAL, "index out of bounds: 2", 13),
	ERR("claims.groups[-1]", CEL_E_EVAL, "index out of bounds: -1", 13),
	ERR("claims.n / 0", CEL_E_EVAL, "division by zero", 9),
	ERR("claims.n % 0", CEL_E_EVAL, "modulus by zero", 9),
	ERR("9223372036854775807 + claims.n", CEL_E_EVAL, "overflow", 20),
	ERR("-9223372036854775808 / -1", CEL_E_EVAL, "overflow", 21),
	ERR("-(-9223372036854775808)", CEL_E_EVAL, "overflow", 0),
	ERR("claims.n * 4611686018427387904", CEL_E_EVAL, "overflow", 9),
	ERR("int('12a')", CEL_E_EVAL, "cannot convert", 0),
	ERR("int(1e19)", CEL_E_EVAL, "overflow", 0),
	ERR("claims.?missing.value()", CEL_E_EVAL, "optional.none() dereference", 16),
	ERR("claims.username + claims.n", CEL_E_TYPE, "no such overload: _+_(string, int)", 16),
	ERR("claims.username.startsWith(claims.n)", CEL_E_TYPE, "no such overload: startsWith(string, int)", 16),
	ERR("claims.n.size()", CEL_E_TYPE, "no such overload: size(int)", 9),
	ERR("claims.username.x", CEL_E_TYPE, "does not support field selection", 16),
	ERR("claims.groups < claims.roles", CEL_E_TYPE, "no such overload: _<_(list, list)", 14),
	ERR("claims.mixed.join(',')", CEL_E_TYPE, "join: list element is int", 13),
	ERR("claims.username && true", CEL_E_TYPE, "no such overload: _&&_(string)", 16),
	ERR("claims.missing && true", CEL_E_EVAL, "no such key: missing", 7),
	ERR("true && claims.missing", CEL_E_EVAL, "no such key: missing", 15),
	ERR("claims.a || claims.b", CEL_E_EVAL, "no such key: a", 7),
	ERR("claims.mixed.all(x, x.startsWith('a'))", CEL_E_TYPE, "no such overload: startsWith(int, string)", 22),
	ERR("claims.mixed.exists_one(x, x.startsWith('a'))", CEL_E_TYPE, "startsWith(int, string)", 29),
	ERR("claims.groups.all(g, g)", CEL_E_TYPE, "predicate is string, not bool", 21),
	ERR("claims.n ? 1 : 2", CEL_E_TYPE, "no such overload: _?_:_(int)", 9),
	ERR("claims.n.map(x, x)", CEL_E_TYPE, "comprehension over int", 9),
	ERR("'x' in claims.n", CEL_E_TYPE, "no such overload: @in(string, int)", 4),
};

/* Compiles from a heap copy of exactly len bytes, so any read past the expression is an ASan report. */
static int compile_exact(const char *expr, unsigned vars, cel_program **out, cel_error *err)
{
	size_t len = strlen(expr);
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, expr, len);
	rc = cel_compile_vars(copy, len, vars, out, err);
	free(copy);
	return rc;
}

/* Values may borrow from the program (literals) and the claims: the caller frees both after reading v. */
static int run(const struct row *r, cel_value *v, cel_error *err, cel_arena *a, cJSON **claims, cel_program **progp)
{
	cel_program *prog = NULL;
	cel_env env;
	int rc;

	memset(&env, 0, sizeof(env));
	*claims = NULL;
	*progp = NULL;
	rc = compile_exact(r->expr, CEL_VAR_CLAIMS | CEL_VAR_USER, &prog, err);
	if (rc != 0)
		return rc;
	if (r->claims >= 0) {
		*claims = cJSON_Parse(claim_sets[r->claims]);
		assert_non_null(*claims);
	}
	env.claims = *claims;
	env.user = r->user >= 0 ? &users[r->user] : NULL;
	rc = cel_eval(prog, &env, v, a);
	if (rc != 0)
		*err = a->err;
	*progp = prog;
	return rc;
}

static void test_good(void **state)
{
	static uint8_t buf[1 << 16];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cel_arena a;
		cel_value v;
		cel_error err;
		cJSON *claims;
		cel_program *prog;
		char out[512];
		size_t o = 0;
		int rc;

		memset(&err, 0, sizeof(err));
		cel_arena_init(&a, buf, sizeof(buf));
		rc = run(&good[i], &v, &err, &a, &claims, &prog);
		if (rc != 0)
			fail_msg("%s: got %d (%s) at %zu: %s", good[i].expr, rc, cel_strerror(rc), err.pos, err.msg);
		render(&v, out, sizeof(out), &o);
		if (strcmp(out, good[i].want) != 0)
			fail_msg("%s: got %s, want %s", good[i].expr, out, good[i].want);
		cJSON_Delete(claims);
		cel_program_free(prog);
	}
}

static void test_bad(void **state)
{
	static uint8_t buf[1 << 16];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cel_arena a;
		cel_value v;
		cel_error err;
		cJSON *claims;
		cel_program *prog;
		int rc;

		memset(&v, 0x5a, sizeof(v));
		memset(&err, 0, sizeof(err));
		cel_arena_init(&a, buf, sizeof(buf));
		rc = run(&bad[i], &v, &err, &a, &claims, &prog);
		cJSON_Delete(claims);
		cel_program_free(prog);
		if (rc != bad[i].code)
			fail_msg("%s: got %d (%s: %s), want %d (%s)", bad[i].expr, rc, cel_strerror(rc), err.msg,
				 bad[i].code, cel_strerror(bad[i].code));
		if (strstr(err.msg, bad[i].msg) == NULL)
			fail_msg("%s: message '%s' lacks '%s'", bad[i].expr, err.msg, bad[i].msg);
		if (bad[i].pos >= 0 && err.pos != (size_t)bad[i].pos)
			fail_msg("%s: position %zu, want %ld (%s)", bad[i].expr, err.pos, bad[i].pos, err.msg);
		assert_int_equal(err.code, rc);
		assert_int_equal(v.kind, 0x5a); /* out-param untouched */
	}
}

/* The kinds the API server's checker would give, for its "must evaluate to bool" rule and our callers. */
static void test_result_types(void **state)
{
	static const struct {
		const char *expr;
		unsigned vars;
		cel_kind kind, elem;
	} t[] = {
		{ "claims.username + ':x'", CEL_VAR_CLAIMS, CEL_STRING, CEL_DYN },
		{ "claims.sub", CEL_VAR_CLAIMS, CEL_DYN, CEL_DYN },
		{ "claims.groups.map(g, 'oidc:' + g)", CEL_VAR_CLAIMS, CEL_LIST, CEL_STRING },
		{ "claims.roles.split(',')", CEL_VAR_CLAIMS, CEL_LIST, CEL_STRING },
		{ "[claims.a, claims.b]", CEL_VAR_CLAIMS, CEL_LIST, CEL_DYN },
		{ "claims.exp - claims.nbf <= 86400", CEL_VAR_CLAIMS, CEL_BOOL, CEL_DYN },
		{ "has(claims.x) ? claims.x : false", CEL_VAR_CLAIMS, CEL_DYN, CEL_DYN },
		{ "claims.?email_verified.orValue(true)", CEL_VAR_CLAIMS, CEL_DYN, CEL_DYN },
		{ "claims.?email_verified.orValue(true) == true", CEL_VAR_CLAIMS, CEL_BOOL, CEL_DYN },
		{ "user.groups", CEL_VAR_USER, CEL_LIST, CEL_STRING },
		{ "user.extra", CEL_VAR_USER, CEL_MAP, CEL_LIST },
		{ "user.groups.all(g, !g.startsWith('system:'))", CEL_VAR_USER, CEL_BOOL, CEL_DYN },
		{ "user.groups.filter(g, g != '')", CEL_VAR_USER, CEL_LIST, CEL_STRING },
		{ "size(user.username)", CEL_VAR_USER, CEL_INT, CEL_DYN },
		{ "1.5 * 2.0", 0, CEL_DOUBLE, CEL_DYN },
		{ "null", 0, CEL_NULL, CEL_DYN },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		cel_program *prog = NULL;
		cel_error err;
		cel_kind k, e;

		if (compile_exact(t[i].expr, t[i].vars, &prog, &err) != 0)
			fail_msg("%s: %s", t[i].expr, err.msg);
		cel_result_type(prog, &k, &e);
		if (k != t[i].kind || (k == CEL_LIST && e != t[i].elem) || (k == CEL_MAP && e != t[i].elem))
			fail_msg("%s: type %s(%s), want %s(%s)", t[i].expr, cel_kind_name(k), cel_kind_name(e),
				 cel_kind_name(t[i].kind), cel_kind_name(t[i].elem));
		assert_int_equal(cel_program_vars(prog), t[i].vars);
		cel_program_free(prog);
	}
}

/* claims expressions see only claims, user rules only user, as in the API server's two environments. */
static void test_variable_sets(void **state)
{
	cel_program *prog = NULL;
	cel_error err;

	(void)state;
	assert_int_equal(compile_exact("user.username", CEL_VAR_CLAIMS, &prog, &err), CEL_E_TYPE);
	assert_non_null(strstr(err.msg, "undeclared reference to 'user'"));
	assert_int_equal(compile_exact("claims.sub", CEL_VAR_USER, &prog, &err), CEL_E_TYPE);
	assert_non_null(strstr(err.msg, "undeclared reference to 'claims'"));
	assert_null(prog);
	assert_int_equal(compile_exact("claims.email + ''", CEL_VAR_CLAIMS, &prog, &err), 0);
	assert_true(cel_program_uses_claim(prog, "email"));
	assert_false(cel_program_uses_claim(prog, "email_verified"));
	cel_program_free(prog);
	assert_int_equal(compile_exact("claims.?email_verified.orValue(true) && claims['email'] != ''", CEL_VAR_CLAIMS,
				       &prog, &err), 0);
	assert_true(cel_program_uses_claim(prog, "email"));
	assert_true(cel_program_uses_claim(prog, "email_verified"));
	assert_false(cel_program_uses_claim(prog, "emai"));
	cel_program_free(prog);
}

static void test_limits(void **state)
{
	static uint8_t buf[1 << 20];
	char *expr = malloc(CEL_MAX_EXPR_LEN + 2);
	cel_program *prog = NULL;
	cel_error err;
	cel_arena a;
	cel_value v;
	cel_env env;
	cJSON *big, *arr;
	size_t o;

	(void)state;
	assert_non_null(expr);
	/* length: exactly the cap compiles, one more byte does not */
	memset(expr, ' ', CEL_MAX_EXPR_LEN);
	expr[0] = '1';
	expr[CEL_MAX_EXPR_LEN] = 0;
	assert_int_equal(compile_exact(expr, CEL_VAR_CLAIMS, &prog, &err), 0);
	cel_program_free(prog);
	prog = NULL;
	expr[CEL_MAX_EXPR_LEN] = ' ';
	expr[CEL_MAX_EXPR_LEN + 1] = 0;
	assert_int_equal(compile_exact(expr, CEL_VAR_CLAIMS, &prog, &err), CEL_E_LIMIT);
	assert_non_null(strstr(err.msg, "longer than 4096"));
	/* nesting: parentheses, unary chains, long operator chains and list nesting all hit the depth cap */
	{
		static const char *const units[][3] = { { "(", "1", ")" }, { "!", "true", "" }, { "[", "1", "]" },
						       { "", "1", "+1" } };

		for (size_t u = 0; u < 4; u++) {
			o = 0;
			for (int k = 0; k < 200; k++)
				o += (size_t)snprintf(expr + o, 64, "%s", units[u][0]);
			o += (size_t)snprintf(expr + o, 64, "%s", units[u][1]);
			for (int k = 0; k < 200; k++)
				o += (size_t)snprintf(expr + o, 64, "%s", units[u][2]);
			assert_int_equal(compile_exact(expr, CEL_VAR_CLAIMS, &prog, &err), CEL_E_LIMIT);
			assert_non_null(strstr(err.msg, "nested deeper"));
		}
	}
	/* comprehensions nest at most CEL_MAX_SCOPES deep */
	o = 0;
	for (int k = 0; k <= CEL_MAX_SCOPES; k++)
		o += (size_t)snprintf(expr + o, 64, "[1].all(x%d, ", k);
	o += (size_t)snprintf(expr + o, 64, "true");
	for (int k = 0; k <= CEL_MAX_SCOPES; k++)
		o += (size_t)snprintf(expr + o, 64, ")");
	assert_int_equal(compile_exact(expr, CEL_VAR_CLAIMS, &prog, &err), CEL_E_LIMIT);
	free(expr);

	/* 10,000 groups map fine within the default budget; nested over them exceeds it and stops */
	big = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(big, "groups");
	for (int k = 0; k < 10000; k++) {
		char g[16];

		snprintf(g, sizeof(g), "g%d", k);
		cJSON_AddItemToArray(arr, cJSON_CreateString(g));
	}
	memset(&env, 0, sizeof(env));
	env.claims = big;
	assert_int_equal(compile_exact("claims.groups.map(g, 'oidc:' + g)", CEL_VAR_CLAIMS, &prog, &err), 0);
	cel_arena_init(&a, buf, sizeof(buf));
	assert_int_equal(cel_eval(prog, &env, &v, &a), 0);
	assert_int_equal(cel_list_len(&v), 10000);
	/* a small arena: exhaustion is an error, not a crash */
	cel_arena_init(&a, buf, 4096);
	assert_int_equal(cel_eval(prog, &env, &v, &a), CEL_E_NOMEM);
	assert_non_null(strstr(a.err.msg, "arena exhausted"));
	cel_program_free(prog);
	assert_int_equal(compile_exact("claims.groups.all(a, !claims.groups.exists(b, b == 'none'))", CEL_VAR_CLAIMS,
				       &prog, &err), 0);
	cel_arena_init(&a, buf, sizeof(buf));
	assert_int_equal(cel_eval(prog, &env, &v, &a), CEL_E_LIMIT);
	assert_non_null(strstr(a.err.msg, "cost limit"));
	/* the budget is the caller's */
	env.max_steps = 50;
	cel_program_free(prog);
	assert_int_equal(compile_exact("claims.groups.exists(g, g == 'nope')", CEL_VAR_CLAIMS, &prog, &err), 0);
	assert_int_equal(cel_eval(prog, &env, &v, &a), CEL_E_LIMIT);
	/* an absorbed error never hides a resource error: false && <budget exhausted> is still exhausted */
	cel_program_free(prog);
	assert_int_equal(compile_exact("claims.groups.all(a, !claims.groups.exists(b, b == 'none')) && false", CEL_VAR_CLAIMS,
				       &prog, &err), 0);
	env.max_steps = 0;
	assert_int_equal(cel_eval(prog, &env, &v, &a), CEL_E_LIMIT);
	cel_program_free(prog);
	cJSON_Delete(big);
}

/* The arena is reusable after a reset, and an evaluation without claims or user is an error, not a crash. */
static void test_arena_and_env(void **state)
{
	uint8_t buf[256];
	cel_program *prog = NULL;
	cel_error err;
	cel_arena a;
	cel_value v;
	cel_env env;
	cJSON *c = cJSON_Parse("{\"u\":\"x\"}");

	(void)state;
	memset(&env, 0, sizeof(env));
	assert_int_equal(compile_exact("claims.u + claims.u", CEL_VAR_CLAIMS, &prog, &err), 0);
	cel_arena_init(&a, buf, sizeof(buf));
	assert_int_equal(cel_eval(prog, &env, &v, &a), CEL_E_EVAL);
	assert_non_null(strstr(a.err.msg, "no claims"));
	env.claims = c;
	for (int k = 0; k < 1000; k++) {
		cel_arena_reset(&a);
		assert_int_equal(cel_eval(prog, &env, &v, &a), 0);
	}
	assert_int_equal(v.u.s.len, 2);
	assert_true(a.used <= 8);
	cel_arena_init(&a, NULL, 100);
	assert_int_equal(cel_eval(prog, &env, &v, &a), CEL_E_NOMEM);
	assert_int_equal(cel_eval(NULL, &env, &v, &a), CEL_E_ARG);
	cel_program_free(prog);
	assert_int_equal(compile_exact("user.username", CEL_VAR_USER, &prog, &err), 0);
	assert_int_equal(cel_eval(prog, &env, &v, &a), CEL_E_EVAL);
	cel_program_free(prog);
	cJSON_Delete(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_result_types),
		cmocka_unit_test(test_variable_sets),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_arena_and_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
