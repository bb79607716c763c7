/* SPDX-License-Identifier: MIT */
/*
 * The verbs / rdma_cm wrapper: the one place that normalises the verbs
 * API's error conventions (ibv_post_send returns a positive errno,
 * ibv_poll_cq a negative value, rdma_* -1 with errno, ibv_reg_mr NULL with
 * errno) to 0-or-count / -errno, plus device, GID and NUMA helpers shared
 * by the server and client halves of the RDMA transport.
 *
 * Only built with RPAGE_HAVE_RDMA.
 */
#ifndef RP_RDMA_H
#define RP_RDMA_H

#ifdef RPAGE_HAVE_RDMA
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

/* rdma_cm ACK timeout exponent (4.096 us * 2^N): 14 is about 67 ms, which
 * keeps RC retransmission after a lost packet fast. RPAGE_RDMA_ACK_TIMEOUT
 * overrides it (0 keeps the rdma_cm default). */
#define RP_RDMA_ACK_TIMEOUT_DEFAULT 14

/* ---- -errno wrappers ---- */
int rp_ibv_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
		     struct ibv_send_wr **bad);
/* Returns the number of completions (>= 0) or -EIO. */
int rp_ibv_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc);
int rp_ibv_req_notify_cq(struct ibv_cq *cq);
/* Waits for (and acknowledges) one event on @cc; it must be readable. */
int rp_ibv_get_cq_event(struct ibv_comp_channel *cc);
int rp_ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access,
		  struct ibv_mr **out);
/* Registers with the given I/O virtual address: the remote end sees
 * @iova, never @addr (zero-based registration). */
int rp_ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t len,
		       uint64_t iova, int access, struct ibv_mr **out);
int rp_ibv_dereg_mr(struct ibv_mr *mr);
/* Moves @qp to the error state: outstanding work requests are flushed. */
int rp_ibv_qp_to_error(struct ibv_qp *qp);
/* For rdma_* calls that return -1 and set errno. */
static inline int rp_rdma_err(int ret)
{
	return ret < 0 ? (errno ? -errno : -EIO) : ret;
}

/* The -errno a failed work completion means. */
int rp_wc_errno(enum ibv_wc_status st);

/*
 * Waits up to @timeout_ms for the next event on @ch (non-blocking fd) and
 * checks that it is @want on @id. The event is acknowledged; for
 * CONNECT_RESPONSE-less flows that is all the caller needs. Returns 0,
 * -ETIMEDOUT, -ECONNREFUSED (REJECTED), -EHOSTUNREACH (ADDR/ROUTE errors,
 * UNREACHABLE) or -EPROTO (anything else, named in the log).
 */
int rp_rdma_wait_event(struct rdma_event_channel *ch, struct rdma_cm_id *id,
		       enum rdma_cm_event_type want, int timeout_ms,
		       const char *what);

/* ---- devices ---- */
/*
 * Finds a device with an ACTIVE port: the one named @want, or else the
 * first one. Copies its name into @name. Returns 0, or -ENODEV with the
 * reason in *why (a static string).
 */
int rp_rdma_find_device(const char *want, char *name, size_t len,
			const char **why);
/* The IPv4 address of @dev's first RoCE v2 GID (::ffff:a.b.c.d) on any
 * port, for binding rdma_cm to that device. -ENOENT when it has none. */
int rp_rdma_dev_ipv4(const char *dev, struct sockaddr_in *out);
/* NUMA node of the device (from sysfs), or -1 when unknown. */
int rp_rdma_dev_numa_node(const char *dev);

/* ---- NUMA (no-ops on single-node hosts or without libnuma) ---- */
/* Moves the pages of [p, p+len) to @node. */
void rp_numa_move(void *p, size_t len, int node);
/* Runs the calling thread on @node's CPUs. */
void rp_numa_run_on(int node);

#endif /* RPAGE_HAVE_RDMA */
#endif
