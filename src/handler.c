/* handler.c — NOTIFY → verifier → ACK variables per conf/CONTRACT.md; see handler.h. */
#include "handler.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

const char *const handler_reason_names[HR_COUNT] = {
	[HR_OK] = "ok",
	[HR_MISSING] = "missing bearer token",
	[HR_MALFORMED_HEADER] = "malformed Authorization header",
	[HR_V_MALFORMED] = "malformed token",
	[HR_V_TOO_LARGE] = "token too large",
	[HR_V_ALG] = "signing algorithm not allowed",
	[HR_V_UNKNOWN_KID] = "unknown key id",
	[HR_V_SIGNATURE] = "invalid signature",
	[HR_V_ISSUER] = "issuer mismatch",
	[HR_V_AUDIENCE] = "audience mismatch",
	[HR_V_EXPIRED] = "token expired",
	[HR_V_NOT_YET] = "token not yet valid",
	[HR_V_CLAIMS] = "invalid claims",
	[HR_V_NOT_READY] = "issuer keys not loaded",
	[HR_V_RESERVED] = "reserved identity refused",
	[HR_V_INTERNAL] = "internal error",
	[HR_IMPERSONATION] = "impersonation requests are disabled",
	[HR_TOO_MANY_GROUPS] = "too many groups",
	[HR_BAD_IDENTITY] = "identity contains control characters",
	[HR_NO_MESSAGE] = "no kos-auth message",
	[HR_BAD_MESSAGE] = "malformed kos-auth message",
	[HR_NO_SATOKEN] = "service-account token not loaded",
	[HR_TOO_BIG] = "identity too large for the SPOP frame",
	[HR_OTHER] = "other",
};

/* The Lua side (conf/kos.lua) takes at most this many extras; more would be a 503 there anyway. */
#define HANDLER_MAX_EXTRAS 64
#define HANDLER_X_BYTES 8192

struct handler {
	handler_config cfg;
	spoa_server *_Atomic srv;
};

int handler_create(const handler_config *cfg, handler **out)
{
	handler *h;

	if (cfg->vops.verify == NULL || cfg->vops.ready == NULL || cfg->sa == NULL || cfg->metrics == NULL ||
	    cfg->max_groups == 0 || cfg->max_groups > CONFIG_MAX_GROUPS_LIMIT)
		return -1;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -1;
	h->cfg = *cfg;
	*out = h;
	return 0;
}

void handler_destroy(handler *h)
{
	free(h);
}

void handler_set_server(handler *h, spoa_server *srv)
{
	h->srv = srv;
}

/* ---- input ------------------------------------------------------------------------------------------------ */

static bool name_is(spop_slice s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

int handler_read_msg(const spop_msg *m, handler_input *in)
{
	spop_msg it = *m;
	spop_arg a;
	bool seen_auth = false, seen_src = false, seen_imp = false;
	int rc;

	while ((rc = spop_msg_next_arg(&it, &a)) == 1) {
		if (name_is(a.name, "auth") && !seen_auth) {
			seen_auth = true;
			if (a.value.type == SPOP_T_STR) {
				in->have_auth = true;
				in->auth = a.value.u.s.ptr;
				in->auth_len = a.value.u.s.len;
			} else if (a.value.type != SPOP_T_NULL) {
				goto bad;
			}
		} else if (name_is(a.name, "src") && !seen_src) {
			seen_src = true;
			if (a.value.type == SPOP_T_IPV4) {
				in->src_family = 4;
				memcpy(in->src, a.value.u.ip4, 4);
			} else if (a.value.type == SPOP_T_IPV6) {
				in->src_family = 6;
				memcpy(in->src, a.value.u.ip6, 16);
			} else if (a.value.type != SPOP_T_NULL) {
				goto bad;
			}
		} else if (name_is(a.name, "imp") && !seen_imp) {
			seen_imp = true;
			/* fail closed: anything but "absent" or an explicit false counts as an impersonation attempt */
			if (a.value.type == SPOP_T_BOOL)
				in->imp = a.value.u.b;
			else if (a.value.type != SPOP_T_NULL)
				in->imp = true;
		}
		/* unknown arguments are ignored (contract) */
	}
	if (rc < 0)
		goto bad;
	return 0;
bad:
	in->bad_msg = true;
	return -1;
}

static bool is_sp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

int handler_bearer(const uint8_t *p, size_t len, size_t *off, size_t *tlen)
{
	size_t a = 0, b = len, i;

	/* the API server trims surrounding whitespace before splitting */
	while (a < b && is_sp(p[a]))
		a++;
	while (b > a && is_sp(p[b - 1]))
		b--;
	if (a == b)
		return HR_MISSING;
	if (b - a < 8 || strncasecmp((const char *)p + a, "bearer ", 7) != 0)
		return HR_MALFORMED_HEADER;
	a += 7;
	for (i = a; i < b; i++)
		if (is_sp(p[i]) || p[i] < 0x20 || p[i] == 0x7f)
			return HR_MALFORMED_HEADER;
	*off = a;
	*tlen = b - a;
	return 0;
}

/* ---- output ----------------------------------------------------------------------------------------------- */

static bool clean(const char *s)
{
	/* header values: HAProxy would mangle CR/LF/NUL, and no control byte has a place in a name */
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Percent-encodes a key for Impersonate-Extra-<key>: unreserved characters stay, all else is %XX (the API
 * server unescapes it). Returns bytes written, or 0 when it does not fit. */
static size_t pct_key(char *dst, size_t cap, const char *k)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *k; k++) {
		unsigned char c = (unsigned char)*k;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~') {
			if (cap - o < 1)
				return 0;
			dst[o++] = (char)c;
		} else {
			if (cap - o < 3)
				return 0;
			dst[o++] = '%';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	return o;
}

/* Appends "<key>=<value>\n" to x; false when it does not fit or the value is not clean. */
static bool x_add(char *x, size_t *xlen, const char *key, const char *value)
{
	size_t k, vlen = strlen(value);

	if (*key == '\0' || !clean(value))
		return false;
	k = pct_key(x + *xlen, HANDLER_X_BYTES - *xlen, key);
	if (k == 0 || HANDLER_X_BYTES - *xlen - k < vlen + 2)
		return false;
	*xlen += k;
	x[(*xlen)++] = '=';
	memcpy(x + *xlen, value, vlen);
	*xlen += vlen;
	x[(*xlen)++] = '\n';
	return true;
}

static int emit_identity(handler *h, const handler_input *in, const identity *id, const satoken_val *sa,
			 const handler_sink *k, enum handler_reason *why)
{
	char x[HANDLER_X_BYTES];
	size_t xlen = 0, nx = 0;
	char cip[INET6_ADDRSTRLEN] = "";
	char gname[24];

	if (!clean(id->user) || (id->uid != NULL && !clean(id->uid))) {
		*why = HR_BAD_IDENTITY;
		return HANDLER_UNAUTHENTICATED;
	}
	for (size_t i = 0; i < id->ngroups; i++) {
		if (!clean(id->groups[i])) {
			*why = HR_BAD_IDENTITY;
			return HANDLER_UNAUTHENTICATED;
		}
	}
	for (size_t i = 0; i < id->nextra; i++) {
		if (nx == HANDLER_MAX_EXTRAS || !x_add(x, &xlen, id->extra[i].key, id->extra[i].value)) {
			*why = nx == HANDLER_MAX_EXTRAS || clean(id->extra[i].value) ? HR_TOO_BIG : HR_BAD_IDENTITY;
			return *why == HR_TOO_BIG ? HANDLER_UNAVAILABLE : HANDLER_UNAUTHENTICATED;
		}
		nx++;
	}
	for (size_t i = 0; i < h->cfg.nextras; i++) {
		if (nx == HANDLER_MAX_EXTRAS || !x_add(x, &xlen, h->cfg.extras[i].key, h->cfg.extras[i].value)) {
			*why = HR_TOO_BIG;
			return HANDLER_UNAVAILABLE;
		}
		nx++;
	}
	if (h->cfg.client_ip) {
		if (in->src_family == 0 ||
		    inet_ntop(in->src_family == 4 ? AF_INET : AF_INET6, in->src, cip, sizeof(cip)) == NULL) {
			*why = HR_BAD_MESSAGE;
			return HANDLER_UNAVAILABLE;
		}
	}
	/* all checks passed: now write; a full ACK (NOSPACE) leaves status unset or 4, both a 503 */
	if (k->set_str(k->ud, "user", id->user, strlen(id->user)) != 0)
		goto too_big;
	if (id->uid != NULL && k->set_str(k->ud, "uid", id->uid, strlen(id->uid)) != 0)
		goto too_big;
	if (k->set_int(k->ud, "ng", (int64_t)id->ngroups) != 0)
		goto too_big;
	for (size_t i = 0; i < id->ngroups; i++) {
		snprintf(gname, sizeof(gname), "g%zu", i);
		if (k->set_str(k->ud, gname, id->groups[i], strlen(id->groups[i])) != 0)
			goto too_big;
	}
	if (h->cfg.client_ip && k->set_str(k->ud, "cip", cip, strlen(cip)) != 0)
		goto too_big;
	if (nx > 0) {
		if (k->set_int(k->ud, "nx", (int64_t)nx) != 0 || k->set_str(k->ud, "x", x, xlen) != 0)
			goto too_big;
	}
	if (k->set_str(k->ud, "sa", sa->str, sa->len) != 0)
		goto too_big;
	*why = HR_OK;
	return HANDLER_ALLOW;
too_big:
	*why = HR_TOO_BIG;
	return HANDLER_UNAVAILABLE;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void log_decision(const handler_input *in, int status, enum handler_reason why, const char *detail,
			 const identity *id)
{
	char ip[INET6_ADDRSTRLEN] = "";
	log_line l;

	log_begin(&l, status == HANDLER_ALLOW ? LOG_LEVEL_DEBUG
		      : status == HANDLER_UNAVAILABLE ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
		  status == HANDLER_ALLOW ? "allow" : "reject");
	if (!l.on)
		return;
	if (in->src_family != 0)
		inet_ntop(in->src_family == 4 ? AF_INET : AF_INET6, in->src, ip, sizeof(ip));
	log_int(&l, "status", status);
	if (status != HANDLER_ALLOW)
		log_str(&l, "reason", handler_reason_names[why]);
	if (detail != NULL)
		log_str(&l, "detail", detail);
	if (id != NULL) {
		log_str(&l, "user", id->user);
		log_uint(&l, "groups", id->ngroups);
	}
	log_str(&l, "client_ip", in->src_family != 0 ? ip : NULL);
	log_end(&l);
}

int handler_process(handler *h, const handler_input *in, int64_t now, const handler_sink *k)
{
	const identity *id = NULL;
	const char *detail = NULL;
	satoken_val *sa = NULL;
	enum handler_reason why = HR_OTHER;
	int64_t t0, lat = -1;
	size_t off = 0, tlen = 0;
	int status, rc;

	if (!in->have_msg) {
		status = HANDLER_UNAVAILABLE;
		why = HR_NO_MESSAGE;
		goto out;
	}
	if (in->bad_msg) {
		status = HANDLER_UNAVAILABLE;
		why = HR_BAD_MESSAGE;
		goto out;
	}
	if (!in->have_auth) {
		status = HANDLER_UNAUTHENTICATED;
		why = HR_MISSING;
		goto out;
	}
	rc = handler_bearer(in->auth, in->auth_len, &off, &tlen);
	if (rc != 0) {
		status = HANDLER_UNAUTHENTICATED;
		why = (enum handler_reason)rc;
		goto out;
	}
	t0 = mono_ns();
	rc = h->cfg.vops.verify(h->cfg.vops.ctx, in->auth + off, tlen, now, &id, &detail);
	lat = mono_ns() - t0;
	if (rc != VERIFY_OK) {
		id = NULL;
		why = (rc <= VERIFY_E_MALFORMED && rc >= VERIFY_E_INTERNAL) ? (enum handler_reason)(HR_V_MALFORMED - 1 - rc)
									   : HR_V_INTERNAL;
		status = (why == HR_V_NOT_READY || why == HR_V_INTERNAL) ? HANDLER_UNAVAILABLE : HANDLER_UNAUTHENTICATED;
		goto out;
	}
	/* a valid token: only now may impersonation or group count matter (401 wins over 403) */
	if (in->imp) {
		status = HANDLER_IMPERSONATION;
		why = HR_IMPERSONATION;
		goto out;
	}
	if (id->ngroups > h->cfg.max_groups) {
		static _Thread_local char d[64];

		snprintf(d, sizeof(d), "%zu groups, at most %u allowed (--max-groups)", id->ngroups, h->cfg.max_groups);
		detail = d;
		status = HANDLER_TOO_MANY_GROUPS;
		why = HR_TOO_MANY_GROUPS;
		goto out;
	}
	sa = satoken_acquire(h->cfg.sa);
	if (sa == NULL) {
		status = HANDLER_UNAVAILABLE;
		why = HR_NO_SATOKEN;
		goto out;
	}
	status = emit_identity(h, in, id, sa, k, &why);
out:
	if (status != HANDLER_ALLOW)
		k->set_str(k->ud, "reason", handler_reason_names[why], strlen(handler_reason_names[why]));
	/* the verdict goes last: HAProxy stops applying actions at the first bad one, and a missing status is a
	 * 503 — so a half-written ACK can never read as an allow */
	if (k->set_int(k->ud, "status", status) != 0 && status == HANDLER_ALLOW) {
		status = HANDLER_UNAVAILABLE;
		why = HR_TOO_BIG;
	}
	metrics_request(h->cfg.metrics, (enum metrics_verdict)status, why, lat);
	if (status != HANDLER_ALLOW || log_enabled(LOG_LEVEL_DEBUG))
		log_decision(in, status, why, detail, id);
	satoken_val_release(sa);
	identity_release(id);
	return status;
}

/* ---- SPOP glue -------------------------------------------------------------------------------------------- */

static int ack_str(void *ud, const char *name, const char *s, size_t len)
{
	return spoa_ack_set_str(ud, SPOP_SCOPE_TXN, name, s, len);
}

static int ack_int(void *ud, const char *name, int64_t v)
{
	return spoa_ack_set_int(ud, SPOP_SCOPE_TXN, name, v);
}

int handler_on_notify(spoa_request *req, void *userdata)
{
	handler *h = userdata;
	handler_input in;
	handler_sink sink = {ack_str, ack_int, req};
	spop_msg m;
	int rc;

	memset(&in, 0, sizeof(in));
	while ((rc = spoa_request_next_msg(req, &m)) == 1) {
		if (name_is(m.name, "kos-auth")) {
			in.have_msg = true;
			handler_read_msg(&m, &in);
			break;
		}
	}
	if (rc < 0)
		in.bad_msg = true;
	handler_process(h, &in, (int64_t)time(NULL), &sink);
	return SPOA_DONE;
}

/* ---- readiness and metrics ---------------------------------------------------------------------------------- */

bool handler_ready(handler *h, char *why, size_t whylen)
{
	bool v = h->cfg.vops.ready(h->cfg.vops.ctx);
	bool s = satoken_loaded(h->cfg.sa);

	if (v && s)
		return true;
	snprintf(why, whylen, "%s%s%s", v ? "" : "issuer keys not loaded", (!v && !s) ? "; " : "",
		 s ? "" : "service-account token not loaded");
	return false;
}

int handler_metrics(handler *h, char **body, size_t *len)
{
	metrics_ext ext;
	spoa_server *srv = h->srv;
	char why[8];

	memset(&ext, 0, sizeof(ext));
	if (srv != NULL) {
		ext.have_spoa = true;
		spoa_server_stats(srv, &ext.spoa);
	}
	if (h->cfg.vops.stats != NULL) {
		ext.have_verifier = true;
		h->cfg.vops.stats(h->cfg.vops.ctx, &ext.cache, &ext.oidc);
	}
	ext.ready = handler_ready(h, why, sizeof(why));
	ext.satoken_loaded = satoken_loaded(h->cfg.sa);
	satoken_counts(h->cfg.sa, &ext.satoken_loads, &ext.satoken_failures);
	return metrics_render(h->cfg.metrics, &ext, body, len);
}
