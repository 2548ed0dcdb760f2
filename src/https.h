/*
 * https.h — the one HTTPS client setup of the agent's outgoing requests: issuer discovery and JWKS (oidc.c),
 * distributed claims (distclaims.c), TokenReview and SubjectAccessReview (tokenreview.c). Part of the shared
 * layer: whatever a request is for, it gets the same TLS verification, CA choice, timeouts and size cap.
 *
 * Owns nothing: the caller owns the CURL handle and every buffer it passes. libcurl is initialised once per
 * process by https_global_init(), which each module calls before its first handle.
 */
#ifndef KOS_HTTPS_H
#define KOS_HTTPS_H

#include <stddef.h>
#include <stdint.h>

/* curl_global_init() once for the process (it is not thread-safe, hence the once): 0, or the CURLcode it
 * failed with. Call before creating any thread that uses libcurl. Any thread. */
int https_global_init(void);

/* The settings every outgoing request shares: url, https only, no redirects (a caller that follows them turns
 * that on itself, https only), the CA (ca_pem inline, else ca_file, else the system roots; ca_pem must outlive
 * the transfer), peer and host verified, timeout_ms for connect and for the whole transfer, a body over max
 * refused by its Content-Length (the caller's write callback still enforces max on the bytes), our
 * User-Agent. easy is a CURL *. Any thread that owns easy. */
void https_setup(void *easy, const char *url, const char *ca_file, const char *ca_pem, size_t ca_pem_len,
		 unsigned timeout_ms, size_t max);

/* A finished transfer of a multi handle: priv is the easy handle's CURLOPT_PRIVATE, result its CURLcode. */
typedef void (*https_done_fn)(void *ud, void *priv, int result);

/* One turn of a thread that drives a curl multi handle (distclaims' fetcher, tokenreview's reviewer): runs the
 * transfers, calls done(ud, …) for each that finished (with a non-NULL CURLOPT_PRIVATE), then waits for
 * activity, a curl_multi_wakeup(), or until next_ms (kx_mono_ms() time; at least 1 ms). multi is a CURLM *.
 * Only the thread that owns multi. */
void https_multi_turn(void *multi, int64_t next_ms, https_done_fn done, void *ud);

#endif
