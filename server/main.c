/* SPDX-License-Identifier: MIT */
/*
 * rpage-server: the source daemon.
 *
 * Threads: the main thread sets up and then waits for SIGTERM/SIGINT; the
 * library's threads serve (server/server.c); with --metrics, the
 * endpoint's thread ("rpage/metrics", common/metrics_http.c) renders
 * snapshots of the server's counters on each scrape.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/metrics.h"
#include "../common/net.h"
#include "../common/tls.h"
#include "server_int.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-server --listen HOST:PORT --region NAME=PATH [--region ...] [credentials]\n"
		"       rpage-server --gen-psk FILE [--identity NAME]\n"
		"\n"
		"Serves the files named by --region (regular files, /dev/shm files,\n"
		"hugetlbfs files) to rpage clients. Prints one line when ready.\n"
		"With credentials every connection is TLS 1.3 with mutual authentication;\n"
		"without, it serves only on a loopback address unless --insecure.\n"
		"\n"
		"  -l, --listen HOST:PORT   address to listen on (port 0: any free port)\n"
		"  -r, --region NAME=PATH   export PATH as region NAME ([A-Za-z0-9._-]+)\n"
		"      --psk-file FILE      pre-shared keys, IDENTITY:HEXKEY per line (QEMU's\n"
		"                           keys.psk format; any identity in it may connect)\n"
		"      --tls-cert FILE      X.509: this server's certificate (PEM)\n"
		"      --tls-key FILE       its private key (PEM)\n"
		"      --tls-ca FILE        the CA that signs clients' certificates (PEM)\n"
		"      --allow ID:REGION[,REGION...]  identity ID may read these regions\n"
		"                           ('*': all); once given, an identity reads only\n"
		"                           what is allowed to it (default: all, to all)\n"
		"      --insecure           serve plain TCP beyond loopback (anyone who reaches\n"
		"                           the port reads every region)\n"
		"      --no-ktls            keep TLS records in user space\n"
		"      --gen-psk FILE       write a new random key to FILE (mode 0600) and exit\n"
		"      --identity NAME      the identity --gen-psk writes (default: rpage)\n"
		"      --max-conns N        TCP connections open in all (default 1024)\n"
		"      --max-conns-per-peer N  from one address (default 64)\n"
		"      --handshake-timeout MS  connect to HELLO, TLS included (default 10000)\n"
		"      --idle-timeout MS    close a connection with no request for MS (default: never)\n"
		"      --resume-grace MS    keep the session of a client whose connection\n"
		"                           broke resumable for MS (default 60000)\n"
		"      --max-rdma N         RDMA connections in all (default 1024)\n"
		"      --max-rdma-per-session N  (default 64)\n"
		"      --rdma-port PORT     rdma_cm port for RDMA clients (default: the TCP\n"
		"                           port's number, or any free port if it is taken;\n"
		"                           clients learn it over TCP). Without a usable\n"
		"                           RDMA device the server serves TCP only.\n"
		"      --no-rdma            do not listen for RDMA\n"
		"      --metrics HOST:PORT  serve metrics (OpenMetrics/Prometheus) at\n"
		"                           /metrics; :PORT is loopback. Beyond loopback\n"
		"                           only with X.509 credentials, as HTTPS that\n"
		"                           takes client certificates the CA signed\n"
		"  -v, --verbose            debug logging\n"
		"  -q, --quiet              errors only\n"
		"  -h, --help\n");
}

static struct rpage_tls *g_tls;
static char **g_allow;
static unsigned g_nallow;

/* Frees the server on every way out, so sanitizer builds see no leak. */
static int finish(struct rpage_server *srv, int rc)
{
	rpage_server_free(srv);
	rpage_tls_free(g_tls);
	free(g_allow);
	return rc;
}

/* A positive number option: 0 and the value, or -1 after a message. */
static int num_opt(const char *name, const char *v, unsigned *out)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || *end || !x || x > 1000000000ul) {
		fprintf(stderr, "rpage-server: bad value '%s' for --%s\n", v, name);
		return -1;
	}
	*out = (unsigned)x;
	return 0;
}

/* --allow ID:REGION[,REGION...] */
static int apply_allow(struct rpage_server *srv, char *spec)
{
	char *colon = strchr(spec, ':'), *save = NULL, *r;
	int ret;

	if (!colon || colon == spec || !colon[1]) {
		fprintf(stderr, "rpage-server: --allow wants IDENTITY:REGION[,REGION...], got '%s'\n",
			spec);
		return -1;
	}
	*colon = 0;
	for (r = strtok_r(colon + 1, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
		ret = rpage_server_allow(srv, spec, r);
		if (ret) {
			fprintf(stderr, "rpage-server: --allow %s:%s: %s\n", spec, r,
				ret == -ENOENT ? "no such region" : strerror(-ret));
			return -1;
		}
	}
	return 0;
}

/* ---- metrics (docs/metrics.md) ---- */

static const struct rp_mfam m_accepted = {
	"rpage_server_connections_accepted", RP_M_COUNTER, NULL,
	"TCP connections accepted within the connection caps"
};
static const struct rp_mfam m_open = {
	"rpage_server_connections_open", RP_M_GAUGE, NULL,
	"TCP connections open"
};
static const struct rp_mfam m_refused = {
	"rpage_server_connections_refused", RP_M_COUNTER, NULL,
	"Connections refused, or closed for what they sent, by reason"
};
static const struct rp_mfam m_sessions = {
	"rpage_server_sessions_active", RP_M_GAUGE, NULL,
	"Client sessions with their control connection open"
};
static const struct rp_mfam m_parked = {
	"rpage_server_sessions_parked", RP_M_GAUGE, NULL,
	"Sessions whose control connection broke, resumable for the grace period"
};
static const struct rp_mfam m_rdma = {
	"rpage_server_rdma_connections_open", RP_M_GAUGE, NULL,
	"RDMA connections open (their reads take no server CPU and are not counted below)"
};
static const struct rp_mfam m_completions = {
	"rpage_server_completions", RP_M_COUNTER, NULL,
	"Clients that reported every page of a region arrived"
};
static const struct rp_mfam m_requests = {
	"rpage_server_page_requests", RP_M_COUNTER, NULL,
	"Page requests served over TCP, by region"
};
static const struct rp_mfam m_bytes = {
	"rpage_server_sent_bytes", RP_M_COUNTER, "bytes",
	"Page bytes sent over TCP, by region"
};
static const struct rp_mfam m_size = {
	"rpage_server_region_size_bytes", RP_M_GAUGE, "bytes",
	"Size of each region served"
};

static int render_metrics(struct rp_mout *o, void *arg)
{
	struct rpage_server *srv = arg;
	struct srv_metrics m;
	int ret = srv_get_metrics(srv, &m);

	if (ret)
		return ret;
	rp_m_family(o, &m_accepted);
	rp_m_u64(o, NULL, 0, m.st.connections);
	rp_m_family(o, &m_open);
	rp_m_u64(o, NULL, 0, m.st.active);
	rp_m_family(o, &m_refused);
	for (unsigned i = 0; i < SRV_REFUSE_N; i++) {
		struct rp_label l = { "reason", srv_refusal_name(i) };

		rp_m_u64(o, &l, 1, m.refused[i]);
	}
	rp_m_family(o, &m_sessions);
	rp_m_u64(o, NULL, 0, m.sessions_active);
	rp_m_family(o, &m_parked);
	rp_m_u64(o, NULL, 0, m.sessions_parked);
	rp_m_family(o, &m_rdma);
	rp_m_u64(o, NULL, 0, m.rdma_conns);
	rp_m_family(o, &m_completions);
	rp_m_u64(o, NULL, 0, m.st.completions);
	/* one family at a time: each walks the regions */
	for (int f = 0; f < 3; f++) {
		rp_m_family(o, f == 0 ? &m_requests : f == 1 ? &m_bytes : &m_size);
		for (unsigned i = 0; i < m.nregions; i++) {
			uint64_t len, rq, by;
			const char *name;
			struct rp_label l;

			if (srv_region_metrics(srv, i, &name, &len, &rq, &by))
				continue;
			l = (struct rp_label){ "region", name };
			rp_m_u64(o, &l, 1, f == 0 ? rq : f == 1 ? by : len);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_RDMA_PORT = 256, O_NO_RDMA, O_ALLOW, O_GEN, O_IDENT,
	       O_MAXC, O_MAXP, O_HS, O_IDLE, O_MAXR, O_MAXRS, O_GRACE,
	       O_METRICS };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "region", required_argument, NULL, 'r' },
		{ "rdma-port", required_argument, NULL, O_RDMA_PORT },
		{ "no-rdma", no_argument, NULL, O_NO_RDMA },
		RP_TLS_LONGOPTS,
		{ "allow", required_argument, NULL, O_ALLOW },
		{ "gen-psk", required_argument, NULL, O_GEN },
		{ "identity", required_argument, NULL, O_IDENT },
		{ "max-conns", required_argument, NULL, O_MAXC },
		{ "max-conns-per-peer", required_argument, NULL, O_MAXP },
		{ "handshake-timeout", required_argument, NULL, O_HS },
		{ "idle-timeout", required_argument, NULL, O_IDLE },
		{ "resume-grace", required_argument, NULL, O_GRACE },
		{ "max-rdma", required_argument, NULL, O_MAXR },
		{ "max-rdma-per-session", required_argument, NULL, O_MAXRS },
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char host[256] = "", port[32] = "";
	struct rpage_server *srv;
	struct rpage_server_stats st;
	struct signalfd_siginfo si;
	const char *listen = NULL, *rdma_port = NULL, *gen = NULL;
	const char *ident = NULL, *metrics = NULL;
	struct rp_metrics_srv *msrv = NULL;
	struct rpage_tls_opts to = { 0 };
	struct rpage_server_limits lim = { 0 };
	int c, ret, sfd, nreg = 0, no_rdma = 0, insecure = 0;
	char sec[400];
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
		case O_RDMA_PORT:
			rdma_port = optarg;
			break;
		case O_NO_RDMA:
			no_rdma = 1;
			break;
		case O_ALLOW: {
			char **na = realloc(g_allow, (g_nallow + 1) * sizeof(*na));

			if (!na)
				return finish(srv, 1);
			g_allow = na;
			g_allow[g_nallow++] = optarg;
			break;
		}
		case O_GEN:
			gen = optarg;
			break;
		case O_IDENT:
			ident = optarg;
			break;
		case O_METRICS:
			metrics = optarg;
			if (rp_metrics_addr_check(metrics))
				return finish(srv, 2);
			break;
		case O_MAXC:
		case O_MAXP:
		case O_HS:
		case O_IDLE:
		case O_MAXR:
		case O_GRACE:
		case O_MAXRS: {
			unsigned *f = c == O_MAXC ? &lim.max_conns
				    : c == O_MAXP ? &lim.max_conns_per_peer
				    : c == O_HS	  ? &lim.handshake_ms
				    : c == O_IDLE ? &lim.idle_ms
				    : c == O_MAXR ? &lim.max_rdma
				    : c == O_GRACE ? &lim.resume_grace_ms
						  : &lim.max_rdma_per_session;

			const char *name = "?";

			for (const struct option *o = opts; o->name; o++)
				if (o->val == c)
					name = o->name;
			if (num_opt(name, optarg, f))
				return finish(srv, 2);
			break;
		}
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
			if (rp_tls_getopt(c, optarg, &to, &insecure) &&
			    c != RP_OPT_NAME)
				break;
			usage(stderr);
			return finish(srv, 2);
		}
	}
	if (gen) {
		if (optind != argc || listen || nreg) {
			fprintf(stderr, "rpage-server: --gen-psk takes only --identity\n");
			return finish(srv, 2);
		}
		ret = rpage_tls_gen_psk(gen, ident);
		if (ret) {
			fprintf(stderr, "rpage-server: cannot write a key to %s: %s\n",
				gen, strerror(-ret));
			return finish(srv, 1);
		}
		printf("rpage-server: wrote a new 256-bit key for identity '%s' to %s (mode 0600); give the same file to both ends with --psk-file\n",
		       ident ? ident : "rpage", gen);
		return finish(srv, 0);
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
	/* credentials: every problem is fatal here, at start */
	if (rp_tls_load("rpage-server", &to, &g_tls))
		return finish(srv, 1);
	for (unsigned i = 0; i < g_nallow; i++)
		if (apply_allow(srv, g_allow[i]))
			return finish(srv, 2);
	rpage_server_set_tls(srv, g_tls, insecure);
	if (rpage_server_set_limits(srv, &lim))
		return finish(srv, 2);
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
	if (metrics) {
		struct rp_metrics_opts mo = {
			.prefix = "rpage_server",
			.addr = metrics, .tls = g_tls,
			.render = render_metrics, .arg = srv,
		};

		ret = rp_metrics_start(&mo, &msrv);
		if (ret) {
			fprintf(stderr, "rpage-server: cannot serve metrics on %s: %s\n",
				metrics, strerror(-ret));
			return finish(srv, 1);
		}
		printf("rpage-server: metrics at %s\n", rp_metrics_url(msrv));
	}
	ret = rpage_server_start(srv);
	if (ret) {
		fprintf(stderr, "rpage-server: cannot start: %s\n", strerror(-ret));
		rp_metrics_stop(msrv);
		return finish(srv, 1);
	}
	if (g_tls)
		snprintf(sec, sizeof(sec), "TLS 1.3, %s '%s'%s",
			 to.psk_file ? "PSK identity" : "X.509 certificate",
			 rpage_tls_identity(g_tls),
			 g_nallow ? ", --allow rules" : "");
	else
		snprintf(sec, sizeof(sec), "plain TCP, no authentication%s",
			 insecure ? " (--insecure)" : " (loopback)");
	printf("rpage-server: ready on %s:%d with %d region%s (%s)\n", host,
	       rpage_server_port(srv), nreg, nreg == 1 ? "" : "s", sec);
	fflush(stdout);
	while (read(sfd, &si, sizeof(si)) < 0 && errno == EINTR)
		;
	rp_metrics_stop(msrv);
	rpage_server_get_stats(srv, &st);
	rpage_server_free(srv);
	rpage_tls_free(g_tls);
	free(g_allow);
	printf("rpage-server: stopped: %llu connections (%llu closed for bad input), %llu page requests, %.1f MB sent\n",
	       (unsigned long long)st.connections,
	       (unsigned long long)st.rejected,
	       (unsigned long long)st.page_requests, (double)st.bytes_sent / 1e6);
	return 0;
}
