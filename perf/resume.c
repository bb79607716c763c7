/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench resume`: what a cut of the network costs a process in
 * post-copy. A workload thread faults pages of a fresh region in random
 * order (background fill off, so every touch is a fault served over the
 * transport) while the main thread cuts every TCP connection of the
 * source, again and again: each cut aborts the sockets the way `ss -K`
 * does (SOCK_DESTROY over sock_diag: the local end gets ECONNABORTED, the
 * server a reset). Per cut it measures
 *  - resume:   from the cut until the library has reconnected (its
 *              reconnects counter moved) and the workload's next fault has
 *              been served, what the process sees as "back";
 *  - blocked:  the extra time the workload was blocked by the cut: over the
 *              faults that overlap [cut, resume], their time minus the
 *              p50 of an ordinary fault of the same run, summed.
 * Beside them, in the same run:
 *  - connect:  opening a new source from scratch (TCP connect, handshake,
 *              region list; with tls the TLS 1.3 handshake too): the floor
 *              of any reconnect, which also proves the session;
 *  - fault:    the workload's ordinary faults (those overlapping no cut).
 * Every page the workload reads is checked against the image.
 *
 * Threads: the main thread (cuts, polls the attachment's stats), one
 * workload thread; the library's own.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/pattern.h"
#include "../common/rp.h"
#include "../common/uffd.h"
#include "bench.h"

#define MAX_CUTS 1000
#define CONNECT_SAMPLES 20
#define RESUME_WAIT_NS (60ull * 1000000000ull)

struct resume_line {
	enum rpage_transport t;
	char why[200];
	struct bench_lat connect, resume, blocked, fault;
	uint64_t cuts, sockets, reconnects, waited, recovering_ns;
};

struct resume_bench {
	/* the command line */
	enum rpage_transport ts[4];
	int nt;
	const char *host, *json;
	uint64_t size;
	unsigned cuts, gap_ms;
	/* set up */
	struct bench_base base;
	struct resume_line lines[4];
	/* measured */
	uint64_t bad;
};

/* What the workload thread shares with the main thread. */
struct workload {
	char *mem;
	uint64_t np, img_off;
	uint64_t *perm;
	uint64_t *t0, *dur;      /* per access, in the order made */
	_Atomic uint64_t done;   /* accesses completed */
	_Atomic uint64_t last_end; /* when the last one completed */
	_Atomic bool stop;
	uint64_t bad;
};

static void resume_usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-bench resume [options]\n"
		"  -t, --transport LIST  tcp[,tls][,rdma] (default tcp; tls: TCP with TLS 1.3\n"
		"                        from a second in-process server; rdma: the connect\n"
		"                        floor only, its connections are not sockets)\n"
		"      --host ADDR       the in-process server's address (default 127.0.0.1;\n"
		"                        for rdma: the RoCE interface's)\n"
		"  -s, --size BYTES      region size; faults stop when it is all resident\n"
		"                        (default 1G)\n"
		"  -n, --cuts N          cuts per transport (default 20, at most %d)\n"
		"      --gap MS          ordinary faulting between cuts (default 100)\n"
		"      --json FILE       results as JSON\n"
		"Needs CAP_NET_ADMIN (the cut is SOCK_DESTROY, as `ss -K`).\n",
		MAX_CUTS);
}

static int resume_parse(void *arg, int argc, char **argv)
{
	struct resume_bench *b = arg;
	enum { O_JSON = 256, O_HOST, O_GAP };
	static const struct option lo[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 's' },
		{ "cuts", required_argument, NULL, 'n' },
		{ "gap", required_argument, NULL, O_GAP },
		{ "json", required_argument, NULL, O_JSON },
		{ "host", required_argument, NULL, O_HOST },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tlist = "tcp";
	int64_t v;
	int o;

	b->size = 1ull << 30;
	b->cuts = 20;
	b->gap_ms = 100;
	while ((o = getopt_long(argc, argv, "t:s:n:h", lo, NULL)) != -1) {
		switch (o) {
		case 't':
			tlist = optarg;
			break;
		case 's':
			v = bench_parse_size(optarg);
			if (v <= 0 || v % RP_PAGE_4K) {
				fprintf(stderr, "rpage-bench resume: bad size '%s'\n", optarg);
				return 2;
			}
			b->size = (uint64_t)v;
			break;
		case 'n':
			b->cuts = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case O_GAP:
			b->gap_ms = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case O_JSON:
			b->json = optarg;
			break;
		case O_HOST:
			b->host = optarg;
			break;
		case 'h':
			resume_usage(stdout);
			return 0;
		default:
			resume_usage(stderr);
			return 2;
		}
	}
	if (!b->cuts || b->cuts > MAX_CUTS || optind != argc) {
		resume_usage(stderr);
		return 2;
	}
	b->nt = bench_parse_transports(tlist, b->ts, 4);
	if (b->nt < 0)
		return 2;
	for (int i = 0; i < b->nt; i++) {
		if (b->ts[i] == RPAGE_TRANSPORT_LOCAL) {
			fprintf(stderr, "rpage-bench resume: the local transport has no connection to cut\n");
			return 2;
		}
	}
	return -1;
}

static int resume_setup(void *arg)
{
	struct resume_bench *b = arg;

	if (bench_base_open(&b->base, NULL, b->host, b->ts, b->nt, b->size,
			    RP_PAGE_4K, NULL))
		return 1;
	for (int i = 0; i < b->nt; i++) {
		struct resume_line *l = &b->lines[i];
		const char *n = bench_transport_name(b->ts[i]);

		l->t = b->ts[i];
		bench_lat_init(&l->connect, "connect", 0);
		bench_lat_init(&l->resume, "resume", 0);
		bench_lat_init(&l->blocked, "blocked", 0);
		bench_lat_init(&l->fault, "fault", RP_PAGE_4K);
		snprintf(l->connect.name, sizeof(l->connect.name), "%s-connect", n);
		snprintf(l->resume.name, sizeof(l->resume.name), "%s-resume", n);
		snprintf(l->blocked.name, sizeof(l->blocked.name), "%s-blocked", n);
		snprintf(l->fault.name, sizeof(l->fault.name), "%s-fault", n);
	}
	return 0;
}

/* ---- the cut: SOCK_DESTROY of every TCP socket connected to @port ---- */

struct diag_req {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 r;
};

static int diag_send(int nl, uint16_t type, uint16_t flags, uint8_t family,
		     const struct inet_diag_sockid *id)
{
	struct diag_req req;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = type;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | flags;
	req.r.sdiag_family = family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0u;
	if (id)
		req.r.id = *id;
	return send(nl, &req, sizeof(req), 0) < 0 ? -errno : 0;
}

/* The ids of the sockets of @family whose peer port is @port; their count
 * (at most @max) or -errno. */
static int diag_find(int nl, uint8_t family, uint16_t port,
		     struct inet_diag_sockid *ids, int max)
{
	static char buf[32768] __attribute__((aligned(8)));
	int n = 0, ret;

	ret = diag_send(nl, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, family, NULL);
	if (ret)
		return ret;
	for (;;) {
		ssize_t len = recv(nl, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (len < 0)
			return -errno;
		for (; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			struct inet_diag_msg *m = NLMSG_DATA(h);

			if (h->nlmsg_type == NLMSG_DONE)
				return n;
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				return e->error ? e->error : -EIO;
			}
			if (ntohs(m->id.idiag_dport) == port && n < max &&
			    m->idiag_state == 1 /* TCP_ESTABLISHED */)
				ids[n++] = m->id;
		}
	}
}

/* Aborts every established TCP socket of this host connected to @port
 * (the source's connections: the server is in this process, on a port of
 * its own). The count aborted, or -errno (-EOPNOTSUPP: the kernel lacks
 * CONFIG_INET_DIAG_DESTROY; -EPERM: no CAP_NET_ADMIN). */
static int cut_port(uint16_t port)
{
	static const uint8_t fams[] = { AF_INET, AF_INET6 };
	struct inet_diag_sockid ids[64];
	int nl, total = 0, ret = 0;

	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -errno;
	for (unsigned f = 0; f < sizeof(fams) && ret >= 0; f++) {
		int n = diag_find(nl, fams[f], port, ids, 64);

		if (n < 0) {
			ret = n;
			break;
		}
		for (int i = 0; i < n; i++) {
			char ack[256] __attribute__((aligned(8)));
			struct nlmsghdr *h = (struct nlmsghdr *)ack;
			ssize_t len;

			ret = diag_send(nl, SOCK_DESTROY, NLM_F_ACK, fams[f], &ids[i]);
			if (ret)
				break;
			len = recv(nl, ack, sizeof(ack), 0);
			if (len < 0) {
				ret = -errno;
				break;
			}
			if (NLMSG_OK(h, (size_t)len) && h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				/* -ENOENT: it closed meanwhile */
				if (e->error && e->error != -ENOENT) {
					ret = e->error;
					break;
				}
				if (!e->error)
					total++;
			}
		}
	}
	close(nl);
	return ret < 0 ? ret : total;
}

/* ---- the workload ---- */

static void *workload_main(void *arg)
{
	struct workload *w = arg;

	rp_thread_name("bench/work");
	for (uint64_t i = 0; i < w->np && !atomic_load(&w->stop); i++) {
		uint64_t pg = w->perm[i], in = (pg * 64) % RP_PAGE_4K, t0, t1;
		volatile uint64_t *p = (volatile uint64_t *)(w->mem + pg * RP_PAGE_4K + in);
		uint64_t v;

		t0 = rp_now_ns();
		v = *p;
		t1 = rp_now_ns();
		if (v != rp_pattern_word(1, w->img_off + pg * RP_PAGE_4K + in))
			w->bad++;
		w->t0[i] = t0;
		w->dur[i] = t1 - t0;
		atomic_store(&w->last_end, t1);
		atomic_store(&w->done, i + 1);
	}
	return NULL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Fresh sources, opened and closed: the floor of a reconnect. */
static int measure_connect(struct resume_bench *b, struct resume_line *l)
{
	for (int i = 0; i < CONNECT_SAMPLES; i++) {
		struct rpage_source *s = NULL;
		uint64_t t0 = rp_now_ns();
		int ret = bench_env_source(&b->base.env, l->t, &s, l->why,
					   sizeof(l->why));

		if (ret)
			return ret;
		bench_lat_add(&l->connect, rp_now_ns() - t0);
		rpage_source_close(s);
	}
	return 0;
}

/* The cuts of line @l. 0, or -errno with the reason in l->why. */
static int resume_line_run(struct resume_bench *b, struct resume_line *l)
{
	uint64_t np = b->size / RP_PAGE_4K, cut_t[MAX_CUTS], res_t[MAX_CUTS];
	struct rpage_attach_opts opts = { .no_fill = 1 };
	struct rpage_source *src = NULL;
	struct rpage_attach *att = NULL;
	struct workload w = { 0 };
	struct rpage_stats st;
	struct rpage_range r;
	pthread_t thr;
	bool thr_ok = false;
	uint16_t port;
	unsigned ncut = 0;
	int uffd = -1, ret;

	ret = measure_connect(b, l);
	if (ret)
		return ret;
	if (l->t == RPAGE_TRANSPORT_RDMA) {
		/* its connection manager and QPs are not sockets */
		snprintf(l->why, sizeof(l->why),
			 "the cut here aborts TCP sockets; RDMA connections are cut by taking the netdev down (the soft-RoCE guest test pair/netdev-down)");
		return -EOPNOTSUPP;
	}
	ret = bench_env_source(&b->base.env, l->t, &src, l->why, sizeof(l->why));
	if (ret)
		return ret;
	port = (uint16_t)atoi(l->t == BENCH_T_TLS ? b->base.env.tls_port
						   : b->base.env.port);
	w.np = np;
	w.perm = malloc(np * sizeof(*w.perm));
	w.t0 = calloc(np, sizeof(*w.t0));
	w.dur = calloc(np, sizeof(*w.dur));
	w.mem = mmap(NULL, b->size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!w.perm || !w.t0 || !w.dur || w.mem == MAP_FAILED) {
		w.mem = w.mem == MAP_FAILED ? NULL : w.mem;
		ret = -ENOMEM;
		snprintf(l->why, sizeof(l->why), "failed: %s", strerror(-ret));
		goto out;
	}
	for (uint64_t i = 0; i < np; i++)
		w.perm[i] = i;
	for (uint64_t i = np - 1; i > 0; i--) {
		uint64_t j = (uint64_t)rand() % (i + 1), t = w.perm[i];

		w.perm[i] = w.perm[j];
		w.perm[j] = t;
	}
	uffd = rp_uffd_open_register(UFFD_FEATURE_EVENT_REMOVE, w.mem, b->size,
				     UFFDIO_REGISTER_MODE_MISSING);
	if (uffd < 0) {
		ret = uffd;
		snprintf(l->why, sizeof(l->why), "failed: userfaultfd: %s",
			 strerror(-ret));
		goto out;
	}
	r.base = (uint64_t)(uintptr_t)w.mem;
	r.size = b->size;
	r.offset = 0;
	r.page_size = RP_PAGE_4K;
	ret = rpage_attach_start(src, 0, uffd, &r, 1, &opts, &att);
	if (ret) {
		snprintf(l->why, sizeof(l->why), "failed: attach: %s", strerror(-ret));
		goto out;
	}
	uffd = -1;
	ret = pthread_create(&thr, NULL, workload_main, &w);
	if (ret) {
		ret = -ret;
		snprintf(l->why, sizeof(l->why), "failed: thread: %s", strerror(-ret));
		goto out;
	}
	thr_ok = true;
	for (ncut = 0; ncut < b->cuts; ncut++) {
		uint64_t before, t_rec = 0, deadline;
		int n;

		sleep_ms(b->gap_ms);
		if (atomic_load(&w.done) >= np) {
			fprintf(stderr, "rpage-bench resume: %s: the region is all resident after %u cuts (use a larger --size)\n",
				bench_transport_name(l->t), ncut);
			break;
		}
		rpage_attach_get_stats(att, &st);
		before = st.reconnects;
		cut_t[ncut] = rp_now_ns();
		n = cut_port(port);
		if (n < 0) {
			ret = n;
			snprintf(l->why, sizeof(l->why), "failed: cutting the connections (SOCK_DESTROY): %s%s",
				 strerror(-ret),
				 ret == -EPERM ? " (needs CAP_NET_ADMIN)" :
				 ret == -EOPNOTSUPP ? " (the kernel lacks CONFIG_INET_DIAG_DESTROY)" : "");
			break;
		}
		l->sockets += (uint64_t)n;
		/* back: reconnected, and a fault served since */
		deadline = cut_t[ncut] + RESUME_WAIT_NS;
		for (;;) {
			uint64_t now = rp_now_ns();

			if (!t_rec) {
				rpage_attach_get_stats(att, &st);
				if (st.state == RPAGE_ATTACH_FAILED) {
					ret = st.error ? st.error : -EIO;
					snprintf(l->why, sizeof(l->why), "failed: the attachment failed after cut %u: %s",
						 ncut + 1, strerror(-ret));
					goto stop;
				}
				if (st.reconnects > before)
					t_rec = now;
			}
			if (t_rec && atomic_load(&w.last_end) > t_rec) {
				res_t[ncut] = atomic_load(&w.last_end);
				break;
			}
			if (t_rec && atomic_load(&w.done) >= np) {
				res_t[ncut] = t_rec;
				break;
			}
			if (now > deadline) {
				ret = -ETIMEDOUT;
				snprintf(l->why, sizeof(l->why), "failed: no resume within %llu s of cut %u",
					 RESUME_WAIT_NS / 1000000000ull, ncut + 1);
				goto stop;
			}
			usleep(20);
		}
		bench_lat_add(&l->resume, res_t[ncut] - cut_t[ncut]);
	}
stop:
	atomic_store(&w.stop, true);
	pthread_join(thr, NULL);
	thr_ok = false;
	rpage_attach_get_stats(att, &st);
	l->reconnects = st.reconnects;
	l->waited = st.faults_waited;
	l->recovering_ns = st.recovering_ns;
	l->cuts = ncut;
	b->bad += w.bad;
	if (ret)
		goto out;
	{
		/* ordinary faults: those overlapping no [cut, resume] */
		uint64_t n = atomic_load(&w.done), c = 0;
		double p50;

		for (uint64_t i = 0; i < n; i++) {
			uint64_t s = w.t0[i], e = s + w.dur[i];

			while (c < ncut && res_t[c] < s)
				c++;
			if (c < ncut && e >= cut_t[c])
				continue;
			bench_lat_add(&l->fault, w.dur[i]);
		}
		bench_lat_compute(&l->fault);
		p50 = l->fault.t_typical * 1000.0;
		c = 0;
		for (unsigned k = 0; k < ncut; k++) {
			double extra = 0;

			for (uint64_t i = 0; i < n; i++) {
				uint64_t s = w.t0[i], e = s + w.dur[i];

				if (e < cut_t[k] || s > res_t[k])
					continue;
				extra += (double)w.dur[i] - p50;
			}
			bench_lat_add(&l->blocked, extra > 0 ? (uint64_t)extra : 0);
		}
	}
out:
	if (thr_ok) {
		atomic_store(&w.stop, true);
		pthread_join(thr, NULL);
	}
	if (att)
		rpage_attach_free(att);
	if (uffd >= 0)
		close(uffd);
	if (w.mem)
		munmap(w.mem, b->size);
	free(w.perm);
	free(w.t0);
	free(w.dur);
	if (src)
		rpage_source_close(src);
	return ret;
}

static int resume_run(void *arg)
{
	struct resume_bench *b = arg;

	srand(1);
	for (int i = 0; i < b->nt; i++) {
		struct resume_line *l = &b->lines[i];

		if (resume_line_run(b, l)) {
			if (!l->why[0])
				snprintf(l->why, sizeof(l->why), "failed");
			fprintf(stderr, "rpage-bench resume: %s: %s\n",
				bench_transport_name(l->t), l->why);
		}
		bench_lat_compute(&l->connect);
		bench_lat_compute(&l->resume);
		bench_lat_compute(&l->blocked);
		bench_lat_compute(&l->fault);
	}
	return 0;
}

static int resume_report(void *arg)
{
	struct resume_bench *b = arg;
	int status = 0;
	FILE *j = NULL;

	bench_machine_print(stdout);
	printf("# rpage-bench resume: in-process server %s:%s, region %" PRIu64
	       " MiB of 4 KiB pages faulted in random order (no fill), %u cuts %u ms apart\n",
	       b->base.env.host, b->base.env.port, b->size >> 20, b->cuts,
	       b->gap_ms);
	printf("# a cut aborts every TCP connection of the source (SOCK_DESTROY, as ss -K)\n");
	printf("# resume = cut -> reconnected and a fault served; blocked = the workload's extra blocked time per cut;\n");
	printf("# connect = a new source from scratch (the floor of a reconnect); fault = ordinary faults of the same run\n");
	bench_lat_header(stdout);
	for (int i = 0; i < b->nt; i++) {
		struct resume_line *l = &b->lines[i];
		struct bench_lat *ls[4] = { &l->connect, &l->resume, &l->blocked,
					    &l->fault };

		if (l->why[0]) {
			for (int k = 0; k < 4; k++)
				if (!ls[k]->n)
					snprintf(ls[k]->why, sizeof(ls[k]->why), "%s", l->why);
			if (bench_failed(l->why))
				status = 1;
		}
		bench_lat_line(stdout, &l->connect, &l->connect);
		bench_lat_line(stdout, &l->resume, &l->connect);
		bench_lat_line(stdout, &l->blocked, &l->connect);
		bench_lat_line(stdout, &l->fault, NULL);
		if (!l->why[0])
			printf("# %s: %" PRIu64 " cuts, %" PRIu64 " sockets aborted, %" PRIu64
			       " reconnects, %" PRIu64 " faults waited, %.3f s recovering (the library's count)\n",
			       bench_transport_name(l->t), l->cuts, l->sockets,
			       l->reconnects, l->waited, (double)l->recovering_ns / 1e9);
		if (!l->why[0] && l->reconnects < l->cuts) {
			printf("# ERROR: %s: fewer reconnects than cuts\n",
			       bench_transport_name(l->t));
			status = 1;
		}
	}
	if (b->bad) {
		printf("# ERROR: %" PRIu64 " pages did not hold the image's bytes\n", b->bad);
		status = 1;
	}
	if (b->json) {
		j = fopen(b->json, "w");
		if (!j) {
			fprintf(stderr, "rpage-bench resume: cannot write %s: %s\n",
				b->json, strerror(errno));
			return 1;
		}
		fprintf(j, "{\"bench\":\"resume\",\"machine\":");
		bench_machine_json(j);
		fprintf(j, ",\"region_bytes\":%" PRIu64 ",\"cuts\":%u,\"gap_ms\":%u,\"results\":[",
			b->size, b->cuts, b->gap_ms);
		for (int i = 0; i < b->nt; i++) {
			struct resume_line *l = &b->lines[i];

			fprintf(j, "%s{\"transport\":", i ? "," : "");
			bench_json_str(j, bench_transport_name(l->t));
			fprintf(j, ",\"cuts\":%" PRIu64 ",\"reconnects\":%" PRIu64
				   ",\"faults_waited\":%" PRIu64 ",\"lines\":[",
				l->cuts, l->reconnects, l->waited);
			bench_lat_json(j, &l->connect, &l->connect);
			fputc(',', j);
			bench_lat_json(j, &l->resume, &l->connect);
			fputc(',', j);
			bench_lat_json(j, &l->blocked, &l->connect);
			fputc(',', j);
			bench_lat_json(j, &l->fault, NULL);
			fprintf(j, "]}");
		}
		fprintf(j, "],\"mismatches\":%" PRIu64 "}\n", b->bad);
		fclose(j);
	}
	return status;
}

static void resume_teardown(void *arg)
{
	struct resume_bench *b = arg;

	for (int i = 0; i < b->nt; i++) {
		bench_lat_free(&b->lines[i].connect);
		bench_lat_free(&b->lines[i].resume);
		bench_lat_free(&b->lines[i].blocked);
		bench_lat_free(&b->lines[i].fault);
	}
	bench_base_close(&b->base);
}

const struct bench_cmd bench_resume_cmd = {
	.name = "resume",
	.size = sizeof(struct resume_bench),
	.parse = resume_parse,
	.setup = resume_setup,
	.run = resume_run,
	.report = resume_report,
	.teardown = resume_teardown,
};
