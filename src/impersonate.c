/* impersonate.c — the client's Impersonate-* headers, as kube-apiserver's impersonation filter reads and
 * authorizes them; see impersonate.h. */
#include "impersonate.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "spop_codec.h"

#define SA_PREFIX "system:serviceaccount:"
#define EXTRA_PREFIX "impersonate-extra-"

/* A bump allocator over the request's one block: every string of the request is copied here. */
typedef struct arena {
	char *p;
	size_t left;
} arena;

static char *arena_str(arena *a, const uint8_t *s, size_t n)
{
	char *d;

	if (a->left < n + 1)
		return NULL;
	d = a->p;
	memcpy(d, s, n);
	d[n] = '\0';
	a->p += n + 1;
	a->left -= n + 1;
	return d;
}

static bool is(const spop_slice *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->len == n && strncasecmp((const char *)s->ptr, lit, n) == 0;
}

static int hexval(uint8_t c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Go's url.PathUnescape of the lower-cased key (in place, NUL-terminated); false when it does not decode, and
 * then the API server keeps the key as it came (unescapeExtraKey), so the caller keeps the lower-cased copy. */
static bool path_unescape(char *k)
{
	char *o = k;

	for (const char *i = k; *i; i++) {
		if (*i == '%') {
			int h = hexval((uint8_t)i[1]), l = h >= 0 ? hexval((uint8_t)i[2]) : -1;

			if (h < 0 || l < 0)
				return false;
			*o++ = (char)(h * 16 + l);
			i += 2;
		} else {
			*o++ = *i;
		}
	}
	*o = '\0';
	return true;
}

/* DNS-1123 label (a namespace): [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63. */
static bool dns_label(const char *s, size_t n)
{
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* DNS-1123 subdomain (a service account's name): labels joined by '.', at most 253. */
static bool dns_subdomain(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || n > 253)
		return false;
	while (i <= n) {
		const char *dot = memchr(s + i, '.', n - i);
		size_t end = dot != NULL ? (size_t)(dot - s) : n;

		if (!dns_label(s + i, end - i))
			return false;
		i = end + 1;
	}
	return true;
}

/* serviceaccount.SplitUsername: "system:serviceaccount:<ns>:<name>" with a valid namespace and name. */
static bool split_sa(const char *user, size_t *nslen, const char **name)
{
	const char *rest, *colon;

	if (strncmp(user, SA_PREFIX, sizeof(SA_PREFIX) - 1) != 0)
		return false;
	rest = user + sizeof(SA_PREFIX) - 1;
	colon = strchr(rest, ':');
	if (colon == NULL || strchr(colon + 1, ':') != NULL)
		return false;
	if (!dns_label(rest, (size_t)(colon - rest)) || !dns_subdomain(colon + 1, strlen(colon + 1)))
		return false;
	*nslen = (size_t)(colon - rest);
	*name = colon + 1;
	return true;
}

/* Whether a header value reaches the API server unchanged (no control byte; HAProxy already trimmed it). */
static const char *value_problem(const spop_slice *v)
{
	if (v->len == 0)
		return "an empty value";
	for (size_t i = 0; i < v->len; i++)
		if (v->ptr[i] < 0x20 || v->ptr[i] == 0x7f)
			return "a control character";
	if (v->ptr[0] == ' ' || v->ptr[0] == '\t' || v->ptr[v->len - 1] == ' ' || v->ptr[v->len - 1] == '\t')
		return "leading or trailing space";
	return NULL;
}

int imp_parse(const uint8_t *p, size_t len, imp_request **out, char *err, size_t errlen)
{
	imp_request *r;
	arena a;
	size_t off = 0, nusers = 0, nuids = 0, nitems = 0, strbytes;
	const char *why = NULL;
	int rc;

	/* one block: the struct, the items, groups and extras (at most IMP_MAX_ITEMS each), then every string
	 * (each value and key at most once, plus the service account's namespace) */
	strbytes = 2 * len + 4 * IMP_MAX_ITEMS + 64;
	r = calloc(1, sizeof(*r) + IMP_MAX_ITEMS * (sizeof(imp_item) + sizeof(char *) + sizeof(identity_extra)) +
			      strbytes);
	if (r == NULL)
		return IMP_E_NOMEM;
	r->items = (imp_item *)(r + 1);
	r->groups = (const char **)(r->items + IMP_MAX_ITEMS);
	r->extra = (identity_extra *)(r->groups + IMP_MAX_ITEMS);
	a.p = (char *)(r->extra + IMP_MAX_ITEMS);
	a.left = strbytes;

	for (;;) {
		spop_slice name, value;
		const char *what;

		if ((rc = spop_rawstr_decode(p + off, len - off, &name)) < 0)
			goto malformed;
		off += (size_t)rc;
		if ((rc = spop_rawstr_decode(p + off, len - off, &value)) < 0)
			goto malformed;
		off += (size_t)rc;
		if (name.len == 0 && value.len == 0)
			break; /* the end marker */
		if (name.len < 12 || strncasecmp((const char *)name.ptr, "impersonate-", 12) != 0)
			continue;
		if (nitems == IMP_MAX_ITEMS) {
			snprintf(err, errlen, "more than %d impersonation header lines", IMP_MAX_ITEMS);
			goto bad;
		}
		if ((what = value_problem(&value)) != NULL) {
			snprintf(err, errlen, "an %.*s header has %s", (int)(name.len > 64 ? 64 : name.len),
				 (const char *)name.ptr, what);
			goto bad;
		}
		if (is(&name, "impersonate-user")) {
			if (++nusers > 1) {
				why = "more than one Impersonate-User header";
				goto bad_why;
			}
			if ((r->user = arena_str(&a, value.ptr, value.len)) == NULL)
				goto malformed;
		} else if (is(&name, "impersonate-uid")) {
			if (++nuids > 1) {
				why = "more than one Impersonate-Uid header";
				goto bad_why;
			}
			if ((r->uid = arena_str(&a, value.ptr, value.len)) == NULL)
				goto malformed;
		} else if (is(&name, "impersonate-group")) {
			if ((r->groups[r->ngroups] = arena_str(&a, value.ptr, value.len)) == NULL)
				goto malformed;
			r->ngroups++;
		} else if (name.len > sizeof(EXTRA_PREFIX) - 1 &&
			   strncasecmp((const char *)name.ptr, EXTRA_PREFIX, sizeof(EXTRA_PREFIX) - 1) == 0) {
			char *key = arena_str(&a, name.ptr + sizeof(EXTRA_PREFIX) - 1, name.len - (sizeof(EXTRA_PREFIX) - 1));
			char *dec;

			if (key == NULL)
				goto malformed;
			for (char *c = key; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			dec = arena_str(&a, (const uint8_t *)key, strlen(key));
			if (dec == NULL)
				goto malformed;
			if (!path_unescape(dec))
				dec = key;
			if (dec[0] == '\0' || strlen(dec) != strcspn(dec, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"
								  "\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19"
								  "\x1a\x1b\x1c\x1d\x1e\x1f\x7f")) {
				why = "an Impersonate-Extra- key that is empty or decodes to a control character";
				goto bad_why;
			}
			r->extra[r->nextra].key = dec;
			if ((r->extra[r->nextra].value = arena_str(&a, value.ptr, value.len)) == NULL)
				goto malformed;
			r->nextra++;
		} else {
			snprintf(err, errlen, "%.*s is not an impersonation header the API server knows",
				 (int)(name.len > 64 ? 64 : name.len), (const char *)name.ptr);
			goto bad;
		}
		nitems++;
	}
	if (off != len)
		goto malformed;
	if (nitems == 0) {
		why = "no impersonation header";
		goto bad_why;
	}
	if (r->user == NULL) {
		/* the API server's BadRequest, word for word: Go's %v of the v1.ObjectReference list it built (groups,
		 * extras, uid; fields Kind Namespace Name UID APIVersion ResourceVersion FieldPath, space-separated) */
		size_t o = (size_t)snprintf(err, errlen, "requested [");

		for (size_t i = 0; i < r->ngroups; i++)
			o += (size_t)snprintf(err + (o < errlen ? o : errlen), o < errlen ? errlen - o : 0,
					      "%s{Group  %s    }", o > 11 ? " " : "", r->groups[i]);
		for (size_t i = 0; i < r->nextra; i++)
			o += (size_t)snprintf(err + (o < errlen ? o : errlen), o < errlen ? errlen - o : 0,
					      "%s{UserExtra  %s  authentication.k8s.io/v1  %s}", o > 11 ? " " : "",
					      r->extra[i].value, r->extra[i].key);
		if (r->uid != NULL)
			o += (size_t)snprintf(err + (o < errlen ? o : errlen), o < errlen ? errlen - o : 0,
					      "%s{UID  %s  authentication.k8s.io/v1  }", o > 11 ? " " : "", r->uid);
		snprintf(err + (o < errlen ? o : errlen), o < errlen ? errlen - o : 0,
			 "] without impersonating a user");
		goto bad;
	}
	{
		imp_item *it = r->items;
		size_t nslen;
		const char *saname;

		if (split_sa(r->user, &nslen, &saname)) {
			it->kind = IMP_SA;
			it->ns = arena_str(&a, (const uint8_t *)r->user + sizeof(SA_PREFIX) - 1, nslen);
			it->name = saname;
			if (it->ns == NULL)
				goto malformed;
		} else {
			it->kind = IMP_USER;
			it->name = r->user;
		}
		it++;
		for (size_t i = 0; i < r->ngroups; i++, it++) {
			it->kind = IMP_GROUP;
			it->name = r->groups[i];
		}
		for (size_t i = 0; i < r->nextra; i++, it++) {
			it->kind = IMP_EXTRA;
			it->key = r->extra[i].key;
			it->name = r->extra[i].value;
		}
		if (r->uid != NULL) {
			it->kind = IMP_UID;
			it->name = r->uid;
			it++;
		}
		r->nitems = (size_t)(it - r->items);
	}
	*out = r;
	return IMP_OK;
malformed:
	why = "malformed header list from HAProxy";
bad_why:
	snprintf(err, errlen, "%s", why);
bad:
	free(r);
	return IMP_E_BAD;
}

void imp_free(imp_request *r)
{
	free(r);
}

/* resource, subresource, API group and namespace of an item's review */
static void attrs(const imp_item *it, const char **res, const char **sub, const char **group, const char **ns)
{
	*sub = NULL;
	*ns = NULL;
	*group = "";
	switch (it->kind) {
	case IMP_USER: *res = "users"; break;
	case IMP_SA: *res = "serviceaccounts"; *ns = it->ns; break;
	case IMP_GROUP: *res = "groups"; break;
	case IMP_EXTRA: *res = "userextras"; *sub = it->key; *group = "authentication.k8s.io"; break;
	default: *res = "uids"; *group = "authentication.k8s.io"; break;
	}
}

char *imp_sar_body(const identity *who, const imp_item *it)
{
	const char *res, *sub, *group, *ns;
	cJSON *doc = cJSON_CreateObject(), *spec, *ra, *groups, *extra = NULL;
	char *s = NULL;
	bool have_auth = false;

	attrs(it, &res, &sub, &group, &ns);
	if (doc == NULL || cJSON_AddStringToObject(doc, "apiVersion", "authorization.k8s.io/v1") == NULL ||
	    cJSON_AddStringToObject(doc, "kind", "SubjectAccessReview") == NULL ||
	    (spec = cJSON_AddObjectToObject(doc, "spec")) == NULL ||
	    (ra = cJSON_AddObjectToObject(spec, "resourceAttributes")) == NULL ||
	    cJSON_AddStringToObject(ra, "verb", "impersonate") == NULL ||
	    cJSON_AddStringToObject(ra, "group", group) == NULL ||
	    cJSON_AddStringToObject(ra, "resource", res) == NULL ||
	    /* the filter's attributes carry the reference's API version: v1 for userextras and uids, none else */
	    (group[0] != '\0' && cJSON_AddStringToObject(ra, "version", "v1") == NULL) ||
	    (sub != NULL && cJSON_AddStringToObject(ra, "subresource", sub) == NULL) ||
	    (ns != NULL && cJSON_AddStringToObject(ra, "namespace", ns) == NULL) ||
	    cJSON_AddStringToObject(ra, "name", it->name) == NULL ||
	    cJSON_AddStringToObject(spec, "user", who->user) == NULL ||
	    (groups = cJSON_AddArrayToObject(spec, "groups")) == NULL)
		goto out;
	for (size_t i = 0; i < who->ngroups; i++) {
		cJSON *g = cJSON_CreateString(who->groups[i]);

		if (g == NULL || !cJSON_AddItemToArray(groups, g)) {
			cJSON_Delete(g);
			goto out;
		}
		have_auth = have_auth || strcmp(who->groups[i], "system:authenticated") == 0;
	}
	/* the API server's authenticator adds system:authenticated to every authenticated user (once) */
	if (!have_auth) {
		cJSON *g = cJSON_CreateString("system:authenticated");

		if (g == NULL || !cJSON_AddItemToArray(groups, g)) {
			cJSON_Delete(g);
			goto out;
		}
	}
	if (who->uid != NULL && cJSON_AddStringToObject(spec, "uid", who->uid) == NULL)
		goto out;
	for (size_t i = 0; i < who->nextra; i++) {
		cJSON *arr, *v;

		if (extra == NULL && (extra = cJSON_AddObjectToObject(spec, "extra")) == NULL)
			goto out;
		arr = cJSON_GetObjectItemCaseSensitive(extra, who->extra[i].key);
		if (arr == NULL && (arr = cJSON_AddArrayToObject(extra, who->extra[i].key)) == NULL)
			goto out;
		v = cJSON_CreateString(who->extra[i].value);
		if (v == NULL || !cJSON_AddItemToArray(arr, v)) {
			cJSON_Delete(v);
			goto out;
		}
	}
	s = cJSON_PrintUnformatted(doc);
out:
	cJSON_Delete(doc);
	return s;
}

/* Appends s as Go's %q does for the strings that get here (no control bytes: identity checks refused them),
 * replacing & < > as the API server's sanitizer does when sanitize is set. */
static size_t put_q(char *msg, size_t cap, size_t o, const char *s, bool sanitize)
{
	if (o < cap)
		msg[o] = '\0';
	o += (size_t)snprintf(msg + (o < cap ? o : cap), o < cap ? cap - o : 0, "\"");
	for (; *s; s++) {
		const char *rep = NULL;
		char one[2] = {*s, '\0'};

		if (*s == '"')
			rep = "\\\"";
		else if (*s == '\\')
			rep = "\\\\";
		else if (sanitize && *s == '&')
			rep = "&amp;";
		else if (sanitize && *s == '<')
			rep = "&lt;";
		else if (sanitize && *s == '>')
			rep = "&gt;";
		o += (size_t)snprintf(msg + (o < cap ? o : cap), o < cap ? cap - o : 0, "%s", rep ? rep : one);
	}
	o += (size_t)snprintf(msg + (o < cap ? o : cap), o < cap ? cap - o : 0, "\"");
	return o;
}

static size_t put_s(char *msg, size_t cap, size_t o, const char *s)
{
	return o + (size_t)snprintf(msg + (o < cap ? o : cap), o < cap ? cap - o : 0, "%s", s);
}

void imp_forbidden(const identity *who, const imp_item *it, const char *reason, char *msg, size_t cap)
{
	const char *res, *sub, *group, *ns;
	char rs[512];
	size_t o = 0;

	if (cap == 0)
		return;
	msg[0] = '\0';
	attrs(it, &res, &sub, &group, &ns);
	/* apierrors.NewForbidden(GroupResource, name, err): "<resource>[.<group>] "<name>" is forbidden: <err>" */
	o = put_s(msg, cap, o, res);
	if (group[0] != '\0') {
		o = put_s(msg, cap, o, ".");
		o = put_s(msg, cap, o, group);
	}
	o = put_s(msg, cap, o, " ");
	o = put_q(msg, cap, o, it->name, false);
	o = put_s(msg, cap, o, " is forbidden: User ");
	/* responsewriters.Forbidden: forbiddenMessage() goes through the HTML sanitizer */
	o = put_q(msg, cap, o, who->user, true);
	o = put_s(msg, cap, o, " cannot impersonate resource ");
	snprintf(rs, sizeof(rs), "%s%s%s", res, sub ? "/" : "", sub ? sub : "");
	o = put_q(msg, cap, o, rs, true);
	o = put_s(msg, cap, o, " in API group ");
	o = put_q(msg, cap, o, group, true);
	if (ns != NULL) {
		o = put_s(msg, cap, o, " in the namespace ");
		o = put_q(msg, cap, o, ns, true);
	} else {
		o = put_s(msg, cap, o, " at the cluster scope");
	}
	if (reason != NULL && reason[0] != '\0') {
		o = put_s(msg, cap, o, ": ");
		o = put_s(msg, cap, o, reason);
	}
	(void)o;
}
