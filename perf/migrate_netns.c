/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench migrate --netns`: the source and the destination in two
 * network namespaces joined by a veth pair, optionally shaped with netem
 * (or tbf where the kernel has no netem), through ip(8) and tc(8).
 * Threads: the bench's main thread sets up and tears down; each child
 * enters its namespace once, before any socket is opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "migrate.h"
static char ns_src[32], ns_dst[32];
static bool ns_made;

int migrate_sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r) {
		fprintf(stderr, "rpage-bench migrate: '%s' failed\n", cmd);
		return -1;
	}
	return 0;
}

void migrate_netns_down(void)
{
	if (!ns_made)
		return;
	migrate_sh("ip netns del %s 2>/dev/null", ns_src);
	migrate_sh("ip netns del %s 2>/dev/null", ns_dst);
	ns_made = false;
}

int migrate_netns_up(const struct mopt *o, struct mres *r)
{
	unsigned id = (unsigned)getpid() % 200 + 20;
	char netem[160] = "";

	snprintf(ns_src, sizeof(ns_src), "rplive-s-%d", (int)getpid());
	snprintf(ns_dst, sizeof(ns_dst), "rplive-d-%d", (int)getpid());
	if (migrate_sh("ip netns add %s", ns_src) || migrate_sh("ip netns add %s", ns_dst))
		goto fail;
	ns_made = true;
	snprintf(r->src_host, sizeof(r->src_host), "10.211.%u.1", id);
	snprintf(r->dst_host, sizeof(r->dst_host), "10.211.%u.2", id);
	if (migrate_sh("ip link add rplv%us netns %s type veth peer name rplv%ud netns %s",
	       id, ns_src, id, ns_dst) ||
	    migrate_sh("ip -n %s addr add %s/24 dev rplv%us", ns_src, r->src_host, id) ||
	    migrate_sh("ip -n %s addr add %s/24 dev rplv%ud", ns_dst, r->dst_host, id) ||
	    migrate_sh("ip -n %s link set rplv%us up", ns_src, id) ||
	    migrate_sh("ip -n %s link set rplv%ud up", ns_dst, id) ||
	    migrate_sh("ip -n %s link set lo up", ns_src) ||
	    migrate_sh("ip -n %s link set lo up", ns_dst))
		goto fail;
	if (o->link_rate || o->link_delay) {
		snprintf(netem, sizeof(netem), "netem%s%s%s%s limit 100000",
			 o->link_delay ? " delay " : "",
			 o->link_delay ? o->link_delay : "",
			 o->link_rate ? " rate " : "",
			 o->link_rate ? o->link_rate : "");
		char probe[320];

		/* netem where the kernel has it (quietly probed) */
		snprintf(probe, sizeof(probe),
			 "tc -n %s qdisc add dev rplv%us root %s 2>/dev/null",
			 ns_src, id, netem);
		if (system(probe) == 0) {
			if (migrate_sh("tc -n %s qdisc add dev rplv%ud root %s", ns_dst, id, netem))
				goto fail;
		} else if (o->link_delay) {
			fprintf(stderr, "rpage-bench migrate: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): --link-delay cannot be emulated\n");
			migrate_netns_down();
			return -2;
		} else {
			/* no netem: shape the rate with a token bucket */
			snprintf(netem, sizeof(netem), "tbf rate %s burst 64kb latency 500ms",
				 o->link_rate);
			fprintf(stderr, "rpage-bench migrate: no netem qdisc in this kernel: shaping with tbf (%s)\n",
				netem);
			if (migrate_sh("tc -n %s qdisc add dev rplv%us root %s", ns_src, id, netem) ||
			    migrate_sh("tc -n %s qdisc add dev rplv%ud root %s", ns_dst, id, netem))
				goto fail;
		}
	}
	return 0;
fail:
	migrate_netns_down();
	return -1;
}

int migrate_netns_enter(bool dest)
{
	char path[96];
	int fd, r;

	snprintf(path, sizeof(path), "/run/netns/%s", dest ? ns_dst : ns_src);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = setns(fd, CLONE_NEWNET);
	close(fd);
	return r ? -errno : 0;
}

void migrate_netns_cut(void)
{
	migrate_sh("ip netns exec %s ss -K -t state established >/dev/null",
		   ns_dst);
}
