/*
 * authcfg_validate.h — the third step of reading an AuthenticationConfiguration (authcfg.h): the API server's
 * validation rules (k8s.io/apiserver pkg/apis/apiserver/validation), in its order and wording, over a decoded
 * config. Every error is collected, each formatted the way k8s.io/apimachinery's field.Error prints it, and
 * several are joined like an aggregate ("[e1, e2]"). The rules and their sources: docs/authentication-config.md.
 *
 * OpenSSL appears here only to check that certificateAuthority holds at least one parseable certificate, as the
 * API server does at validation time (cert.NewPoolFromBytes), so a broken CA fails at load and not at the first
 * discovery attempt.
 *
 * Owns: nothing; the message belongs to the caller (free(msg->p)). Reads c and side only. Any thread.
 */
#ifndef KOS_AUTHCFG_VALIDATE_H
#define KOS_AUTHCFG_VALIDATE_H

#include "authcfg.h"
#include "authcfg_decode.h"
#include "authcfg_load.h"

/* 0 when c is valid; AUTHCFG_E_INVALID with the errors in *msg (msg->p NULL or msg->oom: none could be
 * written); AUTHCFG_E_NOMEM. */
int authcfg_validate(const authcfg_config *c, const authcfg_side *side, authcfg_sb *msg);

#endif
