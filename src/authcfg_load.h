/*
 * authcfg_load.h — the first step of reading an AuthenticationConfiguration (authcfg.h): the file's bytes, and
 * YAML (libyaml) or JSON (cJSON) into one small generic tree that the strict decoder (authcfg_decode.h) reads.
 *
 * Why a generic tree first: both syntaxes then share one strict decoder (unknown/duplicate fields, types, paths),
 * and the decoder sees YAML's scalar resolution (a plain `yes` is a bool, `123` a number, as go-yaml v2 inside
 * sigs.k8s.io/yaml resolves them) exactly as the API server's JSON decoder would after YAML->JSON conversion.
 * The tree is bounded (depth, node count, members per mapping: AUTHCFG_MAX_*) as it is built.
 *
 * Also here, shared by the three steps: the bounded error-text builder authcfg_sb (Go's %q quoting included).
 *
 * Owns: a tree from authcfg_load_tree() belongs to the caller (authcfg_node_free()); every node owns its s and
 * key. An authcfg_sb owns p (free() it; zero-initialise to start). No globals, no locks: any thread.
 */
#ifndef KOS_AUTHCFG_LOAD_H
#define KOS_AUTHCFG_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authcfg.h"

#define AUTHCFG_QUOTED_MAX 200 /* bytes of a value shown in an error */

/* A growing string for error messages; oom is sticky (then p holds what fitted before). */
typedef struct authcfg_sb {
	char *p;
	size_t n, cap;
	bool oom;
} authcfg_sb;

void authcfg_sb_putn(authcfg_sb *b, const char *s, size_t n);
void authcfg_sb_puts(authcfg_sb *b, const char *s);
void authcfg_sb_printf(authcfg_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Go's %q of s[0..n), cut after AUTHCFG_QUOTED_MAX bytes. */
void authcfg_sb_quote(authcfg_sb *b, const char *s, size_t n);
/* s into err[errlen] when err is given. */
void authcfg_copy_err(char *err, size_t errlen, const char *s);
/* A NUL-terminated malloc'd copy of p[0..n), or NULL. */
char *authcfg_memdup0(const void *p, size_t n);

enum authcfg_nkind { AUTHCFG_N_NULL, AUTHCFG_N_STR, AUTHCFG_N_BOOL, AUTHCFG_N_NUM, AUTHCFG_N_SEQ, AUTHCFG_N_MAP };

typedef struct authcfg_node {
	enum authcfg_nkind kind;
	unsigned line;               /* 1-based; 0 = unknown (JSON) */
	char *s;                     /* scalar text (any scalar kind); NUL-terminated copy */
	size_t len;
	char *key;                   /* member of a mapping: its key */
	size_t keylen;
	unsigned keyline;            /* the key's line (the value may start on a later one) */
	struct authcfg_node *child, *last, *next;
	size_t n;                    /* children */
} authcfg_node;

/* Frees n, its children and its later siblings. NULL is a no-op. */
void authcfg_node_free(authcfg_node *n);
/* The kind as Go's JSON decoder names it in its errors ("string", "array", "object"...). */
const char *authcfg_node_kind_name(enum authcfg_nkind k);

/* The tree of the document p[0..len) (1 <= len <= AUTHCFG_MAX_BYTES): JSON when its first non-blank byte is
 * '{', else one YAML document. *root is set in any case (NULL for an empty document or on failure); the caller
 * frees it. Returns 0, or AUTHCFG_E_SYNTAX / _DECODE / _NOMEM with the reason in *msg (the caller frees msg->p,
 * which may be NULL). */
int authcfg_load_tree(const uint8_t *p, size_t len, authcfg_node **root, authcfg_sb *msg);

/* The whole file at path into *buf (malloc'd, the caller frees) and *len: at most AUTHCFG_MAX_BYTES + 1 bytes
 * are read, so that a larger file shows as one byte too long. 0, or AUTHCFG_E_IO / _NOMEM with err set. */
int authcfg_load_read_file(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen);

#endif
