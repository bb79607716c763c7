/* SPDX-License-Identifier: MIT */
/* rpage-server: the source daemon. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/net.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-server --listen HOST:PORT --region NAME=PATH [--region ...]\n"
		"\n"
		"Serves the files named by --region (regular files, /dev/shm files,\n"
		"hugetlbfs files) to rpage clients. Prints one line when ready.\n"
		"\n"
		"  -l, --listen HOST:PORT   address to listen on (port 0: any free port)\n"
		"  -r, --region NAME=PATH   export PATH as region NAME ([A-Za-z0-9._-]+)\n"
		"      --rdma-port PORT     rdma_cm port for RDMA clients (default: the TCP\n"
		"                           port's number, or any free port if it is taken;\n"
		"                           clients learn it over TCP). Without a usable\n"
		"                           RDMA device the server serves TCP only.\n"
		"      --no-rdma            do not listen for RDMA\n"
		"  -v, --verbose            debug logging\n"
		"  -q, --quiet              errors only\n"
		"  -h, --help\n");
}

/* Frees the server on every way out, so sanitizer builds see no leak. */
static int finish(struct rpage_server *srv, int rc)
{
	rpage_server_free(srv);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "region", required_argument, NULL, 'r' },
		{ "rdma-port", required_argument, NULL, 256 },
		{ "no-rdma", no_argument, NULL, 257 },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char host[256] = "", port[32] = "";
	struct rpage_server *srv;
	struct rpage_server_stats st;
	struct signalfd_siginfo si;
	const char *listen = NULL, *rdma_port = NULL;
	int c, ret, sfd, nreg = 0, no_rdma = 0;
	sigset_t ss;

	if (rpage_server_new(&srv)) {
		fprintf(stderr, "rpage-server: out of memory\n");
		return 1;
	}
	while ((c = getopt_long(argc, argv, "l:r:vqh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 'r': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg || !eq[1]) {
				fprintf(stderr, "rpage-server: --region wants NAME=PATH, got '%s'\n",
					optarg);
				return finish(srv, 2);
			}
			*eq = 0;
			ret = rpage_server_add_region(srv, optarg, eq + 1);
			if (ret < 0) {
				fprintf(stderr, "rpage-server: cannot export region '%s' from %s: %s\n",
					optarg, eq + 1, strerror(-ret));
				return finish(srv, 1);
			}
			nreg++;
			break;
		}
		case 256:
			rdma_port = optarg;
			break;
		case 257:
			no_rdma = 1;
			break;
		case 'v':
			rpage_set_log_level(RPAGE_LOG_DEBUG);
			break;
		case 'q':
			rpage_set_log_level(RPAGE_LOG_ERR);
			break;
		case 'h':
			usage(stdout);
			return finish(srv, 0);
		default:
			usage(stderr);
			return finish(srv, 2);
		}
	}
	if (optind != argc || !listen || !nreg) {
		if (optind != argc)
			fprintf(stderr, "rpage-server: unexpected argument '%s'\n",
				argv[optind]);
		else
			fprintf(stderr, "rpage-server: %s is required\n",
				!listen ? "--listen HOST:PORT" : "at least one --region");
		usage(stderr);
		return finish(srv, 2);
	}
	if (rp_split_hostport(listen, host, sizeof(host), port, sizeof(port))) {
		fprintf(stderr, "rpage-server: --listen wants HOST:PORT, got '%s'\n",
			listen);
		return finish(srv, 2);
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC);
	ret = rpage_server_listen(srv, host, port);
	if (ret) {
		fprintf(stderr, "rpage-server: cannot listen on %s: %s\n", listen,
			strerror(-ret));
		return finish(srv, 1);
	}
	if (!no_rdma) {
		char defport[16];

		snprintf(defport, sizeof(defport), "%d", rpage_server_port(srv));
		ret = rpage_server_listen_rdma(srv, host,
					       rdma_port ? rdma_port : defport);
		if (ret == -EADDRINUSE && !rdma_port)
			ret = rpage_server_listen_rdma(srv, host, "0");
		if (ret == 0) {
			printf("rpage-server: RDMA on %s port %d\n", host,
			       rpage_server_rdma_port(srv));
		} else if (rdma_port) {
			fprintf(stderr, "rpage-server: cannot listen for RDMA on %s:%s: %s\n",
				host, rdma_port, strerror(-ret));
			return finish(srv, 1);
		} else {
			printf("rpage-server: no RDMA (%s): serving TCP only\n",
			       ret == -ENODEV ? "no usable RDMA device"
					      : strerror(-ret));
		}
	}
	ret = rpage_server_start(srv);
	if (ret) {
		fprintf(stderr, "rpage-server: cannot start: %s\n", strerror(-ret));
		return finish(srv, 1);
	}
	printf("rpage-server: ready on %s:%d with %d region%s\n", host,
	       rpage_server_port(srv), nreg, nreg == 1 ? "" : "s");
	fflush(stdout);
	while (read(sfd, &si, sizeof(si)) < 0 && errno == EINTR)
		;
	rpage_server_get_stats(srv, &st);
	rpage_server_free(srv);
	printf("rpage-server: stopped: %llu connections (%llu closed for bad input), %llu page requests, %.1f MB sent\n",
	       (unsigned long long)st.connections,
	       (unsigned long long)st.rejected,
	       (unsigned long long)st.page_requests, (double)st.bytes_sent / 1e6);
	return 0;
}
