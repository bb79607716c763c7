/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for test builds only (see inject.h; the Makefile
 * compiles this file into $(B)/tests/lib/librpage.a, never into the
 * shipped library).
 *
 * Threads: any thread may check a point. The table of armed points is
 * written once from RPAGE_INJECT (under pthread_once, before any check
 * returns) or by rp_inject_set() from a unit test; every field is read
 * and written with atomics, so a check never takes a lock.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "inject.h"
#include "rp.h"

enum kind { FAILURE, SETTING };

static const struct {
	const char *name;
	enum kind kind;
} points[RP_INJECT_NPOINTS] = {
	[RP_INJECT_RDMA_READ_ERROR] = { "rdma-read-error", FAILURE },
	[RP_INJECT_LIVE_SWITCHOVER_ERROR] = { "live-switchover-error", FAILURE },
	[RP_INJECT_UFFD_WP_OLD_KERNEL] = { "uffd-wp-old-kernel", SETTING },
	[RP_INJECT_RDMA_MAX_MR] = { "rdma-max-mr", SETTING },
	[RP_INJECT_FILL_GIVE_UP] = { "fill-give-up", FAILURE },
};

static struct {
	bool armed;
	uint64_t value; /* N of NAME=N */
	int64_t left;   /* failures: checks to pass before the one that fails */
} state[RP_INJECT_NPOINTS];

static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void disarm_all(void)
{
	for (unsigned i = 0; i < RP_INJECT_NPOINTS; i++)
		__atomic_store_n(&state[i].armed, false, __ATOMIC_RELEASE);
}

static int arm(const char *tok, size_t len)
{
	const char *eq = memchr(tok, '=', len);
	size_t nlen = eq ? (size_t)(eq - tok) : len;
	uint64_t v = eq ? 0 : 1;

	if (eq) {
		char num[32], *end;

		if (len - nlen - 1 == 0 || len - nlen - 1 >= sizeof(num)) {
			rp_err("RPAGE_INJECT: '%.*s' needs a number after '='",
			       (int)len, tok);
			return -EINVAL;
		}
		memcpy(num, eq + 1, len - nlen - 1);
		num[len - nlen - 1] = 0;
		errno = 0;
		v = strtoull(num, &end, 0);
		if (errno || *end || num[0] == '-') {
			rp_err("RPAGE_INJECT: '%s' is not a number", num);
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < RP_INJECT_NPOINTS; i++) {
		if (strlen(points[i].name) != nlen ||
		    strncmp(points[i].name, tok, nlen))
			continue;
		__atomic_store_n(&state[i].value, v, __ATOMIC_RELAXED);
		__atomic_store_n(&state[i].left,
				 points[i].kind == FAILURE ? (int64_t)(eq ? v : 0) : 0,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&state[i].armed, true, __ATOMIC_RELEASE);
		rp_warn("fault injection armed: %.*s", (int)len, tok);
		return 0;
	}
	rp_err("RPAGE_INJECT: no injection point '%.*s'", (int)nlen, tok);
	return -EINVAL;
}

static int parse(const char *spec)
{
	const char *p = spec;

	disarm_all();
	while (*p) {
		size_t n = 0;
		int ret;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		while (p[n] && p[n] != ',' && !isspace((unsigned char)p[n]))
			n++;
		if (!n)
			break;
		ret = arm(p, n);
		if (ret) {
			disarm_all();
			return ret;
		}
		p += n;
	}
	return 0;
}

static void from_env(void)
{
	const char *e = getenv("RPAGE_INJECT");

	if (e && parse(e)) {
		fprintf(stderr, "rpage: RPAGE_INJECT=\"%s\" names an unknown point or a bad number; known points:", e);
		for (unsigned i = 0; i < RP_INJECT_NPOINTS; i++)
			fprintf(stderr, " %s", points[i].name);
		fprintf(stderr, "\n");
		abort();
	}
}

int rp_inject_set(const char *spec)
{
	pthread_once(&env_once, from_env);
	return parse(spec);
}

bool rp_inject_fail(enum rp_inject_point p)
{
	pthread_once(&env_once, from_env);
	if ((unsigned)p >= RP_INJECT_NPOINTS ||
	    !__atomic_load_n(&state[p].armed, __ATOMIC_ACQUIRE))
		return false;
	if (__atomic_fetch_sub(&state[p].left, 1, __ATOMIC_RELAXED) != 0)
		return false;
	rp_warn("injected failure: %s", points[p].name);
	return true;
}

uint64_t rp_inject_value(enum rp_inject_point p)
{
	pthread_once(&env_once, from_env);
	if ((unsigned)p >= RP_INJECT_NPOINTS ||
	    !__atomic_load_n(&state[p].armed, __ATOMIC_ACQUIRE))
		return 0;
	return __atomic_load_n(&state[p].value, __ATOMIC_RELAXED);
}
