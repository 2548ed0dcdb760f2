/*
 * cel.h — the subset of CEL (Common Expression Language) that Kubernetes AuthenticationConfiguration uses in
 * claimMappings (username, groups, uid, extra), claimValidationRules and userValidationRules. docs/cel.md lists
 * what is supported, what is refused and where we differ from cel-go.
 *
 * Two phases, as in the API server:
 *   cel_compile_vars()  at configuration load: parses and type-checks an expression into a small immutable tree.
 *                       Anything outside the subset is refused here, with a message and the byte offset.
 *   cel_eval()          per token: evaluates the tree against the verified claims (a cJSON payload) or a user.
 *                       It never calls malloc: values are either borrowed (strings and lists inside the cJSON
 *                       claims, the cel_user, or literals in the program) or carved out of a caller-provided
 *                       bounded arena. Arena exhaustion and the step budget are errors, never crashes or hangs.
 *
 * Implemented by four modules (the split is internal; callers include only this header):
 *   cel_lex.c      tokens: the expression's bytes -> tokens, string literals decoded into the program's pool
 *   cel_parse.c    parser and type checker: cel_compile_vars(), cel_compile()
 *   cel_program.c  the compiled tree shared by both sides (cel_program.h) and the queries on it
 *   cel_eval.c     values, arena, iteration and the evaluator: cel_eval()
 *
 * Owns: a cel_program owns its nodes and literal text (cel_program_free). A cel_value owns nothing; it is valid
 * while the program, the env's claims/user and the arena's buffer (until cel_arena_reset) all are.
 * Threads: a compiled program is read-only, so any number of threads may evaluate it at once, each with its
 * own arena.
 */
#ifndef KOS_CEL_H
#define KOS_CEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define CEL_MAX_EXPR_LEN 4096     /* bytes of source */
#define CEL_MAX_DEPTH 64          /* height of the expression tree */
#define CEL_MAX_SCOPES 8          /* nested comprehensions (map/filter/all/exists) */
#define CEL_DEFAULT_STEPS 1000000 /* evaluation budget when cel_env.max_steps is 0 */
#define CEL_MSG_MAX 160

enum cel_err {
	CEL_OK = 0,
	CEL_E_SYNTAX = -1,      /* compile: not a CEL expression */
	CEL_E_UNSUPPORTED = -2, /* compile: valid CEL outside our subset */
	CEL_E_TYPE = -3,        /* compile: type check failed; eval: no matching overload for the operand types */
	CEL_E_LIMIT = -4,       /* compile: length/depth/nesting cap; eval: step budget exhausted */
	CEL_E_NOMEM = -5,       /* compile: malloc failed; eval: the arena is full */
	CEL_E_EVAL = -6,        /* eval: no such key, index out of range, division by zero, overflow, conversion */
	CEL_E_ARG = -7,         /* bad call (NULL pointer, arena not initialised) */
};

/* Value kinds at run time; CEL_DYN only appears in static (compile-time) types: "known only at run time". */
typedef enum cel_kind {
	CEL_DYN = 0,
	CEL_NULL = 1,
	CEL_BOOL = 2,
	CEL_INT = 3,
	CEL_DOUBLE = 4,
	CEL_STRING = 5,
	CEL_LIST = 6,
	CEL_MAP = 7,
} cel_kind;

/* A borrowed byte string; p[len] is always '\0' for strings produced by this module. */
typedef struct cel_str {
	const char *p;
	size_t len;
} cel_str;

typedef struct cel_user_extra {
	cel_str key;
	const cel_str *values;
	size_t nvalues;
} cel_user_extra;

/* The `user` variable of userValidationRules (kubernetes.UserInfo). Everything borrowed. An absent uid is
 * {NULL,0} or {"",0}: user.uid is then "" and has(user.uid) false, as for an unset field of an object type. */
typedef struct cel_user {
	cel_str username, uid;
	const cel_str *groups;
	size_t ngroups;
	const cel_user_extra *extra;
	size_t nextra;
} cel_user;

/* Representation of a list or map value (the caller should use cel_iter/cel_list_len rather than peek). */
enum cel_rep { CEL_REP_NATIVE = 0, CEL_REP_JSON = 1, CEL_REP_STRS = 2, CEL_REP_EXTRA = 3 };

typedef struct cel_value {
	uint8_t kind; /* cel_kind, never CEL_DYN */
	uint8_t rep;  /* cel_rep, for CEL_LIST and CEL_MAP */
	union {
		bool b;
		int64_t i;
		double d;
		cel_str s;
		const cJSON *json;                                  /* REP_JSON: the array or object */
		struct { const struct cel_value *items; size_t n; } list; /* REP_NATIVE list */
		struct { const cel_str *items; size_t n; } strs;    /* REP_STRS list */
		struct { const cel_user_extra *items; size_t n; } extra; /* REP_EXTRA map */
	} u;
} cel_value;

typedef struct cel_error {
	int code;             /* enum cel_err */
	size_t pos;           /* byte offset in the expression */
	char msg[CEL_MSG_MAX];
} cel_error;

/* The bounded scratch memory of one evaluation; also carries the last evaluation error. The caller owns buf. */
typedef struct cel_arena {
	uint8_t *buf;
	size_t cap, used;
	cel_error err;
} cel_arena;

/* Variables an expression may reference: claims expressions see only `claims`, user rules only `user`. */
#define CEL_VAR_CLAIMS 1u
#define CEL_VAR_USER 2u

typedef struct cel_env {
	const cJSON *claims;  /* the verified payload (an object); required if the program uses claims */
	const cel_user *user; /* required if the program uses user */
	uint64_t max_steps;   /* 0 = CEL_DEFAULT_STEPS */
} cel_env;

typedef struct cel_program cel_program;

/* Compiles p[0..len) (UTF-8, at most CEL_MAX_EXPR_LEN bytes) allowing the variables in vars (CEL_VAR_*).
 * On success *out is a new program (cel_program_free) and 0 is returned; otherwise a negative cel_err, *err
 * filled (message and byte offset) if err != NULL, and *out untouched. Any thread. */
int cel_compile_vars(const uint8_t *p, size_t len, unsigned vars, cel_program **out, cel_error *err);
/* cel_compile_vars with both claims and user allowed. */
int cel_compile(const uint8_t *p, size_t len, cel_program **out, cel_error *err);
void cel_program_free(cel_program *prog);

/* The static result type, as cel-go's checker would compute it: kind (CEL_DYN = only known at run time) and,
 * for a list, its element kind (for a map, its value kind). The API server requires exactly CEL_BOOL for
 * claimValidationRules and userValidationRules; mappings are checked at run time. */
void cel_result_type(const cel_program *prog, cel_kind *kind, cel_kind *elem);
/* Which variables (CEL_VAR_*) the program references. */
unsigned cel_program_vars(const cel_program *prog);
/* Whether the program reads the claim `name` directly (claims.name, has(claims.name), claims.?name or
 * claims['name']): the API server requires claims.email_verified to appear once a mapping uses claims.email. */
bool cel_program_uses_claim(const cel_program *prog, const char *name);

void cel_arena_init(cel_arena *a, void *buf, size_t cap);
/* Forgets every value allocated from the arena (they must not be used afterwards). */
void cel_arena_reset(cel_arena *a);

/* Evaluates prog. On success writes *out and returns 0; otherwise a negative cel_err, with arena->err holding
 * the message (CEL's wording: "no such key: x") and the offset of the failing sub-expression; *out untouched.
 * No allocation besides the arena; stack use is bounded by CEL_MAX_DEPTH. Any thread. */
int cel_eval(const cel_program *prog, const cel_env *env, cel_value *out, cel_arena *arena);

/* Lists (and maps, for their keys) of any representation. */
size_t cel_list_len(const cel_value *v);
typedef struct cel_iter {
	const cel_value *v;
	size_t i;
	const cJSON *next;
} cel_iter;
void cel_iter_init(cel_iter *it, const cel_value *list_or_map);
/* Next element of a list, or next key of a map; false at the end. */
bool cel_iter_next(cel_iter *it, cel_value *out);

const char *cel_strerror(int err);
const char *cel_kind_name(cel_kind k);

#endif
