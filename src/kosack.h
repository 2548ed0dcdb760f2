/*
 * kosack.h — the ACK variables of one identity, as conf/CONTRACT.md names them: the Impersonate-Extra slot
 * lines x<slot>v<n> (each key into the slot HAProxy declared for it in xk), user, uid, ng and g0…, cip, sv and
 * the process-scope service-account token sa when HAProxy's copy is missing or another version. The verdict
 * (reason, status) is not written here: the handler writes it last (handler.c conclude).
 *
 * Owns: the variable names, made once (formatting "g%u" per group per request showed up in profiles). The
 * extras array is borrowed from the handler's config and must outlive it; the identity, the service-account
 * token value and the sink are the caller's. Read-only after kosack_create(): any number of SPOP worker
 * threads and the holding/reviewer threads call kosack_identity() at once, without locks.
 */
#ifndef KOS_KOSACK_H
#define KOS_KOSACK_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "handler.h"
#include "identity.h"
#include "satoken.h"

typedef struct kosack kosack;

/* max_groups: the g<N> lines HAProxy carries; client_ip: write cip; extras (borrowed): --extra-user-headers,
 * written after the identity's own extras. 0 or -1. */
int kosack_create(unsigned max_groups, bool client_ip, const config_kv *extras, size_t nextras, kosack **out);
/* NULL is a no-op. */
void kosack_destroy(kosack *a);

/* Writes id (already judged: valid, at most max_groups groups) through k for the request in, with sa's token.
 * Extras first, so that a key HAProxy has no slot for fails the request instead of dropping the value.
 * Returns HANDLER_ALLOW (*why HR_OK), or the status to answer with and *why (and for a refused identity or
 * extra, *detail: thread-local text, valid until this thread calls again). Variables already written stay
 * written: the caller's status decides. */
int kosack_identity(const kosack *a, const handler_input *in, const identity *id, const satoken_val *sa,
		    const handler_sink *k, enum handler_reason *why, const char **detail);

#endif
