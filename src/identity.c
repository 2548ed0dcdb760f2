/*
 * identity.c — one-allocation, reference-counted identities (see identity.h).
 *
 * Layout of the block: struct identity | group pointer array | extra array | all strings, NUL-terminated.
 */
#include "identity.h"

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kx.h"

static size_t slen(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

static char *put(char **cur, const char *s)
{
	size_t n;
	char *d;

	if (!s)
		return NULL;
	n = strlen(s) + 1;
	d = *cur;
	memcpy(d, s, n);
	*cur += n;
	return d;
}

identity *identity_build(const char *user, const char *uid, const char *const *groups, size_t ngroups,
			 const identity_extra *extra, size_t nextra, int64_t exp, uint64_t key_fp)
{
	size_t strings = 0, head, total;
	identity *id;
	const char **g;
	identity_extra *x;
	char *cur;

	if (!user || ngroups > SIZE_MAX / 64 || nextra > SIZE_MAX / 64)
		return NULL;
	strings += slen(user) + slen(uid);
	for (size_t i = 0; i < ngroups; i++)
		strings += slen(groups[i] ? groups[i] : "");
	for (size_t i = 0; i < nextra; i++)
		strings += slen(extra[i].key ? extra[i].key : "") + slen(extra[i].value ? extra[i].value : "");
	head = sizeof(*id) + ngroups * sizeof(*g);
	head = (head + alignof(identity_extra) - 1) & ~(alignof(identity_extra) - 1);
	total = head + nextra * sizeof(*x) + strings;
	id = malloc(total);
	if (!id)
		return NULL;
	g = (const char **)(id + 1);
	x = (identity_extra *)((char *)id + head);
	cur = (char *)(x + nextra);
	atomic_init(&id->refs, 1);
	id->exp = exp;
	id->key_fp = key_fp;
	id->user = put(&cur, user);
	id->uid = put(&cur, uid);
	for (size_t i = 0; i < ngroups; i++)
		g[i] = put(&cur, groups[i] ? groups[i] : "");
	for (size_t i = 0; i < nextra; i++) {
		x[i].key = put(&cur, extra[i].key ? extra[i].key : "");
		x[i].value = put(&cur, extra[i].value ? extra[i].value : "");
	}
	id->ngroups = ngroups;
	id->groups = ngroups ? g : NULL;
	id->nextra = nextra;
	id->extra = nextra ? x : NULL;
	return id;
}

void identity_release(const identity *id)
{
	if (!id)
		return;
	if (atomic_fetch_sub_explicit(&((identity *)id)->refs, 1, memory_order_acq_rel) == 1)
		free((void *)id);
}

const char *identity_value_problem(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return "empty";
	/* the edges first, so " \tx" is named by what Go would do to it (strip), not by the tab inside */
	if (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')
		return "leading or trailing space or tab";
	if (kx_ctl_find((const uint8_t *)s, n) < n)
		return "control character";
	return NULL;
}

int identity_check(const char *user, const char *uid, const char *const *groups, size_t ngroups,
		   const identity_extra *extra, size_t nextra, char *detail, size_t detail_len)
{
	const char *why;

	if ((why = identity_value_problem(user)) != NULL) {
		snprintf(detail, detail_len, "username: %s", why);
		return -1;
	}
	if (uid != NULL && (why = identity_value_problem(uid)) != NULL) {
		snprintf(detail, detail_len, "uid: %s", why);
		return -1;
	}
	for (size_t i = 0; i < ngroups; i++) {
		if ((why = identity_value_problem(groups[i])) != NULL) {
			snprintf(detail, detail_len, "group %zu of %zu: %s", i + 1, ngroups, why);
			return -1;
		}
	}
	for (size_t i = 0; i < nextra; i++) {
		if (extra[i].key[0] == '\0') {
			snprintf(detail, detail_len, "extra %zu: empty key", i + 1);
			return -1;
		}
		if ((why = identity_value_problem(extra[i].value)) != NULL) {
			snprintf(detail, detail_len, "extra \"%.100s\": %s", extra[i].key, why);
			return -1;
		}
	}
	return 0;
}
