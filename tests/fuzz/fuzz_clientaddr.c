/*
 * fuzz_clientaddr.c — X-Forwarded-For elements and CIDRs: never a read past an element, an accepted element
 * always round-trips through inet_ntop/inet_pton to the same address, and the walk's answer is always the peer
 * or one of the entries. Input: the first line is a CIDR for the trust list, the rest is split on ',' into up
 * to CADDR_MAX_HOPS entries, right-most first; each piece is copied into its own exact-size block.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clientaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *block(const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	if (b != NULL)
		memcpy(b, p, n);
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t clen = nl != NULL ? (size_t)(nl - data) : size, off = nl != NULL ? clen + 1 : size;
	uint8_t *cidr = block(data, clen), *parts[CADDR_MAX_HOPS] = {0};
	uint8_t peer[16] = {10, 0, 0, 1}, out[16], a[16];
	caddr_slice xff[CADDR_MAX_HOPS];
	caddr_list l;
	caddr_net net;
	size_t n = 0;
	int fam, rc;

	memset(&l, 0, sizeof(l));
	memset(xff, 0, sizeof(xff));
	if (cidr == NULL)
		return 0;
	if (caddr_parse_net(cidr, clen, &net) == 0) {
		caddr_list_add(&l, &net);
		if (!caddr_trusted(&l, net.family, net.addr)) /* a network contains its own address */
			abort();
	}
	while (off < size && n < CADDR_MAX_HOPS) {
		const uint8_t *c = memchr(data + off, ',', size - off);
		size_t len = c != NULL ? (size_t)(c - (data + off)) : size - off;

		parts[n] = block(data + off, len);
		if (parts[n] == NULL)
			break;
		xff[n] = (caddr_slice){parts[n], len};
		if (caddr_parse_addr(parts[n], len, &fam, a) == 0) {
			char txt[64];
			uint8_t back[16] = {0};

			if (inet_ntop(fam == 4 ? AF_INET : AF_INET6, a, txt, sizeof(txt)) == NULL ||
			    inet_pton(fam == 4 ? AF_INET : AF_INET6, txt, back) != 1 ||
			    memcmp(back, a, fam == 4 ? 4 : 16) != 0)
				abort();
		}
		n++;
		off += len + 1;
	}
	rc = caddr_client(&l, 4, peer, xff, CADDR_MAX_HOPS, &fam, out);
	if (rc == CADDR_PEER && (fam != 4 || memcmp(out, peer, 4) != 0))
		abort();
	if (rc == CADDR_FORWARDED && caddr_trusted(&l, fam, out))
		abort();
	free(cidr);
	for (size_t i = 0; i < CADDR_MAX_HOPS; i++)
		free(parts[i]);
	return 0;
}
