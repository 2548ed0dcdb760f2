/*
 * config.h — the agent's configuration from command-line flags and KOS_* environment variables.
 *
 * Owns: one struct config whose strings are all heap copies made by config_parse(); config_free() releases
 * them. Nothing here opens files except config_check_files() (used by --check-config and at start).
 * Precedence: a flag given on the command line wins over its environment variable, which wins over the default.
 * Environment names: "KOS_" + the flag name in upper snake case (--oidc-issuer-url → KOS_OIDC_ISSUER_URL).
 * Repeatable flags (--oidc-required-claim, --extra-user-headers) take "k=v" or the comma form "k1=v1,k2=v2";
 * their environment variable takes the comma form. Booleans: "--flag", "--flag=true|false", env "true|false|1|0".
 * Single-threaded: called from main before anything starts.
 */
#ifndef KOS_CONFIG_H
#define KOS_CONFIG_H

/* What --authentication-config accepts when --oidc-signing-algs is not given: kube-apiserver's own list with a
 * file (oidc.AllValidSigningAlgorithms(): RS/PS/ES 256/384/512; none and HMAC never). EdDSA is not in it — the
 * API server would refuse such a token — so the agent accepts it only when --oidc-signing-algs names it. */
#define CONFIG_FILE_SIGNING_ALGS "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "clientaddr.h"
#include "log.h"

#ifndef KOS_VERSION
#define KOS_VERSION "0.1.0-dev"
#endif

#define CONFIG_MAX_KV 32            /* entries of each repeatable key=value flag */
/* Groups per user, end to end: the agent's --max-groups default and the number of Impersonate-Group lines
 * conf/gen-rules.py writes into conf/haproxy.cfg by default (it reads this line; tests/integration/test_conf.py
 * fails when the two, the README and conf/CONTRACT.md disagree). Entra ID users commonly carry 100-200 groups. */
#define CONFIG_MAX_GROUPS_DEFAULT 256
#define CONFIG_MAX_GROUPS_LIMIT 4096 /* a sanity cap on --max-groups: HAProxy needs two rules per group */
#define CONFIG_MAX_ARG_BYTES 4096   /* any one flag value */

typedef struct config_kv {
	char *key;
	char *value;
} config_kv;

typedef struct config {
	/* Kubernetes AuthenticationConfiguration file: several issuers, CEL mappings and rules (issuers.h).
	 * Mutually exclusive with the kube-oidc-proxy --oidc-* flags below (not with the tuning knobs). */
	char *authn_config;
	/* kube-oidc-proxy's flags */
	char *issuer_url;
	char *client_id;
	char *ca_file;               /* NULL = system roots */
	char *username_claim;        /* default "sub" */
	char *username_prefix;       /* NULL = unset (Kubernetes default rule) */
	char *groups_claim;          /* NULL = no groups */
	char *groups_prefix;         /* NULL = "" */
	config_kv required_claims[CONFIG_MAX_KV];
	size_t nrequired_claims;
	char *signing_algs;          /* default "RS256"; with authn_config, CONFIG_FILE_SIGNING_ALGS unless given */
	bool extra_client_ip;        /* --extra-user-header-client-ip */
	char *trusted_proxies[CONFIG_MAX_KV]; /* --trusted-proxies as given (CIDRs or addresses) */
	size_t ntrusted_proxies;
	caddr_list trusted;          /* the same, parsed (config_parse fills it; n = 0: trust nobody) */
	config_kv extra_headers[CONFIG_MAX_KV];
	size_t nextra_headers;
	unsigned probe_port;         /* --readiness-probe-port, 0 = no HTTP endpoint */
	char *probe_address;         /* --readiness-probe-address, NULL = all addresses */
	/* ours */
	char *listen;                /* SPOP: host:port, [v6]:port, :port, unix:/path */
	char *sa_token_file;
	unsigned threads;            /* 0 = number of CPUs */
	enum log_level log_level;
	unsigned max_groups;
	size_t max_token_bytes;
	size_t cache_entries;
	size_t cache_max_bytes;      /* the token cache's whole memory, table included */
	unsigned cache_ttl_s;
	bool allow_reserved;
	/* issuer refresh tuning knobs (oidc_config); defaults suit production, tests shorten them */
	unsigned jwks_min_refresh_s;   /* floor of the JWKS max-age refresh */
	unsigned unknown_kid_interval_s; /* at most one on-demand JWKS download per interval */
	unsigned retry_min_ms;         /* first retry after a failed discovery/JWKS download */
	unsigned retry_max_ms;         /* backoff ceiling */
	unsigned http_timeout_ms;      /* whole discovery/JWKS transfer */
	unsigned unknown_kid_wait_ms;  /* hold a request with an unknown kid for the JWKS refresh; 0 = never */
	/* --token-passthrough: tokens that are not ours go to the API server's TokenReview (tokenreview.h) */
	bool token_passthrough;
	char *tp_audiences[CONFIG_MAX_KV]; /* --token-passthrough-audiences */
	size_t ntp_audiences;
	char *apiserver_url;           /* where TokenReviews go (https) */
	char *apiserver_ca_file;       /* verifies it */
	unsigned tp_cache_ttl_s;       /* 0..10 */
	unsigned tp_rate;              /* new reviews per second */
	unsigned tp_timeout_ms;        /* per review, queue + transfer */
	/* --allow-client-impersonation: the client's Impersonate-* authorized by SubjectAccessReviews */
	bool allow_client_imp;
	unsigned ci_cache_ttl_s;       /* 0..10 */
	unsigned ci_rate;              /* new reviews per second */
	unsigned ci_timeout_ms;        /* per review, queue + transfer */
	bool credential_id_extra;      /* --credential-id-extra: authentication.kubernetes.io/credential-id=JTI=<jti> */
	bool disable_impersonation;    /* --disable-impersonation: allow = status 5, the client's own credential */
	bool check_config;
} config;

enum config_result {
	CONFIG_OK = 0,
	CONFIG_HELP = 1,     /* --help was given: print config_usage(), exit 0 */
	CONFIG_VERSION = 2,  /* --version */
	CONFIG_E_USAGE = -1, /* a wrong flag or value; err holds one line; exit 2 */
	CONFIG_E_NOMEM = -2,
};

/* Parses argv[1..argc) then, for flags not given, envp (NULL-terminated "K=V" strings, may be NULL).
 * On CONFIG_OK *out holds the configuration (free with config_free()); on error *out is untouched and err gets
 * one line naming the flag (or variable) and what is wrong. */
int config_parse(int argc, char *const *argv, char *const *envp, config *out, char *err, size_t errlen);
void config_free(config *c);
/* Opens the files the configuration names (CA file, service-account token file) to find mistakes before
 * start; 0 or -1 with err. */
int config_check_files(const config *c, char *err, size_t errlen);
/* --help text. */
void config_usage(FILE *f);
/* The effective configuration, one "flag: value" per line (no secrets: there are none in it). */
void config_print(const config *c, FILE *f);
/* Logs the effective configuration as one "config" event. */
void config_log(const config *c);

/* Parses a duration "600", "600s", "10m", "1h", "1h30m" into seconds; 0 or -1. Exposed for tests. */
int config_parse_duration(const char *s, unsigned *out);

#endif
