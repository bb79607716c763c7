/* SPDX-License-Identifier: MIT */
/*
 * rpage-client: the destination daemon. Processes hand it their
 * userfaultfd over a Unix socket exactly as Firecracker does for its UFFD
 * snapshot backend; it serves their faults from an rpage-server (or a local
 * file) and fills the rest in the background.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/net.h"
#include "../common/rp.h"

#define MAX_GUESTS 256

struct guest {
	int sock;
	pid_t pid;
	struct rpage_attach *att;
	bool reported_complete, reported_failed;
	uint64_t last_bytes, last_faults;
	char name[48];
};

struct client {
	struct rpage_source *src;
	int region;
	struct rpage_attach_opts aopts;
	FILE *json;
	bool progress, tty, once;
	int listen_fd;
	struct guest g[MAX_GUESTS];
	unsigned ng;
	unsigned served, failed;
	uint64_t last_tick;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-client (--connect HOST:PORT | --local PATH) --uffd-socket PATH [options]\n"
		"\n"
		"Page-fault handler daemon. A process connects to --uffd-socket and sends,\n"
		"in one message, a JSON array of {base_host_virt_addr, size, offset,\n"
		"page_size} with its userfaultfd attached (SCM_RIGHTS), as Firecracker's\n"
		"UFFD snapshot backend does; \"offset\" is an offset into the region.\n"
		"\n"
		"  -c, --connect HOST:PORT  the rpage-server holding the memory\n"
		"      --local PATH         serve pages from a file on this host instead\n"
		"  -u, --uffd-socket PATH   Unix socket to listen on for handshakes\n"
		"  -r, --region NAME        region to serve (default: the only/first one)\n"
		"  -t, --transport T        auto (default: rdma when both ends have a usable\n"
		"                           RDMA device, else tcp), tcp, rdma\n"
		"      --rdma-dev NAME      RDMA device to use (default: the one routing to\n"
		"                           the server)\n"
		"      --stats-json FILE    append one JSON object per process (complete, gone)\n"
		"      --progress           live progress (default when stderr is a terminal)\n"
		"      --no-progress\n"
		"      --once               exit after the first process has gone\n"
		"      --fill-chunk BYTES   background fill request size (default 1 MiB)\n"
		"      --fill-depth N       background fill requests in flight (default 4)\n"
		"      --no-fill            serve faults only\n"
		"  -v, --verbose / -q, --quiet\n");
}

static void guest_report(struct client *c, struct guest *g, const char *why)
{
	struct rpage_stats st;

	rpage_attach_get_stats(g->att, &st);
	if (c->tty && c->progress)
		fprintf(stderr, "\r\033[K");
	fprintf(stderr, "rpage-client: %s %s\n", g->name, why);
	rpage_stats_print(stderr, g->name, &st);
	if (c->json) {
		rpage_stats_print_json(c->json, g->name, &st);
		fflush(c->json);
	}
}

static void guest_close(struct client *c, unsigned i)
{
	struct guest *g = &c->g[i];

	if (g->att) {
		struct rpage_stats st;

		rpage_attach_stop(g->att);
		rpage_attach_get_stats(g->att, &st);
		if (st.state == RPAGE_ATTACH_FAILED)
			c->failed++;
		guest_report(c, g, "has gone");
		rpage_attach_free(g->att);
	}
	close(g->sock);
	c->g[i] = c->g[--c->ng];
}

/* A handshake arrived on a new connection: validate and attach. */
static int guest_handshake(struct client *c, struct guest *g)
{
	struct rpage_attach_opts aopts;
	struct rpage_range *r = NULL;
	unsigned n = 0;
	int uffd = -1, ret;

	ret = rpage_fc_recv(g->sock, &r, &n, &uffd);
	if (ret) {
		fprintf(stderr, "rpage-client: %s: handshake refused: %s\n",
			g->name, strerror(-ret));
		return ret;
	}
	aopts = c->aopts;
	aopts.pid = g->pid;
	ret = rpage_attach_start(c->src, (unsigned)c->region, uffd, r, n,
				 &aopts, &g->att);
	if (ret) {
		fprintf(stderr, "rpage-client: %s: cannot serve its memory: %s\n",
			g->name, strerror(-ret));
		close(uffd);
	} else {
		uint64_t total = 0;

		for (unsigned i = 0; i < n; i++)
			total += r[i].size;
		fprintf(stderr, "rpage-client: %s: serving %u range%s, %.1f MiB, page size %" PRIu64 "\n",
			g->name, n, n == 1 ? "" : "s", (double)total / 1048576.0,
			r[0].page_size);
		c->served++;
	}
	free(r);
	return ret;
}

static void accept_guest(struct client *c)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	struct timeval tv = { .tv_sec = 5 };
	struct guest *g;
	int fd;

	fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (c->ng == MAX_GUESTS) {
		fprintf(stderr, "rpage-client: refusing a process: %d already served\n",
			MAX_GUESTS);
		close(fd);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	g = &c->g[c->ng++];
	memset(g, 0, sizeof(*g));
	g->sock = fd;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
		g->pid = cr.pid;
	snprintf(g->name, sizeof(g->name), "process %d", (int)g->pid);
}

static void progress(struct client *c, bool force)
{
	uint64_t now = rp_now_ns();
	double dt = (double)(now - c->last_tick) / 1e9;
	char line[512];
	size_t len = 0;

	if (!c->progress || (!force && dt < (c->tty ? 0.25 : 2.0)))
		return;
	c->last_tick = now;
	for (unsigned i = 0; i < c->ng && len < sizeof(line) - 128; i++) {
		struct guest *g = &c->g[i];
		struct rpage_stats st;
		uint64_t bytes;

		if (!g->att)
			continue;
		rpage_attach_get_stats(g->att, &st);
		if (st.state != RPAGE_ATTACH_RUNNING)
			continue; /* its report is out: leave the line clean */
		bytes = st.bytes_fill + st.bytes_fault;
		len += (size_t)snprintf(line + len, sizeof(line) - len,
			"%s[%d] %5.1f%% resident, %.0f faults/s, %.0f MB/s  ",
			len ? "| " : "", (int)g->pid,
			st.pages_total ? 100.0 * (double)st.pages_resident /
						 (double)st.pages_total
				       : 0.0,
			(double)(st.faults - g->last_faults) / dt,
			(double)(bytes - g->last_bytes) / 1e6 / dt);
		g->last_faults = st.faults;
		g->last_bytes = bytes;
	}
	if (!len)
		return;
	if (c->tty)
		fprintf(stderr, "\r\033[K%s", line);
	else
		fprintf(stderr, "rpage-client: progress: %s\n", line);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "rpage-client: socket path too long: %s\n", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			fprintf(stderr, "rpage-client: %s exists and is not a socket\n",
				path);
			return -EEXIST;
		}
		unlink(path); /* stale socket from an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 64) < 0) {
		int e = -errno;

		fprintf(stderr, "rpage-client: cannot listen on %s: %s\n", path,
			strerror(errno));
		close(fd);
		return e;
	}
	return fd;
}

static int run(struct client *c, int sfd)
{
	struct pollfd pf[2 + 2 * MAX_GUESTS];

	for (;;) {
		unsigned np = 0;

		pf[np++] = (struct pollfd){ sfd, POLLIN, 0 };
		pf[np++] = (struct pollfd){ c->listen_fd, POLLIN, 0 };
		for (unsigned i = 0; i < c->ng; i++) {
			pf[np++] = (struct pollfd){ c->g[i].sock, POLLIN, 0 };
			pf[np++] = (struct pollfd){
				c->g[i].att ? rpage_attach_event_fd(c->g[i].att)
					    : -1,
				POLLIN, 0
			};
		}
		if (poll(pf, np, c->progress ? 250 : -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pf[0].revents)
			return 0;
		if (pf[1].revents)
			accept_guest(c);
		/* walk backwards: guest_close moves the last guest into i */
		for (unsigned i = (np - 2) / 2; i-- > 0;) {
			struct guest *g = &c->g[i];
			short sr = pf[2 + 2 * i].revents;
			short er = pf[3 + 2 * i].revents;

			if (i >= c->ng)
				continue;
			if (er) {
				struct rpage_stats st;
				uint64_t v;

				if (read(pf[3 + 2 * i].fd, &v, sizeof(v)) < 0)
					v = 0;
				rpage_attach_get_stats(g->att, &st);
				if (st.state == RPAGE_ATTACH_COMPLETE &&
				    !g->reported_complete) {
					g->reported_complete = true;
					guest_report(c, g, "is complete");
				} else if (st.state == RPAGE_ATTACH_FAILED &&
					   !g->reported_failed) {
					g->reported_failed = true;
					guest_report(c, g, "FAILED");
				}
			}
			if (!sr)
				continue;
			if (!g->att) {
				if (guest_handshake(c, g)) {
					/* that process's problem, not ours:
					 * only --once makes it our status */
					guest_close(c, i);
					if (c->once)
						return -EPROTO;
				}
			} else {
				char b[256];
				ssize_t n = recv(g->sock, b, sizeof(b), MSG_DONTWAIT);

				if (n == 0 || (n < 0 && errno != EAGAIN &&
					       errno != EINTR)) {
					guest_close(c, i);
					if (c->once)
						return 0;
				}
			}
		}
		progress(c, false);
	}
}

int main(int argc, char **argv)
{
	enum { O_LOCAL = 256, O_JSON, O_PROG, O_NOPROG, O_ONCE, O_CHUNK,
	       O_DEPTH, O_NOFILL, O_RDMA_DEV };
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "local", required_argument, NULL, O_LOCAL },
		{ "uffd-socket", required_argument, NULL, 'u' },
		{ "region", required_argument, NULL, 'r' },
		{ "transport", required_argument, NULL, 't' },
		{ "rdma-dev", required_argument, NULL, O_RDMA_DEV },
		{ "stats-json", required_argument, NULL, O_JSON },
		{ "progress", no_argument, NULL, O_PROG },
		{ "no-progress", no_argument, NULL, O_NOPROG },
		{ "once", no_argument, NULL, O_ONCE },
		{ "fill-chunk", required_argument, NULL, O_CHUNK },
		{ "fill-depth", required_argument, NULL, O_DEPTH },
		{ "no-fill", no_argument, NULL, O_NOFILL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct client cl;
	struct client *c = &cl;
	const char *connect_to = NULL, *local = NULL, *sock = NULL;
	const char *region = NULL, *json = NULL, *rdma_dev = NULL;
	int transport = RPAGE_TRANSPORT_AUTO, progress_opt = -1, o, ret, sfd;
	struct rpage_region_info ri;
	sigset_t ss;

	while ((o = getopt_long(argc, argv, "c:u:r:t:vqh", opts, NULL)) != -1) {
		char *end;
		unsigned long v;

		switch (o) {
		case 'c':
			connect_to = optarg;
			break;
		case O_LOCAL:
			local = optarg;
			break;
		case 'u':
			sock = optarg;
			break;
		case 'r':
			region = optarg;
			break;
		case 't':
			transport = rpage_transport_parse(optarg);
			if (transport < 0) {
				fprintf(stderr, "rpage-client: unknown transport '%s' (auto, tcp, rdma)\n",
					optarg);
				return 2;
			}
			break;
		case O_JSON:
			json = optarg;
			break;
		case O_RDMA_DEV:
			rdma_dev = optarg;
			break;
		case O_PROG:
			progress_opt = 1;
			break;
		case O_NOPROG:
			progress_opt = 0;
			break;
		case O_ONCE:
			c->once = true;
			break;
		case O_CHUNK:
		case O_DEPTH:
			errno = 0;
			v = strtoul(optarg, &end, 0);
			if (errno || *end || !v || v > (o == O_CHUNK ? 4ul << 20 : 64)) {
				fprintf(stderr, "rpage-client: bad value '%s' for --%s\n",
					optarg, o == O_CHUNK ? "fill-chunk" : "fill-depth");
				return 2;
			}
			if (o == O_CHUNK)
				c->aopts.fill_chunk = (uint32_t)v;
			else
				c->aopts.fill_depth = (uint32_t)v;
			break;
		case O_NOFILL:
			c->aopts.no_fill = 1;
			break;
		case 'v':
			rpage_set_log_level(RPAGE_LOG_DEBUG);
			break;
		case 'q':
			rpage_set_log_level(RPAGE_LOG_ERR);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !sock || !!connect_to == !!local) {
		fprintf(stderr, "rpage-client: %s\n",
			optind != argc ? "unexpected argument"
			: !sock	       ? "--uffd-socket PATH is required"
				       : "give exactly one of --connect HOST:PORT and --local PATH");
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (local) {
		ret = rpage_source_open_local(region ? region : "local", local,
					      &c->src);
	} else {
		char host[256], port[32];

		if (rp_split_hostport(connect_to, host, sizeof(host), port,
				      sizeof(port))) {
			fprintf(stderr, "rpage-client: --connect wants HOST:PORT, got '%s'\n",
				connect_to);
			return 2;
		}
		struct rpage_connect_opts co = {
			.transport = (enum rpage_transport)transport,
			.rdma_dev = rdma_dev,
		};

		ret = rpage_source_connect_opts(host, port, &co, &c->src);
	}
	if (ret) {
		fprintf(stderr, "rpage-client: cannot open the source: %s\n",
			strerror(-ret));
		return 1;
	}
	c->region = region ? rpage_source_find_region(c->src, region) : 0;
	if (c->region < 0) {
		fprintf(stderr, "rpage-client: the source has no region '%s'\n",
			region);
		return rpage_source_close(c->src), 1;
	}
	rpage_source_region_info(c->src, (unsigned)c->region, &ri);
	if (json) {
		c->json = fopen(json, "a");
		if (!c->json) {
			fprintf(stderr, "rpage-client: cannot open %s: %s\n", json,
				strerror(errno));
			return rpage_source_close(c->src), 1;
		}
	}
	c->tty = isatty(2);
	c->progress = progress_opt >= 0 ? progress_opt : c->tty;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC);
	c->listen_fd = listen_unix(sock);
	if (c->listen_fd < 0)
		return rpage_source_close(c->src), 1;
	printf("rpage-client: ready on %s: region '%s' (%.1f MiB, page size %u) over %s\n",
	       sock, ri.name, (double)ri.length / 1048576.0, ri.page_size,
	       rpage_transport_name(rpage_source_transport(c->src)));
	fflush(stdout);
	ret = run(c, sfd);
	while (c->ng)
		guest_close(c, c->ng - 1);
	close(c->listen_fd);
	unlink(sock);
	rpage_source_close(c->src);
	if (c->json)
		fclose(c->json);
	if (ret < 0 && ret != -EPROTO)
		fprintf(stderr, "rpage-client: %s\n", strerror(-ret));
	return ret || c->failed ? 1 : 0;
}
