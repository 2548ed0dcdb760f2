/*
 * oidc.h — one OIDC issuer: discovery, JWKS download and refresh, on a thread of its own.
 *
 * The provider thread owns the HTTP client (libcurl) and everything it downloads; worker threads only ever
 * take a reference to the current key set. Discovery: GET <issuer>/.well-known/openid-configuration (https only),
 * whose "issuer" must equal the configured URL exactly; then the "jwks_uri". Retries with backoff until it works.
 * Refresh: on the Cache-Control max-age of the JWKS response (clamped to [min_refresh_s, max_refresh_s]), and on
 * demand (unknown kid), single-flight and at most once per unknown_kid_interval_s. A failed refresh keeps the last
 * good key set. No HTTP ever runs on a thread that serves HAProxy.
 *
 * Design: one plain thread per provider doing blocking libcurl easy transfers, waiting on a condition variable
 * between them. The provider has at most one transfer in flight by design (discovery, then the JWKS; refreshes
 * are single-flight), so curl multi on a libev loop would add fd plumbing and buy nothing; a condvar gives the
 * timed wait and the wake-up for on-demand refreshes, and a transfer is aborted by its progress callback when
 * the provider stops. The current key set sits behind a mutex held only to load the pointer and take a
 * reference (workers do this once per uncached verification), and to swap it in after a download.
 *
 * Ownership: oidc_provider_start() copies every string of the config; oidc_provider_keys() hands out a
 * reference the caller releases with jwks_keyset_release(); oidc_discovery_parse() mallocs *jwks_uri.
 */
#ifndef KOS_OIDC_H
#define KOS_OIDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jwks.h"

#define OIDC_DISCOVERY_MAX_BYTES (256u * 1024)
#define OIDC_URL_MAX 2048
#define OIDC_DEFAULT_REFRESH_S 3600 /* when the JWKS response carries no max-age (then clamped like one) */

enum oidc_err {
	OIDC_OK = 0,
	OIDC_E_CONFIG = -1,   /* bad configuration (start) */
	OIDC_E_JSON = -2,     /* discovery document is not a JSON object, or too big */
	OIDC_E_ISSUER = -3,   /* "issuer" missing, not a string, or not the configured URL byte for byte */
	OIDC_E_JWKS_URI = -4, /* "jwks_uri" missing, not a string, not https, or too long */
	OIDC_E_NOMEM = -5,
	OIDC_E_THREAD = -6,   /* the provider thread could not start */
};
const char *oidc_strerror(int err);

typedef struct oidc_config {
	const char *issuer_url;        /* required, https:// only */
	const char *ca_file;           /* NULL = system roots (and ca_pem unset) */
	const char *ca_pem;            /* inline PEM CA bundle (AuthenticationConfiguration certificateAuthority),
					* used instead of ca_file when set (CURLOPT_CAINFO_BLOB); NULL = unset */
	size_t ca_pem_len;             /* 0 = strlen(ca_pem) */
	const char *discovery_url;     /* NULL = <issuer_url>/.well-known/openid-configuration; else https. The
					* document's "issuer" must still equal issuer_url (as the API server wants) */
	unsigned min_refresh_s;        /* 0 = 60; values below 60 are meant for tests (short key lifetimes) */
	unsigned max_refresh_s;        /* 0 = 86400 */
	unsigned unknown_kid_interval_s; /* 0 = 10 */
	unsigned http_timeout_ms;      /* 0 = 10000 (whole transfer) */
	unsigned retry_min_ms;         /* 0 = 1000: first retry after a failure, doubled each time, with jitter */
	unsigned retry_max_ms;         /* 0 = 60000: backoff ceiling; tests lower both to stay short */
	void (*log)(void *ud, int level, const char *event, const char *msg); /* may be NULL; level: 0 err … 3 debug */
	void *log_ud;
	/* May be NULL. Called on the provider thread after every discovery/JWKS attempt, successful or not (ok), once
	 * a new key set is in place and oidc_provider_refresh_soon() already reflects the next schedule. Called with
	 * no provider lock held, so it may call oidc_provider_keys()/request_refresh(); it must not block long (it
	 * delays the next download) and must not call oidc_provider_stop(). Lets callers that hold requests for an
	 * unknown kid retry them the moment the download ends instead of polling. */
	void (*on_attempt)(void *ud, bool ok);
	void *on_attempt_ud;
} oidc_config;

typedef struct oidc_status {
	bool ready;              /* a key set is loaded */
	uint64_t refreshes;      /* successful JWKS loads */
	uint64_t failures;       /* failed discovery or JWKS attempts */
	size_t nkeys;
	int64_t last_success;    /* unix seconds, 0 = never */
	char last_error[160];    /* empty when the last attempt succeeded */
} oidc_status;

typedef struct oidc_provider oidc_provider;

/* Parses a discovery document p[0..len) (at most OIDC_DISCOVERY_MAX_BYTES): it must be a JSON object whose
 * "issuer" equals expected_issuer byte for byte and whose "jwks_uri" is an https URL; either key appearing twice
 * is refused. Returns 0 and *jwks_uri (malloc'd, caller frees), or a negative oidc_err with a one-line reason
 * in err (safe to log). Pure; any thread. */
int oidc_discovery_parse(const uint8_t *p, size_t len, const char *expected_issuer, char **jwks_uri,
			 char *err, size_t errlen);
/* Finds max-age in one Cache-Control header value p[0..len) (directives are case-insensitive, comma separated).
 * Returns 1 and *max_age_s when present and valid (capped at 2^31-1), 0 when absent, -1 when no-store or
 * no-cache asks not to reuse the response (the caller then refreshes at its minimum). Pure; any thread. */
int oidc_max_age_parse(const uint8_t *p, size_t len, uint32_t *max_age_s);

/* Validates the config (https issuer and discovery URLs, readable CA file, min <= max) and starts the provider thread; returns
 * at once (not ready yet). OIDC_E_CONFIG / OIDC_E_NOMEM / OIDC_E_THREAD with the reason in err. Any thread. */
int oidc_provider_start(const oidc_config *cfg, oidc_provider **out, char *err, size_t errlen);
/* Current key set with a reference the caller must release, or NULL when none was ever loaded. Any thread;
 * takes a mutex held only for a pointer load and an atomic increment. */
jwks_keyset *oidc_provider_keys(oidc_provider *p);
/* Asks for a refresh because a token named an unknown kid. Never waits for I/O; a flood costs one atomic
 * exchange per call. The download happens at once if no download started within unknown_kid_interval_s, else
 * when that window ends; requests made meanwhile are coalesced into that one download. Any thread. */
void oidc_provider_request_refresh(oidc_provider *p);
/* True when a download is in flight now or the provider may start one within within_ms, once a refresh has
 * been requested (on-demand rate limit and the regular schedule both count). A caller that found an unknown kid
 * asks this after oidc_provider_request_refresh() to decide whether waiting for the on_attempt callback can
 * help before its deadline. Lock-free (atomics only); any thread. */
bool oidc_provider_refresh_soon(oidc_provider *p, unsigned within_ms);
void oidc_provider_status(oidc_provider *p, oidc_status *out);
/* Stops the thread (aborting a transfer in flight within about a second) and frees everything. Call once, from
 * the thread that started it, after every other thread stopped using p. */
void oidc_provider_stop(oidc_provider *p);

#endif
