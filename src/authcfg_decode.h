/*
 * authcfg_decode.h — the second step of reading an AuthenticationConfiguration (authcfg.h): the generic tree
 * (authcfg_load.h) into the authcfg_config structs, strictly like the API server's decoder
 * (serializer.EnableStrict): an unknown or duplicated field, a value of the wrong type or a NUL byte in a string
 * is refused with its field path, in Go's wording.
 *
 * Owns: nothing of its own. The strings and arrays it puts into the config belong to the config (authcfg_free());
 * an authcfg_side and the message belong to the caller (authcfg_decode_side_free(), free(msg->p)). Any thread.
 */
#ifndef KOS_AUTHCFG_DECODE_H
#define KOS_AUTHCFG_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "authcfg.h"
#include "authcfg_load.h"

/* What decoding saw that the config structs do not keep, for validation (authcfg_validate.h) to refuse or
 * quote. */
typedef struct authcfg_side {
	bool anonymous;              /* "anonymous" was given (refused at validation) */
	/* per jwt entry i, v[2i]: egressSelectorType (refused at validation); v[2i+1]: an audienceMatchPolicy other
	 * than MatchAny, kept for validation's message. NULL when none was given. */
	char **v;
	size_t n;
} authcfg_side;

/* Decodes root (may be NULL: refused) into c, which starts zeroed. Returns 0, or AUTHCFG_E_DECODE / _NOMEM with
 * the reason in *msg. *side and *msg are set in any case; c may be half-filled on failure (authcfg_free() it). */
int authcfg_decode(const authcfg_node *root, authcfg_config *c, authcfg_side *side, authcfg_sb *msg);
/* Frees what side holds. */
void authcfg_decode_side_free(authcfg_side *side);

#endif
