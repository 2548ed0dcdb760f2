/*
 * spop_codec.c — see spop_codec.h. Every decoder checks "remaining >= needed" before it reads.
 */
#include <string.h>

#include "spop_codec.h"

const char *spop_strerror(int err)
{
	switch (err) {
	case SPOP_OK: return "success";
	case SPOP_E_TRUNCATED: return "input ends inside an item";
	case SPOP_E_INVALID: return "malformed item";
	case SPOP_E_TOO_BIG: return "length beyond the negotiated maximum";
	case SPOP_E_NOSPACE: return "output buffer full";
	case SPOP_E_VERSION: return "no supported SPOP version";
	case SPOP_E_FRAMESIZE: return "max-frame-size missing or unusable";
	case SPOP_E_STATE: return "frame not allowed in this state";
	case SPOP_E_SYS: return "system call failed";
	case SPOP_E_ARG: return "bad argument";
	default: return "unknown error";
	}
}

static const char *const status_text[] = {
	[SPOP_ST_NORMAL] = "normal",
	[SPOP_ST_IO] = "I/O error",
	[SPOP_ST_TIMEOUT] = "a timeout occurred",
	[SPOP_ST_TOO_BIG] = "frame is too big",
	[SPOP_ST_INVALID] = "invalid frame received",
	[SPOP_ST_NO_VSN] = "version value not found",
	[SPOP_ST_NO_FRAME_SIZE] = "max-frame-size value not found",
	[SPOP_ST_NO_CAP] = "capabilities value not found",
	[SPOP_ST_BAD_VSN] = "unsupported version",
	[SPOP_ST_BAD_FRAME_SIZE] = "max-frame-size too big or too small",
	[SPOP_ST_FRAG_NOT_SUPPORTED] = "fragmentation not supported",
	[SPOP_ST_INTERLACED] = "invalid interlaced frames",
	[SPOP_ST_FRAMEID_NOTFOUND] = "frame-id not found",
	[SPOP_ST_RES_ALLOC] = "resource allocation error",
};

const char *spop_status_str(unsigned status)
{
	if (status < sizeof(status_text) / sizeof(status_text[0]) && status_text[status])
		return status_text[status];
	return "an unknown error occurred";
}

unsigned spop_status_from_err(int err)
{
	switch (err) {
	case SPOP_OK: return SPOP_ST_NORMAL;
	case SPOP_E_TOO_BIG: return SPOP_ST_TOO_BIG;
	case SPOP_E_TRUNCATED:
	case SPOP_E_INVALID:
	case SPOP_E_STATE: return SPOP_ST_INVALID;
	case SPOP_E_VERSION: return SPOP_ST_BAD_VSN;
	case SPOP_E_FRAMESIZE: return SPOP_ST_BAD_FRAME_SIZE;
	case SPOP_E_NOSPACE: return SPOP_ST_RES_ALLOC;
	case SPOP_E_SYS: return SPOP_ST_IO;
	default: return SPOP_ST_UNKNOWN;
	}
}

/* ---- varint ---------------------------------------------------------------------------------------------- */

int spop_varint_decode(const uint8_t *p, size_t len, uint64_t *out)
{
	if (len < 1)
		return SPOP_E_TRUNCATED;
	uint64_t r = p[0];
	if (r < 240) {
		*out = r;
		return 1;
	}
	unsigned shift = 4;
	for (size_t i = 1; i < SPOP_VARINT_MAX; i++) {
		if (len - i < 1)
			return SPOP_E_TRUNCATED;
		uint64_t b = p[i];
		/* The byte is added with its continuation bit (HAProxy's encoding compensates for it); refuse
		 * anything that would not fit in 64 bits instead of wrapping. */
		if (shift >= 64 || (b << shift) >> shift != b)
			return SPOP_E_INVALID;
		uint64_t add = b << shift;
		if (r + add < r)
			return SPOP_E_INVALID;
		r += add;
		shift += 7;
		if (b < 128) {
			*out = r;
			return (int)i + 1;
		}
	}
	return SPOP_E_INVALID;
}

size_t spop_varint_encode(uint64_t v, uint8_t *out)
{
	size_t n = 0;
	if (v < 240) {
		out[n++] = (uint8_t)v;
		return n;
	}
	out[n++] = (uint8_t)(v | 0xF0);
	v = (v - 240) >> 4;
	while (v >= 128) {
		out[n++] = (uint8_t)(v | 0x80);
		v = (v - 128) >> 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

size_t spop_varint_size(uint64_t v)
{
	uint8_t tmp[SPOP_VARINT_MAX];
	return spop_varint_encode(v, tmp);
}

/* ---- typed data ------------------------------------------------------------------------------------------ */

int spop_rawstr_decode(const uint8_t *p, size_t len, spop_slice *out)
{
	uint64_t n;
	int r = spop_varint_decode(p, len, &n);
	if (r < 0)
		return r;
	size_t off = (size_t)r;
	if (n > len - off)
		return SPOP_E_TRUNCATED;
	out->ptr = p + off;
	out->len = (size_t)n;
	return (int)(off + (size_t)n);
}

int spop_value_decode(const uint8_t *p, size_t len, spop_value *out)
{
	if (len < 1)
		return SPOP_E_TRUNCATED;
	uint8_t t = p[0] & 0x0F;
	const uint8_t *q = p + 1;
	size_t rem = len - 1;
	spop_value v;
	int r;
	uint64_t u;

	memset(&v, 0, sizeof(v));
	v.type = (enum spop_type)t;
	switch (t) {
	case SPOP_T_NULL:
		r = 0;
		break;
	case SPOP_T_BOOL:
		v.u.b = (p[0] & 0x10) != 0;
		r = 0;
		break;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		r = spop_varint_decode(q, rem, &u);
		if (r < 0)
			return r;
		v.u.i = (int64_t)u;
		break;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		r = spop_varint_decode(q, rem, &u);
		if (r < 0)
			return r;
		v.u.u = u;
		break;
	case SPOP_T_IPV4:
		if (rem < 4)
			return SPOP_E_TRUNCATED;
		memcpy(v.u.ip4, q, 4);
		r = 4;
		break;
	case SPOP_T_IPV6:
		if (rem < 16)
			return SPOP_E_TRUNCATED;
		memcpy(v.u.ip6, q, 16);
		r = 16;
		break;
	case SPOP_T_STR:
	case SPOP_T_BIN:
		r = spop_rawstr_decode(q, rem, &v.u.s);
		if (r < 0)
			return r;
		break;
	default:
		return SPOP_E_INVALID;
	}
	*out = v;
	return 1 + r;
}

/* ---- write cursor ---------------------------------------------------------------------------------------- */

static inline bool wb_room(spop_wbuf *w, size_t n)
{
	if (w->err)
		return false;
	if (w->cap - w->len < n) {
		w->err = SPOP_E_NOSPACE;
		return false;
	}
	return true;
}

void spop_put_u8(spop_wbuf *w, uint8_t v)
{
	if (wb_room(w, 1))
		w->p[w->len++] = v;
}

void spop_put_u32be(spop_wbuf *w, uint32_t v)
{
	if (!wb_room(w, 4))
		return;
	uint8_t *o = w->p + w->len;
	o[0] = (uint8_t)(v >> 24);
	o[1] = (uint8_t)(v >> 16);
	o[2] = (uint8_t)(v >> 8);
	o[3] = (uint8_t)v;
	w->len += 4;
}

void spop_put_bytes(spop_wbuf *w, const void *p, size_t n)
{
	if (!wb_room(w, n))
		return;
	if (n)
		memcpy(w->p + w->len, p, n);
	w->len += n;
}

void spop_put_varint(spop_wbuf *w, uint64_t v)
{
	if (w->err)
		return;
	if (v < 240 && w->len < w->cap) {
		w->p[w->len++] = (uint8_t)v;
		return;
	}
	uint8_t tmp[SPOP_VARINT_MAX];
	size_t n = spop_varint_encode(v, tmp);
	spop_put_bytes(w, tmp, n);
}

void spop_put_rawstr(spop_wbuf *w, const void *s, size_t n)
{
	spop_put_varint(w, n);
	spop_put_bytes(w, s, n);
}

void spop_put_value(spop_wbuf *w, const spop_value *v)
{
	if (w->err)
		return;
	switch (v->type) {
	case SPOP_T_NULL:
		spop_put_u8(w, SPOP_T_NULL);
		break;
	case SPOP_T_BOOL:
		spop_put_u8(w, (uint8_t)(SPOP_T_BOOL | (v->u.b ? 0x10 : 0)));
		break;
	case SPOP_T_INT32:
		if (v->u.i < INT32_MIN || v->u.i > INT32_MAX) {
			w->err = SPOP_E_ARG;
			return;
		}
		/* fall through */
	case SPOP_T_INT64:
		spop_put_u8(w, (uint8_t)v->type);
		spop_put_varint(w, (uint64_t)v->u.i);
		break;
	case SPOP_T_UINT32:
		if (v->u.u > UINT32_MAX) {
			w->err = SPOP_E_ARG;
			return;
		}
		/* fall through */
	case SPOP_T_UINT64:
		spop_put_u8(w, (uint8_t)v->type);
		spop_put_varint(w, v->u.u);
		break;
	case SPOP_T_IPV4:
		spop_put_u8(w, SPOP_T_IPV4);
		spop_put_bytes(w, v->u.ip4, 4);
		break;
	case SPOP_T_IPV6:
		spop_put_u8(w, SPOP_T_IPV6);
		spop_put_bytes(w, v->u.ip6, 16);
		break;
	case SPOP_T_STR:
	case SPOP_T_BIN:
		if (v->u.s.len && !v->u.s.ptr) {
			w->err = SPOP_E_ARG;
			return;
		}
		spop_put_u8(w, (uint8_t)v->type);
		spop_put_rawstr(w, v->u.s.ptr, v->u.s.len);
		break;
	default:
		w->err = SPOP_E_ARG;
		break;
	}
}

/* ---- frames ---------------------------------------------------------------------------------------------- */

int spop_frame_decode(const uint8_t *p, size_t len, spop_frame *out)
{
	if (len < 5)
		return SPOP_E_TRUNCATED;
	spop_frame f;
	f.type = p[0];
	f.flags = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	size_t off = 5;
	int r = spop_varint_decode(p + off, len - off, &f.stream_id);
	if (r < 0)
		return r;
	off += (size_t)r;
	r = spop_varint_decode(p + off, len - off, &f.frame_id);
	if (r < 0)
		return r;
	off += (size_t)r;
	f.payload.ptr = p + off;
	f.payload.len = len - off;
	*out = f;
	return 0;
}

size_t spop_frame_begin(spop_wbuf *w, uint8_t type, uint64_t stream_id, uint64_t frame_id)
{
	size_t off = w->len;
	spop_put_u32be(w, 0);
	spop_put_u8(w, type);
	spop_put_u32be(w, SPOP_FLAG_FIN);
	spop_put_varint(w, stream_id);
	spop_put_varint(w, frame_id);
	return off;
}

int spop_frame_end(spop_wbuf *w, size_t off)
{
	if (w->err)
		return w->err;
	uint32_t n = (uint32_t)(w->len - off - 4);
	uint8_t *o = w->p + off;
	o[0] = (uint8_t)(n >> 24);
	o[1] = (uint8_t)(n >> 16);
	o[2] = (uint8_t)(n >> 8);
	o[3] = (uint8_t)n;
	return 0;
}

/* ---- KV lists -------------------------------------------------------------------------------------------- */

int spop_kv_next(const uint8_t *p, size_t len, size_t *off, spop_slice *key, spop_value *val)
{
	size_t o = *off;
	if (o > len)
		return SPOP_E_INVALID;
	if (o == len)
		return 0;
	spop_slice k;
	spop_value v;
	int r = spop_rawstr_decode(p + o, len - o, &k);
	if (r < 0)
		return r;
	o += (size_t)r;
	r = spop_value_decode(p + o, len - o, &v);
	if (r < 0)
		return r;
	o += (size_t)r;
	*key = k;
	*val = v;
	*off = o;
	return 1;
}

static bool slice_eq(spop_slice s, const char *lit, size_t n)
{
	return s.len == n && memcmp(s.ptr, lit, n) == 0;
}
#define SLICE_IS(s, lit) slice_eq((s), (lit), sizeof(lit) - 1)

static bool is_int_type(enum spop_type t)
{
	return t == SPOP_T_INT32 || t == SPOP_T_UINT32 || t == SPOP_T_INT64 || t == SPOP_T_UINT64;
}

/* True if the comma/space separated list s holds the token tok (exact length match). */
static bool list_has(spop_slice s, const char *tok, size_t toklen)
{
	size_t i = 0;
	while (i < s.len) {
		while (i < s.len && (s.ptr[i] == ',' || s.ptr[i] == ' ' || s.ptr[i] == '\t'))
			i++;
		size_t start = i;
		while (i < s.len && s.ptr[i] != ',' && s.ptr[i] != ' ' && s.ptr[i] != '\t')
			i++;
		if (i - start == toklen && memcmp(s.ptr + start, tok, toklen) == 0)
			return true;
	}
	return false;
}

int spop_hello_decode(const uint8_t *p, size_t len, spop_hello *out)
{
	spop_hello h;
	memset(&h, 0, sizeof(h));
	size_t off = 0;
	spop_slice k;
	spop_value v;
	int r;
	while ((r = spop_kv_next(p, len, &off, &k, &v)) == 1) {
		if (SLICE_IS(k, "supported-versions")) {
			if (v.type != SPOP_T_STR)
				return SPOP_E_INVALID;
			h.has_version = true;
			h.v2 = list_has(v.u.s, "2.0", 3);
		} else if (SLICE_IS(k, "max-frame-size")) {
			if (!is_int_type(v.type))
				return SPOP_E_INVALID;
			/* A negative or >4G value is unusable; treat it as absent-but-present (size check fails). */
			uint64_t n = v.u.u;
			h.has_frame_size = true;
			h.max_frame_size = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
			if ((v.type == SPOP_T_INT32 || v.type == SPOP_T_INT64) && v.u.i < 0)
				h.max_frame_size = 0;
		} else if (SLICE_IS(k, "capabilities")) {
			if (v.type != SPOP_T_STR)
				return SPOP_E_INVALID;
			h.capabilities = v.u.s;
		} else if (SLICE_IS(k, "engine-id")) {
			if (v.type != SPOP_T_STR)
				return SPOP_E_INVALID;
			h.engine_id = v.u.s;
		} else if (SLICE_IS(k, "healthcheck")) {
			if (v.type != SPOP_T_BOOL)
				return SPOP_E_INVALID;
			h.healthcheck = v.u.b;
		}
	}
	if (r < 0)
		return r;
	*out = h;
	return 0;
}

int spop_hello_check(const spop_hello *h, uint32_t our_max, uint32_t *frame_size, unsigned *status)
{
	if (!h->has_version) {
		*status = SPOP_ST_NO_VSN;
		return SPOP_E_VERSION;
	}
	if (!h->v2) {
		*status = SPOP_ST_BAD_VSN;
		return SPOP_E_VERSION;
	}
	if (!h->has_frame_size) {
		*status = SPOP_ST_NO_FRAME_SIZE;
		return SPOP_E_FRAMESIZE;
	}
	/* Never refuse a larger HAProxy value: take the minimum. Only a value below the protocol floor is
	 * unusable, because we could not answer within it. */
	if (h->max_frame_size < SPOP_MIN_FRAME_SIZE) {
		*status = SPOP_ST_BAD_FRAME_SIZE;
		return SPOP_E_FRAMESIZE;
	}
	*frame_size = h->max_frame_size < our_max ? h->max_frame_size : our_max;
	*status = SPOP_ST_NORMAL;
	return 0;
}

int spop_agent_hello_encode(spop_wbuf *w, uint32_t max_frame_size)
{
	size_t off = spop_frame_begin(w, SPOP_FRAME_AGENT_HELLO, 0, 0);
	spop_put_rawstr(w, "version", 7);
	spop_put_u8(w, SPOP_T_STR);
	spop_put_rawstr(w, "2.0", 3);
	spop_put_rawstr(w, "max-frame-size", 14);
	spop_put_u8(w, SPOP_T_UINT32);
	spop_put_varint(w, max_frame_size);
	spop_put_rawstr(w, "capabilities", 12);
	spop_put_u8(w, SPOP_T_STR);
	spop_put_rawstr(w, "pipelining", 10);
	return spop_frame_end(w, off);
}

int spop_disconnect_decode(const uint8_t *p, size_t len, spop_disconnect *out)
{
	spop_disconnect d;
	memset(&d, 0, sizeof(d));
	size_t off = 0;
	spop_slice k;
	spop_value v;
	int r;
	while ((r = spop_kv_next(p, len, &off, &k, &v)) == 1) {
		if (SLICE_IS(k, "status-code")) {
			if (!is_int_type(v.type))
				return SPOP_E_INVALID;
			d.status = v.u.u > UINT32_MAX ? UINT32_MAX : (uint32_t)v.u.u;
		} else if (SLICE_IS(k, "message")) {
			if (v.type != SPOP_T_STR)
				return SPOP_E_INVALID;
			d.message = v.u.s;
		}
	}
	if (r < 0)
		return r;
	*out = d;
	return 0;
}

int spop_agent_disconnect_encode(spop_wbuf *w, unsigned status, const char *msg)
{
	if (!msg)
		msg = spop_status_str(status);
	size_t mlen = strlen(msg);
	if (mlen > 255) /* HAProxy 2.6 treats a longer message as an invalid frame */
		mlen = 255;
	size_t off = spop_frame_begin(w, SPOP_FRAME_AGENT_DISCONNECT, 0, 0);
	spop_put_rawstr(w, "status-code", 11);
	spop_put_u8(w, SPOP_T_UINT32);
	spop_put_varint(w, status);
	spop_put_rawstr(w, "message", 7);
	spop_put_u8(w, SPOP_T_STR);
	spop_put_rawstr(w, msg, mlen);
	return spop_frame_end(w, off);
}

/* ---- NOTIFY messages ------------------------------------------------------------------------------------- */

int spop_msg_next(const uint8_t *p, size_t len, size_t *off, spop_msg *out)
{
	size_t o = *off;
	if (o > len)
		return SPOP_E_INVALID;
	if (o == len)
		return 0;
	spop_msg m;
	int r = spop_rawstr_decode(p + o, len - o, &m.name);
	if (r < 0)
		return r;
	o += (size_t)r;
	if (len - o < 1)
		return SPOP_E_TRUNCATED;
	m.nargs = p[o++];
	size_t start = o;
	for (unsigned i = 0; i < m.nargs; i++) {
		spop_slice k;
		spop_value v;
		r = spop_kv_next(p, len, &o, &k, &v);
		if (r < 0)
			return r;
		if (r == 0)
			return SPOP_E_TRUNCATED;
	}
	m.args.ptr = p + start;
	m.args.len = o - start;
	m.off = 0;
	m.seen = 0;
	*out = m;
	*off = o;
	return 1;
}

int spop_msg_next_arg(spop_msg *m, spop_arg *out)
{
	if (m->seen >= m->nargs)
		return 0;
	spop_arg a;
	size_t o = m->off;
	int r = spop_kv_next(m->args.ptr, m->args.len, &o, &a.name, &a.value);
	if (r < 0)
		return r;
	if (r == 0)
		return SPOP_E_TRUNCATED;
	m->off = o;
	m->seen++;
	*out = a;
	return 1;
}

int spop_msg_find_arg(const spop_msg *m, const char *name, spop_arg *out)
{
	spop_msg it = *m;
	it.off = 0;
	it.seen = 0;
	size_t n = strlen(name);
	spop_arg a;
	int r;
	while ((r = spop_msg_next_arg(&it, &a)) == 1) {
		if (a.name.len == n && memcmp(a.name.ptr, name, n) == 0) {
			*out = a;
			return 1;
		}
	}
	return r;
}

/* ---- ACK actions ----------------------------------------------------------------------------------------- */

void spop_put_set_var(spop_wbuf *w, enum spop_scope scope, const void *name, size_t name_len,
		      const spop_value *v)
{
	if ((unsigned)scope > SPOP_SCOPE_RES) {
		w->err = w->err ? w->err : SPOP_E_ARG;
		return;
	}
	size_t save = w->len;
	spop_put_u8(w, SPOP_ACT_SET_VAR);
	spop_put_u8(w, 3);
	spop_put_u8(w, (uint8_t)scope);
	spop_put_rawstr(w, name, name_len);
	spop_put_value(w, v);
	if (w->err)
		w->len = save; /* never leave half an action behind */
}

void spop_put_unset_var(spop_wbuf *w, enum spop_scope scope, const void *name, size_t name_len)
{
	if ((unsigned)scope > SPOP_SCOPE_RES) {
		w->err = w->err ? w->err : SPOP_E_ARG;
		return;
	}
	size_t save = w->len;
	spop_put_u8(w, SPOP_ACT_UNSET_VAR);
	spop_put_u8(w, 2);
	spop_put_u8(w, (uint8_t)scope);
	spop_put_rawstr(w, name, name_len);
	if (w->err)
		w->len = save;
}

int spop_action_next(const uint8_t *p, size_t len, size_t *off, spop_action *out)
{
	size_t o = *off;
	if (o > len)
		return SPOP_E_INVALID;
	if (o == len)
		return 0;
	if (len - o < 3)
		return SPOP_E_TRUNCATED;
	spop_action a;
	memset(&a, 0, sizeof(a));
	a.type = p[o];
	uint8_t nb = p[o + 1];
	a.scope = p[o + 2];
	o += 3;
	if (a.scope > SPOP_SCOPE_RES)
		return SPOP_E_INVALID;
	int r = spop_rawstr_decode(p + o, len - o, &a.name);
	if (r < 0)
		return r;
	o += (size_t)r;
	if (a.type == SPOP_ACT_SET_VAR) {
		if (nb != 3)
			return SPOP_E_INVALID;
		r = spop_value_decode(p + o, len - o, &a.value);
		if (r < 0)
			return r;
		o += (size_t)r;
	} else if (a.type == SPOP_ACT_UNSET_VAR) {
		if (nb != 2)
			return SPOP_E_INVALID;
	} else {
		return SPOP_E_INVALID;
	}
	*out = a;
	*off = o;
	return 1;
}
