/*
 * cel_program.c — what is true of a compiled CEL program whoever made it: error and kind names, operator names
 * shared by the parser's and the evaluator's messages, freeing, and the queries of cel.h that read the tree
 * (result type, variables used, claims read).
 */
#include <string.h>
#include <stdlib.h>

#include "cel_program.h"

const char *cel_strerror(int err)
{
	switch (err) {
	case CEL_OK: return "ok";
	case CEL_E_SYNTAX: return "syntax error";
	case CEL_E_UNSUPPORTED: return "outside the supported CEL subset";
	case CEL_E_TYPE: return "type error";
	case CEL_E_LIMIT: return "limit exceeded";
	case CEL_E_NOMEM: return "out of memory";
	case CEL_E_EVAL: return "evaluation error";
	case CEL_E_ARG: return "bad argument";
	}
	return "unknown cel error";
}

const char *cel_kind_name(cel_kind k)
{
	switch (k) {
	case CEL_DYN: return "dyn";
	case CEL_NULL: return "null_type";
	case CEL_BOOL: return "bool";
	case CEL_INT: return "int";
	case CEL_DOUBLE: return "double";
	case CEL_STRING: return "string";
	case CEL_LIST: return "list";
	case CEL_MAP: return "map";
	}
	return (int)k == K_OPT ? "optional" : "?";
}

const char *cel_op_name(int op)
{
	switch (op) {
	case OP_ADD: return "_+_";
	case OP_SUB: return "_-_";
	case OP_MUL: return "_*_";
	case OP_DIV: return "_/_";
	case OP_MOD: return "_%_";
	case OP_EQ: return "_==_";
	case OP_NE: return "_!=_";
	case OP_LT: return "_<_";
	case OP_LE: return "_<=_";
	case OP_GT: return "_>_";
	case OP_GE: return "_>=_";
	case OP_IN: return "@in";
	case OP_AND: return "_&&_";
	case OP_OR: return "_||_";
	case OP_NOT: return "!_";
	case OP_NEG: return "-_";
	}
	return "?";
}

bool cel_kind_is_num(cel_kind k)
{
	return k == CEL_INT || k == CEL_DOUBLE;
}

void cel_program_free(cel_program *prog)
{
	if (prog == NULL)
		return;
	free(prog->nodes);
	free(prog->pool);
	free(prog);
}

void cel_result_type(const cel_program *prog, cel_kind *kind, cel_kind *elem)
{
	stype t = prog->nodes[prog->root].type;

	if (kind != NULL)
		*kind = TK(t);
	if (elem != NULL)
		*elem = TK(TELEM(t));
}

unsigned cel_program_vars(const cel_program *prog)
{
	return prog->vars;
}

bool cel_program_uses_claim(const cel_program *prog, const char *name)
{
	size_t nl = strlen(name);

	for (uint32_t i = 0; i < prog->nnodes; i++) {
		const cel_node *n = &prog->nodes[i];
		const cel_node *key = NULL;

		if (n->op != OP_SELECT && n->op != OP_HAS && n->op != OP_OPTSEL && n->op != OP_INDEX)
			continue;
		if (prog->nodes[n->kid[0]].op != OP_CLAIMS)
			continue;
		if (n->op == OP_INDEX) {
			key = &prog->nodes[n->kid[1]];
			if (key->op != OP_STRING)
				continue;
			n = key;
		}
		if (n->v.s.len == nl && memcmp(prog->pool + n->v.s.off, name, nl) == 0)
			return true;
	}
	return false;
}
