/* kosack.c — an identity into the ACK variables of conf/CONTRACT.md; see kosack.h. */
#include "kosack.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct kosack {
	char **gnames;         /* "g0"… for max_groups groups */
	char **xnames;         /* "x1v0"… for HANDLER_EXTRA_SLOTS × HANDLER_EXTRA_VALUES lines */
	unsigned max_groups;
	bool client_ip;
	const config_kv *extras; /* borrowed */
	size_t nextras;
};

/* Percent-encodes a key for Impersonate-Extra-<key>. The API server lower-cases the header name and then
 * unescapes it, so lower-case letters, digits and "-_.~" stay and everything else — upper-case letters
 * included, which would otherwise arrive lower-cased — becomes %XX. Returns bytes written, or 0 when it does
 * not fit. */
static size_t pct_key(char *dst, size_t cap, const char *k)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *k; k++) {
		unsigned char c = (unsigned char)*k;

		if (kosmsg_key_byte(c)) {
			if (cap - o < 1)
				return 0;
			dst[o++] = (char)c;
		} else {
			if (cap - o < 3)
				return 0;
			dst[o++] = '%';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	return o;
}

/* HAProxy's slot (1-based) for an encoded key in xk "<k1>|<k2>|…", compared without case (percent escapes
 * are case-insensitive, and the agent never leaves a letter that HAProxy could spell otherwise): the first slot
 * of that key with a line left (a key may have several slots, e.g. a list of groups longer than one slot's
 * lines; their lines go out in slot order). 0 = none; *any tells whether the key has a slot at all. */
static unsigned extra_slot(const handler_input *in, const char *enc, size_t elen, const unsigned char *used,
			   bool *any)
{
	size_t i = 0;

	*any = false;
	for (unsigned slot = 1; slot <= HANDLER_EXTRA_SLOTS && in->xk != NULL && i <= in->xk_len; slot++) {
		const uint8_t *bar = memchr(in->xk + i, '|', in->xk_len - i);
		size_t end = bar != NULL ? (size_t)(bar - in->xk) : in->xk_len;

		if (end - i == elen && strncasecmp((const char *)in->xk + i, enc, elen) == 0) {
			*any = true;
			if (used[slot - 1] < HANDLER_EXTRA_VALUES)
				return slot;
		}
		i = end + 1;
	}
	return 0;
}

/* The contract's variable names, made once: formatting "g%u" per group per request showed up in profiles.
 * per == 0: "g0"…"g{n-1}"; else "x1v0"…, per values a slot. One block; free() it. */
static char **make_names(unsigned n, unsigned per)
{
	enum { W = 24 }; /* "x%uv%u" of two unsigned ints fits */
	char **v = malloc(n * sizeof(*v) + (size_t)n * W);
	char *p;

	if (v == NULL)
		return NULL;
	p = (char *)(v + n);
	for (unsigned i = 0; i < n; i++, p += W) {
		if (per == 0)
			snprintf(p, W, "g%u", i);
		else
			snprintf(p, W, "x%uv%u", i / per + 1, i % per);
		v[i] = p;
	}
	return v;
}

/* One extra value into its slot's next line. 0, or the status to answer with *why and *detail set. */
static int put_extra(const kosack *a, const handler_input *in, const handler_sink *k, unsigned char *used,
		     const char *key, const char *value, enum handler_reason *why, const char **detail)
{
	static _Thread_local char d[200];
	char enc[256];
	size_t elen = pct_key(enc, sizeof(enc), key);
	bool any = false;
	unsigned slot = elen != 0 ? extra_slot(in, enc, elen, used, &any) : 0;

	if (slot == 0 && !any) {
		if (elen == 0)
			snprintf(d, sizeof(d), "extra key \"%.60s…\" is too long for a HAProxy slot", key);
		else
			snprintf(d, sizeof(d), "HAProxy has no Impersonate-Extra slot for \"%.*s\": set KOS_EXTRA_<n>=%.*s "
				 "in its environment", (int)elen, enc, (int)elen, enc);
		*detail = d;
		*why = HR_NO_SLOT;
		return HANDLER_NO_SLOT;
	}
	if (slot == 0) { /* every slot of the key is full */
		snprintf(d, sizeof(d), "extra \"%.100s\" has more values than its slots have lines (%d each)", key,
			 HANDLER_EXTRA_VALUES);
		*detail = d;
		*why = HR_TOO_MANY_VALUES;
		return HANDLER_TOO_MANY_VALUES;
	}
	if (k->set_str(k->ud, a->xnames[(slot - 1) * HANDLER_EXTRA_VALUES + used[slot - 1]], value, strlen(value)) != 0) {
		*why = HR_TOO_BIG;
		return HANDLER_UNAVAILABLE;
	}
	used[slot - 1]++;
	return 0;
}

int kosack_identity(const kosack *a, const handler_input *in, const identity *id, const satoken_val *sa,
		    const handler_sink *k, enum handler_reason *why, const char **detail)
{
	static _Thread_local char d[160];
	unsigned char used[HANDLER_EXTRA_SLOTS] = {0};
	char cip[INET6_ADDRSTRLEN] = "";
	int st;

	/* The verifier ran identity_check() already (mapping_apply, the one claim-rule path); this is the last line before the
	 * ACK, for identities from anywhere else (a test's fake verifier, a future path): never write a value a
	 * header would not carry unchanged. */
	if (identity_check(id->user, id->uid, id->groups, id->ngroups, id->extra, id->nextra, d, sizeof(d)) != 0) {
		*detail = d;
		*why = HR_V_IDENTITY;
		return HANDLER_UNAUTHENTICATED;
	}
	if (a->client_ip) {
		if (in->src_family == 0 ||
		    inet_ntop(in->src_family == 4 ? AF_INET : AF_INET6, in->src, cip, sizeof(cip)) == NULL) {
			*why = HR_BAD_MESSAGE;
			return HANDLER_UNAVAILABLE;
		}
	}
	/* Write in order; a full ACK (NOSPACE) leaves status unset or 4, both a 503. Extras first: a key HAProxy
	 * has no slot for must fail the request, never drop the value. */
	for (size_t i = 0; i < id->nextra; i++)
		if ((st = put_extra(a, in, k, used, id->extra[i].key, id->extra[i].value, why, detail)) != 0)
			return st;
	for (size_t i = 0; i < a->nextras; i++)
		if ((st = put_extra(a, in, k, used, a->extras[i].key, a->extras[i].value, why, detail)) != 0)
			return st;
	if (k->set_str(k->ud, "user", id->user, strlen(id->user)) != 0)
		goto too_big;
	if (id->uid != NULL && k->set_str(k->ud, "uid", id->uid, strlen(id->uid)) != 0)
		goto too_big;
	if (k->set_int(k->ud, "ng", (int64_t)id->ngroups) != 0)
		goto too_big;
	if (id->ngroups > a->max_groups) /* handler.c judge() allows at most max_groups */
		goto too_big;
	for (size_t i = 0; i < id->ngroups; i++) {
		if (k->set_str(k->ud, a->gnames[i], id->groups[i], strlen(id->groups[i])) != 0)
			goto too_big;
	}
	if (a->client_ip && k->set_str(k->ud, "cip", cip, strlen(cip)) != 0)
		goto too_big;
	/* The service-account token travels only when HAProxy's process-wide copy is missing or another version
	 * (a fresh HAProxy process, a rotation); sv always, so HAProxy can check the copy it is about to send. */
	if (k->set_str(k->ud, "sv", sa->ver, SATOKEN_VER_LEN) != 0)
		goto too_big;
	if ((!in->have_sv || memcmp(in->sv, sa->ver, SATOKEN_VER_LEN) != 0) &&
	    k->set_proc_str(k->ud, "sa", sa->proc, sa->proc_len) != 0)
		goto too_big;
	*why = HR_OK;
	return HANDLER_ALLOW;
too_big:
	*why = HR_TOO_BIG;
	return HANDLER_UNAVAILABLE;
}


int kosack_create(unsigned max_groups, bool client_ip, const config_kv *extras, size_t nextras, kosack **out)
{
	kosack *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return -1;
	a->gnames = make_names(max_groups, 0);
	a->xnames = make_names(HANDLER_EXTRA_SLOTS * HANDLER_EXTRA_VALUES, HANDLER_EXTRA_VALUES);
	if (a->gnames == NULL || a->xnames == NULL) {
		kosack_destroy(a);
		return -1;
	}
	a->max_groups = max_groups;
	a->client_ip = client_ip;
	a->extras = extras;
	a->nextras = nextras;
	*out = a;
	return 0;
}

void kosack_destroy(kosack *a)
{
	if (a != NULL) {
		free(a->gnames);
		free(a->xnames);
	}
	free(a);
}
