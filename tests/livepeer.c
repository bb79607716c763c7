/* SPDX-License-Identifier: MIT */
/*
 * rpage-livepeer DIR: live migration between two authenticated ends on
 * loopback, with uninvited peers around, through the library.
 *
 * DIR holds live.psk (identity "live": the destination's key file),
 * keys.psk (the source's: "live" first, then "other") and other.psk
 * (only "other": a peer the source's file knows, the destination's does
 * not). Steps, each printing PASS or FAIL:
 *   1. before the source, the destination gets: an idle TCP connection, a
 *      plain LIVE_HELLO with page data behind it, and a TLS client with a
 *      wrong key; the real source then migrates (hybrid, static memory:
 *      it converges), every byte arrives, no page server was ever started
 *      (nothing left for post-copy), the destination logs and ignores the
 *      others, and the memory was not touched before the real source;
 *   2. post-copy: the source's page server exists only after the
 *      switchover; a peer that authenticates with the key file but as
 *      another identity ("other") is refused there, and so is a plain
 *      one; the destination fetches every page and the bytes are right.
 *   3. secure by default: without credentials the destination refuses to
 *      wait on 0.0.0.0, and the source refuses to send memory to ADDR
 *      (rpage-livepeer DIR ADDR: a local address that is not loopback),
 *      sending nothing to the plain listener there.
 * Exit 0 when every step held.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/net.h"
#include "../common/proto.h"
#include "../common/proto_live.h"
#include "../common/rp.h"
#include "../common/tls.h"

#define LEN (4u << 20)
#define PS 4096u

static int failures;
static struct rpage_tls *keys, *live, *other;

static void result(bool ok, const char *what)
{
	printf("livepeer: %s %s\n", ok ? "PASS" : "FAIL", what);
	fflush(stdout);
	if (!ok)
		failures++;
}

static uint64_t word(uint64_t off)
{
	uint64_t z = off * 0x9e3779b97f4a7c15ull ^ 0x5bd1e995;

	return z ^ (z >> 29);
}

static void fill(char *m)
{
	for (uint64_t o = 0; o < LEN; o += 8)
		memcpy(m + o, &(uint64_t){ word(o) }, 8);
}

/* Offset of the first wrong word, or -1. */
static int64_t check(const char *m)
{
	for (uint64_t o = 0; o < LEN; o += 8) {
		uint64_t v;

		memcpy(&v, m + o, 8);
		if (v != word(o))
			return (int64_t)o;
	}
	return -1;
}

static int no_pause(void *arg)
{
	(void)arg;
	return 0;
}

struct dest_run {
	struct rpage_live_dest *d;
	int ret;
	pthread_t thr;
};

static void *dest_main(void *arg)
{
	struct dest_run *r = arg;

	r->ret = rpage_live_dest_run(r->d);
	return NULL;
}

/* The uninvited: an idle connection, a plain HELLO with pages behind it,
 * a TLS client with the wrong key. Returns their descriptors. */
static void uninvited(const char *port, int fds[3])
{
	uint8_t b[RP_HDR_LEN + RP_LIVE_HELLO_LEN + RP_HDR_LEN + RP_LIVE_PAGES_HDR + PS];
	struct rp_live_hello h = { .version = RP_LIVE_VERSION,
				   .role = RP_LIVE_ROLE_CONTROL,
				   .nstreams = 1, .page_size = PS,
				   .length = LEN, .session = 42 };
	struct rp_live_pages pg = { .round = 1, .npages = 1, .first = 0 };
	struct rp_hdr hd = { .type = RP_MSG_LIVE_HELLO, .len = RP_LIVE_HELLO_LEN };
	struct rp_conn c;
	size_t n = 0;

	fds[0] = rp_tcp_connect("127.0.0.1", port); /* says nothing */
	fds[1] = rp_tcp_connect("127.0.0.1", port);
	rp_hdr_encode(b, &hd);
	n = RP_HDR_LEN + rp_live_hello_encode(b + RP_HDR_LEN, &h);
	hd = (struct rp_hdr){ .type = RP_MSG_LIVE_PAGES,
			      .len = RP_LIVE_PAGES_HDR + PS };
	rp_hdr_encode(b + n, &hd);
	n += RP_HDR_LEN;
	n += rp_live_pages_hdr_encode(b + n, &pg);
	memset(b + n, 0xEE, PS);
	n += PS;
	if (fds[1] >= 0 && rp_write_full(fds[1], b, n))
		printf("livepeer: note: the plain peer's write was cut short\n");
	fds[2] = rp_tcp_connect("127.0.0.1", port);
	if (fds[2] >= 0) {
		rp_conn_init(&c, fds[2]);
		rp_conn_set_deadline(&c, rp_now_ns() + 5000000000ull);
		result(rp_tls_client(&c, other, "127.0.0.1") == -EACCES,
		       "a TLS peer with a key the destination does not know is refused");
		rp_conn_close(&c);
		fds[2] = -1;
	}
}

/* The destination's memory is untouched (all zero). */
static bool untouched(const char *m)
{
	for (uint64_t o = 0; o < LEN; o++)
		if (((volatile const char *)m)[o])
			return false;
	return true;
}

struct src_run {
	struct rpage_live_source *s;
	char port[16];
	int ret;
	pthread_t thr;
};

static void *src_main(void *arg)
{
	struct src_run *r = arg;

	r->ret = rpage_live_source_migrate(r->s, "127.0.0.1", r->port);
	return NULL;
}

/* Both ends of one migration in this process, the destination listening
 * on loopback: @sr->port names it. */
static int ends(enum rpage_live_mode mode, char *src, char *dst,
		struct rpage_live_dest **d, struct src_run *sr)
{
	struct rpage_live_opts lo = { .mode = mode, .streams = 2,
				      .pause = no_pause, .tls = keys,
				      .postcopy_transport = RPAGE_TRANSPORT_TCP };
	int ret;

	if (src == MAP_FAILED || dst == MAP_FAILED)
		return -ENOMEM;
	fill(src);
	ret = rpage_live_dest_new(dst, LEN, PS, NULL, d);
	if (!ret)
		ret = rpage_live_dest_set_tls(*d, live, 0);
	if (!ret)
		ret = rpage_live_dest_set_transport(*d, RPAGE_TRANSPORT_TCP);
	if (!ret)
		ret = rpage_live_dest_listen(*d, "127.0.0.1", "0");
	if (!ret)
		ret = rpage_live_source_new(src, LEN, PS, &lo, &sr->s);
	if (!ret)
		snprintf(sr->port, sizeof(sr->port), "%d",
			 rpage_live_dest_port(*d));
	return ret;
}

static int migrate(void)
{
	char *src = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *dst = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rpage_live_dest *d = NULL;
	struct rpage_live_stats st;
	struct src_run sr = { 0 };
	int fds[3] = { -1, -1, -1 }, ret;

	ret = ends(RPAGE_LIVE_HYBRID, src, dst, &d, &sr);
	if (ret)
		return ret;
	/* the destination waits for its source; the uninvited come first
	 * and must not hold it up */
	{
		struct dest_run dr0 = { .d = d };

		pthread_create(&dr0.thr, NULL, dest_main, &dr0);
		uninvited(sr.port, fds);
		usleep(300000);
		result(untouched(dst),
		       "the uninvited wrote nothing into the destination's memory");
		pthread_create(&sr.thr, NULL, src_main, &sr);
		pthread_join(dr0.thr, NULL);
		ret = dr0.ret;
	}
	if (!ret) {
		result(check(dst) < 0,
		       "pre-copy with uninvited peers around: every byte right at the destination");
		ret = rpage_live_dest_wait(d, 20000);
	}
	pthread_join(sr.thr, NULL);
	rpage_live_source_get_stats(sr.s, &st);
	if (ret || sr.ret) {
		result(false, "the authenticated migration failed");
		printf("livepeer: source %d (%s), destination %d\n", sr.ret,
		       st.why, ret);
	}
	result(st.postcopy_port == 0,
	       "no page server was started: nothing was left for post-copy");
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	rpage_live_source_free(sr.s);
	rpage_live_dest_free(d);
	munmap(src, LEN);
	munmap(dst, LEN);
	return ret ? ret : sr.ret;
}

/* Post-copy: the page server exists from the switchover on and admits
 * the destination's identity alone. */
static void postcopy(void)
{
	char *src = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *dst = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rpage_connect_opts co = { .transport = RPAGE_TRANSPORT_TCP };
	struct rpage_live_dest *d = NULL;
	struct rpage_source *x = NULL;
	struct rpage_live_stats st;
	struct src_run sr = { 0 };
	char port[16];
	int ret;

	if (ends(RPAGE_LIVE_POSTCOPY, src, dst, &d, &sr)) {
		result(false, "post-copy: set-up");
		return;
	}
	pthread_create(&sr.thr, NULL, src_main, &sr);
	ret = rpage_live_dest_run(d); /* returns at the switchover */
	rpage_live_source_get_stats(sr.s, &st);
	result(!ret && st.postcopy_port,
	       "post-copy: the switchover names the source's page server");
	if (!ret && st.postcopy_port) {
		snprintf(port, sizeof(port), "%u", st.postcopy_port);
		co.tls = other;
		ret = rpage_source_connect_opts("127.0.0.1", port, &co, &x);
		rpage_source_close(x);
		x = NULL;
		result(ret == -EACCES,
		       "post-copy: the page server refuses another identity that holds a key of the file");
		co.tls = NULL;
		ret = rpage_source_connect_opts("127.0.0.1", port, &co, &x);
		rpage_source_close(x);
		result(ret == -EACCES, "post-copy: the page server refuses a plain peer");
		result(check(dst) < 0, "post-copy: every byte right at the destination");
		result(rpage_live_dest_wait(d, 20000) == 0,
		       "post-copy: complete at the destination");
	}
	pthread_join(sr.thr, NULL);
	result(sr.ret == 0, "post-copy: the source reports the migration done");
	rpage_live_source_free(sr.s);
	rpage_live_dest_free(d);
	munmap(src, LEN);
	munmap(dst, LEN);
}

/* Without credentials neither end talks beyond loopback. */
static void secure_default(const char *addr)
{
	char *mem = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rpage_live_opts lo = { .mode = RPAGE_LIVE_HYBRID, .streams = 2,
				      .pause = no_pause,
				      .postcopy_transport = RPAGE_TRANSPORT_TCP };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct rpage_live_dest *d = NULL;
	struct rpage_live_source *s = NULL;
	struct pollfd pf;
	char port[16], b[64];
	int ret, lfd, cfd;
	ssize_t n;

	if (mem == MAP_FAILED) {
		result(false, "secure default: no memory");
		return;
	}
	ret = rpage_live_dest_new(mem, LEN, PS, NULL, &d);
	if (!ret)
		ret = rpage_live_dest_set_tls(d, NULL, 0);
	if (!ret)
		ret = rpage_live_dest_listen(d, "0.0.0.0", "0");
	if (!ret)
		ret = rpage_live_dest_run(d);
	result(ret == -EACCES,
	       "without credentials the destination refuses to wait on 0.0.0.0");
	rpage_live_dest_free(d);
	if (!addr) {
		printf("livepeer: note: no address beyond loopback given: the source's refusal is not checked\n");
		munmap(mem, LEN);
		return;
	}
	/* a plain listener on ADDR stands for a destination */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		result(false, "secure default: a listener on the address given");
		if (lfd >= 0)
			close(lfd);
		munmap(mem, LEN);
		return;
	}
	snprintf(port, sizeof(port), "%u", ntohs(sa.sin_port));
	ret = rpage_live_source_new(mem, LEN, PS, &lo, &s);
	if (!ret)
		ret = rpage_live_source_migrate(s, addr, port);
	result(ret == -EACCES,
	       "without credentials the source refuses to send memory beyond loopback");
	/* it connected (to learn where it was) and sent nothing */
	pf = (struct pollfd){ lfd, POLLIN, 0 };
	n = -1;
	if (poll(&pf, 1, 2000) == 1 && (cfd = accept(lfd, NULL, NULL)) >= 0) {
		pf = (struct pollfd){ cfd, POLLIN, 0 };
		n = poll(&pf, 1, 2000) == 1 ? recv(cfd, b, sizeof(b), 0) : -1;
		close(cfd);
	}
	result(n == 0, "the refusing source sent not a byte");
	close(lfd);
	rpage_live_source_free(s);
	munmap(mem, LEN);
}

int main(int argc, char **argv)
{
	char path[512];
	struct rpage_tls_opts o = { 0 };

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: rpage-livepeer DIR [ADDR]\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/keys.psk", argv[1]);
	o.psk_file = path;
	if (rpage_tls_new(&o, &keys))
		return 1;
	snprintf(path, sizeof(path), "%s/other.psk", argv[1]);
	if (rpage_tls_new(&o, &other))
		return 1;
	snprintf(path, sizeof(path), "%s/live.psk", argv[1]);
	if (rpage_tls_new(&o, &live))
		return 1;
	if (migrate())
		result(false, "hybrid migration with uninvited peers");
	postcopy();
	secure_default(argc == 3 ? argv[2] : NULL);
	rpage_tls_free(keys);
	rpage_tls_free(live);
	rpage_tls_free(other);
	printf("livepeer: %s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
