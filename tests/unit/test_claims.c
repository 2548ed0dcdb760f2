/*
 * test_claims.c — the Kubernetes OIDC claim rules for the --oidc-* flags: one row per rule, each naming the
 * verdict and, when accepted, the user and first group it must map to. Each payload is signed (ES256, a key
 * made here) and judged by a verifier built from the flags, i.e. through the one path a token takes: the flags
 * become a one-issuer AuthenticationConfiguration (flagcfg.h), checked by claims_check_std() and mapped by
 * mapping_apply(). The rows marked "API server" pin where the former flags-only rules (claims_map) differed
 * from the API server's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "flagcfg.h"
#include "jose_test.h"
#include "jwks.h"
#include "jwt.h"
#include "verifier.h"

#define ISS "https://issuer.example"
#define NOW 1700000000
#define B "\"iss\":\"" ISS "\",\"aud\":\"kube\",\"exp\":1700003600"

static const struct row {
	const char *name, *payload;
	const char *uclaim, *uprefix, *gclaim, *gprefix;
	int expect;
	const char *user, *group0;
} rows[] = {
	{ "default prefix", "{" B ",\"sub\":\"alice\"}", NULL, NULL, NULL, NULL, 0, ISS "#alice", NULL },
	{ "prefix dash = none", "{" B ",\"sub\":\"alice\"}", NULL, "-", NULL, NULL, 0, "alice", NULL },
	{ "literal prefix", "{" B ",\"sub\":\"alice\"}", NULL, "oidc:", NULL, NULL, 0, "oidc:alice", NULL },
	{ "email claim: no default prefix", "{" B ",\"email\":\"a@x\"}", "email", NULL, NULL, NULL, 0, "a@x", NULL },
	{ "email_verified true", "{" B ",\"email\":\"a@x\",\"email_verified\":true}", "email", NULL, NULL, NULL, 0,
	  "a@x", NULL },
	{ "email_verified false", "{" B ",\"email\":\"a@x\",\"email_verified\":false}", "email", NULL, NULL, NULL,
	  VERIFY_E_CLAIMS, NULL, NULL },
	{ "email_verified string", "{" B ",\"email\":\"a@x\",\"email_verified\":\"true\"}", "email", NULL, NULL, NULL,
	  VERIFY_E_CLAIMS, NULL, NULL },
	{ "email_verified ignored for other claims", "{" B ",\"sub\":\"a\",\"email_verified\":false}", NULL, "-",
	  NULL, NULL, 0, "a", NULL },
	{ "iss mismatch", "{\"iss\":\"https://issuer.example/\",\"aud\":\"kube\",\"exp\":1700003600,\"sub\":\"a\"}",
	  NULL, NULL, NULL, NULL, VERIFY_E_ISSUER, NULL, NULL },
	{ "iss missing", "{\"aud\":\"kube\",\"exp\":1700003600,\"sub\":\"a\"}", NULL, NULL, NULL, NULL,
	  VERIFY_E_ISSUER, NULL, NULL },
	{ "aud array", "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"kube\"],\"exp\":1700003600,\"sub\":\"a\"}", NULL, "-",
	  NULL, NULL, 0, "a", NULL },
	{ "aud array with number", "{\"iss\":\"" ISS "\",\"aud\":[\"kube\",1],\"exp\":1700003600,\"sub\":\"a\"}", NULL,
	  NULL, NULL, NULL, VERIFY_E_AUDIENCE, NULL, NULL },
	{ "aud prefix only", "{\"iss\":\"" ISS "\",\"aud\":\"kubex\",\"exp\":1700003600,\"sub\":\"a\"}", NULL, NULL,
	  NULL, NULL, VERIFY_E_AUDIENCE, NULL, NULL },
	{ "exp missing", "{\"iss\":\"" ISS "\",\"aud\":\"kube\",\"sub\":\"a\"}", NULL, NULL, NULL, NULL,
	  VERIFY_E_EXPIRED, NULL, NULL },
	{ "exp string", "{\"iss\":\"" ISS "\",\"aud\":\"kube\",\"exp\":\"1700003600\",\"sub\":\"a\"}", NULL, NULL,
	  NULL, NULL, VERIFY_E_EXPIRED, NULL, NULL },
	{ "exp one second ago", "{\"iss\":\"" ISS "\",\"aud\":\"kube\",\"exp\":1699999999,\"sub\":\"a\"}", NULL,
	  NULL, NULL, NULL, VERIFY_E_EXPIRED, NULL, NULL },
	/* the API server's int64 conversion makes these expired (found by tests/security's attack corpus) */
	{ "exp 1e19", "{\"iss\":\"" ISS "\",\"aud\":\"kube\",\"exp\":1e19,\"sub\":\"a\"}", NULL, NULL, NULL, NULL,
	  VERIFY_E_EXPIRED, NULL, NULL },
	{ "exp 1e300", "{\"iss\":\"" ISS "\",\"aud\":\"kube\",\"exp\":1e300,\"sub\":\"a\"}", NULL, NULL, NULL,
	  NULL, VERIFY_E_EXPIRED, NULL, NULL },
	{ "exp 2^63 as integer", "{\"iss\":\"" ISS "\",\"aud\":\"kube\",\"exp\":9223372036854775808,\"sub\":\"a\"}",
	  NULL, NULL, NULL, NULL, VERIFY_E_EXPIRED, NULL, NULL },
	{ "exp year 2200 still valid", "{\"iss\":\"" ISS "\",\"aud\":\"kube\",\"exp\":7258118400,\"sub\":\"a\"}",
	  NULL, "-", NULL, NULL, 0, "a", NULL },
	{ "exp fractional now", "{\"iss\":\"" ISS "\",\"aud\":\"kube\",\"exp\":1700000000.5,\"sub\":\"a\"}", NULL,
	  "-", NULL, NULL, 0, "a", NULL },
	{ "nbf 60s ahead", "{" B ",\"nbf\":1700000060,\"sub\":\"a\"}", NULL, "-", NULL, NULL, 0, "a", NULL },
	{ "nbf 61s ahead", "{" B ",\"nbf\":1700000061,\"sub\":\"a\"}", NULL, NULL, NULL, NULL, VERIFY_E_NOT_YET,
	  NULL, NULL },
	{ "nbf null ignored", "{" B ",\"nbf\":null,\"sub\":\"a\"}", NULL, "-", NULL, NULL, 0, "a", NULL },
	{ "nbf string", "{" B ",\"nbf\":\"0\",\"sub\":\"a\"}", NULL, NULL, NULL, NULL, VERIFY_E_CLAIMS, NULL, NULL },
	{ "iat ignored", "{" B ",\"iat\":\"garbage\",\"sub\":\"a\"}", NULL, "-", NULL, NULL, 0, "a", NULL },
	{ "username missing", "{" B "}", NULL, NULL, NULL, NULL, VERIFY_E_CLAIMS, NULL, NULL },
	{ "username array", "{" B ",\"sub\":[\"a\"]}", NULL, NULL, NULL, NULL, VERIFY_E_CLAIMS, NULL, NULL },
	{ "username null", "{" B ",\"sub\":null}", NULL, NULL, NULL, NULL, VERIFY_E_CLAIMS, NULL, NULL },
	{ "username empty", "{" B ",\"sub\":\"\"}", NULL, NULL, NULL, NULL, VERIFY_E_CLAIMS, NULL, NULL },
	{ "username CR", "{" B ",\"sub\":\"a\\rb\"}", NULL, NULL, NULL, NULL, VERIFY_E_IDENTITY, NULL, NULL },
	{ "username DEL", "{" B ",\"sub\":\"a\\u007fb\"}", NULL, NULL, NULL, NULL, VERIFY_E_IDENTITY, NULL, NULL },
	/* Go's header parser (kube-apiserver) strips surrounding SP/HTAB: these would arrive as other names, so they
	 * are refused, before the reserved guard (" system:admin" must never become system:admin) */
	{ "username leading space system:", "{" B ",\"sub\":\" system:admin\"}", NULL, "-", NULL, NULL,
	  VERIFY_E_IDENTITY, NULL, NULL },
	{ "username trailing spaces", "{" B ",\"sub\":\"bob  \"}", NULL, "-", NULL, NULL, VERIFY_E_IDENTITY, NULL,
	  NULL },
	{ "username leading tab", "{" B ",\"sub\":\"\\tbob\"}", NULL, "-", NULL, NULL, VERIFY_E_IDENTITY, NULL,
	  NULL },
	{ "username inner tab", "{" B ",\"sub\":\"b\\tob\"}", NULL, "-", NULL, NULL, VERIFY_E_IDENTITY, NULL,
	  NULL },
	{ "username inner space kept", "{" B ",\"sub\":\"bob smith\"}", NULL, "-", NULL, NULL, 0, "bob smith",
	  NULL },
	{ "username trailing space after a prefix", "{" B ",\"sub\":\"bob \"}", NULL, "oidc:", NULL, NULL,
	  VERIFY_E_IDENTITY, NULL, NULL },
	{ "username space-only", "{" B ",\"sub\":\" \"}", NULL, "-", NULL, NULL, VERIFY_E_IDENTITY, NULL, NULL },
	{ "groups array + prefix", "{" B ",\"sub\":\"a\",\"g\":[\"dev\",\"ops\"]}", NULL, "-", "g", "oidc:", 0, "a",
	  "oidc:dev" },
	{ "groups string", "{" B ",\"sub\":\"a\",\"g\":\"dev\"}", NULL, "-", "g", NULL, 0, "a", "dev" },
	{ "groups null", "{" B ",\"sub\":\"a\",\"g\":null}", NULL, "-", "g", NULL, 0, "a", NULL },
	{ "groups absent", "{" B ",\"sub\":\"a\"}", NULL, "-", "g", NULL, 0, "a", NULL },
	{ "groups number", "{" B ",\"sub\":\"a\",\"g\":1}", NULL, NULL, "g", NULL, VERIFY_E_CLAIMS, NULL, NULL },
	{ "groups object", "{" B ",\"sub\":\"a\",\"g\":{}}", NULL, NULL, "g", NULL, VERIFY_E_CLAIMS, NULL, NULL },
	{ "groups null member", "{" B ",\"sub\":\"a\",\"g\":[\"x\",null]}", NULL, NULL, "g", NULL, VERIFY_E_CLAIMS,
	  NULL, NULL },
	{ "groups LF", "{" B ",\"sub\":\"a\",\"g\":[\"x\\ny\"]}", NULL, NULL, "g", NULL, VERIFY_E_IDENTITY, NULL,
	  NULL },
	{ "group leading space system:masters", "{" B ",\"sub\":\"a\",\"g\":[\"dev\",\" system:masters\"]}", NULL,
	  "-", "g", NULL, VERIFY_E_IDENTITY, NULL, NULL },
	{ "group string with a leading space", "{" B ",\"sub\":\"a\",\"g\":\" system:masters\"}",
	  NULL, "-", "g", NULL, VERIFY_E_IDENTITY, NULL, NULL },
	{ "group trailing tab", "{" B ",\"sub\":\"a\",\"g\":[\"dev\\t\"]}", NULL, "-", "g", NULL,
	  VERIFY_E_IDENTITY, NULL, NULL },
	{ "group space with a prefix", "{" B ",\"sub\":\"a\",\"g\":[\"dev \"]}", NULL, "-", "g", "oidc:",
	  VERIFY_E_IDENTITY, NULL, NULL },
	{ "group inner space kept", "{" B ",\"sub\":\"a\",\"g\":[\"dev ops\"]}", NULL, "-", "g", NULL, 0, "a",
	  "dev ops" },
	{ "system: user", "{" B ",\"sub\":\"system:admin\"}", NULL, "-", NULL, NULL, VERIFY_E_RESERVED, NULL, NULL },
	{ "system: group", "{" B ",\"sub\":\"a\",\"g\":[\"system:masters\"]}", NULL, NULL, "g", NULL,
	  VERIFY_E_RESERVED, NULL, NULL },
	{ "system: group made safe by prefix", "{" B ",\"sub\":\"a\",\"g\":[\"system:masters\"]}", NULL, "-", "g",
	  "oidc:", 0, "a", "oidc:system:masters" },
};

static EVP_PKEY *key;      /* signs every row's payload */
static jwks_keyset *keys; /* its public half */

static int setup(void **state)
{
	char *jwk, set[4600], err[200];

	(void)state;
	key = tj_keygen("P-256");
	jwk = tj_jwk(key, "k1", NULL);
	snprintf(set, sizeof(set), "{\"keys\":[%s]}", jwk);
	free(jwk);
	if (jwks_parse((const uint8_t *)set, strlen(set), &keys, err, sizeof(err)) != 0)
		fail_msg("jwks_parse: %s", err);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	jwks_keyset_release(keys);
	EVP_PKEY_free(key);
	return 0;
}

/* A verifier for the flags (client ID "kube") and the verdict on payload, signed; *d the detail. */
static int judge_flags(const verifier_config *c, const char *payload, const identity **id, const char **d)
{
	char *tok = tj_token(key, "ES256", "{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload, NULL);
	verifier *v = NULL;
	char err[300];
	int rc;

	if (verifier_create_with_keys(c, keys, &v, err, sizeof(err)) != 0)
		fail_msg("verifier_create_with_keys: %s", err);
	rc = verifier_verify_uncached(v, (const uint8_t *)tok, strlen(tok), NOW, id, d);
	if (rc == VERIFY_OK)
		assert_true(verifier_has_key(v, (*id)->key_fp)); /* the key that verified it is recorded */
	verifier_destroy(v);
	free(tok);
	return rc;
}

static verifier_config flags(const char *uclaim, const char *uprefix, const char *gclaim, const char *gprefix)
{
	verifier_config c;

	memset(&c, 0, sizeof(c));
	c.oidc.issuer_url = ISS;
	c.client_id = "kube";
	c.signing_algs = "ES256";
	c.username_claim = uclaim;
	c.username_prefix = uprefix;
	c.groups_claim = gclaim;
	c.groups_prefix = gprefix;
	return c;
}

static void test_row(void **state)
{
	const struct row *r = *state;
	verifier_config c = flags(r->uclaim, r->uprefix, r->gclaim, r->gprefix);
	const identity *id = NULL;
	const char *d = NULL;
	int rc;

	rc = judge_flags(&c, r->payload, &id, &d);
	if (rc != r->expect)
		fail_msg("%s: got %d (%s), want %d", r->name, rc, d ? d : "", r->expect);
	if (rc == 0) {
		assert_string_equal(id->user, r->user);
		if (r->group0)
			assert_string_equal(id->groups[0], r->group0);
		else
			assert_int_equal(id->ngroups, 0);
		identity_release(id);
	} else {
		assert_non_null(d);
	}
}

/*
 * Where the former flags-only rules (claims_map) and the AuthenticationConfiguration rules disagreed, and the API
 * server's behaviour now holds for the flags too. Wording: the detail is the API server's error text.
 */
static const struct pin {
	const char *name, *payload, *uclaim, *gclaim;
	const char *req_claim, *req_value;
	int expect;
	const char *detail;
} pins[] = {
	{ "API server: username claim missing", "{" B "}", NULL, NULL, NULL, NULL, VERIFY_E_CLAIMS,
	  "oidc: parse username claims \"sub\": claim not present" },
	{ "API server: username claim not a string", "{" B ",\"sub\":7}", NULL, NULL, NULL, NULL, VERIFY_E_CLAIMS,
	  "oidc: parse username claims \"sub\": not a string" },
	{ "API server: email_verified false", "{" B ",\"email\":\"a@x\",\"email_verified\":false}", "email", NULL, NULL,
	  NULL, VERIFY_E_CLAIMS, "oidc: email not verified" },
	/* claims_map said "email not verified"; Go fails to unmarshal a string into a bool first */
	{ "API server: email_verified a string", "{" B ",\"email\":\"a@x\",\"email_verified\":\"true\"}", "email",
	  NULL, NULL, NULL, VERIFY_E_CLAIMS, "oidc: parse 'email_verified' claim: not a boolean" },
	/* null unmarshals into Go's false: present and not true */
	{ "API server: email_verified null", "{" B ",\"email\":\"a@x\",\"email_verified\":null}", "email", NULL, NULL,
	  NULL, VERIFY_E_CLAIMS, "oidc: email not verified" },
	{ "API server: groups claim a number", "{" B ",\"sub\":\"a\",\"g\":1}", NULL, "g", NULL, NULL, VERIFY_E_CLAIMS,
	  "oidc: parse groups claim \"g\": not a non-empty string or an array of them" },
	{ "API server: required claim absent", "{" B ",\"sub\":\"a\"}", NULL, NULL, "hd", "x.org", VERIFY_E_CLAIMS,
	  "oidc: required claim hd not present in ID token" },
	{ "API server: required claim not a string", "{" B ",\"sub\":\"a\",\"hd\":1}", NULL, NULL, "hd", "1",
	  VERIFY_E_CLAIMS, "oidc: required claim hd value does not match" },
	{ "API server: required claim empty value", "{" B ",\"sub\":\"a\",\"hd\":\"\"}", NULL, NULL, "hd", "", VERIFY_OK,
	  NULL },
};

static void test_pin(void **state)
{
	const struct pin *r = *state;
	verifier_config c = flags(r->uclaim, "-", r->gclaim, NULL);
	const identity *id = NULL;
	const char *d = NULL;
	int rc;

	if (r->req_claim != NULL) {
		c.required_claims[0][0] = r->req_claim;
		c.required_claims[0][1] = r->req_value;
		c.nrequired_claims = 1;
	}
	rc = judge_flags(&c, r->payload, &id, &d);
	if (rc != r->expect)
		fail_msg("%s: got %d (%s), want %d", r->name, rc, d ? d : "", r->expect);
	if (rc == VERIFY_OK)
		identity_release(id);
	else
		assert_string_equal(d, r->detail);
}

/* --oidc-required-claim is a Go map in the API server: a claim named twice keeps its last value (claims_map
 * required both, so no token could pass). */
static void test_required_claim_twice(void **state)
{
	verifier_config c = flags(NULL, "-", NULL, NULL);
	const identity *id = NULL;
	const char *d = NULL;

	(void)state;
	c.required_claims[0][0] = "hd";
	c.required_claims[0][1] = "old.org";
	c.required_claims[1][0] = "hd";
	c.required_claims[1][1] = "x.org";
	c.nrequired_claims = 2;
	assert_int_equal(judge_flags(&c, "{" B ",\"sub\":\"a\",\"hd\":\"x.org\"}", &id, &d), VERIFY_OK);
	identity_release(id);
	assert_int_equal(judge_flags(&c, "{" B ",\"sub\":\"a\",\"hd\":\"old.org\"}", &id, &d), VERIFY_E_CLAIMS);
	assert_string_equal(d, "oidc: required claim hd value does not match");
}

/* The API server takes any number of groups; the agent refuses more than --max-groups (up to
 * CONFIG_MAX_GROUPS_LIMIT, 4096) in the handler with a 403. The claim rules must hand every such count on
 * (claims_map did; the mapping stopped at 1024 with a 401). */
static void test_many_groups_reach_the_handler(void **state)
{
	verifier_config c = flags(NULL, "-", "g", NULL);
	const size_t n = 4000;
	char *p = malloc(n * 8 + 128), *o;
	const identity *id = NULL;
	const char *d = NULL;

	(void)state;
	assert_non_null(p);
	o = p + sprintf(p, "{" B ",\"sub\":\"a\",\"g\":[");
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "%s\"g%zu\"", i ? "," : "", i);
	strcpy(o, "]}");
	c.max_token_bytes = 65536;
	if (judge_flags(&c, p, &id, &d) != VERIFY_OK)
		fail_msg("4000 groups refused: %s", d ? d : "");
	assert_int_equal(id->ngroups, n);
	assert_string_equal(id->groups[n - 1], "g3999");
	identity_release(id);
	free(p);
}

/* flagcfg_build: the JWTAuthenticator kube-apiserver makes of the same flags (authentication.go). */
static void test_flagcfg_mapping(void **state)
{
	const char *req[3][2] = { { "hd", "old.org" }, { "tier", "gold" }, { "hd", "x.org" } };
	flagcfg f = { .issuer_url = ISS, .client_id = "kube" };
	authcfg_config *c = NULL;
	char err[300] = "";

	(void)state;
	assert_int_equal(flagcfg_build(&f, &c, err, sizeof(err)), 0);
	assert_int_equal(c->njwt, 1);
	assert_string_equal(c->jwt[0].url, ISS);
	assert_int_equal(c->jwt[0].naudiences, 1);
	assert_string_equal(c->jwt[0].audiences[0], "kube");
	assert_string_equal(c->jwt[0].username.claim, "sub");
	assert_string_equal(c->jwt[0].username.prefix, ISS "#"); /* unset prefix, claim not email */
	assert_null(c->jwt[0].groups.claim);
	assert_int_equal(c->jwt[0].nclaim_rules, 0);
	authcfg_free(c);

	f.username_claim = "email";
	f.username_prefix = "";
	f.groups_claim = "g";
	f.required = (const char *const (*)[2])req;
	f.nrequired = 3;
	assert_int_equal(flagcfg_build(&f, &c, err, sizeof(err)), 0);
	assert_string_equal(c->jwt[0].username.prefix, "");      /* email: no default prefix */
	assert_string_equal(c->jwt[0].groups.claim, "g");
	assert_string_equal(c->jwt[0].groups.prefix, "");        /* --oidc-groups-prefix unset */
	assert_int_equal(c->jwt[0].nclaim_rules, 2);              /* a Go map: hd once, its last value */
	assert_string_equal(c->jwt[0].claim_rules[0].claim, "tier");
	assert_string_equal(c->jwt[0].claim_rules[1].claim, "hd");
	assert_string_equal(c->jwt[0].claim_rules[1].required_value, "x.org");
	authcfg_free(c);

	f.username_claim = "sub";
	f.username_prefix = "-";
	f.groups_prefix = "oidc:";
	assert_int_equal(flagcfg_build(&f, &c, err, sizeof(err)), 0);
	assert_string_equal(c->jwt[0].username.prefix, "");      /* "-": none */
	assert_string_equal(c->jwt[0].groups.prefix, "oidc:");
	authcfg_free(c);

	/* the API server validates the converted flags like a file: an issuer URL with a fragment, or with user info
	 * (which --oidc-issuer-url's own check let through before), is refused */
	f.issuer_url = ISS "#x";
	assert_int_equal(flagcfg_build(&f, &c, err, sizeof(err)), AUTHCFG_E_INVALID);
	assert_non_null(strstr(err, "jwt[0].issuer.url"));
	f.issuer_url = "https://u@issuer.example";
	assert_int_equal(flagcfg_build(&f, &c, err, sizeof(err)), AUTHCFG_E_INVALID);
	assert_non_null(strstr(err, "username or password"));
	f.issuer_url = ISS;
	f.client_id = NULL;
	assert_int_equal(flagcfg_build(&f, &c, err, sizeof(err)), AUTHCFG_E_INVALID);
}

/* strict JSON: what cJSON alone would let through */
static void test_strict_json(void **state)
{
	static const char *const bad[] = {
		"{\"a\":1,\"a\":2}",            /* duplicate */
		"{\"iss\":1,\"ISS\":2}",        /* Go folds case */
		"{\"sub\":1,\"\xc5\xbfub\":2}", /* U+017F folds to s */
		"{\"a\":\"x\\u0000y\"}",        /* NUL escape would cut the string */
		"{\"a\":\"x\ty\"}",             /* raw control char in a string */
		"{\"a\":\"\xff\"}",             /* invalid UTF-8 */
		"{\"a\":\"\xc0\xaf\"}",         /* overlong */
		"{\"a\":\"\xed\xa0\x80\"}",     /* surrogate */
		"{\"a\":01}",                   /* leading zero */
		"{\"a\":1.}",                   /* bare dot */
		"{\"a\":1}x",                   /* trailing garbage */
		"[1]",                          /* not an object */
		"{\"a\":'x'}",
		"",
	};
	static const char *const good[] = { "{}", " {\"a\":[1,-0.5e+3,true,null,\"\\u00e9\xc3\xa9\"]} \n" };
	cJSON *p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (jsonstrict_parse((const uint8_t *)bad[i], strlen(bad[i]), &p) != JSONSTRICT_E_SYNTAX)
			fail_msg("accepted bad JSON #%zu", i);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(jsonstrict_parse((const uint8_t *)good[i], strlen(good[i]), &p), 0);
		cJSON_Delete(p);
	}
}

int main(void)
{
	const size_t npins = sizeof(pins) / sizeof(pins[0]);
	struct CMUnitTest tests[sizeof(rows) / sizeof(rows[0]) + sizeof(pins) / sizeof(pins[0]) + 4];
	size_t n = sizeof(rows) / sizeof(rows[0]);

	memset(tests, 0, sizeof(tests));
	for (size_t i = 0; i < n; i++) {
		tests[i].name = rows[i].name;
		tests[i].test_func = test_row;
		tests[i].initial_state = (void *)&rows[i];
	}
	for (size_t i = 0; i < npins; i++, n++) {
		tests[n].name = pins[i].name;
		tests[n].test_func = test_pin;
		tests[n].initial_state = (void *)&pins[i];
	}
	tests[n].name = "API server: a required claim named twice keeps its last value";
	tests[n++].test_func = test_required_claim_twice;
	tests[n].name = "API server: thousands of groups reach the handler";
	tests[n++].test_func = test_many_groups_reach_the_handler;
	tests[n].name = "flagcfg: the flags as kube-apiserver's JWTAuthenticator";
	tests[n++].test_func = test_flagcfg_mapping;
	tests[n].name = "strict JSON";
	tests[n].test_func = test_strict_json;
	return _cmocka_run_group_tests("claims", tests, n + 1, setup, teardown);
}
