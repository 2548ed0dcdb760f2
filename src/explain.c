/* explain.c — the `explain` subcommand; see explain.h. */
#include "explain.h"

#include <ctype.h>
#include <strings.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "issuers.h"
#include "kx.h"
#include "log.h"

#define EXPLAIN_MAX_TOKEN (1u << 20)

void explain_verifier_config(const config *c, verifier_config *vc)
{
	memset(vc, 0, sizeof(*vc));
	vc->oidc.issuer_url = c->issuer_url;
	vc->oidc.ca_file = c->ca_file;
	vc->oidc.min_refresh_s = c->jwks_min_refresh_s;
	vc->oidc.unknown_kid_interval_s = c->unknown_kid_interval_s;
	vc->oidc.retry_min_ms = c->retry_min_ms;
	vc->oidc.retry_max_ms = c->retry_max_ms;
	vc->oidc.http_timeout_ms = c->http_timeout_ms;
	vc->client_id = c->client_id;
	vc->username_claim = c->username_claim;
	vc->username_prefix = c->username_prefix;
	vc->groups_claim = c->groups_claim;
	vc->groups_prefix = c->groups_prefix;
	for (size_t i = 0; i < c->nrequired_claims && i < VERIFIER_MAX_REQUIRED_CLAIMS; i++) {
		vc->required_claims[i][0] = c->required_claims[i].key;
		vc->required_claims[i][1] = c->required_claims[i].value;
	}
	vc->nrequired_claims = c->nrequired_claims;
	vc->signing_algs = c->signing_algs;
	vc->max_token_bytes = c->max_token_bytes;
	vc->cache_entries = c->cache_entries;
	vc->cache_max_bytes = c->cache_max_bytes;
	vc->cache_ttl_s = c->cache_ttl_s;
	vc->allow_reserved = c->allow_reserved;
	vc->credential_id = c->credential_id_extra;
}

static void line_out(void *ud, const char *text)
{
	fprintf(ud, "  %s\n", text);
}

/* Reads the whole token source (less than EXPLAIN_MAX_TOKEN bytes) into a malloc'd, NUL-terminated buffer;
 * NULL when it is larger or memory ran out. */
static char *read_all(FILE *f, size_t *len)
{
	kx_buf b;
	char chunk[4096];
	size_t r;

	kx_buf_init(&b, EXPLAIN_MAX_TOKEN - 1);
	if (kx_buf_add(&b, "", 0) != 0) /* an empty source is "" */
		return NULL;
	while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (kx_buf_add(&b, chunk, r) != 0) {
			kx_buf_free(&b);
			return NULL;
		}
	}
	return kx_buf_steal(&b, len);
}

/* The bare token inside what was read: surrounding blanks and an optional "Bearer " go. */
static void trim_token(char *buf, size_t len, const char **tok, size_t *tlen)
{
	size_t a = 0, b = len;

	while (a < b && isspace((unsigned char)buf[a]))
		a++;
	while (b > a && isspace((unsigned char)buf[b - 1]))
		b--;
	if (b - a > 7 && strncasecmp(buf + a, "bearer ", 7) == 0) {
		a += 7;
		while (a < b && isspace((unsigned char)buf[a]))
			a++;
	}
	*tok = buf + a;
	*tlen = b - a;
}

static void print_identity(FILE *out, const identity *id)
{
	fprintf(out, "user: %s\n", id->user);
	fprintf(out, "uid: %s\n", id->uid ? id->uid : "(none)");
	fprintf(out, "groups (%zu):", id->ngroups);
	for (size_t i = 0; i < id->ngroups; i++)
		fprintf(out, "%s %s", i ? "," : "", id->groups[i]);
	fprintf(out, "\nextra (%zu):", id->nextra);
	for (size_t i = 0; i < id->nextra; i++)
		fprintf(out, "%s %s=%s", i ? "," : "", id->extra[i].key, id->extra[i].value);
	fputc('\n', out);
}

int explain_main(int argc, char **argv, char *const *envp, FILE *out, FILE *err)
{
	const char *token_file = NULL, *tok, *detail = NULL;
	char **args = calloc((size_t)argc + 1, sizeof(char *));
	char e[1024] = "";
	config cfg;
	verifier_config vc;
	issuers *is = NULL;
	distclaims *dc = NULL;
	const identity *id = NULL;
	mapping_trace tr = {line_out, out};
	char *buf = NULL;
	size_t blen = 0, tlen, nargs = 1;
	unsigned wait_ms;
	int rc, status = 1;
	bool ready;

	memset(&cfg, 0, sizeof(cfg));
	if (args == NULL)
		return 1;
	args[0] = "kube-oidc-spoa";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc)
			token_file = argv[++i];
		else if (strncmp(argv[i], "--token-file=", 13) == 0)
			token_file = argv[i] + 13;
		else
			args[nargs++] = argv[i];
	}
	rc = config_parse((int)nargs, args, envp, &cfg, e, sizeof(e));
	free(args);
	if (rc == CONFIG_HELP) {
		fprintf(out, "Usage: kube-oidc-spoa explain [--token-file FILE] <the agent's flags>\n"
			     "Reads a token (FILE, or stdin), verifies it as the agent would and prints every check.\n"
			     "Exit status: 0 accepted, 1 refused, 2 wrong flag.\n");
		return 0;
	}
	if (rc != CONFIG_OK) {
		fprintf(err, "kube-oidc-spoa explain: %s\n", rc == CONFIG_E_NOMEM ? "out of memory" : e);
		return rc == CONFIG_E_NOMEM ? 1 : 2;
	}
	/* provider logs would interleave with the report: only errors, on stderr */
	log_init(2, LOG_LEVEL_ERROR);
	if (token_file != NULL) {
		FILE *f = fopen(token_file, "rb");

		if (f == NULL) {
			fprintf(err, "kube-oidc-spoa explain: %s: %s\n", token_file, strerror(errno));
			status = 2;
			goto out;
		}
		buf = read_all(f, &blen);
		fclose(f);
	} else {
		buf = read_all(stdin, &blen);
	}
	if (buf == NULL) {
		fprintf(err, "kube-oidc-spoa explain: cannot read the token (at most %u bytes)\n", EXPLAIN_MAX_TOKEN);
		goto out;
	}
	trim_token(buf, blen, &tok, &tlen);
	fprintf(out, "token: %zu bytes (never printed)\n", tlen);

	explain_verifier_config(&cfg, &vc);
	{
		/* distributed groups are fetched as by the agent (here the wait may be as long as an issuer download) */
		distclaims_config dcc = {.timeout_ms = cfg.http_timeout_ms ? cfg.http_timeout_ms : 10000};

		if (distclaims_create(&dcc, &dc, e, sizeof(e)) != 0) {
			fprintf(out, "configuration: FAIL (%s)\n", e);
			goto out;
		}
		vc.claims = dc;
	}
	if (cfg.authn_config != NULL) {
		fprintf(out, "configuration: --authentication-config %s\n", cfg.authn_config);
		if (issuers_create(cfg.authn_config, &vc, &is, e, sizeof(e)) != 0) {
			fprintf(out, "configuration: FAIL (%s)\n", e);
			goto out;
		}
		fprintf(out, "configuration: ok (%zu issuers)\n", issuers_count(is));
	} else {
		fprintf(out, "configuration: --oidc-issuer-url %s --oidc-client-id %s\n", cfg.issuer_url, cfg.client_id);
		if (issuers_create_flags(&vc, &is, e, sizeof(e)) != 0) {
			fprintf(out, "configuration: FAIL (%s)\n", e);
			goto out;
		}
	}
	/* discovery and keys: enough for the first attempt and a couple of retries */
	wait_ms = (cfg.http_timeout_ms ? cfg.http_timeout_ms : 10000) + 5000;
	ready = issuers_wait_ready(is, wait_ms);
	issuers_describe(is, e, sizeof(e));
	fprintf(out, "discovery and keys: %s\n", e);
	/* a token with distributed groups: let their fetch end first (bounded), so that the checks below read the
	 * source's answer instead of reporting the fetch under way */
	for (unsigned w = 0; ready && w <= wait_ms; w += 50) {
		const identity *tmp = NULL;
		const char *d = NULL;

		rc = issuers_verify(is, (const uint8_t *)tok, tlen, (int64_t)time(NULL), &tmp, &d);
		if (rc == VERIFY_OK)
			identity_release(tmp);
		if (rc != VERIFY_E_PENDING)
			break;
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
	fprintf(out, "checks:\n");
	rc = issuers_explain(is, (const uint8_t *)tok, tlen, (int64_t)time(NULL), &tr, &id, &detail);
	if (rc != VERIFY_OK) {
		fprintf(out, "verdict: REJECTED (401 %s): %s\n", verifier_reason(rc), detail ? detail : "");
		if (rc == VERIFY_E_NOT_READY || rc == VERIFY_E_INTERNAL)
			fprintf(out, "note: the agent answers 503 for this (issuer unavailable), not 401\n");
		goto out;
	}
	print_identity(out, id);
	if (id->ngroups > cfg.max_groups) {
		fprintf(out, "verdict: REJECTED (403 too many groups): %zu groups, at most %u allowed (--max-groups)\n",
			id->ngroups, cfg.max_groups);
		goto out;
	}
	fprintf(out, "verdict: ACCEPTED\n");
	status = 0;
out:
	identity_release(id);
	issuers_destroy(is);
	distclaims_destroy(dc); /* after the verifiers that borrowed it */
	free(buf);
	config_free(&cfg);
	return status;
}
