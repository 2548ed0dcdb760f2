/*
 * cel_parse.h — the CEL parser and type checker: cel_compile_vars() and cel_compile() of cel.h live in
 * cel_parse.c. It drives the lexer (cel_lex.h) with one token of look-ahead, builds the program tree
 * (cel_program.h) bottom-up, computes every node's static type as cel-go's checker would and refuses what is
 * outside the subset (docs/cel.md) with the byte offset of the offending token. Depth, scopes and node count are
 * capped here (CEL_MAX_DEPTH, CEL_MAX_SCOPES, CEL_MAX_NODES), which is what lets the evaluator recurse without
 * checks of its own.
 *
 * Owns: a compile allocates the program (nodes, pool) and hands it to the caller on success only; on failure
 * it frees everything it made. No global state: any thread.
 */
#ifndef KOS_CEL_PARSE_H
#define KOS_CEL_PARSE_H

#include "cel.h"

#endif
