/*
 * authcfg.c — AuthenticationConfiguration: the public API (authcfg.h) over three steps, each its own module:
 * authcfg_load.c (bytes, YAML/JSON -> a small generic tree), authcfg_decode.c (tree -> authcfg_config, strictly)
 * and authcfg_validate.c (the API server's validation rules). This file runs them in that order, derives the
 * fields the header promises, and frees.
 */
#include "authcfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authcfg_decode.h"
#include "authcfg_load.h"
#include "authcfg_validate.h"

const char *authcfg_strerror(int err)
{
	switch (err) {
	case AUTHCFG_OK: return "ok";
	case AUTHCFG_E_SYNTAX: return "syntax error";
	case AUTHCFG_E_DECODE: return "decoding error";
	case AUTHCFG_E_INVALID: return "invalid configuration";
	case AUTHCFG_E_TOO_LARGE: return "configuration empty or too large";
	case AUTHCFG_E_NOMEM: return "out of memory";
	case AUTHCFG_E_IO: return "cannot read the configuration file";
	default: return "unknown error";
	}
}

/* ---- API ---- */

static void issuer_free(authcfg_issuer *is)
{
	free(is->url);
	free(is->discovery_url);
	free(is->certificate_authority);
	for (size_t k = 0; k < is->naudiences; k++)
		free(is->audiences[k]);
	free(is->audiences);
	for (size_t k = 0; k < is->nclaim_rules; k++) {
		free(is->claim_rules[k].claim);
		free(is->claim_rules[k].required_value);
		free(is->claim_rules[k].expr.expression);
		free(is->claim_rules[k].expr.path);
		free(is->claim_rules[k].message);
	}
	free(is->claim_rules);
	authcfg_mapping *maps[3] = {&is->username, &is->groups, &is->uid};
	for (int k = 0; k < 3; k++) {
		free(maps[k]->claim);
		free(maps[k]->prefix);
		free(maps[k]->expr.expression);
		free(maps[k]->expr.path);
	}
	for (size_t k = 0; k < is->nextra; k++) {
		free(is->extra[k].key);
		free(is->extra[k].value.expression);
		free(is->extra[k].value.path);
	}
	free(is->extra);
	for (size_t k = 0; k < is->nuser_rules; k++) {
		free(is->user_rules[k].expr.expression);
		free(is->user_rules[k].expr.path);
		free(is->user_rules[k].message);
	}
	free(is->user_rules);
}

void authcfg_free(authcfg_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->njwt; i++)
		issuer_free(&c->jwt[i]);
	free(c->jwt);
	free(c);
}

/* After validation: the fields the header promises are derived here. */
static int finalize(authcfg_config *c)
{
	for (size_t i = 0; i < c->njwt; i++) {
		authcfg_issuer *is = &c->jwt[i];

		is->url_len = is->url ? strlen(is->url) : 0;
		is->certificate_authority_len = is->certificate_authority ? strlen(is->certificate_authority) : 0;
		for (size_t k = 0; k < is->nclaim_rules; k++) {
			authcfg_claim_rule *r = &is->claim_rules[k];

			if (r->claim && !r->required_value) {
				r->required_value = authcfg_memdup0("", 0);
				if (!r->required_value)
					return AUTHCFG_E_NOMEM;
			}
		}
	}
	return 0;
}

int authcfg_parse(const uint8_t *p, size_t len, authcfg_config **out, char *err, size_t errlen)
{
	authcfg_sb msg = {0};       /* the failing step's message */
	authcfg_side side = {0};
	authcfg_node *root = NULL;
	authcfg_config *c = NULL;
	int rc;

	if (len == 0 || len > AUTHCFG_MAX_BYTES) {
		char m[96];

		snprintf(m, sizeof(m), len ? "configuration larger than %u bytes" : "empty config data",
			 AUTHCFG_MAX_BYTES);
		authcfg_copy_err(err, errlen, m);
		return AUTHCFG_E_TOO_LARGE;
	}
	rc = authcfg_load_tree(p, len, &root, &msg);
	if (rc) {
		authcfg_copy_err(err, errlen, msg.p ? msg.p : authcfg_strerror(rc));
		goto out;
	}
	free(msg.p); /* each step hands back a message of its own */
	msg = (authcfg_sb){0};
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = AUTHCFG_E_NOMEM;
		authcfg_copy_err(err, errlen, authcfg_strerror(rc));
		goto out;
	}
	rc = authcfg_decode(root, c, &side, &msg);
	if (rc) {
		authcfg_copy_err(err, errlen, msg.p && !msg.oom ? msg.p : authcfg_strerror(rc));
		goto out;
	}
	free(msg.p);
	msg = (authcfg_sb){0};
	rc = authcfg_validate(c, &side, &msg);
	if (rc == AUTHCFG_E_NOMEM) {
		authcfg_copy_err(err, errlen, authcfg_strerror(rc));
		goto out;
	}
	if (rc) {
		authcfg_copy_err(err, errlen, msg.p && !msg.oom ? msg.p : authcfg_strerror(AUTHCFG_E_INVALID));
		goto out;
	}
	rc = finalize(c);
	if (rc) {
		authcfg_copy_err(err, errlen, authcfg_strerror(rc));
		goto out;
	}
	*out = c;
	c = NULL;
out:
	authcfg_decode_side_free(&side);
	authcfg_free(c);
	authcfg_node_free(root);
	free(msg.p);
	return rc;
}

int authcfg_load_file(const char *path, authcfg_config **out, char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc = authcfg_load_read_file(path, &buf, &n, err, errlen);

	if (rc == 0)
		rc = authcfg_parse(buf, n, out, err, errlen);
	free(buf);
	return rc;
}

const authcfg_issuer *authcfg_issuer_find(const authcfg_config *c, const char *iss, size_t len)
{
	if (!c || !iss)
		return NULL;
	for (size_t i = 0; i < c->njwt; i++)
		if (c->jwt[i].url_len == len && memcmp(c->jwt[i].url, iss, len) == 0)
			return &c->jwt[i];
	return NULL;
}

size_t authcfg_issuer_exprs(const authcfg_issuer *is, const authcfg_expr **out, size_t max)
{
	size_t n = 0;

#define ADD(e)                              \
	do {                                \
		if ((e)->expression) {      \
			if (n < max)        \
				out[n] = (e); \
			n++;                \
		}                           \
	} while (0)
	for (size_t k = 0; k < is->nclaim_rules; k++)
		ADD(&is->claim_rules[k].expr);
	ADD(&is->username.expr);
	ADD(&is->groups.expr);
	ADD(&is->uid.expr);
	for (size_t k = 0; k < is->nextra; k++)
		ADD(&is->extra[k].value);
	for (size_t k = 0; k < is->nuser_rules; k++)
		ADD(&is->user_rules[k].expr);
#undef ADD
	return n;
}

