/* test_impersonate.c — the client's Impersonate-* lines (req.hdrs_bin) read as kube-apiserver's impersonation
 * filter reads them (table: each header list with the verdict and items it expects), the SubjectAccessReview
 * bodies, and the API server's 403 wording. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "impersonate.h"
#include "spop_codec.h"

/* req.hdrs_bin of the header lines "name\0value\0…" (an empty name ends the list) */
static size_t hdrs_bin(uint8_t *out, size_t cap, const char *const *lines, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < 2 * n + 2; i++) {
		const char *s = i < 2 * n ? lines[i] : "";
		size_t len = strlen(s);

		assert_true(cap - o >= len + SPOP_VARINT_MAX);
		o += spop_varint_encode(len, out + o);
		memcpy(out + o, s, len);
		o += len;
	}
	return o;
}

static int parse(const char *const *lines, size_t n, imp_request **r, char *err, size_t errlen)
{
	static uint8_t buf[65536];
	size_t len = hdrs_bin(buf, sizeof(buf), lines, n);

	return imp_parse(buf, len, r, err, errlen);
}

#define L(...) ((const char *const[]){__VA_ARGS__}), (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *) / 2)

static void test_items_in_the_api_servers_order(void **state)
{
	imp_request *r = NULL;
	char err[200];

	(void)state;
	assert_int_equal(parse(L("host", "x", "Impersonate-Group", "a,b", "impersonate-uid", "u-1",
				 "Impersonate-Extra-Example.com%2FTenant", "t1", "IMPERSONATE-USER", "carol",
				 "impersonate-group", "dev", "authorization", "Bearer x", "Impersonate-Extra-scopes", "r",
				 "Impersonate-Extra-bad%zz", "v"), &r, err, sizeof(err)), IMP_OK);
	assert_string_equal(r->user, "carol");
	assert_string_equal(r->uid, "u-1");
	assert_int_equal(r->ngroups, 2);
	assert_string_equal(r->groups[0], "a,b"); /* one line, one value: never split on commas */
	assert_string_equal(r->groups[1], "dev");
	assert_int_equal(r->nextra, 3);
	assert_string_equal(r->extra[0].key, "example.com/tenant"); /* lower-cased, then percent-decoded */
	assert_string_equal(r->extra[1].key, "scopes");
	assert_string_equal(r->extra[2].key, "bad%zz");             /* does not decode: kept, as the API server does */
	assert_int_equal(r->nitems, 7);
	assert_int_equal(r->items[0].kind, IMP_USER);
	assert_int_equal(r->items[1].kind, IMP_GROUP);
	assert_int_equal(r->items[2].kind, IMP_GROUP);
	assert_int_equal(r->items[3].kind, IMP_EXTRA);
	assert_string_equal(r->items[3].name, "t1");
	assert_int_equal(r->items[6].kind, IMP_UID);
	imp_free(r);

	assert_int_equal(parse(L("Impersonate-User", "system:serviceaccount:ci:deploy.er"), &r, err, sizeof(err)), IMP_OK);
	assert_int_equal(r->items[0].kind, IMP_SA);
	assert_string_equal(r->items[0].ns, "ci");
	assert_string_equal(r->items[0].name, "deploy.er");
	imp_free(r);
	/* not a valid service-account name: an ordinary user named so */
	assert_int_equal(parse(L("Impersonate-User", "system:serviceaccount:CI:x"), &r, err, sizeof(err)), IMP_OK);
	assert_int_equal(r->items[0].kind, IMP_USER);
	imp_free(r);
	assert_int_equal(parse(L("Impersonate-User", "system:serviceaccount:ci:x:y"), &r, err, sizeof(err)), IMP_OK);
	assert_int_equal(r->items[0].kind, IMP_USER);
	imp_free(r);
}

static void test_refused_shapes(void **state)
{
	const struct {
		const char *const *lines;
		size_t n;
		const char *err;
	} t[] = {
		{L("Impersonate-Group", "dev", "Impersonate-Group", "a,b"),
		 "requested [{Group  dev    } {Group  a,b    }] without impersonating a user"},
		{L("Impersonate-Uid", "u"), "without impersonating a user"},
		{L("Impersonate-Extra-k", "v"), "without impersonating a user"},
		{L("Impersonate-User", "a", "Impersonate-User", "b"), "more than one Impersonate-User"},
		{L("Impersonate-User", "a", "Impersonate-Uid", "1", "Impersonate-Uid", "2"), "more than one Impersonate-Uid"},
		{L("Impersonate-User", "a", "Impersonate-Groups", "x"), "not an impersonation header"},
		{L("Impersonate-User", ""), "empty value"},
		{L("Impersonate-User", "a", "Impersonate-Group", "x\001"), "control character"},
		{L("Impersonate-User", "a", "Impersonate-Extra-%00", "v"), "key"},
		{L("Host", "x"), "no impersonation header"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		imp_request *r = NULL;
		char err[200] = "";

		if (parse(t[i].lines, t[i].n, &r, err, sizeof(err)) != IMP_E_BAD || strstr(err, t[i].err) == NULL)
			fail_msg("case %zu: %s", i, err);
		assert_null(r);
	}
}

static void test_bounds_and_malformed(void **state)
{
	static const char *lines[2 * (IMP_MAX_ITEMS + 1)];
	static uint8_t buf[8192];
	imp_request *r = NULL;
	char err[200];
	size_t len;

	(void)state;
	lines[0] = "Impersonate-User";
	lines[1] = "a";
	for (size_t i = 1; i <= IMP_MAX_ITEMS; i++) {
		lines[2 * i] = "Impersonate-Group";
		lines[2 * i + 1] = "g";
	}
	/* 64 items fit; 65 are refused, never cut */
	assert_int_equal(parse(lines, IMP_MAX_ITEMS, &r, err, sizeof(err)), IMP_OK);
	assert_int_equal(r->nitems, IMP_MAX_ITEMS);
	imp_free(r);
	r = NULL;
	assert_int_equal(parse(lines, IMP_MAX_ITEMS + 1, &r, err, sizeof(err)), IMP_E_BAD);
	assert_non_null(strstr(err, "more than 64"));
	/* a list that does not end with the empty pair, or with bytes after it */
	len = hdrs_bin(buf, sizeof(buf), (const char *const[]){"Impersonate-User", "a"}, 1);
	for (size_t cut = 0; cut < len; cut++) {
		assert_int_equal(imp_parse(buf, cut, &r, err, sizeof(err)), IMP_E_BAD);
		assert_null(r);
	}
	buf[len] = 0;
	assert_int_equal(imp_parse(buf, len + 1, &r, err, sizeof(err)), IMP_E_BAD);
	assert_int_equal(imp_parse(buf, len, &r, err, sizeof(err)), IMP_OK);
	imp_free(r);
}

static void test_sar_body(void **state)
{
	static const char *const groups[] = {"dev", "ops"};
	static const identity_extra extra[] = {{"scopes", "a"}, {"scopes", "b"}, {"x/y", "z"}};
	identity *who = identity_build("alice", "u-a", groups, 2, extra, 3, 0, 0);
	imp_item sa = {IMP_SA, "deployer", "ci", NULL}, ex = {IMP_EXTRA, "read", NULL, "example.com/tenant"};
	char *s;
	cJSON *d, *spec, *ra;

	(void)state;
	assert_non_null(who);
	s = imp_sar_body(who, &sa);
	d = cJSON_Parse(s);
	spec = cJSON_GetObjectItem(d, "spec");
	ra = cJSON_GetObjectItem(spec, "resourceAttributes");
	assert_string_equal(cJSON_GetObjectItem(d, "kind")->valuestring, "SubjectAccessReview");
	assert_string_equal(cJSON_GetObjectItem(d, "apiVersion")->valuestring, "authorization.k8s.io/v1");
	assert_string_equal(cJSON_GetObjectItem(ra, "verb")->valuestring, "impersonate");
	assert_string_equal(cJSON_GetObjectItem(ra, "resource")->valuestring, "serviceaccounts");
	assert_string_equal(cJSON_GetObjectItem(ra, "namespace")->valuestring, "ci");
	assert_string_equal(cJSON_GetObjectItem(ra, "name")->valuestring, "deployer");
	assert_string_equal(cJSON_GetObjectItem(ra, "group")->valuestring, "");
	assert_null(cJSON_GetObjectItem(ra, "version"));
	assert_string_equal(cJSON_GetObjectItem(spec, "user")->valuestring, "alice");
	assert_string_equal(cJSON_GetObjectItem(spec, "uid")->valuestring, "u-a");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(spec, "groups")), 3);
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(spec, "groups"), 2)->valuestring,
			    "system:authenticated");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "extra"), "scopes")), 2);
	cJSON_Delete(d);
	free(s);
	s = imp_sar_body(who, &ex);
	d = cJSON_Parse(s);
	ra = cJSON_GetObjectItem(cJSON_GetObjectItem(d, "spec"), "resourceAttributes");
	assert_string_equal(cJSON_GetObjectItem(ra, "resource")->valuestring, "userextras");
	assert_string_equal(cJSON_GetObjectItem(ra, "subresource")->valuestring, "example.com/tenant");
	assert_string_equal(cJSON_GetObjectItem(ra, "group")->valuestring, "authentication.k8s.io");
	assert_string_equal(cJSON_GetObjectItem(ra, "version")->valuestring, "v1");
	assert_null(cJSON_GetObjectItem(ra, "namespace"));
	cJSON_Delete(d);
	free(s);
	identity_release(who);
}

static void test_forbidden_wording(void **state)
{
	identity *who = identity_build("alice", NULL, NULL, 0, NULL, 0, 0, 0);
	identity *odd = identity_build("a<b>&\"c", NULL, NULL, 0, NULL, 0, 0, 0);
	char m[512];

	(void)state;
	imp_forbidden(who, &(imp_item){IMP_USER, "carol", NULL, NULL}, "", m, sizeof(m));
	assert_string_equal(m, "users \"carol\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in "
			       "API group \"\" at the cluster scope");
	imp_forbidden(who, &(imp_item){IMP_SA, "d", "ci", NULL}, "no", m, sizeof(m));
	assert_string_equal(m, "serviceaccounts \"d\" is forbidden: User \"alice\" cannot impersonate resource "
			       "\"serviceaccounts\" in API group \"\" in the namespace \"ci\": no");
	imp_forbidden(who, &(imp_item){IMP_EXTRA, "v", NULL, "x/y"}, NULL, m, sizeof(m));
	assert_string_equal(m, "userextras.authentication.k8s.io \"v\" is forbidden: User \"alice\" cannot impersonate "
			       "resource \"userextras/x/y\" in API group \"authentication.k8s.io\" at the cluster scope");
	imp_forbidden(who, &(imp_item){IMP_UID, "1", NULL, NULL}, NULL, m, sizeof(m));
	assert_string_equal(m, "uids.authentication.k8s.io \"1\" is forbidden: User \"alice\" cannot impersonate "
			       "resource \"uids\" in API group \"authentication.k8s.io\" at the cluster scope");
	/* %q escapes; the API server's sanitizer rewrites & < > in the "User … cannot" part only */
	imp_forbidden(odd, &(imp_item){IMP_GROUP, "g<\"", NULL, NULL}, NULL, m, sizeof(m));
	assert_string_equal(m, "groups \"g<\\\"\" is forbidden: User \"a&lt;b&gt;&amp;\\\"c\" cannot impersonate "
			       "resource \"groups\" in API group \"\" at the cluster scope");
	/* cut at the buffer, NUL-terminated */
	imp_forbidden(who, &(imp_item){IMP_USER, "carol", NULL, NULL}, "", m, 10);
	assert_string_equal(m, "users \"ca");
	identity_release(who);
	identity_release(odd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_items_in_the_api_servers_order),
		cmocka_unit_test(test_refused_shapes),
		cmocka_unit_test(test_bounds_and_malformed),
		cmocka_unit_test(test_sar_body),
		cmocka_unit_test(test_forbidden_wording),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
