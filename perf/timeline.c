/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench timeline`: a whole post-copy migration on this host, watched
 * from the inside. The bench starts a page server (in-process on loopback,
 * or --connect), runs `rpage-bench guest` as a child process that hands
 * over its userfaultfd exactly as Firecracker does, serves it with
 * rpage_attach_start (faults and background fill), and samples
 * rpage_attach_get_stats every --interval-us (1 ms) until every page is
 * resident and the guest has exited. --timeline FILE writes the samples:
 *   t_ms resident_pct faults_per_ms pages_by_fault pages_by_fill faults
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/rp.h"
#include "bench.h"

struct tl_sample {
	uint64_t t_ns, resident, faults, by_fault, by_fill;
};

static void timeline_usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-bench timeline [options] [-- guest options]\n"
		"  -t, --transport T     tcp (default), local or rdma\n"
		"  -c, --connect H:P     a running rpage-server (its first region: an image from\n"
		"                        `rpage-bench mkimage FILE SIZE`, seed 1) instead\n"
		"                        of one started in-process on 127.0.0.1\n"
		"      --host ADDR       the in-process server's address (for rdma: the\n"
		"                        RoCE interface's)\n"
		"  -s, --size BYTES      guest memory (default 256M)\n"
		"      --page-size 4k|2M\n"
		"      --timeline FILE   write one line per sample (see the file's header)\n"
		"      --interval-us N   sampling period (default 1000)\n"
		"  Guest options after -- go to `rpage-bench guest` (e.g. --threads 2,\n"
		"  --touch 0.5); the guest checks every byte it reads. Keep its\n"
		"  sequential phase (the default) so it stays until every page is in.\n");
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1)) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static int write_timeline(const char *path, const struct tl_sample *smp,
			  size_t ns, const char *tname, uint64_t size,
			  uint64_t psize, uint64_t total)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "rpage-bench timeline: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	fprintf(f, "# rpage-bench timeline %s %" PRIu64 " MiB page %" PRIu64 "\n",
		tname, size >> 20, psize);
	fprintf(f, "# t_ms resident_pct faults_per_ms pages_by_fault pages_by_fill faults\n");
	for (size_t i = 0; i < ns; i++) {
		double dt = i ? (double)(smp[i].t_ns - smp[i - 1].t_ns) / 1e6 : 1.0;
		uint64_t df = i ? smp[i].faults - smp[i - 1].faults : smp[i].faults;

		fprintf(f, "%.3f %.3f %.3f %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
			(double)smp[i].t_ns / 1e6,
			100.0 * (double)smp[i].resident / (double)total,
			dt > 0 ? (double)df / dt : 0.0, smp[i].by_fault,
			smp[i].by_fill, smp[i].faults);
	}
	return fclose(f) ? -1 : 0;
}

struct timeline {
	/* the command line */
	const char *connect, *path, *host;
	enum rpage_transport t;
	uint64_t size, psize, iv_us;
	char **guest_args;     /* after --: for `rpage-bench guest` */
	int nguest_args;
	/* set up */
	struct bench_env env;
	bool env_open;
	struct rpage_source *src;
	char sock_path[108];
	int lfd, cfd, uffd;
	pid_t pid;
	struct rpage_range *ranges;
	unsigned nr;
	struct rpage_attach *att;
	/* measured */
	struct tl_sample *smp;
	size_t ns, cap;
	int gstatus;
	bool gone;
	struct rpage_stats st;
};

/* Reads the command line into @tl. Returns -1 to go on, else the exit
 * status (0 after --help, 2 for a bad command line). */
static int timeline_parse(void *arg, int argc, char **argv)
{
	struct timeline *tl = arg;
	enum { O_PS = 256, O_TL, O_IV, O_HOST };
	static const struct option lo[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "connect", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "page-size", required_argument, NULL, O_PS },
		{ "timeline", required_argument, NULL, O_TL },
		{ "interval-us", required_argument, NULL, O_IV },
		{ "host", required_argument, NULL, O_HOST },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tname = "tcp";
	int64_t v;
	int o, t;

	tl->size = 256u << 20;
	tl->psize = 4096;
	tl->iv_us = 1000;
	while ((o = getopt_long(argc, argv, "+t:c:s:h", lo, NULL)) != -1) {
		switch (o) {
		case 't':
			tname = optarg;
			break;
		case 'c':
			tl->connect = optarg;
			break;
		case 's':
		case O_PS:
			v = bench_parse_size(optarg);
			if (v <= 0) {
				fprintf(stderr, "rpage-bench timeline: bad size '%s'\n", optarg);
				return 2;
			}
			if (o == 's')
				tl->size = (uint64_t)v;
			else
				tl->psize = (uint64_t)v;
			break;
		case O_TL:
			tl->path = optarg;
			break;
		case O_IV:
			tl->iv_us = strtoull(optarg, NULL, 0);
			break;
		case O_HOST:
			tl->host = optarg;
			break;
		case 'h':
			timeline_usage(stdout);
			return 0;
		default:
			timeline_usage(stderr);
			return 2;
		}
	}
	t = rpage_transport_parse(tname);
	if (t <= 0 || (tl->psize != 4096 && tl->psize != (2u << 20)) ||
	    tl->size % tl->psize || !tl->iv_us) {
		timeline_usage(stderr);
		return 2;
	}
	tl->t = (enum rpage_transport)t;
	tl->guest_args = argv + optind;
	tl->nguest_args = argc - optind;
	return -1;
}

/* Starts the guest: this binary's `guest` command, as its own process,
 * handing its userfaultfd over @tl->sock_path. 0 or -errno. */
static int timeline_spawn_guest(struct timeline *tl)
{
	char sz[32], ps[32];
	char **gargv;
	int k = 0;

	gargv = calloc((size_t)tl->nguest_args + 12, sizeof(*gargv));
	if (!gargv)
		return -ENOMEM;
	snprintf(sz, sizeof(sz), "%" PRIu64, tl->size);
	snprintf(ps, sizeof(ps), "%" PRIu64, tl->psize);
	gargv[k++] = "rpage-bench";
	gargv[k++] = "guest";
	gargv[k++] = "--uffd-socket";
	gargv[k++] = tl->sock_path;
	gargv[k++] = "--size";
	gargv[k++] = sz;
	gargv[k++] = "--page-size";
	gargv[k++] = ps;
	for (int i = 0; i < tl->nguest_args; i++)
		gargv[k++] = tl->guest_args[i];
	gargv[k] = NULL;
	fflush(NULL);
	tl->pid = fork();
	if (tl->pid == 0) {
		execv("/proc/self/exe", gargv);
		_exit(127);
	}
	free(gargv);
	if (tl->pid < 0) {
		perror("rpage-bench timeline: fork");
		return -errno;
	}
	return 0;
}

/* The server and source, the guest, its handshake and the attachment
 * that serves it. Returns 0, or the exit status (1). */
static int timeline_setup(void *arg)
{
	struct timeline *tl = arg;
	char why[200];
	int ret;

	tl->lfd = tl->cfd = tl->uffd = -1;
	if (!getenv("RPAGE_LOG"))
		rpage_set_log_level(RPAGE_LOG_WARN);
	if (bench_env_open_ex(&tl->env, tl->connect, tl->host,
			      tl->t == RPAGE_TRANSPORT_RDMA, tl->size,
			      (uint32_t)tl->psize, NULL))
		return 1;
	tl->env_open = true;
	if (bench_env_source(&tl->env, tl->t, &tl->src, why, sizeof(why))) {
		fprintf(stderr, "rpage-bench timeline: %s\n", why);
		return 1;
	}
	snprintf(tl->sock_path, sizeof(tl->sock_path),
		 "/tmp/rpage-bench-timeline.%d.sock", (int)getpid());
	tl->lfd = listen_unix(tl->sock_path);
	if (tl->lfd < 0) {
		fprintf(stderr, "rpage-bench timeline: %s: %s\n", tl->sock_path,
			strerror(-tl->lfd));
		return 1;
	}
	if (timeline_spawn_guest(tl))
		return 1;
	tl->cfd = accept4(tl->lfd, NULL, NULL, SOCK_CLOEXEC);
	ret = tl->cfd < 0 ? -errno
			  : rpage_fc_recv(tl->cfd, &tl->ranges, &tl->nr, &tl->uffd);
	if (!ret)
		ret = rpage_attach_start(tl->src, 0, tl->uffd, tl->ranges,
					 tl->nr, NULL, &tl->att);
	if (ret) {
		fprintf(stderr, "rpage-bench timeline: handshake/attach: %s\n",
			strerror(-ret));
		kill(tl->pid, SIGKILL);
		waitpid(tl->pid, NULL, 0);
		return 1;
	}
	tl->uffd = -1;
	return 0;
}

/* Samples the attachment's statistics every interval until every page is
 * resident and the guest has exited (10 minutes at most). */
static int timeline_run(void *arg)
{
	struct timeline *tl = arg;
	struct timespec next;
	uint64_t t0 = rp_now_ns();

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		struct tl_sample *s;

		if (tl->ns == tl->cap) {
			size_t nc = tl->cap ? tl->cap * 2 : 4096;
			struct tl_sample *p = realloc(tl->smp, nc * sizeof(*p));

			if (!p)
				break;
			tl->smp = p;
			tl->cap = nc;
		}
		rpage_attach_get_stats(tl->att, &tl->st);
		s = &tl->smp[tl->ns++];
		s->t_ns = rp_now_ns() - t0;
		s->resident = tl->st.pages_resident;
		s->faults = tl->st.faults;
		s->by_fault = tl->st.pages_by_fault;
		s->by_fill = tl->st.pages_by_fill;
		if (!tl->gone && waitpid(tl->pid, &tl->gstatus, WNOHANG) == tl->pid)
			tl->gone = true;
		if (tl->st.state != RPAGE_ATTACH_RUNNING && tl->gone)
			break;
		if (s->t_ns > 600ull * 1000000000ull) {
			fprintf(stderr, "rpage-bench timeline: no end after 10 minutes\n");
			kill(tl->pid, SIGKILL);
			break;
		}
		next.tv_nsec += (long)(tl->iv_us * 1000);
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	if (!tl->gone)
		waitpid(tl->pid, &tl->gstatus, 0);
	rpage_attach_get_stats(tl->att, &tl->st);
	return 0;
}

/* The statistics, then --timeline FILE. 0, or 1 when the guest or the
 * migration failed or the file could not be written. */
static int timeline_report(void *arg)
{
	struct timeline *tl = arg;
	int ret = 0;

	printf("# rpage-bench timeline: %s, %" PRIu64 " MiB, page %" PRIu64 " B, %s server\n",
	       rpage_transport_name(tl->t), tl->size >> 20, tl->psize,
	       tl->env.remote ? "remote" : "in-process");
	rpage_stats_print(stdout, "migration", &tl->st);
	printf("# %zu samples every %" PRIu64 " us; guest exit status %d\n",
	       tl->ns, tl->iv_us,
	       WIFEXITED(tl->gstatus) ? WEXITSTATUS(tl->gstatus) : -1);
	if (tl->path && write_timeline(tl->path, tl->smp, tl->ns,
				       rpage_transport_name(tl->t), tl->size,
				       tl->psize, tl->st.pages_total))
		ret = 1;
	if (!WIFEXITED(tl->gstatus) || WEXITSTATUS(tl->gstatus) ||
	    tl->st.state != RPAGE_ATTACH_COMPLETE)
		ret = 1;
	return ret;
}

static void timeline_teardown(void *arg)
{
	struct timeline *tl = arg;

	if (tl->att)
		rpage_attach_free(tl->att);
	if (tl->uffd >= 0)
		close(tl->uffd);
	if (tl->cfd >= 0)
		close(tl->cfd);
	if (tl->lfd >= 0) {
		close(tl->lfd);
		unlink(tl->sock_path);
	}
	free(tl->ranges);
	free(tl->smp);
	if (tl->src)
		rpage_source_close(tl->src);
	if (tl->env_open)
		bench_env_close(&tl->env);
}

const struct bench_cmd bench_timeline_cmd = {
	.name = "timeline", .size = sizeof(struct timeline),
	.parse = timeline_parse, .setup = timeline_setup, .run = timeline_run,
	.report = timeline_report, .teardown = timeline_teardown,
};
