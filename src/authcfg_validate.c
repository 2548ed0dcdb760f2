/* authcfg_validate.c — the API server's validation rules over a decoded configuration; see
 * authcfg_validate.h. */
#include "authcfg_validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* ---- validation (k8s.io/apiserver pkg/apis/apiserver/validation, same order and wording) ---- */

typedef struct verrs {
	char *e[AUTHCFG_MAX_ERRORS];
	size_t n, dropped;
	bool oom;
} verrs;

/* Adds "<path>: <body>" where body is built by the caller into b (consumed). */
static void verr_add(verrs *v, authcfg_sb *b)
{
	if (b->oom || !b->p) {
		v->oom = true;
		free(b->p);
	} else if (v->n < AUTHCFG_MAX_ERRORS) {
		v->e[v->n++] = b->p;
	} else {
		v->dropped++;
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

static void v_required(verrs *v, const char *path, const char *detail)
{
	authcfg_sb b = {0};

	authcfg_sb_puts(&b, path);
	authcfg_sb_puts(&b, ": Required value");
	if (detail && *detail) {
		authcfg_sb_puts(&b, ": ");
		authcfg_sb_puts(&b, detail);
	}
	verr_add(v, &b);
}

static void v_value(verrs *v, const char *path, const char *type, const char *val, const char *detail)
{
	authcfg_sb b = {0};

	authcfg_sb_puts(&b, path);
	authcfg_sb_puts(&b, ": ");
	authcfg_sb_puts(&b, type);
	authcfg_sb_puts(&b, ": ");
	authcfg_sb_quote(&b, val ? val : "", val ? strlen(val) : 0);
	if (detail && *detail) {
		authcfg_sb_puts(&b, ": ");
		authcfg_sb_puts(&b, detail);
	}
	verr_add(v, &b);
}

static void v_invalid(verrs *v, const char *path, const char *val, const char *detail)
{
	v_value(v, path, "Invalid value", val, detail);
}

static void v_duplicate(verrs *v, const char *path, const char *val)
{
	v_value(v, path, "Duplicate value", val, NULL);
}

static void v_forbidden(verrs *v, const char *path, const char *detail)
{
	authcfg_sb b = {0};

	authcfg_sb_puts(&b, path);
	authcfg_sb_puts(&b, ": Forbidden: ");
	authcfg_sb_puts(&b, detail);
	verr_add(v, &b);
}

/* Go's url.Parse error as the API server shows it: `parse "<u>"<what>`, then q quoted when given. */
static void v_url_parse(verrs *v, const char *path, const char *u, size_t n, const char *what, const char *q,
			size_t qn)
{
	authcfg_sb b = {0};

	authcfg_sb_puts(&b, "parse ");
	authcfg_sb_quote(&b, u, n);
	authcfg_sb_puts(&b, what);
	if (q)
		authcfg_sb_quote(&b, q, qn);
	if (b.p)
		v_invalid(v, path, u, b.p);
	free(b.p);
}

/* Path helper for validation: "jwt[i]" + suffix, formatted into a caller buffer. */
static const char *vp(char *buf, size_t n, size_t i, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static const char *vp(char *buf, size_t n, size_t i, const char *fmt, ...)
{
	int k = snprintf(buf, n, "jwt[%zu]", i);
	va_list ap;

	va_start(ap, fmt);
	if (k > 0 && (size_t)k < n)
		vsnprintf(buf + k, n - (size_t)k, fmt, ap);
	va_end(ap);
	return buf;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * validateURL: the checks the API server makes after Go's url.Parse, plus the parse errors we can meet. Ours
 * (stricter, and said so in the docs): the scheme must be written "https" in lower case with "//" and a host,
 * and the URL must be printable ASCII without spaces and at most AUTHCFG_MAX_URL bytes — the oidc module and
 * the token's "iss" comparison need exactly that.
 */
static void validate_url(verrs *v, const char *u, const char *path)
{
	size_t n = strlen(u), i, a, ae;
	const char *q, *h;
	char detail[96];

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];

		if (c < 0x20 || c == 0x7f) {
			v_url_parse(v, path, u, n, ": net/url: invalid control character in URL", NULL, 0);
			return;
		}
	}
	if (n > AUTHCFG_MAX_URL) {
		snprintf(detail, sizeof(detail), "URL must be at most %u bytes", AUTHCFG_MAX_URL);
		v_invalid(v, path, u, detail);
		return;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];

		if (c == ' ' || c >= 0x80) {
			v_invalid(v, path, u, "URL must be printable ASCII without spaces");
			return;
		}
		if (c == '%' && (n - i < 3 || !is_hex(u[i + 1]) || !is_hex(u[i + 2]))) {
			v_url_parse(v, path, u, n, ": invalid URL escape ", u + i, n - i < 3 ? n - i : 3);
			return;
		}
	}
	if (strncmp(u, "https://", 8) != 0) {
		v_invalid(v, path, u, "URL scheme must be https");
		return; /* without the scheme the rest cannot be read the way Go reads it */
	}
	a = 8;
	ae = a + strcspn(u + a, "/?#");
	q = memchr(u + a, '@', ae - a);
	if (q)
		v_invalid(v, path, u, "URL must not contain a username or password");
	h = q ? q + 1 : u + a;
	/* host[:port] in [h, u+ae) */
	{
		const char *he = u + ae, *port = NULL;
		bool bad = false;

		if (h < he && *h == '[') {
			const char *rb = memchr(h, ']', (size_t)(he - h));

			if (!rb) {
				bad = true;
			} else {
				for (const char *c = h + 1; c < rb; c++)
					if (!is_hex(*c) && *c != ':' && *c != '.')
						bad = true;
				if (rb + 1 < he) {
					if (rb[1] != ':')
						bad = true;
					else
						port = rb + 1;
				}
			}
		} else {
			const char *colon = memchr(h, ':', (size_t)(he - h));

			if (colon)
				port = colon;
			for (const char *c = h; c < (colon ? colon : he); c++)
				if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
				      *c == '-' || *c == '.' || *c == '_' || *c == '~'))
					bad = true;
			if (h == (colon ? colon : he))
				v_invalid(v, path, u, "URL must have a host");
		}
		if (port)
			for (const char *c = port + 1; c < he; c++)
				if (*c < '0' || *c > '9')
					bad = true;
		if (bad)
			v_url_parse(v, path, u, n, ": invalid host or port", NULL, 0);
	}
	/* Go: RawQuery and Fragment non-empty (a bare "?" or "#" leaves them empty) */
	q = strchr(u + a, '?');
	{
		const char *f = strchr(u + a, '#');

		if (q && (!f || q < f) && q[1] != '\0' && q[1] != '#')
			v_invalid(v, path, u, "URL must not contain a query");
		if (f && f[1] != '\0')
			v_invalid(v, path, u, "URL must not contain a fragment");
	}
}

static size_t trim_slash_len(const char *s)
{
	size_t n = strlen(s);

	while (n && s[n - 1] == '/')
		n--;
	return n;
}

/* cert.NewPoolFromBytes: every CERTIFICATE block without headers must parse; at least one must be there. */
static const char *ca_check(const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long dlen = 0;
	int ncerts = 0;
	const char *bad = NULL;

	if (!bio)
		return "out of memory";
	while (!bad && PEM_read_bio(bio, &name, &header, &data, &dlen) == 1) {
		if (strcmp(name, "CERTIFICATE") == 0 && header[0] == '\0') {
			const unsigned char *q = data;
			X509 *x = d2i_X509(NULL, &q, dlen);

			if (!x || q != data + dlen)
				bad = "x509: malformed certificate";
			else
				ncerts++;
			X509_free(x);
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		name = header = NULL;
		data = NULL;
	}
	ERR_clear_error(); /* the loop always ends on "no start line" */
	BIO_free(bio);
	if (bad)
		return bad;
	return ncerts ? NULL : "data does not contain any valid RSA or ECDSA certificates";
}

static bool is_dns1123_subdomain(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || n > 253)
		return false;
	while (i < n) {
		size_t st = i;

		while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			i++;
		if (i == st || s[st] == '-' || s[i - 1] == '-')
			return false;
		if (i < n) {
			if (s[i] != '.')
				return false;
			i++;
			if (i == n)
				return false;
		}
	}
	return true;
}

static bool is_http_path(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("/-._~%!$&'()*+,;=:", *s)))
			return false;
	return true;
}

#define DNS1123_SUBDOMAIN_MSG                                                                                   \
	"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must " \
	"start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "         \
	"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"

/* utilvalidation.IsDomainPrefixedPath */
static void validate_domain_prefixed_path(verrs *v, const char *path, const char *key)
{
	const char *slash;
	char *host;

	if (!key || !*key) {
		v_required(v, path, "");
		return;
	}
	slash = strchr(key, '/');
	if (!slash || slash == key || slash[1] == '\0') {
		v_invalid(v, path, key, "must be a domain-prefixed path (such as \"acme.io/foo\")");
		return;
	}
	host = authcfg_memdup0(key, (size_t)(slash - key));
	if (!host) {
		v->oom = true;
		return;
	}
	if ((size_t)(slash - key) > 253)
		v_invalid(v, path, host, "must be no more than 253 characters");
	if (!is_dns1123_subdomain(host, (size_t)(slash - key)))
		v_invalid(v, path, host, DNS1123_SUBDOMAIN_MSG);
	free(host);
	if (!is_http_path(slash + 1))
		v_invalid(v, path, slash + 1,
			  "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')");
}

static bool is_k8s_domain(const char *key)
{
	const char *slash = strchr(key, '/');
	size_t n;

	if (!slash)
		return false;
	n = (size_t)(slash - key);
	for (int i = 0; i < 2; i++) {
		const char *d = i ? "k8s.io" : "kubernetes.io";
		size_t dl = strlen(d);

		if (n == dl && memcmp(key, d, dl) == 0)
			return true;
		if (n > dl && key[n - dl - 1] == '.' && memcmp(key + n - dl, d, dl) == 0)
			return true;
	}
	return false;
}

static bool has_upper(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return true;
	return false; /* Go's strings.ToLower also folds non-ASCII; the domain check refuses those anyway */
}

static void validate_prefixed(verrs *v, size_t i, const char *field, const authcfg_mapping *m, bool required)
{
	char p[160], p2[160];

	vp(p, sizeof(p), i, ".claimMappings.%s", field);
	if (m->expr.expression && m->claim) {
		v_invalid(v, p, "", "claim and expression can't both be set");
	} else if (!m->expr.expression && !m->claim) {
		if (required)
			v_required(v, p, "claim or expression is required");
	} else if (m->expr.expression) {
		if (m->prefix)
			v_invalid(v, vp(p2, sizeof(p2), i, ".claimMappings.%s.prefix", field), m->prefix,
				  "may not be specified when expression is set");
	} else if (!m->prefix) {
		v_required(v, vp(p2, sizeof(p2), i, ".claimMappings.%s.prefix", field),
			   "prefix is required when claim is set. It can be set to an empty string to disable prefixing");
	}
}

static void validate_jwt(verrs *v, const authcfg_issuer *is, char *const *side)
{
	size_t i = is->index;
	char p[192];

	/* issuer.url */
	if (!is->url)
		v_required(v, vp(p, sizeof(p), i, ".issuer.url"), "");
	else
		validate_url(v, is->url, vp(p, sizeof(p), i, ".issuer.url"));
	/* issuer.discoveryURL */
	if (is->discovery_url) {
		vp(p, sizeof(p), i, ".issuer.discoveryURL");
		if (is->url && trim_slash_len(is->url) == trim_slash_len(is->discovery_url) &&
		    memcmp(is->url, is->discovery_url, trim_slash_len(is->url)) == 0)
			v_invalid(v, p, is->discovery_url, "discoveryURL must be different from URL");
		validate_url(v, is->discovery_url, p);
	}
	/* issuer.audiences, issuer.audienceMatchPolicy */
	if (is->naudiences == 0) {
		char d[224];

		vp(p, sizeof(p), i, ".issuer.audiences");
		snprintf(d, sizeof(d), "at least one %s is required", p);
		v_required(v, p, d);
	} else {
		for (size_t k = 0; k < is->naudiences; k++) {
			vp(p, sizeof(p), i, ".issuer.audiences[%zu]", k);
			if (!is->audiences[k][0])
				v_required(v, p, "");
			for (size_t o = 0; o < k; o++)
				if (strcmp(is->audiences[o], is->audiences[k]) == 0) {
					v_duplicate(v, p, is->audiences[k]);
					break;
				}
		}
		vp(p, sizeof(p), i, ".issuer.audienceMatchPolicy");
		if (is->naudiences > 1 && !is->audience_match_any)
			v_invalid(v, p, side[1] ? side[1] : "", "audienceMatchPolicy must be MatchAny for multiple audiences");
		if (is->naudiences == 1 && side[1])
			v_invalid(v, p, side[1], "audienceMatchPolicy must be empty or MatchAny for single audience");
	}
	/* issuer.certificateAuthority */
	if (is->certificate_authority) {
		const char *why = ca_check(is->certificate_authority, strlen(is->certificate_authority));

		if (why)
			v_invalid(v, vp(p, sizeof(p), i, ".issuer.certificateAuthority"), "<omitted>", why);
	}
	/* issuer.egressSelectorType: the API server's own network path; nothing we could honour */
	if (side[0])
		v_forbidden(v, vp(p, sizeof(p), i, ".issuer.egressSelectorType"),
			    "egress selection is not supported by kube-oidc-spoa");

	/* claimValidationRules */
	for (size_t k = 0; k < is->nclaim_rules; k++) {
		const authcfg_claim_rule *r = &is->claim_rules[k];

		vp(p, sizeof(p), i, ".claimValidationRules[%zu]", k);
		if (r->claim && r->expr.expression) {
			v_invalid(v, p, r->claim, "claim and expression can't both be set");
		} else if (!r->claim && !r->expr.expression) {
			v_required(v, p, "claim or expression is required");
		} else if (r->claim) {
			bool dup = false;

			if (r->message)
				v_invalid(v, vp(p, sizeof(p), i, ".claimValidationRules[%zu].message", k), r->message,
					  "may not be specified when claim is set");
			for (size_t o = 0; o < k && !dup; o++)
				dup = is->claim_rules[o].claim && !is->claim_rules[o].expr.expression &&
				      strcmp(is->claim_rules[o].claim, r->claim) == 0;
			if (dup)
				v_duplicate(v, vp(p, sizeof(p), i, ".claimValidationRules[%zu].claim", k), r->claim);
		} else {
			bool dup = false;

			if (r->required_value && *r->required_value)
				v_invalid(v, vp(p, sizeof(p), i, ".claimValidationRules[%zu].requiredValue", k),
					  r->required_value, "may not be specified when expression is set");
			for (size_t o = 0; o < k && !dup; o++)
				dup = !is->claim_rules[o].claim && is->claim_rules[o].expr.expression &&
				      strcmp(is->claim_rules[o].expr.expression, r->expr.expression) == 0;
			if (dup)
				v_duplicate(v, vp(p, sizeof(p), i, ".claimValidationRules[%zu].expression", k),
					    r->expr.expression);
		}
	}

	/* claimMappings */
	validate_prefixed(v, i, "username", &is->username, true);
	validate_prefixed(v, i, "groups", &is->groups, false);
	if (is->uid.claim && is->uid.expr.expression)
		v_invalid(v, vp(p, sizeof(p), i, ".claimMappings.uid"), "", "claim and expression can't both be set");
	for (size_t k = 0; k < is->nextra; k++) {
		const authcfg_extra *x = &is->extra[k];
		bool dup = false;

		vp(p, sizeof(p), i, ".claimMappings.extra[%zu].key", k);
		validate_domain_prefixed_path(v, p, x->key);
		if (x->key && has_upper(x->key))
			v_invalid(v, p, x->key, "must be lowercase");
		if (x->key && is_k8s_domain(x->key))
			v_invalid(v, p, x->key, "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use");
		for (size_t o = 0; o < k && !dup; o++)
			dup = strcmp(is->extra[o].key ? is->extra[o].key : "", x->key ? x->key : "") == 0;
		if (dup) {
			v_duplicate(v, p, x->key ? x->key : "");
			continue;
		}
		if (!x->value.expression)
			v_required(v, vp(p, sizeof(p), i, ".claimMappings.extra[%zu].valueExpression", k), "");
	}

	/* userValidationRules */
	for (size_t k = 0; k < is->nuser_rules; k++) {
		const authcfg_user_rule *r = &is->user_rules[k];
		bool dup = false;

		vp(p, sizeof(p), i, ".userValidationRules[%zu].expression", k);
		if (!r->expr.expression) {
			v_required(v, p, "");
			continue;
		}
		for (size_t o = 0; o < k && !dup; o++)
			dup = is->user_rules[o].expr.expression &&
			      strcmp(is->user_rules[o].expr.expression, r->expr.expression) == 0;
		if (dup)
			v_duplicate(v, p, r->expr.expression);
	}
}

static void validate_config(verrs *v, const authcfg_config *c, const authcfg_side *side)
{
	char p[96];

	for (size_t i = 0; i < c->njwt; i++) {
		const authcfg_issuer *is = &c->jwt[i];
		const char *u = is->url ? is->url : "";
		bool dup = false;

		validate_jwt(v, is, &side->v[2 * i]);
		for (size_t o = 0; o < i && !dup; o++)
			dup = strcmp(c->jwt[o].url ? c->jwt[o].url : "", u) == 0;
		if (dup)
			v_duplicate(v, vp(p, sizeof(p), i, ".issuer.url"), u);
		if (is->discovery_url) {
			dup = false;
			for (size_t o = 0; o < i && !dup; o++)
				dup = c->jwt[o].discovery_url && strcmp(c->jwt[o].discovery_url, is->discovery_url) == 0;
			if (dup)
				v_duplicate(v, vp(p, sizeof(p), i, ".issuer.discoveryURL"), is->discovery_url);
		}
	}
	if (side->anonymous)
		v_forbidden(v, "anonymous",
			    "anonymous authentication is not supported by kube-oidc-spoa (HAProxy refuses requests "
			    "without a token)");
}

int authcfg_validate(const authcfg_config *c, const authcfg_side *side, authcfg_sb *msg)
{
	verrs v = {0};
	authcfg_sb m = {0};
	int rc = 0;

	validate_config(&v, c, side);
	if (v.oom) {
		rc = AUTHCFG_E_NOMEM;
		goto out;
	}
	if (v.n) {
		/* an aggregate prints one error bare and several as "[e1, e2]" */
		if (v.n > 1)
			authcfg_sb_puts(&m, "[");
		for (size_t k = 0; k < v.n; k++) {
			if (k)
				authcfg_sb_puts(&m, ", ");
			authcfg_sb_puts(&m, v.e[k]);
		}
		if (v.dropped)
			authcfg_sb_printf(&m, ", and %zu more", v.dropped);
		if (v.n > 1)
			authcfg_sb_puts(&m, "]");
		rc = AUTHCFG_E_INVALID;
	}
out:
	for (size_t k = 0; k < v.n; k++)
		free(v.e[k]);
	*msg = m;
	return rc;
}
