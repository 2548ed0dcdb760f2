/*
 * spop_loadgen.c — SPOP load generator: N connections x M NOTIFYs in flight, bounded by a message count and a
 * time limit; prints messages/s and p50/p99/p999 latency (send of a NOTIFY to receipt of its ACK).
 *
 *   spop_loadgen [-h host] [-p port] [-c conns] [-m inflight] [-n total] [-t seconds] [-w warmup] [-f tokens]
 *
 * -f FILE (bench only, for the kube-oidc-spoa agent): one bearer token per line; every NOTIFY then carries the
 * conf/CONTRACT.md message `kos-auth` (auth="Bearer <token>", src=127.0.0.1, imp=NULL), tokens taken in turn.
 * One thread, epoll, non-blocking sockets; replies are batched: all ACKs read in one wakeup are answered with
 * new NOTIFYs in one write per connection. Every NOTIFY is the HAProxy 2.6 capture of docs/spop.md §7 (120 bytes).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spop_codec.h"

typedef struct lconn {
	int fd;
	bool ready;
	uint8_t in[1 << 16];
	size_t in_len;
	uint8_t out[1 << 16];
	size_t out_len;
	uint64_t *sent_ns; /* per slot (frame-id) */
	uint64_t next_sid;
} lconn;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint8_t msg_payload[16384 + 64];
static size_t msg_payload_len;

static void build_payload(void)
{
	spop_wbuf w;
	spop_wbuf_init(&w, msg_payload, sizeof(msg_payload));
	spop_put_rawstr(&w, "check-auth", 10);
	spop_put_u8(&w, 6);
	spop_value v = { .type = SPOP_T_STR, .u.s = { (const uint8_t *)"Bearer bad", 10 } };
	spop_put_rawstr(&w, "auth", 4);
	spop_put_value(&w, &v);
	spop_put_rawstr(&w, "src", 3);
	v.type = SPOP_T_IPV4;
	memcpy(v.u.ip4, (const uint8_t[]){ 127, 0, 0, 1 }, 4);
	spop_put_value(&w, &v);
	spop_put_rawstr(&w, "imp", 3);
	v.type = SPOP_T_NULL;
	spop_put_value(&w, &v);
	const char *hn = "host,user-agent,accept,authorization";
	spop_put_rawstr(&w, "hdrnames", 8);
	v.type = SPOP_T_STR;
	v.u.s.ptr = (const uint8_t *)hn;
	v.u.s.len = strlen(hn);
	spop_put_value(&w, &v);
	spop_put_rawstr(&w, "method", 6);
	v.u.s.ptr = (const uint8_t *)"GET";
	v.u.s.len = 3;
	spop_put_value(&w, &v);
	spop_put_rawstr(&w, "path", 4);
	v.u.s.ptr = (const uint8_t *)"/api";
	v.u.s.len = 4;
	spop_put_value(&w, &v);
	msg_payload_len = w.len;
}

static char **tokens;
static size_t ntokens, next_token;

static size_t build_kos_payload(uint8_t *buf, size_t cap)
{
	static char auth[16384 + 8];
	const char *t = tokens[next_token++ % ntokens];
	int n = snprintf(auth, sizeof(auth), "Bearer %s", t);
	spop_wbuf w;
	spop_wbuf_init(&w, buf, cap);
	spop_put_rawstr(&w, "kos-auth", 8);
	spop_put_u8(&w, 3);
	spop_value v = { .type = SPOP_T_STR, .u.s = { (const uint8_t *)auth, (size_t)n } };
	spop_put_rawstr(&w, "auth", 4);
	spop_put_value(&w, &v);
	spop_put_rawstr(&w, "src", 3);
	v.type = SPOP_T_IPV4;
	memcpy(v.u.ip4, (const uint8_t[]){ 127, 0, 0, 1 }, 4);
	spop_put_value(&w, &v);
	spop_put_rawstr(&w, "imp", 3);
	v.type = SPOP_T_NULL;
	spop_put_value(&w, &v);
	return w.len;
}

static void load_tokens(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror("loadgen: tokens file");
		exit(1);
	}
	size_t cap = 0;
	char line[16384];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0])
			continue;
		if (ntokens == cap) {
			cap = cap ? cap * 2 : 1024;
			tokens = realloc(tokens, cap * sizeof(*tokens));
		}
		if (!tokens || !(tokens[ntokens++] = strdup(line)))
			exit(1);
	}
	fclose(f);
	if (!ntokens) {
		fprintf(stderr, "loadgen: no tokens in %s\n", path);
		exit(1);
	}
}

static int flush(lconn *c);

static void queue_notify(lconn *c, unsigned slot)
{
	if (ntokens) {
		if (sizeof(c->out) - c->out_len < 16384 + 64 && flush(c) < 0) {
			fprintf(stderr, "loadgen: send failed\n");
			exit(1);
		}
		msg_payload_len = build_kos_payload(msg_payload, sizeof(msg_payload));
	}
	spop_wbuf w;
	spop_wbuf_init(&w, c->out + c->out_len, sizeof(c->out) - c->out_len);
	size_t off = spop_frame_begin(&w, SPOP_FRAME_NOTIFY, c->next_sid, slot + 1);
	c->next_sid += 2;
	spop_put_bytes(&w, msg_payload, msg_payload_len);
	if (spop_frame_end(&w, off) < 0) {
		fprintf(stderr, "loadgen: output buffer full\n");
		exit(1);
	}
	c->out_len += w.len;
	c->sent_ns[slot] = now_ns();
}

static int flush(lconn *c)
{
	size_t off = 0;
	while (off < c->out_len) {
		ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue; /* the agent reads quickly; keep it simple */
			return -1;
		}
		off += (size_t)n;
	}
	c->out_len = 0;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	const char *port = "12345";
	unsigned nconn = 4, inflight = 32;
	unsigned long total = 1000000, warmup = 0;
	double tmax = 10;
	int opt;
	while ((opt = getopt(argc, argv, "h:p:c:m:n:t:w:f:")) != -1) {
		switch (opt) {
		case 'h': host = optarg; break;
		case 'p': port = optarg; break;
		case 'c': nconn = (unsigned)atoi(optarg); break;
		case 'm': inflight = (unsigned)atoi(optarg); break;
		case 'n': total = strtoul(optarg, NULL, 10); break;
		case 't': tmax = atof(optarg); break;
		case 'w': warmup = strtoul(optarg, NULL, 10); break;
		case 'f': load_tokens(optarg); break;
		default:
			fprintf(stderr, "usage: spop_loadgen [-h host] [-p port] [-c conns] [-m inflight] [-n total] "
					"[-t seconds] [-w warmup] [-f tokens]\n");
			return 2;
		}
	}
	if (nconn == 0 || inflight == 0 || inflight > 200 || total == 0)
		return 2;
	build_payload();
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr, "loadgen: cannot resolve %s:%s\n", host, port);
		return 1;
	}
	int ep = epoll_create1(0);
	lconn *cs = calloc(nconn, sizeof(lconn));
	uint32_t *lat = malloc(total * sizeof(uint32_t));
	if (!cs || !lat)
		return 1;
	for (unsigned i = 0; i < nconn; i++) {
		lconn *c = &cs[i];
		c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			perror("loadgen: connect");
			return 1;
		}
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->sent_ns = calloc(inflight, sizeof(uint64_t));
		c->next_sid = 1;
		/* HAPROXY-HELLO as 3.x sends it */
		spop_wbuf w;
		spop_wbuf_init(&w, c->out, sizeof(c->out));
		size_t off = spop_frame_begin(&w, SPOP_FRAME_HAPROXY_HELLO, 0, 0);
		spop_value v = { .type = SPOP_T_STR, .u.s = { (const uint8_t *)"2.0", 3 } };
		spop_put_rawstr(&w, "supported-versions", 18);
		spop_put_value(&w, &v);
		spop_put_rawstr(&w, "max-frame-size", 14);
		spop_value fs = { .type = SPOP_T_UINT32, .u.u = 16380 };
		spop_put_value(&w, &fs);
		spop_put_rawstr(&w, "capabilities", 12);
		v.u.s.ptr = (const uint8_t *)"pipelining";
		v.u.s.len = 10;
		spop_put_value(&w, &v);
		spop_frame_end(&w, off);
		c->out_len = w.len;
		if (flush(c) < 0)
			return 1;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	freeaddrinfo(ai);

	unsigned long sent = 0, recvd = 0, measured = 0;
	uint64_t t0 = now_ns(), tstart = 0, deadline = t0 + (uint64_t)(tmax * 1e9);
	unsigned long target = total + warmup;
	struct epoll_event evs[64];
	while (recvd < target) {
		if (now_ns() > deadline) {
			fprintf(stderr, "loadgen: time limit reached after %lu messages\n", recvd);
			break;
		}
		int n = epoll_wait(ep, evs, 64, 1000);
		for (int e = 0; e < n; e++) {
			lconn *c = evs[e].data.ptr;
			ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				fprintf(stderr, "loadgen: connection closed by the agent\n");
				return 1;
			}
			c->in_len += (size_t)r;
			size_t off = 0;
			uint64_t t = now_ns();
			while (c->in_len - off >= 4) {
				uint32_t fl = (uint32_t)c->in[off] << 24 | (uint32_t)c->in[off + 1] << 16 |
					      (uint32_t)c->in[off + 2] << 8 | c->in[off + 3];
				if (fl > c->in_len - off - 4)
					break;
				spop_frame f;
				if (spop_frame_decode(c->in + off + 4, fl, &f) < 0) {
					fprintf(stderr, "loadgen: bad frame from agent\n");
					return 1;
				}
				off += 4 + fl;
				if (f.type == SPOP_FRAME_AGENT_HELLO) {
					c->ready = true;
					for (unsigned s = 0; s < inflight && sent < target; s++, sent++)
						queue_notify(c, s);
					continue;
				}
				if (f.type != SPOP_FRAME_ACK || f.frame_id == 0 || f.frame_id > inflight) {
					fprintf(stderr, "loadgen: unexpected frame type %u\n", f.type);
					return 1;
				}
				unsigned slot = (unsigned)f.frame_id - 1;
				recvd++;
				if (recvd == warmup + 1)
					tstart = t;
				if (recvd > warmup && measured < total) {
					uint64_t d = t - c->sent_ns[slot];
					lat[measured++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
				}
				if (sent < target) {
					queue_notify(c, slot);
					sent++;
				}
			}
			memmove(c->in, c->in + off, c->in_len - off);
			c->in_len -= off;
			if (c->out_len && flush(c) < 0) {
				fprintf(stderr, "loadgen: send failed\n");
				return 1;
			}
		}
	}
	uint64_t t1 = now_ns();
	if (!tstart)
		tstart = t0;
	double secs = (double)(t1 - tstart) / 1e9;
	qsort(lat, measured, sizeof(uint32_t), cmp_u32);
#define PCT(p) (measured ? lat[(size_t)((double)(measured - 1) * (p))] / 1000.0 : 0)
	printf("messages=%lu seconds=%.3f msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f conns=%u inflight=%u\n",
	       measured, secs, measured / (secs > 0 ? secs : 1), PCT(0.50), PCT(0.99), PCT(0.999), nconn, inflight);
	for (unsigned i = 0; i < nconn; i++)
		close(cs[i].fd);
	return recvd >= target ? 0 : 3;
}
