/*
 * test_mapping.c — AuthenticationConfiguration claim mappings and rules (mapping.h): a table of configurations
 * (YAML, through authcfg_parse) and payloads, each row with the verdict it expects — the mapped user, groups,
 * uid and extra, or the refusal and the API server's error text; and a table of configurations whose
 * expressions are refused at load time, each with the error line it expects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapping.h"

#define HEAD                                                                                                   \
	"apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n"   \
	"    url: https://issuer.example\n    audiences: [kos]\n"

static authcfg_config *load(const char *body)
{
	char doc[4096], err[512] = "";
	authcfg_config *c = NULL;
	int n = snprintf(doc, sizeof(doc), "%s%s", HEAD, body);

	assert_true(n > 0 && (size_t)n < sizeof(doc));
	if (authcfg_parse((const uint8_t *)doc, (size_t)n, &c, err, sizeof(err)) != 0)
		fail_msg("fixture does not parse: %s\n%s", err, doc);
	return c;
}

static void join_groups(const identity *id, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = 0;
	for (size_t i = 0; i < id->ngroups; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "," : "", id->groups[i]);
}

static void join_extra(const identity *id, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = 0;
	for (size_t i = 0; i < id->nextra; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s=%s", i ? "," : "", id->extra[i].key, id->extra[i].value);
}

typedef struct row {
	const char *name;
	const char *cfg;      /* after the issuer block */
	const char *payload;
	int rc;               /* expected mapping_err */
	const char *user, *groups, *uid, *extra; /* on success ("" = none) */
	const char *detail;   /* on failure: a substring of the detail */
} row;

#define CM "  claimMappings:\n"
#define USUB "    username: {claim: sub, prefix: 'oidc:'}\n"

static const row rows[] = {
	{"username claim with prefix", CM USUB, "{\"sub\":\"jane\"}", 0, "oidc:jane", "", "", "", NULL},
	{"username claim empty prefix", CM "    username: {claim: sub, prefix: ''}\n", "{\"sub\":\"jane\"}", 0, "jane",
	 "", "", "", NULL},
	{"username claim missing", CM USUB, "{\"email\":\"x\"}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "oidc: parse username claims \"sub\": claim not present"},
	{"username claim not a string", CM USUB, "{\"sub\":5}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "parse username claims \"sub\""},
	{"username claim empty (stricter)", CM USUB, "{\"sub\":\"\"}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "username is empty"},
	{"email claim, email_verified true", CM "    username: {claim: email, prefix: ''}\n",
	 "{\"email\":\"j@x.io\",\"email_verified\":true}", 0, "j@x.io", "", "", "", NULL},
	{"email claim, email_verified absent", CM "    username: {claim: email, prefix: ''}\n",
	 "{\"email\":\"j@x.io\"}", 0, "j@x.io", "", "", "", NULL},
	{"email claim, email_verified false", CM "    username: {claim: email, prefix: ''}\n",
	 "{\"email\":\"j@x.io\",\"email_verified\":false}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "oidc: email not verified"},
	{"email claim, email_verified a string", CM "    username: {claim: email, prefix: ''}\n",
	 "{\"email\":\"j@x.io\",\"email_verified\":\"true\"}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "parse 'email_verified' claim"},
	{"username expression", CM "    username: {expression: '\"cel:\" + claims.sub'}\n", "{\"sub\":\"jane\"}", 0,
	 "cel:jane", "", "", "", NULL},
	{"username expression not a string at run time", CM "    username: {expression: 'claims.n'}\n",
	 "{\"n\":3}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL, "username claim expression must return a string"},
	{"username expression no such key", CM "    username: {expression: 'claims.nope'}\n", "{\"sub\":\"x\"}",
	 MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "oidc: error evaluating username claim expression: no such key: nope"},
	{"groups claim array with prefix", CM USUB "    groups: {claim: groups, prefix: 'g:'}\n",
	 "{\"sub\":\"a\",\"groups\":[\"dev\",\"ops\"]}", 0, "oidc:a", "g:dev,g:ops", "", "", NULL},
	{"groups claim string", CM USUB "    groups: {claim: role, prefix: ''}\n", "{\"sub\":\"a\",\"role\":\"admin\"}",
	 0, "oidc:a", "admin", "", "", NULL},
	{"groups claim absent", CM USUB "    groups: {claim: groups, prefix: ''}\n", "{\"sub\":\"a\"}", 0, "oidc:a",
	 "", "", "", NULL},
	{"groups claim null", CM USUB "    groups: {claim: groups, prefix: ''}\n", "{\"sub\":\"a\",\"groups\":null}",
	 0, "oidc:a", "", "", "", NULL},
	{"groups claim holds a number", CM USUB "    groups: {claim: groups, prefix: ''}\n",
	 "{\"sub\":\"a\",\"groups\":[\"x\",1]}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL, "parse groups claim"},
	{"groups expression list with map and filter",
	 CM USUB "    groups: {expression: 'claims.roles.filter(r, r != \"\").map(r, \"role:\" + r)'}\n",
	 "{\"sub\":\"a\",\"roles\":[\"x\",\"\",\"y\"]}", 0, "oidc:a", "role:x,role:y", "", "", NULL},
	{"groups expression drops empty strings", CM USUB "    groups: {expression: 'claims.roles'}\n",
	 "{\"sub\":\"a\",\"roles\":[\"x\",\"\"]}", 0, "oidc:a", "x", "", "", NULL},
	{"groups expression split string", CM USUB "    groups: {expression: 'claims.roles.split(\",\")'}\n",
	 "{\"sub\":\"a\",\"roles\":\"user,admin\"}", 0, "oidc:a", "user,admin", "", "", NULL},
	{"groups expression number list", CM USUB "    groups: {expression: 'claims.ns'}\n",
	 "{\"sub\":\"a\",\"ns\":[1,2]}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "oidc: error evaluating group claim expression: expression must return a string or a list of strings"},
	{"uid claim", CM USUB "    uid: {claim: oid}\n", "{\"sub\":\"a\",\"oid\":\"u-1\"}", 0, "oidc:a", "", "u-1",
	 "", NULL},
	{"uid claim missing", CM USUB "    uid: {claim: oid}\n", "{\"sub\":\"a\"}", MAPPING_E_CLAIM, NULL, NULL, NULL,
	 NULL, "oidc: parse uid claim \"oid\": claim not present"},
	{"uid expression", CM USUB "    uid: {expression: 'claims.sub + \"-uid\"'}\n", "{\"sub\":\"a\"}", 0, "oidc:a",
	 "", "a-uid", "", NULL},
	{"uid expression not a string", CM USUB "    uid: {expression: 'claims.n'}\n", "{\"sub\":\"a\",\"n\":1}",
	 MAPPING_E_CLAIM, NULL, NULL, NULL, NULL, "uid claim expression must return a string"},
	{"extra string and list, empty omitted",
	 CM USUB "    extra:\n    - {key: example.com/tenant, valueExpression: claims.tid}\n"
		 "    - {key: example.com/teams, valueExpression: claims.teams}\n"
		 "    - {key: example.com/none, valueExpression: '\"\"'}\n"
		 "    - {key: example.com/null, valueExpression: 'null'}\n",
	 "{\"sub\":\"a\",\"tid\":\"t1\",\"teams\":[\"blue\",\"green\"]}", 0, "oidc:a", "", "",
	 "example.com/tenant=t1,example.com/teams=blue,example.com/teams=green", NULL},
	{"extra wrong type", CM USUB "    extra:\n    - {key: example.com/n, valueExpression: claims.n}\n",
	 "{\"sub\":\"a\",\"n\":1}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "oidc: error evaluating extra claim expression: claims.n: expression must return a string or a list"},
	{"claim rule requiredValue ok", "  claimValidationRules:\n  - {claim: hd, requiredValue: example.com}\n" CM USUB,
	 "{\"sub\":\"a\",\"hd\":\"example.com\"}", 0, "oidc:a", "", "", "", NULL},
	{"claim rule requiredValue missing",
	 "  claimValidationRules:\n  - {claim: hd, requiredValue: example.com}\n" CM USUB, "{\"sub\":\"a\"}",
	 MAPPING_E_CLAIM, NULL, NULL, NULL, NULL, "oidc: required claim hd not present in ID token"},
	{"claim rule requiredValue different",
	 "  claimValidationRules:\n  - {claim: hd, requiredValue: example.com}\n" CM USUB,
	 "{\"sub\":\"a\",\"hd\":\"evil.com\"}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "oidc: required claim hd value does not match"},
	{"claim rule expression false with message",
	 "  claimValidationRules:\n  - {expression: 'claims.tier == \"gold\"', message: need gold}\n" CM USUB,
	 "{\"sub\":\"a\",\"tier\":\"silver\"}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "oidc: error evaluating claim validation expression: validation expression 'claims.tier == \"gold\"' "
	 "failed: need gold"},
	{"claim rule expression true",
	 "  claimValidationRules:\n  - {expression: 'has(claims.tier) && claims.tier == \"gold\"'}\n" CM USUB,
	 "{\"sub\":\"a\",\"tier\":\"gold\"}", 0, "oidc:a", "", "", "", NULL},
	{"claim rule expression error", "  claimValidationRules:\n  - {expression: 'claims.tier == \"gold\"'}\n" CM USUB,
	 "{\"sub\":\"a\"}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "oidc: error evaluating claim validation expression: no such key: tier"},
	{"user rule false", CM USUB "    groups: {claim: groups, prefix: ''}\n"
			    "  userValidationRules:\n  - {expression: '!(\"banned\" in user.groups)', message: banned}\n",
	 "{\"sub\":\"a\",\"groups\":[\"banned\"]}", MAPPING_E_CLAIM, NULL, NULL, NULL, NULL,
	 "oidc: error evaluating user info validation rule: validation expression '!(\"banned\" in user.groups)' "
	 "failed: banned"},
	{"user rule sees uid and extra",
	 CM USUB "    uid: {claim: oid}\n    extra:\n    - {key: example.com/t, valueExpression: claims.t}\n"
		 "  userValidationRules:\n  - {expression: 'user.uid == \"u1\" && user.extra[\"example.com/t\"] == [\"x\"]"
		 " && user.username.startsWith(\"oidc:\")'}\n",
	 "{\"sub\":\"a\",\"oid\":\"u1\",\"t\":\"x\"}", 0, "oidc:a", "", "u1", "example.com/t=x", NULL},
	{"reserved user refused", CM "    username: {claim: sub, prefix: ''}\n", "{\"sub\":\"system:admin\"}",
	 MAPPING_E_RESERVED, NULL, NULL, NULL, NULL, "system:"},
	{"reserved group from an expression refused", CM USUB "    groups: {expression: '[\"system:masters\"]'}\n",
	 "{\"sub\":\"a\"}", MAPPING_E_RESERVED, NULL, NULL, NULL, NULL, "system:"},
	{"control byte in an extra value", CM USUB "    extra:\n    - {key: example.com/t, valueExpression: claims.t}\n",
	 "{\"sub\":\"a\",\"t\":\"x\\ny\"}", MAPPING_E_IDENTITY, NULL, NULL, NULL, NULL, "control character"},
	/* Go's header parser strips surrounding SP/HTAB upstream: refused, before the reserved guard */
	{"group with a leading space from an expression", CM USUB "    groups: {expression: '[\"dev\", \" system:masters\"]'}\n",
	 "{\"sub\":\"a\"}", MAPPING_E_IDENTITY, NULL, NULL, NULL, NULL, "group 2 of 2: leading or trailing space"},
	{"group with a leading space from a claim", CM USUB "    groups: {claim: groups, prefix: ''}\n",
	 "{\"sub\":\"a\",\"groups\":[\" system:masters\"]}", MAPPING_E_IDENTITY, NULL, NULL, NULL, NULL,
	 "leading or trailing space"},
	{"user with a leading space", CM "    username: {claim: sub, prefix: ''}\n", "{\"sub\":\" system:admin\"}",
	 MAPPING_E_IDENTITY, NULL, NULL, NULL, NULL, "username: leading or trailing space"},
	{"user with a trailing space from an expression", CM "    username: {expression: 'claims.sub + \" \"'}\n",
	 "{\"sub\":\"bob\"}", MAPPING_E_IDENTITY, NULL, NULL, NULL, NULL, "username: leading or trailing space"},
	{"uid with a trailing tab", CM USUB "    uid: {claim: oid}\n", "{\"sub\":\"a\",\"oid\":\"u1\\t\"}",
	 MAPPING_E_IDENTITY, NULL, NULL, NULL, NULL, "uid: leading or trailing space"},
	{"extra value with a leading space", CM USUB "    extra:\n    - {key: example.com/t, valueExpression: claims.t}\n",
	 "{\"sub\":\"a\",\"t\":\" x\"}", MAPPING_E_IDENTITY, NULL, NULL, NULL, NULL,
	 "extra \"example.com/t\": leading or trailing space"},
	{"inner spaces kept", CM USUB "    groups: {claim: groups, prefix: ''}\n",
	 "{\"sub\":\"a\",\"groups\":[\"dev ops\"]}", 0, "oidc:a", "dev ops", "", "", NULL},
};

static void test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const row *r = &rows[i];
		authcfg_config *c = load(r->cfg);
		mapping *m = NULL;
		char err[512] = "", buf[512];
		cJSON *p = cJSON_Parse(r->payload);
		identity *id = NULL;
		const char *detail = NULL;
		int rc;

		assert_non_null(p);
		if (mapping_compile(&c->jwt[0], &m, err, sizeof(err)) != 0)
			fail_msg("%s: compile: %s", r->name, err);
		rc = mapping_apply(m, p, 100, 7, false, &id, &detail, NULL);
		if (rc != r->rc)
			fail_msg("%s: rc %d, want %d (%s)", r->name, rc, r->rc, detail ? detail : "");
		if (rc == 0) {
			assert_string_equal(id->user, r->user);
			join_groups(id, buf, sizeof(buf));
			assert_string_equal(buf, r->groups);
			assert_string_equal(id->uid ? id->uid : "", r->uid);
			join_extra(id, buf, sizeof(buf));
			assert_string_equal(buf, r->extra);
			assert_int_equal(id->exp, 100);
			assert_int_equal(id->key_fp, 7);
			identity_release(id);
		} else if (detail == NULL || strstr(detail, r->detail) == NULL) {
			fail_msg("%s: detail \"%s\", want \"%s\"", r->name, detail ? detail : "(null)", r->detail);
		}
		cJSON_Delete(p);
		mapping_free(m);
		authcfg_free(c);
	}
}

typedef struct bad {
	const char *name;
	const char *cfg;
	const char *err; /* substring of the load-time error */
} bad;

static const bad bads[] = {
	{"syntax error", CM "    username: {expression: 'claims.sub +'}\n",
	 "jwt[0].claimMappings.username.expression: Invalid value: \"claims.sub +\": compilation failed:"},
	{"unsupported function", CM "    username: {expression: 'claims.sub.matches(\"x\")'}\n",
	 "jwt[0].claimMappings.username.expression: Invalid value: \"claims.sub.matches(\\\"x\\\")\": "
	 "compilation failed: function 'matches' is outside the supported CEL subset"},
	{"user variable in a claims expression", CM "    username: {expression: 'user.username'}\n",
	 "compilation failed:"},
	{"claims variable in a user rule", CM USUB "  userValidationRules:\n  - {expression: 'claims.sub == \"x\"'}\n",
	 "jwt[0].userValidationRules[0].expression: Invalid value"},
	{"claim rule not boolean", "  claimValidationRules:\n  - {expression: 'claims.sub'}\n" CM USUB,
	 "jwt[0].claimValidationRules[0].expression: Invalid value: \"claims.sub\": must evaluate to bool"},
	{"user rule not boolean", CM USUB "  userValidationRules:\n  - {expression: 'user.username'}\n",
	 "jwt[0].userValidationRules[0].expression: Invalid value: \"user.username\": must evaluate to bool"},
	{"username expression of type bool", CM "    username: {expression: 'has(claims.sub)'}\n",
	 "jwt[0].claimMappings.username.expression: Invalid value: \"has(claims.sub)\": must evaluate to string"},
	{"groups expression of type int", CM USUB "    groups: {expression: '1 + 2'}\n",
	 "jwt[0].claimMappings.groups.expression: Invalid value: \"1 + 2\": must evaluate to a string or a list"},
	{"email without email_verified", CM "    username: {expression: 'claims.email'}\n",
	 "jwt[0].claimMappings.username.expression: Invalid value: \"claims.email\": claims.email_verified must be "
	 "used in claimMappings.username.expression or claimMappings.extra[*].valueExpression or "
	 "claimValidationRules[*].expression when claims.email is used in claimMappings.username.expression"},
	{"extra expression syntax", CM USUB "    extra:\n    - {key: example.com/x, valueExpression: 'claims.['}\n",
	 "jwt[0].claimMappings.extra[0].valueExpression: Invalid value"},
};

static void test_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		authcfg_config *c = load(bads[i].cfg);
		mapping *m = NULL;
		char err[1024] = "";
		int rc = mapping_compile(&c->jwt[0], &m, err, sizeof(err));

		if (rc != MAPPING_E_COMPILE)
			fail_msg("%s: rc %d, want MAPPING_E_COMPILE", bads[i].name, rc);
		if (strstr(err, bads[i].err) == NULL)
			fail_msg("%s: error \"%s\", want \"%s\"", bads[i].name, err, bads[i].err);
		assert_null(m);
		authcfg_free(c);
	}
}

static void test_email_verified_elsewhere(void **state)
{
	static const char *const ok[] = {
		CM "    username: {expression: 'claims.email_verified ? claims.email : \"\"'}\n",
		"  claimValidationRules:\n  - {expression: 'claims.?email_verified.orValue(true) == true'}\n"
		CM "    username: {expression: 'claims.email'}\n",
		CM "    username: {expression: 'claims.email'}\n"
		   "    extra:\n    - {key: example.com/v, valueExpression: 'string(claims.email_verified)'}\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		authcfg_config *c = load(ok[i]);
		mapping *m = NULL;
		char err[1024] = "";

		if (mapping_compile(&c->jwt[0], &m, err, sizeof(err)) != 0)
			fail_msg("case %zu refused: %s", i, err);
		mapping_free(m);
		authcfg_free(c);
	}
}

static void trace_line(void *ud, const char *text)
{
	size_t *n = ud;

	assert_null(strstr(text, "SECRET"));
	(*n)++;
}

static void test_trace(void **state)
{
	authcfg_config *c = load("  claimValidationRules:\n  - {claim: hd, requiredValue: example.com}\n"
				 "  - {expression: 'claims.n > 1'}\n" CM USUB
				 "  userValidationRules:\n  - {expression: 'user.username != \"\"'}\n");
	cJSON *p = cJSON_Parse("{\"sub\":\"a\",\"hd\":\"example.com\",\"n\":2,\"x\":\"SECRET\"}");
	mapping *m = NULL;
	identity *id = NULL;
	size_t n = 0;
	mapping_trace t = {trace_line, &n};

	(void)state;
	assert_int_equal(mapping_compile(&c->jwt[0], &m, NULL, 0), 0);
	assert_int_equal(mapping_apply(m, p, 1, 1, false, &id, NULL, &t), 0);
	/* username, groups, uid, 2 claim rules, 1 user rule */
	assert_int_equal(n, 6);
	identity_release(id);
	cJSON_Delete(p);
	mapping_free(m);
	authcfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_email_verified_elsewhere),
		cmocka_unit_test(test_trace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
