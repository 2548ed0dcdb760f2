/*
 * https.c — the shared HTTPS client setup; see https.h.
 */
#include "https.h"

#include <pthread.h>
#include <string.h>

#include <curl/curl.h>

#include "kx.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode init_rc;

static void global_init(void)
{
	init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int https_global_init(void)
{
	pthread_once(&once, global_init);
	return (int)init_rc;
}

void https_setup(void *easy, const char *url, const char *ca_file, const char *ca_pem, size_t ca_pem_len,
		 unsigned timeout_ms, size_t max)
{
	CURL *c = easy;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	if (ca_pem != NULL) {
		/* libcurl copies a blob unless told not to; the caller keeps ca_pem alive for the transfer */
		struct curl_blob blob = {(void *)ca_pem, ca_pem_len ? ca_pem_len : strlen(ca_pem), CURL_BLOB_NOCOPY};

		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
		curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
		/* a configured CA is the only trust anchor, as for the API server: libcurl would otherwise also load its
		 * built-in CA directory (Debian's: /etc/ssl/certs, every public root) beside it */
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	} else if (ca_file != NULL) {
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "kube-oidc-spoa");
}

void https_multi_turn(void *multi, int64_t next_ms, https_done_fn done, void *ud)
{
	CURLM *m = multi;
	CURLMsg *msg;
	int running = 0, left;
	int64_t wait;

	curl_multi_perform(m, &running);
	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		void *priv = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&priv);
		if (priv != NULL)
			done(ud, priv, (int)msg->data.result);
	}
	wait = next_ms - kx_mono_ms();
	if (wait < 1)
		wait = 1;
	curl_multi_poll(m, NULL, 0, (int)wait, NULL);
}
