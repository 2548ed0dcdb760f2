/* config.c — flags and KOS_* environment variables into struct config; see config.h. */
#include "config.h"
#include "identity.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "kx.h"

enum opt_kind {
	K_STR,      /* any non-empty string without control bytes */
	K_OPTSTR,   /* may be empty (prefixes: "" is a meaningful value) */
	K_URL,      /* https:// URL */
	K_BOOL,
	K_UINT,
	K_SIZE,
	K_DURATION,
	K_LEVEL,
	K_KV,       /* repeatable key=value, comma form accepted */
	K_LIST,     /* repeatable value, comma form accepted (values without commas) */
	K_ALGS,
	K_LISTEN,
	K_IPADDR,
	K_ACTION,   /* --help, --version: handled before anything else */
};

typedef struct opt {
	const char *name;  /* without the leading "--" */
	const char *env;   /* environment variable, NULL = none */
	enum opt_kind kind;
	size_t off;        /* field in struct config */
	size_t off_n;      /* K_KV: the count field */
	unsigned long long min, max;
	const char *def;   /* default as text (applied through the same parser), NULL = none */
	const char *arg;   /* metavariable in --help */
	const char *help;
} opt;

#define F(field) offsetof(config, field)

/* The table is the single source of --help, environment names, defaults and parsing. */
#define STR_(x) #x
#define STR(x) STR_(x)

static const opt opts[] = {
	{"authentication-config", "KOS_AUTHENTICATION_CONFIG", K_STR, F(authn_config), 0, 0, 0, NULL, "FILE",
	 "Kubernetes AuthenticationConfiguration (apiserver.config.k8s.io v1beta1/v1, YAML or JSON): several "
	 "issuers, audiences, claim mappings and CEL rules. Replaces the --oidc-issuer-url ... --oidc-required-claim "
	 "flags (giving both is an error). Accepts RS/PS/ES 256/384/512, as kube-apiserver does with a file, unless "
	 "--oidc-signing-algs gives the list. Re-read when its content changes (checked every second; a ConfigMap's symlink swap too) and "
	 "on SIGHUP; an invalid new file is logged and the old one kept."},
	{"oidc-issuer-url", "KOS_OIDC_ISSUER_URL", K_URL, F(issuer_url), 0, 0, 0, NULL, "URL",
	 "Issuer URL (https). Required. Discovery is <URL>/.well-known/openid-configuration."},
	{"oidc-client-id", "KOS_OIDC_CLIENT_ID", K_STR, F(client_id), 0, 0, 0, NULL, "ID",
	 "Client ID that must appear in the token's aud. Required."},
	{"oidc-ca-file", "KOS_OIDC_CA_FILE", K_STR, F(ca_file), 0, 0, 0, NULL, "FILE",
	 "PEM CA bundle that verifies the issuer (default: system roots)."},
	{"oidc-username-claim", "KOS_OIDC_USERNAME_CLAIM", K_STR, F(username_claim), 0, 0, 0, "sub", "CLAIM",
	 "Claim used as the user name."},
	{"oidc-username-prefix", "KOS_OIDC_USERNAME_PREFIX", K_OPTSTR, F(username_prefix), 0, 0, 0, NULL, "PREFIX",
	 "Prefix for user names. Unset: the Kubernetes rule (issuer URL + '#' unless the claim is email); '-': none."},
	{"oidc-groups-claim", "KOS_OIDC_GROUPS_CLAIM", K_STR, F(groups_claim), 0, 0, 0, NULL, "CLAIM",
	 "Claim holding the groups (string or array of strings). Unset: no groups."},
	{"oidc-groups-prefix", "KOS_OIDC_GROUPS_PREFIX", K_OPTSTR, F(groups_prefix), 0, 0, 0, NULL, "PREFIX",
	 "Prefix for group names."},
	{"oidc-required-claim", "KOS_OIDC_REQUIRED_CLAIM", K_KV, F(required_claims), F(nrequired_claims), 0, 0, NULL,
	 "KEY=VALUE", "Claim that must be present with this value. Repeatable, or k1=v1,k2=v2."},
	{"oidc-signing-algs", "KOS_OIDC_SIGNING_ALGS", K_ALGS, F(signing_algs), 0, 0, 0, "RS256", "ALGS",
	 "Comma list of accepted algorithms: RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA. "
	 "Default RS256 with the --oidc-* flags; with --authentication-config all but EdDSA (kube-apiserver's list "
	 "then), and this flag replaces that list."},
	{"extra-user-header-client-ip", "KOS_EXTRA_USER_HEADER_CLIENT_IP", K_BOOL, F(extra_client_ip), 0, 0, 0,
	 "false", NULL, "Add Impersonate-Extra-Remote-Client-Ip with the client's address."},
	{"trusted-proxies", "KOS_TRUSTED_PROXIES", K_LIST, F(trusted_proxies), F(ntrusted_proxies), 0, 0, NULL, "CIDR",
	 "Proxies in front of HAProxy whose X-Forwarded-For entries are believed: the client address (the "
	 "remote-client-ip extra, the logs' client_ip) is the right-most address that is not in these networks. "
	 "Repeatable, or a,b (e.g. 10.0.0.0/8,2001:db8::/32). Unset: trust nobody, the address is HAProxy's peer."},
	{"extra-user-headers", "KOS_EXTRA_USER_HEADERS", K_KV, F(extra_headers), F(nextra_headers), 0, 0, NULL,
	 "KEY=VALUE", "Add Impersonate-Extra-KEY: VALUE to every request. Repeatable, or k1=v1,k2=v2."},
	{"readiness-probe-port", "KOS_READINESS_PROBE_PORT", K_UINT, F(probe_port), 0, 0, 65535, "8080", "PORT",
	 "Port of the HTTP endpoint serving /ready, /healthz and /metrics; 0 = none."},
	{"readiness-probe-address", "KOS_READINESS_PROBE_ADDRESS", K_IPADDR, F(probe_address), 0, 0, 0, NULL, "IP",
	 "Address of that endpoint (default: all addresses, as kubelet probes need)."},
	{"listen", "KOS_AGENT_LISTEN", K_LISTEN, F(listen), 0, 0, 0, "127.0.0.1:12345", "ADDR",
	 "SPOP address for HAProxy: a loopback IP:PORT (127.0.0.0/8), [::1]:PORT or unix:/PATH; any other address "
	 "is refused, since every answer carries the service-account token. Its variable is KOS_AGENT_LISTEN, not "
	 "KOS_LISTEN (that one is HAProxy's frontend in conf/)."},
	{"service-account-token-file", "KOS_SERVICE_ACCOUNT_TOKEN_FILE", K_STR, F(sa_token_file), 0, 0, 0,
	 "/var/run/secrets/kubernetes.io/serviceaccount/token", "FILE",
	 "Token HAProxy sends to the API server; re-read when the file changes."},
	{"threads", "KOS_THREADS", K_UINT, F(threads), 0, 0, 256, "0", "N", "SPOP worker threads; 0 = one per CPU."},
	{"log-level", "KOS_LOG_LEVEL", K_LEVEL, F(log_level), 0, 0, 0, "info", "LEVEL",
	 "error, warn, info or debug. Logs are JSON lines on stderr."},
	{"max-groups", "KOS_MAX_GROUPS", K_UINT, F(max_groups), 0, 1, CONFIG_MAX_GROUPS_LIMIT,
	 STR(CONFIG_MAX_GROUPS_DEFAULT), "N",
	 "Most groups a user may have; more is refused (403), never cut. HAProxy's configuration must carry as many "
	 "Impersonate-Group lines: raise both together (conf/gen-rules.py --max N)."},
	{"max-token-bytes", "KOS_MAX_TOKEN_BYTES", K_SIZE, F(max_token_bytes), 0, 256, 1u << 20, "16384", "N",
	 "Longest bearer token accepted."},
	{"cache-entries", "KOS_CACHE_ENTRIES", K_SIZE, F(cache_entries), 0, 1, 1u << 24, "65536", "N",
	 "Verified tokens kept in memory."},
	{"cache-max-bytes", "KOS_CACHE_MAX_BYTES", K_SIZE, F(cache_max_bytes), 0, 1u << 20, 1ull << 40, "67108864",
	 "BYTES", "Memory the verified-token cache may hold, its table included (48 bytes per --cache-entries "
	 "slot): past it, entries are evicted. An identity is about as large as its token's claims."},
	{"cache-ttl", "KOS_CACHE_TTL", K_DURATION, F(cache_ttl_s), 0, 1, 86400, "600s", "DURATION",
	 "How long a verified token is cached (never past its exp): 600, 600s, 10m, 1h."},
	{"allow-reserved-identities", "KOS_ALLOW_RESERVED_IDENTITIES", K_BOOL, F(allow_reserved), 0, 0, 0, "false",
	 NULL, "Accept users and groups starting with system: (refused by default)."},
	/* Tuning knobs of the issuer client; the defaults are the production policy, tests shorten them. */
	{"jwks-min-refresh", "KOS_JWKS_MIN_REFRESH", K_DURATION, F(jwks_min_refresh_s), 0, 1, 86400, "60s",
	 "DURATION", "Tuning: shortest interval between scheduled JWKS refreshes (floor of the issuer's max-age)."},
	{"jwks-unknown-kid-interval", "KOS_JWKS_UNKNOWN_KID_INTERVAL", K_DURATION, F(unknown_kid_interval_s), 0, 1,
	 3600, "10s", "DURATION",
	 "Tuning: at most one JWKS download per interval however many tokens name an unknown kid."},
	{"oidc-retry-min-ms", "KOS_OIDC_RETRY_MIN_MS", K_UINT, F(retry_min_ms), 0, 10, 3600000, "1000", "MS",
	 "Tuning: first retry after a failed discovery or JWKS download, doubled each time (with jitter)."},
	{"oidc-retry-max-ms", "KOS_OIDC_RETRY_MAX_MS", K_UINT, F(retry_max_ms), 0, 10, 3600000, "60000", "MS",
	 "Tuning: ceiling of that backoff; not below --oidc-retry-min-ms."},
	{"oidc-http-timeout-ms", "KOS_OIDC_HTTP_TIMEOUT_MS", K_UINT, F(http_timeout_ms), 0, 100, 600000, "10000",
	 "MS", "Tuning: time allowed for one whole discovery or JWKS transfer."},
	{"unknown-kid-wait-ms", "KOS_UNKNOWN_KID_WAIT_MS", K_UINT, F(unknown_kid_wait_ms), 0, 0, 10000, "700", "MS",
	 "How long a request whose token names a key id missing from the JWKS waits for the refresh it triggers "
	 "(the first request after a key rotation then succeeds); 0 = answer 401 at once. Keep it below HAProxy's "
	 "SPOE timeout processing (KOS_SPOE_TIMEOUT in conf/, 1s)."},
	{"token-passthrough", "KOS_TOKEN_PASSTHROUGH", K_BOOL, F(token_passthrough), 0, 0, 0, "false", NULL,
	 "A bearer token that is not an OIDC token of the configured issuer(s) (not a JWT, or a JWT whose iss is "
	 "none of them) is checked with a TokenReview at --apiserver-url; if authenticated, HAProxy forwards the "
	 "request with the client's own Authorization and no impersonation (contract status 5). Needs RBAC: "
	 "create tokenreviews (authentication.k8s.io)."},
	{"token-passthrough-audiences", "KOS_TOKEN_PASSTHROUGH_AUDIENCES", K_LIST, F(tp_audiences),
	 F(ntp_audiences), 0, 0, NULL, "AUD",
	 "spec.audiences of the TokenReview; one of them must come back in status.audiences. Repeatable, or "
	 "a,b. Unset: none sent (the API server's own audiences apply)."},
	{"apiserver-url", "KOS_APISERVER_URL", K_URL, F(apiserver_url), 0, 0, 0, "https://kubernetes.default.svc",
	 "URL", "API server for TokenReviews (--token-passthrough). Not HAProxy's KOS_APISERVER (host:port): both "
	 "must name the same API server."},
	{"apiserver-ca-file", "KOS_APISERVER_CA_FILE", K_STR, F(apiserver_ca_file), 0, 0, 0,
	 "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "FILE", "PEM CA that verifies --apiserver-url."},
	{"token-passthrough-cache-ttl", "KOS_TOKEN_PASSTHROUGH_CACHE_TTL", K_DURATION, F(tp_cache_ttl_s), 0, 0, 10,
	 "10s", "DURATION", "How long a TokenReview verdict (authenticated or not) is reused for the same token; "
	 "0 = every request asks; at most 10s."},
	{"token-passthrough-rate", "KOS_TOKEN_PASSTHROUGH_RATE", K_UINT, F(tp_rate), 0, 1, 10000, "20", "N",
	 "At most N new TokenReviews per second (burst N); a token that would need one more is refused (401)."},
	{"token-passthrough-timeout-ms", "KOS_TOKEN_PASSTHROUGH_TIMEOUT_MS", K_UINT, F(tp_timeout_ms), 0, 50, 10000,
	 "700", "MS", "Time a TokenReview may take, waiting included (then 503). Keep it below HAProxy's SPOE "
	 "timeout processing (KOS_SPOE_TIMEOUT in conf/, 1s)."},
	{"allow-client-impersonation", "KOS_ALLOW_CLIENT_IMPERSONATION", K_BOOL, F(allow_client_imp), 0, 0, 0, "false",
	 NULL, "Honour the client's own Impersonate-User/-Group/-Uid/-Extra-* (kubectl --as, --as-group, --as-uid) "
	 "when the API server allows it: after the token is verified, one SubjectAccessReview per requested user, "
	 "group, uid and extra value, verb impersonate, for the authenticated user, at --apiserver-url (as "
	 "kube-apiserver's own impersonation filter asks its authorizer); all allowed: the impersonated identity is "
	 "forwarded with the extras originaluser.jetstack.io-user/-groups/-uid recording who acted; else 403 with the "
	 "API server's message. Off: every impersonation header is a 403. Needs RBAC: create subjectaccessreviews "
	 "(authorization.k8s.io), impersonate serviceaccounts, uids and those userextras; HAProxy needs slots for the "
	 "extras (KOS_EXTRA_<n>)."},
	{"client-impersonation-cache-ttl", "KOS_CLIENT_IMPERSONATION_CACHE_TTL", K_DURATION, F(ci_cache_ttl_s), 0, 0,
	 10, "10s", "DURATION", "How long a SubjectAccessReview verdict (allowed or not) is reused; 0 = every request "
	 "asks; at most 10s (1024 entries)."},
	{"client-impersonation-rate", "KOS_CLIENT_IMPERSONATION_RATE", K_UINT, F(ci_rate), 0, 1, 10000, "100", "N",
	 "At most N new SubjectAccessReviews per second (burst N); past it the request is a 503."},
	{"client-impersonation-timeout-ms", "KOS_CLIENT_IMPERSONATION_TIMEOUT_MS", K_UINT, F(ci_timeout_ms), 0, 50,
	 10000, "700", "MS", "Time a SubjectAccessReview may take, waiting included (then 503). Keep it below "
	 "HAProxy's SPOE timeout processing (KOS_SPOE_TIMEOUT in conf/, 1s)."},
	{"credential-id-extra", "KOS_CREDENTIAL_ID_EXTRA", K_BOOL, F(credential_id_extra), 0, 0, 0, "false", NULL,
	 "Add the extra authentication.kubernetes.io/credential-id = JTI=<jti> for tokens with a jti, as the API "
	 "server does itself since 1.32. Needs RBAC: impersonate "
	 "userextras/authentication.kubernetes.io/credential-id."},
	{"disable-impersonation", "KOS_DISABLE_IMPERSONATION", K_BOOL, F(disable_impersonation), 0, 0, 0, "false",
	 NULL, "For API servers that validate the same OIDC tokens themselves: a token the agent authenticates is "
	 "forwarded with the client's own Authorization, no Impersonate-* and no service-account token (contract "
	 "status 5); readiness then does not wait for --service-account-token-file (unless --token-passthrough). "
	 "Cannot be combined with extras (--extra-user-header-client-ip, --extra-user-headers, "
	 "--credential-id-extra)."},
	{"check-config", "KOS_CHECK_CONFIG", K_BOOL, F(check_config), 0, 0, 0, "false", NULL,
	 "Validate flags and files, print the effective configuration, exit 0 (valid) or 1."},
	{"help", NULL, K_ACTION, 0, 0, 0, 0, NULL, NULL, "Print this help and exit."},
	{"version", NULL, K_ACTION, 0, 0, 0, 0, NULL, NULL, "Print the version and exit."},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* kube-oidc-proxy flags that have no meaning here, and what replaces them. A silent ignore would leave an
 * operator believing a setting is in force. */
static const struct {
	const char *name;
	const char *instead;
} replaced[] = {
	/* Secure Serving (k8s.io/apiserver SecureServingOptions) */
	{"secure-port", "HAProxy's frontend bind (KOS_LISTEN in conf/) listens for kubectl"},
	{"bind-address", "HAProxy's frontend bind (KOS_LISTEN in conf/) listens for kubectl"},
	{"tls-cert-file", "HAProxy terminates TLS (KOS_TLS_CERT in conf/)"},
	{"tls-private-key-file", "HAProxy terminates TLS (KOS_TLS_CERT in conf/, certificate and key in one PEM)"},
	{"tls-cipher-suites", "HAProxy terminates TLS (ssl-default-bind-ciphersuites in conf/haproxy.cfg)"},
	{"tls-min-version", "HAProxy terminates TLS (ssl-min-ver in conf/haproxy.cfg)"},
	{"tls-sni-cert-key", "HAProxy terminates TLS (crt lists in conf/haproxy.cfg)"},
	{"cert-dir", "HAProxy terminates TLS (KOS_TLS_CERT in conf/)"},
	{"http2-max-streams-per-connection", "HAProxy's tune.h2.max-concurrent-streams"},
	/* Client (k8s.io/cli-runtime ConfigFlags, minus --as, --as-group, --cache-dir which kube-oidc-proxy
	 * removed): kube-oidc-proxy's own connection to the API server. Here HAProxy makes that connection and the
	 * agent makes its TokenReviews; neither reads a kubeconfig. */
	{"kubeconfig", "HAProxy reaches the API server (KOS_APISERVER, KOS_APISERVER_CA in conf/); the agent only "
		       "needs --service-account-token-file"},
	{"server", "HAProxy's KOS_APISERVER (host:port, in conf/) and, for TokenReviews, the agent's --apiserver-url"},
	{"tls-server-name", "HAProxy's KOS_APISERVER_NAME (in conf/) names the API server's certificate"},
	{"certificate-authority", "HAProxy's KOS_APISERVER_CA (in conf/) and the agent's --apiserver-ca-file"},
	{"insecure-skip-tls-verify", "not supported: HAProxy always verifies the API server (KOS_APISERVER_CA, "
				     "KOS_APISERVER_NAME in conf/)"},
	{"token", "the agent's --service-account-token-file is the credential HAProxy sends upstream"},
	{"client-certificate", "not supported: HAProxy authenticates to the API server with the service-account "
			       "token (--service-account-token-file)"},
	{"client-key", "not supported: HAProxy authenticates to the API server with the service-account token "
		       "(--service-account-token-file)"},
	{"username", "not supported (basic authentication): HAProxy authenticates to the API server with the "
		     "service-account token (--service-account-token-file)"},
	{"password", "not supported (basic authentication): HAProxy authenticates to the API server with the "
		     "service-account token (--service-account-token-file)"},
	{"cluster", "no kubeconfig is read: HAProxy's KOS_APISERVER and KOS_APISERVER_CA (in conf/)"},
	{"context", "no kubeconfig is read: HAProxy's KOS_APISERVER and KOS_APISERVER_CA (in conf/)"},
	{"user", "no kubeconfig is read: the credential is --service-account-token-file"},
	{"namespace", "nothing to set: each request names its own namespace, as it did through kube-oidc-proxy"},
	{"request-timeout", "HAProxy's KOS_TIMEOUT_SERVER (and KOS_TIMEOUT_STREAM for watches) in conf/"},
	/* Kube-OIDC-Proxy */
	{"flush-interval", "HAProxy streams responses as they come; nothing to set"},
	/* Audit (every other --audit-* flag gets the same answer, see config_parse) */
	{"audit-log-path", "use HAProxy's logs and the agent's JSON logs"},
	{"audit-policy-file", "use HAProxy's logs and the agent's JSON logs"},
	{"audit-webhook-config-file", "use HAProxy's logs and the agent's JSON logs"},
	/* Misc: klog and component-base's global flags */
	{"v", "use --log-level"},
	{"vmodule", "use --log-level"},
	{"logtostderr", "logs always go to stderr as JSON lines (--log-level)"},
	{"alsologtostderr", "logs always go to stderr as JSON lines (--log-level)"},
	{"stderrthreshold", "logs always go to stderr as JSON lines (--log-level)"},
	{"log-dir", "logs always go to stderr as JSON lines (--log-level)"},
	{"log-file", "logs always go to stderr as JSON lines (--log-level)"},
	{"log-file-max-size", "logs always go to stderr as JSON lines (--log-level)"},
	{"log-flush-frequency", "logs always go to stderr as JSON lines, one write per line"},
	{"log-backtrace-at", "logs always go to stderr as JSON lines (--log-level)"},
	{"add-dir-header", "logs always go to stderr as JSON lines (--log-level)"},
	{"skip-headers", "logs always go to stderr as JSON lines (--log-level)"},
	{"skip-log-headers", "logs always go to stderr as JSON lines (--log-level)"},
};

/* kube-oidc-proxy's one-letter shorthands (pflag): named, so that "-n" is not a bare "unknown flag". */
static const char *shorthand(char c)
{
	switch (c) {
	case 'h': return "help";
	case 'P': return "readiness-probe-port";
	case 'n': return "namespace";
	case 's': return "server";
	case 'v': return "v";
	default: return NULL;
	}
}

/* Copies at most n bytes of s for an error line, control bytes as '?', so the line stays one line. */
static const char *shown(const char *s, size_t n, char *out, size_t cap)
{
	size_t i;

	for (i = 0; i < n && s[i] != '\0' && i + 1 < cap; i++)
		out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	out[i] = '\0';
	return out;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int config_parse_duration(const char *s, unsigned *out)
{
	unsigned long long total = 0;
	bool any = false;

	if (s == NULL || *s == '\0')
		return -1;
	while (*s) {
		unsigned long long n = 0, mul = 1;

		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s)) {
			n = n * 10 + (unsigned)(*s - '0');
			if (n > UINT_MAX)
				return -1;
			s++;
		}
		switch (*s) {
		case 'h': mul = 3600; s++; break;
		case 'm': mul = 60; s++; break;
		case 's': mul = 1; s++; break;
		case '\0':
			if (any)
				return -1; /* "1h30" is ambiguous */
			break;
		default: return -1;
		}
		total += n * mul;
		if (total > UINT_MAX)
			return -1;
		any = true;
	}
	*out = (unsigned)total;
	return 0;
}

static int parse_ull(const char *s, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (*s == '\0' || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcasecmp(s, "yes") == 0) {
		*out = true;
		return 0;
	}
	if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0 || strcasecmp(s, "no") == 0) {
		*out = false;
		return 0;
	}
	return -1;
}

static const char *const algs_allowed[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
					   "ES256", "ES384", "ES512", "EdDSA"};

static int check_algs(const char *s, char *why, size_t whylen)
{
	const char *p = s;

	for (;;) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		bool ok = false;

		for (size_t i = 0; i < sizeof(algs_allowed) / sizeof(algs_allowed[0]); i++)
			if (strlen(algs_allowed[i]) == n && memcmp(algs_allowed[i], p, n) == 0)
				ok = true;
		if (!ok) {
			if (n >= 2 && (strncasecmp(p, "HS", 2) == 0 || (n == 4 && strncasecmp(p, "none", 4) == 0)))
				kx_seterr(why, whylen, "\"%.*s\" is never accepted for OIDC ID tokens", (int)(n > 16 ? 16 : n), p);
			else
				kx_seterr(why, whylen, "unknown algorithm \"%.*s\" (allowed: RS256 RS384 RS512 PS256 PS384 "
				       "PS512 ES256 ES384 ES512 EdDSA)", (int)(n > 16 ? 16 : n), p);
			return -1;
		}
		if (c == NULL)
			return 0;
		p = c + 1;
	}
}

static int check_url(const char *s, char *why, size_t whylen)
{
	const char *host;

	if (strncmp(s, "https://", 8) != 0) {
		kx_seterr(why, whylen, "must be an https:// URL");
		return -1;
	}
	host = s + 8;
	if (*host == '\0' || *host == '/' || *host == ':' || *host == '?' || *host == '#') {
		kx_seterr(why, whylen, "has no host");
		return -1;
	}
	if (strpbrk(s, " ?#") != NULL) {
		kx_seterr(why, whylen, "must not contain spaces, a query or a fragment");
		return -1;
	}
	return 0;
}

/* SPOP has no authentication and every allow answer carries the service-account token that may impersonate
 * anyone: only a peer that shares the agent's loopback (the pod's containers) or can open its unix socket may
 * talk to it. No network address, however firewalled (SECURITY.md, "Who can reach which port"). */
static int check_loopback(const char *host, size_t len, bool v6, char *why, size_t whylen)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned char a[16];
	bool loop;

	if (len == 0 || len >= sizeof(ip))
		goto refuse;
	memcpy(ip, host, len);
	ip[len] = '\0';
	if (v6) {
		static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		if (inet_pton(AF_INET6, ip, a) != 1)
			goto refuse;
		loop = memcmp(a, in6addr_loopback.s6_addr, 16) == 0 || (memcmp(a, v4mapped, 12) == 0 && a[12] == 127);
	} else {
		if (inet_pton(AF_INET, ip, a) != 1)
			goto refuse;
		loop = a[0] == 127;
	}
	if (loop)
		return 0;
refuse:
	kx_seterr(why, whylen, "SPOP is unauthenticated and the agent's answers carry the service-account token, so it "
	       "listens only on loopback (127.0.0.0/8, [::1]) or a unix socket: run it beside HAProxy (a sidecar), "
	       "see SECURITY.md");
	return -1;
}

static int check_listen(const char *s, char *why, size_t whylen)
{
	const char *colon;
	unsigned long long port;

	if (strncmp(s, "unix:", 5) == 0) {
		size_t n = strlen(s + 5);

		if (n == 0 || n >= 108) {
			kx_seterr(why, whylen, "unix socket path must be 1..107 bytes");
			return -1;
		}
		return 0;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		char ip[INET6_ADDRSTRLEN];
		unsigned char buf[16];

		if (close == NULL || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(ip)) {
			kx_seterr(why, whylen, "expected [IPV6]:PORT");
			return -1;
		}
		memcpy(ip, s + 1, (size_t)(close - s - 1));
		ip[close - s - 1] = '\0';
		if (inet_pton(AF_INET6, ip, buf) != 1) {
			kx_seterr(why, whylen, "\"%s\" is not an IPv6 address", ip);
			return -1;
		}
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			kx_seterr(why, whylen, "expected HOST:PORT, :PORT or unix:/PATH");
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			kx_seterr(why, whylen, "put an IPv6 address in brackets: [IPV6]:PORT");
			return -1;
		}
	}
	if (parse_ull(colon + 1, &port) != 0 || port > 65535) {
		kx_seterr(why, whylen, "port must be 0..65535");
		return -1;
	}
	if (s[0] == '[')
		return check_loopback(s + 1, (size_t)(colon - s) - 2, true, why, whylen);
	return check_loopback(s, (size_t)(colon - s), false, why, whylen);
}

static void kv_clear(config_kv *kv, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		free(kv[i].key);
		free(kv[i].value);
		kv[i].key = kv[i].value = NULL;
	}
	*n = 0;
}

static void list_clear(char **v, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		free(v[i]);
		v[i] = NULL;
	}
	*n = 0;
}

/* Adds "v" or "v1,v2" to a list; a repeated value is kept once; empty items are refused. */
static int list_add(char **v, size_t *n, const char *s, char *why, size_t whylen)
{
	const char *p = s;

	for (;;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p), i;

		if (len == 0) {
			kx_seterr(why, whylen, "empty value in the list");
			return CONFIG_E_USAGE;
		}
		for (i = 0; i < *n; i++)
			if (strlen(v[i]) == len && memcmp(v[i], p, len) == 0)
				break;
		if (i == *n) {
			if (*n == CONFIG_MAX_KV) {
				kx_seterr(why, whylen, "more than %d entries", CONFIG_MAX_KV);
				return CONFIG_E_USAGE;
			}
			v[i] = strndup(p, len);
			if (v[i] == NULL)
				return CONFIG_E_NOMEM;
			(*n)++;
		}
		if (c == NULL)
			return CONFIG_OK;
		p = c + 1;
	}
}

/* Adds "k=v" or "k1=v1,k2=v2" to a key=value list; a repeated key replaces the earlier value. */
static int kv_add(config_kv *kv, size_t *n, const char *s, char *why, size_t whylen)
{
	const char *p = s;

	if (*s == '\0') {
		kx_seterr(why, whylen, "expected KEY=VALUE");
		return CONFIG_E_USAGE;
	}
	for (;;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen, i;
		char *k, *v;

		if (eq == NULL || eq == p) {
			kx_seterr(why, whylen, "expected KEY=VALUE, got \"%.*s\"", (int)(len > 64 ? 64 : len), p);
			return CONFIG_E_USAGE;
		}
		klen = (size_t)(eq - p);
		k = strndup(p, klen);
		v = strndup(eq + 1, len - klen - 1);
		if (k == NULL || v == NULL) {
			free(k);
			free(v);
			return CONFIG_E_NOMEM;
		}
		for (i = 0; i < *n; i++)
			if (strcmp(kv[i].key, k) == 0)
				break;
		if (i == *n) {
			if (*n == CONFIG_MAX_KV) {
				free(k);
				free(v);
				kx_seterr(why, whylen, "more than %d entries", CONFIG_MAX_KV);
				return CONFIG_E_USAGE;
			}
			kv[i].key = k;
			(*n)++;
		} else {
			free(k);
			free(kv[i].value);
		}
		kv[i].value = v;
		if (c == NULL)
			return CONFIG_OK;
		p = c + 1;
	}
}

static int set_str(config *c, size_t off, const char *v)
{
	char **field = (char **)((char *)c + off);
	char *dup = strdup(v);

	if (dup == NULL)
		return CONFIG_E_NOMEM;
	free(*field);
	*field = dup;
	return CONFIG_OK;
}

/* Applies one value to c. src names where it came from ("--flag" or "KOS_X") for the error line. */
static int apply(config *c, const opt *o, const char *v, const char *src, char *err, size_t errlen)
{
	char why[200] = "";
	unsigned long long n;
	int rc;

	if (strlen(v) > CONFIG_MAX_ARG_BYTES) {
		kx_seterr(err, errlen, "%s: value longer than %d bytes", src, CONFIG_MAX_ARG_BYTES);
		return CONFIG_E_USAGE;
	}
	if (has_ctl(v)) {
		kx_seterr(err, errlen, "%s: value contains control characters", src);
		return CONFIG_E_USAGE;
	}
	switch (o->kind) {
	case K_STR:
	case K_URL:
	case K_ALGS:
	case K_LISTEN:
	case K_IPADDR:
		if (*v == '\0') {
			kx_seterr(err, errlen, "%s: must not be empty", src);
			return CONFIG_E_USAGE;
		}
		if (o->kind == K_URL && check_url(v, why, sizeof(why)) != 0)
			goto bad;
		if (o->kind == K_ALGS && check_algs(v, why, sizeof(why)) != 0)
			goto bad;
		if (o->kind == K_LISTEN && check_listen(v, why, sizeof(why)) != 0)
			goto bad;
		if (o->kind == K_IPADDR) {
			unsigned char buf[16];

			if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1) {
				kx_seterr(why, sizeof(why), "must be an IPv4 or IPv6 address");
				goto bad;
			}
		}
		return set_str(c, o->off, v);
	case K_OPTSTR:
		return set_str(c, o->off, v);
	case K_BOOL: {
		bool b;

		if (parse_bool(v, &b) != 0) {
			kx_seterr(why, sizeof(why), "must be true or false");
			goto bad;
		}
		*(bool *)((char *)c + o->off) = b;
		return CONFIG_OK;
	}
	case K_UINT:
	case K_SIZE:
		if (parse_ull(v, &n) != 0 || n < o->min || n > o->max) {
			kx_seterr(why, sizeof(why), "must be a number in %llu..%llu", o->min, o->max);
			goto bad;
		}
		if (o->kind == K_UINT)
			*(unsigned *)((char *)c + o->off) = (unsigned)n;
		else
			*(size_t *)((char *)c + o->off) = (size_t)n;
		return CONFIG_OK;
	case K_DURATION: {
		unsigned d;

		if (config_parse_duration(v, &d) != 0 || d < o->min || d > o->max) {
			kx_seterr(why, sizeof(why), "must be a duration in %llus..%llus (e.g. 600s, 10m, 1h)", o->min,
			       o->max);
			goto bad;
		}
		*(unsigned *)((char *)c + o->off) = d;
		return CONFIG_OK;
	}
	case K_LEVEL: {
		enum log_level l;

		if (log_level_parse(v, &l) != 0) {
			kx_seterr(why, sizeof(why), "must be error, warn, info or debug");
			goto bad;
		}
		*(enum log_level *)((char *)c + o->off) = l;
		return CONFIG_OK;
	}
	case K_KV:
		rc = kv_add((config_kv *)((char *)c + o->off), (size_t *)((char *)c + o->off_n), v, why, sizeof(why));
		if (rc == CONFIG_E_USAGE)
			goto bad;
		return rc;
	case K_LIST:
		rc = list_add((char **)((char *)c + o->off), (size_t *)((char *)c + o->off_n), v, why, sizeof(why));
		if (rc == CONFIG_E_USAGE)
			goto bad;
		return rc;
	case K_ACTION:
		break;
	}
	return CONFIG_OK;
bad:
	kx_seterr(err, errlen, "%s: %s", src, why);
	return CONFIG_E_USAGE;
}

static const opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
			return &opts[i];
	return NULL;
}

static const char *find_env(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	if (envp == NULL)
		return NULL;
	for (; *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

void config_free(config *c)
{
	for (size_t i = 0; i < NOPTS; i++) {
		const opt *o = &opts[i];

		switch (o->kind) {
		case K_STR:
		case K_OPTSTR:
		case K_URL:
		case K_ALGS:
		case K_LISTEN:
		case K_IPADDR: {
			char **f = (char **)((char *)c + o->off);

			free(*f);
			*f = NULL;
			break;
		}
		case K_KV:
			kv_clear((config_kv *)((char *)c + o->off), (size_t *)((char *)c + o->off_n));
			break;
		case K_LIST:
			list_clear((char **)((char *)c + o->off), (size_t *)((char *)c + o->off_n));
			break;
		default:
			break;
		}
	}
}

int config_parse(int argc, char *const *argv, char *const *envp, config *out, char *err, size_t errlen)
{
	bool given[NOPTS] = {false};
	config c;
	char src[96];
	int rc = CONFIG_OK;

	memset(&c, 0, sizeof(c));
	/* --help and --version win over any error elsewhere on the line, as users expect */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return CONFIG_HELP;
		if (strcmp(argv[i], "--version") == 0)
			return CONFIG_VERSION;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *eq, *val;
		char sh[72];
		size_t nlen;
		const opt *o;

		if (strncmp(a, "--", 2) != 0 || a[2] == '\0' || a[2] == '-') {
			const char *lng = a[0] == '-' && a[1] != '\0' && (a[2] == '\0' || a[2] == '=') ? shorthand(a[1]) : NULL;

			if (lng != NULL)
				kx_seterr(err, errlen, "-%c is kube-oidc-proxy's shorthand for --%s: spell it --%s here", a[1], lng,
				       lng);
			else if (a[0] == '-' && a[1] != '-' && a[1] != '\0')
				kx_seterr(err, errlen, "unknown flag %s (flags are spelled --name, see --help)",
				       shown(a, 64, sh, sizeof(sh)));
			else
				kx_seterr(err, errlen, "unexpected argument \"%s\" (see --help)", shown(a, 64, sh, sizeof(sh)));
			rc = CONFIG_E_USAGE;
			goto out;
		}
		name = a + 2;
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		o = find_opt(name, nlen);
		if (o == NULL) {
			for (size_t k = 0; k < sizeof(replaced) / sizeof(replaced[0]); k++) {
				if (strlen(replaced[k].name) == nlen && memcmp(replaced[k].name, name, nlen) == 0) {
					kx_seterr(err, errlen, "--%s is a kube-oidc-proxy flag with no meaning here: %s",
					       replaced[k].name, replaced[k].instead);
					rc = CONFIG_E_USAGE;
					goto out;
				}
			}
			if (nlen > 6 && strncmp(name, "audit-", 6) == 0)
				kx_seterr(err, errlen, "--%s is a kube-oidc-proxy flag with no meaning here: use HAProxy's "
				       "logs and the agent's JSON logs", shown(name, nlen > 64 ? 64 : nlen, sh, sizeof(sh)));
			else
				kx_seterr(err, errlen, "unknown flag --%s (see --help)",
				       shown(name, nlen > 64 ? 64 : nlen, sh, sizeof(sh)));
			rc = CONFIG_E_USAGE;
			goto out;
		}
		if (o->kind == K_ACTION) {
			kx_seterr(err, errlen, "--%s takes no value", o->name);
			rc = CONFIG_E_USAGE;
			goto out;
		}
		snprintf(src, sizeof(src), "--%s", o->name);
		if (eq != NULL) {
			val = eq + 1;
		} else if (o->kind == K_BOOL) {
			val = "true";
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			kx_seterr(err, errlen, "--%s needs a value (%s)", o->name, o->arg ? o->arg : "VALUE");
			rc = CONFIG_E_USAGE;
			goto out;
		}
		/* the last of a repeated single-valued flag wins; repeatable ones accumulate */
		rc = apply(&c, o, val, src, err, errlen);
		if (rc != CONFIG_OK)
			goto out;
		given[o - opts] = true;
	}
	for (size_t i = 0; i < NOPTS; i++) {
		const opt *o = &opts[i];
		const char *v;

		if (given[i] || o->env == NULL)
			continue;
		v = find_env(envp, o->env);
		if (v != NULL) {
			/* an empty variable means "not set", as a manifest with value: "" usually intends */
			if (*v == '\0' && o->kind != K_OPTSTR)
				v = NULL;
		}
		if (v != NULL) {
			rc = apply(&c, o, v, o->env, err, errlen);
			if (rc != CONFIG_OK)
				goto out;
			given[i] = true;
		} else if (o->def != NULL) {
			snprintf(src, sizeof(src), "default of --%s", o->name);
			rc = apply(&c, o, o->def, src, err, errlen);
			if (rc != CONFIG_OK)
				goto out;
		}
	}
	if (c.authn_config != NULL) {
		static const char *const excl[] = {"oidc-issuer-url", "oidc-client-id", "oidc-ca-file",
						   "oidc-username-claim", "oidc-username-prefix", "oidc-groups-claim",
						   "oidc-groups-prefix", "oidc-required-claim"};
		const opt *algs = find_opt("oidc-signing-algs", strlen("oidc-signing-algs"));

		for (size_t k = 0; k < sizeof(excl) / sizeof(excl[0]); k++) {
			const opt *o = find_opt(excl[k], strlen(excl[k]));

			if (o != NULL && given[o - opts]) {
				kx_seterr(err, errlen, "--authentication-config and --%s (or %s) are mutually exclusive: "
				       "the configuration file defines the issuers, audiences and claim mappings",
				       o->name, o->env);
				rc = CONFIG_E_USAGE;
				goto out;
			}
		}
		/* kube-apiserver accepts every algorithm of its allow-list when a configuration file is used (the file
		 * has no field for it; the key must still fit the token's alg). Our RS256 default belongs to the flags;
		 * --oidc-signing-algs given here replaces the list for every issuer of the file (to narrow it, or to
		 * add EdDSA, which the API server does not know). */
		if (algs != NULL && !given[algs - opts]) {
			free(c.signing_algs);
			c.signing_algs = strdup(CONFIG_FILE_SIGNING_ALGS);
			if (c.signing_algs == NULL) {
				rc = CONFIG_E_NOMEM;
				goto out;
			}
		}
	} else if (c.issuer_url == NULL) {
		kx_seterr(err, errlen, "--oidc-issuer-url is required (or KOS_OIDC_ISSUER_URL)");
		rc = CONFIG_E_USAGE;
		goto out;
	}
	if (c.authn_config == NULL && c.client_id == NULL) {
		kx_seterr(err, errlen, "--oidc-client-id is required (or KOS_OIDC_CLIENT_ID)");
		rc = CONFIG_E_USAGE;
		goto out;
	}
	for (size_t i = 0; i < c.nextra_headers; i++) {
		const char *why = identity_value_problem(c.extra_headers[i].value);

		/* Extra keys are lower case on the API server's side (an AuthenticationConfiguration refuses any other;
		 * kube-oidc-proxy's keys reached it lower-cased, as every header name does): keep that meaning. */
		for (char *k = c.extra_headers[i].key; *k; k++)
			*k = (char)tolower((unsigned char)*k);
		/* the same rule as a token's values: a header must carry it unchanged (identity.h) */
		if (why != NULL) {
			kx_seterr(err, errlen, "--extra-user-headers: the value of %s: %s (an HTTP header cannot carry it "
			       "unchanged)", c.extra_headers[i].key, why);
			rc = CONFIG_E_USAGE;
			goto out;
		}
		if (strcasecmp(c.extra_headers[i].key, "remote-client-ip") == 0 && c.extra_client_ip) {
			kx_seterr(err, errlen, "--extra-user-headers: key remote-client-ip clashes with "
			       "--extra-user-header-client-ip");
			rc = CONFIG_E_USAGE;
			goto out;
		}
	}
	for (size_t i = 0; i < c.ntrusted_proxies; i++) {
		const char *t = c.trusted_proxies[i];
		caddr_net net;
		int r = caddr_parse_net((const uint8_t *)t, strlen(t), &net);
		char sh[72];

		if (r != 0 || caddr_list_add(&c.trusted, &net) != 0) {
			kx_seterr(err, errlen, "--trusted-proxies: \"%s\" %s", shown(t, 64, sh, sizeof(sh)),
			       r == CADDR_E_HOSTBITS ? "has host bits set (write the network address, e.g. 10.0.0.0/8)"
						     : "is not an IPv4 or IPv6 address or CIDR");
			rc = CONFIG_E_USAGE;
			goto out;
		}
	}
	/* kube-oidc-proxy refuses the same combination: without impersonation there is no header to carry them */
	if (c.disable_impersonation && (c.extra_client_ip || c.nextra_headers > 0 || c.credential_id_extra)) {
		kx_seterr(err, errlen, "--disable-impersonation forwards the client's own credential: it cannot carry "
		       "extras (--extra-user-header-client-ip, --extra-user-headers, --credential-id-extra)");
		rc = CONFIG_E_USAGE;
		goto out;
	}
	/* the two answer impersonation headers in opposite ways: forwarding an authorized impersonated identity needs
	 * Impersonate-* and the service-account token, which --disable-impersonation promises never to send */
	if (c.disable_impersonation && c.allow_client_imp) {
		kx_seterr(err, errlen, "--disable-impersonation forwards the client's own credential without impersonation: "
		       "it cannot be combined with --allow-client-impersonation");
		rc = CONFIG_E_USAGE;
		goto out;
	}
	if (cache_table_bytes(c.cache_entries) > c.cache_max_bytes) {
		kx_seterr(err, errlen, "--cache-entries %zu needs %zu bytes of table, more than --cache-max-bytes %zu",
		       c.cache_entries, cache_table_bytes(c.cache_entries), c.cache_max_bytes);
		rc = CONFIG_E_USAGE;
		goto out;
	}
	if (c.retry_min_ms > c.retry_max_ms) {
		kx_seterr(err, errlen, "--oidc-retry-min-ms %u is above --oidc-retry-max-ms %u", c.retry_min_ms,
		       c.retry_max_ms);
		rc = CONFIG_E_USAGE;
		goto out;
	}
	*out = c;
	return CONFIG_OK;
out:
	config_free(&c);
	return rc;
}

static int check_readable(const char *what, const char *path, bool need_content, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		kx_seterr(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		kx_seterr(err, errlen, "%s %s: not a regular file", what, path);
		close(fd);
		return -1;
	}
	if (need_content && st.st_size == 0) {
		kx_seterr(err, errlen, "%s %s: empty", what, path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int config_check_files(const config *c, char *err, size_t errlen)
{
	if (c->authn_config != NULL &&
	    check_readable("--authentication-config", c->authn_config, true, err, errlen) != 0)
		return -1;
	if (c->ca_file != NULL && check_readable("--oidc-ca-file", c->ca_file, true, err, errlen) != 0)
		return -1;
	if (check_readable("--service-account-token-file", c->sa_token_file, true, err, errlen) != 0)
		return -1;
	if ((c->token_passthrough || c->allow_client_imp) &&
	    check_readable("--apiserver-ca-file", c->apiserver_ca_file, true, err, errlen) != 0)
		return -1;
	return 0;
}

void config_usage(FILE *f)
{
	fprintf(f, "Usage: kube-oidc-spoa --oidc-issuer-url=URL --oidc-client-id=ID [flags]\n"
		   "       kube-oidc-spoa --authentication-config=FILE [flags]\n"
		   "       kube-oidc-spoa explain [--token-file FILE] <the same flags>   (token on stdin without "
		   "--token-file)\n\n"
		   "HAProxy SPOE agent: verifies OIDC ID tokens for Kubernetes and returns the identity HAProxy\n"
		   "impersonates towards the API server. Flags keep kube-oidc-proxy's names.\n\n"
		   "Every flag can also be set by an environment variable: KOS_ + the flag name in upper snake case\n"
		   "(--oidc-issuer-url -> KOS_OIDC_ISSUER_URL; one exception: --listen is KOS_AGENT_LISTEN). A flag on\n"
		   "the command line wins over its variable. Repeatable flags take k1=v1,k2=v2 in their variable.\n"
		   "Both --flag VALUE and --flag=VALUE work; booleans are --flag or --flag=true|false.\n\n");
	for (size_t i = 0; i < NOPTS; i++) {
		const opt *o = &opts[i];
		char left[96];

		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(f, "  %s\n      %s", left, o->help);
		if (o->def != NULL && o->kind != K_BOOL)
			fprintf(f, " Default: %s.", o->def);
		if (o->env != NULL)
			fprintf(f, " Env: %s.", o->env);
		fputc('\n', f);
	}
	fprintf(f, "\nkube-oidc-proxy flags about TLS, listening, the API server connection and auditing are\n"
		   "HAProxy's business here (see conf/); giving one is an error that says what replaces it.\n"
		   "Exit status: 0 ok, 1 runtime or --check-config failure, 2 wrong flag or value.\n");
}

static void print_kv(FILE *f, const char *name, const config_kv *kv, size_t n)
{
	if (n == 0)
		fprintf(f, "%s: \n", name);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s: %s=%s\n", name, kv[i].key, kv[i].value);
}

void config_print(const config *c, FILE *f)
{
#define S(x) ((x) ? (x) : "")
	if (c->authn_config != NULL)
		fprintf(f, "authentication-config: %s\n", c->authn_config);
	fprintf(f, "oidc-issuer-url: %s\n", S(c->issuer_url));
	fprintf(f, "oidc-client-id: %s\n", S(c->client_id));
	fprintf(f, "oidc-ca-file: %s\n", S(c->ca_file));
	fprintf(f, "oidc-username-claim: %s\n", S(c->username_claim));
	fprintf(f, "oidc-username-prefix: %s\n", c->username_prefix ? c->username_prefix : "(unset)");
	fprintf(f, "oidc-groups-claim: %s\n", S(c->groups_claim));
	fprintf(f, "oidc-groups-prefix: %s\n", S(c->groups_prefix));
	print_kv(f, "oidc-required-claim", c->required_claims, c->nrequired_claims);
	fprintf(f, "oidc-signing-algs: %s\n", S(c->signing_algs));
	fprintf(f, "extra-user-header-client-ip: %s\n", c->extra_client_ip ? "true" : "false");
	print_kv(f, "extra-user-headers", c->extra_headers, c->nextra_headers);
	fprintf(f, "trusted-proxies: ");
	for (size_t i = 0; i < c->ntrusted_proxies; i++)
		fprintf(f, "%s%s", i ? "," : "", c->trusted_proxies[i]);
	fprintf(f, "\n");
	fprintf(f, "readiness-probe-port: %u\n", c->probe_port);
	fprintf(f, "readiness-probe-address: %s\n", c->probe_address ? c->probe_address : "(all)");
	fprintf(f, "listen: %s\n", S(c->listen));
	fprintf(f, "service-account-token-file: %s\n", S(c->sa_token_file));
	fprintf(f, "threads: %u\n", c->threads);
	fprintf(f, "log-level: %s\n", log_level_name(c->log_level));
	fprintf(f, "max-groups: %u\n", c->max_groups);
	fprintf(f, "max-token-bytes: %zu\n", c->max_token_bytes);
	fprintf(f, "cache-entries: %zu\n", c->cache_entries);
	fprintf(f, "cache-max-bytes: %zu\n", c->cache_max_bytes);
	fprintf(f, "cache-ttl: %us\n", c->cache_ttl_s);
	fprintf(f, "allow-reserved-identities: %s\n", c->allow_reserved ? "true" : "false");
	fprintf(f, "jwks-min-refresh: %us\n", c->jwks_min_refresh_s);
	fprintf(f, "jwks-unknown-kid-interval: %us\n", c->unknown_kid_interval_s);
	fprintf(f, "oidc-retry-min-ms: %u\n", c->retry_min_ms);
	fprintf(f, "oidc-retry-max-ms: %u\n", c->retry_max_ms);
	fprintf(f, "oidc-http-timeout-ms: %u\n", c->http_timeout_ms);
	fprintf(f, "unknown-kid-wait-ms: %u\n", c->unknown_kid_wait_ms);
	fprintf(f, "token-passthrough: %s\n", c->token_passthrough ? "true" : "false");
	fprintf(f, "token-passthrough-audiences: ");
	for (size_t i = 0; i < c->ntp_audiences; i++)
		fprintf(f, "%s%s", i ? "," : "", c->tp_audiences[i]);
	fprintf(f, "\n");
	fprintf(f, "apiserver-url: %s\n", S(c->apiserver_url));
	fprintf(f, "apiserver-ca-file: %s\n", S(c->apiserver_ca_file));
	fprintf(f, "token-passthrough-cache-ttl: %us\n", c->tp_cache_ttl_s);
	fprintf(f, "token-passthrough-rate: %u\n", c->tp_rate);
	fprintf(f, "token-passthrough-timeout-ms: %u\n", c->tp_timeout_ms);
	fprintf(f, "allow-client-impersonation: %s\n", c->allow_client_imp ? "true" : "false");
	fprintf(f, "client-impersonation-cache-ttl: %us\n", c->ci_cache_ttl_s);
	fprintf(f, "client-impersonation-rate: %u\n", c->ci_rate);
	fprintf(f, "client-impersonation-timeout-ms: %u\n", c->ci_timeout_ms);
	fprintf(f, "credential-id-extra: %s\n", c->credential_id_extra ? "true" : "false");
	fprintf(f, "disable-impersonation: %s\n", c->disable_impersonation ? "true" : "false");
#undef S
}

void config_log(const config *c)
{
	log_line l;

	log_begin(&l, LOG_LEVEL_INFO, "config");
	log_str(&l, "version", KOS_VERSION);
	log_str(&l, "authentication_config", c->authn_config);
	log_str(&l, "oidc_issuer_url", c->issuer_url);
	log_str(&l, "oidc_client_id", c->client_id);
	log_str(&l, "oidc_ca_file", c->ca_file);
	log_str(&l, "oidc_username_claim", c->username_claim);
	log_str(&l, "oidc_username_prefix", c->username_prefix);
	log_str(&l, "oidc_groups_claim", c->groups_claim);
	log_str(&l, "oidc_groups_prefix", c->groups_prefix);
	log_uint(&l, "oidc_required_claims", c->nrequired_claims);
	log_str(&l, "oidc_signing_algs", c->signing_algs);
	log_bool(&l, "extra_user_header_client_ip", c->extra_client_ip);
	log_uint(&l, "extra_user_headers", c->nextra_headers);
	log_uint(&l, "trusted_proxies", c->ntrusted_proxies);
	log_uint(&l, "readiness_probe_port", c->probe_port);
	log_str(&l, "readiness_probe_address", c->probe_address);
	log_str(&l, "listen", c->listen);
	log_str(&l, "service_account_token_file", c->sa_token_file);
	log_uint(&l, "threads", c->threads);
	log_str(&l, "log_level", log_level_name(c->log_level));
	log_uint(&l, "max_groups", c->max_groups);
	log_uint(&l, "max_token_bytes", c->max_token_bytes);
	log_uint(&l, "cache_entries", c->cache_entries);
	log_uint(&l, "cache_max_bytes", c->cache_max_bytes);
	log_uint(&l, "cache_ttl_s", c->cache_ttl_s);
	log_bool(&l, "allow_reserved_identities", c->allow_reserved);
	log_uint(&l, "jwks_min_refresh_s", c->jwks_min_refresh_s);
	log_uint(&l, "jwks_unknown_kid_interval_s", c->unknown_kid_interval_s);
	log_uint(&l, "oidc_retry_min_ms", c->retry_min_ms);
	log_uint(&l, "oidc_retry_max_ms", c->retry_max_ms);
	log_uint(&l, "oidc_http_timeout_ms", c->http_timeout_ms);
	log_uint(&l, "unknown_kid_wait_ms", c->unknown_kid_wait_ms);
	log_bool(&l, "token_passthrough", c->token_passthrough);
	log_uint(&l, "token_passthrough_audiences", c->ntp_audiences);
	log_str(&l, "apiserver_url", c->apiserver_url);
	log_str(&l, "apiserver_ca_file", c->apiserver_ca_file);
	log_uint(&l, "token_passthrough_cache_ttl_s", c->tp_cache_ttl_s);
	log_uint(&l, "token_passthrough_rate", c->tp_rate);
	log_uint(&l, "token_passthrough_timeout_ms", c->tp_timeout_ms);
	log_bool(&l, "allow_client_impersonation", c->allow_client_imp);
	log_uint(&l, "client_impersonation_cache_ttl_s", c->ci_cache_ttl_s);
	log_uint(&l, "client_impersonation_rate", c->ci_rate);
	log_uint(&l, "client_impersonation_timeout_ms", c->ci_timeout_ms);
	log_bool(&l, "credential_id_extra", c->credential_id_extra);
	log_bool(&l, "disable_impersonation", c->disable_impersonation);
	log_end(&l);
}
