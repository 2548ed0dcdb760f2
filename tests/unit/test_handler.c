/* test_handler.c — the contract's variables for every verdict, with a fake verifier and a recording sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "handler.h"
#include "log.h"
#include "handler_fake.h"

/* ---- recording sink ---------------------------------------------------------------------------------------- */

#define MAXVARS 96

typedef struct rec {
	size_t n;
	char name[MAXVARS][16];
	bool is_int[MAXVARS];
	int64_t i[MAXVARS];
	char s[MAXVARS][512];
	size_t fail_after; /* 0 = never; else the (fail_after)th set fails with NOSPACE */
} rec;

static int rec_put(rec *r, const char *name)
{
	if (r->fail_after != 0 && r->n + 1 >= r->fail_after)
		return SPOP_E_NOSPACE;
	assert_true(r->n < MAXVARS);
	snprintf(r->name[r->n], sizeof(r->name[0]), "%s", name);
	return 0;
}

static int rec_str(void *ud, const char *name, const char *s, size_t len)
{
	rec *r = ud;

	if (rec_put(r, name) != 0)
		return SPOP_E_NOSPACE;
	assert_true(len < sizeof(r->s[0]));
	memcpy(r->s[r->n], s, len);
	r->s[r->n][len] = '\0';
	r->is_int[r->n] = false;
	r->n++;
	return 0;
}

/* process-scope variables are recorded as "proc.<name>" */
static int rec_proc(void *ud, const char *name, const char *s, size_t len)
{
	char full[16];

	snprintf(full, sizeof(full), "proc.%s", name);
	return rec_str(ud, full, s, len);
}

static int rec_int(void *ud, const char *name, int64_t v)
{
	rec *r = ud;

	if (rec_put(r, name) != 0)
		return SPOP_E_NOSPACE;
	r->is_int[r->n] = true;
	r->i[r->n] = v;
	r->n++;
	return 0;
}

static int find(const rec *r, const char *name)
{
	for (size_t k = 0; k < r->n; k++)
		if (strcmp(r->name[k], name) == 0)
			return (int)k;
	return -1;
}

/* ---- fake verifier ----------------------------------------------------------------------------------------- */

static bool fake_ready_v = true;

static int fake_verify(void *ctx, const uint8_t *tok, size_t len, int64_t now, const identity **id,
		       const char **detail)
{
	char t[64];
	static const char *const groups2[] = {"dev", "ops"};
	const char *many[70];
	static char names[70][8];

	(void)ctx;
	(void)now;
	if (len >= sizeof(t))
		return VERIFY_E_TOO_LARGE;
	memcpy(t, tok, len);
	t[len] = '\0';
	if (strcmp(t, "good") == 0) {
		*id = identity_build("alice", NULL, groups2, 2, NULL, 0, now + 60, 1);
		return VERIFY_OK;
	}
	if (strcmp(t, "uid") == 0) {
		identity_extra ex[2] = {{"scopes", "read"}, {"weird key/x", "v"}};

		*id = identity_build("bob", "u-123", NULL, 0, ex, 2, now + 60, 1);
		return VERIFY_OK;
	}
	if (strcmp(t, "many") == 0 || strcmp(t, "max") == 0) {
		size_t n = t[1] == 'a' && t[2] == 'n' ? 65 : 64;

		for (size_t i = 0; i < n; i++) {
			snprintf(names[i], sizeof(names[i]), "g%zu", i);
			many[i] = names[i];
		}
		*id = identity_build("carol", NULL, many, n, NULL, 0, now + 60, 1);
		return VERIFY_OK;
	}
	if (strcmp(t, "lists") == 0) { /* nine values for one key: one more than a slot has lines */
		identity_extra ex[9];

		for (size_t i = 0; i < 9; i++)
			ex[i] = (identity_extra){"example.com/teams", names[i]};
		for (size_t i = 0; i < 9; i++)
			snprintf(names[i], sizeof(names[i]), "t%zu", i);
		*id = identity_build("dave", NULL, NULL, 0, ex, t[5] == '\0' ? 9 : 8, now + 60, 1);
		return VERIFY_OK;
	}
	if (strcmp(t, "list8") == 0) {
		identity_extra ex[8];

		for (size_t i = 0; i < 8; i++) {
			snprintf(names[i], sizeof(names[i]), "t%zu", i);
			ex[i] = (identity_extra){"example.com/teams", names[i]};
		}
		*id = identity_build("dave", NULL, NULL, 0, ex, 8, now + 60, 1);
		return VERIFY_OK;
	}
	if (strcmp(t, "ctluser") == 0) {
		*id = identity_build("eve\r\nX-Evil: 1", NULL, NULL, 0, NULL, 0, now + 60, 1);
		return VERIFY_OK;
	}
	if (strcmp(t, "ctlgroup") == 0) {
		static const char *const g[] = {"ok", "bad\x01"};

		*id = identity_build("eve", NULL, g, 2, NULL, 0, now + 60, 1);
		return VERIFY_OK;
	}
	if (strcmp(t, "expired") == 0)
		return VERIFY_E_EXPIRED;
	if (strcmp(t, "claims") == 0) {
		*detail = "missing claim \"email\"";
		return VERIFY_E_CLAIMS;
	}
	if (strcmp(t, "notready") == 0)
		return VERIFY_E_NOT_READY;
	if (strcmp(t, "internal") == 0)
		return VERIFY_E_INTERNAL;
	if (strcmp(t, "weird") == 0)
		return -99;
	return VERIFY_E_SIGNATURE;
}

static bool fake_ready(void *ctx)
{
	(void)ctx;
	return fake_ready_v;
}

/* ---- fixture ----------------------------------------------------------------------------------------------- */

static config_kv static_extras[] = {{"cluster", "prod"}};

static fx *fx_new(bool with_sa, bool client_ip, size_t nextras)
{
	handler_config hc;
	fx *f = fx_base_new("/tmp/kos-th-XXXXXX", with_sa, &hc);

	hc.vops.verify = fake_verify;
	hc.vops.ready = fake_ready;
	hc.client_ip = client_ip;
	hc.extras = static_extras;
	hc.nextras = nextras;
	assert_int_equal(handler_create(&hc, &f->h), 0);
	return f;
}

static void fx_free(fx *f)
{
	handler_destroy(f->h);
	fx_base_free(f);
}

/* ---- table: one request each, the status and reason it must produce ---------------------------------------- */

typedef struct tcase {
	const char *auth;   /* NULL: no Authorization */
	bool imp;
	bool no_msg;
	bool bad_msg;
	int status;
	const char *reason; /* NULL for allow */
} tcase;

static const tcase cases[] = {
	{"Bearer good", false, false, false, HANDLER_ALLOW, NULL},
	{"bearer good", false, false, false, HANDLER_ALLOW, NULL},
	{"BEARER good", false, false, false, HANDLER_ALLOW, NULL},
	{"  Bearer good \t", false, false, false, HANDLER_ALLOW, NULL},
	{NULL, false, false, false, HANDLER_UNAUTHENTICATED, "missing bearer token"},
	{"", false, false, false, HANDLER_UNAUTHENTICATED, "missing bearer token"},
	{"   ", false, false, false, HANDLER_UNAUTHENTICATED, "missing bearer token"},
	{"Basic YWxpY2U6cHc=", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer ", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer  good", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer good extra", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer\tgood", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearergood", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer go\x01od", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	/* the token's bytes are looked at after the verifier refused it: the verdict still names the header, not
	 * what the verifier said (here "token too large", "invalid signature"), and still wins over impersonation */
	{"Bearer good\x7f", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer good \x01", false, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer 0123456789012345678901234567890123456789012345678901234567890123456789\x1f", false, false, false,
	 HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer go od", true, false, false, HANDLER_UNAUTHENTICATED, "malformed Authorization header"},
	{"Bearer bad", false, false, false, HANDLER_UNAUTHENTICATED, "invalid signature"},
	{"Bearer expired", false, false, false, HANDLER_UNAUTHENTICATED, "token expired"},
	{"Bearer claims", false, false, false, HANDLER_UNAUTHENTICATED, "invalid claims"},
	{"Bearer weird", false, false, false, HANDLER_UNAVAILABLE, "internal error"},
	{"Bearer notready", false, false, false, HANDLER_UNAVAILABLE, "issuer keys not loaded"},
	{"Bearer internal", false, false, false, HANDLER_UNAVAILABLE, "internal error"},
	/* 401 wins over 403: impersonation only matters after a valid token */
	{"Bearer good", true, false, false, HANDLER_IMPERSONATION, "impersonation requests are disabled"},
	{"Bearer expired", true, false, false, HANDLER_UNAUTHENTICATED, "token expired"},
	{NULL, true, false, false, HANDLER_UNAUTHENTICATED, "missing bearer token"},
	{"Bearer many", false, false, false, HANDLER_TOO_MANY_GROUPS, "too many groups"},
	{"Bearer many", true, false, false, HANDLER_IMPERSONATION, "impersonation requests are disabled"},
	{"Bearer max", false, false, false, HANDLER_ALLOW, NULL},
	{"Bearer ctluser", false, false, false, HANDLER_UNAUTHENTICATED, "identity cannot be forwarded unchanged"},
	{"Bearer ctlgroup", false, false, false, HANDLER_UNAUTHENTICATED, "identity cannot be forwarded unchanged"},
	{"Bearer good", false, true, false, HANDLER_UNAVAILABLE, "no kos-auth message"},
	{"Bearer good", false, false, true, HANDLER_UNAVAILABLE, "malformed kos-auth message"},
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const tcase *c = &cases[i];
		fx *f = fx_new(true, false, 0);
		handler_input in = input_auth(c->auth);
		handler_sink k;
		rec r;
		int st, ri;

		memset(&r, 0, sizeof(r));
		k = (handler_sink){rec_str, rec_int, rec_proc, &r};
		in.imp = c->imp;
		in.have_msg = !c->no_msg;
		in.bad_msg = c->bad_msg;
		st = handler_process(f->h, &in, 1700000000, &k);
		if (st != c->status)
			fail_msg("case %zu (%s): status %d, want %d", i, c->auth ? c->auth : "(null)", st, c->status);
		/* status is always set, always last */
		assert_true(r.n > 0);
		assert_string_equal(r.name[r.n - 1], "status");
		assert_true(r.is_int[r.n - 1]);
		assert_int_equal(r.i[r.n - 1], c->status);
		ri = find(&r, "reason");
		if (c->reason == NULL) {
			assert_int_equal(ri, -1);
			assert_true(find(&r, "user") >= 0);
			assert_true(find(&r, "proc.sa") >= 0); /* the table's inputs carry no sv */
		} else {
			if (ri < 0)
				fail_msg("case %zu: no reason", i);
			assert_string_equal(r.s[ri], c->reason);
			/* a refusal never carries an identity or the service-account token */
			assert_int_equal(find(&r, "user"), -1);
			assert_int_equal(find(&r, "proc.sa"), -1);
			assert_int_equal(find(&r, "sv"), -1);
			assert_int_equal(find(&r, "g0"), -1);
		}
		fx_free(f);
	}
}

static void test_allow_variables(void **state)
{
	fx *f = fx_new(true, true, 1);
	handler_input in = input_auth("Bearer good");
	rec r;
	handler_sink k = {rec_str, rec_int, rec_proc, &r};
	int i;

	(void)state;
	memset(&r, 0, sizeof(r));
	in.xk = (const uint8_t *)"other|CLUSTER";
	in.xk_len = strlen("other|CLUSTER");
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_ALLOW);
	assert_string_equal(r.s[find(&r, "user")], "alice");
	assert_int_equal(find(&r, "uid"), -1);
	i = find(&r, "ng");
	assert_true(r.is_int[i]);
	assert_int_equal(r.i[i], 2);
	assert_string_equal(r.s[find(&r, "g0")], "dev");
	assert_string_equal(r.s[find(&r, "g1")], "ops");
	assert_int_equal(find(&r, "g2"), -1);
	/* HAProxy sent no sv: it gets the token, process-wide, as "<version>|Bearer …", and the version alone */
	assert_int_equal(find(&r, "sa"), -1);
	i = find(&r, "proc.sa");
	assert_true(i >= 0);
	assert_int_equal(strlen(r.s[i]), SATOKEN_VER_LEN + 1 + strlen("Bearer sa-secret"));
	assert_string_equal(r.s[i] + SATOKEN_VER_LEN, "|Bearer sa-secret");
	assert_memory_equal(r.s[find(&r, "sv")], r.s[i], SATOKEN_VER_LEN);
	assert_int_equal(strlen(r.s[find(&r, "sv")]), SATOKEN_VER_LEN);
	assert_string_equal(r.s[find(&r, "cip")], "192.0.2.7");
	/* --extra-user-headers cluster=prod goes to HAProxy's slot for "cluster" (KOS_EXTRA_2 here) */
	assert_string_equal(r.s[find(&r, "x2v0")], "prod");
	assert_int_equal(find(&r, "x1v0"), -1);
	assert_int_equal(metrics_count(f->m, METRICS_ALLOW, HR_OK), 1);
	assert_int_equal(metrics_latency_count(f->m), 1);
	fx_free(f);
}

/* 64 groups (this fixture's --max-groups) go out as g0…g63, each with its own group, in order. */
static void test_sixty_four_group_names(void **state)
{
	fx *f = fx_new(true, false, 0);
	handler_input in = input_auth("Bearer max");
	rec r;
	handler_sink k = {rec_str, rec_int, rec_proc, &r};
	char want[16];

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_ALLOW);
	assert_int_equal(r.i[find(&r, "ng")], 64);
	for (int i = 0; i < 64; i++) {
		int j;

		snprintf(want, sizeof(want), "g%d", i);
		j = find(&r, want);
		if (j < 0)
			fail_msg("no variable %s", want);
		assert_string_equal(r.s[j], want); /* the fake names its groups like the variables */
		assert_int_equal(j, find(&r, "ng") + 1 + i);
	}
	assert_int_equal(find(&r, "g64"), -1);
	fx_free(f);
}

static void test_uid_extras_ipv6(void **state)
{
	fx *f = fx_new(true, true, 1);
	handler_input in = input_auth("Bearer uid");
	rec r;
	handler_sink k = {rec_str, rec_int, rec_proc, &r};

	(void)state;
	memset(&r, 0, sizeof(r));
	in.src_family = 6;
	memset(in.src, 0, 16);
	in.src[0] = 0x20, in.src[1] = 0x01, in.src[2] = 0x0d, in.src[3] = 0xb8, in.src[15] = 1;
	in.xk = (const uint8_t *)"scopes||weird%20key%2fx|cluster";
	in.xk_len = strlen((const char *)in.xk);
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_ALLOW);
	assert_string_equal(r.s[find(&r, "uid")], "u-123");
	assert_int_equal(r.i[find(&r, "ng")], 0);
	assert_string_equal(r.s[find(&r, "cip")], "2001:db8::1");
	/* keys are percent-encoded for Impersonate-Extra-<key>, as HAProxy's slots name them */
	assert_string_equal(r.s[find(&r, "x1v0")], "read");
	assert_string_equal(r.s[find(&r, "x3v0")], "v");
	assert_string_equal(r.s[find(&r, "x4v0")], "prod");
	fx_free(f);
}

/* Extras go to HAProxy's slots (xk): a key with no slot fails closed with a reason naming it (500), a ninth
 * value for one key is a 403, eight are eight lines of the same slot in order. */
static void test_extra_slots(void **state)
{
	fx *f = fx_new(true, false, 0);
	handler_input in;
	rec r;
	handler_sink k = {rec_str, rec_int, rec_proc, &r};

	(void)state;
	/* no xk at all: HAProxy declares no slot, the extra cannot go */
	memset(&r, 0, sizeof(r));
	in = input_auth("Bearer uid");
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_NO_SLOT);
	assert_string_equal(r.s[find(&r, "reason")], "extra key without a HAProxy slot");
	assert_int_equal(find(&r, "user"), -1);
	assert_int_equal(metrics_count(f->m, METRICS_NO_SLOT, HR_NO_SLOT), 1);
	/* one of two keys has a slot: still refused, nothing of the identity written */
	memset(&r, 0, sizeof(r));
	in.xk = (const uint8_t *)"scopes";
	in.xk_len = 6;
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_NO_SLOT);
	assert_int_equal(find(&r, "user"), -1);
	/* eight values: x1v0..x1v7 in order */
	memset(&r, 0, sizeof(r));
	in = input_auth("Bearer list8");
	in.xk = (const uint8_t *)"example.com%2Fteams";
	in.xk_len = strlen((const char *)in.xk);
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_ALLOW);
	for (int i = 0; i < 8; i++) {
		char n[16], v[16];

		snprintf(n, sizeof(n), "x1v%d", i);
		snprintf(v, sizeof(v), "t%d", i);
		assert_string_equal(r.s[find(&r, n)], v);
	}
	/* nine: refused (403), never eight of nine */
	memset(&r, 0, sizeof(r));
	in = input_auth("Bearer lists");
	in.xk = (const uint8_t *)"example.com%2Fteams";
	in.xk_len = strlen((const char *)in.xk);
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_TOO_MANY_VALUES);
	assert_string_equal(r.s[find(&r, "reason")], "too many values for an extra key");
	assert_int_equal(find(&r, "user"), -1);
	fx_free(f);
}

/* The service-account token goes to HAProxy only when its copy (sv) is missing or another version. */
static void test_sa_version_handshake(void **state)
{
	fx *f = fx_new(true, false, 0);
	handler_input in = input_auth("Bearer good");
	rec r;
	handler_sink k = {rec_str, rec_int, rec_proc, &r};
	char ver[SATOKEN_VER_LEN + 1];

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_ALLOW);
	assert_true(find(&r, "proc.sa") >= 0);
	snprintf(ver, sizeof(ver), "%s", r.s[find(&r, "sv")]);
	/* HAProxy now holds that version: the ACK carries sv only */
	memset(&r, 0, sizeof(r));
	in.have_sv = true;
	memcpy(in.sv, ver, SATOKEN_VER_LEN);
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_ALLOW);
	assert_int_equal(find(&r, "proc.sa"), -1);
	assert_string_equal(r.s[find(&r, "sv")], ver);
	/* another version (HAProxy's copy is stale): the token again */
	memset(&r, 0, sizeof(r));
	in.sv[0] = in.sv[0] == '0' ? '1' : '0';
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_ALLOW);
	assert_true(find(&r, "proc.sa") >= 0);
	fx_free(f);
}

static void test_client_ip_without_src(void **state)
{
	fx *f = fx_new(true, true, 0);
	handler_input in = input_auth("Bearer good");
	rec r;
	handler_sink k = {rec_str, rec_int, rec_proc, &r};

	(void)state;
	memset(&r, 0, sizeof(r));
	in.src_family = 0;
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_UNAVAILABLE);
	fx_free(f);
}

static void test_no_satoken(void **state)
{
	fx *f = fx_new(false, false, 0);
	handler_input in = input_auth("Bearer good");
	rec r;
	handler_sink k = {rec_str, rec_int, rec_proc, &r};
	char why[128];

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_UNAVAILABLE);
	assert_string_equal(r.s[find(&r, "reason")], "service-account token not loaded");
	/* a bad token is still a 401, not a 503 */
	memset(&r, 0, sizeof(r));
	in = input_auth("Bearer expired");
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_UNAUTHENTICATED);
	assert_false(handler_ready(f->h, why, sizeof(why)));
	assert_non_null(strstr(why, "service-account token"));
	fx_free(f);
}

static void test_ready(void **state)
{
	fx *f = fx_new(true, false, 0);
	char why[128] = "";

	(void)state;
	assert_true(handler_ready(f->h, why, sizeof(why)));
	fake_ready_v = false;
	assert_false(handler_ready(f->h, why, sizeof(why)));
	assert_string_equal(why, "issuer keys not loaded");
	fake_ready_v = true;
	/* not latched: ready again */
	assert_true(handler_ready(f->h, why, sizeof(why)));
	fx_free(f);
}

static void test_ack_full(void **state)
{
	/* the ACK fills up at each of the 7 sets of an allow (user ng g0 g1 sv proc.sa status): never an allow */
	for (size_t fail = 1; fail <= 7; fail++) {
		fx *f = fx_new(true, false, 0);
		handler_input in = input_auth("Bearer good");
		rec r;
		handler_sink k = {rec_str, rec_int, rec_proc, &r};
		int st;

		(void)state;
		memset(&r, 0, sizeof(r));
		r.fail_after = fail;
		st = handler_process(f->h, &in, 1700000000, &k);
		assert_int_equal(st, HANDLER_UNAVAILABLE);
		for (size_t j = 0; j < r.n; j++)
			if (strcmp(r.name[j], "status") == 0)
				assert_int_not_equal(r.i[j], HANDLER_ALLOW);
		fx_free(f);
	}
}

static void test_bearer(void **state)
{
	size_t off = 99, len = 99;

	(void)state;
	assert_int_equal(handler_bearer((const uint8_t *)"Bearer abc", 10, &off, &len), 0);
	assert_int_equal(off, 7);
	assert_int_equal(len, 3);
	/* length is respected: the byte after len is never looked at */
	assert_int_equal(handler_bearer((const uint8_t *)"Bearer abc def", 10, &off, &len), 0);
	assert_int_equal(len, 3);
	off = 99;
	assert_int_equal(handler_bearer((const uint8_t *)"Token abc", 9, &off, &len), HR_MALFORMED_HEADER);
	assert_int_equal(off, 99); /* out-params untouched on failure */
}

/* hand-encoded SPOP arguments: name (varint length + bytes) then a typed value */
static size_t put_name(uint8_t *p, const char *n)
{
	p[0] = (uint8_t)strlen(n);
	memcpy(p + 1, n, strlen(n));
	return 1 + strlen(n);
}

static void test_read_msg(void **state)
{
	uint8_t b[128];
	size_t o = 0;
	spop_msg m;
	handler_input in;

	(void)state;
	o += put_name(b + o, "other");
	b[o++] = SPOP_T_NULL;
	o += put_name(b + o, "auth");
	b[o++] = SPOP_T_STR;
	b[o++] = 11;
	memcpy(b + o, "Bearer good", 11);
	o += 11;
	o += put_name(b + o, "src");
	b[o++] = SPOP_T_IPV4;
	memcpy(b + o, "\x7f\x00\x00\x01", 4);
	o += 4;
	o += put_name(b + o, "imp");
	b[o++] = SPOP_T_BOOL | 0x10;
	memset(&m, 0, sizeof(m));
	m.name = (spop_slice){(const uint8_t *)"kos-auth", 8};
	m.nargs = 4;
	m.args = (spop_slice){b, o};
	memset(&in, 0, sizeof(in));
	assert_int_equal(kosmsg_read(&m, &in), 0);
	assert_true(in.have_auth);
	assert_int_equal(in.auth_len, 11);
	assert_memory_equal(in.auth, "Bearer good", 11);
	assert_int_equal(in.src_family, 4);
	assert_true(in.imp);

	/* auth as an integer is outside the contract: bad message (503), never a pass */
	o = 0;
	o += put_name(b + o, "auth");
	b[o++] = SPOP_T_INT32;
	b[o++] = 5;
	m.nargs = 1;
	m.args = (spop_slice){b, o};
	memset(&in, 0, sizeof(in));
	assert_int_equal(kosmsg_read(&m, &in), -1);
	assert_true(in.bad_msg);

	/* imp as anything but NULL/false counts as set (fail closed) */
	o = 0;
	o += put_name(b + o, "imp");
	b[o++] = SPOP_T_INT64;
	b[o++] = 1;
	m.nargs = 1;
	m.args = (spop_slice){b, o};
	memset(&in, 0, sizeof(in));
	assert_int_equal(kosmsg_read(&m, &in), 0);
	assert_true(in.imp);

	/* truncated: nargs says 2, one is there */
	m.nargs = 2;
	memset(&in, 0, sizeof(in));
	assert_int_equal(kosmsg_read(&m, &in), -1);
	assert_true(in.bad_msg);
}


/* --trusted-proxies: src (HAProxy's peer) is replaced by the right-most X-Forwarded-For address not trusted
 * before anything looks at it; without the list the header is never read. */
static void test_trusted_proxies(void **state)
{
	static const char *const xff[] = {"10.0.0.9:8080", "203.0.113.7", "6.6.6.6"};
	caddr_list trust;
	caddr_net net;
	handler_config hc;
	fx *f;
	rec r;
	handler_sink k = {rec_str, rec_int, rec_proc, &r};
	handler_input in;

	(void)state;
	memset(&trust, 0, sizeof(trust));
	assert_int_equal(caddr_parse_net((const uint8_t *)"10.0.0.0/8", 10, &net), 0);
	assert_int_equal(caddr_list_add(&trust, &net), 0);
	for (int with = 0; with < 2; with++) {
		f = fx_base_new("/tmp/kos-th-XXXXXX", true, &hc);
		hc.vops.verify = fake_verify;
		hc.vops.ready = fake_ready;
		hc.client_ip = true;
		hc.trusted = with ? &trust : NULL;
		assert_int_equal(handler_create(&hc, &f->h), 0);
		in = input_auth("Bearer good");
		in.src[0] = 10, in.src[1] = 0, in.src[2] = 0, in.src[3] = 5;
		for (size_t i = 0; i < 3; i++)
			in.xff[i] = (caddr_slice){(const uint8_t *)xff[i], strlen(xff[i])};
		in.have_xff = true;
		memset(&r, 0, sizeof(r));
		assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_ALLOW);
		assert_string_equal(r.s[find(&r, "cip")], with ? "203.0.113.7" : "10.0.0.5");
		/* an untrusted peer: a forged header changes nothing */
		in.src[0] = 198, in.src[1] = 51, in.src[2] = 100, in.src[3] = 9;
		memset(&r, 0, sizeof(r));
		assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_ALLOW);
		assert_string_equal(r.s[find(&r, "cip")], "198.51.100.9");
		/* HAProxy without KOS_TRUSTED_PROXIES sends no xff arguments at all: with the list that is a 503 (the
		 * client would silently be the load balancer), never an allow; without it nothing changes */
		in = input_auth("Bearer good");
		in.src[0] = 10, in.src[1] = 0, in.src[2] = 0, in.src[3] = 5;
		memset(&r, 0, sizeof(r));
		assert_int_equal(handler_process(f->h, &in, 1700000000, &k), with ? HANDLER_UNAVAILABLE : HANDLER_ALLOW);
		if (with) {
			assert_string_equal(r.s[find(&r, "reason")], "no X-Forwarded-For arguments");
			assert_int_equal(find(&r, "user"), -1);
			assert_int_equal(find(&r, "cip"), -1);
		} else {
			assert_string_equal(r.s[find(&r, "cip")], "10.0.0.5");
		}
		handler_destroy(f->h);
		fx_base_free(f);
	}
}

/* --disable-impersonation: a good token is status 5 with the user for the log line and nothing else (no group
 * count, no service-account token); refusals and impersonation are answered as always. */
static void test_disable_impersonation(void **state)
{
	char why[128];
	handler_config hc;
	fx *f = fx_base_new("/tmp/kos-th-XXXXXX", true, &hc);
	rec r;
	handler_sink k = {rec_str, rec_int, rec_proc, &r};
	handler_input in;

	(void)state;
	hc.vops.verify = fake_verify;
	hc.vops.ready = fake_ready;
	hc.disable_impersonation = true;
	assert_int_equal(handler_create(&hc, &f->h), 0);
	in = input_auth("Bearer good");
	memset(&r, 0, sizeof(r));
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_PASSTHROUGH);
	assert_true(find(&r, "user") >= 0);
	assert_int_equal(find(&r, "ng"), -1);
	assert_int_equal(find(&r, "sv"), -1);
	assert_int_equal(find(&r, "sa"), -1);
	assert_int_equal(find(&r, "g0"), -1);
	in = input_auth("Bearer many"); /* more groups than --max-groups: not forwarded, so no limit */
	memset(&r, 0, sizeof(r));
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_PASSTHROUGH);
	in = input_auth("Bearer expired");
	memset(&r, 0, sizeof(r));
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_UNAUTHENTICATED);
	in = input_auth("Bearer good");
	in.imp = true;
	memset(&r, 0, sizeof(r));
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_IMPERSONATION);
	handler_destroy(f->h);
	fx_base_free(f);

	/* no service-account token at all: still ready and still forwarding, since none is ever sent */
	f = fx_base_new("/tmp/kos-th-XXXXXX", false, &hc);
	hc.vops.verify = fake_verify;
	hc.vops.ready = fake_ready;
	hc.disable_impersonation = true;
	assert_int_equal(handler_create(&hc, &f->h), 0);
	assert_true(handler_ready(f->h, why, sizeof(why)));
	in = input_auth("Bearer good");
	memset(&r, 0, sizeof(r));
	assert_int_equal(handler_process(f->h, &in, 1700000000, &k), HANDLER_PASSTHROUGH);
	handler_destroy(f->h);
	fx_base_free(f);
}

static void test_read_msg_xff(void **state)
{
	uint8_t b[128];
	size_t o = 0;
	spop_msg m;
	handler_input in;

	(void)state;
	o += put_name(b + o, "xff1");
	b[o++] = SPOP_T_STR;
	b[o++] = 8;
	memcpy(b + o, "10.0.0.1", 8);
	o += 8;
	o += put_name(b + o, "xff2");
	b[o++] = SPOP_T_STR;
	b[o++] = 0;
	o += put_name(b + o, "xff3");
	b[o++] = SPOP_T_NULL;
	o += put_name(b + o, "xff9"); /* not ours: ignored like any unknown argument */
	b[o++] = SPOP_T_INT32;
	b[o++] = 1;
	memset(&m, 0, sizeof(m));
	m.name = (spop_slice){(const uint8_t *)"kos-auth", 8};
	m.nargs = 4;
	m.args = (spop_slice){b, o};
	memset(&in, 0, sizeof(in));
	assert_int_equal(kosmsg_read(&m, &in), 0);
	assert_int_equal(in.xff[0].len, 8);
	assert_memory_equal(in.xff[0].p, "10.0.0.1", 8);
	assert_non_null(in.xff[1].p); /* empty: present, skipped by the walk */
	assert_int_equal(in.xff[1].len, 0);
	assert_null(in.xff[2].p);
	assert_true(in.have_xff);

	/* a NULL entry alone still says HAProxy sends them (no X-Forwarded-For header); no xff at all does not */
	o = 0;
	o += put_name(b + o, "xff1");
	b[o++] = SPOP_T_NULL;
	m.nargs = 1;
	m.args = (spop_slice){b, o};
	memset(&in, 0, sizeof(in));
	assert_int_equal(kosmsg_read(&m, &in), 0);
	assert_true(in.have_xff);
	assert_null(in.xff[0].p);
	o = 0;
	o += put_name(b + o, "xff9");
	b[o++] = SPOP_T_NULL;
	m.args = (spop_slice){b, o};
	memset(&in, 0, sizeof(in));
	assert_int_equal(kosmsg_read(&m, &in), 0);
	assert_false(in.have_xff);

	/* an integer, or the same entry twice, is outside the contract */
	o = 0;
	o += put_name(b + o, "xff1");
	b[o++] = SPOP_T_INT32;
	b[o++] = 1;
	m.nargs = 1;
	m.args = (spop_slice){b, o};
	memset(&in, 0, sizeof(in));
	assert_int_equal(kosmsg_read(&m, &in), -1);
	o = 0;
	for (int i = 0; i < 2; i++) {
		o += put_name(b + o, "xff4");
		b[o++] = SPOP_T_STR;
		b[o++] = 1;
		b[o++] = '1';
	}
	m.nargs = 2;
	m.args = (spop_slice){b, o};
	memset(&in, 0, sizeof(in));
	assert_int_equal(kosmsg_read(&m, &in), -1);
	assert_true(in.bad_msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_allow_variables),
		cmocka_unit_test(test_sixty_four_group_names),
		cmocka_unit_test(test_uid_extras_ipv6),
		cmocka_unit_test(test_extra_slots),
		cmocka_unit_test(test_sa_version_handshake),
		cmocka_unit_test(test_client_ip_without_src),
		cmocka_unit_test(test_no_satoken),
		cmocka_unit_test(test_ready),
		cmocka_unit_test(test_ack_full),
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_read_msg),
		cmocka_unit_test(test_read_msg_xff),
		cmocka_unit_test(test_trusted_proxies),
		cmocka_unit_test(test_disable_impersonation),
	};

	/* rejections are logged: keep them out of the test output */
	log_init(open("/dev/null", O_WRONLY), LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
