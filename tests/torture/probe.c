/* SPDX-License-Identifier: MIT */
/*
 * rpage-probe: small, deterministic checks of what a process served by rpage
 * reads, one scenario each, written from the kernel's userfaultfd semantics.
 * Each exits 0 when the process read exactly what it must, 1 when not (with
 * the page, what was expected and what was found), 2 on a usage or set-up
 * error. Daemon scenarios talk to rpage-client only through its Unix socket
 * (Firecracker's handshake); live scenarios use only the public header.
 *
 *   rpage-probe mkimage PATH SIZE SEED
 *   rpage-probe [options] SCENARIO
 *     discard-race   a fault races MADV_DONTNEED on the same page: after both,
 *                    the page reads zeros
 *     no-remove      a userfaultfd without UFFD_FEATURE_EVENT_REMOVE is refused
 *     sigbus         a userfaultfd with UFFD_FEATURE_SIGBUS is refused
 *     unmap-first    the first of two ranges is unmapped at once: the second
 *                    is still served, every byte right
 *     fork           100 children read pages the parent never touched and
 *                    exit; the handler keeps no descriptor of theirs
 *     remap          mremap moves part of a range: pages read right at the
 *                    new address
 *     outside-shared a fault in shared memory the handler was not given
 *                    (the old place of a memfd moved with MREMAP_DONTUNMAP)
 *                    is not answered with zeros that would land in the file
 *     live-dest-discard  after a live switchover, discarded pages read zeros
 *     live-sync-wp   a page discarded and rewritten during pre-copy under
 *                    synchronous write-protect tracking reaches the destination
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "stranger.h"

#define PS 4096ull

static const char *sock_path;
static uint64_t seed = 1, img_size = 64ull << 20;
static int daemon_pid;
static unsigned hold_s; /* stay connected this long after the scenario */

/* "64M", "2G", "4096": bytes, or 0 when malformed. */
static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	}
	return *end ? 0 : v;
}

static int bad(const char *what, uint64_t page, const char *expected,
	       const void *p, int64_t at)
{
	const uint8_t *b = p;

	fprintf(stderr, "rpage-probe: MISMATCH %s: page %" PRIu64 ": expected %s, found %02x %02x %02x %02x at byte %" PRId64 "\n",
		what, page, expected, b[at], b[at + 1], b[at + 2], b[at + 3], at);
	return 1;
}

/* Opens a uffd with @features, registers @n ranges of @mem and hands it
 * over. Returns the socket (the uffd is closed here: the handler has it). */
static int hand_over(uint64_t features, struct st_range *r, unsigned n)
{
	int uffd = st_uffd_open(features), sock, ret;

	if (uffd < 0) {
		fprintf(stderr, "rpage-probe: userfaultfd: %s\n", strerror(-uffd));
		exit(2);
	}
	for (unsigned i = 0; i < n; i++) {
		ret = st_uffd_register(uffd, (void *)(uintptr_t)r[i].base, r[i].size);
		if (ret) {
			fprintf(stderr, "rpage-probe: UFFDIO_REGISTER: %s\n", strerror(-ret));
			exit(2);
		}
	}
	sock = st_connect(sock_path);
	if (sock < 0 || st_handshake(sock, r, n, uffd)) {
		fprintf(stderr, "rpage-probe: handshake with %s failed\n", sock_path);
		exit(2);
	}
	close(uffd);
	return sock;
}

/* ---- discard-race ---- */
struct racer {
	pthread_barrier_t *go, *done;
	char *mem;
	uint64_t pages;
	bool reader;
};

static void *race_main(void *arg)
{
	struct racer *r = arg;

	for (uint64_t i = 0; i < r->pages; i++) {
		char *pg = r->mem + i * PS;

		pthread_barrier_wait(r->go);
		if (r->reader)
			(void)*(volatile uint64_t *)(pg + 64);
		else if (madvise(pg, PS, MADV_DONTNEED))
			perror("madvise");
		pthread_barrier_wait(r->done);
	}
	return NULL;
}

static int discard_race(void)
{
	uint64_t pages = 300, stale = 0;
	char *mem = st_map_anon(pages * PS, PS);
	struct st_range r = { (uint64_t)(uintptr_t)mem, pages * PS, 0, PS };
	pthread_barrier_t go, done;
	struct racer ra[2];
	pthread_t t[2];
	int sock;

	if (!mem)
		return 2;
	sock = hand_over(UFFD_FEATURE_EVENT_REMOVE, &r, 1);
	pthread_barrier_init(&go, NULL, 3);
	pthread_barrier_init(&done, NULL, 3);
	for (int i = 0; i < 2; i++) {
		ra[i] = (struct racer){ &go, &done, mem, pages, i == 0 };
		pthread_create(&t[i], NULL, race_main, &ra[i]);
	}
	for (uint64_t i = 0; i < pages; i++) {
		int64_t at;

		pthread_barrier_wait(&go);
		pthread_barrier_wait(&done);
		at = st_check_byte(mem + i * PS, PS, 0);
		if (at >= 0) {
			if (!stale)
				bad("discard-race", i, "zeros (discarded)",
				    mem + i * PS, at);
			stale++;
		}
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("discard-race: %" PRIu64 " of %" PRIu64 " discarded pages hold stale data\n",
	       stale, pages);
	close(sock);
	return stale ? 1 : 0;
}

/* ---- refused userfaultfds ---- */
static int refused(uint64_t features, const char *what)
{
	char *mem = st_map_anon(16 * PS, PS);
	struct st_range r = { (uint64_t)(uintptr_t)mem, 16 * PS, 0, PS };
	struct pollfd pf;
	char b[16];
	int sock;

	if (!mem)
		return 2;
	sock = hand_over(features, &r, 1);
	pf = (struct pollfd){ sock, POLLIN, 0 };
	/* the handler must close the connection: that is the refusal */
	if (poll(&pf, 1, 10000) != 1 || recv(sock, b, sizeof(b), 0) != 0) {
		fprintf(stderr, "rpage-probe: a userfaultfd %s was not refused\n", what);
		return 1;
	}
	printf("%s: refused\n", what);
	return 0;
}

/* ---- unmap-first ---- */
static int unmap_first(void)
{
	uint64_t half = img_size / 2, badn = 0;
	char *a = st_map_anon(half, PS), *b = st_map_anon(half, PS);
	struct st_range r[2] = {
		{ (uint64_t)(uintptr_t)a, half, 0, PS },
		{ (uint64_t)(uintptr_t)b, half, half, PS },
	};
	int sock;

	if (!a || !b)
		return 2;
	sock = hand_over(UFFD_FEATURE_EVENT_REMOVE, r, 2);
	munmap(a, half);
	for (uint64_t off = 0; off < half; off += PS) {
		int64_t at = st_check(b + off, half + off, PS, seed);

		if (at >= 0 && !badn++)
			bad("unmap-first", (half + off) / PS, "source data", b + off, at);
	}
	printf("unmap-first: the second range read with %" PRIu64 " bad pages\n", badn);
	fflush(stdout);
	sleep(hold_s);
	close(sock);
	return badn ? 1 : 0;
}

/* ---- fork ---- */
static int fork_children(void)
{
	uint64_t pages = img_size / PS;
	char *mem = st_map_anon(img_size, PS);
	struct st_range r = { (uint64_t)(uintptr_t)mem, img_size, 0, PS };
	int sock, before, after = -1, failed = 0, nfork = 100;

	if (!mem || !daemon_pid) {
		fprintf(stderr, "rpage-probe: fork needs --daemon-pid\n");
		return 2;
	}
	sock = hand_over(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_FORK, &r, 1);
	/* touch one page so the handler has attached */
	(void)*(volatile char *)mem;
	before = st_count_fds(daemon_pid);
	for (int k = 0; k < nfork; k++) {
		pid_t p = fork();
		int status = 0;

		if (p == 0) {
			/* pages nobody has touched yet: the child faults */
			for (int i = 0; i < 4; i++) {
				uint64_t pg = 1 + ((uint64_t)k * 4 + (uint64_t)i) * 7 % (pages - 1);
				int64_t at = st_check(mem + pg * PS, pg * PS, PS, seed);

				if (at >= 0)
					_exit(bad("fork child", pg, "source data",
						  mem + pg * PS, at));
			}
			_exit(0);
		}
		if (p < 0 || waitpid(p, &status, 0) != p ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
	}
	for (int i = 0; i < 100; i++) {
		after = st_count_fds(daemon_pid);
		if (after <= before + 1)
			break;
		usleep(100000);
	}
	printf("fork: %d children, %d failed; the handler's descriptors: %d before, %d after\n",
	       nfork, failed, before, after);
	close(sock);
	return failed || after > before + 1 ? 1 : 0;
}

/* ---- remap ---- */
static int remap(void)
{
	uint64_t half = img_size / 2, badn = 0;
	char *mem = st_map_anon(img_size, PS), *to;
	struct st_range r = { (uint64_t)(uintptr_t)mem, img_size, 0, PS };
	int sock;

	if (!mem)
		return 2;
	sock = hand_over(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_REMAP, &r, 1);
	(void)*(volatile char *)mem;
	/* somewhere free to move the second half to */
	to = mmap(NULL, half, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (to == MAP_FAILED ||
	    mremap(mem + half, half, half, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to) {
		perror("mremap");
		return 2;
	}
	for (uint64_t off = 0; off < half; off += PS) {
		int64_t at = st_check(to + off, half + off, PS, seed);

		if (at >= 0 && !badn++)
			bad("remap (moved)", (half + off) / PS, "source data", to + off, at);
		at = st_check(mem + off, off, PS, seed);
		if (at >= 0 && !badn++)
			bad("remap (stayed)", off / PS, "source data", mem + off, at);
	}
	printf("remap: %" PRIu64 " bad pages\n", badn);
	close(sock);
	return badn ? 1 : 0;
}

/* ---- outside-shared ---- */
struct toucher {
	volatile char *p;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	(void)*t->p; /* never answered: the handler cannot know this page */
	return NULL;
}

/*
 * Shared memory (a memfd) moved with MREMAP_DONTUNMAP: the old place still
 * maps the same file pages. A fault there is outside every range; placing
 * zeros would put them in the file, under the new place too. The handler
 * must leave it unanswered: the page stays a hole in the file.
 */
static int outside_shared(void)
{
	uint64_t len = 64 * PS, pg = 5;
	int mfd = memfd_create("rpage-probe", MFD_CLOEXEC);
	char *mem, *to;
	struct st_range r;
	struct toucher t;
	pthread_t th;
	off_t data;
	int sock;

	if (mfd < 0 || ftruncate(mfd, (off_t)len))
		return 2;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	to = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || to == MAP_FAILED)
		return 2;
	r = (struct st_range){ (uint64_t)(uintptr_t)mem, len, 0, PS };
	sock = hand_over(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_REMAP, &r, 1);
	(void)*(volatile char *)mem; /* attached */
	if (mremap(mem, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
		   to) != to) {
		fprintf(stderr, "rpage-probe: MREMAP_DONTUNMAP on a memfd: %s\n",
			strerror(errno));
		return 2;
	}
	t.p = mem + pg * PS;
	pthread_create(&th, NULL, touch_main, &t);
	pthread_detach(th);
	sleep(2);
	data = lseek(mfd, (off_t)(pg * PS), SEEK_DATA);
	if (data == (off_t)(pg * PS)) {
		fprintf(stderr, "rpage-probe: MISMATCH outside-shared: page %" PRIu64
			" of the file was filled by the handler through a mapping it was not given\n",
			pg);
		return 1;
	}
	printf("outside-shared: the page stayed a hole (the fault was not answered)\n");
	fflush(stdout);
	_exit(0); /* the toucher is still blocked, by design */
	(void)sock;
}

/* ---- live migration in this process ---- */
struct live {
	char *src, *dst;
	uint64_t len;
	struct rpage_live_source *s;
	struct rpage_live_dest *d;
	int ret, dret;
	uint64_t mark_page; /* a page set to mark_byte before migrating */
	uint8_t mark_byte;
	int action_done; /* the workload has no action under way */
	bool sync_wp;
	volatile int pre_round_done;
	pthread_t thr;
};

/* The workload pauses once its current action is over. */
static int pause_after_action(void *arg)
{
	struct live *l = arg;

	while (!__atomic_load_n(&l->action_done, __ATOMIC_ACQUIRE))
		usleep(1000);
	return 0;
}

static void *live_src_main(void *arg)
{
	struct live *l = arg;
	char port[16];

	snprintf(port, sizeof(port), "%d", rpage_live_dest_port(l->d));
	l->ret = rpage_live_source_migrate(l->s, "127.0.0.1", port);
	return NULL;
}

static int live_setup(struct live *l, uint64_t len, enum rpage_live_mode mode,
		      bool sync_wp)
{
	struct rpage_live_opts o = { .mode = mode, .streams = 2,
				     .pause = pause_after_action, .arg = l,
				     .force_sync_wp = sync_wp,
				     .postcopy_transport = RPAGE_TRANSPORT_TCP };

	l->len = len;
	l->src = st_map_anon(len, PS);
	l->dst = st_map_anon(len, PS);
	if (!l->src || !l->dst)
		return 2;
	st_fill(l->src, 0, len, seed);
	if (l->mark_byte)
		memset(l->src + l->mark_page * PS, l->mark_byte, PS);
	if (rpage_live_source_new(l->src, len, PS, &o, &l->s) ||
	    rpage_live_dest_new(l->dst, len, PS, NULL, &l->d) ||
	    rpage_live_dest_set_transport(l->d, RPAGE_TRANSPORT_TCP) ||
	    rpage_live_dest_listen(l->d, "127.0.0.1", "0"))
		return 2;
	return pthread_create(&l->thr, NULL, live_src_main, l) ? 2 : 0;
}

static int live_dest_discard(void)
{
	struct live l = { .action_done = 1 };
	uint64_t a = 0x43, b = 0x47, badn = 0;
	int ret = live_setup(&l, 1024 * PS, RPAGE_LIVE_POSTCOPY, false);

	if (ret)
		return ret;
	ret = rpage_live_dest_run(l.d);
	if (ret) {
		fprintf(stderr, "rpage-probe: switchover failed: %s\n", strerror(-ret));
		return 2;
	}
	/* a page the workload reads, then discards; one it never touched */
	if (st_check(l.dst + a * PS, a * PS, PS, seed) >= 0)
		return bad("live-dest-discard (read)", a, "source data", l.dst + a * PS, 0);
	madvise(l.dst + a * PS, PS, MADV_DONTNEED);
	madvise(l.dst + b * PS, PS, MADV_DONTNEED);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t pg = 0; pg < l.len / PS; pg++) {
			char *p = l.dst + pg * PS;
			int64_t at = pg == a || pg == b ? st_check_byte(p, PS, 0)
							: st_check(p, pg * PS, PS, seed);

			if (at >= 0 && !badn++)
				bad("live-dest-discard", pg,
				    pg == a || pg == b ? "zeros (discarded)" : "source data",
				    p, at);
		}
		if (pass == 0 && (ret = rpage_live_dest_wait(l.d, 60000))) {
			fprintf(stderr, "rpage-probe: post-copy did not complete: %s\n",
				strerror(-ret));
			return 1;
		}
	}
	pthread_join(l.thr, NULL);
	printf("live-dest-discard: %" PRIu64 " bad pages (source: %s)\n", badn,
	       strerror(-l.ret));
	rpage_live_dest_free(l.d);
	rpage_live_source_free(l.s);
	return badn || l.ret ? 1 : 0;
}

static void *live_dst_main(void *arg)
{
	struct live *l = arg;

	l->dret = rpage_live_dest_run(l->d);
	if (!l->dret)
		l->dret = rpage_live_dest_wait(l->d, 60000);
	return NULL;
}

static int live_sync_wp(void)
{
	/* the page holds 0x45 when round 1 sends it */
	struct live l = { .mark_page = 0x21, .mark_byte = 0x45 };
	struct rpage_live_stats st;
	uint64_t x = l.mark_page, badn = 0;
	pthread_t dt;
	int ret = live_setup(&l, 4096 * PS, RPAGE_LIVE_PRECOPY, true);

	if (ret || pthread_create(&dt, NULL, live_dst_main, &l))
		return 2;
	/* the workload: once round 1 has sent the page, discard it and
	 * write it again; it pauses only after that */
	for (int i = 0; i < 3000; i++) {
		rpage_live_source_get_stats(l.s, &st);
		if (st.rounds >= 1)
			break;
		usleep(2000);
	}
	madvise(l.src + x * PS, PS, MADV_DONTNEED);
	memset(l.src + x * PS, 0x99, PS);
	__atomic_store_n(&l.action_done, 1, __ATOMIC_RELEASE);
	pthread_join(dt, NULL);
	pthread_join(l.thr, NULL);
	ret = l.dret;
	if (ret || l.ret) {
		fprintf(stderr, "rpage-probe: migration failed: %s / %s\n",
			strerror(-ret), strerror(-l.ret));
		return 2;
	}
	for (uint64_t pg = 0; pg < l.len / PS; pg++) {
		char *p = l.dst + pg * PS;
		int64_t at = pg == x ? st_check_byte(p, PS, 0x99)
				     : st_check(p, pg * PS, PS, seed);

		if (at >= 0 && !badn++)
			bad("live-sync-wp", pg, pg == x ? "0x99 (rewritten)" : "source data",
			    p, at);
	}
	printf("live-sync-wp: %" PRIu64 " bad pages\n", badn);
	rpage_live_dest_free(l.d);
	rpage_live_source_free(l.s);
	return badn ? 1 : 0;
}

static void on_alarm(int sig)
{
	static const char msg[] = "rpage-probe: FAIL: still running after 90 s: a fault was never served\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rpage-probe mkimage PATH SIZE SEED\n"
		   "       rpage-probe [--socket PATH] [--seed N] [--size BYTES] [--daemon-pid PID] [--hold S] SCENARIO\n"
		   "scenarios: discard-race no-remove sigbus unmap-first fork remap outside-shared\n"
		   "           live-dest-discard live-sync-wp\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 'z' },
		{ "daemon-pid", required_argument, NULL, 'p' },
		{ "hold", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sc;
	int o;

	if (argc == 5 && !strcmp(argv[1], "mkimage")) {
		int r = st_make_image(argv[2], parse_size(argv[3]),
				      strtoull(argv[4], NULL, 0));

		if (r)
			fprintf(stderr, "rpage-probe: %s: %s\n", argv[2], strerror(-r));
		return r ? 2 : 0;
	}
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			sock_path = optarg;
			break;
		case 'S':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'z':
			img_size = parse_size(optarg);
			break;
		case 'p':
			daemon_pid = atoi(optarg);
			break;
		case 'H':
			hold_s = (unsigned)atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	sc = argv[optind];
	signal(SIGPIPE, SIG_IGN);
	/* a process blocked for good in a fault is a failure, not a hang */
	signal(SIGALRM, on_alarm);
	alarm(90);
	if (!getenv("RPAGE_LOG"))
		rpage_set_log_level(RPAGE_LOG_WARN);
	if (!strncmp(sc, "live-", 5)) {
		if (!strcmp(sc, "live-dest-discard"))
			return live_dest_discard();
		if (!strcmp(sc, "live-sync-wp"))
			return live_sync_wp();
	} else if (sock_path) {
		if (!strcmp(sc, "discard-race"))
			return discard_race();
		if (!strcmp(sc, "no-remove"))
			return refused(0, "without UFFD_FEATURE_EVENT_REMOVE");
		if (!strcmp(sc, "sigbus"))
			return refused(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_SIGBUS,
				       "with UFFD_FEATURE_SIGBUS");
		if (!strcmp(sc, "unmap-first"))
			return unmap_first();
		if (!strcmp(sc, "fork"))
			return fork_children();
		if (!strcmp(sc, "remap"))
			return remap();
		if (!strcmp(sc, "outside-shared"))
			return outside_shared();
	}
	usage(stderr);
	return 2;
}
