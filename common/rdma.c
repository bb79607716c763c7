/* SPDX-License-Identifier: MIT */
/* The verbs / rdma_cm wrapper (see rdma.h). */
#include "rdma.h"

#ifdef RPAGE_HAVE_RDMA
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef RPAGE_HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#endif

#include "rp.h"

int rp_ibv_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
		     struct ibv_send_wr **bad)
{
	int ret = ibv_post_send(qp, wr, bad);

	return ret > 0 ? -ret : ret < 0 ? -EIO : 0;
}

int rp_ibv_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	int ret = ibv_poll_cq(cq, n, wc);

	return ret < 0 ? -EIO : ret;
}

int rp_ibv_req_notify_cq(struct ibv_cq *cq)
{
	int ret = ibv_req_notify_cq(cq, 0);

	return ret > 0 ? -ret : ret < 0 ? -EIO : 0;
}

int rp_ibv_get_cq_event(struct ibv_comp_channel *cc)
{
	struct ibv_cq *cq;
	void *ctx;

	if (ibv_get_cq_event(cc, &cq, &ctx))
		return errno ? -errno : -EIO;
	ibv_ack_cq_events(cq, 1);
	return 0;
}

int rp_ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access,
		  struct ibv_mr **out)
{
	struct ibv_mr *mr;

	errno = 0;
	mr = ibv_reg_mr(pd, addr, len, access);
	if (!mr)
		return errno ? -errno : -EIO;
	*out = mr;
	return 0;
}

int rp_ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t len,
		       uint64_t iova, int access, struct ibv_mr **out)
{
	struct ibv_mr *mr;

	errno = 0;
	mr = ibv_reg_mr_iova(pd, addr, len, iova, access);
	if (!mr)
		return errno ? -errno : -EIO;
	*out = mr;
	return 0;
}

int rp_ibv_dereg_mr(struct ibv_mr *mr)
{
	int ret = ibv_dereg_mr(mr);

	return ret > 0 ? -ret : ret < 0 ? -EIO : 0;
}

int rp_ibv_qp_to_error(struct ibv_qp *qp)
{
	struct ibv_qp_attr attr = { .qp_state = IBV_QPS_ERR };
	int ret = ibv_modify_qp(qp, &attr, IBV_QP_STATE);

	return ret > 0 ? -ret : ret < 0 ? -EIO : 0;
}

int rp_wc_errno(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_SUCCESS:
		return 0;
	case IBV_WC_REM_ACCESS_ERR:
	case IBV_WC_LOC_PROT_ERR:
	case IBV_WC_LOC_ACCESS_ERR:
		return -EACCES;
	case IBV_WC_RETRY_EXC_ERR:
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return -ETIMEDOUT;
	case IBV_WC_WR_FLUSH_ERR:
		return -ECONNRESET;
	case IBV_WC_REM_INV_REQ_ERR:
	case IBV_WC_REM_OP_ERR:
		return -EREMOTEIO;
	default:
		return -EIO;
	}
}

int rp_rdma_wait_event(struct rdma_event_channel *ch, struct rdma_cm_id *id,
		       enum rdma_cm_event_type want, int timeout_ms,
		       const char *what)
{
	uint64_t deadline = rp_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type got;
	int ret, status;

	for (;;) {
		struct pollfd pf = { ch->fd, POLLIN, 0 };
		uint64_t now = rp_now_ns();

		if (rdma_get_cm_event(ch, &ev) == 0)
			break;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (now >= deadline) {
			rp_err("%s: no rdma_cm event after %d ms", what,
			       timeout_ms);
			return -ETIMEDOUT;
		}
		ret = poll(&pf, 1, (int)((deadline - now) / 1000000ull) + 1);
		if (ret < 0 && errno != EINTR)
			return -errno;
	}
	got = ev->event;
	status = ev->status;
	ret = 0;
	if (ev->id != id || got != want) {
		switch (got) {
		case RDMA_CM_EVENT_REJECTED:
			ret = -ECONNREFUSED;
			break;
		case RDMA_CM_EVENT_ADDR_ERROR:
		case RDMA_CM_EVENT_ROUTE_ERROR:
		case RDMA_CM_EVENT_UNREACHABLE:
			ret = -EHOSTUNREACH;
			break;
		default:
			ret = -EPROTO;
			break;
		}
		rp_err("%s: got rdma_cm event %s (status %d) instead of %s",
		       what, rdma_event_str(got), status, rdma_event_str(want));
	}
	rdma_ack_cm_event(ev);
	return ret;
}

static bool dev_has_active_port(struct ibv_context *ctx)
{
	struct ibv_device_attr da;

	if (ibv_query_device(ctx, &da))
		return false;
	for (uint8_t p = 1; p <= da.phys_port_cnt; p++) {
		struct ibv_port_attr pa;

		if (!ibv_query_port(ctx, p, &pa) && pa.state == IBV_PORT_ACTIVE)
			return true;
	}
	return false;
}

int rp_rdma_find_device(const char *want, char *name, size_t len,
			const char **why)
{
	struct ibv_device **list;
	int n = 0, ret = -ENODEV;

	*why = "no RDMA device on this host";
	list = ibv_get_device_list(&n);
	if (!list) {
		*why = "no RDMA device on this host (no rdma-core provider or no /sys/class/infiniband)";
		return -ENODEV;
	}
	for (int i = 0; i < n && ret; i++) {
		const char *dn = ibv_get_device_name(list[i]);
		struct ibv_context *ctx;

		if (want && *want && strcmp(dn, want))
			continue;
		ctx = ibv_open_device(list[i]);
		if (!ctx) {
			*why = "the RDMA device cannot be opened";
			continue;
		}
		if (dev_has_active_port(ctx)) {
			snprintf(name, len, "%s", dn);
			ret = 0;
		} else {
			*why = "no RDMA device has an ACTIVE port";
		}
		ibv_close_device(ctx);
	}
	if (ret && want && *want && n > 0 &&
	    strcmp(*why, "no RDMA device has an ACTIVE port"))
		*why = "no RDMA device of that name";
	ibv_free_device_list(list);
	return ret;
}

int rp_rdma_dev_ipv4(const char *dev, struct sockaddr_in *out)
{
	static const uint8_t v4pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					   0xff, 0xff };
	struct ibv_device **list;
	int n = 0, ret = -ENOENT;

	list = ibv_get_device_list(&n);
	if (!list)
		return -ENODEV;
	for (int i = 0; i < n && ret; i++) {
		struct ibv_context *ctx;
		struct ibv_device_attr da;

		if (strcmp(ibv_get_device_name(list[i]), dev))
			continue;
		ctx = ibv_open_device(list[i]);
		if (!ctx)
			break;
		if (ibv_query_device(ctx, &da)) {
			ibv_close_device(ctx);
			break;
		}
		for (uint8_t p = 1; p <= da.phys_port_cnt && ret; p++) {
			struct ibv_port_attr pa;

			if (ibv_query_port(ctx, p, &pa))
				continue;
			for (int g = 0; g < pa.gid_tbl_len && ret; g++) {
				struct ibv_gid_entry e;

				if (ibv_query_gid_ex(ctx, p, (uint32_t)g, &e, 0))
					continue;
				if (e.gid_type != IBV_GID_TYPE_ROCE_V2 ||
				    memcmp(e.gid.raw, v4pfx, sizeof(v4pfx)))
					continue;
				memset(out, 0, sizeof(*out));
				out->sin_family = AF_INET;
				memcpy(&out->sin_addr, e.gid.raw + 12, 4);
				ret = 0;
			}
		}
		ibv_close_device(ctx);
	}
	ibv_free_device_list(list);
	return ret;
}

int rp_rdma_dev_numa_node(const char *dev)
{
	char path[256];
	FILE *f;
	int node = -1;

	snprintf(path, sizeof(path), "/sys/class/infiniband/%s/device/numa_node",
		 dev);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &node) != 1)
		node = -1;
	fclose(f);
	return node;
}

#ifdef RPAGE_HAVE_NUMA
static bool numa_multi(int node)
{
	return node >= 0 && numa_available() >= 0 && numa_max_node() > 0 &&
	       node <= numa_max_node();
}

void rp_numa_move(void *p, size_t len, int node)
{
	unsigned long mask[16] = { 0 };

	if (!numa_multi(node) || (unsigned)node >= 16 * 8 * sizeof(long))
		return;
	mask[(unsigned)node / (8 * sizeof(long))] |=
		1ul << ((unsigned)node % (8 * sizeof(long)));
	if (mbind(p, len, MPOL_PREFERRED, mask, 16 * 8 * sizeof(long),
		  MPOL_MF_MOVE))
		rp_dbg("mbind to node %d: %s", node, strerror(errno));
}

void rp_numa_run_on(int node)
{
	if (numa_multi(node) && numa_run_on_node(node))
		rp_dbg("numa_run_on_node(%d): %s", node, strerror(errno));
}
#else
void rp_numa_move(void *p, size_t len, int node)
{
	(void)p;
	(void)len;
	(void)node;
}

void rp_numa_run_on(int node)
{
	(void)node;
}
#endif

#endif /* RPAGE_HAVE_RDMA */
