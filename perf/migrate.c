/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench migrate`: live migration of a running, deterministic
 * workload between two processes (on loopback, or in two network
 * namespaces joined by a veth pair, optionally shaped by netem), verified
 * against a reference computed without migration. The workload's writers
 * keep their step counters in the migrating memory, so the destination
 * resumes each where the source paused it (migrate.h).
 *
 * This file: the options and the run (fork the destination, then the
 * source; the test cuts; wait; report); migrate.h names the others.
 * Threads: the main thread of each of the three processes.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/rp.h"
#include "bench.h"
#include "migrate.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-bench migrate [options]\n"
		"  --size BYTES          region size (default 64M)\n"
		"  --workload seq|rand|hot  page choice of the writers (default rand)\n"
		"  --write-rate MB/s     over all writer threads; 0 idle; 'max' unthrottled (default 20)\n"
		"  --duration S          seconds of work at that rate (default 4)\n"
		"  --threads N           writer threads (default 1)\n"
		"  --mode hybrid|precopy|postcopy  (default hybrid)\n"
		"  --transport T         post-copy over auto (default), tcp or rdma; pre-copy\n"
		"                        always streams over TCP\n"
		"  --host ADDR           address of both ends without --netns (default\n"
		"                        127.0.0.1; RDMA needs the address of an RDMA netdev)\n"
		"  --streams N           pre-copy TCP streams (default 4)\n"
		"  --max-downtime MS     downtime target (default 300)\n"
		"  --max-rounds N        (default 30)\n"
		"  --netns               source and destination in two network namespaces (veth)\n"
		"  --link-rate R --link-delay D   netem shaping of the veth (e.g. 40mbit, 5ms)\n"
		"  --switch-after MS     explicit switchover after MS ms of pre-copy\n"
		"  --sync-wp             synchronous uffd-wp tracking (the fallback)\n"
		"  --kill-dest-after MS  test: kill the destination during pre-copy\n"
		"  --cut-postcopy-after MS  test: kill the TCP connections during post-copy\n"
		"  --cut-precopy-after MS   test: kill them MS ms into pre-copy\n"
		"  --memfd               source memory is a shared memfd mapping (default anonymous)\n"
		"  --fill-chunk B --fill-depth N  destination background fill (default 1M x 4)\n"
		"  --psk-file FILE       both ends authenticate with this key (keys.psk format):\n"
		"                        every connection is TLS 1.3; needed beyond loopback\n"
		"                        (--netns) unless --insecure\n"
		"  --insecure            plain TCP beyond loopback\n"
		"  --json                one JSON object\n");
}

static int parse(int argc, char **argv, struct mopt *o)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, 's' },
		{ "workload", required_argument, NULL, 'w' },
		{ "write-rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'D' },
		{ "threads", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "transport", required_argument, NULL, 'T' },
		{ "host", required_argument, NULL, 'H' },
		{ "streams", required_argument, NULL, 'n' },
		{ "max-downtime", required_argument, NULL, 'd' },
		{ "max-rounds", required_argument, NULL, 'R' },
		{ "netns", no_argument, NULL, 'N' },
		{ "link-rate", required_argument, NULL, 'L' },
		{ "link-delay", required_argument, NULL, 'Y' },
		{ "switch-after", required_argument, NULL, 'S' },
		{ "sync-wp", no_argument, NULL, 'W' },
		{ "kill-dest-after", required_argument, NULL, 'K' },
		{ "cut-postcopy-after", required_argument, NULL, 'C' },
		{ "cut-precopy-after", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "memfd", no_argument, NULL, 'M' },
		{ "fill-chunk", required_argument, NULL, 'F' },
		{ "fill-depth", required_argument, NULL, 'P' },
		{ "psk-file", required_argument, NULL, 'k' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c, v;
	int64_t sz;

	*o = (struct mopt){ .size = 64ull << 20, .kind = WL_RAND, .host = "127.0.0.1",
			    .rate = 20e6, .duration = 4, .threads = 1,
			    .streams = 4, .max_downtime = 300,
			    .max_rounds = 30, .mode = RPAGE_LIVE_HYBRID,
			    .warmup_ms = 300 };
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			sz = bench_parse_size(optarg);
			if (sz < 2 * (int64_t)PSIZE || sz % PSIZE)
				goto bad;
			o->size = (uint64_t)sz;
			break;
		case 'w':
			if (!strcmp(optarg, "seq"))
				o->kind = WL_SEQ;
			else if (!strcmp(optarg, "rand"))
				o->kind = WL_RAND;
			else if (!strcmp(optarg, "hot"))
				o->kind = WL_HOT;
			else
				goto bad;
			break;
		case 'r':
			o->rate = !strcmp(optarg, "max") ? -1 : atof(optarg) * 1e6;
			break;
		case 'D':
			o->duration = atof(optarg);
			break;
		case 't':
			o->threads = (unsigned)atoi(optarg);
			if (!o->threads || o->threads > MAX_THREADS)
				goto bad;
			break;
		case 'm':
			v = rpage_live_mode_parse(optarg);
			if (v < 0)
				goto bad;
			o->mode = (enum rpage_live_mode)v;
			break;
		case 'T':
			v = rpage_transport_parse(optarg);
			if (v < 0 || v == RPAGE_TRANSPORT_LOCAL) {
				fprintf(stderr, "rpage-bench migrate: --transport is auto, tcp or rdma (post-copy; pre-copy always streams over TCP), not '%s'\n",
					optarg);
				return 2;
			}
			o->transport = (enum rpage_transport)v;
			break;
		case 'H':
			o->host = optarg;
			break;
		case 'n':
			o->streams = (unsigned)atoi(optarg);
			if (!o->streams || o->streams > 16)
				goto bad;
			break;
		case 'd':
			o->max_downtime = (uint32_t)atoi(optarg);
			break;
		case 'R':
			o->max_rounds = (uint32_t)atoi(optarg);
			break;
		case 'N':
			o->netns = true;
			break;
		case 'L':
			o->link_rate = optarg;
			break;
		case 'Y':
			o->link_delay = optarg;
			break;
		case 'S':
			o->switch_after_ms = atoi(optarg);
			break;
		case 'W':
			o->sync_wp = true;
			break;
		case 'K':
			o->kill_dest_ms = atoi(optarg);
			break;
		case 'C':
			o->cut_postcopy_ms = atoi(optarg);
			break;
		case 'c':
			o->cut_precopy_ms = atoi(optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'M':
			o->memfd = true;
			break;
		case 'F':
			sz = bench_parse_size(optarg);
			if (sz <= 0 || sz > (4 << 20))
				goto bad;
			o->fill.fill_chunk = (uint32_t)sz;
			break;
		case 'P':
			o->fill.fill_depth = (uint32_t)atoi(optarg);
			break;
		case 'k':
			o->psk_file = optarg;
			break;
		case 'I':
			o->insecure = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			goto bad;
		}
	}
	if ((o->link_rate || o->link_delay) && !o->netns) {
		fprintf(stderr, "rpage-bench migrate: --link-rate/--link-delay need --netns\n");
		return 2;
	}
	return 0;
bad:
	usage(stderr);
	return 2;
}

static int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int cmd_migrate(int argc, char **argv)
{
	struct mopt o;
	struct mres *r;
	pid_t sp, dp;
	int port = -1, port_pipe[2], ret;

	ret = parse(argc, argv, &o);
	if (ret)
		return ret == 1 ? 0 : ret;
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return 1;
	memset(r, 0, sizeof(*r));
	r->verified = -1;
	r->src_verified = -1;
	if (o.netns && (ret = migrate_netns_up(&o, r))) {
		if (ret == -1)
			fprintf(stderr, "rpage-bench migrate: cannot set up the network namespaces (root and iproute2 needed)\n");
		return 77;
	}
	if (pipe(port_pipe))
		return 1;
	fflush(NULL);
	dp = fork();
	if (dp == 0)
		_exit(migrate_run_dest(&o, r, port_pipe[1]));
	if (read(port_pipe[0], &port, sizeof(port)) != sizeof(port) || port < 0) {
		fprintf(stderr, "rpage-bench migrate: the destination did not start\n");
		kill(dp, SIGKILL);
		wait_child(dp);
		migrate_netns_down();
		return 1;
	}
	sp = fork();
	if (sp == 0)
		_exit(migrate_run_source(&o, r, port));
	if (o.kill_dest_ms > 0) {
		sleep_ns((uint64_t)(o.kill_dest_ms + o.warmup_ms) * 1000000ull);
		fprintf(stderr, "rpage-bench migrate: killing the destination (test)\n");
		kill(dp, SIGKILL);
	}
	if (o.cut_precopy_ms > 0) {
		/* pre-copy: the source reconnects and sends the round again */
		sleep_ns((uint64_t)(o.cut_precopy_ms + o.warmup_ms) * 1000000ull);
		fprintf(stderr, "rpage-bench migrate: cutting the migration's TCP connections during pre-copy (test)\n");
		if (o.netns)
			migrate_netns_cut();
		else
			migrate_sh("ss -K -t '( sport = :%d or dport = :%d )' >/dev/null",
				   port, port);
	}
	if (o.cut_postcopy_ms > 0) {
		/* wait for the switchover, then cut every TCP connection of
		 * the migration (ss -K: the kernel resets the sockets) */
		while (!__atomic_load_n(&r->switched, __ATOMIC_ACQUIRE) &&
		       waitpid(sp, NULL, WNOHANG) == 0)
			sleep_ns(2000000);
		sleep_ns((uint64_t)o.cut_postcopy_ms * 1000000ull);
		fprintf(stderr, "rpage-bench migrate: cutting the migration's TCP connections (test)\n");
		if (o.netns)
			migrate_netns_cut();
		else
			migrate_sh("ss -K -t '( sport = :%d or dport = :%d or sport = :%u or dport = :%u )' >/dev/null",
			   port, port, r->srv_port, r->srv_port);
	}
	r->src_exit = wait_child(sp);
	if (r->src_exit && r->dst.downtime_ns == 0) {
		/* the destination may wait for a source that is gone */
		usleep(200000);
		kill(dp, SIGTERM);
	}
	r->dst_exit = wait_child(dp);
	migrate_netns_down();
	if (o.json)
		migrate_print_json(&o, r);
	else
		migrate_print_human(&o, r);
	if (r->verified == 1)
		return 0;
	if (r->src_ret == -ETIMEDOUT)
		return 3; /* pre-copy refused to finish, as asked */
	return 1;
}
