/* fuzz_config.c — libFuzzer target for config_parse(): input split on NUL into argv (first part) and, after a
 * "\n--env--\n" marker, environment strings. Checks it never crashes, leaks, or returns a config that breaks
 * its own invariants. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXV 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *argv[MAXV + 1], *envp[MAXV + 1];
	int argc = 1, envc = 0;
	bool in_env = false;
	size_t start = 0;
	config c;
	char err[256];
	int rc;

	if (size > 8192)
		return 0;
	buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[0] = "kube-oidc-spoa";
	for (size_t i = 0; i <= size; i++) {
		if (buf[i] != '\0')
			continue;
		if (strcmp(buf + start, "--env--") == 0) {
			in_env = true;
		} else if (in_env && envc < MAXV) {
			envp[envc++] = buf + start;
		} else if (!in_env && argc < MAXV) {
			argv[argc++] = buf + start;
		}
		start = i + 1;
	}
	argv[argc] = NULL;
	envp[envc] = NULL;
	rc = config_parse(argc, argv, envp, &c, err, sizeof(err));
	if (rc == CONFIG_OK) {
		/* Either the --oidc-* flags (https issuer and a client ID) or --authentication-config, never both. */
		bool oidc = c.issuer_url != NULL && strncmp(c.issuer_url, "https://", 8) == 0 && c.client_id != NULL;
		bool authn = c.authn_config != NULL && c.issuer_url == NULL && c.client_id == NULL;
		if (oidc == authn || c.listen == NULL || c.max_groups == 0 || c.max_groups > CONFIG_MAX_GROUPS_LIMIT ||
		    c.nrequired_claims > CONFIG_MAX_KV || c.nextra_headers > CONFIG_MAX_KV)
			abort();
		config_free(&c);
	} else if (rc == CONFIG_E_USAGE) {
		if (memchr(err, '\0', sizeof(err)) == NULL || strchr(err, '\n') != NULL)
			abort();
	}
	free(buf);
	return 0;
}
