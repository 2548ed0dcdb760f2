/*
 * fuzz_cel.c — compiles arbitrary bytes as a CEL expression (claims and user both allowed) and evaluates what
 * compiles against a fixed claims set and user, with a small step budget and a small arena. Checks: no crash,
 * no read past the input (libFuzzer hands over exactly size bytes), errors carry a message and a position inside
 * the expression, and results obey their own invariants (strings NUL-terminated inside the arena or borrowed,
 * list lengths consistent with iteration).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char claims_json[] =
	"{\"iss\":\"https://issuer.example\",\"sub\":\"u1\",\"username\":\"jane\",\"email\":\"jane@example.com\","
	"\"email_verified\":true,\"groups\":[\"dev\",\"ops\",\"system:x\"],\"roles\":\"user,admin\",\"exp\":1700086400,"
	"\"nbf\":1700000000,\"aud\":[\"kubernetes\"],\"n\":5,\"f\":1.5,\"nested\":{\"a\":{\"b\":[1,2,{\"c\":null}]}},"
	"\"empty\":[],\"nul\":null,\"big\":1e300,\"neg\":-9223372036854775808,\"name\":\"J\\u00e9r\\u00f4me\"}";

static const cel_str groups[] = { { "oidc:dev", 8 }, { "system:masters", 14 } };
static const cel_str team[] = { { "blue", 4 }, { "green", 5 } };
static const cel_user_extra extra[] = { { { "example.org/team", 16 }, team, 2 } };
static const cel_user user = { { "oidc:jane", 9 }, { "u-42", 4 }, groups, 2, extra, 1 };

static uint8_t arena_buf[1 << 16];

static void check_value(const cel_value *v, int depth)
{
	cel_iter it;
	cel_value x;
	size_t n = 0;

	switch (v->kind) {
	case CEL_NULL:
	case CEL_BOOL:
	case CEL_INT:
	case CEL_DOUBLE:
		return;
	case CEL_STRING:
		if (v->u.s.p == NULL || v->u.s.p[v->u.s.len] != 0)
			abort();
		return;
	case CEL_LIST:
	case CEL_MAP:
		if (depth > 1100)
			abort();
		cel_iter_init(&it, v);
		while (cel_iter_next(&it, &x)) {
			check_value(&x, depth + 1);
			n++;
		}
		if (n != cel_list_len(v))
			abort();
		return;
	default:
		abort(); /* an internal kind (an absent optional) escaped */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cJSON *claims;
	cel_program *prog = NULL;
	cel_error err;
	cel_arena a;
	cel_value v;
	cel_env env;
	cel_kind k, e;
	int rc;

	if (claims == NULL && (claims = cJSON_Parse(claims_json)) == NULL)
		abort();
	memset(&err, 0, sizeof(err));
	rc = cel_compile(data, size, &prog, &err);
	if (rc != 0) {
		if (prog != NULL || err.code != rc || err.msg[0] == 0 || err.pos > size)
			abort();
		return 0;
	}
	cel_result_type(prog, &k, &e);
	(void)cel_program_uses_claim(prog, "email");
	memset(&env, 0, sizeof(env));
	env.claims = claims;
	env.user = &user;
	env.max_steps = 20000;
	cel_arena_init(&a, arena_buf, sizeof(arena_buf));
	rc = cel_eval(prog, &env, &v, &a);
	if (rc == 0) {
		check_value(&v, 0);
		/* a statically known kind is what evaluation produces */
		if (k != CEL_DYN && k != v.kind)
			abort();
	} else if (a.err.code != rc || a.err.msg[0] == 0 || a.err.pos > size) {
		abort();
	}
	if (a.used > a.cap)
		abort();
	cel_program_free(prog);
	return 0;
}
