/* SPDX-License-Identifier: MIT */
/*
 * Fault injection: named points where a test build of librpage fails, or
 * behaves as on another machine, on purpose, so that tests reach error
 * paths on real kernels and real verbs instead of mocks.
 *
 * Only test builds have it. The Makefile compiles the library and the
 * programs a second time with -DRPAGE_INJECT ($(B)/tests/lib/librpage.a,
 * $(B)/tests/bin/); in the shipped library and programs every check below
 * is a constant (false, 0): no code, no environment read, no string
 * (tests/e2e/no-test-hooks.sh proves it).
 *
 * Arming points: the environment variable RPAGE_INJECT of a test-build
 * program, read once at the first check of any point, holds a list of
 * NAME or NAME=N, separated by commas or spaces:
 *
 *     RPAGE_INJECT=rdma-read-error=40 build/tests/bin/rpage-client ...
 *
 * An unknown name or a bad number stops the program (a mistyped point
 * must not let a test pass without its failure). Unit tests call
 * rp_inject_set() instead. The points are listed, with what each does, in
 * the table of common/inject.c and in tests/README.md.
 *
 * Two kinds of point:
 *  - a failure: rp_inject_fail() is true for exactly one check, the
 *    (N+1)th after arming with NAME=N (NAME alone: the first);
 *  - a setting: rp_inject_value() is N (NAME alone: 1) for as long as it
 *    is armed, 0 otherwise.
 *
 * Adding a point: an enumerator below, a line in the table of
 * common/inject.c (name, kind, what it does), the check where the code
 * fails, and a line in tests/README.md. Checks are cheap (pthread_once
 * and one atomic load when nothing is armed) and may be made from any
 * thread.
 */
#ifndef RP_INJECT_H
#define RP_INJECT_H

#include <stdbool.h>
#include <stdint.h>

enum rp_inject_point {
	/* failure: an RDMA READ completion that succeeded is reported as a
	 * remote access error (client/transport_rdma.c) */
	RP_INJECT_RDMA_READ_ERROR,
	/* failure: the live destination fails the switchover and answers
	 * SWITCHOVER_ACK with EIO (client/live_dest.c) */
	RP_INJECT_LIVE_SWITCHOVER_ERROR,
	/* setting: dirty tracking behaves as on a kernel before 6.4: no
	 * async write-protect, no WP_UNPOPULATED (common/dirty.c) */
	RP_INJECT_UFFD_WP_OLD_KERNEL,
	/* setting: the RDMA server registers each region as memory regions
	 * of at most N bytes (server/server_rdma.c) */
	RP_INJECT_RDMA_MAX_MR,
	/* failure: the background fill fails for good, with no reconnect,
	 * right after it queued a batch for placement (client/attach.c) */
	RP_INJECT_FILL_GIVE_UP,
	RP_INJECT_NPOINTS
};

#ifdef RPAGE_INJECT
bool rp_inject_fail(enum rp_inject_point p);
uint64_t rp_inject_value(enum rp_inject_point p);
/* Disarms every point, then arms those of @spec (RPAGE_INJECT's syntax;
 * "" arms none). 0, or -EINVAL (named in the log) leaving all disarmed. */
int rp_inject_set(const char *spec);
#else
/* shipped builds: constants; the point is not even compiled, so that not
 * even the library's debug information names it */
#define rp_inject_fail(p) false
#define rp_inject_value(p) ((uint64_t)0)
#endif

#endif
