/* SPDX-License-Identifier: MIT */
/*
 * The raw RDMA READ baselines of `rpage-bench fault` and `fill`: plain
 * verbs with nothing of rpage in the way, on the same device and in the
 * same run as the rdma transport's figures.
 *
 * Both ends live in the benchmark process, like the in-process page
 * server: a passive rdma_cm id listens on the --host address (the RoCE
 * interface's), the peer side of the one connection registers the image
 * (the bench's memfd) REMOTE_READ, and its {addr, rkey} are handed to the
 * client side in-process. The client side posts RDMA READs into a
 * registered buffer and busy-polls its CQ, as perftest's ib_read_lat and
 * ib_read_bw do. Connection set-up runs in the calling thread: rdma_cm is
 * asynchronous, so the CONNECT of one side and the accept of the other
 * need no second thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rp.h"
#include "bench.h"

#ifdef RPAGE_HAVE_RDMA
#include <netdb.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/rdma.h"

#define CM_TIMEOUT_MS 10000
/* a reliable connection always completes a READ; this bounds a hang */
#define POLL_TIMEOUT_NS (30ull * 1000000000ull)
#define WC_BATCH 16

struct bench_rawrdma {
	struct rdma_event_channel *lch, *cch; /* listener side, client side */
	struct rdma_cm_id *lid, *sid, *cid;   /* listener, peer conn, client */
	struct ibv_pd *spd, *cpd;
	struct ibv_cq *scq, *ccq;
	struct ibv_mr *smr, *cmr;
	void *img, *buf;
	uint64_t img_len, raddr;
	uint32_t rkey, buf_len, max_msg;
	unsigned sq_depth;
	bool broken;
	char dev[64];
};

/* Acknowledges whatever rdma_cm events are queued on @ch. */
static void drain_events(struct rdma_event_channel *ch)
{
	struct rdma_cm_event *ev;

	while (ch && rdma_get_cm_event(ch, &ev) == 0)
		rdma_ack_cm_event(ev);
}

/* Waits for the CONNECT_REQUEST on the listener; *@ev is left unacked. */
static int wait_request(struct bench_rawrdma *r, struct rdma_cm_event **ev)
{
	uint64_t deadline = rp_now_ns() + CM_TIMEOUT_MS * 1000000ull;

	for (;;) {
		struct pollfd pf = { r->lch->fd, POLLIN, 0 };

		if (rdma_get_cm_event(r->lch, ev) == 0) {
			if ((*ev)->event == RDMA_CM_EVENT_CONNECT_REQUEST)
				return 0;
			rdma_ack_cm_event(*ev);
			return -EPROTO;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (rp_now_ns() >= deadline)
			return -ETIMEDOUT;
		if (poll(&pf, 1, 100) < 0 && errno != EINTR)
			return -errno;
	}
}

void bench_rawrdma_close(struct bench_rawrdma *r)
{
	if (!r)
		return;
	if (r->cid && r->cid->qp)
		rdma_disconnect(r->cid);
	if (r->sid && r->sid->qp)
		rdma_disconnect(r->sid);
	drain_events(r->cch);
	drain_events(r->lch);
	if (r->cid && r->cid->qp)
		rdma_destroy_qp(r->cid);
	if (r->sid && r->sid->qp)
		rdma_destroy_qp(r->sid);
	if (r->cmr)
		rp_ibv_dereg_mr(r->cmr);
	if (r->smr)
		rp_ibv_dereg_mr(r->smr);
	if (r->ccq)
		ibv_destroy_cq(r->ccq);
	if (r->scq)
		ibv_destroy_cq(r->scq);
	if (r->cpd)
		ibv_dealloc_pd(r->cpd);
	if (r->spd)
		ibv_dealloc_pd(r->spd);
	if (r->cid)
		rdma_destroy_id(r->cid);
	if (r->sid)
		rdma_destroy_id(r->sid);
	if (r->lid)
		rdma_destroy_id(r->lid);
	if (r->cch)
		rdma_destroy_event_channel(r->cch);
	if (r->lch)
		rdma_destroy_event_channel(r->lch);
	if (r->buf)
		munmap(r->buf, r->buf_len);
	if (r->img)
		munmap(r->img, r->img_len);
	free(r);
}

/* An event channel whose fd does not block (rp_rdma_wait_event polls). */
static struct rdma_event_channel *event_channel(void)
{
	struct rdma_event_channel *ch = rdma_create_event_channel();

	if (ch && rp_set_nonblock(ch->fd, true)) {
		rdma_destroy_event_channel(ch);
		return NULL;
	}
	return ch;
}

int bench_rawrdma_open(struct bench_rawrdma **out, const char *host,
		       int memfd, uint64_t img_len, uint32_t buf_len,
		       unsigned depth, char *why, size_t wl)
{
	struct addrinfo hints = { .ai_family = AF_INET,
				  .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct bench_rawrdma *r = calloc(1, sizeof(*r));
	struct rdma_conn_param cp = { 0 }, sp = { 0 };
	struct ibv_qp_init_attr qa = { 0 };
	struct rdma_cm_event *ev = NULL;
	struct ibv_device_attr da;
	struct ibv_port_attr pa;
	struct sockaddr_in dst;
	const char *what = "setting up";
	int ret;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->img_len = img_len;
	r->buf_len = buf_len;
	snprintf(r->dev, sizeof(r->dev), "?");

	/* the peer: a listener on @host, any port */
	what = "resolving --host";
	if (getaddrinfo(host, "0", &hints, &ai) || !ai) {
		ret = -ENOENT;
		goto fail;
	}
	memcpy(&dst, ai->ai_addr, sizeof(dst));
	freeaddrinfo(ai);
	what = "creating rdma_cm ids";
	r->lch = event_channel();
	r->cch = event_channel();
	ret = r->lch && r->cch ? 0 : (errno ? -errno : -ENOMEM);
	if (!ret)
		ret = rp_rdma_err(rdma_create_id(r->lch, &r->lid, r, RDMA_PS_TCP));
	if (!ret)
		ret = rp_rdma_err(rdma_create_id(r->cch, &r->cid, r, RDMA_PS_TCP));
	if (ret)
		goto fail;
	what = "binding the listener";
	ret = rp_rdma_err(rdma_bind_addr(r->lid, (struct sockaddr *)&dst));
	if (!ret) {
		what = "listening";
		ret = rp_rdma_err(rdma_listen(r->lid, 1));
	}
	if (ret)
		goto fail;
	dst.sin_port = rdma_get_src_port(r->lid);

	/* the client: resolve, then its PD, CQ, QP and buffer */
	what = "resolving the address";
	ret = rp_rdma_err(rdma_resolve_addr(r->cid, NULL,
					    (struct sockaddr *)&dst, 2000));
	if (!ret)
		ret = rp_rdma_wait_event(r->cch, r->cid,
					 RDMA_CM_EVENT_ADDR_RESOLVED,
					 CM_TIMEOUT_MS, "raw-rdma");
	if (ret)
		goto fail;
	what = "resolving the route";
	ret = rp_rdma_err(rdma_resolve_route(r->cid, 2000));
	if (!ret)
		ret = rp_rdma_wait_event(r->cch, r->cid,
					 RDMA_CM_EVENT_ROUTE_RESOLVED,
					 CM_TIMEOUT_MS, "raw-rdma");
	if (ret)
		goto fail;
	snprintf(r->dev, sizeof(r->dev), "%s",
		 ibv_get_device_name(r->cid->verbs->device));
	what = "querying the device";
	if (ibv_query_device(r->cid->verbs, &da) ||
	    ibv_query_port(r->cid->verbs, r->cid->port_num, &pa)) {
		ret = errno ? -errno : -EIO;
		goto fail;
	}
	r->max_msg = pa.max_msg_sz ? (uint32_t)RP_MIN(pa.max_msg_sz, 1u << 30)
				   : 1u << 30;
	r->sq_depth = (unsigned)RP_MAX(1, RP_MIN((int)depth, da.max_qp_wr));
	what = "allocating the client's verbs resources";
	r->cpd = ibv_alloc_pd(r->cid->verbs);
	r->ccq = r->cpd ? ibv_create_cq(r->cid->verbs, (int)r->sq_depth + 4,
					NULL, NULL, 0)
			: NULL;
	if (!r->ccq) {
		ret = errno ? -errno : -ENOMEM;
		goto fail;
	}
	qa.send_cq = qa.recv_cq = r->ccq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = r->sq_depth;
	qa.cap.max_recv_wr = 1;
	qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
	ret = rp_rdma_err(rdma_create_qp(r->cid, r->cpd, &qa));
	if (ret)
		goto fail;
	what = "registering the client's buffer";
	r->buf = mmap(NULL, buf_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (r->buf == MAP_FAILED) {
		r->buf = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	ret = rp_ibv_reg_mr(r->cpd, r->buf, buf_len, IBV_ACCESS_LOCAL_WRITE,
			    &r->cmr);
	if (ret)
		goto fail;
	what = "connecting";
	cp.initiator_depth = (uint8_t)RP_MIN(da.max_qp_init_rd_atom, 16);
	cp.retry_count = 7;
	cp.rnr_retry_count = 7;
	ret = rp_rdma_err(rdma_connect(r->cid, &cp));
	if (ret)
		goto fail;

	/* the peer: accept, with the image registered REMOTE_READ */
	what = "waiting for the connect request";
	ret = wait_request(r, &ev);
	if (ret)
		goto fail;
	r->sid = ev->id;
	what = "allocating the peer's verbs resources";
	r->spd = ibv_alloc_pd(r->sid->verbs);
	r->scq = r->spd ? ibv_create_cq(r->sid->verbs, 4, NULL, NULL, 0) : NULL;
	if (!r->scq) {
		ret = errno ? -errno : -ENOMEM;
		goto fail;
	}
	qa.send_cq = qa.recv_cq = r->scq;
	qa.cap.max_send_wr = 1;
	ret = rp_rdma_err(rdma_create_qp(r->sid, r->spd, &qa));
	if (ret)
		goto fail;
	what = "registering the image REMOTE_READ";
	r->img = mmap(NULL, img_len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (r->img == MAP_FAILED) {
		r->img = NULL;
		ret = -errno;
		goto fail;
	}
	ret = rp_ibv_reg_mr(r->spd, r->img, img_len, IBV_ACCESS_REMOTE_READ,
			    &r->smr);
	if (ret)
		goto fail;
	/* what RDMA_KEYS carries for the transport, handed over in-process */
	r->raddr = (uint64_t)(uintptr_t)r->img;
	r->rkey = r->smr->rkey;
	what = "accepting";
	if (ibv_query_device(r->sid->verbs, &da))
		memset(&da, 0, sizeof(da));
	sp.responder_resources = (uint8_t)RP_MAX(1, RP_MIN(
		(int)ev->param.conn.responder_resources, da.max_qp_rd_atom));
	sp.rnr_retry_count = 7;
	ret = rp_rdma_err(rdma_accept(r->sid, &sp));
	rdma_ack_cm_event(ev);
	ev = NULL;
	if (ret)
		goto fail;
	what = "establishing the connection";
	ret = rp_rdma_wait_event(r->cch, r->cid, RDMA_CM_EVENT_ESTABLISHED,
				 CM_TIMEOUT_MS, "raw-rdma client");
	if (!ret)
		ret = rp_rdma_wait_event(r->lch, r->sid,
					 RDMA_CM_EVENT_ESTABLISHED,
					 CM_TIMEOUT_MS, "raw-rdma peer");
	if (ret)
		goto fail;
	*out = r;
	return 0;
fail:
	if (ev)
		rdma_ack_cm_event(ev);
	snprintf(why, wl, "raw RDMA READ on %s via %s: %s failed: %s%s", host,
		 r->dev, what, strerror(-ret),
		 ret == -ENOMEM || ret == -EPERM
			 ? " (raise the locked-memory limit: ulimit -l)"
		 : ret == -ENODEV || ret == -EADDRNOTAVAIL
			 ? " (no RDMA device there: --host ADDR of the RoCE interface)"
			 : "");
	bench_rawrdma_close(r);
	return ret;
}

/* Busy-polls the client's CQ for up to @max completions (at least one);
 * returns their number or -errno (a failed READ, or none in time). */
static int poll_cq(struct bench_rawrdma *r, unsigned max)
{
	struct ibv_wc wc[WC_BATCH];
	uint64_t t0 = 0;
	int n;

	for (unsigned spins = 0;; spins++) {
		n = rp_ibv_poll_cq(r->ccq, (int)RP_MIN(max, WC_BATCH), wc);
		if (n)
			break;
		if ((spins & 1023) == 0) {
			uint64_t now = rp_now_ns();

			if (!t0)
				t0 = now;
			else if (now - t0 > POLL_TIMEOUT_NS)
				return -ETIMEDOUT;
		}
	}
	for (int i = 0; n > 0 && i < n; i++)
		if (wc[i].status != IBV_WC_SUCCESS) {
			fprintf(stderr, "rpage-bench: raw RDMA READ on %s failed: %s\n",
				r->dev, ibv_wc_status_str(wc[i].status));
			return rp_wc_errno(wc[i].status);
		}
	return n;
}

static int post_read(struct bench_rawrdma *r, uint64_t off, void *dst,
		     uint32_t len)
{
	struct ibv_sge sge = { .addr = (uint64_t)(uintptr_t)dst,
			       .length = len,
			       .lkey = r->cmr->lkey };
	struct ibv_send_wr wr = {
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_RDMA_READ,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = r->raddr + off, .rkey = r->rkey },
	}, *bad = NULL;

	return rp_ibv_post_send(r->cid->qp, &wr, &bad);
}

int bench_rawrdma_read(struct bench_rawrdma *r, uint64_t off, uint32_t len)
{
	int ret;

	if (r->broken)
		return -ENOTCONN;
	if (len > r->buf_len || len > r->max_msg || off > r->img_len ||
	    len > r->img_len - off)
		return -EINVAL;
	ret = post_read(r, off, r->buf, len);
	if (!ret)
		ret = poll_cq(r, 1);
	if (ret < 0) {
		r->broken = true; /* the QP is in the error state, or stuck */
		return ret;
	}
	return 0;
}

int bench_rawrdma_stream(struct bench_rawrdma *r, uint64_t total,
			 uint32_t chunk, unsigned depth)
{
	uint64_t posted = 0;
	unsigned inflight = 0, slot = 0;
	int ret;

	if (r->broken)
		return -ENOTCONN;
	depth = RP_MIN(depth, r->sq_depth);
	if (!chunk || !depth || chunk > r->max_msg ||
	    (uint64_t)chunk * depth > r->buf_len || total > r->img_len)
		return -EINVAL;
	while (posted < total || inflight) {
		while (posted < total && inflight < depth) {
			uint32_t n = (uint32_t)RP_MIN((uint64_t)chunk, total - posted);

			ret = post_read(r, posted, (char *)r->buf +
							   (uint64_t)slot * chunk, n);
			if (ret)
				goto broken;
			slot = (slot + 1) % depth;
			posted += n;
			inflight++;
		}
		ret = poll_cq(r, inflight);
		if (ret < 0)
			goto broken;
		inflight -= (unsigned)ret;
	}
	return 0;
broken:
	r->broken = true;
	return ret;
}

#else /* !RPAGE_HAVE_RDMA */

struct bench_rawrdma {
	int unused;
};

int bench_rawrdma_open(struct bench_rawrdma **out, const char *host,
		       int memfd, uint64_t img_len, uint32_t buf_len,
		       unsigned depth, char *why, size_t wl)
{
	(void)host, (void)memfd, (void)img_len, (void)buf_len, (void)depth;
	*out = NULL;
	snprintf(why, wl, "this build has no RDMA (rdma-core headers were missing)");
	return -EPROTONOSUPPORT;
}

void bench_rawrdma_close(struct bench_rawrdma *r)
{
	(void)r;
}

int bench_rawrdma_read(struct bench_rawrdma *r, uint64_t off, uint32_t len)
{
	(void)r, (void)off, (void)len;
	return -EPROTONOSUPPORT;
}

int bench_rawrdma_stream(struct bench_rawrdma *r, uint64_t total,
			 uint32_t chunk, unsigned depth)
{
	(void)r, (void)total, (void)chunk, (void)depth;
	return -EPROTONOSUPPORT;
}
#endif
