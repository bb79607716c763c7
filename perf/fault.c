/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench fault`: what the application sees when it first touches a
 * page that is still remote. A fresh region is registered with userfaultfd
 * and handed to rpage_attach_start with background fill off, so every
 * touch is a real fault served over the transport; the bench times the
 * touch itself (one load) with the monotonic clock.
 *
 * Beside it, in the same run and interleaved round by round so that noise
 * from the other tenant of this machine falls on every line alike:
 *  - local:      the local transport, the floor (fault handling, no network)
 *  - anon-touch: a plain first-touch fault of anonymous memory (a write: a
 *                read would map the shared zero page and allocate nothing)
 *  - raw-tcp:    a plain 16-byte request / page-sized reply over a TCP
 *                socket on loopback with TCP_NODELAY
 *  - raw-rdma:   with -t rdma, one plain RDMA READ of the page from an
 *                in-process peer on the same device, busy-polled
 *                (perf/rawrdma.c): the floor of the rdma line
 * Every line is computed from its raw samples.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/pattern.h"
#include "../common/rp.h"
#include "../common/uffd.h"
#include "../client/fetch.h"
#include "bench.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif

#define MAX_LINES 14 /* 7 lines, and with --split up to 4 fetch lines and raw-spin */
#define MAX_ROUNDS 64

enum line_kind { K_UFFD, K_ANON, K_RAW_TCP, K_RAW_RDMA, K_FETCH, K_RAW_SPIN };

struct line {
	struct bench_lat lat;
	enum line_kind kind;
	enum rpage_transport t;
	struct rpage_source *src;
	size_t round_start[MAX_ROUNDS + 1];
	double round_p50[MAX_ROUNDS];
	uint64_t svc_ns, svc_n; /* the handler's own service time */
};

struct fault_bench {
	/* the command line */
	enum rpage_transport ts[4];
	int nt;
	const char *connect, *host, *json, *cdf, *psk;
	uint64_t psize, batch, seed, img;
	uint64_t iters, warmup;
	unsigned rounds;
	bool split;
	/* set up */
	struct bench_base base;
	bool have_raw;
	struct line lines[MAX_LINES];
	unsigned nlines;
	struct line *floor, *tcp, *rdma, *rawr, *tls;
	/* measured */
	uint64_t rng;
	uint64_t mismatches;
};

static uint64_t rnd(struct fault_bench *b)
{
	b->rng += 0x9e3779b97f4a7c15ull;
	return rp_pattern_word(b->seed, b->rng);
}

static void shuffle(struct fault_bench *b, uint64_t *perm, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint64_t i = n - 1; n && i > 0; i--) {
		uint64_t j = rnd(b) % (i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
}

static void *map_region(struct fault_bench *b, uint64_t len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	void *p;

	/* Huge pages are reserved at mmap (no MAP_NORESERVE): without
	 * enough of them the mmap fails here, cleanly. With MAP_NORESERVE
	 * the faults would find no page and the handler would see
	 * UFFDIO_COPY fail with EEXIST forever (seen on 6.18). */
	if (b->psize != RP_PAGE_4K)
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * @count timed faults (after @skip untimed ones) on a fresh region of
 * count + skip pages at a random place of the image, in random order.
 */
static int uffd_batch(struct fault_bench *b, struct line *ln, uint64_t count,
		      uint64_t skip)
{
	uint64_t np = count + skip, len = np * b->psize;
	uint64_t img_pages = b->base.env.img_len / b->psize;
	uint64_t features = UFFD_FEATURE_EVENT_REMOVE |
			    (b->psize != RP_PAGE_4K ? UFFD_FEATURE_MISSING_HUGETLBFS : 0);
	struct rpage_attach_opts opts = { .no_fill = 1 };
	struct rpage_attach *att = NULL;
	struct rpage_range r;
	uint64_t *perm = malloc(np * sizeof(*perm));
	char *mem = map_region(b, len);
	int uffd = -1, ret;

	if (!perm || !mem) {
		ret = mem ? -ENOMEM : -errno;
		goto out;
	}
	uffd = rp_uffd_open_register(features, mem, len,
				     UFFDIO_REGISTER_MODE_MISSING);
	if (uffd < 0) {
		ret = uffd;
		goto out;
	}
	r.base = (uint64_t)(uintptr_t)mem;
	r.size = len;
	r.offset = (rnd(b) % (img_pages - np + 1)) * b->psize;
	r.page_size = b->psize;
	ret = rpage_attach_start(ln->src, 0, uffd, &r, 1, &opts, &att);
	if (ret)
		goto out;
	uffd = -1; /* the attachment has it */
	shuffle(b, perm, np);
	for (uint64_t i = 0; i < np; i++) {
		uint64_t pg = perm[i], in = (pg * 64) % b->psize, t0, t1;
		volatile char *p = mem + pg * b->psize + in;

		t0 = rp_now_ns();
		(void)*p;
		t1 = rp_now_ns();
		if (i >= skip)
			bench_lat_add(&ln->lat, t1 - t0);
		/* the byte is the image's: a wrong page would be caught */
		if (*(volatile uint64_t *)(mem + pg * b->psize + (in & ~7ull)) !=
		    rp_pattern_word(1, r.offset + pg * b->psize + (in & ~7ull)))
			b->mismatches++;
	}
	{
		struct rpage_stats st;

		rpage_attach_get_stats(att, &st);
		ln->svc_ns += st.blocked_ns;
		ln->svc_n += st.faults;
		if (st.state != RPAGE_ATTACH_RUNNING &&
		    st.state != RPAGE_ATTACH_COMPLETE &&
		    st.state != RPAGE_ATTACH_RECOVERING)
			ret = st.error ? st.error : -EIO;
	}
out:
	if (att)
		rpage_attach_free(att);
	if (uffd >= 0)
		close(uffd);
	if (mem)
		munmap(mem, len);
	free(perm);
	return ret;
}

static int anon_batch(struct fault_bench *b, struct line *ln, uint64_t count,
		      uint64_t skip)
{
	uint64_t np = count + skip, len = np * b->psize;
	uint64_t *perm = malloc(np * sizeof(*perm));
	char *mem = map_region(b, len);
	int ret = 0;

	if (!perm || !mem) {
		ret = mem ? -ENOMEM : -errno;
		goto out;
	}
	shuffle(b, perm, np);
	for (uint64_t i = 0; i < np; i++) {
		volatile char *p = mem + perm[i] * b->psize +
				   (perm[i] * 64) % b->psize;
		uint64_t t0 = rp_now_ns(), t1;

		*p = 1;
		t1 = rp_now_ns();
		if (i >= skip)
			bench_lat_add(&ln->lat, t1 - t0);
	}
out:
	if (mem)
		munmap(mem, len);
	free(perm);
	return ret;
}

static int raw_batch(struct fault_bench *b, struct line *ln, uint64_t count,
		     uint64_t skip)
{
	for (uint64_t i = 0; i < count + skip; i++) {
		uint64_t t0 = rp_now_ns(), t1;
		int ret = bench_raw_rtt(&b->base.raw, (uint32_t)b->psize,
					ln->kind == K_RAW_SPIN);

		t1 = rp_now_ns();
		if (ret)
			return ret;
		if (i >= skip)
			bench_lat_add(&ln->lat, t1 - t0);
	}
	return 0;
}

/* One RDMA READ of a page at a random place of the image per sample. */
static int rawrdma_batch(struct fault_bench *b, struct line *ln,
			 uint64_t count, uint64_t skip)
{
	uint64_t img_pages = b->base.env.img_len / b->psize;

	for (uint64_t i = 0; i < count + skip; i++) {
		uint64_t off = (rnd(b) % img_pages) * b->psize, t0, t1;
		int ret;

		t0 = rp_now_ns();
		ret = bench_rawrdma_read(b->base.rr, off, (uint32_t)b->psize);
		t1 = rp_now_ns();
		if (ret)
			return ret;
		if (i >= skip)
			bench_lat_add(&ln->lat, t1 - t0);
	}
	return 0;
}

/* The transport's fetch alone (no userfaultfd): one page per call on an
 * urgent channel, the part of a fault that is the network's. */
static int fetch_batch(struct fault_bench *b, struct line *ln, uint64_t count,
		       uint64_t skip)
{
	uint64_t img_pages = b->base.env.img_len / b->psize;
	struct rp_fetcher *fe = NULL;
	void *buf = mmap(NULL, b->psize, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	int ret;

	if (buf == MAP_FAILED)
		return -ENOMEM;
	ret = rp_fetcher_open(ln->src, buf, b->psize, &fe);
	for (uint64_t i = 0; !ret && i < count + skip; i++) {
		uint64_t off = (rnd(b) % img_pages) * b->psize;
		uint64_t t0 = rp_now_ns(), t1;

		ret = rp_fetcher_read(fe, 0, off, (uint32_t)b->psize, buf);
		t1 = rp_now_ns();
		if (!ret && i >= skip)
			bench_lat_add(&ln->lat, t1 - t0);
	}
	rp_fetcher_close(fe);
	munmap(buf, b->psize);
	return ret;
}

static int run_line(struct fault_bench *b, struct line *ln, uint64_t count)
{
	uint64_t skip = b->warmup;
	int ret = 0;

	while (count && !ret) {
		uint64_t n = RP_MIN(count, b->batch);

		switch (ln->kind) {
		case K_UFFD:
			ret = uffd_batch(b, ln, n, skip);
			break;
		case K_ANON:
			ret = anon_batch(b, ln, n, skip);
			break;
		case K_RAW_TCP:
		case K_RAW_SPIN:
			ret = raw_batch(b, ln, n, skip);
			break;
		case K_RAW_RDMA:
			ret = rawrdma_batch(b, ln, n, skip);
			break;
		case K_FETCH:
			ret = fetch_batch(b, ln, n, skip);
			break;
		}
		count -= n;
		skip = 0;
	}
	return ret;
}

static struct line *add_line(struct fault_bench *b, const char *name,
			     enum line_kind k, enum rpage_transport t)
{
	struct line *ln = &b->lines[b->nlines++];

	bench_lat_init(&ln->lat, name, b->psize);
	ln->kind = k;
	ln->t = t;
	return ln;
}

static double median_of(double *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n ? v[(n - 1) / 2] : 0.0;
}

static void round_p50s(struct line *ln, unsigned rounds)
{
	for (unsigned r = 0; r < rounds; r++) {
		size_t s = ln->round_start[r], e = ln->round_start[r + 1];
		struct bench_lat tmp = { .ns = ln->lat.ns + s, .n = e - s };

		ln->round_p50[r] = 0;
		if (e > s) {
			uint64_t *copy = malloc((e - s) * sizeof(*copy));

			if (!copy)
				continue;
			memcpy(copy, tmp.ns, (e - s) * sizeof(*copy));
			tmp.ns = copy;
			bench_lat_compute(&tmp);
			ln->round_p50[r] = tmp.t_typical;
			free(copy);
		}
	}
}

/* Which TLS record layer a source's connections use, in words. */
static const char *tls_path(struct rpage_source *src)
{
	static char buf[400];

	if (!src)
		return "?";
	rpage_source_security(src, buf, sizeof(buf));
	return buf;
}

static void fault_usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-bench fault [options]\n"
		"  -t, --transport LIST  transports to measure: local,tcp[,tls][,rdma] (default\n"
		"                        local,tcp; local, the floor, is always measured; tls:\n"
		"                        TCP with TLS 1.3, from a second in-process server\n"
		"                        that requires a key made for the run)\n"
		"      --psk-file FILE   with --connect: the server's key, for the tls line\n"
		"  -c, --connect H:P     use a running rpage-server (its first region: an image\n"
		"                        from `rpage-bench mkimage FILE SIZE`, seed 1) instead\n"
		"                        of one started in-process on 127.0.0.1\n"
		"      --host ADDR       the in-process server's address (default 127.0.0.1;\n"
		"                        for rdma, an address of the RoCE interface)\n"
		"  -n, --iters N         timed faults per line (default 5000)\n"
		"  -s, --size 4k|2M      page size, the bytes of one fault (default 4k;\n"
		"                        2M needs reserved huge pages)\n"
		"  -w, --warmup N        untimed faults before each line's batch (default 100)\n"
		"  -r, --rounds R        interleave the lines in R rounds (default 5)\n"
		"      --image-size B    the image the pages come from (default 256M, 1G for 2M)\n"
		"      --batch PAGES     pages per fresh region (default 16384 or 32)\n"
		"      --seed S          random order (default 1)\n"
		"      --json FILE       results as JSON (perftest's keys)\n"
		"      --cdf FILE        the raw samples, sorted, for a CDF plot\n"
		"      --split           also time each transport's fetch alone (no\n"
		"                        userfaultfd), and raw-spin: the raw round trip\n"
		"                        with the client polling instead of sleeping\n");
}

/* Reads the command line into @b. Returns -1 to go on, else the exit
 * status (0 after --help, 2 for a bad command line). */
static int fault_parse(void *arg, int argc, char **argv)
{
	struct fault_bench *b = arg;
	enum { O_IMG = 256, O_BATCH, O_SEED, O_JSON, O_CDF, O_SPLIT, O_HOST,
	       O_PSK };
	static const struct option lo[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "connect", required_argument, NULL, 'c' },
		{ "iters", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "image-size", required_argument, NULL, O_IMG },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "seed", required_argument, NULL, O_SEED },
		{ "json", required_argument, NULL, O_JSON },
		{ "cdf", required_argument, NULL, O_CDF },
		{ "split", no_argument, NULL, O_SPLIT },
		{ "host", required_argument, NULL, O_HOST },
		{ "psk-file", required_argument, NULL, O_PSK },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tlist = "local,tcp";
	int64_t v;
	int o;

	b->iters = 5000;
	b->warmup = 100;
	b->rounds = 5;
	b->psize = RP_PAGE_4K;
	b->seed = 1;
	while ((o = getopt_long(argc, argv, "t:c:n:s:w:r:h", lo, NULL)) != -1) {
		switch (o) {
		case 't':
			tlist = optarg;
			break;
		case 'c':
			b->connect = optarg;
			break;
		case 'n':
			b->iters = strtoull(optarg, NULL, 0);
			break;
		case 'w':
			b->warmup = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			b->rounds = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 's':
		case O_IMG:
			v = bench_parse_size(optarg);
			if (v <= 0) {
				fprintf(stderr, "rpage-bench fault: bad size '%s'\n", optarg);
				return 2;
			}
			if (o == 's')
				b->psize = (uint64_t)v;
			else
				b->img = (uint64_t)v;
			break;
		case O_BATCH:
			b->batch = strtoull(optarg, NULL, 0);
			break;
		case O_SEED:
			b->seed = strtoull(optarg, NULL, 0);
			break;
		case O_JSON:
			b->json = optarg;
			break;
		case O_CDF:
			b->cdf = optarg;
			break;
		case O_SPLIT:
			b->split = true;
			break;
		case O_HOST:
			b->host = optarg;
			break;
		case O_PSK:
			b->psk = optarg;
			break;
		case 'h':
			fault_usage(stdout);
			return 0;
		default:
			fault_usage(stderr);
			return 2;
		}
	}
	if (b->psize != RP_PAGE_4K && b->psize != (2u << 20)) {
		fprintf(stderr, "rpage-bench fault: --size is 4k or 2M\n");
		return 2;
	}
	if (!b->iters || !b->rounds || b->rounds > MAX_ROUNDS) {
		fprintf(stderr, "rpage-bench fault: --iters >= 1, --rounds 1..%d\n",
			MAX_ROUNDS);
		return 2;
	}
	if (b->rounds > b->iters)
		b->rounds = (unsigned)b->iters;
	b->nt = bench_parse_transports(tlist, b->ts, 4);
	if (b->nt < 0)
		return 2;
	if (!b->batch)
		b->batch = b->psize == RP_PAGE_4K ? 16384 : 32;
	if (!b->img)
		b->img = b->psize == RP_PAGE_4K ? 256 << 20 : 1 << 30;
	if (b->img % b->psize || b->img / b->psize < b->batch + b->warmup) {
		fprintf(stderr, "rpage-bench fault: --image-size must hold --batch + --warmup pages\n");
		return 2;
	}
	return -1;
}

/* The lines: transports (local first, the floor), then the baselines;
 * each opens what it measures, or records why it cannot. */
static void fault_add_lines(struct fault_bench *b)
{
	b->floor = add_line(b, "local", K_UFFD, RPAGE_TRANSPORT_LOCAL);
	for (int i = 0; i < b->nt; i++) {
		struct line *ln;

		if (b->ts[i] == RPAGE_TRANSPORT_LOCAL)
			continue;
		ln = add_line(b, bench_transport_name(b->ts[i]), K_UFFD, b->ts[i]);
		if (b->ts[i] == RPAGE_TRANSPORT_TCP)
			b->tcp = ln;
		if (b->ts[i] == BENCH_T_TLS)
			b->tls = ln;
		if (b->ts[i] == RPAGE_TRANSPORT_RDMA)
			b->rdma = ln;
	}
	add_line(b, "anon-touch", K_ANON, 0);
	if (b->tcp || b->tls || !b->base.env.remote)
		b->have_raw = add_line(b, "raw-tcp", K_RAW_TCP, 0) != NULL;
	if (b->rdma)
		b->rawr = add_line(b, "raw-rdma", K_RAW_RDMA, 0);
	for (unsigned i = 0, n = b->nlines; b->split && i < n; i++) {
		char name[32];

		if (b->lines[i].kind != K_UFFD)
			continue;
		snprintf(name, sizeof(name), "fetch-%s", b->lines[i].lat.name);
		add_line(b, name, K_FETCH, b->lines[i].t);
	}
	if (b->split && b->have_raw)
		add_line(b, "raw-spin", K_RAW_SPIN, 0);
}

/* The image and server, then every line's source or baseline. Returns 0,
 * or the exit status. */
static int fault_setup(void *arg)
{
	struct fault_bench *b = arg;

	if (bench_base_open(&b->base, b->connect, b->host, b->ts, b->nt,
			    b->img, (uint32_t)b->psize, b->psk))
		return 1;
	if (b->base.env.img_len / b->psize < b->batch + b->warmup) {
		fprintf(stderr, "rpage-bench fault: the region is too small for --batch + --warmup pages\n");
		return 1;
	}
	fault_add_lines(b);
	for (unsigned i = 0; i < b->nlines; i++) {
		struct line *ln = &b->lines[i];
		char why[200];

		if ((ln->kind == K_UFFD || ln->kind == K_FETCH) &&
		    bench_env_source(&b->base.env, ln->t, &ln->src, why, sizeof(why)))
			bench_lat_skip(&ln->lat, "%s", why);
		if (ln->kind == K_RAW_RDMA) {
			/* the rdma line's source is open by now */
			if (b->rdma->lat.why[0])
				bench_lat_skip(&ln->lat, "rdma not available (see the rdma line)");
			else if (b->base.env.remote)
				bench_lat_skip(&ln->lat, "in-process peer only: not measured with --connect");
			else if (bench_rawrdma_open(&b->base.rr, b->base.env.host,
						    b->base.env.memfd, b->base.env.img_len,
						    (uint32_t)b->psize, 1, why,
						    sizeof(why)))
				bench_lat_skip(&ln->lat, "%s", why);
		}
		if (ln->kind == K_RAW_SPIN && !b->base.raw_ok)
			bench_lat_skip(&ln->lat, "raw TCP socket not available");
		if (ln->kind == K_RAW_TCP) {
			int e = bench_raw_start(&b->base.raw,
						(uint32_t)RP_MAX(b->psize, 1u << 20));

			if (e)
				bench_lat_skip(&ln->lat, "raw TCP socket: %s",
					       strerror(-e));
			else
				b->base.raw_ok = true;
		}
	}
	return 0;
}

/* Interleaved rounds: round r starts at line r and wraps, so that noise
 * falls on every line alike. A line that fails is marked and skipped. */
static int fault_run(void *arg)
{
	struct fault_bench *b = arg;

	for (unsigned r = 0; r < b->rounds; r++) {
		uint64_t per = b->iters / b->rounds +
			       (r < b->iters % b->rounds ? 1 : 0);

		for (unsigned j = 0; j < b->nlines; j++) {
			struct line *ln = &b->lines[(j + r) % b->nlines];
			int ret;

			ln->round_start[r] = ln->lat.n;
			if (ln->lat.why[0])
				continue;
			ret = run_line(b, ln, per);
			if (ret) {
				bench_lat_skip(&ln->lat, "failed: %s%s",
					       strerror(-ret),
					       ret == -ENOMEM && b->psize != RP_PAGE_4K
						       ? " (reserve huge pages: /proc/sys/vm/nr_hugepages)"
						       : "");
				fprintf(stderr, "rpage-bench fault: %s: %s\n",
					ln->lat.name, ln->lat.why);
			}
		}
	}
	for (unsigned i = 0; i < b->nlines; i++) {
		b->lines[i].round_start[b->rounds] = b->lines[i].lat.n;
		round_p50s(&b->lines[i], b->rounds);
		bench_lat_compute(&b->lines[i].lat);
	}
	return 0;
}

/* The table, in perftest's layout, and the ratios and targets below it. */
static void fault_print(struct fault_bench *b)
{
	struct line *floor = b->floor, *tcp = b->tcp, *rdma = b->rdma,
		    *rawr = b->rawr;

	bench_machine_print(stdout);
	printf("# rpage-bench fault: %s server %s:%s, page %" PRIu64 " B, image %" PRIu64
	       " MiB, %" PRIu64 " iterations in %u interleaved rounds, warmup %" PRIu64 "\n",
	       b->base.env.remote ? "remote" : "in-process", b->base.env.host,
	       b->base.env.port, b->psize, b->base.env.img_len >> 20, b->iters,
	       b->rounds, b->warmup);
	printf("# floor = local transport; anon-touch = plain first-touch fault; raw-tcp = 16 B request / %" PRIu64
	       " B reply on a loopback socket\n", b->psize);
	if (rawr && !rawr->lat.why[0])
		printf("# raw-rdma = one %" PRIu64 " B RDMA READ from an in-process peer on the same device, completion busy-polled\n",
		       b->psize);
	bench_lat_header(stdout);
	for (unsigned i = 0; i < b->nlines; i++)
		bench_lat_line(stdout, &b->lines[i].lat, &floor->lat);
	printf("---------------------------------------------------------------------------------------\n");
	if (b->mismatches)
		printf("# ERROR: %" PRIu64 " touched pages did not hold the image's bytes\n",
		       b->mismatches);
	for (unsigned i = 1; i < b->nlines; i++) {
		struct line *ln = &b->lines[i];
		double rr[MAX_ROUNDS];

		if (ln->lat.why[0] || floor->lat.why[0] || ln->kind != K_UFFD)
			continue;
		printf("# %s/local p50 ratio per round:", ln->lat.name);
		for (unsigned r = 0; r < b->rounds; r++) {
			rr[r] = bench_ratio(ln->round_p50[r], floor->round_p50[r]);
			printf(" %.2f", rr[r]);
		}
		printf(" (median %.2f)\n", median_of(rr, b->rounds));
	}
	for (unsigned i = 0; i < b->nlines; i++) {
		struct line *ln = &b->lines[i];

		if (ln->kind != K_UFFD || !ln->svc_n || !ln->lat.n)
			continue;
		printf("# %s: average fault %.2f us = handler service %.2f us (read fault, fetch, UFFDIO_COPY) + %.2f us in the kernel's fault path and wake-ups\n",
		       ln->lat.name, ln->lat.t_avg,
		       (double)ln->svc_ns / (double)ln->svc_n / 1e3,
		       ln->lat.t_avg - (double)ln->svc_ns / (double)ln->svc_n / 1e3);
	}
	if (rawr && !rawr->lat.why[0] && !rdma->lat.why[0])
		printf("# rdma fault / raw-rdma READ: p50 %.2f, p99 %.2f\n",
		       bench_ratio(rdma->lat.t_typical, rawr->lat.t_typical),
		       bench_ratio(rdma->lat.p99, rawr->lat.p99));
	if (tcp && !tcp->lat.why[0] && !floor->lat.why[0]) {
		bench_target(stdout, "tcp fault p50 / local p50",
			     bench_ratio(tcp->lat.t_typical, floor->lat.t_typical),
			     1.5, false);
		bench_target(stdout, "tcp fault p99 / local p99",
			     bench_ratio(tcp->lat.p99, floor->lat.p99), 2.0,
			     false);
	}
	if (b->tls && tcp && !b->tls->lat.why[0] && !tcp->lat.why[0]) {
		printf("# tls = TCP with TLS 1.3 (%s): the same fault path, encrypted and authenticated\n",
		       tls_path(b->tls->src));
		bench_target(stdout, "tls fault p50 / tcp p50",
			     bench_ratio(b->tls->lat.t_typical,
					 tcp->lat.t_typical), 1.2, false);
	}
	fflush(stdout);
}

/* --json: the same figures with perftest's keys. */
static int fault_write_json(struct fault_bench *b, const char *path)
{
	struct line *floor = b->floor, *tcp = b->tcp, *rdma = b->rdma,
		    *rawr = b->rawr;
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "rpage-bench fault: %s: %s\n", path,
			strerror(errno));
		return -errno;
	}
	fprintf(f, "{\"command\":\"fault\",\"page_size\":%" PRIu64
		   ",\"iterations\":%" PRIu64 ",\"warmup\":%" PRIu64
		   ",\"rounds\":%u,\"server\":",
		b->psize, b->iters, b->warmup, b->rounds);
	bench_json_str(f, b->base.env.remote ? "remote" : "in-process");
	fprintf(f, ",\"machine\":");
	bench_machine_json(f);
	fprintf(f, ",\"floor\":\"local\",\"results\":[");
	for (unsigned i = 0; i < b->nlines; i++) {
		fprintf(f, i ? ",\n" : "\n");
		bench_lat_json(f, &b->lines[i].lat, &floor->lat);
	}
	fprintf(f, "],\"targets\":[");
	if (tcp && !tcp->lat.why[0] && !floor->lat.why[0]) {
		double r50 = bench_ratio(tcp->lat.t_typical, floor->lat.t_typical);
		double r99 = bench_ratio(tcp->lat.p99, floor->lat.p99);

		fprintf(f, "{\"what\":\"tcp fault p50 / local p50\",\"value\":%.3f,\"limit\":1.5,\"pass\":%s},"
			   "{\"what\":\"tcp fault p99 / local p99\",\"value\":%.3f,\"limit\":2.0,\"pass\":%s}",
			r50, r50 <= 1.5 ? "true" : "false",
			r99, r99 <= 2.0 ? "true" : "false");
	}
	if (b->tls && tcp && !b->tls->lat.why[0] && !tcp->lat.why[0]) {
		double r = bench_ratio(b->tls->lat.t_typical, tcp->lat.t_typical);

		fprintf(f, "%s{\"what\":\"tls fault p50 / tcp p50\",\"value\":%.3f,\"limit\":1.2,\"pass\":%s,\"record_layer\":",
			!floor->lat.why[0] ? "," : "", r,
			r <= 1.2 ? "true" : "false");
		bench_json_str(f, tls_path(b->tls->src));
		fputc('}', f);
	}
	fprintf(f, "]");
	if (rawr && !rawr->lat.why[0] && !rdma->lat.why[0])
		fprintf(f, ",\"rdma_vs_raw_rdma\":{\"ratio_p50\":%.3f,\"ratio_p99\":%.3f}",
			bench_ratio(rdma->lat.t_typical, rawr->lat.t_typical),
			bench_ratio(rdma->lat.p99, rawr->lat.p99));
	fprintf(f, ",\"mismatches\":%" PRIu64 "}\n", b->mismatches);
	return fclose(f) ? -EIO : 0;
}

/* The table, then --json and --cdf. The exit status: 1 when a page was
 * wrong, a file not written, or a line that was asked for failed (not
 * merely unavailable); else 0. */
static int fault_report(void *arg)
{
	struct fault_bench *b = arg;
	int ret = 0;

	fault_print(b);
	if (b->json)
		ret = fault_write_json(b, b->json);
	if (b->cdf) {
		struct bench_lat *ls[MAX_LINES];

		for (unsigned i = 0; i < b->nlines; i++)
			ls[i] = &b->lines[i].lat;
		if (bench_cdf_write(b->cdf, ls, b->nlines)) {
			fprintf(stderr, "rpage-bench fault: %s: %s\n", b->cdf,
				strerror(errno));
			ret = -EIO;
		}
	}
	if (ret || b->mismatches)
		return 1;
	for (unsigned i = 0; i < b->nlines; i++)
		if (bench_failed(b->lines[i].lat.why))
			return 1;
	return 0;
}

static void fault_teardown(void *arg)
{
	struct fault_bench *b = arg;

	for (unsigned i = 0; i < b->nlines; i++) {
		if (b->lines[i].src)
			rpage_source_close(b->lines[i].src);
		bench_lat_free(&b->lines[i].lat);
	}
	bench_base_close(&b->base);
}

const struct bench_cmd bench_fault_cmd = {
	.name = "fault", .size = sizeof(struct fault_bench),
	.parse = fault_parse, .setup = fault_setup, .run = fault_run,
	.report = fault_report, .teardown = fault_teardown,
};
