/*
 * main.c — wires the agent together: config → log → verifier → service-account token → SPOP server → the main
 * libev loop (readiness/metrics HTTP, token-file watch, signals). Nothing here decides anything.
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

#include "config.h"
#include "handler.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "satoken.h"
#include "spoa.h"
#include "verifier.h"

extern char **environ;

#define DRAIN_MS 5000

typedef struct app {
	struct ev_loop *loop;
	config cfg;
	verifier *v;
	satoken *sa;
	metrics *m;
	handler *h;
	spoa_server *srv;
	httpd *http;
	ev_timer sa_timer;
	ev_signal sig_term, sig_int, sig_hup;
} app;

/* ---- adapters: the handler sees the verifier through handler_verify_ops ------------------------------------ */

static int v_verify(void *ctx, const uint8_t *tok, size_t len, int64_t now, const identity **id, const char **detail)
{
	return verifier_verify(ctx, tok, len, now, id, detail);
}

static bool v_ready(void *ctx)
{
	return verifier_ready(ctx);
}

static void v_stats(void *ctx, verifier_cache_stats *cache, oidc_status *st)
{
	verifier_cache_stats_get(ctx, cache);
	verifier_status(ctx, st);
}

static void v_set_listener(void *ctx, void (*fn)(void *ud), void *ud)
{
	verifier_set_refresh_listener(ctx, fn, ud);
}

static bool v_refresh_soon(void *ctx, unsigned within_ms)
{
	return verifier_refresh_soon(ctx, within_ms);
}

static bool r_ready(void *ud, char *why, size_t whylen)
{
	return handler_ready(ud, why, whylen);
}

static int r_metrics(void *ud, char **body, size_t *len)
{
	return handler_metrics(ud, body, len);
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

static void sa_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	app *a = w->data;

	(void)loop;
	(void)revents;
	/* a stat() per second on a small local file; the SPOP workers never wait on it */
	satoken_reload(a->sa, NULL);
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
	/* requests held for an unknown kid get their 503 now, so that the drain does not wait for them */
	handler_stop(a->h);
	ev_break(loop, EVBREAK_ALL);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	log_msg(LOG_LEVEL_INFO, "signal", "SIGHUP ignored (no reload; restart to change the configuration)");
}

/* ---- startup ------------------------------------------------------------------------------------------------ */

static int start(app *a)
{
	verifier_config vc;
	handler_config hc;
	spoa_server_config sc;
	httpd_routes routes;
	char err[512] = "";
	log_line l;

	memset(&vc, 0, sizeof(vc));
	vc.oidc.issuer_url = a->cfg.issuer_url;
	vc.oidc.ca_file = a->cfg.ca_file;
	vc.oidc.log = oidc_log;
	vc.oidc.min_refresh_s = a->cfg.jwks_min_refresh_s;
	vc.oidc.unknown_kid_interval_s = a->cfg.unknown_kid_interval_s;
	vc.oidc.retry_min_ms = a->cfg.retry_min_ms;
	vc.oidc.retry_max_ms = a->cfg.retry_max_ms;
	vc.oidc.http_timeout_ms = a->cfg.http_timeout_ms;
	vc.client_id = a->cfg.client_id;
	vc.username_claim = a->cfg.username_claim;
	vc.username_prefix = a->cfg.username_prefix;
	vc.groups_claim = a->cfg.groups_claim;
	vc.groups_prefix = a->cfg.groups_prefix;
	for (size_t i = 0; i < a->cfg.nrequired_claims && i < VERIFIER_MAX_REQUIRED_CLAIMS; i++) {
		vc.required_claims[i][0] = a->cfg.required_claims[i].key;
		vc.required_claims[i][1] = a->cfg.required_claims[i].value;
	}
	vc.nrequired_claims = a->cfg.nrequired_claims;
	vc.signing_algs = a->cfg.signing_algs;
	vc.max_token_bytes = a->cfg.max_token_bytes;
	vc.cache_entries = a->cfg.cache_entries;
	vc.cache_ttl_s = a->cfg.cache_ttl_s;
	vc.allow_reserved = a->cfg.allow_reserved;
	if (verifier_create(&vc, &a->v, err, sizeof(err)) != 0) {
		log_begin(&l, LOG_LEVEL_ERROR, "start");
		log_str(&l, "msg", "cannot create the verifier");
		log_str(&l, "error", err);
		log_end(&l);
		return -1;
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
	hc.vops.verify = v_verify;
	hc.vops.ready = v_ready;
	hc.vops.stats = v_stats;
	hc.vops.set_listener = v_set_listener;
	hc.vops.refresh_soon = v_refresh_soon;
	hc.vops.ctx = a->v;
	hc.sa = a->sa;
	hc.metrics = a->m;
	hc.max_groups = a->cfg.max_groups;
	hc.client_ip = a->cfg.extra_client_ip;
	hc.extras = a->cfg.extra_headers;
	hc.nextras = a->cfg.nextra_headers;
	hc.unknown_kid_wait_ms = a->cfg.unknown_kid_wait_ms;
	hc.max_token_bytes = a->cfg.max_token_bytes;
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

	if (a->cfg.probe_port != 0) {
		routes.ready = r_ready;
		routes.metrics = r_metrics;
		routes.ud = a->h;
		if (httpd_start(a->loop, a->cfg.probe_address, a->cfg.probe_port, &routes, &a->http, err,
				sizeof(err)) != 0) {
			log_begin(&l, LOG_LEVEL_ERROR, "start");
			log_str(&l, "msg", "cannot listen for probes");
			log_str(&l, "error", err);
			log_end(&l);
			return -1;
		}
	}
	if (spoa_server_start(a->srv) != 0) {
		log_msg(LOG_LEVEL_ERROR, "start", "cannot start the SPOP workers");
		return -1;
	}

	ev_timer_init(&a->sa_timer, sa_timer_cb, 1.0, 1.0);
	a->sa_timer.data = a;
	ev_timer_start(a->loop, &a->sa_timer);
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
	if (a->srv != NULL)
		spoa_server_destroy(a->srv);
	handler_destroy(a->h);
	metrics_destroy(a->m);
	satoken_destroy(a->sa);
	if (a->v != NULL)
		verifier_destroy(a->v);
	config_free(&a->cfg);
}

int main(int argc, char **argv)
{
	app a;
	char err[512] = "";
	int rc;

	memset(&a, 0, sizeof(a));
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
