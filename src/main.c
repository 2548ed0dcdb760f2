/*
 * main.c — wires the agent together: config → log → verifier → service-account token → SPOP server → the main
 * libev loop (readiness/metrics HTTP, token-file and configuration-file watch, signals). Nothing here decides
 * anything.
 *
 * Exit status: 0 after SIGTERM/SIGINT (or --help, --version, a passing --check-config), 1 when startup fails or
 * --check-config finds a problem, 2 for a wrong flag or value.
 */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfgwatch.h"
#include "config.h"
#include "explain.h"
#include "handler.h"
#include "httpd.h"
#include "issuers.h"
#include "log.h"
#include "metrics.h"
#include "satoken.h"
#include "spoa.h"
#include "tokenreview.h"
#include "verifier.h"

extern char **environ;

#define DRAIN_MS 5000

typedef struct app {
	struct ev_loop *loop;
	config cfg;
	issuers *is;     /* the authenticators: --authentication-config's, or the --oidc-* flags' one */
	satoken *sa;
	metrics *m;
	handler *h;
	tokenreview *rv; /* --token-passthrough */
	distclaims *dc;  /* distributed groups' fetcher (NULL when requests cannot be held) */
	tokenreview *az; /* --allow-client-impersonation: SubjectAccessReviews */
	spoa_server *srv;
	httpd *http;
	cfgwatch *watch;       /* --authentication-config's content, polled by sa_timer */
	ev_timer sa_timer;
	ev_timer swap_timer;   /* runs while a reloaded configuration waits for its issuers' keys */
	ev_signal sig_term, sig_int, sig_hup;
} app;

/* ---- adapters: the handler sees the issuers through handler_verify_ops ------------------------------------ */

static int is_verify(void *ctx, const uint8_t *tok, size_t len, int64_t now, const identity **id,
		     const char **detail)
{
	return issuers_verify(ctx, tok, len, now, id, detail);
}

static bool is_ready(void *ctx)
{
	return issuers_ready(ctx);
}

static void is_set_listener(void *ctx, void (*fn)(void *ud), void *ud)
{
	issuers_set_refresh_listener(ctx, fn, ud);
}

static bool is_refresh_soon(void *ctx, unsigned within_ms)
{
	return issuers_refresh_soon(ctx, within_ms);
}

/* The set picks the authenticator by the unverified iss and answers VERIFY_E_ISSUER exactly when it names
 * none of them (issuers.h); any other refusal came from one of ours. */
static bool is_foreign(void *ctx, int rc, const char *iss)
{
	(void)ctx;
	(void)iss;
	return rc == VERIFY_E_ISSUER;
}

/* ---- probe routes (their user data is the app) and metrics sources ---------------------------------------- */

/* The flags' unlabelled kos_issuer_ready, kos_jwks_* and cache families, rendered by the handler. */
static void fl_stats(void *ctx, verifier_cache_stats *cache, oidc_status *st)
{
	issuers_cache_stats(ctx, cache);
	issuers_status(ctx, 0, st);
}

/* --oidc-issuer-url, for fl_foreign (vops' ctx is the issuer set); set once at start, before any request. */
static const char *flags_issuer;

/* Token passthrough with the flags: a token is ours exactly when its unverified iss is the one issuer. */
static bool fl_foreign(void *ctx, int rc, const char *iss)
{
	(void)ctx;
	(void)rc;
	return strcmp(flags_issuer, iss) != 0;
}

static bool r_ready(void *ud, bool verbose, char *why, size_t whylen)
{
	app *a = ud;
	bool ok = handler_ready(a->h, why, whylen);
	size_t n, nready, total;

	if (a->cfg.authn_config == NULL || whylen == 0)
		return ok;
	if (ok)
		why[0] = '\0';
	n = strlen(why);
	issuers_ready_count(a->is, &nready, &total);
	if (verbose || !ok) {
		/* each issuer's state, ready or not */
		if (n + 12 < whylen) {
			n += (size_t)snprintf(why + n, whylen - n, "%sissuers: ", n ? "; " : "");
			issuers_describe(a->is, why + n, whylen - n);
		}
	} else if (nready < total) {
		/* ready, but some issuer is down: say so briefly (its users get 503; the others are served) */
		snprintf(why, whylen, "degraded: %zu of %zu issuers not ready (see /ready?verbose)", total - nready,
			 total);
	}
	return ok;
}

/* handler_metrics and issuers_metrics hand back a malloc'd body: copied into the scrape */
static int append_body(int rc, char *body, size_t len, kx_buf *out)
{
	if (rc == 0)
		rc = kx_buf_add(out, body, len);
	free(body);
	return rc == 0 ? 0 : -1;
}

static int m_handler(void *ud, kx_buf *out)
{
	char *body = NULL;
	size_t len = 0;
	int rc = handler_metrics(ud, &body, &len); /* before append_body reads body: argument order is unspecified */

	return append_body(rc, body, len, out);
}

/* the issuer-labelled families and the shared cache (the handler renders none of them then) */
static int m_issuers(void *ud, kx_buf *out)
{
	char *body = NULL;
	size_t len = 0;
	int rc = issuers_metrics(ud, &body, &len);

	return append_body(rc, body, len, out);
}

static int m_distclaims(void *ud, kx_buf *out)
{
	return distclaims_metrics(ud, out);
}

static int m_review(void *ud, kx_buf *out)
{
	return tokenreview_metrics(ud, out);
}

static void oidc_log(void *ud, int level, const char *event, const char *msg)
{
	log_line l;

	(void)ud;
	log_begin(&l, level < 0 ? LOG_LEVEL_ERROR : level > 3 ? LOG_LEVEL_DEBUG : (enum log_level)level,
		  event ? event : "issuer");
	log_str(&l, "msg", msg);
	log_end(&l);
}

static void spoa_log(void *ud, enum spoa_log_level level, const char *msg)
{
	log_line l;

	(void)ud;
	log_begin(&l, (enum log_level)level, "spoa");
	log_str(&l, "msg", msg);
	log_end(&l);
}

/* ---- loop callbacks ----------------------------------------------------------------------------------------- */

/* Swaps a reloaded configuration in once its issuers' keys are there (issuers.h), and says what changed. */
static void try_swap(app *a)
{
	issuers_change chg;
	log_line l;

	if (issuers_tick(a->is, &chg) == 1) {
		log_begin(&l, LOG_LEVEL_INFO, "reload");
		log_str(&l, "msg", "authentication configuration reloaded");
		log_str(&l, "file", a->cfg.authn_config);
		log_uint(&l, "issuers_before", chg.before);
		log_uint(&l, "issuers", chg.after);
		if (chg.added[0])
			log_str(&l, "added", chg.added);
		if (chg.removed[0])
			log_str(&l, "removed", chg.removed);
		if (chg.not_ready[0])
			log_str(&l, "keys_still_loading", chg.not_ready);
		log_uint(&l, "waited_ms", chg.waited_ms);
		log_end(&l);
	}
	if (!issuers_pending(a->is))
		ev_timer_stop(a->loop, &a->swap_timer);
}

/* A small local file read and CEL compilation on the main loop, like the token file's reload; the SPOP workers
 * keep serving with the current set meanwhile, and until the new one has its keys. */
static void reload(app *a, const char *trigger)
{
	char err[1024] = "";
	log_line l;

	if (issuers_reload(a->is, err, sizeof(err)) != 0) {
		log_begin(&l, LOG_LEVEL_ERROR, "reload");
		log_str(&l, "msg", "invalid authentication configuration: keeping the previous one");
		log_str(&l, "file", a->cfg.authn_config);
		log_str(&l, "trigger", trigger);
		log_str(&l, "error", err);
		log_end(&l);
		return;
	}
	log_begin(&l, LOG_LEVEL_INFO, "reload");
	log_str(&l, "msg", "new authentication configuration is valid; swapping it in once its issuers' keys are loaded");
	log_str(&l, "file", a->cfg.authn_config);
	log_str(&l, "trigger", trigger);
	log_uint(&l, "bytes", a->watch ? cfgwatch_size(a->watch) : 0);
	log_end(&l);
	ev_timer_again(a->loop, &a->swap_timer);
	try_swap(a);
}

static void swap_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	try_swap(w->data);
}

static void sa_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	app *a = w->data;

	(void)loop;
	(void)revents;
	/* a stat() per second on each small local file; the SPOP workers never wait on it */
	satoken_reload(a->sa, NULL);
	if (a->cfg.authn_config != NULL) {
		/* kubelet's ConfigMap update (a "..data" symlink swap) or an edit: the content decides, not the event */
		if (a->watch != NULL && cfgwatch_poll(a->watch) == 1)
			reload(a, "file changed");
		issuers_reap(a->is);
	}
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	app *a = w->data;
	log_line l;

	(void)revents;
	log_begin(&l, LOG_LEVEL_INFO, "stop");
	log_str(&l, "msg", "draining SPOP connections");
	log_str(&l, "signal", w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
	log_end(&l);
	if (a->srv != NULL)
		spoa_server_stop(a->srv, DRAIN_MS);
	/* requests held for an unknown kid or a TokenReview get their 503 now, so that the drain does not wait */
	handler_stop(a->h);
	tokenreview_stop(a->rv);
	tokenreview_stop(a->az);
	ev_break(loop, EVBREAK_ALL);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	app *a = w->data;

	(void)loop;
	(void)revents;
	if (a->cfg.authn_config == NULL) {
		log_msg(LOG_LEVEL_INFO, "signal", "SIGHUP ignored (flags have no reload; restart to change them)");
		return;
	}
	/* SIGHUP re-reads whatever is there; the watch records it so the next tick does not read it again */
	if (a->watch != NULL)
		(void)cfgwatch_poll(a->watch);
	reload(a, "SIGHUP");
}

/* ---- startup ------------------------------------------------------------------------------------------------ */

/* Logs why start-up stopped; returns -1 for start() to return. */
static int start_failed(const char *msg, const char *err)
{
	log_line l;

	log_begin(&l, LOG_LEVEL_ERROR, "start");
	log_str(&l, "msg", msg);
	log_str(&l, "error", err);
	log_end(&l);
	return -1;
}

static int start(app *a)
{
	verifier_config vc;
	handler_config hc;
	spoa_server_config sc;
	httpd_routes routes;
	char err[512] = "";
	log_line l;

	explain_verifier_config(&a->cfg, &vc);
	vc.oidc.log = oidc_log;
	if (a->cfg.unknown_kid_wait_ms > 0) {
		distclaims_config dcc;

		/* distributed groups are fetched while the request is held (handler.h): the fetch ends before the
		 * hold does, so a slow source is reported as such, and both end well before HAProxy's SPOE timeout */
		memset(&dcc, 0, sizeof(dcc));
		dcc.timeout_ms = a->cfg.unknown_kid_wait_ms * 4 / 5 ? a->cfg.unknown_kid_wait_ms * 4 / 5 : 1;
		if (distclaims_create(&dcc, &a->dc, err, sizeof(err)) != 0)
			return start_failed("cannot start the distributed-claims fetcher", err);
		vc.claims = a->dc;
	}
	if (a->cfg.authn_config != NULL) {
		/* the watch records the content before the first load: a change in between is then seen as one */
		if (cfgwatch_create(a->cfg.authn_config, &a->watch) != 0) {
			log_msg(LOG_LEVEL_ERROR, "start", "out of memory");
			return -1;
		}
		if (issuers_create(a->cfg.authn_config, &vc, &a->is, err, sizeof(err)) != 0)
			return start_failed("invalid authentication configuration", err);
		log_begin(&l, LOG_LEVEL_INFO, "start");
		log_str(&l, "msg", "authentication configuration loaded");
		log_str(&l, "file", a->cfg.authn_config);
		log_uint(&l, "issuers", issuers_count(a->is));
		log_end(&l);
	} else {
		flags_issuer = a->cfg.issuer_url;
		if (issuers_create_flags(&vc, &a->is, err, sizeof(err)) != 0)
			return start_failed("cannot create the verifier", err);
	}
	if (satoken_create(a->cfg.sa_token_file, &a->sa) != 0 ||
	    metrics_create(handler_reason_names, HR_COUNT, &a->m) != 0) {
		log_msg(LOG_LEVEL_ERROR, "start", "out of memory");
		return -1;
	}
	/* a missing token at start is not fatal: /ready stays 503 and every request gets status 4 until the
	 * file appears, which is what a pod whose projected volume is late needs */
	satoken_reload(a->sa, NULL);

	memset(&hc, 0, sizeof(hc));
	hc.vops.verify = is_verify;
	hc.vops.ready = is_ready;
	hc.vops.set_listener = is_set_listener;
	hc.vops.refresh_soon = is_refresh_soon;
	hc.vops.ctx = a->is;
	if (a->cfg.authn_config != NULL) {
		hc.vops.stats = NULL; /* m_issuers renders the issuer-labelled families instead */
		hc.vops.foreign = is_foreign;
	} else {
		hc.vops.stats = fl_stats;
		hc.vops.foreign = fl_foreign;
	}
	hc.sa = a->sa;
	hc.metrics = a->m;
	hc.max_groups = a->cfg.max_groups;
	hc.client_ip = a->cfg.extra_client_ip;
	hc.extras = a->cfg.extra_headers;
	hc.nextras = a->cfg.nextra_headers;
	hc.unknown_kid_wait_ms = a->cfg.unknown_kid_wait_ms;
	hc.max_token_bytes = a->cfg.max_token_bytes;
	hc.claims = a->dc;
	hc.disable_impersonation = a->cfg.disable_impersonation;
	hc.trusted = &a->cfg.trusted;
	if (a->cfg.token_passthrough) {
		tokenreview_config tc;

		memset(&tc, 0, sizeof(tc));
		tc.url = a->cfg.apiserver_url;
		tc.ca_file = a->cfg.apiserver_ca_file;
		tc.audiences = (const char *const *)a->cfg.tp_audiences;
		tc.naudiences = a->cfg.ntp_audiences;
		tc.sa = a->sa;
		tc.timeout_ms = a->cfg.tp_timeout_ms;
		tc.cache_ttl_s = a->cfg.tp_cache_ttl_s;
		tc.rate = a->cfg.tp_rate;
		if (tokenreview_create(&tc, &a->rv, err, sizeof(err)) != 0)
			return start_failed("cannot start token passthrough", err);
		hc.reviewer = a->rv;
	}
	if (a->cfg.allow_client_imp) {
		/* the TokenReview client's machinery, sending SubjectAccessReviews (tokenreview.h) */
		tokenreview_config tc;

		memset(&tc, 0, sizeof(tc));
		tc.url = a->cfg.apiserver_url;
		tc.ca_file = a->cfg.apiserver_ca_file;
		tc.sa = a->sa;
		tc.timeout_ms = a->cfg.ci_timeout_ms;
		tc.cache_ttl_s = a->cfg.ci_cache_ttl_s;
		tc.rate = a->cfg.ci_rate;
		tc.sar = true;
		if (tokenreview_create(&tc, &a->az, err, sizeof(err)) != 0) {
			log_begin(&l, LOG_LEVEL_ERROR, "start");
			log_str(&l, "msg", "cannot start client impersonation");
			log_str(&l, "error", err);
			log_end(&l);
			return -1;
		}
		hc.authorizer = a->az;
	}
	if (handler_create(&hc, &a->h) != 0) {
		log_msg(LOG_LEVEL_ERROR, "start", "cannot create the handler");
		return -1;
	}

	memset(&sc, 0, sizeof(sc));
	sc.listen = a->cfg.listen;
	sc.nthreads = a->cfg.threads;
	sc.handler = handler_on_notify;
	sc.handler_userdata = a->h;
	sc.log = spoa_log;
	sc.log_level = (enum spoa_log_level)a->cfg.log_level;
	if (spoa_server_create(&sc, &a->srv, err, sizeof(err)) != 0) {
		log_begin(&l, LOG_LEVEL_ERROR, "start");
		log_str(&l, "msg", "cannot listen for HAProxy");
		log_str(&l, "listen", a->cfg.listen);
		log_str(&l, "error", err);
		log_end(&l);
		return -1;
	}
	handler_set_server(a->h, a->srv);

	/* /metrics: the handler's families first, then each module's (the order the body has always had) */
	if (metrics_register(a->m, m_handler, a->h) != 0 ||
	    (a->cfg.authn_config != NULL && metrics_register(a->m, m_issuers, a->is) != 0) ||
	    (a->dc != NULL && metrics_register(a->m, m_distclaims, a->dc) != 0) ||
	    (a->rv != NULL && metrics_register(a->m, m_review, a->rv) != 0) ||
	    (a->az != NULL && metrics_register(a->m, m_review, a->az) != 0)) {
		log_msg(LOG_LEVEL_ERROR, "start", "too many metrics sources");
		return -1;
	}
	if (a->cfg.probe_port != 0) {
		routes.ready = r_ready;
		routes.ud = a;
		routes.metrics = metrics_scrape;
		routes.metrics_ud = a->m;
		if (httpd_start(a->loop, a->cfg.probe_address, a->cfg.probe_port, &routes, &a->http, err,
				sizeof(err)) != 0)
			return start_failed("cannot listen for probes", err);
	}
	if (spoa_server_start(a->srv) != 0) {
		log_msg(LOG_LEVEL_ERROR, "start", "cannot start the SPOP workers");
		return -1;
	}

	ev_timer_init(&a->sa_timer, sa_timer_cb, 1.0, 1.0);
	a->sa_timer.data = a;
	ev_timer_start(a->loop, &a->sa_timer);
	/* a reloaded configuration is swapped in within 50 ms of its keys (started by reload()) */
	ev_init(&a->swap_timer, swap_timer_cb);
	a->swap_timer.repeat = 0.05;
	a->swap_timer.data = a;
	ev_signal_init(&a->sig_term, stop_cb, SIGTERM);
	ev_signal_init(&a->sig_int, stop_cb, SIGINT);
	ev_signal_init(&a->sig_hup, hup_cb, SIGHUP);
	a->sig_term.data = a->sig_int.data = a->sig_hup.data = a;
	ev_signal_start(a->loop, &a->sig_term);
	ev_signal_start(a->loop, &a->sig_int);
	ev_signal_start(a->loop, &a->sig_hup);

	log_begin(&l, LOG_LEVEL_INFO, "listening");
	log_str(&l, "msg", "kube-oidc-spoa started");
	log_str(&l, "version", KOS_VERSION);
	log_str(&l, "listen", a->cfg.listen);
	log_int(&l, "spop_port", spoa_server_port(a->srv));
	log_int(&l, "probe_port", a->http ? httpd_port(a->http) : 0);
	log_end(&l);
	return 0;
}

static void finish(app *a)
{
	httpd_stop(a->http);
	/* held requests must be completed while their server exists */
	handler_stop(a->h);
	tokenreview_stop(a->rv);
	tokenreview_stop(a->az);
	if (a->srv != NULL)
		spoa_server_destroy(a->srv);
	handler_destroy(a->h);
	tokenreview_destroy(a->rv);
	tokenreview_destroy(a->az);
	metrics_destroy(a->m);
	satoken_destroy(a->sa);
	issuers_destroy(a->is);
	distclaims_destroy(a->dc); /* after every verifier that borrowed it */
	cfgwatch_destroy(a->watch);
	config_free(&a->cfg);
}

/* --check-config with --authentication-config: parse, validate and compile every expression (no network). */
static int check_authn_config(const config *c, char *err, size_t errlen)
{
	authcfg_config *ac = NULL;
	int rc = authcfg_load_file(c->authn_config, &ac, err, errlen);

	if (rc != 0)
		return -1;
	for (size_t i = 0; i < ac->njwt && rc == 0; i++) {
		mapping *m = NULL;

		rc = mapping_compile(&ac->jwt[i], &m, err, errlen);
		mapping_free(m);
	}
	if (rc == 0)
		printf("authentication-config: %zu issuers, every expression compiles\n", ac->njwt);
	authcfg_free(ac);
	return rc == 0 ? 0 : -1;
}

/* --check-config with the --oidc-* flags: their one-issuer configuration is built and validated as at start-up
 * (flagcfg.h), without its provider (no network). */
static int check_flags_config(const config *c, char *err, size_t errlen)
{
	verifier_config vc;
	issuers *is = NULL;

	explain_verifier_config(c, &vc);
	if (issuers_create_flags_with_keys(&vc, NULL, &is, err, errlen) != 0)
		return -1;
	issuers_destroy(is);
	return 0;
}

int main(int argc, char **argv)
{
	app a;
	char err[512] = "";
	int rc;

	memset(&a, 0, sizeof(a));
	if (argc > 1 && strcmp(argv[1], "explain") == 0) {
		signal(SIGPIPE, SIG_IGN);
		return explain_main(argc - 1, argv + 1, environ, stdout, stderr);
	}
	rc = config_parse(argc, argv, environ, &a.cfg, err, sizeof(err));
	if (rc == CONFIG_HELP) {
		config_usage(stdout);
		return 0;
	}
	if (rc == CONFIG_VERSION) {
		printf("kube-oidc-spoa %s\n", KOS_VERSION);
		return 0;
	}
	if (rc != CONFIG_OK) {
		fprintf(stderr, "kube-oidc-spoa: %s\n", rc == CONFIG_E_NOMEM ? "out of memory" : err);
		return 2;
	}
	if (a.cfg.check_config) {
		config_print(&a.cfg, stdout);
		rc = config_check_files(&a.cfg, err, sizeof(err));
		if (rc == 0 && a.cfg.authn_config != NULL)
			rc = check_authn_config(&a.cfg, err, sizeof(err));
		else if (rc == 0)
			rc = check_flags_config(&a.cfg, err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "kube-oidc-spoa: %s\n", err);
		else
			printf("configuration ok\n");
		config_free(&a.cfg);
		return rc != 0 ? 1 : 0;
	}
	log_init(2, a.cfg.log_level);
	signal(SIGPIPE, SIG_IGN);
	config_log(&a.cfg);
	a.loop = ev_default_loop(EVFLAG_AUTO);
	if (a.loop == NULL) {
		log_msg(LOG_LEVEL_ERROR, "start", "cannot create the event loop");
		config_free(&a.cfg);
		return 1;
	}
	if (start(&a) != 0) {
		if (a.srv != NULL)
			spoa_server_stop(a.srv, 0);
		finish(&a);
		return 1;
	}
	ev_run(a.loop, 0);
	finish(&a);
	log_msg(LOG_LEVEL_INFO, "stop", "stopped");
	return 0;
}
