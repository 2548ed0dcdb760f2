/* kosmsg.c — the kos-auth arguments of a NOTIFY into kosmsg_args; see kosmsg.h. */
#include "kosmsg.h"

#include <ctype.h>
#include <string.h>

static bool name_is(spop_slice s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* A bytes argument: STRING or BINARY (HAProxy's bytes() may give either) into *p and *len: 1; NULL: 0 (nothing
 * written); any other type: -1 (outside the contract). */
static int bytes_arg(const spop_arg *a, const uint8_t **p, size_t *len)
{
	if (a->value.type == SPOP_T_STR || a->value.type == SPOP_T_BIN) {
		*p = a->value.u.s.ptr;
		*len = a->value.u.s.len;
		return 1;
	}
	return a->value.type == SPOP_T_NULL ? 0 : -1;
}

/* xk must be exactly KOSMSG_XK_SLOTS keys joined by '|', each made of what the ACK writer's pct_key() writes
 * (kosmsg_key_byte()s and %XX, letters in any case: slots are compared without case): a '|' inside a
 * KOS_EXTRA_<n> value would shift every later slot and put one key's values under another's header name, and
 * any other byte could not be a key the agent matches anyway. */
static bool slots_ok(const uint8_t *p, size_t len)
{
	unsigned bars = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];

		if (c == '|')
			bars++;
		else if (c == '%') {
			if (len - i < 3 || !isxdigit(p[i + 1]) || !isxdigit(p[i + 2]))
				return false;
			i += 2;
		} else if (!kosmsg_key_byte((uint8_t)tolower(c)))
			return false;
	}
	return bars == KOSMSG_XK_SLOTS - 1;
}

int kosmsg_read(const spop_msg *m, kosmsg_args *in)
{
	spop_msg it = *m;
	spop_arg a;
	bool seen_auth = false, seen_src = false, seen_imp = false, seen_sv = false, seen_xk = false, seen_imh = false;
	int rc, got;

	while ((rc = spop_msg_next_arg(&it, &a)) == 1) {
		if (name_is(a.name, "auth") && !seen_auth) {
			seen_auth = true;
			if (a.value.type == SPOP_T_STR) {
				in->have_auth = true;
				in->auth = a.value.u.s.ptr;
				in->auth_len = a.value.u.s.len;
			} else if (a.value.type != SPOP_T_NULL) {
				goto bad;
			}
		} else if (name_is(a.name, "src") && !seen_src) {
			seen_src = true;
			if (a.value.type == SPOP_T_IPV4) {
				in->src_family = 4;
				memcpy(in->src, a.value.u.ip4, 4);
			} else if (a.value.type == SPOP_T_IPV6) {
				in->src_family = 6;
				memcpy(in->src, a.value.u.ip6, 16);
			} else if (a.value.type != SPOP_T_NULL) {
				goto bad;
			}
		} else if (name_is(a.name, "sv") && !seen_sv) {
			bool bytes = a.value.type == SPOP_T_STR || a.value.type == SPOP_T_BIN; /* bytes() may give either */

			seen_sv = true;
			/* anything but a version of the right length is "HAProxy holds none": it gets the token */
			if (bytes && a.value.u.s.len == SATOKEN_VER_LEN) {
				in->have_sv = true;
				memcpy(in->sv, a.value.u.s.ptr, SATOKEN_VER_LEN);
			} else if (!bytes && a.value.type != SPOP_T_NULL) {
				goto bad;
			}
		} else if (name_is(a.name, "xk") && !seen_xk) {
			seen_xk = true;
			if ((got = bytes_arg(&a, &in->xk, &in->xk_len)) < 0 || (got == 1 && !slots_ok(in->xk, in->xk_len)))
				goto bad;
		} else if (a.name.len == 4 && memcmp(a.name.ptr, "xff", 3) == 0 && a.name.ptr[3] >= '1' &&
			   a.name.ptr[3] < '1' + CADDR_MAX_HOPS) {
			caddr_slice *x = &in->xff[a.name.ptr[3] - '1'];

			in->have_xff = true;
			if (x->p != NULL)
				goto bad; /* the same entry twice: not what conf/spoe-kos.conf sends */
			if ((got = bytes_arg(&a, &x->p, &x->len)) < 0)
				goto bad;
			/* an empty entry still counts as present: the walk skips it and looks further left */
			if (got == 1 && x->len == 0)
				x->p = (const uint8_t *)"";
		} else if (name_is(a.name, "imh") && !seen_imh) {
			seen_imh = true;
			in->have_imh = true;
			if (bytes_arg(&a, &in->imh, &in->imh_len) < 0)
				goto bad;
		} else if (name_is(a.name, "imp") && !seen_imp) {
			seen_imp = true;
			/* fail closed: anything but "absent" or an explicit false counts as an impersonation attempt */
			if (a.value.type == SPOP_T_BOOL)
				in->imp = a.value.u.b;
			else if (a.value.type != SPOP_T_NULL)
				in->imp = true;
		}
		/* unknown arguments are ignored (contract) */
	}
	if (rc < 0)
		goto bad;
	return 0;
bad:
	in->bad_msg = true;
	return -1;
}

void kosmsg_read_request(spoa_request *req, kosmsg_args *in)
{
	spop_msg m;
	int rc;

	memset(in, 0, sizeof(*in));
	while ((rc = spoa_request_next_msg(req, &m)) == 1) {
		if (name_is(m.name, "kos-auth")) {
			in->have_msg = true;
			kosmsg_read(&m, in);
			break;
		}
	}
	if (rc < 0)
		in->bad_msg = true;
}
