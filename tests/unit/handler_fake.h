/*
 * handler_fake.h — the fixture test_handler.c and test_handler_hold.c share: a temp dir holding the service-account
 * token file, the satoken and metrics a handler needs, and a request's input as a NOTIFY gives it.
 *
 * Header-only (static functions) on purpose: tests/unit/util_*.c would link into every unit test. Include it
 * after <cmocka.h> and "handler.h". fx_base_new() returns an fx the caller owns; the caller creates f->h and
 * destroys it before fx_base_free(), which frees the rest and removes the temp files.
 */
#ifndef KOS_TESTS_HANDLER_FAKE_H
#define KOS_TESTS_HANDLER_FAKE_H

typedef struct fx {
	char dir[64];
	char path[96];
	satoken *sa;
	metrics *m;
	handler *h;
} fx;

/* A new fx under a fresh temp dir made from tmpl ("/tmp/kos-…-XXXXXX"); its token file holds "sa-secret" when
 * with_sa (else it is absent: the handler has no token to forward). *hc is zeroed and given what every test
 * handler has (sa, metrics, 64 groups at most); the caller adds its verifier ops and options. */
static fx *fx_base_new(const char *tmpl, bool with_sa, handler_config *hc)
{
	fx *f = calloc(1, sizeof(*f));
	FILE *fp;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s", tmpl);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/token", f->dir);
	if (with_sa) {
		fp = fopen(f->path, "w");
		assert_non_null(fp);
		fputs("sa-secret\n", fp);
		fclose(fp);
	}
	assert_int_equal(satoken_create(f->path, &f->sa), 0);
	satoken_reload(f->sa, NULL);
	assert_int_equal(metrics_create(handler_reason_names, HR_COUNT, &f->m), 0);
	memset(hc, 0, sizeof(*hc));
	hc->sa = f->sa;
	hc->metrics = f->m;
	hc->max_groups = 64;
	return f;
}

/* After handler_destroy(f->h). */
static void fx_base_free(fx *f)
{
	metrics_destroy(f->m);
	satoken_destroy(f->sa);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
}

/* A kos-auth message from 192.0.2.7 with auth as its Authorization header (NULL: none); in points into auth. */
static handler_input input_auth(const char *auth)
{
	handler_input in;

	memset(&in, 0, sizeof(in));
	in.have_msg = true;
	if (auth != NULL) {
		in.have_auth = true;
		in.auth = (const uint8_t *)auth;
		in.auth_len = strlen(auth);
	}
	in.src_family = 4;
	in.src[0] = 192, in.src[1] = 0, in.src[2] = 2, in.src[3] = 7;
	return in;
}

#endif
