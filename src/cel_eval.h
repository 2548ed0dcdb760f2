/*
 * cel_eval.h — the CEL evaluator: cel_eval(), the arena and list/map iteration of cel.h live in cel_eval.c.
 *
 * Evaluation is a recursive walk of the program tree (cel_program.h) whose depth is the tree height, capped at
 * compile time; every node visited and every comprehension iteration spends one step of the budget, and
 * byte-heavy operations spend one step per 16 bytes, so no configuration can make one evaluation run away.
 * Values are borrowed from the claims (cJSON), the user, the program's pool, or carved from the caller's arena:
 * the evaluator never calls malloc. CEL error values (no such key, overflow...) are absorbed by && || all exists
 * as CEL does; resource errors (step budget, arena) always end the evaluation.
 *
 * Owns: nothing; the arena's buffer is the caller's. Any thread, one arena per concurrent evaluation.
 */
#ifndef KOS_CEL_EVAL_H
#define KOS_CEL_EVAL_H

#include "cel.h"

#endif
