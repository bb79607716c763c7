/* SPDX-License-Identifier: MIT */
/*
 * What the fault and fill benchmarks stand on: the memory image (a memfd
 * holding the deterministic pattern), the page server (in-process on
 * loopback, or a running rpage-server given by --connect), one source per
 * transport, and the raw-socket baselines of the same link.
 */
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/net.h"
#include "../common/pattern.h"
#include "../common/rp.h"
#include "bench.h"

const char *bench_transport_name(enum rpage_transport t)
{
	return t == BENCH_T_TLS ? "tls" : rpage_transport_name(t);
}

/* Credentials for the "tls" line: the user's key file, or a fresh key
 * written to a private directory for this run and removed at once. */
static int env_tls(struct bench_env *e, const char *psk_file)
{
	struct rpage_tls_opts o = { .psk_file = psk_file };
	char dir[] = "/tmp/rpage-bench-key.XXXXXX", path[64];
	int ret;

	if (psk_file)
		return rpage_tls_new(&o, &e->tls);
	if (!mkdtemp(dir))
		return -errno;
	snprintf(path, sizeof(path), "%s/keys.psk", dir);
	o.psk_file = path;
	ret = rpage_tls_gen_psk(path, "rpage-bench");
	if (!ret)
		ret = rpage_tls_new(&o, &e->tls);
	unlink(path);
	rmdir(dir);
	return ret;
}

int bench_env_open(struct bench_env *e, const char *connect,
		   uint64_t img_len, uint32_t psize)
{
	return bench_env_open_ex(e, connect, NULL, false, img_len, psize, NULL);
}

int bench_env_open_ex(struct bench_env *e, const char *connect,
		      const char *host, bool rdma, uint64_t img_len,
		      uint32_t psize, const char *psk_file)
{
	uint64_t chunk = 1 << 20;
	char *buf;
	int ret;

	memset(e, 0, sizeof(*e));
	e->memfd = -1;
	e->psize = psize;
	e->img_len = img_len;
	ret = env_tls(e, psk_file);
	if (ret) {
		fprintf(stderr, "rpage-bench: no credentials for the tls line: %s\n",
			strerror(-ret));
		return ret;
	}
	if (connect) {
		struct rpage_source *s;
		struct rpage_region_info ri;
		/* the bench reads a test image: a plain remote server is
		 * its operator's explicit choice */
		struct rpage_connect_opts co = { .transport = RPAGE_TRANSPORT_TCP,
						 .tls = psk_file ? e->tls : NULL,
						 .insecure = 1 };

		if (rp_split_hostport(connect, e->host, sizeof(e->host),
				      e->port, sizeof(e->port))) {
			fprintf(stderr, "rpage-bench: --connect wants HOST:PORT, not '%s'\n",
				connect);
			return -EINVAL;
		}
		e->remote = true;
		snprintf(e->tls_port, sizeof(e->tls_port), "%s", e->port);
		ret = rpage_source_connect_opts(e->host, e->port, &co, &s);
		if (ret) {
			fprintf(stderr, "rpage-bench: cannot reach rpage-server at %s: %s\n",
				connect, strerror(-ret));
			return ret;
		}
		rpage_source_region_info(s, 0, &ri);
		rpage_source_close(s);
		e->img_len = ri.length - ri.length % psize;
		if (!e->img_len) {
			fprintf(stderr, "rpage-bench: region '%s' is smaller than one page\n",
				ri.name);
			return -EINVAL;
		}
	}
	/* the local image (and the in-process server's region) */
	e->memfd = memfd_create("rpage-bench-image", MFD_CLOEXEC);
	if (e->memfd < 0 || ftruncate(e->memfd, (off_t)e->img_len))
		return -errno;
	buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < e->img_len; off += chunk) {
		uint64_t n = RP_MIN(chunk, e->img_len - off);

		rp_pattern_fill(buf, off, n, 1);
		if (pwrite(e->memfd, buf, n, (off_t)off) != (ssize_t)n) {
			free(buf);
			return -EIO;
		}
	}
	free(buf);
	snprintf(e->local_path, sizeof(e->local_path), "/proc/self/fd/%d",
		 e->memfd);
	if (connect)
		return 0;
	if (!host)
		host = "127.0.0.1";
	/* plain TCP on @host even beyond loopback: it serves a generated
	 * image (the tls line measures the authenticated path) */
	ret = rpage_server_new(&e->srv);
	if (!ret)
		ret = rpage_server_set_tls(e->srv, NULL, 1);
	if (!ret)
		ret = rpage_server_add_region_fd(e->srv, "bench", e->memfd,
						 e->img_len, psize);
	if (ret >= 0)
		ret = rpage_server_listen(e->srv, host, "0");
	if (!ret && rdma) {
		int r = rpage_server_listen_rdma(e->srv, host, "0");

		if (r)
			snprintf(e->rdma_why, sizeof(e->rdma_why),
				 "rdma not available: the in-process server cannot listen for RDMA on %s: %s%s",
				 host, strerror(-r),
				 r == -ENODEV ? " (no active RDMA port there: --host ADDR of the RoCE interface)" : "");
	}
	if (!ret)
		ret = rpage_server_start(e->srv);
	if (ret) {
		fprintf(stderr, "rpage-bench: in-process server: %s\n",
			strerror(-ret));
		return ret;
	}
	snprintf(e->host, sizeof(e->host), "%s", host);
	snprintf(e->port, sizeof(e->port), "%d", rpage_server_port(e->srv));
	return 0;
}

/* The in-process server of the "tls" line, on first use. */
static int env_tls_server(struct bench_env *e, char *why, size_t wl)
{
	int ret = rpage_server_new(&e->tls_srv);

	if (!ret)
		ret = rpage_server_add_region_fd(e->tls_srv, "bench", e->memfd,
						 e->img_len, e->psize);
	if (ret >= 0)
		ret = rpage_server_set_tls(e->tls_srv, e->tls, 0);
	if (!ret)
		ret = rpage_server_listen(e->tls_srv, e->host, "0");
	if (!ret)
		ret = rpage_server_start(e->tls_srv);
	if (ret) {
		snprintf(why, wl, "tls: the in-process TLS server: %s",
			 strerror(-ret));
		return ret;
	}
	snprintf(e->tls_port, sizeof(e->tls_port), "%d",
		 rpage_server_port(e->tls_srv));
	return 0;
}

void bench_env_close(struct bench_env *e)
{
	if (e->tls_srv)
		rpage_server_free(e->tls_srv);
	e->tls_srv = NULL;
	rpage_tls_free(e->tls);
	e->tls = NULL;
	if (e->srv)
		rpage_server_free(e->srv);
	if (e->memfd >= 0)
		close(e->memfd);
	e->srv = NULL;
	e->memfd = -1;
}

int bench_base_open(struct bench_base *bb, const char *connect,
		    const char *host, const enum rpage_transport *ts, int nt,
		    uint64_t img_len, uint32_t psize, const char *psk_file)
{
	bool want_rdma = false;
	int ret;

	if (!getenv("RPAGE_LOG"))
		rpage_set_log_level(RPAGE_LOG_WARN);
	for (int i = 0; i < nt; i++)
		want_rdma |= ts[i] == RPAGE_TRANSPORT_RDMA;
	ret = bench_env_open_ex(&bb->env, connect, host, want_rdma, img_len,
				psize, psk_file);
	bb->env_open = !ret;
	return ret;
}

void bench_base_close(struct bench_base *bb)
{
	if (bb->raw_ok)
		bench_raw_stop(&bb->raw);
	bench_rawrdma_close(bb->rr);
	if (bb->env_open)
		bench_env_close(&bb->env);
}

int bench_env_source(struct bench_env *e, enum rpage_transport t,
		     struct rpage_source **out, char *why, size_t wl)
{
	int ret;

	if (t == RPAGE_TRANSPORT_RDMA && e->rdma_why[0]) {
		snprintf(why, wl, "%s", e->rdma_why);
		return -ENODEV;
	}
	if (t == BENCH_T_TLS) {
		struct rpage_connect_opts co = { .transport = RPAGE_TRANSPORT_TCP,
						 .tls = e->tls };

		if (!e->remote && !e->tls_srv) {
			ret = env_tls_server(e, why, wl);
			if (ret)
				return ret;
		}
		ret = rpage_source_connect_opts(e->host, e->tls_port, &co, out);
		if (ret)
			snprintf(why, wl, "tls: %s%s", strerror(-ret),
				 e->remote ? " (give the server's key with --psk-file)"
					   : "");
		return ret;
	}
	if (t == RPAGE_TRANSPORT_LOCAL) {
		ret = rpage_source_open_local("bench", e->local_path, out);
	} else {
		struct rpage_connect_opts co = { .transport = t, .insecure = 1 };

		ret = rpage_source_connect_opts(e->host, e->port, &co, out);
	}
	if (!ret)
		return 0;
	if (t == RPAGE_TRANSPORT_RDMA) {
		if (access("/sys/class/infiniband", F_OK))
			snprintf(why, wl, "rdma not available: no RDMA device on this host (%s)",
				 strerror(-ret));
		else
			snprintf(why, wl, "rdma not available: %s%s",
				 strerror(-ret),
				 ret == -EPROTONOSUPPORT ? " (transport not built in)" : "");
	} else {
		snprintf(why, wl, "%s: %s", rpage_transport_name(t),
			 strerror(-ret));
	}
	return ret;
}

int bench_parse_transports(const char *s, enum rpage_transport *t,
			   unsigned max)
{
	char buf[128], *save = NULL, *tok;
	unsigned n = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int v = strcmp(tok, "tls") ? rpage_transport_parse(tok)
					   : (int)BENCH_T_TLS;

		if (v <= 0 || n == max) {
			fprintf(stderr, "rpage-bench: bad transport '%s' (local, tcp, tls, rdma)\n",
				tok);
			return -1;
		}
		for (unsigned i = 0; i < n; i++)
			if (t[i] == (enum rpage_transport)v)
				v = -1;
		if (v > 0)
			t[n++] = (enum rpage_transport)v;
	}
	return (int)n;
}

/* ---- the raw TCP baseline: a plain socket server on loopback ---- */

/*
 * Request: 16 bytes {u32 op, u32 len, u64 total}. op 1: answer with @len
 * bytes (a ping-pong: 16-byte request, page-sized reply). op 2: stream
 * @total bytes in writes of @len.
 */
struct raw_req {
	uint32_t op, len;
	uint64_t total;
};

static void *raw_conn(void *arg)
{
	struct bench_raw *r = arg;
	int fd = r->conn_fd;
	struct raw_req q;

	while (!rp_read_full(fd, &q, sizeof(q))) {
		if (q.len == 0 || q.len > r->buf_len)
			break;
		if (q.op == 1) {
			if (rp_write_full(fd, r->buf, q.len))
				break;
		} else if (q.op == 2) {
			for (uint64_t left = q.total; left;) {
				uint32_t n = (uint32_t)RP_MIN(left, q.len);

				if (rp_write_full(fd, r->buf, n))
					goto out;
				left -= n;
			}
		} else {
			break;
		}
	}
out:
	return NULL;
}

int bench_raw_start(struct bench_raw *r, uint32_t buf_len)
{
	int lfd, one = 1, ret;
	char port[16];

	memset(r, 0, sizeof(*r));
	r->cli_fd = r->conn_fd = -1;
	r->buf_len = buf_len;
	r->buf = mmap(NULL, buf_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	r->cbuf = mmap(NULL, buf_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (r->buf == MAP_FAILED || r->cbuf == MAP_FAILED)
		return -ENOMEM;
	rp_pattern_fill(r->buf, 0, buf_len, 1);
	lfd = rp_tcp_listen("127.0.0.1", "0", 4);
	if (lfd < 0)
		return lfd;
	snprintf(port, sizeof(port), "%d", rp_local_port(lfd));
	/* the same connection kind rpage uses: rp_tcp_connect sets
	 * TCP_NODELAY on the client, the server sets it on accept */
	r->cli_fd = rp_tcp_connect("127.0.0.1", port);
	if (r->cli_fd < 0) {
		ret = r->cli_fd;
		close(lfd);
		return ret;
	}
	r->conn_fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ret = r->conn_fd < 0 ? -errno : 0;
	close(lfd);
	if (ret)
		return ret;
	setsockopt(r->conn_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ret = -pthread_create(&r->thr, NULL, raw_conn, r);
	if (ret)
		return ret;
	r->started = true;
	return 0;
}

void bench_raw_stop(struct bench_raw *r)
{
	if (r->cli_fd >= 0)
		shutdown(r->cli_fd, SHUT_RDWR);
	if (r->started)
		pthread_join(r->thr, NULL);
	if (r->cli_fd >= 0)
		close(r->cli_fd);
	if (r->conn_fd >= 0)
		close(r->conn_fd);
	if (r->buf && r->buf != MAP_FAILED)
		munmap(r->buf, r->buf_len);
	if (r->cbuf && r->cbuf != MAP_FAILED)
		munmap(r->cbuf, r->buf_len);
	memset(r, 0, sizeof(*r));
	r->cli_fd = r->conn_fd = -1;
}

/* One ping-pong: 16-byte request, @len-byte reply. 0 or -errno. With
 * @spin, the client polls the socket (MSG_DONTWAIT) instead of sleeping:
 * the round trip without the cost of waking a sleeping thread. */
int bench_raw_rtt(struct bench_raw *r, uint32_t len, bool spin)
{
	struct raw_req q = { .op = 1, .len = len };
	int ret = rp_write_full(r->cli_fd, &q, sizeof(q));
	uint32_t got = 0;

	if (ret || !spin)
		return ret ? ret : rp_read_full(r->cli_fd, r->cbuf, len);
	while (got < len) {
		ssize_t n = recv(r->cli_fd, (char *)r->cbuf + got, len - got,
				 MSG_DONTWAIT);

		if (n > 0)
			got += (uint32_t)n;
		else if (n == 0)
			return -ECONNRESET;
		else if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Streams @total bytes in @chunk-byte writes and reads them all. */
int bench_raw_stream(struct bench_raw *r, uint64_t total, uint32_t chunk)
{
	struct raw_req q = { .op = 2, .len = chunk, .total = total };
	int ret = rp_write_full(r->cli_fd, &q, sizeof(q));

	for (uint64_t left = total; !ret && left;) {
		ssize_t n = read(r->cli_fd, r->cbuf, RP_MIN(left, r->buf_len));

		if (n > 0)
			left -= (uint64_t)n;
		else if (n == 0)
			ret = -ECONNRESET;
		else if (errno != EINTR)
			ret = -errno;
	}
	return ret;
}
