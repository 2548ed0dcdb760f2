/*
 * explain.h — `kube-oidc-spoa explain`: why is this token accepted or refused? Reads one token (a file or
 * stdin), builds the same verifier the agent would (the --oidc-* flags or --authentication-config), waits for
 * discovery and keys (blocking: this is a CLI), then prints every check in order — issuer chosen, header
 * (alg, kid), key, signature, standard claims, each mapping and rule, the mapped user, groups, uid and extra —
 * and the verdict or the first failure. It never prints the token or its signature.
 *
 * Owns nothing after it returns. Main thread only (it runs instead of the agent).
 */
#ifndef KOS_EXPLAIN_H
#define KOS_EXPLAIN_H

#include <stdio.h>

#include "config.h"
#include "verifier.h"

/* argv[0] is "explain"; the rest are --token-file FILE plus the agent's flags (and KOS_* from envp). Prints
 * to out (report) and err (usage errors). Returns the exit status: 0 accepted, 1 refused (or the issuer could
 * not be reached), 2 a wrong flag. */
int explain_main(int argc, char **argv, char *const *envp, FILE *out, FILE *err);
/* The verifier configuration the agent derives from its flags (shared with main.c). Strings are borrowed
 * from c. */
void explain_verifier_config(const config *c, verifier_config *vc);

#endif
