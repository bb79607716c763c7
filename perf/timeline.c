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

int cmd_timeline(int argc, char **argv)
{
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
	const char *connect = NULL, *timeline = NULL, *tname = "tcp",
		   *host = NULL;
	uint64_t size = 256u << 20, psize = 4096, iv_us = 1000;
	struct rpage_source *src = NULL;
	struct rpage_attach *att = NULL;
	struct rpage_range *ranges = NULL;
	struct tl_sample *smp = NULL;
	size_t ns = 0, cap = 0;
	struct bench_env env;
	struct rpage_stats st;
	char sock_path[108], why[200], sz[32], ps[32];
	char **gargv;
	unsigned nr = 0;
	int o, t, lfd = -1, cfd = -1, uffd = -1, ret = 0, gstatus = 0;
	bool gone = false;
	pid_t pid;
	int64_t v;

	while ((o = getopt_long(argc, argv, "+t:c:s:h", lo, NULL)) != -1) {
		switch (o) {
		case 't':
			tname = optarg;
			break;
		case 'c':
			connect = optarg;
			break;
		case 's':
		case O_PS:
			v = bench_parse_size(optarg);
			if (v <= 0) {
				fprintf(stderr, "rpage-bench timeline: bad size '%s'\n", optarg);
				return 2;
			}
			if (o == 's')
				size = (uint64_t)v;
			else
				psize = (uint64_t)v;
			break;
		case O_TL:
			timeline = optarg;
			break;
		case O_IV:
			iv_us = strtoull(optarg, NULL, 0);
			break;
		case O_HOST:
			host = optarg;
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
	if (t <= 0 || (psize != 4096 && psize != (2u << 20)) || size % psize ||
	    !iv_us) {
		timeline_usage(stderr);
		return 2;
	}
	if (!getenv("RPAGE_LOG"))
		rpage_set_log_level(RPAGE_LOG_WARN);
	if (bench_env_open_ex(&env, connect, host,
			      t == RPAGE_TRANSPORT_RDMA, size, (uint32_t)psize,
			      NULL))
		return 1;
	if (bench_env_source(&env, (enum rpage_transport)t, &src, why,
			     sizeof(why))) {
		fprintf(stderr, "rpage-bench timeline: %s\n", why);
		bench_env_close(&env);
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "/tmp/rpage-bench-timeline.%d.sock",
		 (int)getpid());
	lfd = listen_unix(sock_path);
	if (lfd < 0) {
		fprintf(stderr, "rpage-bench timeline: %s: %s\n", sock_path,
			strerror(-lfd));
		ret = 1;
		goto out;
	}
	/* the guest: this binary's `guest` command, as its own process */
	gargv = calloc((size_t)(argc - optind) + 12, sizeof(*gargv));
	if (!gargv) {
		ret = 1;
		goto out;
	}
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	snprintf(ps, sizeof(ps), "%" PRIu64, psize);
	{
		int k = 0;

		gargv[k++] = "rpage-bench";
		gargv[k++] = "guest";
		gargv[k++] = "--uffd-socket";
		gargv[k++] = sock_path;
		gargv[k++] = "--size";
		gargv[k++] = sz;
		gargv[k++] = "--page-size";
		gargv[k++] = ps;
		for (int i = optind; i < argc; i++)
			gargv[k++] = argv[i];
		gargv[k] = NULL;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execv("/proc/self/exe", gargv);
		_exit(127);
	}
	free(gargv);
	if (pid < 0) {
		perror("rpage-bench timeline: fork");
		ret = 1;
		goto out;
	}
	cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ret = cfd < 0 ? -errno : rpage_fc_recv(cfd, &ranges, &nr, &uffd);
	if (!ret)
		ret = rpage_attach_start(src, 0, uffd, ranges, nr, NULL, &att);
	if (ret) {
		fprintf(stderr, "rpage-bench timeline: handshake/attach: %s\n",
			strerror(-ret));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		ret = 1;
		goto out;
	}
	uffd = -1;
	{
		struct timespec next;
		uint64_t t0 = rp_now_ns();

		clock_gettime(CLOCK_MONOTONIC, &next);
		for (;;) {
			struct tl_sample *s;

			if (ns == cap) {
				size_t nc = cap ? cap * 2 : 4096;
				struct tl_sample *p = realloc(smp, nc * sizeof(*p));

				if (!p)
					break;
				smp = p;
				cap = nc;
			}
			rpage_attach_get_stats(att, &st);
			s = &smp[ns++];
			s->t_ns = rp_now_ns() - t0;
			s->resident = st.pages_resident;
			s->faults = st.faults;
			s->by_fault = st.pages_by_fault;
			s->by_fill = st.pages_by_fill;
			if (!gone && waitpid(pid, &gstatus, WNOHANG) == pid)
				gone = true;
			if (st.state != RPAGE_ATTACH_RUNNING && gone)
				break;
			if (s->t_ns > 600ull * 1000000000ull) {
				fprintf(stderr, "rpage-bench timeline: no end after 10 minutes\n");
				kill(pid, SIGKILL);
				break;
			}
			next.tv_nsec += (long)(iv_us * 1000);
			while (next.tv_nsec >= 1000000000L) {
				next.tv_nsec -= 1000000000L;
				next.tv_sec++;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		}
	}
	if (!gone)
		waitpid(pid, &gstatus, 0);
	rpage_attach_get_stats(att, &st);
	printf("# rpage-bench timeline: %s, %" PRIu64 " MiB, page %" PRIu64 " B, %s server\n",
	       rpage_transport_name((enum rpage_transport)t), size >> 20, psize,
	       env.remote ? "remote" : "in-process");
	rpage_stats_print(stdout, "migration", &st);
	printf("# %zu samples every %" PRIu64 " us; guest exit status %d\n", ns,
	       iv_us, WIFEXITED(gstatus) ? WEXITSTATUS(gstatus) : -1);
	if (timeline && write_timeline(timeline, smp, ns,
				       rpage_transport_name((enum rpage_transport)t),
				       size, psize, st.pages_total))
		ret = 1;
	if (!WIFEXITED(gstatus) || WEXITSTATUS(gstatus) ||
	    st.state != RPAGE_ATTACH_COMPLETE)
		ret = 1;
out:
	if (att)
		rpage_attach_free(att);
	if (uffd >= 0)
		close(uffd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0) {
		close(lfd);
		unlink(sock_path);
	}
	free(ranges);
	free(smp);
	if (src)
		rpage_source_close(src);
	bench_env_close(&env);
	return ret;
}
