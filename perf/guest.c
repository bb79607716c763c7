/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench guest`: a process that does what Firecracker does with its
 * UFFD snapshot backend (maps anonymous guest memory, registers a
 * userfaultfd for missing faults, hands it to a handler over a Unix socket
 * with the JSON region table), then reads its memory in random and then
 * sequential order and checks every byte against the deterministic image.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/hist.h"
#include "../common/pattern.h"
#include "../common/rp.h"
#include "../common/uffd.h"
#include "bench.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif

struct guest {
	const char *sock_path;
	uint64_t size, psize, seed, balloon;
	unsigned ranges, threads;
	double touch, exit_after;
	bool seq, rnd, quiet, noreserve;
	unsigned long pause_ms; /* between the random and sequential phases */
	char *mem;
	struct rpage_range *r;
	uint64_t npages, *perm;
	uint64_t next;         /* next index in perm (atomic) */
	uint64_t mismatches;   /* atomic */
	pthread_mutex_t hlock;
	struct rp_hist hist;   /* first-touch latency of the random phase */
	int sock;              /* to the handler, open until the end */
	uint64_t t0, t_rand, t_seq0, t_seq; /* the phases' times */
};

/* The image offset of page @pg of the mapping. */
static uint64_t page_image_off(const struct guest *g, uint64_t pg)
{
	uint64_t addr = pg * g->psize;

	for (unsigned i = 0; i < g->ranges; i++) {
		uint64_t b = g->r[i].base - (uint64_t)(uintptr_t)g->mem;

		if (addr >= b && addr - b < g->r[i].size)
			return g->r[i].offset + (addr - b);
	}
	abort();
}

static bool check_page(struct guest *g, uint64_t pg)
{
	uint64_t off = page_image_off(g, pg);
	int64_t bad = rp_pattern_check(g->mem + pg * g->psize, off, g->psize,
				       g->seed);

	if (bad < 0)
		return true;
	if (__atomic_fetch_add(&g->mismatches, 1, __ATOMIC_RELAXED) < 10)
		fprintf(stderr, "rpage-bench guest: MISMATCH at image offset 0x%" PRIx64
				" (page %" PRIu64 ", word %" PRId64 ")\n",
			off + (uint64_t)bad * 8, pg, bad);
	return false;
}

static void *random_phase(void *arg)
{
	struct guest *g = arg;
	uint64_t limit = (uint64_t)((double)g->npages * g->touch);
	uint64_t exit_at = g->exit_after > 0
				   ? (uint64_t)((double)g->npages * g->exit_after)
				   : UINT64_MAX;
	struct rp_hist local;

	rp_hist_init(&local);
	for (;;) {
		uint64_t i = __atomic_fetch_add(&g->next, 1, __ATOMIC_RELAXED);
		uint64_t pg, t0, t1;
		volatile char *p;

		if (i >= limit)
			break;
		if (i == exit_at) {
			printf("rpage-bench guest: exiting on purpose after %" PRIu64 " of %" PRIu64 " pages\n",
			       i, g->npages);
			fflush(stdout);
			_exit(0);
		}
		pg = g->perm[i];
		p = g->mem + pg * g->psize + (pg * 64) % g->psize;
		t0 = rp_now_ns();
		(void)*p;
		t1 = rp_now_ns();
		rp_hist_add(&local, t1 - t0);
		check_page(g, pg);
	}
	pthread_mutex_lock(&g->hlock);
	rp_hist_merge(&g->hist, &local);
	pthread_mutex_unlock(&g->hlock);
	return NULL;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void guest_usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-bench guest --uffd-socket PATH --size BYTES [options]\n"
		"  --page-size 4k|2M     page size (2M: anonymous hugetlb memory)\n"
		"  --ranges K            hand over K ranges, mapped to the image in reverse order\n"
		"  --seed S              the image's seed (rpage-bench mkimage FILE SIZE S)\n"
		"  --order rand,seq      access phases (default both)\n"
		"  --touch FRACTION      fraction of pages read in the random phase (default 1)\n"
		"  --threads N           readers in the random phase (default 1)\n"
		"  --exit-after FRACTION exit abruptly after that fraction of random reads\n"
		"  --balloon BYTES       after checking, MADV_DONTNEED the first BYTES and\n"
		"                        check they read back as zeros\n"
		"  --pause MS            idle MS milliseconds between the two phases\n"
		"  --no-reserve          map huge pages with MAP_NORESERVE, as a careless VMM\n"
		"                        might (to test how a handler copes with none left)\n"
		"  --quiet\n");
}

/* Reads the command line into @g. Returns -1 to go on, else the exit
 * status (0 after --help, 2 for a bad command line). */
static int guest_parse(void *arg, int argc, char **argv)
{
	struct guest *g = arg;
	enum { O_PS = 256, O_RANGES, O_SEED, O_ORDER, O_TOUCH, O_THREADS,
	       O_EXIT, O_BALLOON, O_NORESERVE, O_PAUSE };
	static const struct option opts[] = {
		{ "uffd-socket", required_argument, NULL, 'u' },
		{ "size", required_argument, NULL, 's' },
		{ "page-size", required_argument, NULL, O_PS },
		{ "ranges", required_argument, NULL, O_RANGES },
		{ "seed", required_argument, NULL, O_SEED },
		{ "order", required_argument, NULL, O_ORDER },
		{ "touch", required_argument, NULL, O_TOUCH },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "exit-after", required_argument, NULL, O_EXIT },
		{ "balloon", required_argument, NULL, O_BALLOON },
		{ "no-reserve", no_argument, NULL, O_NORESERVE },
		{ "pause", required_argument, NULL, O_PAUSE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t v;
	int o;

	g->psize = 4096;
	g->seed = 1;
	g->ranges = 1;
	g->threads = 1;
	g->touch = 1.0;
	g->seq = g->rnd = true;
	while ((o = getopt_long(argc, argv, "u:s:qh", opts, NULL)) != -1) {
		switch (o) {
		case 'u':
			g->sock_path = optarg;
			break;
		case 's':
		case O_PS:
		case O_BALLOON:
			v = bench_parse_size(optarg);
			if (v <= 0) {
				fprintf(stderr, "rpage-bench guest: bad size '%s'\n", optarg);
				return 2;
			}
			if (o == 's')
				g->size = (uint64_t)v;
			else if (o == O_PS)
				g->psize = (uint64_t)v;
			else
				g->balloon = (uint64_t)v;
			break;
		case O_RANGES:
			g->ranges = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case O_SEED:
			g->seed = strtoull(optarg, NULL, 0);
			break;
		case O_ORDER:
			g->rnd = strstr(optarg, "rand") != NULL;
			g->seq = strstr(optarg, "seq") != NULL;
			break;
		case O_TOUCH:
		case O_EXIT: {
			double d = strtod(optarg, NULL);

			if (d < 0 || d > 1) {
				fprintf(stderr, "rpage-bench guest: fraction must be in [0,1]\n");
				return 2;
			}
			if (o == O_TOUCH)
				g->touch = d;
			else
				g->exit_after = d;
			break;
		}
		case O_THREADS:
			g->threads = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case O_PAUSE:
			g->pause_ms = strtoul(optarg, NULL, 0);
			break;
		case O_NORESERVE:
			g->noreserve = true;
			break;
		case 'q':
			g->quiet = true;
			break;
		case 'h':
			guest_usage(stdout);
			return 0;
		default:
			guest_usage(stderr);
			return 2;
		}
	}
	if (!g->sock_path || !g->size || (g->psize != 4096 && g->psize != (2u << 20)) ||
	    g->size % g->psize || !g->ranges || g->ranges > 64 ||
	    (g->size / g->psize) % g->ranges || !g->threads || g->threads > 64 ||
	    g->balloon % g->psize || g->balloon > g->size) {
		fprintf(stderr, "rpage-bench guest: need --uffd-socket and --size (a multiple of the page size, 4k or 2M, divisible into --ranges; --threads 1..64; --balloon a multiple of the page size)\n");
		return 2;
	}
	g->npages = g->size / g->psize;
	return -1;
}

/* What Firecracker does: map the memory, register a userfaultfd for it,
 * hand both to the handler on @g->sock_path (kept open in g->sock: its
 * end tells the handler the process is gone); then the random order of
 * the pages. 0, or 1 after saying what failed. */
static int guest_setup(void *arg)
{
	struct guest *g = arg;
	uint64_t features = UFFD_FEATURE_EVENT_REMOVE;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	int uffd, ret;

	if (g->psize != 4096) {
		/* reserve the huge pages now: a shortage is an mmap error here,
		 * not a failed placement later */
		if (!g->noreserve)
			flags &= ~MAP_NORESERVE;
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
		features |= UFFD_FEATURE_MISSING_HUGETLBFS;
	}
	g->mem = mmap(NULL, g->size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (g->mem == MAP_FAILED) {
		fprintf(stderr, "rpage-bench guest: mmap of %" PRIu64 " bytes failed: %s%s\n",
			g->size, strerror(errno),
			g->psize != 4096 ? " (are huge pages reserved? /proc/sys/vm/nr_hugepages)" : "");
		return 1;
	}
	uffd = rp_uffd_open(features, NULL);
	if (uffd < 0) {
		fprintf(stderr, "rpage-bench guest: userfaultfd: %s%s%s\n", strerror(-uffd),
			uffd == -EPERM ? ": " : "",
			uffd == -EPERM ? rp_uffd_perm_hint(features) : "");
		return 1;
	}
	ret = rp_uffd_register(uffd, g->mem, g->size, UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret) {
		fprintf(stderr, "rpage-bench guest: UFFDIO_REGISTER: %s\n", strerror(-ret));
		return 1;
	}
	g->r = calloc(g->ranges, sizeof(*g->r));
	for (unsigned i = 0; i < g->ranges; i++) {
		uint64_t part = g->size / g->ranges;

		g->r[i].base = (uint64_t)(uintptr_t)g->mem + i * part;
		g->r[i].size = part;
		g->r[i].offset = (uint64_t)(g->ranges - 1 - i) * part;
		g->r[i].page_size = g->psize;
	}
	g->sock = connect_unix(g->sock_path);
	if (g->sock < 0) {
		fprintf(stderr, "rpage-bench guest: cannot connect to %s: %s\n",
			g->sock_path, strerror(errno));
		return 1;
	}
	ret = rpage_fc_send(g->sock, g->r, g->ranges, uffd);
	if (ret) {
		fprintf(stderr, "rpage-bench guest: handshake: %s\n", strerror(-ret));
		return 1;
	}
	close(uffd); /* the handler has it now, as with Firecracker */

	/* random phase: a shuffled permutation of the pages */
	g->perm = malloc(g->npages * sizeof(*g->perm));
	if (!g->perm)
		return 1;
	for (uint64_t i = 0; i < g->npages; i++)
		g->perm[i] = i;
	for (uint64_t i = g->npages - 1; i > 0; i--) {
		uint64_t j = rp_pattern_word(g->seed + 7, i * 8) % (i + 1), t;

		t = g->perm[i];
		g->perm[i] = g->perm[j];
		g->perm[j] = t;
	}
	rp_hist_init(&g->hist);
	pthread_mutex_init(&g->hlock, NULL);
	return 0;
}

/* --balloon: discard the first bytes, which must read back as zeros,
 * while the rest keeps the image's. 0, or 1 when madvise fails. */
static int guest_balloon(struct guest *g)
{
	uint64_t bad = 0;

	if (madvise(g->mem, g->balloon, MADV_DONTNEED)) {
		fprintf(stderr, "rpage-bench guest: madvise: %s\n", strerror(errno));
		return 1;
	}
	for (uint64_t i = 0; i < g->balloon; i += 8)
		if (*(volatile uint64_t *)(g->mem + i))
			bad++;
	if (bad) {
		fprintf(stderr, "rpage-bench guest: MISMATCH: %" PRIu64 " words of the ballooned range are not zero\n",
			bad);
		g->mismatches += bad;
	}
	/* the rest must be untouched */
	for (uint64_t pg = g->balloon / g->psize; pg < g->npages; pg++)
		check_page(g, pg);
	return 0;
}

/* The phases: random first touches (timed, by --threads readers), an
 * optional pause, the sequential check of every page, the balloon. 0, or
 * 1 when the balloon could not be made. */
static int guest_run(void *arg)
{
	struct guest *g = arg;
	pthread_t th[64];

	g->t0 = rp_now_ns();
	if (g->rnd) {
		for (unsigned i = 0; i < g->threads; i++)
			pthread_create(&th[i], NULL, random_phase, g);
		for (unsigned i = 0; i < g->threads; i++)
			pthread_join(th[i], NULL);
	}
	g->t_rand = rp_now_ns();
	if (g->pause_ms)
		usleep((useconds_t)(g->pause_ms * 1000));
	g->t_seq0 = rp_now_ns();
	if (g->seq)
		for (uint64_t pg = 0; pg < g->npages; pg++)
			check_page(g, pg);
	g->t_seq = rp_now_ns();
	return g->balloon ? guest_balloon(g) : 0;
}

/* The summary line; then the socket closes, which tells the handler
 * that this process is gone. 1 when a byte was wrong, else 0. */
static int guest_report(void *arg)
{
	struct guest *g = arg;

	printf("rpage-bench guest: %" PRIu64 " pages of %" PRIu64 " bytes: random phase %.3f s "
	       "(first touch p50 %.1f us, p99 %.1f us, max %.1f us), sequential check %.3f s, %s, %" PRIu64 " mismatches\n",
	       g->npages, g->psize, (double)(g->t_rand - g->t0) / 1e9,
	       (double)rp_hist_quantile(&g->hist, 0.5) / 1e3,
	       (double)rp_hist_quantile(&g->hist, 0.99) / 1e3,
	       (double)g->hist.max / 1e3, (double)(g->t_seq - g->t_seq0) / 1e9,
	       g->balloon ? "balloon checked" : "no balloon", g->mismatches);
	fflush(stdout);
	close(g->sock);
	return g->mismatches ? 1 : 0;
}

/* The mapping stays: the process ends with the command, and with it the
 * memory the handler may still be filling. */
static void guest_teardown(void *arg)
{
	struct guest *g = arg;

	free(g->perm);
	free(g->r);
}

const struct bench_cmd bench_guest_cmd = {
	.name = "guest", .size = sizeof(struct guest),
	.parse = guest_parse, .setup = guest_setup, .run = guest_run,
	.report = guest_report, .teardown = guest_teardown,
};
