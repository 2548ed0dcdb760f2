/*
 * oidc.h — one OIDC issuer: discovery, JWKS download and refresh, on a thread of its own.
 *
 * The provider thread owns the HTTP client (libcurl) and everything it downloads; worker threads only ever
 * take a reference to the current key set. Discovery: GET <issuer>/.well-known/openid-configuration (https only),
 * whose "issuer" must equal the configured URL exactly; then the "jwks_uri". Retries with backoff until it works.
 * Refresh: on the Cache-Control max-age of the JWKS response (clamped to [min_refresh_s, max_refresh_s]), and on
 * demand (unknown kid), single-flight and at most once per unknown_kid_interval_s. A failed refresh keeps the last
 * good key set. No HTTP ever runs on a thread that serves HAProxy.
 */
#ifndef KOS_OIDC_H
#define KOS_OIDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jwks.h"

#define OIDC_DISCOVERY_MAX_BYTES (256u * 1024)

typedef struct oidc_config {
	const char *issuer_url;        /* required, https:// (http:// only if allow_http, for tests of that refusal) */
	const char *ca_file;           /* NULL = system roots */
	unsigned min_refresh_s;        /* 0 = 60 */
	unsigned max_refresh_s;        /* 0 = 86400 */
	unsigned unknown_kid_interval_s; /* 0 = 10 */
	unsigned http_timeout_ms;      /* 0 = 10000 */
	void (*log)(void *ud, int level, const char *event, const char *msg); /* may be NULL; level: 0 err … 3 debug */
	void *log_ud;
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

/* Parses a discovery document; *jwks_uri (malloc'd, caller frees) on success. err gets the reason. */
int oidc_discovery_parse(const uint8_t *p, size_t len, const char *expected_issuer, char **jwks_uri,
			 char *err, size_t errlen);

/* Validates the config and starts the provider thread; returns at once (not ready yet). */
int oidc_provider_start(const oidc_config *cfg, oidc_provider **out, char *err, size_t errlen);
/* Current key set with a reference the caller must release, or NULL when none was ever loaded. Any thread,
 * lock-free. */
jwks_keyset *oidc_provider_keys(oidc_provider *p);
/* Asks for a refresh because a token named an unknown kid. Never blocks; rate-limited and single-flight. */
void oidc_provider_request_refresh(oidc_provider *p);
void oidc_provider_status(oidc_provider *p, oidc_status *out);
/* Stops the thread and frees everything. */
void oidc_provider_stop(oidc_provider *p);

#endif
