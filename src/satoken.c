/* satoken.c — service-account token file, re-read on change, published by reference; see satoken.h. */
#include "satoken.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "log.h"

struct satoken {
	char *path;
	pthread_mutex_t mu;      /* guards cur's pointer value while a reader takes its reference */
	satoken_val *cur;
	bool have_id;
	struct stat id;          /* identity of the file behind path when cur was read */
	atomic_uint_fast64_t loads;
	atomic_uint_fast64_t failures;
	int last_err;            /* to log a persistent failure once, not every second */
};

const char *satoken_strerror(int err)
{
	switch (err) {
	case SATOKEN_OK: return "ok";
	case SATOKEN_E_READ: return "cannot read the token file";
	case SATOKEN_E_EMPTY: return "token file is empty";
	case SATOKEN_E_TOO_BIG: return "token file too large";
	case SATOKEN_E_INVALID: return "token file holds bytes not allowed in a header";
	case SATOKEN_E_NOMEM: return "out of memory";
	default: return "unknown error";
	}
}

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int satoken_parse(const uint8_t *p, size_t len, size_t *off, size_t *tlen)
{
	size_t a = 0, b = len;

	while (a < b && is_ws(p[a]))
		a++;
	while (b > a && is_ws(p[b - 1]))
		b--;
	if (a == b)
		return SATOKEN_E_EMPTY;
	/* a JWT or any opaque bearer token is visible ASCII; anything else would corrupt the header */
	for (size_t i = a; i < b; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return SATOKEN_E_INVALID;
	*off = a;
	*tlen = b - a;
	return SATOKEN_OK;
}

int satoken_create(const char *path, satoken **out)
{
	satoken *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return SATOKEN_E_NOMEM;
	st->path = strdup(path);
	if (st->path == NULL) {
		free(st);
		return SATOKEN_E_NOMEM;
	}
	pthread_mutex_init(&st->mu, NULL);
	*out = st;
	return SATOKEN_OK;
}

static bool same_id(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Reads the whole file into buf (cap bytes); the fstat of the opened file becomes its identity, so a swap
 * between our stat() and open() is caught on the next tick rather than missed. */
static int read_file(const char *path, uint8_t *buf, size_t cap, size_t *len, struct stat *id)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	size_t n = 0;
	int rc = SATOKEN_OK;

	if (fd < 0)
		return SATOKEN_E_READ;
	if (fstat(fd, id) != 0) {
		rc = SATOKEN_E_READ;
		goto out;
	}
	for (;;) {
		ssize_t r;

		if (n == cap) {
			rc = SATOKEN_E_TOO_BIG;
			goto out;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = SATOKEN_E_READ;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
out:
	close(fd);
	return rc;
}

/* One block: the struct, then "<ver>|Bearer <token>\0"; str points after the '|'. */
static satoken_val *new_val(const uint8_t *tok, size_t tlen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	satoken_val *v = malloc(sizeof(*v) + SATOKEN_VER_LEN + 1 + 7 + tlen + 1);
	char *p;

	if (v == NULL)
		return NULL;
	atomic_init(&v->refs, 1);
	p = v->buf + SATOKEN_VER_LEN + 1;
	memcpy(p, "Bearer ", 7);
	memcpy(p + 7, tok, tlen);
	p[7 + tlen] = '\0';
	v->str = p;
	v->len = 7 + tlen;
	SHA256((const unsigned char *)p, v->len, md);
	for (size_t i = 0; i < SATOKEN_VER_LEN / 2; i++) {
		v->ver[2 * i] = hex[md[i] >> 4];
		v->ver[2 * i + 1] = hex[md[i] & 15];
	}
	v->ver[SATOKEN_VER_LEN] = '\0';
	memcpy(v->buf, v->ver, SATOKEN_VER_LEN);
	v->buf[SATOKEN_VER_LEN] = '|';
	v->proc = v->buf;
	v->proc_len = SATOKEN_VER_LEN + 1 + v->len;
	return v;
}

static void publish(satoken *st, satoken_val *v)
{
	satoken_val *old;

	pthread_mutex_lock(&st->mu);
	old = st->cur;
	st->cur = v;
	pthread_mutex_unlock(&st->mu);
	satoken_val_release(old);
}

int satoken_reload(satoken *st, bool *changed)
{
	/* +1 so a file of exactly SATOKEN_MAX_BYTES is told apart from a bigger one */
	static uint8_t buf[SATOKEN_MAX_BYTES + 1]; /* main thread only */
	struct stat now, id;
	size_t len = 0, off, tlen;
	satoken_val *v;
	int rc;

	if (changed != NULL)
		*changed = false;
	if (stat(st->path, &now) == 0 && st->have_id && same_id(&now, &st->id))
		return SATOKEN_OK;
	rc = read_file(st->path, buf, sizeof(buf), &len, &id);
	if (rc == SATOKEN_OK)
		rc = satoken_parse(buf, len, &off, &tlen);
	if (rc != SATOKEN_OK) {
		int e = errno;

		atomic_fetch_add(&st->failures, 1);
		if (rc != st->last_err) {
			log_line l;

			log_begin(&l, st->cur ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR, "satoken");
			log_str(&l, "msg", st->cur ? "cannot re-read the service-account token, keeping the previous one"
						  : "cannot read the service-account token");
			log_str(&l, "path", st->path);
			log_str(&l, "error", satoken_strerror(rc));
			if (rc == SATOKEN_E_READ)
				log_str(&l, "errno", strerror(e));
			log_end(&l);
		}
		st->last_err = rc;
		memset(buf, 0, sizeof(buf));
		return rc;
	}
	v = new_val(buf + off, tlen);
	memset(buf, 0, sizeof(buf));
	if (v == NULL)
		return SATOKEN_E_NOMEM;
	/* an unchanged token after a touch or a swap is not news */
	if (st->cur != NULL && st->cur->len == v->len && memcmp(st->cur->str, v->str, v->len) == 0) {
		satoken_val_release(v);
		st->id = id;
		st->have_id = true;
		st->last_err = 0;
		return SATOKEN_OK;
	}
	publish(st, v);
	st->id = id;
	st->have_id = true;
	st->last_err = 0;
	atomic_fetch_add(&st->loads, 1);
	if (changed != NULL)
		*changed = true;
	{
		log_line l;

		log_begin(&l, LOG_LEVEL_INFO, "satoken");
		log_str(&l, "msg", atomic_load(&st->loads) == 1 ? "service-account token loaded"
								: "service-account token rotated");
		log_str(&l, "path", st->path);
		log_uint(&l, "bytes", tlen);
		log_end(&l);
	}
	return SATOKEN_OK;
}

satoken_val *satoken_acquire(satoken *st)
{
	satoken_val *v;

	pthread_mutex_lock(&st->mu);
	v = st->cur;
	if (v != NULL)
		atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&st->mu);
	return v;
}

void satoken_val_release(satoken_val *v)
{
	if (v == NULL)
		return;
	if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1) {
		/* the token is a credential: do not leave it in freed heap */
		volatile char *p = v->buf;

		for (size_t i = 0; i < v->proc_len; i++)
			p[i] = 0;
		free(v);
	}
}

bool satoken_loaded(satoken *st)
{
	bool r;

	pthread_mutex_lock(&st->mu);
	r = st->cur != NULL;
	pthread_mutex_unlock(&st->mu);
	return r;
}

void satoken_counts(satoken *st, uint64_t *loads, uint64_t *failures)
{
	*loads = atomic_load(&st->loads);
	*failures = atomic_load(&st->failures);
}

void satoken_destroy(satoken *st)
{
	if (st == NULL)
		return;
	satoken_val_release(st->cur);
	pthread_mutex_destroy(&st->mu);
	free(st->path);
	free(st);
}
