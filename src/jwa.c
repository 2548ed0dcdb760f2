/*
 * jwa.c — the algorithm table; see jwa.h.
 */
#include "jwa.h"

#include <string.h>

static const struct {
	const char *name;
	int alg;
	unsigned digest_bits;
} algs[] = {
	{ "RS256", JWA_RS256, 256 }, { "RS384", JWA_RS384, 384 }, { "RS512", JWA_RS512, 512 },
	{ "PS256", JWA_PS256, 256 }, { "PS384", JWA_PS384, 384 }, { "PS512", JWA_PS512, 512 },
	{ "ES256", JWA_ES256, 256 }, { "ES384", JWA_ES384, 384 }, { "ES512", JWA_ES512, 512 },
	{ "EdDSA", JWA_EDDSA, 0 },
};

int jwa_parse(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0)
			return algs[i].alg;
	return JWA_E_UNKNOWN;
}

const char *jwa_name(int alg)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (algs[i].alg == alg)
			return algs[i].name;
	return "?";
}

unsigned jwa_digest_bits(int alg)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (algs[i].alg == alg)
			return algs[i].digest_bits;
	return 0;
}

bool jwa_is_pss(int alg)
{
	return alg >= JWA_PS256 && alg <= JWA_PS512;
}

int jwa_list_parse(const char *list, unsigned *mask)
{
	unsigned m = 0;
	const char *s = list;

	if (!list || !*list) {
		*mask = JWA_BIT(JWA_RS256);
		return 0;
	}
	for (;;) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		int a;

		while (n && *s == ' ') {
			s++;
			n--;
		}
		while (n && s[n - 1] == ' ')
			n--;
		a = jwa_parse(s, n);
		if (a < 0)
			return JWA_E_UNKNOWN;
		m |= JWA_BIT(a);
		if (!e)
			break;
		s = e + 1;
	}
	*mask = m;
	return 0;
}
