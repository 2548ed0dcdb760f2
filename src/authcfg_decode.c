/* authcfg_decode.c — the generic tree into authcfg_config, strictly; see authcfg_decode.h. */
#include "authcfg_decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STRING (64u * 1024)   /* any string but certificateAuthority */
#define PATH_MAX_LEN 512

/* ---- strict decoding into authcfg_config ---- */

typedef struct dec {
	char path[PATH_MAX_LEN];
	size_t plen;
	int rc;
	authcfg_sb msg;
	bool anonymous;              /* "anonymous" was given (refused at validation) */
	/* per jwt entry i, side[2i]: egressSelectorType (refused at validation); side[2i+1]: an audienceMatchPolicy
	 * other than MatchAny, kept for validation's message */
	char **side;
	size_t nside;
} dec;

static size_t path_push(dec *d, const char *child)
{
	size_t old = d->plen;
	int n = snprintf(d->path + d->plen, sizeof(d->path) - d->plen, "%s%s", d->plen ? "." : "", child);

	if (n > 0)
		d->plen += (size_t)n < sizeof(d->path) - d->plen ? (size_t)n : sizeof(d->path) - d->plen - 1;
	return old;
}

static size_t path_index(dec *d, size_t i)
{
	size_t old = d->plen;
	int n = snprintf(d->path + d->plen, sizeof(d->path) - d->plen, "[%zu]", i);

	if (n > 0)
		d->plen += (size_t)n < sizeof(d->path) - d->plen ? (size_t)n : sizeof(d->path) - d->plen - 1;
	return old;
}

static void path_pop(dec *d, size_t old)
{
	d->plen = old;
	d->path[old] = '\0';
}

static void line_suffix(authcfg_sb *b, unsigned line)
{
	if (line)
		authcfg_sb_printf(b, " (line %u)", line);
}

static int dfail_type(dec *d, const authcfg_node *n, const char *want)
{
	if (d->rc)
		return d->rc;
	d->rc = AUTHCFG_E_DECODE;
	authcfg_sb_printf(&d->msg, "cannot unmarshal %s into field ", authcfg_node_kind_name(n->kind));
	authcfg_sb_quote(&d->msg, d->path, d->plen);
	authcfg_sb_printf(&d->msg, " of type %s", want);
	line_suffix(&d->msg, n->line);
	return d->rc;
}

static int dfail_field(dec *d, const char *what, const authcfg_node *m)
{
	authcfg_sb path = {0};

	if (d->rc)
		return d->rc;
	d->rc = AUTHCFG_E_DECODE;
	authcfg_sb_putn(&path, d->path, d->plen);
	if (d->plen)
		authcfg_sb_putn(&path, ".", 1);
	authcfg_sb_putn(&path, m->key, m->keylen > AUTHCFG_QUOTED_MAX ? AUTHCFG_QUOTED_MAX : m->keylen);
	authcfg_sb_printf(&d->msg, "strict decoding error: %s field ", what);
	authcfg_sb_quote(&d->msg, path.p ? path.p : "", path.n);
	line_suffix(&d->msg, m->keyline);
	free(path.p);
	if (path.oom)
		d->rc = AUTHCFG_E_NOMEM;
	return d->rc;
}

static int dfail_nomem(dec *d)
{
	if (!d->rc)
		d->rc = AUTHCFG_E_NOMEM;
	return d->rc;
}

static bool key_is(const authcfg_node *m, const char *k)
{
	size_t n = strlen(k);

	return m->keylen == n && memcmp(m->key, k, n) == 0;
}

/* Strict decoding refuses a member whose key an earlier member of the same mapping already used. */
static int check_dups(dec *d, const authcfg_node *map)
{
	for (const authcfg_node *m = map->child; m; m = m->next)
		for (const authcfg_node *o = map->child; o != m; o = o->next)
			if (o->keylen == m->keylen && memcmp(o->key, m->key, m->keylen) == 0)
				return dfail_field(d, "duplicate", m);
	return 0;
}

/* Decodes a string member. null leaves *out NULL; "" gives NULL unless keep_empty (a *string in the Go type). */
static int get_str(dec *d, const authcfg_node *n, const char *field, char **out, bool keep_empty, size_t max)
{
	size_t old = path_push(d, field);
	int rc = 0;

	if (n->kind == AUTHCFG_N_NULL)
		goto out;
	if (n->kind != AUTHCFG_N_STR) {
		rc = dfail_type(d, n, "string");
		goto out;
	}
	if (memchr(n->s, '\0', n->len)) {
		d->rc = rc = AUTHCFG_E_DECODE;
		authcfg_sb_putn(&d->msg, d->path, d->plen);
		authcfg_sb_puts(&d->msg, ": NUL bytes are not supported");
		line_suffix(&d->msg, n->line);
		goto out;
	}
	if (n->len > max) {
		d->rc = rc = AUTHCFG_E_DECODE;
		authcfg_sb_putn(&d->msg, d->path, d->plen);
		authcfg_sb_printf(&d->msg, ": Too long: may not be more than %zu bytes", max);
		line_suffix(&d->msg, n->line);
		goto out;
	}
	if (n->len == 0 && !keep_empty)
		goto out;
	free(*out);
	*out = authcfg_memdup0(n->s, n->len);
	if (!*out)
		rc = dfail_nomem(d);
out:
	path_pop(d, old);
	return rc;
}

static int get_expr(dec *d, const authcfg_node *n, const char *field, authcfg_expr *e, enum authcfg_expr_kind kind)
{
	int rc = get_str(d, n, field, &e->expression, false, MAX_STRING);

	e->kind = kind;
	if (!rc && e->expression) {
		size_t old = path_push(d, field);

		free(e->path);
		e->path = authcfg_memdup0(d->path, d->plen);
		path_pop(d, old);
		if (!e->path)
			rc = dfail_nomem(d);
	}
	return rc;
}

/* A sequence member: null = empty; otherwise a sequence of at most max entries (*count set). */
static int get_seq(dec *d, const authcfg_node *n, const char *field, size_t max, size_t *count, bool *too_many)
{
	size_t old = path_push(d, field);
	int rc = 0;

	*count = 0;
	*too_many = false;
	if (n->kind == AUTHCFG_N_NULL)
		goto out;
	if (n->kind != AUTHCFG_N_SEQ) {
		rc = dfail_type(d, n, "array");
		goto out;
	}
	*count = n->n;
	if (n->n > max) {
		/* The API server's wording (field.TooMany); reported as a validation error. */
		d->rc = rc = AUTHCFG_E_INVALID;
		authcfg_sb_putn(&d->msg, d->path, d->plen);
		authcfg_sb_printf(&d->msg, ": Too many: %zu: must have at most %zu items", n->n, max);
		*too_many = true;
	}
out:
	path_pop(d, old);
	return rc;
}

static bool want_map(dec *d, const authcfg_node *n, const char *gotype)
{
	if (n->kind == AUTHCFG_N_MAP)
		return true;
	if (n->kind != AUTHCFG_N_NULL)
		dfail_type(d, n, gotype);
	return false;
}

static int dec_issuer(dec *d, const authcfg_node *n, authcfg_issuer *is, char **side)
{
	size_t old = path_push(d, "issuer");

	if (!want_map(d, n, "Issuer") || check_dups(d, n))
		goto out;
	for (const authcfg_node *m = n->child; m && !d->rc; m = m->next) {
		if (key_is(m, "url")) {
			get_str(d, m, "url", &is->url, false, MAX_STRING);
		} else if (key_is(m, "discoveryURL")) {
			get_str(d, m, "discoveryURL", &is->discovery_url, false, MAX_STRING);
		} else if (key_is(m, "certificateAuthority")) {
			get_str(d, m, "certificateAuthority", &is->certificate_authority, false, AUTHCFG_MAX_BYTES);
		} else if (key_is(m, "audienceMatchPolicy")) {
			char *pol = NULL;

			if (!get_str(d, m, "audienceMatchPolicy", &pol, false, MAX_STRING) && pol) {
				is->audience_match_any = strcmp(pol, "MatchAny") == 0;
				if (!is->audience_match_any) {
					free(side[1]);
					side[1] = pol;
					pol = NULL;
				}
			}
			free(pol);
		} else if (key_is(m, "egressSelectorType")) {
			get_str(d, m, "egressSelectorType", &side[0], false, MAX_STRING);
		} else if (key_is(m, "audiences")) {
			size_t cnt = 0;
			bool tm;

			if (get_seq(d, m, "audiences", AUTHCFG_MAX_LIST, &cnt, &tm) || !cnt)
				continue;
			is->audiences = calloc(cnt, sizeof(char *));
			if (!is->audiences) {
				dfail_nomem(d);
				break;
			}
			size_t o2 = path_push(d, "audiences"), i = 0;
			for (const authcfg_node *a = m->child; a && !d->rc; a = a->next, i++) {
				size_t o3 = path_index(d, i);

				if (a->kind == AUTHCFG_N_NULL) {
					is->audiences[i] = authcfg_memdup0("", 0); /* Go: null into a string leaves "" */
				} else if (a->kind != AUTHCFG_N_STR) {
					dfail_type(d, a, "string");
				} else if (memchr(a->s, '\0', a->len) || a->len > MAX_STRING) {
					d->rc = AUTHCFG_E_DECODE;
					authcfg_sb_putn(&d->msg, d->path, d->plen);
					authcfg_sb_puts(&d->msg, ": NUL bytes or too long");
					line_suffix(&d->msg, a->line);
				} else {
					is->audiences[i] = authcfg_memdup0(a->s, a->len);
				}
				if (!d->rc && !is->audiences[i])
					dfail_nomem(d);
				path_pop(d, o3);
			}
			is->naudiences = i;
			path_pop(d, o2);
		} else {
			dfail_field(d, "unknown", m);
		}
	}
out:
	path_pop(d, old);
	return d->rc;
}

static int dec_prefixed(dec *d, const authcfg_node *n, const char *field, authcfg_mapping *mp, enum authcfg_expr_kind k,
			bool has_prefix)
{
	size_t old = path_push(d, field);

	if (!want_map(d, n, has_prefix ? "PrefixedClaimOrExpression" : "ClaimOrExpression") || check_dups(d, n))
		goto out;
	for (const authcfg_node *m = n->child; m && !d->rc; m = m->next) {
		if (key_is(m, "claim"))
			get_str(d, m, "claim", &mp->claim, false, MAX_STRING);
		else if (has_prefix && key_is(m, "prefix"))
			get_str(d, m, "prefix", &mp->prefix, true, MAX_STRING);
		else if (key_is(m, "expression"))
			get_expr(d, m, "expression", &mp->expr, k);
		else
			dfail_field(d, "unknown", m);
	}
out:
	path_pop(d, old);
	return d->rc;
}

/* Sequences of objects: calls one(d, element, index) for each, with the path at "<field>[i]". */
typedef int (*elem_fn)(dec *d, const authcfg_node *e, size_t i, void *arr);

static int dec_list(dec *d, const authcfg_node *m, const char *field, size_t elem_size, void **arr, size_t *count,
		    elem_fn one)
{
	size_t cnt = 0, i = 0;
	bool tm;

	if (get_seq(d, m, field, AUTHCFG_MAX_LIST, &cnt, &tm) || !cnt)
		return d->rc;
	*arr = calloc(cnt, elem_size);
	if (!*arr)
		return dfail_nomem(d);
	*count = cnt;
	size_t old = path_push(d, field);
	for (const authcfg_node *e = m->child; e && !d->rc; e = e->next, i++) {
		size_t o2 = path_index(d, i);

		one(d, e, i, *arr);
		path_pop(d, o2);
	}
	path_pop(d, old);
	return d->rc;
}

static int one_claim_rule(dec *d, const authcfg_node *e, size_t i, void *arr)
{
	authcfg_claim_rule *r = (authcfg_claim_rule *)arr + i;

	if (!want_map(d, e, "ClaimValidationRule") || check_dups(d, e))
		return d->rc;
	for (const authcfg_node *m = e->child; m && !d->rc; m = m->next) {
		if (key_is(m, "claim"))
			get_str(d, m, "claim", &r->claim, false, MAX_STRING);
		else if (key_is(m, "requiredValue"))
			get_str(d, m, "requiredValue", &r->required_value, false, MAX_STRING);
		else if (key_is(m, "expression"))
			get_expr(d, m, "expression", &r->expr, AUTHCFG_EXPR_CLAIM_VALIDATION);
		else if (key_is(m, "message"))
			get_str(d, m, "message", &r->message, false, MAX_STRING);
		else
			dfail_field(d, "unknown", m);
	}
	r->expr.kind = AUTHCFG_EXPR_CLAIM_VALIDATION;
	return d->rc;
}

static int one_extra(dec *d, const authcfg_node *e, size_t i, void *arr)
{
	authcfg_extra *x = (authcfg_extra *)arr + i;

	x->value.kind = AUTHCFG_EXPR_EXTRA;
	if (!want_map(d, e, "ExtraMapping") || check_dups(d, e))
		return d->rc;
	for (const authcfg_node *m = e->child; m && !d->rc; m = m->next) {
		if (key_is(m, "key"))
			get_str(d, m, "key", &x->key, false, MAX_STRING);
		else if (key_is(m, "valueExpression"))
			get_expr(d, m, "valueExpression", &x->value, AUTHCFG_EXPR_EXTRA);
		else
			dfail_field(d, "unknown", m);
	}
	return d->rc;
}

static int one_user_rule(dec *d, const authcfg_node *e, size_t i, void *arr)
{
	authcfg_user_rule *r = (authcfg_user_rule *)arr + i;

	r->expr.kind = AUTHCFG_EXPR_USER_VALIDATION;
	if (!want_map(d, e, "UserValidationRule") || check_dups(d, e))
		return d->rc;
	for (const authcfg_node *m = e->child; m && !d->rc; m = m->next) {
		if (key_is(m, "expression"))
			get_expr(d, m, "expression", &r->expr, AUTHCFG_EXPR_USER_VALIDATION);
		else if (key_is(m, "message"))
			get_str(d, m, "message", &r->message, false, MAX_STRING);
		else
			dfail_field(d, "unknown", m);
	}
	return d->rc;
}

static int dec_mappings(dec *d, const authcfg_node *n, authcfg_issuer *is)
{
	size_t old = path_push(d, "claimMappings");

	if (!want_map(d, n, "ClaimMappings") || check_dups(d, n))
		goto out;
	for (const authcfg_node *m = n->child; m && !d->rc; m = m->next) {
		if (key_is(m, "username"))
			dec_prefixed(d, m, "username", &is->username, AUTHCFG_EXPR_USERNAME, true);
		else if (key_is(m, "groups"))
			dec_prefixed(d, m, "groups", &is->groups, AUTHCFG_EXPR_GROUPS, true);
		else if (key_is(m, "uid"))
			dec_prefixed(d, m, "uid", &is->uid, AUTHCFG_EXPR_UID, false);
		else if (key_is(m, "extra"))
			dec_list(d, m, "extra", sizeof(authcfg_extra), (void **)&is->extra, &is->nextra, one_extra);
		else
			dfail_field(d, "unknown", m);
	}
out:
	path_pop(d, old);
	return d->rc;
}

static int one_jwt(dec *d, const authcfg_node *e, size_t i, void *arr)
{
	authcfg_issuer *is = (authcfg_issuer *)arr + i;

	is->index = i;
	is->username.expr.kind = AUTHCFG_EXPR_USERNAME;
	is->groups.expr.kind = AUTHCFG_EXPR_GROUPS;
	is->uid.expr.kind = AUTHCFG_EXPR_UID;
	if (!want_map(d, e, "JWTAuthenticator") || check_dups(d, e))
		return d->rc;
	for (const authcfg_node *m = e->child; m && !d->rc; m = m->next) {
		if (key_is(m, "issuer"))
			dec_issuer(d, m, is, &d->side[2 * i]);
		else if (key_is(m, "claimValidationRules"))
			dec_list(d, m, "claimValidationRules", sizeof(authcfg_claim_rule), (void **)&is->claim_rules,
				 &is->nclaim_rules, one_claim_rule);
		else if (key_is(m, "claimMappings"))
			dec_mappings(d, m, is);
		else if (key_is(m, "userValidationRules"))
			dec_list(d, m, "userValidationRules", sizeof(authcfg_user_rule), (void **)&is->user_rules,
				 &is->nuser_rules, one_user_rule);
		else
			dfail_field(d, "unknown", m);
	}
	return d->rc;
}

#define API_GROUP "apiserver.config.k8s.io/"
#define KIND "AuthenticationConfiguration"

static int dec_root(dec *d, const authcfg_node *root, authcfg_config *c)
{
	const authcfg_node *jwt = NULL;
	char *apiv = NULL, *kind = NULL;

	if (!root || root->kind != AUTHCFG_N_MAP) {
		d->rc = AUTHCFG_E_DECODE;
		authcfg_sb_puts(&d->msg, "the document must be a mapping (an AuthenticationConfiguration object)");
		return d->rc;
	}
	if (check_dups(d, root))
		return d->rc;
	for (const authcfg_node *m = root->child; m && !d->rc; m = m->next) {
		if (key_is(m, "apiVersion"))
			get_str(d, m, "apiVersion", &apiv, false, MAX_STRING);
		else if (key_is(m, "kind"))
			get_str(d, m, "kind", &kind, false, MAX_STRING);
		else if (key_is(m, "jwt"))
			jwt = m;
		else if (key_is(m, "anonymous"))
			d->anonymous = m->kind != AUTHCFG_N_NULL;
		else
			dfail_field(d, "unknown", m);
	}
	if (d->rc)
		goto out;
	/* The API server's decoder needs both before it looks at anything else. */
	if (!apiv || !kind) {
		d->rc = AUTHCFG_E_DECODE;
		authcfg_sb_puts(&d->msg, !apiv ? "apiVersion: Required value" : "kind: Required value");
		goto out;
	}
	if (strcmp(apiv, API_GROUP "v1beta1") == 0) {
		c->api_version = AUTHCFG_V1BETA1;
	} else if (strcmp(apiv, API_GROUP "v1") == 0) {
		c->api_version = AUTHCFG_V1;
	} else {
		d->rc = AUTHCFG_E_DECODE;
		authcfg_sb_puts(&d->msg, "apiVersion: Unsupported value: ");
		authcfg_sb_quote(&d->msg, apiv, strlen(apiv));
		authcfg_sb_puts(&d->msg, ": supported values: \"" API_GROUP "v1\", \"" API_GROUP "v1beta1\"");
		goto out;
	}
	if (strcmp(kind, KIND) != 0) {
		d->rc = AUTHCFG_E_DECODE;
		authcfg_sb_puts(&d->msg, "kind: Unsupported value: ");
		authcfg_sb_quote(&d->msg, kind, strlen(kind));
		authcfg_sb_puts(&d->msg, ": supported values: \"" KIND "\"");
		goto out;
	}
	if (jwt) {
		size_t cnt = 0;
		bool tm;

		if (get_seq(d, jwt, "jwt", AUTHCFG_MAX_JWT, &cnt, &tm) || !cnt)
			goto out;
		d->side = calloc(2 * cnt, sizeof(char *));
		d->nside = d->side ? 2 * cnt : 0;
		if (!d->side) {
			dfail_nomem(d);
			goto out;
		}
		dec_list(d, jwt, "jwt", sizeof(authcfg_issuer), (void **)&c->jwt, &c->njwt, one_jwt);
	}
out:
	free(apiv);
	free(kind);
	return d->rc;
}

int authcfg_decode(const authcfg_node *root, authcfg_config *c, authcfg_side *side, authcfg_sb *msg)
{
	dec d = {0};
	int rc = dec_root(&d, root, c);

	side->anonymous = d.anonymous;
	side->v = d.side;
	side->n = d.nside;
	*msg = d.msg;
	return rc;
}

void authcfg_decode_side_free(authcfg_side *side)
{
	if (side->v) {
		for (size_t k = 0; k < side->n; k++)
			free(side->v[k]);
		free(side->v);
	}
	side->v = NULL;
	side->n = 0;
}
