/*
 * cfgwatch.c — content-change detection for a configuration file behind kubelet's symlinks (see cfgwatch.h).
 *
 * Why a stat() per tick rather than inotify: kubelet's swap replaces the "..data" symlink in the directory, not
 * the file the path names, and an inotify watch on the path follows the old inode; watching the directory would
 * work but needs a second mechanism for in-place edits and for a path outside a ConfigMap. One stat() a second
 * on the main loop is far below anything measurable and catches both.
 */
#include "cfgwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct ident {
	bool ok; /* stat() worked */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
} ident;

struct cfgwatch {
	char *path;
	ident id;
	bool readable; /* buf holds the content last seen */
	uint8_t *buf;
	size_t len;
};

static void ident_get(const char *path, ident *out)
{
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (stat(path, &st) != 0)
		return;
	out->ok = true;
	out->dev = st.st_dev;
	out->ino = st.st_ino;
	out->size = st.st_size;
	out->mtime = st.st_mtim;
	out->ctime = st.st_ctim;
}

static bool ident_eq(const ident *a, const ident *b)
{
	if (a->ok != b->ok)
		return false;
	if (!a->ok)
		return true;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* The whole file into a new buffer (*out, *len; one byte more than the cap reads as "too large": the content
 * still differs, and the reload says why). 0, or -1 when it cannot be read or memory is short. */
static int read_all(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t *buf;
	size_t n = 0;

	if (fd < 0)
		return -1;
	buf = malloc(CFGWATCH_MAX_BYTES + 1);
	if (buf == NULL) {
		close(fd);
		return -1;
	}
	while (n < CFGWATCH_MAX_BYTES + 1) {
		ssize_t r = read(fd, buf + n, CFGWATCH_MAX_BYTES + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*out = buf;
	*len = n;
	return 0;
}

int cfgwatch_create(const char *path, cfgwatch **out)
{
	cfgwatch *w = calloc(1, sizeof(*w));

	if (w == NULL || (w->path = strdup(path)) == NULL) {
		free(w);
		return -1;
	}
	ident_get(path, &w->id);
	w->readable = read_all(path, &w->buf, &w->len) == 0;
	*out = w;
	return 0;
}

int cfgwatch_poll(cfgwatch *w)
{
	ident now;
	uint8_t *buf = NULL;
	size_t len = 0;
	bool readable, changed;

	ident_get(w->path, &now);
	if (ident_eq(&now, &w->id))
		return 0;
	w->id = now;
	readable = now.ok && read_all(w->path, &buf, &len) == 0;
	changed = readable != w->readable || (readable && (len != w->len || memcmp(buf, w->buf, len) != 0));
	if (!changed) {
		free(buf);
		return 0;
	}
	free(w->buf);
	w->buf = buf;
	w->len = len;
	w->readable = readable;
	return 1;
}

size_t cfgwatch_size(const cfgwatch *w)
{
	return w->readable ? w->len : 0;
}

void cfgwatch_destroy(cfgwatch *w)
{
	if (w == NULL)
		return;
	free(w->buf);
	free(w->path);
	free(w);
}
