/*
 * jwks.h — a JSON Web Key Set: parsing (RFC 7517/7518/8037) into OpenSSL public keys, and lookup.
 *
 * A key set is immutable after jwks_parse() and reference-counted: the fetcher thread builds a new one and swaps
 * it in atomically (see oidc.h); verifying threads hold a reference for the length of one verification. Keys of
 * unknown type, unknown curve, `use` other than "sig", `key_ops` without "verify", or with a member name twice
 * are skipped, not fatal; a set with no usable key is an error. A kid may name several keys, of one type
 * (a rotation that reused a kid) or of different types (RFC 7517 §4.5): all are kept, in document order, and a
 * verifier tries each that fits the token's alg, as go-oidc (the API server's verifier) does.
 */
#ifndef KOS_JWKS_H
#define KOS_JWKS_H

#include <stddef.h>
#include <stdint.h>

#define JWKS_MAX_BYTES (1u << 20) /* a larger document is refused before parsing */
#define JWKS_MAX_KEYS 256

typedef struct jwks_keyset jwks_keyset;

enum jwks_err {
	JWKS_OK = 0,
	JWKS_E_TOO_BIG = -1,
	JWKS_E_JSON = -2,     /* not JSON, or not an object with a "keys" array */
	JWKS_E_NO_KEYS = -3,  /* no usable key */
	JWKS_E_NOMEM = -4,
	JWKS_E_NO_KID = -5,   /* lookup: no key with that kid */
	JWKS_E_MISMATCH = -6, /* lookup: that kid names a key of another type or alg */
};

enum jwks_kty { JWKS_KTY_RSA = 1, JWKS_KTY_EC = 2, JWKS_KTY_OKP = 3 };
enum jwks_crv { JWKS_CRV_NONE = 0, JWKS_CRV_P256, JWKS_CRV_P384, JWKS_CRV_P521, JWKS_CRV_ED25519 };

#define JWKS_KID_MAX 256       /* a longer kid makes the key unusable (skipped) */
#define JWKS_RSA_MIN_BITS 2048 /* smaller RSA keys are skipped: they no longer protect anything */
#define JWKS_RSA_MAX_BITS 16384
/* EC keys that get a precomputed verifier (ecverify.h), in set order; later EC keys verify through EVP. Each
 * costs ~151 KiB and ~30 ms to build for P-256 (~274 KiB / 3 ms for P-384, ~6 KiB / 0.2 ms for P-521), so a
 * set holds at most ~1.2 MiB of tables for P-256 keys (~2.2 MiB for P-384), and a refresh spends at most
 * ~0.25 s on them, on the fetcher thread. */
#define JWKS_EC_FAST_MAX 8
/* Ed25519 keys that get tables (edverify.h), in set order; ~60 KiB and ~2 ms each, on the fetcher thread. */
#define JWKS_ED_FAST_MAX 8

/*
 * Verification work, for the verifier's per-token cap (issue 14, finding 6): every key carries an estimate of
 * what one signature check with it costs, in units of one RSA-2048 verification with e = 65537 (13 µs on the
 * reference machine, OpenSSL 3.0). RSA grows with the square of the modulus and with the exponent's
 * multiplications (17 for 65537; up to 62 for the 32-bit exponents we accept); curves are measured ratios
 * (openssl speed: P-256 3, P-384 34, P-521 25, Ed25519 4). A 16,384-bit key with e = 65537 is 64 units.
 */
#define JWKS_WORK_P256 3
#define JWKS_WORK_P384 34
#define JWKS_WORK_P521 25
#define JWKS_WORK_ED25519 4

struct evp_pkey_st;
struct ecverify_key;
struct rsaverify_key;
struct edverify_key;
struct evp_md_ctx_st;

/* One usable public key. Lives as long as its key set; read-only after jwks_parse(). It sits on the
 * verification path, hence not opaque; only jwks.c writes it. */
typedef struct jwks_key {
	int kty;                  /* enum jwks_kty */
	int crv;                  /* enum jwks_crv; NONE for RSA */
	int alg;                  /* enum jwa_alg from the JWK's "alg", or 0 when the JWK names none */
	unsigned bits;            /* RSA modulus or EC field size in bits */
	const char *kid;          /* NUL-terminated copy, NULL when the JWK has no kid */
	size_t kid_len;
	struct evp_pkey_st *pkey; /* built once at parse time; never decoded again per verification */
	uint64_t fp;              /* first 8 bytes of SHA-256 over the SubjectPublicKeyInfo DER */
	unsigned work;            /* cost of one verification with this key, in work units (>= 1, see above) */
	uint8_t ec_order[66];     /* EC: the group order, big-endian, ec_order_len bytes (r and s must be below it) */
	size_t ec_order_len;
	/* RSA and EC: per alg (enum jwa_alg), a verify context initialised once (padding, digest) that each verification
	 * duplicates, so no per-call provider initialisation; NULL where the key does not fit the alg. RSA keys with
	 * rsav use these only when rsav gives no verdict. */
	struct evp_pkey_ctx_st *vctx[16];
	/* RSA: the IFMA verifier (rsaverify.h, about 2.2x EVP's speed; ~1.8 KiB, so a full set of 256 keys adds
	 * ~0.5 MiB), NULL where the CPU lacks AVX-512 IFMA, above RSAVERIFY_MAX_BITS, or under the FIPS provider;
	 * owned, freed with the set. */
	const struct rsaverify_key *rsav;
	/* Ed25519: a digest-verify context initialised once with the key, that each verification copies
	 * (EVP_MD_CTX_copy_ex, ~0.1 us) instead of EVP_DigestVerifyInit (~1.6 us: a provider fetch by name in
	 * OpenSSL 3.0); NULL when it could not be made (then jws.c initialises per call). Owned, freed with the set;
	 * read-only after jwks_parse(), copied by any number of threads at once. */
	struct evp_md_ctx_st *edctx;
	/* Ed25519: the tabulated verifier (edverify.h, about 4x EVP), NULL beyond JWKS_ED_FAST_MAX keys, for a key
	 * OpenSSL decodes leniently, under the FIPS provider, or in fuzzing builds; owned, freed with the set. */
	const struct edverify_key *edv;
	/* EC: the precomputed verifier (about twice as fast as EVP), NULL beyond JWKS_EC_FAST_MAX keys, when
	 * building it failed, or in fuzzing builds (its ~26 ms per key would starve the JWKS fuzzer); owned, freed
	 * with the set. jws_verify() uses it when present and EVP otherwise. */
	const struct ecverify_key *ecv;
} jwks_key;

/* Parses p[0..len). On success *out holds a new set with one reference. err gets a one-line reason on
 * failure (and a note of skipped keys on success, if errlen > 0). */
int jwks_parse(const uint8_t *p, size_t len, jwks_keyset **out, char *err, size_t errlen);
void jwks_keyset_ref(jwks_keyset *ks);
void jwks_keyset_release(jwks_keyset *ks); /* NULL is fine */
size_t jwks_keyset_count(const jwks_keyset *ks);
const char *jwks_strerror(int err);

/* i-th usable key, i < jwks_keyset_count(); stable for the life of the set. */
const jwks_key *jwks_keyset_key(const jwks_keyset *ks, size_t i);
/* True when a key of this type may verify a token of alg `alg` (enum jwa_alg): RS and PS need RSA, ESnnn the matching
 * curve, EdDSA Ed25519; and a JWK "alg", when present, must equal the token's. */
int jwks_key_fits(const jwks_key *k, int alg);
/* The first key whose kid equals kid[0..kid_len) and that fits alg. Returns 0 and sets *out;
 * JWKS_E_NO_KID when no key has that kid (the caller should ask for a refresh); JWKS_E_MISMATCH when keys
 * with that kid exist but none fits alg (a kid of another key type: never a refresh). Any thread. */
int jwks_find(const jwks_keyset *ks, const char *kid, size_t kid_len, int alg, const jwks_key **out);
/* The next key after prev (a key of ks from jwks_find() or this function) with prev's kid that fits alg:
 * 0 and *out, or JWKS_E_NO_KID when there is none. Any thread. */
int jwks_find_next(const jwks_keyset *ks, const jwks_key *prev, int alg, const jwks_key **out);
/* A number no other key set of this process has had (never 0): caches of verdicts made with one set compare it
 * to the current one's, so any new key set — every successful JWKS download — invalidates them. Any thread. */
uint64_t jwks_keyset_serial(const jwks_keyset *ks);
/* True when a key with this fingerprint is in the set (the token cache drops entries of departed keys). */
int jwks_has_fp(const jwks_keyset *ks, uint64_t fp);

#endif
