/* authcfg_load.c — the configuration's bytes into the generic tree, and the error-text builder; see
 * authcfg_load.h. */
#include "authcfg_load.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <yaml.h>

/* ---- a small string builder (bounded) ---- */

void authcfg_sb_putn(authcfg_sb *b, const char *s, size_t n)
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

void authcfg_sb_puts(authcfg_sb *b, const char *s)
{
	authcfg_sb_putn(b, s, strlen(s));
}

void authcfg_sb_printf(authcfg_sb *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		authcfg_sb_putn(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Go's %q for the bytes we meet in practice: printable ASCII as is, the usual escapes, everything else \xNN
 * (Go would print valid non-ASCII UTF-8 as is). Long values are cut: errors stay one readable line. */
void authcfg_sb_quote(authcfg_sb *b, const char *s, size_t n)
{
	size_t lim = n > AUTHCFG_QUOTED_MAX ? AUTHCFG_QUOTED_MAX : n;

	authcfg_sb_putn(b, "\"", 1);
	for (size_t i = 0; i < lim; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[8];

		switch (c) {
		case '"': authcfg_sb_putn(b, "\\\"", 2); break;
		case '\\': authcfg_sb_putn(b, "\\\\", 2); break;
		case '\n': authcfg_sb_putn(b, "\\n", 2); break;
		case '\t': authcfg_sb_putn(b, "\\t", 2); break;
		case '\r': authcfg_sb_putn(b, "\\r", 2); break;
		case '\a': authcfg_sb_putn(b, "\\a", 2); break;
		case '\b': authcfg_sb_putn(b, "\\b", 2); break;
		case '\f': authcfg_sb_putn(b, "\\f", 2); break;
		case '\v': authcfg_sb_putn(b, "\\v", 2); break;
		default:
			if (c >= 0x20 && c < 0x7f) {
				authcfg_sb_putn(b, (const char *)&c, 1);
			} else {
				snprintf(e, sizeof(e), "\\x%02x", c);
				authcfg_sb_putn(b, e, 4);
			}
		}
	}
	authcfg_sb_putn(b, "\"", 1);
	if (lim < n)
		authcfg_sb_puts(b, "...");
}

void authcfg_copy_err(char *err, size_t errlen, const char *s)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", s);
}

/* ---- the generic tree ---- */

void authcfg_node_free(authcfg_node *n)
{
	while (n) {
		authcfg_node *next = n->next;

		authcfg_node_free(n->child);
		free(n->s);
		free(n->key);
		free(n);
		n = next;
	}
}

const char *authcfg_node_kind_name(enum authcfg_nkind k)
{
	switch (k) {
	case AUTHCFG_N_NULL: return "null";
	case AUTHCFG_N_STR: return "string";
	case AUTHCFG_N_BOOL: return "bool";
	case AUTHCFG_N_NUM: return "number";
	case AUTHCFG_N_SEQ: return "array";
	default: return "object";
	}
}

char *authcfg_memdup0(const void *p, size_t n)
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
	authcfg_sb msg;
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
	authcfg_sb_puts(&b->msg, tmp);
}

static authcfg_node *node_new(builder *b, enum authcfg_nkind k, unsigned line)
{
	authcfg_node *n;

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
static bool node_add(builder *b, authcfg_node *p, authcfg_node *c, char *key, size_t keylen, unsigned keyline)
{
	if (p->n >= (p->kind == AUTHCFG_N_MAP ? AUTHCFG_MAX_MEMBERS : (size_t)AUTHCFG_MAX_NODES)) {
		bfail(b, AUTHCFG_E_DECODE, "a mapping has more than %u members (line %u)", AUTHCFG_MAX_MEMBERS, c->line);
		free(key);
		authcfg_node_free(c);
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

static enum authcfg_nkind yaml_resolve_plain(const char *s, size_t n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	static const char *const bools[] = {"y",    "Y",    "yes",   "Yes",   "YES",   "n",     "N",   "no",
					    "No",   "NO",   "true",  "True",  "TRUE",  "false", "False", "FALSE",
					    "on",   "On",   "ON",    "off",   "Off",   "OFF"};
	static const char *const special[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf", "+.INF",
					      "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN"};

	if (in_list(s, n, nulls, sizeof(nulls) / sizeof(nulls[0])))
		return AUTHCFG_N_NULL;
	if (in_list(s, n, bools, sizeof(bools) / sizeof(bools[0])))
		return AUTHCFG_N_BOOL;
	if (in_list(s, n, special, sizeof(special) / sizeof(special[0])))
		return AUTHCFG_N_NUM;
	if (strchr("+-.0123456789", s[0]) && yaml_number(s, n))
		return AUTHCFG_N_NUM;
	return AUTHCFG_N_STR;
}

#define YAML_STR_TAG "tag:yaml.org,2002:str"

/* Builds the tree of the one YAML document in p[0..len). */
static authcfg_node *yaml_build(builder *b, const uint8_t *p, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	authcfg_node *stack[AUTHCFG_MAX_DEPTH + 1];
	char *pkey[AUTHCFG_MAX_DEPTH + 1];  /* a mapping's pending key, NULL when the next scalar is a key */
	size_t pkeylen[AUTHCFG_MAX_DEPTH + 1];
	unsigned pkeyline[AUTHCFG_MAX_DEPTH + 1];
	size_t depth = 0, docs = 0;
	authcfg_node *root = NULL;
	bool done = false;

	if (!yaml_parser_initialize(&parser)) {
		bfail(b, AUTHCFG_E_NOMEM, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, p, len);
	while (!done && !b->rc) {
		authcfg_node *n = NULL;
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
			enum authcfg_nkind k;

			if (tag && strcmp(tag, YAML_STR_TAG) != 0 && strcmp(tag, "!") != 0) {
				bfail(b, AUTHCFG_E_DECODE, "YAML tag %.64s is not supported (line %u)", tag, line);
				break;
			}
			if (depth && stack[depth - 1]->kind == AUTHCFG_N_MAP && !pkey[depth - 1]) {
				pkey[depth - 1] = authcfg_memdup0(v, vl);
				pkeylen[depth - 1] = vl;
				pkeyline[depth - 1] = line;
				if (!pkey[depth - 1])
					bfail(b, AUTHCFG_E_NOMEM, "out of memory");
				break;
			}
			if (!tag && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
				k = yaml_resolve_plain(v, vl);
			else
				k = AUTHCFG_N_STR;
			n = node_new(b, k, line);
			if (n) {
				n->s = authcfg_memdup0(v, vl);
				n->len = vl;
				if (!n->s) {
					authcfg_node_free(n);
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
			if (depth && stack[depth - 1]->kind == AUTHCFG_N_MAP && !pkey[depth - 1]) {
				bfail(b, AUTHCFG_E_DECODE, "mapping keys must be strings (line %u)", line);
				break;
			}
			if (depth >= AUTHCFG_MAX_DEPTH) {
				bfail(b, AUTHCFG_E_DECODE, "nesting deeper than %u (line %u)", AUTHCFG_MAX_DEPTH, line);
				break;
			}
			n = node_new(b, seq ? AUTHCFG_N_SEQ : AUTHCFG_N_MAP, line);
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
				authcfg_node *par = stack[depth - 1];
				char *k = NULL;
				size_t kl = 0;
				unsigned kline = 0;

				if (par->kind == AUTHCFG_N_MAP) {
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
				authcfg_node_free(n);
				n = NULL;
				bfail(b, AUTHCFG_E_DECODE, "more than one YAML document (line %u)", line);
			}
			if (n && (n->kind == AUTHCFG_N_SEQ || n->kind == AUTHCFG_N_MAP)) {
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
		authcfg_node_free(root);
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

static authcfg_node *json_convert(builder *b, const cJSON *j, unsigned depth)
{
	authcfg_node *n;
	enum authcfg_nkind k;

	if (cJSON_IsNull(j))
		k = AUTHCFG_N_NULL;
	else if (cJSON_IsBool(j))
		k = AUTHCFG_N_BOOL;
	else if (cJSON_IsNumber(j))
		k = AUTHCFG_N_NUM;
	else if (cJSON_IsString(j))
		k = AUTHCFG_N_STR;
	else if (cJSON_IsArray(j))
		k = AUTHCFG_N_SEQ;
	else if (cJSON_IsObject(j))
		k = AUTHCFG_N_MAP;
	else {
		bfail(b, AUTHCFG_E_SYNTAX, "invalid JSON");
		return NULL;
	}
	if ((k == AUTHCFG_N_SEQ || k == AUTHCFG_N_MAP) && depth >= AUTHCFG_MAX_DEPTH) {
		bfail(b, AUTHCFG_E_DECODE, "nesting deeper than %u", AUTHCFG_MAX_DEPTH);
		return NULL;
	}
	n = node_new(b, k, 0);
	if (!n)
		return NULL;
	if (k == AUTHCFG_N_STR) {
		n->len = strlen(j->valuestring);
		n->s = authcfg_memdup0(j->valuestring, n->len);
		if (!n->s) {
			bfail(b, AUTHCFG_E_NOMEM, "out of memory");
			authcfg_node_free(n);
			return NULL;
		}
	} else if (k == AUTHCFG_N_SEQ || k == AUTHCFG_N_MAP) {
		for (const cJSON *c = j->child; c; c = c->next) {
			authcfg_node *cn = json_convert(b, c, depth + 1);
			char *key = NULL;
			size_t kl = 0;

			if (!cn)
				break;
			if (k == AUTHCFG_N_MAP) {
				kl = strlen(c->string);
				key = authcfg_memdup0(c->string, kl);
				if (!key) {
					bfail(b, AUTHCFG_E_NOMEM, "out of memory");
					authcfg_node_free(cn);
					break;
				}
			}
			if (!node_add(b, n, cn, key, kl, 0))
				break;
		}
		if (b->rc) {
			authcfg_node_free(n);
			return NULL;
		}
	}
	return n;
}

static authcfg_node *json_build(builder *b, const uint8_t *p, size_t len)
{
	const char *end = NULL;
	cJSON *j;
	authcfg_node *n;

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

int authcfg_load_tree(const uint8_t *p, size_t len, authcfg_node **root, authcfg_sb *msg)
{
	builder b = {0};
	size_t i = 0;

	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	*root = (i < len && p[i] == '{') ? json_build(&b, p, len) : yaml_build(&b, p, len);
	*msg = b.msg;
	return b.rc;
}

/* ---- file ---- */

int authcfg_load_read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char m[256];

		snprintf(m, sizeof(m), "open %s: %s", path, strerror(errno));
		authcfg_copy_err(err, errlen, m);
		return AUTHCFG_E_IO;
	}
	buf = malloc(AUTHCFG_MAX_BYTES + 1);
	if (!buf) {
		close(fd);
		authcfg_copy_err(err, errlen, authcfg_strerror(AUTHCFG_E_NOMEM));
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
			authcfg_copy_err(err, errlen, m);
			rc = AUTHCFG_E_IO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	buf = NULL;
out:
	close(fd);
	free(buf);
	return rc;
}
