/*
 * impersonate.h — --allow-client-impersonation: the client's own Impersonate-* headers, read and authorized the
 * way kube-apiserver's impersonation filter (k8s.io/apiserver pkg/endpoints/filters/impersonation.go) does.
 *
 * Owns: an imp_request (one allocation, imp_free()) parsed from HAProxy's req.hdrs_bin (the request's header
 * lines, each a SPOE varint length + name, then varint length + value, ending with two empty strings), the
 * SubjectAccessReview bodies built from it (malloc'd, the caller frees) and the API server's 403 wording for an
 * item a review denied. Nothing here does I/O or keeps state; any thread.
 *
 * Header rules, as the API server's: every header line is one value (Go's net/http keeps lines apart and the
 * filter never splits on commas); Impersonate-User names the user (system:serviceaccount:<ns>:<name>, when it
 * parses as one, is a service account); each Impersonate-Group line is a group; Impersonate-Extra-<key> lines
 * are values of the extra <key> (lower-cased, then percent-decoded; left as is when it does not decode);
 * Impersonate-Uid is the uid; groups, uid or extras without a user are refused (400, with the API server's own
 * message "requested [{Group  dev    }] without impersonating a user"). Stricter than the API server,
 * on purpose, and answered 400: two Impersonate-User or Impersonate-Uid lines (it takes the first), an empty
 * value or one a header cannot carry unchanged, an impersonate-* header it does not know (it ignores them; here
 * HAProxy strips them and the client would not get what it asked for), more than IMP_MAX_ITEMS items.
 *
 * Items, in the order the API server checks them: the user, each group, each extra value, the uid. Each is one
 * SubjectAccessReview (verb impersonate) for the authenticated identity: users / serviceaccounts in the
 * namespace (core group), groups (core group), userextras/<key> and uids (authentication.k8s.io).
 */
#ifndef KOS_IMPERSONATE_H
#define KOS_IMPERSONATE_H

#include <stddef.h>
#include <stdint.h>

#include "identity.h"

#define IMP_MAX_ITEMS 64          /* reviews one request may need; more is a 400, never a cut list */
#define IMP_MAX_HEADERS_BYTES 24576 /* conf/haproxy.cfg sends req.hdrs_bin only up to this size (else NULL) */

enum imp_kind { IMP_USER, IMP_SA, IMP_GROUP, IMP_EXTRA, IMP_UID };

typedef struct imp_item {
	enum imp_kind kind;
	const char *name;  /* the user, the service account's name, the group, the extra value or the uid */
	const char *ns;    /* IMP_SA: its namespace; else NULL */
	const char *key;   /* IMP_EXTRA: the extra's key (lower-case, percent-decoded); else NULL */
} imp_item;

typedef struct imp_request {
	const char *user;          /* as requested (a service account's full username) */
	const char *uid;           /* NULL = none requested */
	size_t ngroups;
	const char **groups;       /* in header order */
	size_t nextra;
	identity_extra *extra;     /* in header order; key lower-case, decoded */
	size_t nitems;
	imp_item *items;           /* the reviews, in the API server's order */
} imp_request;

enum imp_result {
	IMP_OK = 0,
	IMP_E_BAD = -1,    /* a request the API server (or this stricter reading) refuses: 400, err says why */
	IMP_E_NOMEM = -2,
};

/* Parses req.hdrs_bin p[0..len) (never read past len). IMP_OK with *out (free with imp_free()), or IMP_E_BAD
 * with one line in err (cut at errlen; the API server's message for a request without a user names the values,
 * as its own does), or IMP_E_NOMEM. *out written only
 * on success. A header block with no impersonate-* line at all is IMP_E_BAD too (HAProxy sends it only when
 * one is present). */
int imp_parse(const uint8_t *p, size_t len, imp_request **out, char *err, size_t errlen);
void imp_free(imp_request *r);

/* The SubjectAccessReview request body (JSON, malloc'd, NUL-terminated) asking whether who may impersonate it:
 * spec.user, spec.groups (who's groups plus system:authenticated, as the API server's authenticator adds it
 * before the impersonation filter runs), spec.uid, spec.extra, and resourceAttributes. NULL when out of memory. */
char *imp_sar_body(const identity *who, const imp_item *it);

/* The API server's message for an item its authorizer did not allow, e.g.
 *   users "carol" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope
 * with ": <reason>" appended when the review gave one. Written into msg[0..cap) (NUL-terminated, cut at cap). */
void imp_forbidden(const identity *who, const imp_item *it, const char *reason, char *msg, size_t cap);

#endif
