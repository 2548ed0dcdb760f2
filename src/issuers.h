/*
 * issuers.h — the authenticators of an AuthenticationConfiguration file (--authentication-config), or the one of
 * the --oidc-* flags (issuers_create_flags): one verifier per jwt[] entry, each with its own OIDC provider (discovery URL, inline CA, audiences, mappings), one token
 * cache shared by all of them, and reload (on SIGHUP or when the file changes).
 *
 * Selection: the token's unverified "iss" (payload read only to pick the authenticator, as the API server does)
 * must equal one issuer.url byte for byte; then that authenticator verifies the token in full with its own keys.
 * A token whose iss matches none is refused (VERIFY_E_ISSUER, detail "unknown issuer"). The cache is checked
 * before anything is parsed: a hit costs one SHA-256, one shard lookup and a check that the key which verified
 * the token is still published by the authenticator that verified it.
 *
 * Reload: issuers_reload() reads the file again; when it is valid (parses, validates, every expression
 * compiles, every provider starts) the new set of authenticators becomes pending: its providers load their keys
 * while the old set keeps serving. issuers_tick() swaps it in atomically once every issuer that has keys in the
 * old set has them in the new one (or after ISSUERS_PENDING_MAX_MS), so a reload never turns a servable token
 * into a 503 while keys load; requests already running finish with the old set, which issuers_tick() frees once
 * no request holds it. When the new file is invalid the old set keeps serving and the error is returned. A new
 * set starts with an empty cache (its mappings may differ). Who calls issuers_reload() — SIGHUP, or main.c's
 * watch of the file's content (cfgwatch.h) — is not this module's business.
 *
 * Owns: every set (verifiers, providers, cache, the parsed configuration). Threads: issuers_verify(),
 * issuers_ready(), issuers_refresh_soon(), issuers_stats() from any thread; issuers_create(), issuers_reload(),
 * issuers_tick(), issuers_reap(), issuers_destroy() and issuers_set_refresh_listener() from the main thread only.
 */
#ifndef KOS_ISSUERS_H
#define KOS_ISSUERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authcfg.h"
#include "identity.h"
#include "mapping.h"
#include "verifier.h"

typedef struct issuers issuers;

/* Loads path and builds the first set. tmpl supplies what every authenticator shares (oidc tuning and log,
 * signing_algs, max_token_bytes, cache_entries, cache_ttl_s, allow_reserved); its issuer, client and claim
 * fields are ignored. 0, or -1 with one line in err (the file's error, the field path of a refused
 * expression, or a provider's). Blocking file I/O: start-up or the main thread. */
int issuers_create(const char *path, const verifier_config *tmpl, issuers **out, char *err, size_t errlen);
/* The --oidc-* flags' one authenticator as a set (tmpl's issuer, client, claim and CA fields; the verifier turns
 * them into a one-issuer AuthenticationConfiguration, flagcfg.h), so that the flags take the same way as a file:
 * this module's issuer pick and its one cache. tmpl's strings are read during the call only. There is no file:
 * issuers_reload() refuses. 0, or -1 with one line in err. */
int issuers_create_flags(const verifier_config *tmpl, issuers **out, char *err, size_t errlen);
/* For unit tests, benchmarks and fuzzers (no network, no thread): the same, but the authenticator's keys come
 * from the caller (verifier_create_with_keys; ks may be NULL), and issuers_set_keys() swaps them (a rotation;
 * every authenticator of the current set gets ks). Any thread. */
int issuers_create_flags_with_keys(const verifier_config *tmpl, jwks_keyset *ks, issuers **out, char *err,
				   size_t errlen);
void issuers_set_keys(issuers *s, jwks_keyset *ks);
/* A pending set is swapped in after this long even when an issuer that has keys now has none in it yet (a new
 * CA that does not verify the issuer, say): the file is valid, and the API server would serve it too. */
#define ISSUERS_PENDING_MAX_MS 15000

/* Re-reads the file: 0 when the new set is valid and pending (issuers_tick() swaps it in; a set pending from
 * an earlier call is dropped), -1 with err when the old one stays (counted as a failed reload). Main thread. */
int issuers_reload(issuers *s, char *err, size_t errlen);

/* What a swap changed, for the log: issuer URLs joined with ", " (truncated with "..."). */
typedef struct issuers_change {
	size_t before, after;      /* issuers in the old and the new set */
	unsigned long waited_ms;   /* from issuers_reload() to the swap */
	char added[512], removed[512];
	char not_ready[512];       /* issuers of both sets still loading keys at the swap (waited the maximum) */
} issuers_change;

/* Frees replaced sets no request holds any more, and swaps a pending set in when it may serve (see the top).
 * Returns 1 when it swapped (chg filled when not NULL; counted as a reload that succeeded), else 0. Cheap;
 * call it periodically (and often while a set is pending) from the main thread. */
int issuers_tick(issuers *s, issuers_change *chg);
/* True while a reloaded set waits for its keys. Main thread. */
bool issuers_pending(issuers *s);
/* Frees replaced sets that no request uses any more (issuers_tick() does this too). Main thread. */
void issuers_reap(issuers *s);
/* Waits for every replaced set to be unused, then frees everything. The workers must be gone. */
void issuers_destroy(issuers *s);

/* Verifies token[0..len) (the bare JWT) at time now: the cache, else the authenticator its iss picks (see the
 * top of this file and verifier_verify_uncached() for the contract of id and detail). Any thread. */
int issuers_verify(issuers *s, const uint8_t *token, size_t len, int64_t now, const identity **id,
		   const char **detail);
/* The same, uncached, with every check reported to trace (for explain): the issuer chosen, then
 * verifier_explain(). */
int issuers_explain(issuers *s, const uint8_t *token, size_t len, int64_t now, const mapping_trace *trace,
		    const identity **id, const char **detail);
/* True when at least one authenticator has its keys (an empty jwt[] is ready: every token is then refused).
 * One issuer's outage must not make the pod unready for the others' users; that issuer's tokens still get
 * VERIFY_E_NOT_READY. Any thread. */
bool issuers_ready(issuers *s);
/* How many authenticators of the current set have their keys, and how many there are. Any thread. */
void issuers_ready_count(issuers *s, size_t *ready, size_t *total);
/* Blocks until every authenticator has its keys or timeout_ms passed (explain only). */
bool issuers_wait_ready(issuers *s, unsigned timeout_ms);
/* verifier_set_refresh_listener() over every authenticator, kept across reloads (fn is also called once after
 * a reload, so held requests are judged again with the new set). Main thread. */
void issuers_set_refresh_listener(issuers *s, void (*fn)(void *ud), void *ud);
/* verifier_refresh_soon() of the authenticator that last answered "unknown key id" on this thread. */
bool issuers_refresh_soon(issuers *s, unsigned within_ms);
/* Cache counters of the shared cache plus the sum of the authenticators' unknown-kid refresh requests. */
void issuers_cache_stats(issuers *s, verifier_cache_stats *out);
/* One line per authenticator for /ready: "<url>: ready (N keys)" or "<url>: not ready (<last error>)",
 * joined with "; ". Returns the length written (truncated to cap - 1). Any thread. */
size_t issuers_describe(issuers *s, char *buf, size_t cap);
/* Prometheus text for the authenticators, labelled issuer="<url>": kos_issuer_ready, kos_jwks_refreshes_total,
 * kos_jwks_failures_total, kos_jwks_keys, kos_jwks_last_success_timestamp_seconds,
 * kos_jwks_unknown_kid_refreshes_total; then the shared cache's kos_cache_* counters, kos_issuers,
 * kos_issuers_ready, kos_authentication_config_reloads_total{result},
 * kos_authentication_config_last_reload_timestamp_seconds and kos_authentication_config_last_reload_success.
 * Appended to buf (malloc'd, grown); 0 or -1 (no memory). */
int issuers_metrics(issuers *s, char **buf, size_t *len);
/* The provider status of authenticator i of the current set (zeroed when there is none). Any thread. */
void issuers_status(issuers *s, size_t i, oidc_status *out);
/* Issuers in the current set (for logs and tests). */
size_t issuers_count(issuers *s);

#endif
