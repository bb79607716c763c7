/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench fill`: how fast background fill makes a whole region
 * resident when nobody touches it (no faults at all), per transport,
 * beside the raw streaming rate of the same link in the same run: a plain
 * TCP stream of the same byte count on loopback (one 16-byte request, then
 * the bytes in 1 MiB writes, read into one reused buffer), and with -t rdma
 * raw-rdma: the same byte count as plain RDMA READs of the fill's chunk
 * size and depth from an in-process peer on the same device
 * (perf/rawrdma.c).
 *
 * The fill time is rpage's own start-to-fully-resident time (resident_ns:
 * from the fault thread's start to the last page placed); the bench waits
 * on the attachment's event fd. Rounds are interleaved and each figure is
 * the median of its rounds.
 */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/pattern.h"
#include "../common/rp.h"
#include "../common/uffd.h"
#include "bench.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif

#define MAX_LINES 7
#define MAX_ROUNDS 32
/* the library's fill defaults (client/attach.c), for raw-rdma */
#define FILL_CHUNK_DEFAULT (1u << 20)
#define FILL_DEPTH_DEFAULT 4u

struct fill_line {
	char name[32];
	enum rpage_transport t; /* 0: the raw TCP stream */
	struct rpage_source *src;
	double mbps[MAX_ROUNDS];
	unsigned n;
	double median;
	char why[200];
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* On-CPU time (ns, from schedstat) of this process's threads named @comm. */
static uint64_t thread_cpu_ns(const char *comm)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	uint64_t sum = 0;

	while (d && (de = readdir(d))) {
		char path[300], name[64] = "";
		unsigned long long ns = 0;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(name, sizeof(name), f))
			name[0] = 0;
		fclose(f);
		name[strcspn(name, "\n")] = 0;
		if (strcmp(name, comm))
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", de->d_name);
		f = fopen(path, "r");
		if (f && fscanf(f, "%llu", &ns) == 1)
			sum += ns;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return sum;
}

/* One fill of @len bytes for the line @name. Stores the rate in MB/s
 * (10^6 bytes/s). */
static int fill_once(const char *name, struct rpage_source *src,
		     uint64_t len, uint64_t psize,
		     const struct rpage_attach_opts *opts, int timeout_ms,
		     bool verbose, double *mbps, uint64_t *bad)
{
	uint64_t features = UFFD_FEATURE_EVENT_REMOVE |
			    (psize != RP_PAGE_4K ? UFFD_FEATURE_MISSING_HUGETLBFS : 0);
	int flags = MAP_PRIVATE | MAP_ANONYMOUS; /* hugetlb: reserve at mmap */
	struct rpage_attach *att = NULL;
	struct rpage_stats st;
	struct rpage_range r;
	struct pollfd pf;
	char *mem;
	int uffd = -1, ret;
	uint64_t fill_cpu = 0;

	if (psize != RP_PAGE_4K)
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	uffd = rp_uffd_open_register(features, mem, len,
				     UFFDIO_REGISTER_MODE_MISSING);
	if (uffd < 0) {
		ret = uffd;
		goto out;
	}
	r = (struct rpage_range){ (uint64_t)(uintptr_t)mem, len, 0, psize };
	ret = rpage_attach_start(src, 0, uffd, &r, 1, opts, &att);
	if (ret)
		goto out;
	uffd = -1;
	pf.fd = rpage_attach_event_fd(att);
	pf.events = POLLIN;
	for (int waited = 0;;) {
		int n = poll(&pf, 1, verbose ? 5 : timeout_ms);

		if (verbose) {
			/* the fill thread exits once all is queued: sample it */
			uint64_t c = thread_cpu_ns("rpage/fill");

			fill_cpu = RP_MAX(fill_cpu, c);
			if (n == 0 && (waited += 5) < timeout_ms)
				n = -1, errno = EINTR;
		}
		rpage_attach_get_stats(att, &st);
		if (st.state != RPAGE_ATTACH_RUNNING &&
		    st.state != RPAGE_ATTACH_RECOVERING)
			break;
		if (n == 0) {
			ret = -ETIMEDOUT;
			goto out;
		}
		if (n < 0 && errno != EINTR) {
			ret = -errno;
			goto out;
		}
	}
	if (st.state != RPAGE_ATTACH_COMPLETE) {
		ret = st.error ? st.error : -EIO;
		goto out;
	}
	if (st.faults)
		fprintf(stderr, "rpage-bench fill: %" PRIu64 " faults during a pure fill?\n",
			st.faults);
	*mbps = (double)len / 1e6 / ((double)st.resident_ns / 1e9);
	if (verbose) {
		uint64_t srv = thread_cpu_ns("rpage/srv/conn");

		/* the threads' whole lives: set-up and wake-ups included */
		fprintf(stderr, "rpage-bench fill: %s: %.1f ms to resident; on CPU: fill thread %.1f ms, fault thread (placement) %.1f ms, server threads so far %.1f ms\n",
			name, (double)st.resident_ns / 1e6,
			(double)fill_cpu / 1e6,
			(double)thread_cpu_ns("rpage/fault") / 1e6,
			(double)srv / 1e6);
	}
	/* spot-check: one word per 64 pages holds the image's bytes */
	for (uint64_t off = 0; off < len; off += 64 * psize)
		if (*(volatile uint64_t *)(mem + off) != rp_pattern_word(1, off))
			(*bad)++;
out:
	if (att)
		rpage_attach_free(att);
	if (uffd >= 0)
		close(uffd);
	munmap(mem, len);
	return ret;
}

/*
 * The placement ceiling: UFFDIO_COPY of the whole region from one
 * 1 MiB buffer in 256 KiB calls (the fault thread's slice), no network and
 * no fetch. No fill, on any transport, can beat this on this machine.
 */
static int place_once(uint64_t len, uint64_t psize, double *mbps)
{
	uint64_t features = UFFD_FEATURE_EVENT_REMOVE |
			    (psize != RP_PAGE_4K ? UFFD_FEATURE_MISSING_HUGETLBFS : 0);
	int flags = MAP_PRIVATE | MAP_ANONYMOUS; /* hugetlb: reserve at mmap */
	uint64_t slice = RP_MAX(psize, 256u << 10), t0, t1;
	size_t blen = RP_MAX(psize, 1u << 20);
	char *mem, *buf;
	int uffd, ret = 0;

	if (psize != RP_PAGE_4K)
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	buf = mmap(NULL, blen, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED) {
		munmap(mem, len);
		return -ENOMEM;
	}
	rp_pattern_fill(buf, 0, blen, 1);
	uffd = rp_uffd_open_register(features, mem, len,
				     UFFDIO_REGISTER_MODE_MISSING);
	if (uffd < 0) {
		ret = uffd;
		goto out;
	}
	ret = 0;
	t0 = rp_now_ns();
	for (uint64_t off = 0; !ret && off < len; off += slice) {
		uint64_t n = RP_MIN(slice, len - off), done = 0;

		ret = rp_uffd_copy(uffd, (uint64_t)(uintptr_t)mem + off,
				   buf + off % blen, n, &done);
	}
	t1 = rp_now_ns();
	*mbps = (double)len / 1e6 / ((double)(t1 - t0) / 1e9);
	close(uffd);
out:
	munmap(buf, blen);
	munmap(mem, len);
	return ret;
}

static void fill_usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-bench fill [options]\n"
		"  -t, --transport LIST  local,tcp[,tls][,rdma] (default local,tcp; tls: TCP with\n"
		"                        TLS 1.3 from a second in-process server)\n"
		"      --psk-file FILE   with --connect: the server's key, for the tls line\n"
		"  -c, --connect H:P     a running rpage-server (its first region: an image from\n"
		"                        `rpage-bench mkimage FILE SIZE`, seed 1) instead\n"
		"                        of one started in-process on 127.0.0.1\n"
		"      --host ADDR       the in-process server's address (for rdma: the\n"
		"                        RoCE interface's)\n"
		"  -s, --size BYTES      region size (default 256M)\n"
		"      --page-size 4k|2M (2M needs reserved huge pages)\n"
		"  -r, --rounds R        interleaved rounds; figures are medians (default 3)\n"
		"      --chunk BYTES     fill bytes per request (default: the library's, 1M)\n"
		"      --depth N         fill requests in flight (default: the library's, 4)\n"
		"      --json FILE       results as JSON\n"
		"  -v, --verbose         per fill: on-CPU time of the fill, fault (placement)\n"
		"                        and server threads (where the time goes)\n");
}

struct fill_bench {
	/* the command line */
	enum rpage_transport ts[4];
	int nt;
	const char *connect, *host, *json, *psk;
	uint64_t size, psize;
	unsigned rounds;
	bool verbose;
	struct rpage_attach_opts opts;
	/* set up */
	struct bench_base base;
	uint32_t rr_chunk;     /* raw-rdma: the fill's chunk and depth */
	unsigned rr_depth;
	struct fill_line lines[MAX_LINES];
	unsigned nl;
	struct fill_line *rawl, *tcpl, *locl, *placel, *rdmal, *rrl, *tlsl;
	/* measured */
	uint64_t bad;          /* spot-checked words that were wrong */
};

/* Reads the command line into @b. Returns -1 to go on, else the exit
 * status (0 after --help, 2 for a bad command line). */
static int fill_parse(void *arg, int argc, char **argv)
{
	struct fill_bench *b = arg;
	enum { O_PS = 256, O_CHUNK, O_DEPTH, O_JSON, O_HOST, O_PSK };
	static const struct option lo[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "connect", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "page-size", required_argument, NULL, O_PS },
		{ "rounds", required_argument, NULL, 'r' },
		{ "chunk", required_argument, NULL, O_CHUNK },
		{ "depth", required_argument, NULL, O_DEPTH },
		{ "json", required_argument, NULL, O_JSON },
		{ "host", required_argument, NULL, O_HOST },
		{ "psk-file", required_argument, NULL, O_PSK },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tlist = "local,tcp";
	int64_t v;
	int o;

	b->size = 256u << 20;
	b->psize = RP_PAGE_4K;
	b->rounds = 3;
	while ((o = getopt_long(argc, argv, "t:c:s:r:vh", lo, NULL)) != -1) {
		switch (o) {
		case 't':
			tlist = optarg;
			break;
		case 'c':
			b->connect = optarg;
			break;
		case 'r':
			b->rounds = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 's':
		case O_PS:
		case O_CHUNK:
			v = bench_parse_size(optarg);
			if (v <= 0 || v > UINT32_MAX * (o == 's' ? 1024ll : 1ll)) {
				fprintf(stderr, "rpage-bench fill: bad size '%s'\n", optarg);
				return 2;
			}
			if (o == 's')
				b->size = (uint64_t)v;
			else if (o == O_PS)
				b->psize = (uint64_t)v;
			else
				b->opts.fill_chunk = (uint32_t)v;
			break;
		case O_DEPTH:
			b->opts.fill_depth = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case O_JSON:
			b->json = optarg;
			break;
		case O_HOST:
			b->host = optarg;
			break;
		case O_PSK:
			b->psk = optarg;
			break;
		case 'v':
			b->verbose = true;
			break;
		case 'h':
			fill_usage(stdout);
			return 0;
		default:
			fill_usage(stderr);
			return 2;
		}
	}
	if ((b->psize != RP_PAGE_4K && b->psize != (2u << 20)) ||
	    b->size % b->psize || !b->rounds || b->rounds > MAX_ROUNDS) {
		fprintf(stderr, "rpage-bench fill: --size a multiple of --page-size (4k or 2M), --rounds 1..%d\n",
			MAX_ROUNDS);
		return 2;
	}
	b->nt = bench_parse_transports(tlist, b->ts, 4);
	if (b->nt < 0)
		return 2;
	return -1;
}

static struct fill_line *fill_add_line(struct fill_bench *b, const char *name,
				       enum rpage_transport t)
{
	struct fill_line *l = &b->lines[b->nl++];

	snprintf(l->name, sizeof(l->name), "%s", name);
	l->t = t;
	return l;
}

/* The lines: local first, the other transports, then the baselines. */
static void fill_add_lines(struct fill_bench *b)
{
	b->locl = fill_add_line(b, "local", RPAGE_TRANSPORT_LOCAL);
	for (int i = 0; i < b->nt; i++) {
		struct fill_line *l;

		if (b->ts[i] == RPAGE_TRANSPORT_LOCAL)
			continue;
		l = fill_add_line(b, bench_transport_name(b->ts[i]), b->ts[i]);
		if (b->ts[i] == RPAGE_TRANSPORT_TCP)
			b->tcpl = l;
		if (b->ts[i] == BENCH_T_TLS)
			b->tlsl = l;
		if (b->ts[i] == RPAGE_TRANSPORT_RDMA)
			b->rdmal = l;
	}
	b->rawl = fill_add_line(b, "raw-tcp", 0);
	b->placel = fill_add_line(b, "uffd-copy", 0);
	if (b->rdmal)
		b->rrl = fill_add_line(b, "raw-rdma", 0);
}

/* The image and server, the lines' sources and the raw baselines.
 * Returns 0, or the exit status. */
static int fill_setup(void *arg)
{
	struct fill_bench *b = arg;
	int ret;

	if (bench_base_open(&b->base, b->connect, b->host, b->ts, b->nt,
			    b->size, (uint32_t)b->psize, b->psk))
		return 1;
	if (b->base.env.img_len < b->size) {
		fprintf(stderr, "rpage-bench fill: the server's region holds only %" PRIu64 " bytes\n",
			b->base.env.img_len);
		return 1;
	}
	fill_add_lines(b);
	for (unsigned i = 0; i < b->nl; i++) {
		struct fill_line *l = &b->lines[i];

		if (l->t > 0)
			bench_env_source(&b->base.env, l->t, &l->src, l->why, sizeof(l->why));
	}
	/* raw-rdma: the fill's chunk (whole pages) and depth, as attach.c
	 * derives them */
	b->rr_chunk = b->opts.fill_chunk ? b->opts.fill_chunk : FILL_CHUNK_DEFAULT;
	b->rr_chunk = (uint32_t)RP_MAX((uint64_t)b->rr_chunk, b->psize);
	b->rr_chunk -= b->rr_chunk % (uint32_t)b->psize;
	b->rr_depth = b->opts.fill_depth ? RP_MIN(b->opts.fill_depth, 64u)
					 : FILL_DEPTH_DEFAULT;
	if (b->rrl && b->rdmal->why[0])
		snprintf(b->rrl->why, sizeof(b->rrl->why),
			 "rdma not available (see the rdma line)");
	else if (b->rrl && b->base.env.remote)
		snprintf(b->rrl->why, sizeof(b->rrl->why),
			 "in-process peer only: not measured with --connect");
	else if (b->rrl)
		bench_rawrdma_open(&b->base.rr, b->base.env.host, b->base.env.memfd, b->size,
				   b->rr_chunk * b->rr_depth, b->rr_depth,
				   b->rrl->why, sizeof(b->rrl->why));
	ret = bench_raw_start(&b->base.raw, 1u << 20);
	if (ret)
		snprintf(b->rawl->why, sizeof(b->rawl->why),
			 "raw TCP socket: %s", strerror(-ret));
	else
		b->base.raw_ok = true;
	return 0;
}

/* One round of line @l: its rate in *mbps. 0 or -errno. */
static int fill_line_once(struct fill_bench *b, struct fill_line *l,
			  double *mbps)
{
	uint64_t t0 = rp_now_ns();
	int e;

	if (l == b->rawl) {
		e = bench_raw_stream(&b->base.raw, b->size, 1u << 20);
	} else if (l == b->rrl) {
		e = bench_rawrdma_stream(b->base.rr, b->size, b->rr_chunk,
					 b->rr_depth);
	} else if (l == b->placel) {
		return place_once(b->size, b->psize, mbps);
	} else {
		return fill_once(l->name, l->src, b->size, b->psize, &b->opts,
				 120000, b->verbose, mbps, &b->bad);
	}
	*mbps = (double)b->size / 1e6 / ((double)(rp_now_ns() - t0) / 1e9);
	return e;
}

/* Interleaved rounds (round r starts at line r); then each line's median.
 * A line that fails is marked and skipped from then on. */
static int fill_run(void *arg)
{
	struct fill_bench *b = arg;

	for (unsigned r = 0; r < b->rounds; r++) {
		for (unsigned j = 0; j < b->nl; j++) {
			struct fill_line *l = &b->lines[(j + r) % b->nl];
			double mbps = 0;
			int e;

			if (l->why[0])
				continue;
			e = fill_line_once(b, l, &mbps);
			if (e) {
				snprintf(l->why, sizeof(l->why), "failed: %s%s",
					 strerror(-e),
					 e == -ENOMEM && b->psize != RP_PAGE_4K
						 ? " (reserve huge pages: /proc/sys/vm/nr_hugepages)"
						 : "");
				fprintf(stderr, "rpage-bench fill: %s: %s\n", l->name, l->why);
				continue;
			}
			l->mbps[l->n++] = mbps;
		}
	}
	for (unsigned i = 0; i < b->nl; i++) {
		double s[MAX_ROUNDS];

		memcpy(s, b->lines[i].mbps, sizeof(s));
		qsort(s, b->lines[i].n, sizeof(double), cmp_double);
		b->lines[i].median = b->lines[i].n ? s[(b->lines[i].n - 1) / 2] : 0;
	}
	return 0;
}

/* The table, with each line's ratio to the raw TCP stream. */
static void fill_print(const struct fill_bench *b)
{
	const struct fill_line *rawl = b->rawl, *rrl = b->rrl,
			       *rdmal = b->rdmal, *tcpl = b->tcpl;

	bench_machine_print(stdout);
	printf("# rpage-bench fill: %s server %s:%s, region %" PRIu64 " MiB, page %" PRIu64
	       " B, %u interleaved rounds (median shown), no faults: pure background fill\n",
	       b->base.env.remote ? "remote" : "in-process", b->base.env.host,
	       b->base.env.port, b->size >> 20, b->psize, b->rounds);
	printf("# raw-tcp = the same byte count streamed over a plain loopback socket (1 MiB writes)\n");
	printf("# uffd-copy = UFFDIO_COPY of the region in 256 KiB calls from a hot buffer: the placement ceiling\n");
	if (b->base.rr)
		printf("# raw-rdma = the same byte count as RDMA READs of %u KiB, %u in flight (the fill's chunk and depth), from an in-process peer on the same device, busy-polled\n",
		       b->rr_chunk >> 10, b->rr_depth);
	printf(" %-10s %-12s %-12s %-10s %s\n", "path", "bytes", "MB/s", "vs raw-tcp", "rounds MB/s");
	for (unsigned i = 0; i < b->nl; i++) {
		const struct fill_line *l = &b->lines[i];

		if (l->why[0] && !l->n) {
			printf(" %-10s %-12" PRIu64 " %-12s %-10s not measured: %s\n",
			       l->name, b->size, "-", "-", l->why);
			continue;
		}
		printf(" %-10s %-12" PRIu64 " %-12.1f ", l->name, b->size, l->median);
		if (rawl->n && l->t > 0)
			printf("%-10.2f", bench_ratio(l->median, rawl->median));
		else
			printf("%-10s", l == rawl ? "1.00" : "-");
		printf(" ");
		for (unsigned k = 0; k < l->n; k++)
			printf("%s%.0f", k ? " " : "", l->mbps[k]);
		printf("\n");
	}
	if (b->bad)
		printf("# ERROR: %" PRIu64 " spot-checked words did not hold the image's bytes\n", b->bad);
	if (rrl && rrl->n && rdmal->n)
		printf("# rdma fill / raw-rdma READ stream: %.2f\n",
		       bench_ratio(rdmal->median, rrl->median));
	if (tcpl && tcpl->n && rawl->n)
		bench_target(stdout, "tcp fill / raw tcp stream",
			     bench_ratio(tcpl->median, rawl->median), 0.80,
			     true);
	if (b->tlsl && tcpl && b->tlsl->n && tcpl->n) {
		char sec[400];

		rpage_source_security(b->tlsl->src, sec, sizeof(sec));
		printf("# tls = TCP with TLS 1.3 (%s)\n", sec);
		bench_target(stdout, "tls fill / tcp fill",
			     bench_ratio(b->tlsl->median, tcpl->median), 0.70,
			     true);
	}
	fflush(stdout);
}

/* --json: the same figures. 0 or -errno. */
static int fill_write_json(const struct fill_bench *b, const char *path)
{
	const struct fill_line *rawl = b->rawl, *rrl = b->rrl,
			       *rdmal = b->rdmal, *tcpl = b->tcpl;
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "rpage-bench fill: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	fprintf(f, "{\"command\":\"fill\",\"bytes\":%" PRIu64 ",\"page_size\":%" PRIu64
		   ",\"rounds\":%u,\"server\":\"%s\",\"machine\":",
		b->size, b->psize, b->rounds, b->base.env.remote ? "remote" : "in-process");
	bench_machine_json(f);
	fprintf(f, ",\"baseline\":\"raw-tcp\",\"results\":[");
	for (unsigned i = 0; i < b->nl; i++) {
		const struct fill_line *l = &b->lines[i];

		fprintf(f, "%s\n{\"name\":", i ? "," : "");
		bench_json_str(f, l->name);
		if (!l->n) {
			fprintf(f, ",\"available\":false,\"reason\":");
			bench_json_str(f, l->why);
			fputc('}', f);
			continue;
		}
		fprintf(f, ",\"available\":true,\"MBps\":%.1f,\"rounds_MBps\":[", l->median);
		for (unsigned k = 0; k < l->n; k++)
			fprintf(f, "%s%.1f", k ? "," : "", l->mbps[k]);
		fprintf(f, "]");
		if (rawl->n)
			fprintf(f, ",\"ratio_raw\":%.3f", bench_ratio(l->median, rawl->median));
		if (l == rdmal && rrl->n)
			fprintf(f, ",\"ratio_raw_rdma\":%.3f", bench_ratio(l->median, rrl->median));
		fputc('}', f);
	}
	fprintf(f, "],\"targets\":[");
	if (tcpl && tcpl->n && rawl->n) {
		double q = bench_ratio(tcpl->median, rawl->median);

		fprintf(f, "{\"what\":\"tcp fill / raw tcp stream\",\"value\":%.3f,\"limit\":0.8,\"at_least\":true,\"pass\":%s}",
			q, q >= 0.8 ? "true" : "false");
	}
	if (b->tlsl && tcpl && b->tlsl->n && tcpl->n) {
		double q = bench_ratio(b->tlsl->median, tcpl->median);
		char sec[400];

		rpage_source_security(b->tlsl->src, sec, sizeof(sec));
		fprintf(f, "%s{\"what\":\"tls fill / tcp fill\",\"value\":%.3f,\"limit\":0.7,\"at_least\":true,\"pass\":%s,\"record_layer\":",
			rawl->n ? "," : "", q, q >= 0.7 ? "true" : "false");
		bench_json_str(f, sec);
		fputc('}', f);
	}
	fprintf(f, "],\"mismatches\":%" PRIu64 "}\n", b->bad);
	return fclose(f) ? -EIO : 0;
}

/* The table, then --json. The exit status: 1 when a word was wrong, the
 * JSON not written, or a line that was asked for failed (not merely
 * unavailable); else 0. */
static int fill_report(void *arg)
{
	struct fill_bench *b = arg;

	fill_print(b);
	if ((b->json && fill_write_json(b, b->json)) || b->bad)
		return 1;
	for (unsigned i = 0; i < b->nl; i++)
		if (bench_failed(b->lines[i].why))
			return 1;
	return 0;
}

static void fill_teardown(void *arg)
{
	struct fill_bench *b = arg;

	for (unsigned i = 0; i < b->nl; i++)
		if (b->lines[i].src)
			rpage_source_close(b->lines[i].src);
	bench_base_close(&b->base);
}

const struct bench_cmd bench_fill_cmd = {
	.name = "fill", .size = sizeof(struct fill_bench),
	.parse = fill_parse, .setup = fill_setup, .run = fill_run,
	.report = fill_report, .teardown = fill_teardown,
};
