/* handler.c — NOTIFY → verifier → ACK variables per conf/CONTRACT.md; see handler.h. */
#include "handler.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hold.h"
#include "impersonate.h"
#include "kosack.h"
#include "kx.h"
#include "kosmsg.h"
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
	[HR_V_IDENTITY] = "identity cannot be forwarded unchanged",
	[HR_IMPERSONATION] = "impersonation requests are disabled",
	[HR_TOO_MANY_GROUPS] = "too many groups",
	[HR_NO_MESSAGE] = "no kos-auth message",
	[HR_BAD_MESSAGE] = "malformed kos-auth message",
	[HR_NO_XFF] = "no X-Forwarded-For arguments",
	[HR_NO_SATOKEN] = "service-account token not loaded",
	[HR_TOO_BIG] = "identity too large for the SPOP frame",
	[HR_TOO_MANY_VALUES] = "too many values for an extra key",
	[HR_NO_SLOT] = "extra key without a HAProxy slot",
	[HR_SHUTDOWN] = "agent shutting down",
	[HR_PASSTHROUGH] = "token passthrough",
	[HR_TR_DENIED] = "token review: not authenticated",
	[HR_TR_AUDIENCE] = "token review: audience mismatch",
	[HR_TR_RATE] = "token review rate limit",
	[HR_TR_BUSY] = "token review queue full",
	[HR_TR_UNAVAILABLE] = "token review unavailable",
	[HR_TR_RESPONSE] = "token review: malformed answer",
	[HR_IMP_DENIED] = "impersonation not allowed",
	[HR_IMP_BAD] = "impersonation request refused",
	[HR_IMP_UNAVAILABLE] = "impersonation authorizer unavailable",
	[HR_OTHER] = "other",
};

#define HANDLER_DEFAULT_MAX_TOKEN 16384

struct handler {
	handler_config cfg;
	spoa_server *_Atomic srv;
	kosack *ack;           /* the ACK writer: variable names, extras, client_ip */
	hold *hold;            /* held requests (hold.h); NULL = holding off */
	bool stopped;          /* handler_stop() done (main thread only) */
};

_Static_assert(HANDLER_EXTRA_SLOTS == KOSMSG_XK_SLOTS, "xk carries one key per HAProxy slot");

static int held_retry(void *ud, hold_req *r, int64_t left_ms);
static void held_expire(void *ud, hold_req *r, bool shutdown);

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
	if (kosack_create(cfg->max_groups, cfg->client_ip, cfg->extras, cfg->nextras, &h->ack) != 0)
		goto fail;
	if (h->cfg.max_held == 0)
		h->cfg.max_held = HANDLER_DEFAULT_MAX_HELD;
	if (h->cfg.max_token_bytes == 0)
		h->cfg.max_token_bytes = HANDLER_DEFAULT_MAX_TOKEN;
	if (cfg->unknown_kid_wait_ms == 0 || cfg->vops.set_listener == NULL || cfg->vops.refresh_soon == NULL) {
		*out = h;
		return 0;
	}
	if (hold_create(&(hold_ops){held_retry, held_expire, h}, h->cfg.unknown_kid_wait_ms, h->cfg.max_held,
			&h->hold) != 0)
		goto fail;
	h->cfg.vops.set_listener(h->cfg.vops.ctx, hold_notify, h->hold);
	if (h->cfg.claims != NULL)
		distclaims_set_listener(h->cfg.claims, hold_notify, h->hold);
	*out = h;
	return 0;
fail:
	kosack_destroy(h->ack);
	free(h);
	return -1;
}

void handler_stop(handler *h)
{
	if (h == NULL || h->hold == NULL || h->stopped)
		return;
	h->stopped = true;
	hold_shutdown(h->hold);
	/* after hold_shutdown(), not under its lock: the verifier holds its listener lock while calling
	 * hold_notify, which takes it */
	h->cfg.vops.set_listener(h->cfg.vops.ctx, NULL, NULL);
	if (h->cfg.claims != NULL)
		distclaims_set_listener(h->cfg.claims, NULL, NULL);
	hold_join(h->hold);
}

void handler_destroy(handler *h)
{
	if (h == NULL)
		return;
	handler_stop(h);
	hold_destroy(h->hold);
	kosack_destroy(h->ack);
	free(h);
}

unsigned handler_held(handler *h)
{
	return h->hold != NULL ? hold_count(h->hold) : 0;
}

void handler_set_server(handler *h, spoa_server *srv)
{
	h->srv = srv;
}

/* ---- the Authorization header ---------------------------------------------------------------------------- */

static bool is_sp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* handler_bearer() without its look at every byte of the token (see token_clean). */
static int bearer_split(const uint8_t *p, size_t len, size_t *off, size_t *tlen)
{
	size_t a = 0, b = len;

	/* the API server trims surrounding whitespace before splitting */
	while (a < b && is_sp(p[a]))
		a++;
	while (b > a && is_sp(p[b - 1]))
		b--;
	if (a == b)
		return HR_MISSING;
	if (b - a < 8 || strncasecmp((const char *)p + a, "bearer ", 7) != 0)
		return HR_MALFORMED_HEADER;
	*off = a + 7;
	*tlen = b - a - 7;
	return 0;
}

/*
 * True when the token has no SP/HT or control byte (the rest of handler_bearer's rule). The request path runs
 * this only after the verifier refused the token, to name the refusal: a token the verifier accepts is a
 * compact JWS whose three parts passed the strict base64url decoder (jwt.c), so every byte is [A-Za-z0-9_-.],
 * and a cache hit is a token with exactly those bytes (the key is a hash of all of them). Scanning every byte
 * of a 1 KiB token up front cost about an eighth of the agent's CPU on a cache hit.
 */
static bool token_clean(const uint8_t *p, size_t len)
{
	uint8_t bad = 0;

	/* no early exit, so the compiler can vectorise it; this is the refusal path, not worth a shortcut */
	for (size_t i = 0; i < len; i++)
		bad |= (uint8_t)(p[i] <= 0x20 || p[i] == 0x7f);
	return bad == 0;
}

int handler_bearer(const uint8_t *p, size_t len, size_t *off, size_t *tlen)
{
	size_t a, n;
	int rc = bearer_split(p, len, &a, &n);

	if (rc != 0)
		return rc;
	if (!token_clean(p + a, n))
		return HR_MALFORMED_HEADER;
	*off = a;
	*tlen = n;
	return 0;
}

static void log_decision(const handler_input *in, int status, enum handler_reason why, const char *detail,
			 const identity *id)
{
	char ip[INET6_ADDRSTRLEN] = "";
	log_line l;

	log_begin(&l, status == HANDLER_ALLOW || status == HANDLER_PASSTHROUGH ? LOG_LEVEL_DEBUG
		      : status == HANDLER_UNAVAILABLE ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
		  status == HANDLER_ALLOW ? "allow" : status == HANDLER_PASSTHROUGH ? "passthrough" : "reject");
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

/* Writes the verdict (reason, then status last), counts and logs it, and drops the references. Returns the
 * status actually written. */
static int conclude(handler *h, const handler_input *in, const handler_sink *k, int status, enum handler_reason why,
		    const char *detail, const identity *id, satoken_val *sa, int64_t lat)
{
	if (status != HANDLER_ALLOW)
		k->set_str(k->ud, "reason", handler_reason_names[why], strlen(handler_reason_names[why]));
	/* the verdict goes last: HAProxy stops applying actions at the first bad one, and a missing status is a
	 * 503 — so a half-written ACK can never read as an allow */
	if (k->set_int(k->ud, "status", status) != 0 && (status == HANDLER_ALLOW || status == HANDLER_PASSTHROUGH)) {
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

/* ---- token passthrough (see handler.h) -------------------------------------------------------------------- */

#define PT_PENDING (-2) /* judge(): waiting for a TokenReview (handler_submit() says HANDLER_HELD) */

/* A request waiting for its TokenReview. */
typedef struct ptreq {
	handler *h;
	handler_input in;      /* src, imp; auth unused */
	handler_sink sink;
	handler_done_fn done;
	int64_t t0_ns;
} ptreq;

static bool pt_candidate(handler *h, int rc, const uint8_t *tok, size_t tlen)
{
	char iss[1024];
	int n;

	if (rc == VERIFY_E_TOO_LARGE || rc == VERIFY_E_INTERNAL)
		return false;
	n = tokenreview_token_issuer(tok, tlen, iss, sizeof(iss));
	if (n < 0)
		return false;
	if (n == 0)
		return true;
	return h->cfg.vops.foreign != NULL && h->cfg.vops.foreign(h->cfg.vops.ctx, rc, iss);
}

static int pt_verdict(handler *h, const handler_input *in, const handler_sink *k, int result, const char *user,
		      int64_t t0)
{
	enum handler_reason why;
	int status = HANDLER_UNAUTHENTICATED;

	switch (result) {
	case TOKENREVIEW_OK:
		if (in->imp) {
			status = HANDLER_IMPERSONATION;
			why = HR_IMPERSONATION;
			break;
		}
		/* for HAProxy's log line only: the status 5 rules never turn it into a header */
		if (user != NULL && identity_value_problem(user) == NULL)
			k->set_str(k->ud, "user", user, strlen(user));
		status = HANDLER_PASSTHROUGH;
		why = HR_PASSTHROUGH;
		break;
	case TOKENREVIEW_E_DENIED: why = HR_TR_DENIED; break;
	case TOKENREVIEW_E_AUDIENCE: why = HR_TR_AUDIENCE; break;
	case TOKENREVIEW_E_RATE: why = HR_TR_RATE; break;
	case TOKENREVIEW_E_BUSY: status = HANDLER_UNAVAILABLE; why = HR_TR_BUSY; break;
	case TOKENREVIEW_E_RESPONSE: status = HANDLER_UNAVAILABLE; why = HR_TR_RESPONSE; break;
	case TOKENREVIEW_E_SHUTDOWN: status = HANDLER_UNAVAILABLE; why = HR_SHUTDOWN; break;
	default: status = HANDLER_UNAVAILABLE; why = HR_TR_UNAVAILABLE; break;
	}
	return conclude(h, in, k, status, why, NULL, NULL, NULL, kx_mono_ns() - t0);
}

/* tokenreview_done_fn, on the reviewer thread */
static void pt_done(void *ud, int result, const char *user)
{
	ptreq *p = ud;

	pt_verdict(p->h, &p->in, &p->sink, result, user, p->t0_ns);
	p->done(p->sink.ud);
	free(p);
}

static int passthrough(handler *h, const handler_input *in, const uint8_t *tok, size_t tlen,
		       const handler_sink *k, int64_t t0, handler_done_fn done)
{
	char user[TOKENREVIEW_USER_MAX];
	ptreq *p = malloc(sizeof(*p));
	int rc;

	if (p == NULL)
		return pt_verdict(h, in, k, TOKENREVIEW_E_NOMEM, NULL, t0);
	p->h = h;
	p->in = *in;
	p->in.auth = NULL;
	p->in.auth_len = 0;
	p->in.xk = NULL; /* a passthrough verdict writes no identity */
	p->in.xk_len = 0;
	p->sink = *k;
	p->done = done;
	p->t0_ns = t0;
	rc = tokenreview_check(h->cfg.reviewer, tok, tlen, user, sizeof(user), pt_done, p);
	if (rc == TOKENREVIEW_PENDING)
		return PT_PENDING;
	free(p);
	return pt_verdict(h, in, k, rc, user, t0);
}

/* ---- client impersonation (see handler.h) ----------------------------------------------------------------- */

/* The extras that record who acted on an impersonated request. kube-oidc-proxy's keys (its maintained forks use
 * them too), so audit-log queries and RBAC grants carry over from it unchanged. */
#define ORIG_USER "originaluser.jetstack.io-user"
#define ORIG_GROUPS "originaluser.jetstack.io-groups"
#define ORIG_UID "originaluser.jetstack.io-uid"

/* A request waiting for its SubjectAccessReviews: one verdict slot per item, filled by the reviewer thread. */
typedef struct impreq {
	handler *h;
	handler_input in;      /* src, sv; xk points into xkbuf; auth and imh unused */
	handler_sink sink;
	handler_done_fn done;
	int64_t t0_ns;
	const identity *who;   /* the authenticated caller (a reference) */
	imp_request *rq;
	_Atomic size_t left;   /* verdicts still to come, plus one while imp_start() is still asking */
	struct impv {
		struct impreq *r;
		int result;
		char reason[TOKENREVIEW_USER_MAX];
	} *v;
	uint8_t *xkbuf;
} impreq;

static void impreq_free(impreq *r)
{
	identity_release(r->who);
	imp_free(r->rq);
	free(r->v);
	free(r->xkbuf);
	free(r);
}

static int imp_conclude_msg(handler *h, const handler_input *in, const handler_sink *k, int status,
			    enum handler_reason why, const char *msg, const identity *who, int64_t lat)
{
	/* the client's answer (HAProxy's 400/403 body); the log line gets the same text */
	if (k->set_str(k->ud, "msg", msg, strlen(msg)) != 0) {
		status = HANDLER_UNAVAILABLE;
		why = HR_TOO_BIG;
	}
	return conclude(h, in, k, status, why, msg, who, NULL, lat);
}

/* An allowed identity, the token's own or an impersonated one: at most max_groups groups (HAProxy has that many
 * group lines: 403 beyond, never a cut list), then the service-account token and the ACK variables. *sa is set
 * when acquired (the caller's conclude() releases it). */
static int forward(handler *h, const handler_input *in, const identity *id, satoken_val **sa, const handler_sink *k,
		   enum handler_reason *why, const char **detail)
{
	if (id->ngroups > h->cfg.max_groups) {
		static _Thread_local char d[64];

		snprintf(d, sizeof(d), "%zu groups, at most %u allowed (--max-groups)", id->ngroups, h->cfg.max_groups);
		*detail = d;
		*why = HR_TOO_MANY_GROUPS;
		return HANDLER_TOO_MANY_GROUPS;
	}
	*sa = satoken_acquire(h->cfg.sa);
	if (*sa == NULL) {
		*why = HR_NO_SATOKEN;
		return HANDLER_UNAVAILABLE;
	}
	return kosack_identity(h->ack, in, id, *sa, k, why, detail);
}

/* All verdicts are in: the answer, written through r->sink. Returns the status written. */
static int imp_finish(impreq *r)
{
	static _Thread_local char msg[1024];
	handler *h = r->h;
	const imp_request *rq = r->rq;
	const identity *who = r->who, *as = NULL;
	const handler_sink *k = &r->sink;
	identity_extra *extra = NULL;
	satoken_val *sa = NULL;
	const char *detail = NULL;
	enum handler_reason why;
	size_t nx = 0;
	int status;

	r->who = NULL; /* conclude() releases it (or the impersonated identity, and who below) */
	for (size_t i = 0; i < rq->nitems; i++) {
		if (r->v[i].result == TOKENREVIEW_OK)
			continue;
		if (r->v[i].result == TOKENREVIEW_E_DENIED) {
			imp_forbidden(who, &rq->items[i], r->v[i].reason, msg, sizeof(msg));
			return imp_conclude_msg(h, &r->in, k, HANDLER_IMP_DENIED, HR_IMP_DENIED, msg, who,
						kx_mono_ns() - r->t0_ns);
		}
		/* the authorizer could not say: fail closed, as a 503 the client may retry */
		snprintf(msg, sizeof(msg), "SubjectAccessReview: %s", tokenreview_strerror(r->v[i].result));
		return conclude(h, &r->in, k, HANDLER_UNAVAILABLE,
				r->v[i].result == TOKENREVIEW_E_SHUTDOWN ? HR_SHUTDOWN : HR_IMP_UNAVAILABLE, msg, who,
				NULL, kx_mono_ns() - r->t0_ns);
	}
	/* every item allowed: the identity as asked, plus who acted */
	extra = malloc((rq->nextra + who->ngroups + 2) * sizeof(*extra));
	if (extra == NULL) {
		status = HANDLER_UNAVAILABLE;
		why = HR_V_INTERNAL;
		goto out;
	}
	for (size_t i = 0; i < rq->nextra; i++)
		extra[nx++] = rq->extra[i];
	extra[nx++] = (identity_extra){ORIG_USER, who->user};
	for (size_t i = 0; i < who->ngroups; i++)
		extra[nx++] = (identity_extra){ORIG_GROUPS, who->groups[i]};
	if (who->uid != NULL)
		extra[nx++] = (identity_extra){ORIG_UID, who->uid};
	as = identity_build(rq->user, rq->uid, rq->groups, rq->ngroups, extra, nx, who->exp, 0);
	if (as == NULL) {
		status = HANDLER_UNAVAILABLE;
		why = HR_V_INTERNAL;
		goto out;
	}
	status = forward(h, &r->in, as, &sa, k, &why, &detail);
	/* tells HAProxy that these impersonation headers were authorized (its defence-in-depth 403 checks it) */
	if (status == HANDLER_ALLOW && k->set_int(k->ud, "imp", 1) != 0) {
		status = HANDLER_UNAVAILABLE;
		why = HR_TOO_BIG;
	}
	if (status == HANDLER_ALLOW) {
		snprintf(msg, sizeof(msg), "impersonation by %.200s", who->user);
		detail = msg;
	}
out:
	free(extra);
	status = conclude(h, &r->in, k, status, why, detail, as, sa, kx_mono_ns() - r->t0_ns);
	identity_release(who);
	return status;
}

/* tokenreview_done_fn of one item, on the reviewer thread: the last verdict answers the request. */
static void imp_item_done(void *ud, int result, const char *reason)
{
	struct impv *v = ud;
	impreq *r = v->r;

	v->result = result;
	snprintf(v->reason, sizeof(v->reason), "%s", reason != NULL ? reason : "");
	if (atomic_fetch_sub(&r->left, 1) == 1) {
		imp_finish(r);
		r->done(r->sink.ud);
		impreq_free(r);
	}
}

/* The impersonation headers of a request whose token id is valid: refused at once (bad shape), or one review
 * per item. Returns the status written, or PT_PENDING when done(sink->ud) comes later from the reviewer. Takes
 * over the reference id. */
static int imp_start(handler *h, const handler_input *in, const identity *id, const handler_sink *k, int64_t t0,
		     handler_done_fn done)
{
	char err[1024];
	imp_request *rq = NULL;
	impreq *r;
	size_t n;
	int rc;

	if (done == NULL || !in->have_imh) {
		/* handler_process() cannot wait; a conf/ older than this agent sends no header lines */
		return conclude(h, in, k, HANDLER_UNAVAILABLE, HR_IMP_UNAVAILABLE, done == NULL ? "cannot wait for a "
				"SubjectAccessReview here" : "HAProxy sent no imh argument (conf/ older than the agent)",
				id, NULL, kx_mono_ns() - t0);
	}
	if (in->imh == NULL) {
		snprintf(err, sizeof(err), "the request's headers are too large for impersonation (more than %d bytes)",
			 IMP_MAX_HEADERS_BYTES);
		return imp_conclude_msg(h, in, k, HANDLER_IMP_BAD, HR_IMP_BAD, err, id, kx_mono_ns() - t0);
	}
	rc = imp_parse(in->imh, in->imh_len, &rq, err, sizeof(err));
	if (rc == IMP_E_NOMEM)
		return conclude(h, in, k, HANDLER_UNAVAILABLE, HR_V_INTERNAL, NULL, id, NULL, kx_mono_ns() - t0);
	if (rc != IMP_OK)
		return imp_conclude_msg(h, in, k, HANDLER_IMP_BAD, HR_IMP_BAD, err, id, kx_mono_ns() - t0);
	for (size_t i = 0; i < rq->nextra; i++) {
		if (strncmp(rq->extra[i].key, "originaluser.jetstack.io-", 25) == 0) {
			imp_free(rq);
			return imp_conclude_msg(h, in, k, HANDLER_IMP_BAD, HR_IMP_BAD, "the extras originaluser.jetstack.io-* "
						"are set by this proxy (they record who impersonates)", id,
						kx_mono_ns() - t0);
		}
	}
	if (rq->ngroups > h->cfg.max_groups) {
		snprintf(err, sizeof(err), "%zu groups requested, at most %u allowed (--max-groups)", rq->ngroups,
			 h->cfg.max_groups);
		imp_free(rq);
		return conclude(h, in, k, HANDLER_TOO_MANY_GROUPS, HR_TOO_MANY_GROUPS, err, id, NULL, kx_mono_ns() - t0);
	}
	n = rq->nitems;
	r = calloc(1, sizeof(*r));
	if (r != NULL) {
		r->v = calloc(n, sizeof(*r->v));
		r->xkbuf = in->xk_len ? malloc(in->xk_len) : NULL;
	}
	if (r == NULL || r->v == NULL || (in->xk_len && r->xkbuf == NULL)) {
		if (r != NULL) {
			free(r->v);
			free(r->xkbuf);
			free(r);
		}
		imp_free(rq);
		return conclude(h, in, k, HANDLER_UNAVAILABLE, HR_V_INTERNAL, NULL, id, NULL, kx_mono_ns() - t0);
	}
	r->h = h;
	r->in = *in;
	r->in.auth = NULL;
	r->in.auth_len = 0;
	r->in.imh = NULL;
	r->in.imh_len = 0;
	if (in->xk_len) { /* the NOTIFY's bytes die with this call */
		memcpy(r->xkbuf, in->xk, in->xk_len);
		r->in.xk = r->xkbuf;
	}
	r->sink = *k;
	r->done = done;
	r->t0_ns = t0;
	r->who = id;
	r->rq = rq;
	atomic_init(&r->left, n + 1);
	for (size_t i = 0; i < n; i++) {
		char *body = imp_sar_body(id, &rq->items[i]);

		r->v[i].r = r;
		rc = body == NULL ? TOKENREVIEW_E_NOMEM
				  : tokenreview_sar_check(h->cfg.authorizer, body, strlen(body), r->v[i].reason,
							  sizeof(r->v[i].reason), imp_item_done, &r->v[i]);
		free(body);
		if (rc != TOKENREVIEW_PENDING) {
			r->v[i].result = rc;
			atomic_fetch_sub(&r->left, 1);
		}
	}
	/* the guard: whoever brings left to 0 answers — this thread when every verdict came from the cache */
	if (atomic_fetch_sub(&r->left, 1) == 1) {
		rc = imp_finish(r);
		impreq_free(r);
		return rc;
	}
	return PT_PENDING;
}

/* Judges a bare token: verification, then impersonation, group count, service-account token, identity. When
 * hold_ms > 0 and the kid is unknown while a key-set download may come within hold_ms, writes nothing and
 * returns HANDLER_HELD. t0: when the first verification of this request started (monotonic ns). done != NULL:
 * a token that is not ours may go to the TokenReview (PT_PENDING, done(sink->ud) later). */
static int judge(handler *h, const handler_input *in, const uint8_t *tok, size_t tlen, int64_t now,
		 const handler_sink *k, int64_t t0, int64_t hold_ms, handler_done_fn done, handler_done_fn idone,
		 int *held_why)
{
	const identity *id = NULL;
	const char *detail = NULL;
	satoken_val *sa = NULL;
	enum handler_reason why;
	int64_t lat;
	int status, rc;

	rc = h->cfg.vops.verify(h->cfg.vops.ctx, tok, tlen, now, &id, &detail);
	lat = kx_mono_ns() - t0;
	if (rc != VERIFY_OK && !token_clean(tok, tlen)) {
		/* what handler_bearer() would have said before verification (see token_clean) */
		id = NULL;
		detail = NULL;
		status = HANDLER_UNAUTHENTICATED;
		why = HR_MALFORMED_HEADER;
		goto out;
	}
	if (rc != VERIFY_OK && done != NULL && h->cfg.reviewer != NULL && pt_candidate(h, rc, tok, tlen))
		return passthrough(h, in, tok, tlen, k, t0, done);
	if (rc == VERIFY_E_UNKNOWN_KID && hold_ms > 0 && tlen <= h->cfg.max_token_bytes &&
	    h->cfg.vops.refresh_soon(h->cfg.vops.ctx, (unsigned)hold_ms)) {
		*held_why = rc;
		return HANDLER_HELD;
	}
	if (rc == VERIFY_E_PENDING) {
		/* the claims source's answer is on its way: wait for it while time is left, never answer without it */
		if (hold_ms > 0 && tlen <= h->cfg.max_token_bytes) {
			*held_why = rc;
			return HANDLER_HELD;
		}
		distclaims_count_refusal(h->cfg.claims, DISTCLAIMS_R_TIMEOUT);
		id = NULL;
		detail = "distributed claims: the claims source did not answer in time";
		status = HANDLER_UNAUTHENTICATED;
		why = HR_V_CLAIMS;
		goto out;
	}
	if (rc != VERIFY_OK) {
		id = NULL;
		why = (rc <= VERIFY_E_MALFORMED && rc >= VERIFY_E_IDENTITY) ? (enum handler_reason)(HR_V_MALFORMED - 1 - rc)
									   : HR_V_INTERNAL;
		status = (why == HR_V_NOT_READY || why == HR_V_INTERNAL) ? HANDLER_UNAVAILABLE : HANDLER_UNAUTHENTICATED;
		goto out;
	}
	/* a valid token: only now may impersonation or group count matter (401 wins over 403) */
	if (in->imp && h->cfg.authorizer != NULL)
		return imp_start(h, in, id, k, t0, idone);
	if (in->imp) {
		status = HANDLER_IMPERSONATION;
		why = HR_IMPERSONATION;
		goto out;
	}
	if (h->cfg.disable_impersonation) {
		/* --disable-impersonation: the API server authenticates this same token itself, so the request goes on
		 * with the client's own Authorization (status 5); no identity, group line or service-account token is
		 * written. The user is for HAProxy's log line only. */
		if (identity_value_problem(id->user) == NULL)
			k->set_str(k->ud, "user", id->user, strlen(id->user));
		status = HANDLER_PASSTHROUGH;
		why = HR_PASSTHROUGH;
		goto out;
	}
	status = forward(h, in, id, &sa, k, &why, &detail);
out:
	return conclude(h, in, k, status, why, detail, id, sa, lat);
}

/* Checks the message and splits the bearer token (its bytes are looked at only if verification fails, see
 * token_clean): true with the token's place, or false with the verdict already concluded in *status. */
static bool front(handler *h, const handler_input *in, const handler_sink *k, size_t *off, size_t *tlen,
		  int *status)
{
	enum handler_reason why;
	int st, rc;

	if (!in->have_msg) {
		st = HANDLER_UNAVAILABLE;
		why = HR_NO_MESSAGE;
	} else if (in->bad_msg) {
		st = HANDLER_UNAVAILABLE;
		why = HR_BAD_MESSAGE;
	} else if (h->cfg.trusted != NULL && h->cfg.trusted->n > 0 && !in->have_xff) {
		/* HAProxy sends xff1…xff8 only when its environment has KOS_TRUSTED_PROXIES: without them the
		 * client address would silently be the load balancer's, so every request fails until both agree */
		*status = conclude(h, in, k, HANDLER_UNAVAILABLE, HR_NO_XFF, "--trusted-proxies is set but HAProxy "
				   "sent no xff1..xff8 arguments: set KOS_TRUSTED_PROXIES in HAProxy's environment too "
				   "(conf/spoe-kos.conf sends them only then)", NULL, NULL, -1);
		return false;
	} else if (!in->have_auth) {
		st = HANDLER_UNAUTHENTICATED;
		why = HR_MISSING;
	} else if ((rc = bearer_split(in->auth, in->auth_len, off, tlen)) != 0) {
		st = HANDLER_UNAUTHENTICATED;
		why = (enum handler_reason)rc;
	} else {
		return true;
	}
	*status = conclude(h, in, k, st, why, NULL, NULL, NULL, -1);
	return false;
}

/* The request with src replaced by the client address (clientaddr.h) when --trusted-proxies is set, and without
 * the X-Forwarded-For slices in any case: they point into the NOTIFY frame, which a held request outlives.
 * Returns in itself when there is nothing to change, else *local. */
static const handler_input *client_addr(handler *h, const handler_input *in, handler_input *local)
{
	int fam;

	if (in->xff[0].p == NULL && (h->cfg.trusted == NULL || h->cfg.trusted->n == 0))
		return in;
	*local = *in;
	memset(local->xff, 0, sizeof(local->xff));
	if (h->cfg.trusted != NULL && h->cfg.trusted->n > 0 && in->src_family != 0) {
		caddr_client(h->cfg.trusted, in->src_family, in->src, in->xff, CADDR_MAX_HOPS, &fam, local->src);
		local->src_family = fam;
	}
	return local;
}

int handler_process(handler *h, const handler_input *in, int64_t now, const handler_sink *k)
{
	size_t off = 0, tlen = 0;
	handler_input local;
	int status, held_why;

	in = client_addr(h, in, &local);

	if (!front(h, in, k, &off, &tlen, &status))
		return status;
	return judge(h, in, in->auth + off, tlen, now, k, kx_mono_ns(), 0, NULL, NULL, &held_why);
}

/* ---- held requests (hold.h keeps them and decides when; the verdicts are here) ------------------------------ */

/* hold_ops.retry, on the holding thread: the whole verdict again (never a shortcut to allow). */
static int held_retry(void *ud, hold_req *r, int64_t left_ms)
{
	handler *h = ud;
	int jr = judge(h, &r->in, r->tok, r->tlen, (int64_t)time(NULL), &r->sink, r->t0_ns, left_ms, NULL, r->done,
		       &r->why);

	if (jr == PT_PENDING) /* waiting for SubjectAccessReviews now: they complete it */
		return HOLD_TAKEN;
	return jr == HANDLER_HELD ? HOLD_KEEP : HOLD_ANSWERED;
}

/* hold_ops.expire, on the holding thread: answers a held request that was not judged again. */
static void held_expire(void *ud, hold_req *r, bool shutdown)
{
	handler *h = ud;
	int status = HANDLER_UNAUTHENTICATED;
	enum handler_reason why = HR_V_UNKNOWN_KID;
	const char *detail = "unknown key id (still unknown when the wait for a JWKS refresh ended)";

	if (shutdown) {
		status = HANDLER_UNAVAILABLE;
		why = HR_SHUTDOWN;
		detail = r->why == VERIFY_E_PENDING ? "held for distributed claims at shutdown"
						    : "held for an unknown key id at shutdown";
	} else if (r->why == VERIFY_E_PENDING) {
		distclaims_count_refusal(h->cfg.claims, DISTCLAIMS_R_TIMEOUT);
		why = HR_V_CLAIMS;
		detail = "distributed claims: the claims source did not answer in time";
	}
	conclude(h, &r->in, &r->sink, status, why, detail, NULL, NULL, kx_mono_ns() - r->t0_ns);
}

int handler_submit(handler *h, const handler_input *in, int64_t now, const handler_sink *k, handler_done_fn done)
{
	size_t off = 0, tlen = 0;
	int64_t t0 = kx_mono_ns();
	handler_input local;
	uint64_t gen = 0;
	int rc, held_why = VERIFY_E_UNKNOWN_KID;

	in = client_addr(h, in, &local);

	if (!front(h, in, k, &off, &tlen, &rc))
		return rc;
	/* read before verifying: an attempt that ends after this makes the holding thread judge the token again */
	if (h->hold != NULL)
		gen = hold_gen(h->hold);
	rc = judge(h, in, in->auth + off, tlen, now, k, t0, h->hold != NULL ? (int64_t)h->cfg.unknown_kid_wait_ms : 0,
		   done, done, &held_why);
	if (rc == PT_PENDING)
		return HANDLER_HELD;
	if (rc != HANDLER_HELD)
		return rc;
	switch (hold_add(h->hold, in, in->auth + off, tlen, k, done, gen, held_why, t0)) {
	case 0:
		return HANDLER_HELD;
	case HOLD_E_NOMEM:
		return held_why == VERIFY_E_PENDING
		       ? conclude(h, in, k, HANDLER_UNAUTHENTICATED, HR_V_CLAIMS, "distributed claims: cannot wait for "
				  "the claims source", NULL, NULL, kx_mono_ns() - t0)
		       : conclude(h, in, k, HANDLER_UNAUTHENTICATED, HR_V_UNKNOWN_KID, "unknown key id (cannot wait)",
				  NULL, NULL, kx_mono_ns() - t0);
	case HOLD_E_STOPPING:
		return conclude(h, in, k, HANDLER_UNAVAILABLE, HR_SHUTDOWN, NULL, NULL, NULL, kx_mono_ns() - t0);
	default: /* HOLD_E_FULL */
		if (held_why == VERIFY_E_PENDING)
			return conclude(h, in, k, HANDLER_UNAUTHENTICATED, HR_V_CLAIMS, "distributed claims: too many "
					"requests already waiting", NULL, NULL, kx_mono_ns() - t0);
		return conclude(h, in, k, HANDLER_UNAUTHENTICATED, HR_V_UNKNOWN_KID,
				"unknown key id (too many requests already waiting for the JWKS refresh)", NULL, NULL,
				kx_mono_ns() - t0);
	}
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

static int ack_proc_str(void *ud, const char *name, const char *s, size_t len)
{
	return spoa_ack_set_str(ud, SPOP_SCOPE_PROC, name, s, len);
}

static void req_done(void *ud)
{
	spoa_request_complete(ud);
}

int handler_on_notify(spoa_request *req, void *userdata)
{
	handler *h = userdata;
	handler_input in;
	handler_sink sink = {ack_str, ack_int, ack_proc_str, req};

	kosmsg_read_request(req, &in);
	return handler_submit(h, &in, (int64_t)time(NULL), &sink, req_done) == HANDLER_HELD ? SPOA_DEFERRED
												: SPOA_DONE;
}

/* ---- readiness and metrics ---------------------------------------------------------------------------------- */

bool handler_ready(handler *h, char *why, size_t whylen)
{
	bool v = h->cfg.vops.ready(h->cfg.vops.ctx);
	/* --disable-impersonation alone never sends the service-account token anywhere: not a reason to be unready */
	bool s = (h->cfg.disable_impersonation && h->cfg.reviewer == NULL) || satoken_loaded(h->cfg.sa);

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
