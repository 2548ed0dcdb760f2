/*
 * authcfg.c — AuthenticationConfiguration: YAML/JSON -> a small generic tree -> strict decode -> validation.
 *
 * Why a generic tree first: both syntaxes then share one strict decoder (unknown/duplicate fields, types, paths),
 * and the decoder sees YAML's scalar resolution (a plain `yes` is a bool, `123` a number, as go-yaml v2 inside
 * sigs.k8s.io/yaml resolves them) exactly as the API server's JSON decoder would after YAML->JSON conversion.
 * The tree is bounded (depth, node count, members per mapping) before the decoder looks at it.
 *
 * OpenSSL appears here only to check that certificateAuthority holds at least one parseable certificate, as the
 * API server does at validation time (cert.NewPoolFromBytes), so a broken CA fails at load and not at the first
 * discovery attempt.
 */
#include "authcfg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml.h>

#define MAX_STRING (64u * 1024)   /* any string but certificateAuthority */
#define MAX_QUOTED 200            /* bytes of a value shown in an error */
#define PATH_MAX_LEN 512

const char *authcfg_strerror(int err)
{
	switch (err) {
	case AUTHCFG_OK: return "ok";
	case AUTHCFG_E_SYNTAX: return "syntax error";
	case AUTHCFG_E_DECODE: return "decoding error";
	case AUTHCFG_E_INVALID: return "invalid configuration";
	case AUTHCFG_E_TOO_LARGE: return "configuration empty or too large";
	case AUTHCFG_E_NOMEM: return "out of memory";
	case AUTHCFG_E_IO: return "cannot read the configuration file";
	default: return "unknown error";
	}
}

/* ---- a small string builder (bounded) ---- */

typedef struct sb {
	char *p;
	size_t n, cap;
	bool oom;
} sb;

static void sb_putn(sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->cap - b->n <= n) {
		size_t nc = b->cap ? b->cap : 128;
		char *q;

		while (nc - b->n <= n)
			nc *= 2;
		q = realloc(b->p, nc);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_puts(sb *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_putn(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Go's %q for the bytes we meet in practice: printable ASCII as is, the usual escapes, everything else \xNN
 * (Go would print valid non-ASCII UTF-8 as is). Long values are cut: errors stay one readable line. */
static void sb_quote(sb *b, const char *s, size_t n)
{
	size_t lim = n > MAX_QUOTED ? MAX_QUOTED : n;

	sb_putn(b, "\"", 1);
	for (size_t i = 0; i < lim; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[8];

		switch (c) {
		case '"': sb_putn(b, "\\\"", 2); break;
		case '\\': sb_putn(b, "\\\\", 2); break;
		case '\n': sb_putn(b, "\\n", 2); break;
		case '\t': sb_putn(b, "\\t", 2); break;
		case '\r': sb_putn(b, "\\r", 2); break;
		case '\a': sb_putn(b, "\\a", 2); break;
		case '\b': sb_putn(b, "\\b", 2); break;
		case '\f': sb_putn(b, "\\f", 2); break;
		case '\v': sb_putn(b, "\\v", 2); break;
		default:
			if (c >= 0x20 && c < 0x7f) {
				sb_putn(b, (const char *)&c, 1);
			} else {
				snprintf(e, sizeof(e), "\\x%02x", c);
				sb_putn(b, e, 4);
			}
		}
	}
	sb_putn(b, "\"", 1);
	if (lim < n)
		sb_puts(b, "...");
}

static void copy_err(char *err, size_t errlen, const char *s)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", s);
}

/* ---- the generic tree ---- */

enum nkind { N_NULL, N_STR, N_BOOL, N_NUM, N_SEQ, N_MAP };

typedef struct node {
	enum nkind kind;
	unsigned line;               /* 1-based; 0 = unknown (JSON) */
	char *s;                     /* scalar text (any scalar kind); NUL-terminated copy */
	size_t len;
	char *key;                   /* member of a mapping: its key */
	size_t keylen;
	unsigned keyline;            /* the key's line (the value may start on a later one) */
	struct node *child, *last, *next;
	size_t n;                    /* children */
} node;

static void node_free(node *n)
{
	while (n) {
		node *next = n->next;

		node_free(n->child);
		free(n->s);
		free(n->key);
		free(n);
		n = next;
	}
}

static const char *kind_name(enum nkind k)
{
	switch (k) {
	case N_NULL: return "null";
	case N_STR: return "string";
	case N_BOOL: return "bool";
	case N_NUM: return "number";
	case N_SEQ: return "array";
	default: return "object";
	}
}

static char *memdup0(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		if (n)
			memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

typedef struct builder {
	size_t nodes;
	int rc;                      /* first failure */
	sb msg;
} builder;

static void bfail(builder *b, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bfail(builder *b, int rc, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;

	if (b->rc)
		return;
	b->rc = rc;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	sb_puts(&b->msg, tmp);
}

static node *node_new(builder *b, enum nkind k, unsigned line)
{
	node *n;

	if (++b->nodes > AUTHCFG_MAX_NODES) {
		bfail(b, AUTHCFG_E_DECODE, "document has more than %u values", AUTHCFG_MAX_NODES);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		bfail(b, AUTHCFG_E_NOMEM, "out of memory");
		return NULL;
	}
	n->kind = k;
	n->line = line;
	return n;
}

/* Appends child c to parent p (taking key if p is a mapping). */
static bool node_add(builder *b, node *p, node *c, char *key, size_t keylen, unsigned keyline)
{
	if (p->n >= (p->kind == N_MAP ? AUTHCFG_MAX_MEMBERS : (size_t)AUTHCFG_MAX_NODES)) {
		bfail(b, AUTHCFG_E_DECODE, "a mapping has more than %u members (line %u)", AUTHCFG_MAX_MEMBERS, c->line);
		free(key);
		node_free(c);
		return false;
	}
	c->key = key;
	c->keylen = keylen;
	c->keyline = keyline ? keyline : c->line;
	if (p->last)
		p->last->next = c;
	else
		p->child = c;
	p->last = c;
	p->n++;
	return true;
}

/* ---- YAML: plain scalar resolution as go-yaml v2 does it (YAML 1.1 booleans, numbers with '_') ---- */

static bool in_list(const char *s, size_t n, const char *const *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (strlen(list[i]) == n && memcmp(list[i], s, n) == 0)
			return true;
	return false;
}

static bool is_digit_in(char c, int base)
{
	if (base == 16)
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
	return c >= '0' && c < '0' + base;
}

static bool yaml_number(const char *in, size_t n)
{
	char buf[128];
	size_t m = 0, i = 0;

	for (size_t k = 0; k < n; k++) {
		if (in[k] == '_')
			continue;
		if (m + 1 >= sizeof(buf))
			return false; /* long digit strings are still floats to Go; not worth the bytes: a string here */
		buf[m++] = in[k];
	}
	buf[m] = '\0';
	if (m && (buf[0] == '+' || buf[0] == '-'))
		i = 1;
	if (m - i > 2 && buf[i] == '0' && (buf[i + 1] == 'x' || buf[i + 1] == 'X' || buf[i + 1] == 'o' ||
					   buf[i + 1] == 'O' || buf[i + 1] == 'b' || buf[i + 1] == 'B')) {
		int base = (buf[i + 1] | 0x20) == 'x' ? 16 : (buf[i + 1] | 0x20) == 'o' ? 8 : 2;

		for (size_t k = i + 2; k < m; k++)
			if (!is_digit_in(buf[k], base))
				return false;
		return true;
	}
	/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
	if (i < m && buf[i] == '.') {
		size_t d = ++i;

		while (i < m && is_digit_in(buf[i], 10))
			i++;
		if (i == d)
			return false;
	} else {
		size_t d = i;

		while (i < m && is_digit_in(buf[i], 10))
			i++;
		if (i == d)
			return false;
		if (i < m && buf[i] == '.') {
			i++;
			while (i < m && is_digit_in(buf[i], 10))
				i++;
		}
	}
	if (i < m && (buf[i] == 'e' || buf[i] == 'E')) {
		size_t d;

		i++;
		if (i < m && (buf[i] == '+' || buf[i] == '-'))
			i++;
		d = i;
		while (i < m && is_digit_in(buf[i], 10))
			i++;
		if (i == d)
			return false;
	}
	return i == m;
}

static enum nkind yaml_resolve_plain(const char *s, size_t n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	static const char *const bools[] = {"y",    "Y",    "yes",   "Yes",   "YES",   "n",     "N",   "no",
					    "No",   "NO",   "true",  "True",  "TRUE",  "false", "False", "FALSE",
					    "on",   "On",   "ON",    "off",   "Off",   "OFF"};
	static const char *const special[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf", "+.INF",
					      "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN"};

	if (in_list(s, n, nulls, sizeof(nulls) / sizeof(nulls[0])))
		return N_NULL;
	if (in_list(s, n, bools, sizeof(bools) / sizeof(bools[0])))
		return N_BOOL;
	if (in_list(s, n, special, sizeof(special) / sizeof(special[0])))
		return N_NUM;
	if (strchr("+-.0123456789", s[0]) && yaml_number(s, n))
		return N_NUM;
	return N_STR;
}

#define YAML_STR_TAG "tag:yaml.org,2002:str"

/* Builds the tree of the one YAML document in p[0..len). */
static node *yaml_build(builder *b, const uint8_t *p, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	node *stack[AUTHCFG_MAX_DEPTH + 1];
	char *pkey[AUTHCFG_MAX_DEPTH + 1];  /* a mapping's pending key, NULL when the next scalar is a key */
	size_t pkeylen[AUTHCFG_MAX_DEPTH + 1];
	unsigned pkeyline[AUTHCFG_MAX_DEPTH + 1];
	size_t depth = 0, docs = 0;
	node *root = NULL;
	bool done = false;

	if (!yaml_parser_initialize(&parser)) {
		bfail(b, AUTHCFG_E_NOMEM, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, p, len);
	while (!done && !b->rc) {
		node *n = NULL;
		unsigned line;

		if (!yaml_parser_parse(&parser, &ev)) {
			bfail(b, AUTHCFG_E_SYNTAX, "YAML syntax error: %s%s%s (line %zu, column %zu)",
			      parser.problem ? parser.problem : "malformed", parser.context ? " " : "",
			      parser.context ? parser.context : "", parser.problem_mark.line + 1,
			      parser.problem_mark.column + 1);
			break;
		}
		line = (unsigned)ev.start_mark.line + 1;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				bfail(b, AUTHCFG_E_DECODE, "more than one YAML document (line %u)", line);
			break;
		case YAML_ALIAS_EVENT:
			bfail(b, AUTHCFG_E_DECODE, "YAML aliases are not supported (line %u)", line);
			break;
		case YAML_SCALAR_EVENT: {
			const char *v = (const char *)ev.data.scalar.value;
			size_t vl = ev.data.scalar.length;
			const char *tag = (const char *)ev.data.scalar.tag;
			enum nkind k;

			if (tag && strcmp(tag, YAML_STR_TAG) != 0 && strcmp(tag, "!") != 0) {
				bfail(b, AUTHCFG_E_DECODE, "YAML tag %.64s is not supported (line %u)", tag, line);
				break;
			}
			if (depth && stack[depth - 1]->kind == N_MAP && !pkey[depth - 1]) {
				pkey[depth - 1] = memdup0(v, vl);
				pkeylen[depth - 1] = vl;
				pkeyline[depth - 1] = line;
				if (!pkey[depth - 1])
					bfail(b, AUTHCFG_E_NOMEM, "out of memory");
				break;
			}
			if (!tag && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
				k = yaml_resolve_plain(v, vl);
			else
				k = N_STR;
			n = node_new(b, k, line);
			if (n) {
				n->s = memdup0(v, vl);
				n->len = vl;
				if (!n->s) {
					node_free(n);
					n = NULL;
					bfail(b, AUTHCFG_E_NOMEM, "out of memory");
				}
			}
			break;
		}
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			bool seq = ev.type == YAML_SEQUENCE_START_EVENT;
			const char *tag = (const char *)(seq ? ev.data.sequence_start.tag : ev.data.mapping_start.tag);

			if (tag && strcmp(tag, seq ? "tag:yaml.org,2002:seq" : "tag:yaml.org,2002:map") != 0) {
				bfail(b, AUTHCFG_E_DECODE, "YAML tag %.64s is not supported (line %u)", tag, line);
				break;
			}
			if (depth && stack[depth - 1]->kind == N_MAP && !pkey[depth - 1]) {
				bfail(b, AUTHCFG_E_DECODE, "mapping keys must be strings (line %u)", line);
				break;
			}
			if (depth >= AUTHCFG_MAX_DEPTH) {
				bfail(b, AUTHCFG_E_DECODE, "nesting deeper than %u (line %u)", AUTHCFG_MAX_DEPTH, line);
				break;
			}
			n = node_new(b, seq ? N_SEQ : N_MAP, line);
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth == 0) {
				bfail(b, AUTHCFG_E_SYNTAX, "YAML syntax error (line %u)", line);
				break;
			}
			depth--;
			free(pkey[depth]); /* NULL unless the parser ended a mapping on a key, which it does not */
			pkey[depth] = NULL;
			break;
		default:
			break;
		}
		if (n) {
			/* attach to the parent, or make it the root */
			if (depth) {
				node *par = stack[depth - 1];
				char *k = NULL;
				size_t kl = 0;
				unsigned kline = 0;

				if (par->kind == N_MAP) {
					k = pkey[depth - 1];
					kl = pkeylen[depth - 1];
					kline = pkeyline[depth - 1];
					pkey[depth - 1] = NULL;
				}
				if (!node_add(b, par, n, k, kl, kline))
					n = NULL;
			} else if (!root) {
				root = n;
			} else {
				node_free(n);
				n = NULL;
				bfail(b, AUTHCFG_E_DECODE, "more than one YAML document (line %u)", line);
			}
			if (n && (n->kind == N_SEQ || n->kind == N_MAP)) {
				stack[depth] = n;
				pkey[depth] = NULL;
				depth++;
			}
		}
		yaml_event_delete(&ev);
	}
	while (depth) {
		depth--;
		free(pkey[depth]);
	}
	yaml_parser_delete(&parser);
	if (b->rc) {
		node_free(root);
		return NULL;
	}
	return root;
}

/* ---- JSON ---- */

/* cJSON turns \u0000 into a string that silently ends early, and takes raw control bytes inside strings: both
 * are refused before it runs. */
static bool json_prescan(const uint8_t *p, size_t len, builder *b)
{
	bool in = false;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];

		if (c == 0) {
			bfail(b, AUTHCFG_E_SYNTAX, "invalid JSON: NUL byte at offset %zu", i);
			return false;
		}
		if (!in) {
			if (c == '"')
				in = true;
			continue;
		}
		if (c < 0x20) {
			bfail(b, AUTHCFG_E_SYNTAX, "invalid JSON: control character in a string at offset %zu", i);
			return false;
		}
		if (c == '"') {
			in = false;
		} else if (c == '\\') {
			if (len - i > 5 && p[i + 1] == 'u' && p[i + 2] == '0' && p[i + 3] == '0' && p[i + 4] == '0' &&
			    p[i + 5] == '0') {
				bfail(b, AUTHCFG_E_DECODE, "\\u0000 in a JSON string is not supported (offset %zu)", i);
				return false;
			}
			i++; /* the escaped byte cannot end the string */
		}
	}
	return true;
}

static node *json_convert(builder *b, const cJSON *j, unsigned depth)
{
	node *n;
	enum nkind k;

	if (cJSON_IsNull(j))
		k = N_NULL;
	else if (cJSON_IsBool(j))
		k = N_BOOL;
	else if (cJSON_IsNumber(j))
		k = N_NUM;
	else if (cJSON_IsString(j))
		k = N_STR;
	else if (cJSON_IsArray(j))
		k = N_SEQ;
	else if (cJSON_IsObject(j))
		k = N_MAP;
	else {
		bfail(b, AUTHCFG_E_SYNTAX, "invalid JSON");
		return NULL;
	}
	if ((k == N_SEQ || k == N_MAP) && depth >= AUTHCFG_MAX_DEPTH) {
		bfail(b, AUTHCFG_E_DECODE, "nesting deeper than %u", AUTHCFG_MAX_DEPTH);
		return NULL;
	}
	n = node_new(b, k, 0);
	if (!n)
		return NULL;
	if (k == N_STR) {
		n->len = strlen(j->valuestring);
		n->s = memdup0(j->valuestring, n->len);
		if (!n->s) {
			bfail(b, AUTHCFG_E_NOMEM, "out of memory");
			node_free(n);
			return NULL;
		}
	} else if (k == N_SEQ || k == N_MAP) {
		for (const cJSON *c = j->child; c; c = c->next) {
			node *cn = json_convert(b, c, depth + 1);
			char *key = NULL;
			size_t kl = 0;

			if (!cn)
				break;
			if (k == N_MAP) {
				kl = strlen(c->string);
				key = memdup0(c->string, kl);
				if (!key) {
					bfail(b, AUTHCFG_E_NOMEM, "out of memory");
					node_free(cn);
					break;
				}
			}
			if (!node_add(b, n, cn, key, kl, 0))
				break;
		}
		if (b->rc) {
			node_free(n);
			return NULL;
		}
	}
	return n;
}

static node *json_build(builder *b, const uint8_t *p, size_t len)
{
	const char *end = NULL;
	cJSON *j;
	node *n;

	if (!json_prescan(p, len, b))
		return NULL;
	j = cJSON_ParseWithLengthOpts((const char *)p, len, &end, 0);
	if (!j) {
		bfail(b, AUTHCFG_E_SYNTAX, "invalid JSON");
		return NULL;
	}
	while (end && (size_t)(end - (const char *)p) < len &&
	       (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (!end || (size_t)(end - (const char *)p) != len) {
		cJSON_Delete(j);
		bfail(b, AUTHCFG_E_SYNTAX, "invalid JSON: trailing data");
		return NULL;
	}
	n = json_convert(b, j, 0);
	cJSON_Delete(j);
	return n;
}

/* ---- strict decoding into authcfg_config ---- */

typedef struct dec {
	char path[PATH_MAX_LEN];
	size_t plen;
	int rc;
	sb msg;
	bool anonymous;              /* "anonymous" was given (refused at validation) */
	/* per jwt entry i, side[2i]: egressSelectorType (refused at validation); side[2i+1]: an audienceMatchPolicy
	 * other than MatchAny, kept for validation's message */
	char **side;
	size_t nside;
} dec;

static size_t path_push(dec *d, const char *child)
{
	size_t old = d->plen;
	int n = snprintf(d->path + d->plen, sizeof(d->path) - d->plen, "%s%s", d->plen ? "." : "", child);

	if (n > 0)
		d->plen += (size_t)n < sizeof(d->path) - d->plen ? (size_t)n : sizeof(d->path) - d->plen - 1;
	return old;
}

static size_t path_index(dec *d, size_t i)
{
	size_t old = d->plen;
	int n = snprintf(d->path + d->plen, sizeof(d->path) - d->plen, "[%zu]", i);

	if (n > 0)
		d->plen += (size_t)n < sizeof(d->path) - d->plen ? (size_t)n : sizeof(d->path) - d->plen - 1;
	return old;
}

static void path_pop(dec *d, size_t old)
{
	d->plen = old;
	d->path[old] = '\0';
}

static void line_suffix(sb *b, unsigned line)
{
	if (line)
		sb_printf(b, " (line %u)", line);
}

static int dfail_type(dec *d, const node *n, const char *want)
{
	if (d->rc)
		return d->rc;
	d->rc = AUTHCFG_E_DECODE;
	sb_printf(&d->msg, "cannot unmarshal %s into field ", kind_name(n->kind));
	sb_quote(&d->msg, d->path, d->plen);
	sb_printf(&d->msg, " of type %s", want);
	line_suffix(&d->msg, n->line);
	return d->rc;
}

static int dfail_field(dec *d, const char *what, const node *m)
{
	sb path = {0};

	if (d->rc)
		return d->rc;
	d->rc = AUTHCFG_E_DECODE;
	sb_putn(&path, d->path, d->plen);
	if (d->plen)
		sb_putn(&path, ".", 1);
	sb_putn(&path, m->key, m->keylen > MAX_QUOTED ? MAX_QUOTED : m->keylen);
	sb_printf(&d->msg, "strict decoding error: %s field ", what);
	sb_quote(&d->msg, path.p ? path.p : "", path.n);
	line_suffix(&d->msg, m->keyline);
	free(path.p);
	if (path.oom)
		d->rc = AUTHCFG_E_NOMEM;
	return d->rc;
}

static int dfail_nomem(dec *d)
{
	if (!d->rc)
		d->rc = AUTHCFG_E_NOMEM;
	return d->rc;
}

static bool key_is(const node *m, const char *k)
{
	size_t n = strlen(k);

	return m->keylen == n && memcmp(m->key, k, n) == 0;
}

/* Strict decoding refuses a member whose key an earlier member of the same mapping already used. */
static int check_dups(dec *d, const node *map)
{
	for (const node *m = map->child; m; m = m->next)
		for (const node *o = map->child; o != m; o = o->next)
			if (o->keylen == m->keylen && memcmp(o->key, m->key, m->keylen) == 0)
				return dfail_field(d, "duplicate", m);
	return 0;
}

/* Decodes a string member. null leaves *out NULL; "" gives NULL unless keep_empty (a *string in the Go type). */
static int get_str(dec *d, const node *n, const char *field, char **out, bool keep_empty, size_t max)
{
	size_t old = path_push(d, field);
	int rc = 0;

	if (n->kind == N_NULL)
		goto out;
	if (n->kind != N_STR) {
		rc = dfail_type(d, n, "string");
		goto out;
	}
	if (memchr(n->s, '\0', n->len)) {
		d->rc = rc = AUTHCFG_E_DECODE;
		sb_putn(&d->msg, d->path, d->plen);
		sb_puts(&d->msg, ": NUL bytes are not supported");
		line_suffix(&d->msg, n->line);
		goto out;
	}
	if (n->len > max) {
		d->rc = rc = AUTHCFG_E_DECODE;
		sb_putn(&d->msg, d->path, d->plen);
		sb_printf(&d->msg, ": Too long: may not be more than %zu bytes", max);
		line_suffix(&d->msg, n->line);
		goto out;
	}
	if (n->len == 0 && !keep_empty)
		goto out;
	free(*out);
	*out = memdup0(n->s, n->len);
	if (!*out)
		rc = dfail_nomem(d);
out:
	path_pop(d, old);
	return rc;
}

static int get_expr(dec *d, const node *n, const char *field, authcfg_expr *e, enum authcfg_expr_kind kind)
{
	int rc = get_str(d, n, field, &e->expression, false, MAX_STRING);

	e->kind = kind;
	if (!rc && e->expression) {
		size_t old = path_push(d, field);

		free(e->path);
		e->path = memdup0(d->path, d->plen);
		path_pop(d, old);
		if (!e->path)
			rc = dfail_nomem(d);
	}
	return rc;
}

/* A sequence member: null = empty; otherwise a sequence of at most max entries (*count set). */
static int get_seq(dec *d, const node *n, const char *field, size_t max, size_t *count, bool *too_many)
{
	size_t old = path_push(d, field);
	int rc = 0;

	*count = 0;
	*too_many = false;
	if (n->kind == N_NULL)
		goto out;
	if (n->kind != N_SEQ) {
		rc = dfail_type(d, n, "array");
		goto out;
	}
	*count = n->n;
	if (n->n > max) {
		/* The API server's wording (field.TooMany); reported as a validation error. */
		d->rc = rc = AUTHCFG_E_INVALID;
		sb_putn(&d->msg, d->path, d->plen);
		sb_printf(&d->msg, ": Too many: %zu: must have at most %zu items", n->n, max);
		*too_many = true;
	}
out:
	path_pop(d, old);
	return rc;
}

static bool want_map(dec *d, const node *n, const char *gotype)
{
	if (n->kind == N_MAP)
		return true;
	if (n->kind != N_NULL)
		dfail_type(d, n, gotype);
	return false;
}

static int dec_issuer(dec *d, const node *n, authcfg_issuer *is, char **side)
{
	size_t old = path_push(d, "issuer");

	if (!want_map(d, n, "Issuer") || check_dups(d, n))
		goto out;
	for (const node *m = n->child; m && !d->rc; m = m->next) {
		if (key_is(m, "url")) {
			get_str(d, m, "url", &is->url, false, MAX_STRING);
		} else if (key_is(m, "discoveryURL")) {
			get_str(d, m, "discoveryURL", &is->discovery_url, false, MAX_STRING);
		} else if (key_is(m, "certificateAuthority")) {
			get_str(d, m, "certificateAuthority", &is->certificate_authority, false, AUTHCFG_MAX_BYTES);
		} else if (key_is(m, "audienceMatchPolicy")) {
			char *pol = NULL;

			if (!get_str(d, m, "audienceMatchPolicy", &pol, false, MAX_STRING) && pol) {
				is->audience_match_any = strcmp(pol, "MatchAny") == 0;
				if (!is->audience_match_any) {
					free(side[1]);
					side[1] = pol;
					pol = NULL;
				}
			}
			free(pol);
		} else if (key_is(m, "egressSelectorType")) {
			get_str(d, m, "egressSelectorType", &side[0], false, MAX_STRING);
		} else if (key_is(m, "audiences")) {
			size_t cnt = 0;
			bool tm;

			if (get_seq(d, m, "audiences", AUTHCFG_MAX_LIST, &cnt, &tm) || !cnt)
				continue;
			is->audiences = calloc(cnt, sizeof(char *));
			if (!is->audiences) {
				dfail_nomem(d);
				break;
			}
			size_t o2 = path_push(d, "audiences"), i = 0;
			for (const node *a = m->child; a && !d->rc; a = a->next, i++) {
				size_t o3 = path_index(d, i);

				if (a->kind == N_NULL) {
					is->audiences[i] = memdup0("", 0); /* Go: null into a string leaves "" */
				} else if (a->kind != N_STR) {
					dfail_type(d, a, "string");
				} else if (memchr(a->s, '\0', a->len) || a->len > MAX_STRING) {
					d->rc = AUTHCFG_E_DECODE;
					sb_putn(&d->msg, d->path, d->plen);
					sb_puts(&d->msg, ": NUL bytes or too long");
					line_suffix(&d->msg, a->line);
				} else {
					is->audiences[i] = memdup0(a->s, a->len);
				}
				if (!d->rc && !is->audiences[i])
					dfail_nomem(d);
				path_pop(d, o3);
			}
			is->naudiences = i;
			path_pop(d, o2);
		} else {
			dfail_field(d, "unknown", m);
		}
	}
out:
	path_pop(d, old);
	return d->rc;
}

static int dec_prefixed(dec *d, const node *n, const char *field, authcfg_mapping *mp, enum authcfg_expr_kind k,
			bool has_prefix)
{
	size_t old = path_push(d, field);

	if (!want_map(d, n, has_prefix ? "PrefixedClaimOrExpression" : "ClaimOrExpression") || check_dups(d, n))
		goto out;
	for (const node *m = n->child; m && !d->rc; m = m->next) {
		if (key_is(m, "claim"))
			get_str(d, m, "claim", &mp->claim, false, MAX_STRING);
		else if (has_prefix && key_is(m, "prefix"))
			get_str(d, m, "prefix", &mp->prefix, true, MAX_STRING);
		else if (key_is(m, "expression"))
			get_expr(d, m, "expression", &mp->expr, k);
		else
			dfail_field(d, "unknown", m);
	}
out:
	path_pop(d, old);
	return d->rc;
}

/* Sequences of objects: calls one(d, element, index) for each, with the path at "<field>[i]". */
typedef int (*elem_fn)(dec *d, const node *e, size_t i, void *arr);

static int dec_list(dec *d, const node *m, const char *field, size_t elem_size, void **arr, size_t *count,
		    elem_fn one)
{
	size_t cnt = 0, i = 0;
	bool tm;

	if (get_seq(d, m, field, AUTHCFG_MAX_LIST, &cnt, &tm) || !cnt)
		return d->rc;
	*arr = calloc(cnt, elem_size);
	if (!*arr)
		return dfail_nomem(d);
	*count = cnt;
	size_t old = path_push(d, field);
	for (const node *e = m->child; e && !d->rc; e = e->next, i++) {
		size_t o2 = path_index(d, i);

		one(d, e, i, *arr);
		path_pop(d, o2);
	}
	path_pop(d, old);
	return d->rc;
}

static int one_claim_rule(dec *d, const node *e, size_t i, void *arr)
{
	authcfg_claim_rule *r = (authcfg_claim_rule *)arr + i;

	if (!want_map(d, e, "ClaimValidationRule") || check_dups(d, e))
		return d->rc;
	for (const node *m = e->child; m && !d->rc; m = m->next) {
		if (key_is(m, "claim"))
			get_str(d, m, "claim", &r->claim, false, MAX_STRING);
		else if (key_is(m, "requiredValue"))
			get_str(d, m, "requiredValue", &r->required_value, false, MAX_STRING);
		else if (key_is(m, "expression"))
			get_expr(d, m, "expression", &r->expr, AUTHCFG_EXPR_CLAIM_VALIDATION);
		else if (key_is(m, "message"))
			get_str(d, m, "message", &r->message, false, MAX_STRING);
		else
			dfail_field(d, "unknown", m);
	}
	r->expr.kind = AUTHCFG_EXPR_CLAIM_VALIDATION;
	return d->rc;
}

static int one_extra(dec *d, const node *e, size_t i, void *arr)
{
	authcfg_extra *x = (authcfg_extra *)arr + i;

	x->value.kind = AUTHCFG_EXPR_EXTRA;
	if (!want_map(d, e, "ExtraMapping") || check_dups(d, e))
		return d->rc;
	for (const node *m = e->child; m && !d->rc; m = m->next) {
		if (key_is(m, "key"))
			get_str(d, m, "key", &x->key, false, MAX_STRING);
		else if (key_is(m, "valueExpression"))
			get_expr(d, m, "valueExpression", &x->value, AUTHCFG_EXPR_EXTRA);
		else
			dfail_field(d, "unknown", m);
	}
	return d->rc;
}

static int one_user_rule(dec *d, const node *e, size_t i, void *arr)
{
	authcfg_user_rule *r = (authcfg_user_rule *)arr + i;

	r->expr.kind = AUTHCFG_EXPR_USER_VALIDATION;
	if (!want_map(d, e, "UserValidationRule") || check_dups(d, e))
		return d->rc;
	for (const node *m = e->child; m && !d->rc; m = m->next) {
		if (key_is(m, "expression"))
			get_expr(d, m, "expression", &r->expr, AUTHCFG_EXPR_USER_VALIDATION);
		else if (key_is(m, "message"))
			get_str(d, m, "message", &r->message, false, MAX_STRING);
		else
			dfail_field(d, "unknown", m);
	}
	return d->rc;
}

static int dec_mappings(dec *d, const node *n, authcfg_issuer *is)
{
	size_t old = path_push(d, "claimMappings");

	if (!want_map(d, n, "ClaimMappings") || check_dups(d, n))
		goto out;
	for (const node *m = n->child; m && !d->rc; m = m->next) {
		if (key_is(m, "username"))
			dec_prefixed(d, m, "username", &is->username, AUTHCFG_EXPR_USERNAME, true);
		else if (key_is(m, "groups"))
			dec_prefixed(d, m, "groups", &is->groups, AUTHCFG_EXPR_GROUPS, true);
		else if (key_is(m, "uid"))
			dec_prefixed(d, m, "uid", &is->uid, AUTHCFG_EXPR_UID, false);
		else if (key_is(m, "extra"))
			dec_list(d, m, "extra", sizeof(authcfg_extra), (void **)&is->extra, &is->nextra, one_extra);
		else
			dfail_field(d, "unknown", m);
	}
out:
	path_pop(d, old);
	return d->rc;
}

static int one_jwt(dec *d, const node *e, size_t i, void *arr)
{
	authcfg_issuer *is = (authcfg_issuer *)arr + i;

	is->index = i;
	is->username.expr.kind = AUTHCFG_EXPR_USERNAME;
	is->groups.expr.kind = AUTHCFG_EXPR_GROUPS;
	is->uid.expr.kind = AUTHCFG_EXPR_UID;
	if (!want_map(d, e, "JWTAuthenticator") || check_dups(d, e))
		return d->rc;
	for (const node *m = e->child; m && !d->rc; m = m->next) {
		if (key_is(m, "issuer"))
			dec_issuer(d, m, is, &d->side[2 * i]);
		else if (key_is(m, "claimValidationRules"))
			dec_list(d, m, "claimValidationRules", sizeof(authcfg_claim_rule), (void **)&is->claim_rules,
				 &is->nclaim_rules, one_claim_rule);
		else if (key_is(m, "claimMappings"))
			dec_mappings(d, m, is);
		else if (key_is(m, "userValidationRules"))
			dec_list(d, m, "userValidationRules", sizeof(authcfg_user_rule), (void **)&is->user_rules,
				 &is->nuser_rules, one_user_rule);
		else
			dfail_field(d, "unknown", m);
	}
	return d->rc;
}

#define API_GROUP "apiserver.config.k8s.io/"
#define KIND "AuthenticationConfiguration"

static int dec_root(dec *d, const node *root, authcfg_config *c)
{
	const node *jwt = NULL;
	char *apiv = NULL, *kind = NULL;

	if (!root || root->kind != N_MAP) {
		d->rc = AUTHCFG_E_DECODE;
		sb_puts(&d->msg, "the document must be a mapping (an AuthenticationConfiguration object)");
		return d->rc;
	}
	if (check_dups(d, root))
		return d->rc;
	for (const node *m = root->child; m && !d->rc; m = m->next) {
		if (key_is(m, "apiVersion"))
			get_str(d, m, "apiVersion", &apiv, false, MAX_STRING);
		else if (key_is(m, "kind"))
			get_str(d, m, "kind", &kind, false, MAX_STRING);
		else if (key_is(m, "jwt"))
			jwt = m;
		else if (key_is(m, "anonymous"))
			d->anonymous = m->kind != N_NULL;
		else
			dfail_field(d, "unknown", m);
	}
	if (d->rc)
		goto out;
	/* The API server's decoder needs both before it looks at anything else. */
	if (!apiv || !kind) {
		d->rc = AUTHCFG_E_DECODE;
		sb_puts(&d->msg, !apiv ? "apiVersion: Required value" : "kind: Required value");
		goto out;
	}
	if (strcmp(apiv, API_GROUP "v1beta1") == 0) {
		c->api_version = AUTHCFG_V1BETA1;
	} else if (strcmp(apiv, API_GROUP "v1") == 0) {
		c->api_version = AUTHCFG_V1;
	} else {
		d->rc = AUTHCFG_E_DECODE;
		sb_puts(&d->msg, "apiVersion: Unsupported value: ");
		sb_quote(&d->msg, apiv, strlen(apiv));
		sb_puts(&d->msg, ": supported values: \"" API_GROUP "v1\", \"" API_GROUP "v1beta1\"");
		goto out;
	}
	if (strcmp(kind, KIND) != 0) {
		d->rc = AUTHCFG_E_DECODE;
		sb_puts(&d->msg, "kind: Unsupported value: ");
		sb_quote(&d->msg, kind, strlen(kind));
		sb_puts(&d->msg, ": supported values: \"" KIND "\"");
		goto out;
	}
	if (jwt) {
		size_t cnt = 0;
		bool tm;

		if (get_seq(d, jwt, "jwt", AUTHCFG_MAX_JWT, &cnt, &tm) || !cnt)
			goto out;
		d->side = calloc(2 * cnt, sizeof(char *));
		d->nside = d->side ? 2 * cnt : 0;
		if (!d->side) {
			dfail_nomem(d);
			goto out;
		}
		dec_list(d, jwt, "jwt", sizeof(authcfg_issuer), (void **)&c->jwt, &c->njwt, one_jwt);
	}
out:
	free(apiv);
	free(kind);
	return d->rc;
}

/* ---- validation (k8s.io/apiserver pkg/apis/apiserver/validation, same order and wording) ---- */

typedef struct verrs {
	char *e[AUTHCFG_MAX_ERRORS];
	size_t n, dropped;
	bool oom;
} verrs;

/* Adds "<path>: <body>" where body is built by the caller into b (consumed). */
static void verr_add(verrs *v, sb *b)
{
	if (b->oom || !b->p) {
		v->oom = true;
		free(b->p);
	} else if (v->n < AUTHCFG_MAX_ERRORS) {
		v->e[v->n++] = b->p;
	} else {
		v->dropped++;
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

static void v_required(verrs *v, const char *path, const char *detail)
{
	sb b = {0};

	sb_puts(&b, path);
	sb_puts(&b, ": Required value");
	if (detail && *detail) {
		sb_puts(&b, ": ");
		sb_puts(&b, detail);
	}
	verr_add(v, &b);
}

static void v_value(verrs *v, const char *path, const char *type, const char *val, const char *detail)
{
	sb b = {0};

	sb_puts(&b, path);
	sb_puts(&b, ": ");
	sb_puts(&b, type);
	sb_puts(&b, ": ");
	sb_quote(&b, val ? val : "", val ? strlen(val) : 0);
	if (detail && *detail) {
		sb_puts(&b, ": ");
		sb_puts(&b, detail);
	}
	verr_add(v, &b);
}

static void v_invalid(verrs *v, const char *path, const char *val, const char *detail)
{
	v_value(v, path, "Invalid value", val, detail);
}

static void v_duplicate(verrs *v, const char *path, const char *val)
{
	v_value(v, path, "Duplicate value", val, NULL);
}

static void v_forbidden(verrs *v, const char *path, const char *detail)
{
	sb b = {0};

	sb_puts(&b, path);
	sb_puts(&b, ": Forbidden: ");
	sb_puts(&b, detail);
	verr_add(v, &b);
}

/* Path helper for validation: "jwt[i]" + suffix, formatted into a caller buffer. */
static const char *vp(char *buf, size_t n, size_t i, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static const char *vp(char *buf, size_t n, size_t i, const char *fmt, ...)
{
	int k = snprintf(buf, n, "jwt[%zu]", i);
	va_list ap;

	va_start(ap, fmt);
	if (k > 0 && (size_t)k < n)
		vsnprintf(buf + k, n - (size_t)k, fmt, ap);
	va_end(ap);
	return buf;
}

static bool is_hex(char c)
{
	return is_digit_in(c, 16);
}

/*
 * validateURL: the checks the API server makes after Go's url.Parse, plus the parse errors we can meet. Ours
 * (stricter, and said so in the docs): the scheme must be written "https" in lower case with "//" and a host,
 * and the URL must be printable ASCII without spaces and at most AUTHCFG_MAX_URL bytes — the oidc module and
 * the token's "iss" comparison need exactly that.
 */
static void validate_url(verrs *v, const char *u, const char *path)
{
	size_t n = strlen(u), i, a, ae;
	const char *q, *h;
	char detail[96];

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];

		if (c < 0x20 || c == 0x7f) {
			sb b = {0};

			sb_puts(&b, "parse ");
			sb_quote(&b, u, n);
			sb_puts(&b, ": net/url: invalid control character in URL");
			if (b.p)
				v_invalid(v, path, u, b.p);
			free(b.p);
			return;
		}
	}
	if (n > AUTHCFG_MAX_URL) {
		snprintf(detail, sizeof(detail), "URL must be at most %u bytes", AUTHCFG_MAX_URL);
		v_invalid(v, path, u, detail);
		return;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];

		if (c == ' ' || c >= 0x80) {
			v_invalid(v, path, u, "URL must be printable ASCII without spaces");
			return;
		}
		if (c == '%' && (n - i < 3 || !is_hex(u[i + 1]) || !is_hex(u[i + 2]))) {
			sb b = {0};

			sb_puts(&b, "parse ");
			sb_quote(&b, u, n);
			sb_puts(&b, ": invalid URL escape ");
			sb_quote(&b, u + i, n - i < 3 ? n - i : 3);
			if (b.p)
				v_invalid(v, path, u, b.p);
			free(b.p);
			return;
		}
	}
	if (strncmp(u, "https://", 8) != 0) {
		v_invalid(v, path, u, "URL scheme must be https");
		return; /* without the scheme the rest cannot be read the way Go reads it */
	}
	a = 8;
	ae = a + strcspn(u + a, "/?#");
	q = memchr(u + a, '@', ae - a);
	if (q)
		v_invalid(v, path, u, "URL must not contain a username or password");
	h = q ? q + 1 : u + a;
	/* host[:port] in [h, u+ae) */
	{
		const char *he = u + ae, *port = NULL;
		bool bad = false;

		if (h < he && *h == '[') {
			const char *rb = memchr(h, ']', (size_t)(he - h));

			if (!rb) {
				bad = true;
			} else {
				for (const char *c = h + 1; c < rb; c++)
					if (!is_hex(*c) && *c != ':' && *c != '.')
						bad = true;
				if (rb + 1 < he) {
					if (rb[1] != ':')
						bad = true;
					else
						port = rb + 1;
				}
			}
		} else {
			const char *colon = memchr(h, ':', (size_t)(he - h));

			if (colon)
				port = colon;
			for (const char *c = h; c < (colon ? colon : he); c++)
				if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
				      *c == '-' || *c == '.' || *c == '_' || *c == '~'))
					bad = true;
			if (h == (colon ? colon : he))
				v_invalid(v, path, u, "URL must have a host");
		}
		if (port)
			for (const char *c = port + 1; c < he; c++)
				if (*c < '0' || *c > '9')
					bad = true;
		if (bad) {
			sb b = {0};

			sb_puts(&b, "parse ");
			sb_quote(&b, u, n);
			sb_puts(&b, ": invalid host or port");
			if (b.p)
				v_invalid(v, path, u, b.p);
			free(b.p);
		}
	}
	/* Go: RawQuery and Fragment non-empty (a bare "?" or "#" leaves them empty) */
	q = strchr(u + a, '?');
	{
		const char *f = strchr(u + a, '#');

		if (q && (!f || q < f) && q[1] != '\0' && q[1] != '#')
			v_invalid(v, path, u, "URL must not contain a query");
		if (f && f[1] != '\0')
			v_invalid(v, path, u, "URL must not contain a fragment");
	}
}

static size_t trim_slash_len(const char *s)
{
	size_t n = strlen(s);

	while (n && s[n - 1] == '/')
		n--;
	return n;
}

/* cert.NewPoolFromBytes: every CERTIFICATE block without headers must parse; at least one must be there. */
static const char *ca_check(const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long dlen = 0;
	int ncerts = 0;
	const char *bad = NULL;

	if (!bio)
		return "out of memory";
	while (!bad && PEM_read_bio(bio, &name, &header, &data, &dlen) == 1) {
		if (strcmp(name, "CERTIFICATE") == 0 && header[0] == '\0') {
			const unsigned char *q = data;
			X509 *x = d2i_X509(NULL, &q, dlen);

			if (!x || q != data + dlen)
				bad = "x509: malformed certificate";
			else
				ncerts++;
			X509_free(x);
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		name = header = NULL;
		data = NULL;
	}
	ERR_clear_error(); /* the loop always ends on "no start line" */
	BIO_free(bio);
	if (bad)
		return bad;
	return ncerts ? NULL : "data does not contain any valid RSA or ECDSA certificates";
}

static bool is_dns1123_subdomain(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || n > 253)
		return false;
	while (i < n) {
		size_t st = i;

		while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			i++;
		if (i == st || s[st] == '-' || s[i - 1] == '-')
			return false;
		if (i < n) {
			if (s[i] != '.')
				return false;
			i++;
			if (i == n)
				return false;
		}
	}
	return true;
}

static bool is_http_path(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("/-._~%!$&'()*+,;=:", *s)))
			return false;
	return true;
}

#define DNS1123_SUBDOMAIN_MSG                                                                                   \
	"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must " \
	"start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "         \
	"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"

/* utilvalidation.IsDomainPrefixedPath */
static void validate_domain_prefixed_path(verrs *v, const char *path, const char *key)
{
	const char *slash;
	char *host;

	if (!key || !*key) {
		v_required(v, path, "");
		return;
	}
	slash = strchr(key, '/');
	if (!slash || slash == key || slash[1] == '\0') {
		v_invalid(v, path, key, "must be a domain-prefixed path (such as \"acme.io/foo\")");
		return;
	}
	host = memdup0(key, (size_t)(slash - key));
	if (!host) {
		v->oom = true;
		return;
	}
	if ((size_t)(slash - key) > 253)
		v_invalid(v, path, host, "must be no more than 253 characters");
	if (!is_dns1123_subdomain(host, (size_t)(slash - key)))
		v_invalid(v, path, host, DNS1123_SUBDOMAIN_MSG);
	free(host);
	if (!is_http_path(slash + 1))
		v_invalid(v, path, slash + 1,
			  "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')");
}

static bool is_k8s_domain(const char *key)
{
	const char *slash = strchr(key, '/');
	size_t n;

	if (!slash)
		return false;
	n = (size_t)(slash - key);
	for (int i = 0; i < 2; i++) {
		const char *d = i ? "k8s.io" : "kubernetes.io";
		size_t dl = strlen(d);

		if (n == dl && memcmp(key, d, dl) == 0)
			return true;
		if (n > dl && key[n - dl - 1] == '.' && memcmp(key + n - dl, d, dl) == 0)
			return true;
	}
	return false;
}

static bool has_upper(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return true;
	return false; /* Go's strings.ToLower also folds non-ASCII; the domain check refuses those anyway */
}

static void validate_prefixed(verrs *v, size_t i, const char *field, const authcfg_mapping *m, bool required)
{
	char p[160], p2[160];

	vp(p, sizeof(p), i, ".claimMappings.%s", field);
	if (m->expr.expression && m->claim) {
		v_invalid(v, p, "", "claim and expression can't both be set");
	} else if (!m->expr.expression && !m->claim) {
		if (required)
			v_required(v, p, "claim or expression is required");
	} else if (m->expr.expression) {
		if (m->prefix)
			v_invalid(v, vp(p2, sizeof(p2), i, ".claimMappings.%s.prefix", field), m->prefix,
				  "may not be specified when expression is set");
	} else if (!m->prefix) {
		v_required(v, vp(p2, sizeof(p2), i, ".claimMappings.%s.prefix", field),
			   "prefix is required when claim is set. It can be set to an empty string to disable prefixing");
	}
}

static void validate_jwt(verrs *v, const authcfg_issuer *is, char *const *side)
{
	size_t i = is->index;
	char p[192];

	/* issuer.url */
	if (!is->url)
		v_required(v, vp(p, sizeof(p), i, ".issuer.url"), "");
	else
		validate_url(v, is->url, vp(p, sizeof(p), i, ".issuer.url"));
	/* issuer.discoveryURL */
	if (is->discovery_url) {
		vp(p, sizeof(p), i, ".issuer.discoveryURL");
		if (is->url && trim_slash_len(is->url) == trim_slash_len(is->discovery_url) &&
		    memcmp(is->url, is->discovery_url, trim_slash_len(is->url)) == 0)
			v_invalid(v, p, is->discovery_url, "discoveryURL must be different from URL");
		validate_url(v, is->discovery_url, p);
	}
	/* issuer.audiences, issuer.audienceMatchPolicy */
	if (is->naudiences == 0) {
		char d[224];

		vp(p, sizeof(p), i, ".issuer.audiences");
		snprintf(d, sizeof(d), "at least one %s is required", p);
		v_required(v, p, d);
	} else {
		for (size_t k = 0; k < is->naudiences; k++) {
			vp(p, sizeof(p), i, ".issuer.audiences[%zu]", k);
			if (!is->audiences[k][0])
				v_required(v, p, "");
			for (size_t o = 0; o < k; o++)
				if (strcmp(is->audiences[o], is->audiences[k]) == 0) {
					v_duplicate(v, p, is->audiences[k]);
					break;
				}
		}
		vp(p, sizeof(p), i, ".issuer.audienceMatchPolicy");
		if (is->naudiences > 1 && !is->audience_match_any)
			v_invalid(v, p, side[1] ? side[1] : "", "audienceMatchPolicy must be MatchAny for multiple audiences");
		if (is->naudiences == 1 && side[1])
			v_invalid(v, p, side[1], "audienceMatchPolicy must be empty or MatchAny for single audience");
	}
	/* issuer.certificateAuthority */
	if (is->certificate_authority) {
		const char *why = ca_check(is->certificate_authority, strlen(is->certificate_authority));

		if (why)
			v_invalid(v, vp(p, sizeof(p), i, ".issuer.certificateAuthority"), "<omitted>", why);
	}
	/* issuer.egressSelectorType: the API server's own network path; nothing we could honour */
	if (side[0])
		v_forbidden(v, vp(p, sizeof(p), i, ".issuer.egressSelectorType"),
			    "egress selection is not supported by kube-oidc-spoa");

	/* claimValidationRules */
	for (size_t k = 0; k < is->nclaim_rules; k++) {
		const authcfg_claim_rule *r = &is->claim_rules[k];

		vp(p, sizeof(p), i, ".claimValidationRules[%zu]", k);
		if (r->claim && r->expr.expression) {
			v_invalid(v, p, r->claim, "claim and expression can't both be set");
		} else if (!r->claim && !r->expr.expression) {
			v_required(v, p, "claim or expression is required");
		} else if (r->claim) {
			bool dup = false;

			if (r->message)
				v_invalid(v, vp(p, sizeof(p), i, ".claimValidationRules[%zu].message", k), r->message,
					  "may not be specified when claim is set");
			for (size_t o = 0; o < k && !dup; o++)
				dup = is->claim_rules[o].claim && !is->claim_rules[o].expr.expression &&
				      strcmp(is->claim_rules[o].claim, r->claim) == 0;
			if (dup)
				v_duplicate(v, vp(p, sizeof(p), i, ".claimValidationRules[%zu].claim", k), r->claim);
		} else {
			bool dup = false;

			if (r->required_value && *r->required_value)
				v_invalid(v, vp(p, sizeof(p), i, ".claimValidationRules[%zu].requiredValue", k),
					  r->required_value, "may not be specified when expression is set");
			for (size_t o = 0; o < k && !dup; o++)
				dup = !is->claim_rules[o].claim && is->claim_rules[o].expr.expression &&
				      strcmp(is->claim_rules[o].expr.expression, r->expr.expression) == 0;
			if (dup)
				v_duplicate(v, vp(p, sizeof(p), i, ".claimValidationRules[%zu].expression", k),
					    r->expr.expression);
		}
	}

	/* claimMappings */
	validate_prefixed(v, i, "username", &is->username, true);
	validate_prefixed(v, i, "groups", &is->groups, false);
	if (is->uid.claim && is->uid.expr.expression)
		v_invalid(v, vp(p, sizeof(p), i, ".claimMappings.uid"), "", "claim and expression can't both be set");
	for (size_t k = 0; k < is->nextra; k++) {
		const authcfg_extra *x = &is->extra[k];
		bool dup = false;

		vp(p, sizeof(p), i, ".claimMappings.extra[%zu].key", k);
		validate_domain_prefixed_path(v, p, x->key);
		if (x->key && has_upper(x->key))
			v_invalid(v, p, x->key, "must be lowercase");
		if (x->key && is_k8s_domain(x->key))
			v_invalid(v, p, x->key, "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use");
		for (size_t o = 0; o < k && !dup; o++)
			dup = strcmp(is->extra[o].key ? is->extra[o].key : "", x->key ? x->key : "") == 0;
		if (dup) {
			v_duplicate(v, p, x->key ? x->key : "");
			continue;
		}
		if (!x->value.expression)
			v_required(v, vp(p, sizeof(p), i, ".claimMappings.extra[%zu].valueExpression", k), "");
	}

	/* userValidationRules */
	for (size_t k = 0; k < is->nuser_rules; k++) {
		const authcfg_user_rule *r = &is->user_rules[k];
		bool dup = false;

		vp(p, sizeof(p), i, ".userValidationRules[%zu].expression", k);
		if (!r->expr.expression) {
			v_required(v, p, "");
			continue;
		}
		for (size_t o = 0; o < k && !dup; o++)
			dup = is->user_rules[o].expr.expression &&
			      strcmp(is->user_rules[o].expr.expression, r->expr.expression) == 0;
		if (dup)
			v_duplicate(v, p, r->expr.expression);
	}
}

static void validate_config(verrs *v, const authcfg_config *c, const dec *d)
{
	char p[96];

	for (size_t i = 0; i < c->njwt; i++) {
		const authcfg_issuer *is = &c->jwt[i];
		const char *u = is->url ? is->url : "";
		bool dup = false;

		validate_jwt(v, is, &d->side[2 * i]);
		for (size_t o = 0; o < i && !dup; o++)
			dup = strcmp(c->jwt[o].url ? c->jwt[o].url : "", u) == 0;
		if (dup)
			v_duplicate(v, vp(p, sizeof(p), i, ".issuer.url"), u);
		if (is->discovery_url) {
			dup = false;
			for (size_t o = 0; o < i && !dup; o++)
				dup = c->jwt[o].discovery_url && strcmp(c->jwt[o].discovery_url, is->discovery_url) == 0;
			if (dup)
				v_duplicate(v, vp(p, sizeof(p), i, ".issuer.discoveryURL"), is->discovery_url);
		}
	}
	if (d->anonymous)
		v_forbidden(v, "anonymous",
			    "anonymous authentication is not supported by kube-oidc-spoa (HAProxy refuses requests "
			    "without a token)");
}

/* ---- API ---- */

static void issuer_free(authcfg_issuer *is)
{
	free(is->url);
	free(is->discovery_url);
	free(is->certificate_authority);
	for (size_t k = 0; k < is->naudiences; k++)
		free(is->audiences[k]);
	free(is->audiences);
	for (size_t k = 0; k < is->nclaim_rules; k++) {
		free(is->claim_rules[k].claim);
		free(is->claim_rules[k].required_value);
		free(is->claim_rules[k].expr.expression);
		free(is->claim_rules[k].expr.path);
		free(is->claim_rules[k].message);
	}
	free(is->claim_rules);
	authcfg_mapping *maps[3] = {&is->username, &is->groups, &is->uid};
	for (int k = 0; k < 3; k++) {
		free(maps[k]->claim);
		free(maps[k]->prefix);
		free(maps[k]->expr.expression);
		free(maps[k]->expr.path);
	}
	for (size_t k = 0; k < is->nextra; k++) {
		free(is->extra[k].key);
		free(is->extra[k].value.expression);
		free(is->extra[k].value.path);
	}
	free(is->extra);
	for (size_t k = 0; k < is->nuser_rules; k++) {
		free(is->user_rules[k].expr.expression);
		free(is->user_rules[k].expr.path);
		free(is->user_rules[k].message);
	}
	free(is->user_rules);
}

void authcfg_free(authcfg_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->njwt; i++)
		issuer_free(&c->jwt[i]);
	free(c->jwt);
	free(c);
}

/* After validation: the fields the header promises are derived here. */
static int finalize(authcfg_config *c)
{
	for (size_t i = 0; i < c->njwt; i++) {
		authcfg_issuer *is = &c->jwt[i];

		is->url_len = is->url ? strlen(is->url) : 0;
		is->certificate_authority_len = is->certificate_authority ? strlen(is->certificate_authority) : 0;
		for (size_t k = 0; k < is->nclaim_rules; k++) {
			authcfg_claim_rule *r = &is->claim_rules[k];

			if (r->claim && !r->required_value) {
				r->required_value = memdup0("", 0);
				if (!r->required_value)
					return AUTHCFG_E_NOMEM;
			}
		}
	}
	return 0;
}

int authcfg_parse(const uint8_t *p, size_t len, authcfg_config **out, char *err, size_t errlen)
{
	builder b = {0};
	dec d = {0};
	verrs v = {0};
	node *root = NULL;
	authcfg_config *c = NULL;
	size_t i = 0;
	int rc;

	if (len == 0 || len > AUTHCFG_MAX_BYTES) {
		char m[96];

		snprintf(m, sizeof(m), len ? "configuration larger than %u bytes" : "empty config data",
			 AUTHCFG_MAX_BYTES);
		copy_err(err, errlen, m);
		return AUTHCFG_E_TOO_LARGE;
	}
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	root = (i < len && p[i] == '{') ? json_build(&b, p, len) : yaml_build(&b, p, len);
	if (b.rc) {
		rc = b.rc;
		copy_err(err, errlen, b.msg.p ? b.msg.p : authcfg_strerror(rc));
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = AUTHCFG_E_NOMEM;
		copy_err(err, errlen, authcfg_strerror(rc));
		goto out;
	}
	rc = dec_root(&d, root, c);
	if (rc) {
		copy_err(err, errlen, d.msg.p && !d.msg.oom ? d.msg.p : authcfg_strerror(rc));
		goto out;
	}
	validate_config(&v, c, &d);
	if (v.oom) {
		rc = AUTHCFG_E_NOMEM;
		copy_err(err, errlen, authcfg_strerror(rc));
		goto out;
	}
	if (v.n) {
		sb m = {0};

		/* an aggregate prints one error bare and several as "[e1, e2]" */
		if (v.n > 1)
			sb_puts(&m, "[");
		for (size_t k = 0; k < v.n; k++) {
			if (k)
				sb_puts(&m, ", ");
			sb_puts(&m, v.e[k]);
		}
		if (v.dropped)
			sb_printf(&m, ", and %zu more", v.dropped);
		if (v.n > 1)
			sb_puts(&m, "]");
		copy_err(err, errlen, m.p && !m.oom ? m.p : authcfg_strerror(AUTHCFG_E_INVALID));
		free(m.p);
		rc = AUTHCFG_E_INVALID;
		goto out;
	}
	rc = finalize(c);
	if (rc) {
		copy_err(err, errlen, authcfg_strerror(rc));
		goto out;
	}
	*out = c;
	c = NULL;
out:
	for (size_t k = 0; k < v.n; k++)
		free(v.e[k]);
	if (d.side) {
		for (size_t k = 0; k < d.nside; k++)
			free(d.side[k]);
		free(d.side);
	}
	authcfg_free(c);
	node_free(root);
	free(b.msg.p);
	free(d.msg.p);
	return rc;
}

int authcfg_load_file(const char *path, authcfg_config **out, char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char m[256];

		snprintf(m, sizeof(m), "open %s: %s", path, strerror(errno));
		copy_err(err, errlen, m);
		return AUTHCFG_E_IO;
	}
	buf = malloc(AUTHCFG_MAX_BYTES + 1);
	if (!buf) {
		close(fd);
		copy_err(err, errlen, authcfg_strerror(AUTHCFG_E_NOMEM));
		return AUTHCFG_E_NOMEM;
	}
	/* one byte more than the cap tells "too large" from "exactly the cap" */
	while (n < AUTHCFG_MAX_BYTES + 1) {
		ssize_t r = read(fd, buf + n, AUTHCFG_MAX_BYTES + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			char m[256];

			snprintf(m, sizeof(m), "read %s: %s", path, strerror(errno));
			copy_err(err, errlen, m);
			rc = AUTHCFG_E_IO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	rc = authcfg_parse(buf, n, out, err, errlen);
out:
	close(fd);
	free(buf);
	return rc;
}

const authcfg_issuer *authcfg_issuer_find(const authcfg_config *c, const char *iss, size_t len)
{
	if (!c || !iss)
		return NULL;
	for (size_t i = 0; i < c->njwt; i++)
		if (c->jwt[i].url_len == len && memcmp(c->jwt[i].url, iss, len) == 0)
			return &c->jwt[i];
	return NULL;
}

size_t authcfg_issuer_exprs(const authcfg_issuer *is, const authcfg_expr **out, size_t max)
{
	size_t n = 0;

#define ADD(e)                              \
	do {                                \
		if ((e)->expression) {      \
			if (n < max)        \
				out[n] = (e); \
			n++;                \
		}                           \
	} while (0)
	for (size_t k = 0; k < is->nclaim_rules; k++)
		ADD(&is->claim_rules[k].expr);
	ADD(&is->username.expr);
	ADD(&is->groups.expr);
	ADD(&is->uid.expr);
	for (size_t k = 0; k < is->nextra; k++)
		ADD(&is->extra[k].value);
	for (size_t k = 0; k < is->nuser_rules; k++)
		ADD(&is->user_rules[k].expr);
#undef ADD
	return n;
}
