/* test_config.c — flags, environment, defaults and the one-line errors, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define ISS "--oidc-issuer-url=https://issuer.example"
#define CID "--oidc-client-id=kos"

typedef struct ccase {
	const char *argv[8];
	const char *env[4];
	int rc;
	const char *err_has; /* substring of the error line, for failures */
} ccase;

/* Each bad fixture names the verdict it expects and a word the error line must contain. */
static const ccase cases[] = {
	{{ISS, CID}, {NULL}, CONFIG_OK, NULL},
	{{"--oidc-issuer-url", "https://i.example", "--oidc-client-id", "kos"}, {NULL}, CONFIG_OK, NULL},
	{{CID}, {NULL}, CONFIG_E_USAGE, "--oidc-issuer-url is required"},
	{{ISS}, {NULL}, CONFIG_E_USAGE, "--oidc-client-id is required"},
	{{"--oidc-issuer-url=http://i.example", CID}, {NULL}, CONFIG_E_USAGE, "https"},
	{{"--oidc-issuer-url=https://", CID}, {NULL}, CONFIG_E_USAGE, "no host"},
	{{"--oidc-issuer-url=https://i.example/?a=b", CID}, {NULL}, CONFIG_E_USAGE, "query"},
	{{ISS, CID, "--nope"}, {NULL}, CONFIG_E_USAGE, "unknown flag --nope"},
	{{ISS, CID, "--a\nb"}, {NULL}, CONFIG_E_USAGE, "unknown flag --a?b"}, /* found by fuzz_config */
	{{ISS, CID, "-x"}, {NULL}, CONFIG_E_USAGE, "unknown flag -x"},
	{{ISS, CID, "stray"}, {NULL}, CONFIG_E_USAGE, "unexpected argument"},
	{{ISS, CID, "--secure-port=443"}, {NULL}, CONFIG_E_USAGE, "HAProxy's frontend bind"},
	{{ISS, CID, "--tls-cert-file", "x.pem"}, {NULL}, CONFIG_E_USAGE, "HAProxy terminates TLS"},
	{{ISS, CID, "--kubeconfig=/k"}, {NULL}, CONFIG_E_USAGE, "KOS_APISERVER"},
	{{ISS, CID, "--audit-log-maxage=3"}, {NULL}, CONFIG_E_USAGE, "HAProxy's logs"},
	{{ISS, CID, "--threads"}, {NULL}, CONFIG_E_USAGE, "needs a value"},
	{{ISS, CID, "--threads=x"}, {NULL}, CONFIG_E_USAGE, "0..256"},
	{{ISS, CID, "--threads=999"}, {NULL}, CONFIG_E_USAGE, "0..256"},
	{{ISS, CID, "--max-groups=4097"}, {NULL}, CONFIG_E_USAGE, "1..4096"},
	{{ISS, CID, "--max-groups=0"}, {NULL}, CONFIG_E_USAGE, "1..4096"},
	{{ISS, CID, "--max-groups=300"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--readiness-probe-port=70000"}, {NULL}, CONFIG_E_USAGE, "0..65535"},
	{{ISS, CID, "--readiness-probe-address=localhost"}, {NULL}, CONFIG_E_USAGE, "IPv4 or IPv6"},
	{{ISS, CID, "--oidc-signing-algs=RS256,HS256"}, {NULL}, CONFIG_E_USAGE, "never accepted"},
	{{ISS, CID, "--oidc-signing-algs=none"}, {NULL}, CONFIG_E_USAGE, "never accepted"},
	{{ISS, CID, "--oidc-signing-algs=RS999"}, {NULL}, CONFIG_E_USAGE, "unknown algorithm"},
	{{ISS, CID, "--oidc-signing-algs=RS256,"}, {NULL}, CONFIG_E_USAGE, "unknown algorithm"},
	{{ISS, CID, "--oidc-signing-algs=ES256,EdDSA,PS512"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--oidc-required-claim=novalue"}, {NULL}, CONFIG_E_USAGE, "KEY=VALUE"},
	{{ISS, CID, "--oidc-required-claim==v"}, {NULL}, CONFIG_E_USAGE, "KEY=VALUE"},
	{{ISS, CID, "--extra-user-headers=a=b,c"}, {NULL}, CONFIG_E_USAGE, "KEY=VALUE"},
	{{ISS, CID, "--listen=nocolon"}, {NULL}, CONFIG_E_USAGE, "HOST:PORT"},
	{{ISS, CID, "--listen=::1:80"}, {NULL}, CONFIG_E_USAGE, "brackets"},
	{{ISS, CID, "--listen=[::1]:99999"}, {NULL}, CONFIG_E_USAGE, "0..65535"},
	{{ISS, CID, "--listen=unix:"}, {NULL}, CONFIG_E_USAGE, "unix socket path"},
	{{ISS, CID, "--listen=[::1]:12345"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--listen=unix:/run/kos.sock"}, {NULL}, CONFIG_OK, NULL},
	/* SPOP answers carry the service-account token: loopback or a unix socket only (issue 14, finding 2) */
	{{ISS, CID, "--listen=127.0.0.1:12345"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--listen=127.9.8.7:1"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--listen=[::ffff:127.0.0.1]:1"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--listen=:12345"}, {NULL}, CONFIG_E_USAGE, "loopback"},
	{{ISS, CID, "--listen=0.0.0.0:12345"}, {NULL}, CONFIG_E_USAGE, "loopback"},
	{{ISS, CID, "--listen=10.0.0.7:12345"}, {NULL}, CONFIG_E_USAGE, "loopback"},
	{{ISS, CID, "--listen=128.0.0.1:12345"}, {NULL}, CONFIG_E_USAGE, "loopback"},
	{{ISS, CID, "--listen=[::]:12345"}, {NULL}, CONFIG_E_USAGE, "loopback"},
	{{ISS, CID, "--listen=[fe80::1]:12345"}, {NULL}, CONFIG_E_USAGE, "loopback"},
	{{ISS, CID, "--listen=[::ffff:10.0.0.1]:1"}, {NULL}, CONFIG_E_USAGE, "loopback"},
	{{ISS, CID, "--listen=localhost:12345"}, {NULL}, CONFIG_E_USAGE, "loopback"},
	{{ISS, CID}, {"KOS_AGENT_LISTEN=:12345", NULL}, CONFIG_E_USAGE, "loopback"},
	{{ISS, CID, "--log-level=loud"}, {NULL}, CONFIG_E_USAGE, "error, warn, info or debug"},
	{{ISS, CID, "--cache-ttl=10x"}, {NULL}, CONFIG_E_USAGE, "duration"},
	{{ISS, CID, "--cache-ttl=0"}, {NULL}, CONFIG_E_USAGE, "duration"},
	{{ISS, CID, "--extra-user-header-client-ip=maybe"}, {NULL}, CONFIG_E_USAGE, "true or false"},
	{{ISS, CID, "--extra-user-header-client-ip", "--extra-user-headers=remote-client-ip=x"}, {NULL},
	 CONFIG_E_USAGE, "clashes"},
	/* --trusted-proxies (issue 21) and the kube-oidc-proxy flags answered there */
	{{ISS, CID, "--trusted-proxies=10.0.0.0/8,2001:db8::/32", "--trusted-proxies=192.0.2.7"}, {NULL}, CONFIG_OK,
	 NULL},
	{{ISS, CID}, {"KOS_TRUSTED_PROXIES=10.0.0.0/8,35.191.0.0/16", NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--trusted-proxies=10.0.0.1/8"}, {NULL}, CONFIG_E_USAGE, "host bits"},
	{{ISS, CID, "--trusted-proxies=lb.example.com"}, {NULL}, CONFIG_E_USAGE, "not an IPv4 or IPv6"},
	{{ISS, CID, "--trusted-proxies=10.0.0.0/8 192.168.0.0/16"}, {NULL}, CONFIG_E_USAGE, "not an IPv4 or IPv6"},
	{{ISS, CID, "--disable-impersonation"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--disable-impersonation", "--extra-user-header-client-ip"}, {NULL}, CONFIG_E_USAGE,
	 "cannot carry extras"},
	{{ISS, CID, "--disable-impersonation", "--allow-client-impersonation"}, {NULL}, CONFIG_E_USAGE,
	 "cannot be combined with --allow-client-impersonation"},
	{{ISS, CID, "--server=https://k8s:6443"}, {NULL}, CONFIG_E_USAGE, "KOS_APISERVER"},
	{{ISS, CID, "-s", "https://k8s:6443"}, {NULL}, CONFIG_E_USAGE, "shorthand for --server"},
	{{ISS, CID, "--audit-log-maxbackup=3"}, {NULL}, CONFIG_E_USAGE, "HAProxy's logs"},
	{{ISS, CID, "--oidc-client-id="}, {NULL}, CONFIG_E_USAGE, "must not be empty"},
	{{ISS, CID, "--help=1"}, {NULL}, CONFIG_E_USAGE, "takes no value"},
	{{"--oidc-client-id=kos"}, {"KOS_OIDC_ISSUER_URL=https://env.example"}, CONFIG_OK, NULL},
	{{ISS, CID}, {"KOS_THREADS=abc"}, CONFIG_E_USAGE, "KOS_THREADS"},
	{{ISS, CID, "--threads=2"}, {"KOS_THREADS=abc"}, CONFIG_OK, NULL}, /* the flag wins: env not read */
	{{ISS, CID}, {"KOS_LISTEN=127.0.0.1:6443"}, CONFIG_OK, NULL},     /* HAProxy's variable, not ours */
	{{ISS, CID, "--help"}, {NULL}, CONFIG_HELP, NULL},
	{{"--nope", "--help"}, {NULL}, CONFIG_HELP, NULL},
	{{"--version"}, {NULL}, CONFIG_VERSION, NULL},
	/* issuer tuning knobs */
	{{ISS, CID, "--jwks-min-refresh=2s", "--jwks-unknown-kid-interval=1s"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--jwks-min-refresh=0"}, {NULL}, CONFIG_E_USAGE, "duration"},
	{{ISS, CID, "--jwks-unknown-kid-interval=2h"}, {NULL}, CONFIG_E_USAGE, "1s..3600s"},
	{{ISS, CID, "--oidc-retry-min-ms=50", "--oidc-retry-max-ms=200"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--oidc-retry-min-ms=500", "--oidc-retry-max-ms=200"}, {NULL}, CONFIG_E_USAGE,
	 "above --oidc-retry-max-ms"},
	{{ISS, CID, "--oidc-retry-min-ms=5"}, {NULL}, CONFIG_E_USAGE, "10..3600000"},
	{{ISS, CID, "--oidc-retry-min-ms=90000"}, {NULL}, CONFIG_E_USAGE, "above --oidc-retry-max-ms"},
	{{ISS, CID, "--oidc-http-timeout-ms=99"}, {NULL}, CONFIG_E_USAGE, "100..600000"},
	{{ISS, CID}, {"KOS_OIDC_RETRY_MAX_MS=300", "KOS_OIDC_RETRY_MIN_MS=100"}, CONFIG_OK, NULL},
	/* the token cache's byte bound (issue 14, finding 6): a table of 2^24 entries alone is 768 MiB */
	{{ISS, CID, "--cache-max-bytes=8388608"}, {NULL}, CONFIG_OK, NULL},
	{{ISS, CID, "--cache-max-bytes=1000"}, {NULL}, CONFIG_E_USAGE, "1048576.."},
	{{ISS, CID, "--cache-entries=16777216"}, {NULL}, CONFIG_E_USAGE, "more than --cache-max-bytes"},
	{{ISS, CID, "--cache-entries=16777216"}, {"KOS_CACHE_MAX_BYTES=1073741824"}, CONFIG_OK, NULL},
};

static int run(const char *const *av, const char *const *ev, config *c, char *err, size_t errlen)
{
	char *argv[10] = {"kube-oidc-spoa"};
	char *envp[5] = {NULL};
	int argc = 1;

	for (int i = 0; i < 8 && av[i]; i++)
		argv[argc++] = (char *)av[i];
	for (int i = 0; i < 4 && ev[i]; i++)
		envp[i] = (char *)ev[i];
	return config_parse(argc, argv, envp, c, err, errlen);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		config c;
		char err[256] = "";
		int rc = run(cases[i].argv, cases[i].env, &c, err, sizeof(err));

		if (rc != cases[i].rc)
			fail_msg("case %zu (%s): rc %d want %d: %s", i, cases[i].argv[2] ? cases[i].argv[2] : "", rc,
				 cases[i].rc, err);
		if (cases[i].err_has != NULL && strstr(err, cases[i].err_has) == NULL)
			fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].err_has);
		/* one line, no newline */
		assert_null(strchr(err, '\n'));
		if (rc == CONFIG_OK)
			config_free(&c);
	}
}

static void test_defaults(void **state)
{
	const char *av[8] = {ISS, CID};
	const char *ev[4] = {NULL};
	config c;
	char err[256];

	(void)state;
	assert_int_equal(run(av, ev, &c, err, sizeof(err)), CONFIG_OK);
	assert_string_equal(c.username_claim, "sub");
	assert_null(c.username_prefix);
	assert_null(c.groups_claim);
	assert_string_equal(c.signing_algs, "RS256");
	assert_int_equal(c.probe_port, 8080);
	assert_null(c.probe_address);
	assert_string_equal(c.listen, "127.0.0.1:12345");
	assert_string_equal(c.sa_token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
	assert_int_equal(c.max_groups, CONFIG_MAX_GROUPS_DEFAULT);
	assert_int_equal(CONFIG_MAX_GROUPS_DEFAULT, 256); /* the contract's number (conf/CONTRACT.md, README) */
	assert_int_equal(c.max_token_bytes, 16384);
	assert_int_equal(c.cache_entries, 65536);
	assert_int_equal(c.cache_max_bytes, 64u << 20);
	assert_int_equal(c.cache_ttl_s, 600);
	assert_int_equal(c.log_level, LOG_LEVEL_INFO);
	assert_false(c.extra_client_ip);
	assert_false(c.allow_reserved);
	assert_int_equal(c.jwks_min_refresh_s, 60);
	assert_int_equal(c.unknown_kid_interval_s, 10);
	assert_int_equal(c.retry_min_ms, 1000);
	assert_int_equal(c.retry_max_ms, 60000);
	assert_int_equal(c.http_timeout_ms, 10000);
	config_free(&c);
}

/* Issue 20: with a configuration file the RS256 default of the flags must not apply (kube-apiserver accepts its
 * whole allow-list then: RS/PS/ES, not EdDSA); --oidc-signing-algs beside the file replaces the list, and none/HMAC
 * stay refused. */
static void test_authn_config_algorithms(void **state)
{
	const char *av[8] = {"--authentication-config=/x/authn.yaml"};
	const char *av2[8] = {"--authentication-config=/x/authn.yaml", "--oidc-signing-algs=ES256,PS256"};
	const char *av3[8] = {"--authentication-config=/x/authn.yaml", "--oidc-signing-algs=HS256"};
	const char *ev[4] = {NULL};
	const char *ev2[4] = {"KOS_OIDC_SIGNING_ALGS=EdDSA"};
	config c;
	char err[256];

	(void)state;
	assert_int_equal(run(av, ev, &c, err, sizeof(err)), CONFIG_OK);
	assert_string_equal(c.signing_algs, "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512");
	config_free(&c);
	assert_int_equal(run(av2, ev, &c, err, sizeof(err)), CONFIG_OK);
	assert_string_equal(c.signing_algs, "ES256,PS256");
	config_free(&c);
	assert_int_equal(run(av, ev2, &c, err, sizeof(err)), CONFIG_OK);
	assert_string_equal(c.signing_algs, "EdDSA");
	config_free(&c);
	assert_int_equal(run(av3, ev, &c, err, sizeof(err)), CONFIG_E_USAGE);
	assert_non_null(strstr(err, "never accepted"));
}

static void test_values_and_precedence(void **state)
{
	const char *av[8] = {ISS, CID, "--oidc-required-claim", "hd=example.com", "--oidc-required-claim=a=1,b=2",
			     "--extra-user-headers=k1=v1,Team.Example/K2=v=2", "--oidc-username-prefix=",
			     "--cache-ttl=1h30m"};
	const char *ev[4] = {"KOS_OIDC_GROUPS_CLAIM=groups", "KOS_EXTRA_USER_HEADER_CLIENT_IP=true",
			     "KOS_OIDC_USERNAME_PREFIX=oidc:", "KOS_LOG_LEVEL=DEBUG"};
	config c;
	char err[256];

	(void)state;
	assert_int_equal(run(av, ev, &c, err, sizeof(err)), CONFIG_OK);
	assert_int_equal(c.nrequired_claims, 3);
	assert_string_equal(c.required_claims[0].key, "hd");
	assert_string_equal(c.required_claims[0].value, "example.com");
	assert_string_equal(c.required_claims[2].key, "b");
	assert_int_equal(c.nextra_headers, 2);
	assert_string_equal(c.extra_headers[1].value, "v=2");
	/* keys mean what they meant through HAProxy before (header names are lower case): lower-cased */
	assert_string_equal(c.extra_headers[1].key, "team.example/k2");
	assert_string_equal(c.groups_claim, "groups");
	assert_true(c.extra_client_ip);
	/* the flag (an explicit empty prefix) wins over the environment */
	assert_string_equal(c.username_prefix, "");
	assert_int_equal(c.cache_ttl_s, 5400);
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
	config_free(&c);
}

static void test_duration(void **state)
{
	static const struct {
		const char *s;
		int rc;
		unsigned v;
	} d[] = {{"600", 0, 600}, {"600s", 0, 600}, {"10m", 0, 600}, {"1h", 0, 3600}, {"1h1m1s", 0, 3661},
		 {"", -1, 0}, {"s", -1, 0}, {"1h30", -1, 0}, {"-1", -1, 0}, {"99999999999", -1, 0}, {"1d", -1, 0}};

	(void)state;
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		unsigned v = 12345;

		assert_int_equal(config_parse_duration(d[i].s, &v), d[i].rc);
		assert_int_equal(v, d[i].rc == 0 ? d[i].v : 12345);
	}
}

static void test_usage_lists_every_env(void **state)
{
	char buf[16384];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	(void)state;
	assert_non_null(f);
	config_usage(f);
	fclose(f);
	buf[sizeof(buf) - 1] = '\0';
	assert_non_null(strstr(buf, "KOS_OIDC_ISSUER_URL"));
	assert_non_null(strstr(buf, "KOS_AGENT_LISTEN"));
	assert_non_null(strstr(buf, "--oidc-required-claim KEY=VALUE"));
	assert_non_null(strstr(buf, "--check-config"));
	assert_non_null(strstr(buf, "KOS_OIDC_RETRY_MIN_MS"));
	assert_non_null(strstr(buf, "--jwks-unknown-kid-interval DURATION"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_authn_config_algorithms),
		cmocka_unit_test(test_values_and_precedence),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_usage_lists_every_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
