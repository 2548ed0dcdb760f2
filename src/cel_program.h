/*
 * cel_program.h — the compiled form of a CEL expression, shared by the parser (cel_parse.c), which builds it, and
 * the evaluator (cel_eval.c), which walks it. Internal to the cel_* modules; callers use cel.h.
 *
 * A program is a flat array of nodes addressed by index plus a pool of decoded string literals and field names,
 * so it is one object to free and holds no pointers into the caller's source. The static type of every node is
 * computed by the parser as cel-go's checker would (stype below); the evaluator trusts the tree's shape (kids of
 * each op, kid indexes in range, heights capped at CEL_MAX_DEPTH) and nothing else.
 *
 * Owns: cel_program owns nodes and pool, freed together by cel_program_free() (cel.h). Read-only once compiled,
 * so any number of threads may read one program at once.
 */
#ifndef KOS_CEL_PROGRAM_H
#define KOS_CEL_PROGRAM_H

#include "cel.h"

enum op {
	OP_NULL, OP_BOOL, OP_INT, OP_DOUBLE, OP_STRING, OP_LIST,
	OP_CLAIMS, OP_USERF, OP_HASUSER, OP_VAR,
	OP_SELECT, OP_HAS, OP_INDEX,
	OP_NOT, OP_NEG,
	OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD,
	OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN,
	OP_AND, OP_OR, OP_COND,
	OP_CALL, OP_COMPRE, OP_OPTSEL,
};

enum fn { FN_SIZE, FN_STRING, FN_INT, FN_DOUBLE, FN_DYN, FN_STARTS, FN_ENDS, FN_CONTAINS, FN_LOWER, FN_UPPER,
	  FN_JOIN, FN_SPLIT, FN_OR_VALUE, FN_HAS_VALUE, FN_VALUE };
enum compre { CK_ALL, CK_EXISTS, CK_EXISTS_ONE, CK_MAP, CK_FILTER };
enum userf { UF_USERNAME, UF_UID, UF_GROUPS, UF_EXTRA };

/* Static types: kind in the low 4 bits, then the element (list) or value (map) type's kind, then its element. */
typedef uint16_t stype;
#define TK(t) ((cel_kind)((t) & 15))
#define TELEM(t) ((stype)((t) >> 4))
#define T_LIST_OF(e) ((stype)(CEL_LIST | (((e) & 0xff) << 4)))
#define T_MAP_OF(v) ((stype)(CEL_MAP | (((v) & 0xff) << 4)))
/* optional(T) of `x.?f`: only usable through orValue(), hasValue() and value(); at run time an absent optional
 * is a value of this kind and a present one is the plain value */
#define K_OPT 8
#define T_OPT_OF(v) ((stype)(K_OPT | (((v) & 0xff) << 4)))

typedef struct cel_node {
	uint8_t op, fn, slot, nargs;
	stype type;
	uint16_t height;
	uint32_t pos;
	int32_t kid[3];
	int32_t next; /* OP_LIST: the next element */
	union {
		int64_t i;
		double d;
		bool b;
		struct {
			uint32_t off, len;
		} s;
	} v;
} cel_node;

struct cel_program {
	cel_node *nodes;
	uint32_t nnodes, cap;
	int32_t root;
	char *pool; /* decoded string literals and field names, each NUL-terminated */
	size_t pool_len, pool_cap;
	unsigned vars;
};

#define CEL_MAX_NODES (4 * CEL_MAX_EXPR_LEN)

/* CEL's name of an operator in its overload messages ("_+_", "@in"...), "?" for others. */
const char *cel_op_name(int op);
/* int or double: the kinds arithmetic and ordering accept across each other. */
bool cel_kind_is_num(cel_kind k);

#endif
