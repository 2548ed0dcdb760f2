/*
 * verifier.h — one authenticator: a bearer token in, Kubernetes identity or reason out. The agent reaches it
 * through issuers.h, which owns the issuer pick and the one token cache, for the flags as for a file.
 *
 * One path for every token: the authenticator is an AuthenticationConfiguration jwt[] entry (verifier_config's
 * authn), or, without one, the --oidc-* fields turned into one exactly as the API server does (flagcfg.h); the
 * standard checks are claims.h's, the mappings and rules mapping.h's.
 *
 * Owns: the OIDC provider (discovery + JWKS, see oidc.h), the compiled mapping and the memory of refused tokens
 * (negcache.h); borrows the distributed-claims fetcher (verifier_config.claims), which must outlive it.
 * Thread-safe: any number of worker threads verify at once; a verification takes the provider's keys_mu to
 * reference the current key set (oidc_provider_keys). docs/internals.md lists every lock.
 */
#ifndef KOS_VERIFIER_H
#define KOS_VERIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authcfg.h"
#include "distclaims.h"
#include "identity.h"
#include "jwt.h"
#include "mapping.h"
#include "oidc.h"

#define VERIFIER_MAX_REQUIRED_CLAIMS 32
/* --cache-max-bytes' default: far above what 65,536 ordinary identities take (~25 MiB), far below the agent's
 * 256 MiB memory limit in deploy/ — what 65,536 identities of 16 KiB tokens would have taken (~1 GiB) */
#define VERIFIER_CACHE_MAX_BYTES ((size_t)64 << 20)
/*
 * Most signature work spent on one token, in jwks.h's work units (one unit: one RSA-2048 verification, 13 µs
 * here). A token is checked against the keys its kid names, or every key fitting its alg when it has no kid;
 * keys are tried in JWKS order while the total stays within this budget, and the first is always tried. 256
 * units cover every key of a full set (JWKS_MAX_KEYS) of RSA-2048 keys, so the cap binds only on sets of
 * large keys: without it a kid-less token cost 256 verifications with 16,384-bit keys (see SECURITY.md).
 * A token refused by the cap is VERIFY_E_SIGNATURE with the detail "too much verification work: …".
 */
#define VERIFIER_MAX_WORK 256
typedef struct verifier_config {
	oidc_config oidc;               /* issuer URL, CA file, refresh policy (its on_attempt is the verifier's own) */
	/* The --oidc-* flags, used when authn is NULL: they become its one authenticator (flagcfg.h) */
	const char *client_id;          /* required: must appear in aud */
	const char *username_claim;     /* NULL = "sub" */
	const char *username_prefix;    /* NULL = unset (Kubernetes default rule), "-" = none, else literal */
	const char *groups_claim;       /* NULL = no groups */
	const char *groups_prefix;      /* NULL = "" */
	const char *required_claims[VERIFIER_MAX_REQUIRED_CLAIMS][2]; /* key, value */
	size_t nrequired_claims;
	const char *signing_algs;       /* comma list; NULL = "RS256" */
	size_t max_token_bytes;         /* 0 = 16384 */
	/* the token cache of the issuer set (issuers.h) that holds the verifier; the verifier has none */
	size_t cache_entries;           /* 0 = 65536; bounded, evicting */
	size_t cache_max_bytes;         /* 0 = VERIFIER_CACHE_MAX_BYTES: table and identities, see cache.h */
	unsigned cache_ttl_s;           /* 0 = 600; an entry never outlives its token's exp either */
	bool allow_reserved;            /* accept system: users/groups (off by default, see SECURITY.md) */
	bool credential_id;             /* --credential-id-extra: a token with a jti gets the extra
					 * authentication.kubernetes.io/credential-id = "JTI=<jti>", as the API server (1.32+)
					 * adds itself; a jti that is empty or has control bytes adds nothing */
	/* AuthenticationConfiguration (--authentication-config): when set, this authenticator's audiences
	 * (MatchAny), claim mappings and rules (mapping.h) replace client_id, the username/groups fields and
	 * required_claims, which are then ignored. Borrowed only during verifier_create*(): everything needed is
	 * copied or compiled. cfg->oidc.issuer_url must be authn->url. */
	const authcfg_issuer *authn;
	/* Distributed groups (distclaims.h): the fetcher, borrowed, outliving the verifier. Used for the groups
	 * claim mapped by name (groups_claim, or authn's claimMappings.groups.claim; never an expression) when a
	 * token lacks it and its _claim_names point it at a source with an endpoint, as the API server does.
	 * NULL = such a token is refused (VERIFY_E_CLAIMS, "distributed claims: ... not enabled"). */
	distclaims *claims;
	/* A claims source may answer with a JWT of another issuer; the API server then verifies it as a token of
	 * that issuer (its keys) for this authenticator's audiences. claims_peer(ud, iss) gives the verifier of
	 * the configured issuer whose URL is iss, or NULL (issuers.h sets it for the file's authenticators, which
	 * all live as long as this one). NULL hook: only this verifier's own issuer. */
	struct verifier *(*claims_peer)(void *ud, const char *iss);
	void *claims_peer_ud;
} verifier_config;

/* Why a token was refused. The strings (verifier_reason()) are short, stable, safe to log and to show in a 401
 * body: they never contain any part of the token. */
enum verifier_result {
	VERIFY_OK = 0,
	VERIFY_E_MALFORMED = -1,     /* "malformed token" */
	VERIFY_E_TOO_LARGE = -2,     /* "token too large" */
	VERIFY_E_ALG = -3,           /* "signing algorithm not allowed" */
	VERIFY_E_UNKNOWN_KID = -4,   /* "unknown key id" (a refresh has been requested; see verifier_refresh_soon). Only
				      * for a token whose unverified iss is this issuer: another issuer's token is
				      * VERIFY_E_ISSUER before any key lookup, and never asks for a refresh */
	VERIFY_E_SIGNATURE = -5,     /* "invalid signature" */
	VERIFY_E_ISSUER = -6,        /* "issuer mismatch" */
	VERIFY_E_AUDIENCE = -7,      /* "audience mismatch" */
	VERIFY_E_EXPIRED = -8,       /* "token expired" */
	VERIFY_E_NOT_YET = -9,       /* "token not yet valid" */
	VERIFY_E_CLAIMS = -10,       /* bad or missing claim; detail gives which */
	VERIFY_E_NOT_READY = -11,    /* "issuer keys not loaded" */
	VERIFY_E_RESERVED = -12,     /* "reserved identity refused" */
	VERIFY_E_INTERNAL = -13,     /* "internal error" */
	VERIFY_E_IDENTITY = -14,     /* "identity cannot be forwarded unchanged": a user, uid, group or extra value
				      * that an HTTP header line cannot carry as it is (identity_check); detail names
				      * the field */
	VERIFY_E_PENDING = -15,      /* "distributed claims being fetched": the token's groups come from a claims
				      * source whose answer is not there yet; the fetch is under way (distclaims.h)
				      * and its end is reported to the fetcher's listener (distclaims_set_listener), so the caller holds the
				      * request and judges the token again then. Never cached, never remembered */
};
const char *verifier_reason(int result);

typedef struct verifier verifier;

/* Validates cfg, copies every string it needs, starts the OIDC provider (cfg->oidc). 0 or -1 with err set. */
int verifier_create(const verifier_config *cfg, verifier **out, char *err, size_t errlen);
/*
 * For unit tests, benchmarks and fuzzers (no network, no thread): the same verifier, but the key set comes from
 * the caller instead of an OIDC provider. ks may be NULL (then every uncached token gets VERIFY_E_NOT_READY);
 * the verifier takes its own reference. cfg->oidc.issuer_url is still the expected "iss"; nothing else of
 * cfg->oidc is used. An unknown kid only counts a refresh request (verifier_cache_stats.refresh_requests).
 */
int verifier_create_with_keys(const verifier_config *cfg, jwks_keyset *ks, verifier **out, char *err,
			      size_t errlen);
/* Swaps the key set of a verifier made by verifier_create_with_keys (a "rotation"); ks may be NULL. Takes its
 * own reference. Any thread. No effect on a verifier that has a provider. */
void verifier_set_keys(verifier *v, jwks_keyset *ks);
bool verifier_ready(verifier *v);
/*
 * Verifies token[0..len) (the bare JWT, without "Bearer ") at time now (unix seconds), uncached (issuers.h
 * caches). VERIFY_OK: *id holds a reference (release with identity_release()).
 * Otherwise a negative verifier_result; if detail != NULL it is set to a static or thread-local string with
 * specifics safe to log (e.g. "oidc: parse username claims \"sub\": claim not present"), never token bytes.
 */
int verifier_verify_uncached(verifier *v, const uint8_t *token, size_t len, int64_t now, const identity **id,
			     const char **detail);
/*
 * A bearer token parsed once, so that the issuer pick (issuers.h) and the verification read the same parse:
 * jwt_parse() (header, decoded payload and signature, the signing input's span) and the payload as strict JSON
 * with its unverified "iss". When jwt_parse() refuses the header, the payload is still decoded on its own: the
 * issuer is picked by iss before anything else is judged, as the API server does. Only iss may be read from it
 * before the signature is good.
 * Owns: jwt and payload (verifier_token_free()); bytes are borrowed and must outlive it. The verification may
 * add a resolved distributed claim to payload: one verifier_token serves one verification.
 */
typedef struct verifier_token {
	const uint8_t *bytes;        /* the bare JWT, borrowed */
	size_t len;
	int jwt_rc;                  /* jwt_parse(): 0, or why the token's form or header is refused */
	jwt_token jwt;               /* when jwt_rc == 0 */
	int payload_rc;              /* 0, JWT_E_FORMAT / JWT_E_JSON (not a strict JSON object), JWT_E_NOMEM */
	cJSON *payload;              /* when payload_rc == 0 */
	const char *iss;             /* into payload; NULL when it has no string iss */
} verifier_token;
/* Fills *t (always: release with verifier_token_free()); returns t->payload_rc. max_len as jwt_parse(). */
int verifier_token_parse(const uint8_t *token, size_t len, size_t max_len, verifier_token *t);
void verifier_token_free(verifier_token *t);
/* verifier_verify_uncached() of a parsed token. key: its cache_key() (32 bytes) when the caller has it (the memory
 * of refused tokens is keyed on it: one SHA-256 per miss, not two), or NULL. trace: as verifier_explain(), NULL on
 * the hot path. For issuers.h, which keeps one cache for all its authenticators. */
int verifier_verify_token(verifier *v, verifier_token *t, const uint8_t *key, int64_t now, const mapping_trace *trace,
			  const identity **id, const char **detail);
/* Whether the key with fingerprint fp (identity.key_fp) is in the current key set: a cached identity stays
 * valid only while the key that verified it is published. Any thread. */
bool verifier_has_key(verifier *v, uint64_t fp);
/* The full verification, uncached, reporting every check in order to trace (header, key, signature, standard
 * claims, each mapping and rule) for `kube-oidc-spoa explain`. Never reports token bytes. Same results as
 * verifier_verify_uncached(). */
int verifier_explain(verifier *v, const uint8_t *token, size_t len, int64_t now, const mapping_trace *trace,
		     const identity **id, const char **detail);
/* The issuer URL (the expected "iss"); valid while v is. */
const char *verifier_issuer(const verifier *v);
/*
 * For holding a request whose token named an unknown kid until the JWKS download it triggered has ended (the
 * Kubernetes API server's authenticator waits for that download too, so the first request after a rotation
 * does not fail).
 *
 * verifier_set_refresh_listener(): fn(ud) is called after every key-set attempt of the provider, successful or
 * not (on the provider thread, no verifier lock held except the listener's own: fn may verify),
 * and after every verifier_set_keys() (on that caller's thread). fn == NULL removes it. One listener at a
 * time; when this returns, the previous listener is not running and will not be called again — so it must not
 * be called from inside fn. Any thread.
 *
 * verifier_refresh_soon(): true when a key-set download is in flight or may start within within_ms (after an
 * unknown kid asked for one), i.e. when waiting for the listener can help. Always false for a verifier made by
 * verifier_create_with_keys. Lock-free; any thread.
 */
void verifier_set_refresh_listener(verifier *v, void (*fn)(void *ud), void *ud);
bool verifier_refresh_soon(verifier *v, unsigned within_ms);
void verifier_status(verifier *v, oidc_status *out);
typedef struct verifier_cache_stats {
	uint64_t hits, misses, evictions;
	size_t size;
	uint64_t refresh_requests; /* JWKS refreshes asked for because of an unknown kid */
	size_t bytes;              /* memory the token cache holds: its table and the identities in it */
	uint64_t negative_hits;    /* refusals answered from the refused-token memory (negcache.h) */
	uint64_t work_refusals;    /* tokens refused by VERIFIER_MAX_WORK */
} verifier_cache_stats;
void verifier_cache_stats_get(verifier *v, verifier_cache_stats *out);
void verifier_destroy(verifier *v);

#endif
