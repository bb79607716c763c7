/* SPDX-License-Identifier: MIT */
/*
 * The RDMA transport: one-sided RDMA READs straight out of the source's
 * registered memory, so the source CPU does no work per fault.
 *
 * Set-up (rp_rdma_source_setup, after the TCP control session's HELLO and
 * region table): pick a device with an ACTIVE port, ask the server for its
 * rdma_cm port (RDMA_INFO), then open a first connection. Every
 * connection takes three steps (chan_connect): a one-time ticket from the
 * control connection (RDMA_TICKET), the CONNECT naming the session and
 * the ticket in its private data, and then that connection's own key
 * table from the control connection (RDMA_KEYS: {addr, rkey, length} per
 * chunk of every region, addresses zero-based; the keys may be memory
 * windows that work on this connection's QP only). Keys and tickets only
 * ever travel on the control connection, which is TLS when the source
 * has credentials. That first connection is kept for the first urgent
 * channel.
 *
 * Channels: each role (urgent faults, bulk fill) has its own rdma_cm
 * connection, PD, CQ and completion channel, so a fault never waits
 * behind bulk reads anywhere on this host. fetch() posts the READs
 * (pipelined up to the send queue depth), busy-polls the CQ for a bounded
 * time (RPAGE_RDMA_SPIN_US, default 50 us) and then sleeps on the
 * completion channel, so an idle client burns no CPU. Destinations must
 * be buffers registered with reg_buf (attach.c registers its fault buffer
 * and its fill slots); they are moved to the device's NUMA node, and the
 * thread that first fetches is run on that node.
 *
 * Errors: a completion with an error status names the region offset and
 * the device, moves the QP to the error state and drains every
 * outstanding READ (flush completions) before fetch returns, so nothing
 * lands in a buffer after the caller has been told it failed; the channel
 * is then dead. abort() from another thread does the same.
 */
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/inject.h"
#include "../common/proto_rdma.h"
#include "client_int.h"

#ifdef RPAGE_HAVE_RDMA
#include "../common/rdma.h"

#define SQ_DEPTH 256u
#define WC_BATCH 32
#define DRAIN_MS 5000
#define CM_TIMEOUT_MS 10000
/* A reliable connection always completes a READ (with data, or with an
 * error after its retries); this only bounds the wait if it did not. */
#define WAIT_MS 60000

struct rp_rdma_source {
	char dev[64];          /* named by the user ("" : rdma_cm routes) */
	bool bind_src;
	struct sockaddr_in src;
	struct sockaddr_storage dst;
	uint16_t port;
	uint8_t ack_timeout;
	uint64_t spin_ns;
	struct rp_chan *spare; /* the set-up connection, for the first user */
};

struct rbuf {
	char *p;
	size_t len;
	struct ibv_mr *mr;
};

/* A request of submit: its tag and how many of its READs are pending. */
struct rreq {
	uint64_t tag;
	unsigned left;
	bool used;
};
#define REQ_BIT (1ull << 63)

struct rdma_chan {
	struct rp_chan ch;
	struct rpage_source *src;
	struct rp_rdma_source *rs;
	struct rdma_event_channel *cmch;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	bool connected;
	bool broken;          /* an error ended this channel */
	uint8_t ticket[RP_RDMA_TICKET_LEN];
	struct rp_rdma_region_keys *keys; /* this connection's keys */
	unsigned nkeys;
	uint32_t keys_flags;
	int aborted;          /* atomic */
	int abort_efd;
	unsigned outstanding; /* READs posted, not completed */
	unsigned sq_depth;
	uint32_t max_msg;
	int node;
	bool node_bound;
	struct rbuf *bufs;
	unsigned nbufs;
	char dev[64];
	char peer[300];
	/* work requests of the fetch (or submit) in progress */
	struct ibv_send_wr *wr;
	struct ibv_sge *sge;
	uint64_t *wr_off;
	unsigned *wr_piece; /* which piece each READ belongs to */
	unsigned wrcap;
	/* submit/wait_one: requests in flight, by slot (wr_id = REQ_BIT |
	 * slot), and the tags of those complete, to hand out in order */
	pthread_mutex_t rlock;
	pthread_cond_t rcond;
	struct rreq *reqs;
	unsigned nreqs;
	uint64_t *ready;
	unsigned rhead, rcount, rcap;
	unsigned pending;    /* requests submitted, not yet complete */
	int rerr;            /* the channel broke (-errno), 0 */
};

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *e = getenv(name);
	char *end;
	unsigned long long v;

	if (!e || !*e)
		return def;
	v = strtoull(e, &end, 0);
	return *end ? def : v;
}

static struct ibv_mr *find_buf(struct rdma_chan *rc, const void *p,
			       size_t len)
{
	const char *c = p;

	for (unsigned i = 0; i < rc->nbufs; i++)
		if (c >= rc->bufs[i].p && len <= rc->bufs[i].len &&
		    (size_t)(c - rc->bufs[i].p) <= rc->bufs[i].len - len)
			return rc->bufs[i].mr;
	return NULL;
}

/* Reads the connection's rdma_cm events: true when the peer is gone. */
static bool peer_gone(struct rdma_chan *rc)
{
	struct rdma_cm_event *ev;
	bool gone = false;

	while (rdma_get_cm_event(rc->cmch, &ev) == 0) {
		switch (ev->event) {
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
		case RDMA_CM_EVENT_TIMEWAIT_EXIT:
		case RDMA_CM_EVENT_CONNECT_ERROR:
		case RDMA_CM_EVENT_UNREACHABLE:
			gone = true;
			break;
		default:
			break;
		}
		rp_dbg("RDMA on %s: rdma_cm event %s", rc->dev,
		       rdma_event_str(ev->event));
		rdma_ack_cm_event(ev);
	}
	if (gone)
		rc->connected = false;
	return gone;
}

/*
 * Waits for completions: returns their number, -ECANCELED on abort and
 * -ECONNRESET when the server disconnected (not while draining), or
 * -ETIMEDOUT when no completion came in time.
 */
static int wait_cq(struct rdma_chan *rc, struct ibv_wc *wc, bool drain)
{
	uint64_t t0 = rp_now_ns();
	bool armed = false;

	for (;;) {
		struct pollfd pf[3] = { { rc->cc->fd, POLLIN, 0 },
					{ rc->abort_efd, POLLIN, 0 },
					{ rc->cmch->fd, POLLIN, 0 } };
		int n = rp_ibv_poll_cq(rc->cq, WC_BATCH, wc), ret;
		uint64_t now;

		if (n)
			return n;
		if (!drain && __atomic_load_n(&rc->aborted, __ATOMIC_ACQUIRE))
			return -ECANCELED;
		now = rp_now_ns();
		if (!armed && now - t0 < rc->rs->spin_ns)
			continue; /* busy-poll for a bounded time */
		/* then sleep on the completion channel */
		ret = rp_ibv_req_notify_cq(rc->cq);
		if (ret)
			return ret;
		armed = true;
		n = rp_ibv_poll_cq(rc->cq, WC_BATCH, wc);
		if (n)
			return n;
		ret = poll(pf, drain ? 1 : 3,
			   (int)RP_MAX(0, (drain ? DRAIN_MS : WAIT_MS) -
						  (int64_t)(now - t0) / 1000000));
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ret == 0 && rp_now_ns() - t0 >=
				       (uint64_t)(drain ? DRAIN_MS : WAIT_MS) * 1000000)
			return -ETIMEDOUT;
		if (!drain && pf[2].revents && peer_gone(rc))
			return -ECONNRESET;
		if (pf[0].revents) {
			ret = rp_ibv_get_cq_event(rc->cc);
			if (ret && ret != -EAGAIN)
				return ret;
		}
	}
}

/* Moves the QP to the error state and waits for every outstanding READ to
 * complete (flushed). */
static void drain(struct rdma_chan *rc)
{
	struct ibv_wc wc[WC_BATCH];

	rc->broken = true;
	if (!rc->id || !rc->id->qp)
		return;
	rp_ibv_qp_to_error(rc->id->qp);
	while (rc->outstanding) {
		int n = wait_cq(rc, wc, true);

		if (n < 0) {
			rp_err("RDMA on %s: %u READs did not complete after the QP went to the error state (%s)",
			       rc->dev, rc->outstanding, strerror(-n));
			return;
		}
		rc->outstanding -= RP_MIN((unsigned)n, rc->outstanding);
	}
}

static int grow_wrs(struct rdma_chan *rc, unsigned need)
{
	if (need <= rc->wrcap)
		return 0;
	free(rc->wr);
	free(rc->sge);
	free(rc->wr_off);
	free(rc->wr_piece);
	rc->wr = calloc(need, sizeof(*rc->wr));
	rc->sge = calloc(need, sizeof(*rc->sge));
	rc->wr_off = calloc(need, sizeof(*rc->wr_off));
	rc->wr_piece = calloc(need, sizeof(*rc->wr_piece));
	rc->wrcap = rc->wr && rc->sge && rc->wr_off && rc->wr_piece ? need : 0;
	return rc->wrcap ? 0 : -ENOMEM;
}

/* Builds the READs for @n pieces; returns their number or -errno. */
static int build_wrs(struct rdma_chan *rc, uint32_t region,
		     const struct rp_fetch *f, unsigned n)
{
	const struct rp_rdma_region_keys *k = &rc->keys[region];
	unsigned w = 0;
	size_t need = 0;
	int ret;

	for (unsigned i = 0; i < n; i++)
		need += k->nchunks + f[i].len / rc->max_msg + 1;
	ret = grow_wrs(rc, (unsigned)RP_MIN(need, (size_t)1 << 20));
	if (ret)
		return ret;
	for (unsigned i = 0; i < n; i++) {
		struct ibv_mr *mr = find_buf(rc, f[i].dst, f[i].len);
		uint64_t off = f[i].off, left = f[i].len, cstart = 0;
		char *dst = f[i].dst;
		uint32_t c = 0;

		if (!mr) {
			rp_err("RDMA: fetch destination %p (+%u) is not a registered staging buffer",
			       f[i].dst, f[i].len);
			return -EINVAL;
		}
		if (off > k->length || left > k->length - off) {
			rp_err("RDMA: fetch [0x%llx, +0x%x) beyond region %u",
			       (unsigned long long)off, f[i].len, region);
			return -ERANGE;
		}
		while (left) {
			uint64_t piece;

			while (off >= cstart + k->chunks[c].length)
				cstart += k->chunks[c++].length;
			piece = RP_MIN(left, cstart + k->chunks[c].length - off);
			piece = RP_MIN(piece, (uint64_t)rc->max_msg);
			if (w == rc->wrcap)
				return -E2BIG;
			rc->sge[w] = (struct ibv_sge){
				.addr = (uint64_t)(uintptr_t)dst,
				.length = (uint32_t)piece,
				.lkey = mr->lkey,
			};
			rc->wr[w] = (struct ibv_send_wr){
				.wr_id = w,
				.sg_list = &rc->sge[w],
				.num_sge = 1,
				.opcode = IBV_WR_RDMA_READ,
				.send_flags = IBV_SEND_SIGNALED,
				.wr.rdma = {
					.remote_addr = k->chunks[c].addr +
						       (off - cstart),
					.rkey = k->chunks[c].rkey,
				},
			};
			rc->wr_off[w] = off;
			rc->wr_piece[w] = i;
			w++;
			off += piece;
			dst += piece;
			left -= piece;
		}
	}
	return (int)w;
}

static void report_wc(struct rdma_chan *rc, uint32_t region, uint64_t off,
		      enum ibv_wc_status st)
{
	rp_err("RDMA READ of page at offset 0x%llx of region '%s' from %s on device %s failed: %s (status %d): ending this connection",
	       (unsigned long long)off, rc->src->regions[region].name, rc->peer,
	       rc->dev, ibv_wc_status_str(st), (int)st);
}

static int rdma_fetch(struct rp_chan *ch, uint32_t region, struct rp_fetch *f,
		      unsigned n)
{
	struct rdma_chan *rc = (struct rdma_chan *)ch;
	struct ibv_wc wc[WC_BATCH];
	unsigned total, posted = 0, done = 0;
	int err = 0, ret;

	if (rc->broken)
		return -ENOTCONN;
	if (__atomic_load_n(&rc->aborted, __ATOMIC_ACQUIRE))
		return -ECANCELED;
	if (region >= rc->nkeys)
		return -EINVAL;
	if (!rc->node_bound) {
		/* completion handling on the device's NUMA node */
		rp_numa_run_on(rc->node);
		rc->node_bound = true;
	}
	ret = build_wrs(rc, region, f, n);
	if (ret < 0)
		return ret;
	total = (unsigned)ret;
	while (done < posted || (!err && posted < total)) {
		if (!err && posted < total && rc->outstanding < rc->sq_depth) {
			unsigned k = RP_MIN(total - posted,
					    rc->sq_depth - rc->outstanding);
			struct ibv_send_wr *bad = NULL;

			for (unsigned i = 0; i < k; i++)
				rc->wr[posted + i].next =
					i + 1 < k ? &rc->wr[posted + i + 1] : NULL;
			ret = rp_ibv_post_send(rc->id->qp, &rc->wr[posted], &bad);
			if (ret) {
				/* the ones before @bad went out */
				k = bad ? (unsigned)(bad - &rc->wr[posted]) : 0;
				rp_err("RDMA: posting READs on %s failed: %s",
				       rc->dev, strerror(-ret));
				err = ret;
				rc->broken = true;
				rp_ibv_qp_to_error(rc->id->qp);
			}
			posted += k;
			rc->outstanding += k;
			continue;
		}
		ret = wait_cq(rc, wc, err != 0);
		if (ret == -ECANCELED) {
			err = ret;
			rc->broken = true;
			rp_ibv_qp_to_error(rc->id->qp);
			continue;
		}
		if (ret < 0 && !err) {
			/* no completion (or the server went away): end the
			 * connection and drain, so nothing lands in a
			 * buffer later */
			rp_err("RDMA READ of page at offset 0x%llx of region '%s' from %s on device %s failed: %s: ending this connection",
			       (unsigned long long)rc->wr_off[RP_MIN(done, total - 1)],
			       rc->src->regions[region].name, rc->peer, rc->dev,
			       ret == -ECONNRESET ? "the server disconnected"
			       : ret == -ETIMEDOUT ? "no completion in time"
						   : strerror(-ret));
			err = ret;
			rc->broken = true;
			rp_ibv_qp_to_error(rc->id->qp);
			continue;
		}
		if (ret < 0) {
			rp_err("RDMA on %s: %u READs did not complete after the QP went to the error state (%s)",
			       rc->dev, rc->outstanding, strerror(-ret));
			rc->broken = true;
			return err;
		}
		for (int i = 0; i < ret; i++) {
			enum ibv_wc_status st = wc[i].status;

			rc->outstanding--;
			done++;
			if (st == IBV_WC_SUCCESS && !err &&
			    rp_inject_fail(RP_INJECT_RDMA_READ_ERROR))
				st = IBV_WC_REM_ACCESS_ERR;
			if (st != IBV_WC_SUCCESS && !err) {
				err = rp_wc_errno(st);
				if (wc[i].wr_id < total)
					report_wc(rc, region,
						  rc->wr_off[wc[i].wr_id], st);
				rc->broken = true;
				rp_ibv_qp_to_error(rc->id->qp);
			}
		}
	}
	return err;
}

/* A free request slot (rlock held), or -ENOMEM. */
static int req_slot(struct rdma_chan *rc)
{
	struct rreq *nr;

	for (unsigned i = 0; i < rc->nreqs; i++)
		if (!rc->reqs[i].used)
			return (int)i;
	nr = realloc(rc->reqs, (rc->nreqs + 16) * sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	memset(nr + rc->nreqs, 0, 16 * sizeof(*nr));
	rc->reqs = nr;
	rc->nreqs += 16;
	return (int)rc->nreqs - 16;
}

/* The channel broke: remember why and let wait_one say it (rlock held). */
static void req_fail(struct rdma_chan *rc, int err)
{
	if (!rc->rerr)
		rc->rerr = err;
	rc->broken = true;
	if (rc->id && rc->id->qp)
		rp_ibv_qp_to_error(rc->id->qp);
	pthread_cond_broadcast(&rc->rcond);
}

static int rdma_submit(struct rp_chan *ch, uint32_t region,
		       const struct rp_fetch *f, unsigned n,
		       const uint64_t *tags)
{
	struct rdma_chan *rc = (struct rdma_chan *)ch;
	struct ibv_send_wr *bad = NULL;
	int slot[64], w, ret;

	if (n > RP_ARRAY_SIZE(slot) || region >= rc->nkeys)
		return -EINVAL;
	pthread_mutex_lock(&rc->rlock);
	if (rc->rerr || rc->broken ||
	    __atomic_load_n(&rc->aborted, __ATOMIC_ACQUIRE)) {
		ret = rc->rerr ? rc->rerr : -ENOTCONN;
		goto out;
	}
	if (rc->rcount + rc->pending + n > rc->rcap) {
		unsigned cap = RP_MAX(rc->rcap * 2, rc->rcount + rc->pending + n);
		uint64_t *nr = malloc(cap * sizeof(*nr));

		if (!nr) {
			ret = -ENOMEM;
			goto out;
		}
		for (unsigned i = 0; i < rc->rcount; i++)
			nr[i] = rc->ready[(rc->rhead + i) % rc->rcap];
		free(rc->ready);
		rc->ready = nr;
		rc->rcap = cap;
		rc->rhead = 0;
	}
	w = build_wrs(rc, region, f, n);
	if (w < 0) {
		ret = w;
		goto out;
	}
	if (rc->outstanding + (unsigned)w > rc->sq_depth) {
		ret = -EAGAIN; /* more in flight than the queue holds */
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		slot[i] = req_slot(rc);
		if (slot[i] < 0) {
			for (unsigned k = 0; k < i; k++)
				rc->reqs[slot[k]].used = false;
			ret = slot[i];
			goto out;
		}
		rc->reqs[slot[i]] = (struct rreq){ tags[i], 0, true };
	}
	for (int k = 0; k < w; k++) {
		unsigned p = rc->wr_piece[k];

		rc->wr[k].wr_id = REQ_BIT | (uint64_t)slot[p];
		rc->wr[k].next = k + 1 < w ? &rc->wr[k + 1] : NULL;
		rc->reqs[slot[p]].left++;
	}
	/* one doorbell for every READ of every request */
	ret = rp_ibv_post_send(rc->id->qp, &rc->wr[0], &bad);
	if (ret) {
		rp_err("RDMA: posting READs on %s failed: %s", rc->dev,
		       strerror(-ret));
		rc->outstanding += bad ? (unsigned)(bad - &rc->wr[0]) : 0;
		req_fail(rc, ret);
		goto out;
	}
	rc->outstanding += (unsigned)w;
	rc->pending += n;
	pthread_cond_signal(&rc->rcond);
out:
	pthread_mutex_unlock(&rc->rlock);
	return ret;
}

static int rdma_wait_one(struct rp_chan *ch, uint64_t *tag)
{
	struct rdma_chan *rc = (struct rdma_chan *)ch;
	struct ibv_wc wc[WC_BATCH];
	int n;

	pthread_mutex_lock(&rc->rlock);
	for (;;) {
		if (rc->rcount) {
			*tag = rc->ready[rc->rhead];
			rc->rhead = (rc->rhead + 1) % rc->rcap;
			rc->rcount--;
			pthread_mutex_unlock(&rc->rlock);
			return 0;
		}
		if (__atomic_load_n(&rc->aborted, __ATOMIC_ACQUIRE)) {
			req_fail(rc, -ECANCELED);
			break;
		}
		if (rc->rerr)
			break;
		if (!rc->pending) {
			/* nothing in flight: wait for submit (or abort) */
			pthread_cond_wait(&rc->rcond, &rc->rlock);
			continue;
		}
		pthread_mutex_unlock(&rc->rlock);
		n = wait_cq(rc, wc, false);
		pthread_mutex_lock(&rc->rlock);
		if (n < 0) {
			if (n != -ECANCELED)
				rp_err("RDMA on %s: waiting for READs failed: %s",
				       rc->dev, n == -ECONNRESET ? "the server disconnected"
					       : n == -ETIMEDOUT ? "no completion in time"
								 : strerror(-n));
			req_fail(rc, n);
			break;
		}
		for (int i = 0; i < n; i++) {
			enum ibv_wc_status st = wc[i].status;
			struct rreq *r;

			rc->outstanding--;
			if (!(wc[i].wr_id & REQ_BIT) ||
			    (wc[i].wr_id & ~REQ_BIT) >= rc->nreqs)
				continue;
			r = &rc->reqs[wc[i].wr_id & ~REQ_BIT];
			if (st == IBV_WC_SUCCESS &&
			    rp_inject_fail(RP_INJECT_RDMA_READ_ERROR))
				st = IBV_WC_REM_ACCESS_ERR;
			if (st != IBV_WC_SUCCESS && !rc->rerr) {
				rp_err("RDMA READ on %s from %s failed: %s (status %d): ending this connection",
				       rc->dev, rc->peer, ibv_wc_status_str(st),
				       (int)st);
				req_fail(rc, rp_wc_errno(st));
			}
			if (r->used && --r->left == 0) {
				r->used = false;
				rc->pending--;
				if (!rc->rerr)
					rc->ready[(rc->rhead + rc->rcount++) % rc->rcap] =
						r->tag;
			}
		}
	}
	n = rc->rerr;
	pthread_mutex_unlock(&rc->rlock);
	/* nothing may land in a buffer after the caller hears of the failure */
	if (rc->outstanding)
		drain(rc);
	return n;
}

static void rdma_abort(struct rp_chan *ch)
{
	struct rdma_chan *rc = (struct rdma_chan *)ch;
	__atomic_store_n(&rc->aborted, 1, __ATOMIC_RELEASE);
	rp_efd_signal(rc->abort_efd);
	pthread_mutex_lock(&rc->rlock);
	pthread_cond_broadcast(&rc->rcond);
	pthread_mutex_unlock(&rc->rlock);
}

static int rdma_reg_buf(struct rp_chan *ch, void *ptr, size_t len)
{
	struct rdma_chan *rc = (struct rdma_chan *)ch;
	struct rbuf *nb;
	struct ibv_mr *mr;
	int ret;

	nb = realloc(rc->bufs, (rc->nbufs + 1) * sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	rc->bufs = nb;
	rp_numa_move(ptr, len, rc->node);
	ret = rp_ibv_reg_mr(rc->pd, ptr, len, IBV_ACCESS_LOCAL_WRITE, &mr);
	if (ret) {
		char hint[512] = "";

		if (ret == -ENOMEM || ret == -EPERM)
			rp_memlock_hint(len, hint, sizeof(hint));
		rp_err("RDMA: registering a %zu-byte staging buffer on %s failed: %s%s%s",
		       len, rc->dev, strerror(-ret), *hint ? ": " : "", hint);
		return ret;
	}
	rc->bufs[rc->nbufs++] = (struct rbuf){ ptr, len, mr };
	return 0;
}

static void rdma_close(struct rp_chan *ch)
{
	struct rdma_chan *rc = (struct rdma_chan *)ch;

	if (!rc)
		return;
	if (rc->outstanding)
		drain(rc);
	if (rc->id && rc->connected)
		rdma_disconnect(rc->id);
	if (rc->id && rc->id->qp)
		rdma_destroy_qp(rc->id);
	for (unsigned i = 0; i < rc->nbufs; i++)
		rp_ibv_dereg_mr(rc->bufs[i].mr);
	free(rc->bufs);
	if (rc->cq)
		ibv_destroy_cq(rc->cq);
	if (rc->cc)
		ibv_destroy_comp_channel(rc->cc);
	if (rc->pd)
		ibv_dealloc_pd(rc->pd);
	if (rc->id)
		rdma_destroy_id(rc->id);
	if (rc->cmch)
		rdma_destroy_event_channel(rc->cmch);
	if (rc->abort_efd >= 0)
		close(rc->abort_efd);
	free(rc->wr);
	free(rc->sge);
	free(rc->wr_off);
	free(rc->wr_piece);
	free(rc->reqs);
	free(rc->ready);
	pthread_mutex_destroy(&rc->rlock);
	pthread_cond_destroy(&rc->rcond);
	rp_rdma_keys_free(rc->keys, rc->nkeys);
	memset(rc->ticket, 0, sizeof(rc->ticket));
	free(rc);
}

static const struct rp_chan_ops rdma_ops = {
	.fetch = rdma_fetch,
	.submit = rdma_submit,
	.wait_one = rdma_wait_one,
	.abort = rdma_abort,
	.close = rdma_close,
	.reg_buf = rdma_reg_buf,
};

int rp_rdma_ctl_call(struct rpage_source *s, uint16_t type, const void *req,
		     uint32_t req_len, uint16_t want, uint8_t *buf,
		     uint32_t cap, struct rp_hdr *h, const char *peer)
{
	const char *why = NULL;
	int ret;

	pthread_mutex_lock(&s->ctl_lock);
	ret = rp_conn_send_frame(&s->ctl, type, 3, req, req_len);
	if (!ret)
		ret = rp_conn_recv_frame(&s->ctl, h, buf, cap, &why);
	pthread_mutex_unlock(&s->ctl_lock);
	if (ret == -EPROTO) {
		rp_err("server %s: %s", peer, why ? why : "protocol error");
		return ret;
	}
	if (ret)
		return ret;
	if (h->type == RP_MSG_ERROR) {
		struct rp_error e;

		if (rp_error_decode(buf, h->len, &e, &why))
			return -EPROTO;
		rp_err("server %s refused %s: %s", peer,
		       rp_rdma_msg_name(type), e.msg);
		/* EBUSY: a limit; the control connection goes on */
		return e.code == EBUSY ? -EBUSY : -EPROTO;
	}
	if (h->type != want) {
		rp_err("server %s answered %s with something else", peer,
		       rp_rdma_msg_name(type));
		return -EPROTO;
	}
	return 0;
}

int rp_rdma_ticket(struct rpage_source *src, uint8_t *tk, const char *peer)
{
	uint8_t buf[64];
	struct rp_hdr h;
	int ret;

	ret = rp_rdma_ctl_call(src, RP_MSG_RDMA_TICKET_REQ, NULL, 0,
			       RP_MSG_RDMA_TICKET, buf, sizeof(buf), &h, peer);
	if (!ret && h.len != RP_RDMA_TICKET_LEN) {
		rp_err("server %s: RDMA_TICKET has the wrong length", peer);
		ret = -EPROTO;
	}
	if (!ret)
		memcpy(tk, buf, RP_RDMA_TICKET_LEN);
	memset(buf, 0, sizeof(buf));
	return ret;
}

int rp_rdma_keys(struct rpage_source *src, const uint8_t *tk,
		 struct rp_rdma_region_keys **keys, unsigned *nkeys,
		 uint32_t *flags, const char *peer)
{
	uint8_t *buf = malloc(RP_RDMA_KEYS_MAX);
	const char *why = NULL;
	struct rp_hdr h;
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = rp_rdma_ctl_call(src, RP_MSG_RDMA_KEYS_REQ, tk,
			       RP_RDMA_TICKET_LEN, RP_MSG_RDMA_KEYS, buf,
			       RP_RDMA_KEYS_MAX, &h, peer);
	if (!ret && rp_rdma_keys_decode(buf, h.len, src->regions,
					src->nregions, keys, nkeys, flags,
					&why)) {
		rp_err("server %s: %s", peer, why ? why : "bad RDMA_KEYS");
		ret = -EPROTO;
	}
	free(buf);
	return ret;
}

/*
 * The steps of opening a channel (chan_connect below), in order. Each
 * returns 0 or -errno and sets *what to what it was doing, for the one
 * message chan_connect prints on failure; rdma_close undoes any prefix
 * of them.
 */

/* The channel's state, its abort eventfd, its rdma_cm event channel and
 * id (with the ACK timeout that keeps retransmission fast). */
static int chan_create_id(struct rdma_chan *rc, struct rpage_source *src,
			  struct rp_rdma_source *rs, const char **what)
{
	int ret;

	rc->ch.ops = &rdma_ops;
	rc->src = src;
	rc->rs = rs;
	pthread_mutex_init(&rc->rlock, NULL);
	pthread_cond_init(&rc->rcond, NULL);
	rc->abort_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	snprintf(rc->peer, sizeof(rc->peer), "%s:%u", src->host, rs->port);
	snprintf(rc->dev, sizeof(rc->dev), "%s", rs->dev[0] ? rs->dev : "?");
	rc->cmch = rdma_create_event_channel();
	if (rc->abort_efd < 0 || !rc->cmch) {
		*what = "creating an event channel";
		return errno ? -errno : -ENOMEM;
	}
	*what = "creating an rdma_cm id";
	ret = rp_set_nonblock(rc->cmch->fd, true);
	if (!ret)
		ret = rp_rdma_err(rdma_create_id(rc->cmch, &rc->id, rc,
						 RDMA_PS_TCP));
	if (ret)
		return ret;
	if (rs->ack_timeout &&
	    rdma_set_option(rc->id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT,
			    &rs->ack_timeout, sizeof(rs->ack_timeout)))
		rp_dbg("RDMA: cannot set the ACK timeout: %s", strerror(errno));
	return 0;
}

/* Resolves the server's address (from the bound source address, when
 * --rdma-dev named one) and the route; the route picks the device, which
 * must be the one named. */
static int chan_resolve(struct rdma_chan *rc, const char **what)
{
	struct rp_rdma_source *rs = rc->rs;
	int ret;

	*what = "resolving the server address";
	ret = rp_rdma_err(rdma_resolve_addr(
		rc->id, rs->bind_src ? (struct sockaddr *)&rs->src : NULL,
		(struct sockaddr *)&rs->dst, 2000));
	if (!ret)
		ret = rp_rdma_wait_event(rc->cmch, rc->id,
					 RDMA_CM_EVENT_ADDR_RESOLVED,
					 CM_TIMEOUT_MS, rc->peer);
	if (ret)
		return ret;
	*what = "resolving the route";
	ret = rp_rdma_err(rdma_resolve_route(rc->id, 2000));
	if (!ret)
		ret = rp_rdma_wait_event(rc->cmch, rc->id,
					 RDMA_CM_EVENT_ROUTE_RESOLVED,
					 CM_TIMEOUT_MS, rc->peer);
	if (ret)
		return ret;
	snprintf(rc->dev, sizeof(rc->dev), "%s",
		 ibv_get_device_name(rc->id->verbs->device));
	if (rs->dev[0] && strcmp(rs->dev, rc->dev)) {
		rp_err("RDMA: the route to %s goes through device %s, not %s",
		       rc->peer, rc->dev, rs->dev);
		*what = "choosing the device";
		return -ENODEV;
	}
	rc->node = rp_rdma_dev_numa_node(rc->dev);
	return 0;
}

/* The verbs resources on the routed device: PD, completion channel, CQ
 * and an RC QP sized to the device's limits (*da: its attributes). */
static int chan_setup_qp(struct rdma_chan *rc, struct ibv_device_attr *da,
			 const char **what)
{
	struct ibv_qp_init_attr qa = { 0 };
	struct ibv_port_attr pa;
	int ret;

	*what = "allocating verbs resources";
	if (ibv_query_device(rc->id->verbs, da) ||
	    ibv_query_port(rc->id->verbs, rc->id->port_num, &pa))
		return errno ? -errno : -EIO;
	rc->sq_depth = (unsigned)RP_MIN((int)SQ_DEPTH, da->max_qp_wr);
	rc->max_msg = pa.max_msg_sz ? (uint32_t)RP_MIN(pa.max_msg_sz, 1u << 30)
				    : 1u << 30;
	rc->pd = ibv_alloc_pd(rc->id->verbs);
	rc->cc = rc->pd ? ibv_create_comp_channel(rc->id->verbs) : NULL;
	rc->cq = rc->cc ? ibv_create_cq(rc->id->verbs, (int)rc->sq_depth + 8,
					rc, rc->cc, 0)
			: NULL;
	if (!rc->cq)
		return -ENOMEM;
	ret = rp_set_nonblock(rc->cc->fd, true);
	if (ret)
		return ret;
	qa.send_cq = rc->cq;
	qa.recv_cq = rc->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = rc->sq_depth;
	qa.cap.max_recv_wr = 1;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	*what = "creating the QP";
	return rp_rdma_err(rdma_create_qp(rc->id, rc->pd, &qa));
}

/* A one-time ticket for this connection's CONNECT, from the (TLS)
 * control connection. */
static int chan_ticket(struct rdma_chan *rc, const char **what)
{
	*what = "getting a ticket on the control connection";
	return rp_rdma_ticket(rc->src, rc->ticket, rc->peer);
}

/* Connects, naming the session, the role and the ticket in the private
 * data (the server checks all three), and waits until the connection is
 * established. */
static int chan_establish(struct rdma_chan *rc, enum rp_role role,
			  const struct ibv_device_attr *da, const char **what)
{
	struct rdma_conn_param cp = { 0 };
	struct rp_rdma_conn conn = { .version = RP_RDMA_CONN_VERSION,
				     .role = (uint8_t)role,
				     .session = rc->src->session };
	uint8_t priv[RP_RDMA_CONN_LEN];
	int ret;

	memcpy(conn.ticket, rc->ticket, sizeof(conn.ticket));
	rp_rdma_conn_encode(priv, &conn);
	memset(conn.ticket, 0, sizeof(conn.ticket));
	cp.private_data = priv;
	cp.private_data_len = sizeof(priv);
	cp.initiator_depth = (uint8_t)RP_MIN(da->max_qp_init_rd_atom, 16);
	cp.responder_resources = 0;
	cp.retry_count = 7;
	cp.rnr_retry_count = 7;
	*what = "connecting";
	ret = rp_rdma_err(rdma_connect(rc->id, &cp));
	if (!ret)
		ret = rp_rdma_wait_event(rc->cmch, rc->id,
					 RDMA_CM_EVENT_ESTABLISHED,
					 CM_TIMEOUT_MS, rc->peer);
	memset(priv, 0, sizeof(priv));
	if (!ret)
		rc->connected = true;
	return ret;
}

/* This connection's keys (memory windows bound to its QP where the
 * server's device has them), from the control connection. */
static int chan_keys(struct rdma_chan *rc, const char **what)
{
	*what = "getting this connection's keys on the control connection";
	return rp_rdma_keys(rc->src, rc->ticket, &rc->keys, &rc->nkeys,
			    &rc->keys_flags, rc->peer);
}

/* Opens one rdma_cm connection for @role of @src's session; @quiet logs a
 * failure at info level (a probe that may fail), not as an error. */
static int chan_connect(struct rpage_source *src, struct rp_rdma_source *rs,
			enum rp_role role, bool quiet, struct rdma_chan **out)
{
	struct rdma_chan *rc = calloc(1, sizeof(*rc));
	struct ibv_device_attr da;
	const char *what = "";
	int ret;

	if (!rc)
		return -ENOMEM;
	ret = chan_create_id(rc, src, rs, &what);
	if (!ret)
		ret = chan_resolve(rc, &what);
	if (!ret)
		ret = chan_setup_qp(rc, &da, &what);
	if (!ret)
		ret = chan_ticket(rc, &what);
	if (!ret)
		ret = chan_establish(rc, role, &da, &what);
	if (!ret)
		ret = chan_keys(rc, &what);
	if (ret) {
		if (quiet)
			rp_info("RDMA to %s: %s failed: %s%s", rc->peer, what,
				strerror(-ret),
				ret == -ECONNREFUSED ? " (the server refused it)" : "");
		else
			rp_err("RDMA to %s: %s failed: %s%s", rc->peer, what,
			       strerror(-ret),
			       ret == -ECONNREFUSED ? " (the server refused it)" : "");
		rdma_close(&rc->ch);
		return ret;
	}
	rp_dbg("RDMA: %s connection to %s on %s (node %d, max message %u)",
	       role == RP_ROLE_URGENT ? "urgent" : "bulk", rc->peer, rc->dev,
	       rc->node, rc->max_msg);
	*out = rc;
	return 0;
}

int rp_rdma_chan_open(struct rpage_source *src, enum rp_role role,
		      struct rp_chan **out)
{
	struct rp_rdma_source *rs = src->rdma;
	struct rdma_chan *rc;
	int ret;

	if (!rs)
		return -ENOTCONN;
	pthread_mutex_lock(&src->ctl_lock);
	if (role == RP_ROLE_URGENT && rs->spare) {
		*out = rs->spare;
		rs->spare = NULL;
		pthread_mutex_unlock(&src->ctl_lock);
		return 0;
	}
	pthread_mutex_unlock(&src->ctl_lock);
	ret = chan_connect(src, rs, role, false, &rc);
	if (ret)
		return ret;
	*out = &rc->ch;
	return 0;
}

static int resolve_dst(struct rp_rdma_source *rs, const char *host)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char port[8];
	int ret;

	snprintf(port, sizeof(port), "%u", rs->port);
	ret = getaddrinfo(host, port, &hints, &ai);
	if (ret)
		return -ENOENT;
	memcpy(&rs->dst, ai->ai_addr,
	       RP_MIN((size_t)ai->ai_addrlen, sizeof(rs->dst)));
	freeaddrinfo(ai);
	return 0;
}

int rp_rdma_source_setup(struct rpage_source *s,
			 const struct rpage_connect_opts *o, const char *peer)
{
	bool need = o && o->transport == RPAGE_TRANSPORT_RDMA;
	const char *want = o && o->rdma_dev && *o->rdma_dev ? o->rdma_dev
							     : NULL;
	struct rp_rdma_source *rs;
	struct rdma_chan *probe = NULL;
	struct rp_rdma_info info;
	struct rp_hdr h;
	const char *why = NULL;
	char dev[64];
	uint8_t *buf;
	int ret;

	ret = rp_rdma_find_device(want, dev, sizeof(dev), &why);
	if (ret) {
		if (need)
			rp_err("--transport rdma: %s%s%s: use --transport tcp (or auto)",
			       why, want ? " named " : "", want ? want : "");
		else
			rp_info("transport auto: using tcp: %s%s%s", why,
				want ? " named " : "", want ? want : "");
		return -ENODEV;
	}
	if (!(s->features & RP_FEAT_RDMA)) {
		if (need)
			rp_err("--transport rdma: the server at %s does not serve RDMA (no device there, or started without it)",
			       peer);
		else
			rp_info("transport auto: using tcp: the server at %s does not serve RDMA",
				peer);
		return -EPROTONOSUPPORT;
	}
	buf = malloc(RP_RDMA_KEYS_MAX);
	rs = calloc(1, sizeof(*rs));
	if (!buf || !rs) {
		free(buf);
		free(rs);
		return -ENOMEM;
	}
	ret = rp_rdma_ctl_call(s, RP_MSG_RDMA_INFO_REQ, NULL, 0,
			       RP_MSG_RDMA_INFO, buf, 64, &h, peer);
	if (!ret && rp_rdma_info_decode(buf, h.len, &info, &why)) {
		rp_err("server %s: %s", peer, why);
		ret = -EPROTO;
	}
	if (ret)
		goto fail;
	if (!info.port) {
		ret = -EPROTONOSUPPORT;
		rp_log(need ? RPAGE_LOG_ERR : RPAGE_LOG_INFO, __func__,
		       "%s: the server at %s has no RDMA listener",
		       need ? "--transport rdma" : "transport auto: using tcp",
		       peer);
		goto fail;
	}
	rs->port = info.port;
	rs->ack_timeout = (uint8_t)env_u64("RPAGE_RDMA_ACK_TIMEOUT",
					   RP_RDMA_ACK_TIMEOUT_DEFAULT);
	rs->spin_ns = env_u64("RPAGE_RDMA_SPIN_US", 50) * 1000;
	if (want) {
		snprintf(rs->dev, sizeof(rs->dev), "%s", want);
		rs->bind_src = rp_rdma_dev_ipv4(want, &rs->src) == 0;
	}
	ret = resolve_dst(rs, s->host);
	if (ret) {
		rp_err("RDMA: cannot resolve %s", s->host);
		goto fail;
	}
	/* a test connection: only a working one counts as "usable" */
	ret = chan_connect(s, rs, RP_ROLE_URGENT, !need, &probe);
	if (ret) {
		if (!need)
			rp_info("transport auto: using tcp: no RDMA connection to %s",
				peer);
		goto fail;
	}
	rs->spare = &probe->ch;
	s->rdma = rs;
	free(buf);
	{
		unsigned nchunks = 0;

		for (unsigned i = 0; i < probe->nkeys; i++)
			nchunks += probe->keys[i].nchunks;
		rp_info("transport %s: using rdma on %s (server %s, rdma_cm port %u, %u region%s in %u memory region%s, %s)",
			need ? "rdma" : "auto", probe->dev, s->host, rs->port,
			probe->nkeys, probe->nkeys == 1 ? "" : "s", nchunks,
			nchunks == 1 ? "" : "s",
			probe->keys_flags & RP_RDMA_KEYS_MW
				? "keys bound to each connection's QP"
				: "keys of the session's memory regions");
	}
	return 0;
fail:
	if (probe)
		rdma_close(&probe->ch);
	free(rs);
	free(buf);
	return ret;
}

void rp_rdma_source_free(struct rp_rdma_source *rs)
{
	if (!rs)
		return;
	if (rs->spare)
		rs->spare->ops->close(rs->spare);
	free(rs);
}

int rp_rdma_source_refresh(struct rpage_source *s, const char *peer)
{
	struct rp_rdma_source *rs = s->rdma;
	struct rp_rdma_info info;
	struct rp_chan *spare;
	struct rp_hdr h;
	const char *why = NULL;
	uint8_t buf[64];
	int ret;

	if (!rs)
		return 0;
	/* a restarted server listens for RDMA where it listens now */
	ret = rp_rdma_ctl_call(s, RP_MSG_RDMA_INFO_REQ, NULL, 0,
			       RP_MSG_RDMA_INFO, buf, sizeof(buf), &h, peer);
	if (!ret && rp_rdma_info_decode(buf, h.len, &info, &why)) {
		rp_err("server %s: %s", peer, why);
		return -EPROTO;
	}
	if (ret)
		return ret;
	if (!info.port) {
		rp_err("server %s serves RDMA no longer (no listener): this process's memory cannot be fetched as before",
		       peer);
		return -EPROTONOSUPPORT;
	}
	pthread_mutex_lock(&s->ctl_lock);
	spare = rs->spare;
	rs->spare = NULL;
	rs->port = info.port;
	ret = resolve_dst(rs, s->host);
	pthread_mutex_unlock(&s->ctl_lock);
	if (spare)
		spare->ops->close(spare);
	return ret;
}

#else /* !RPAGE_HAVE_RDMA */

int rp_rdma_source_setup(struct rpage_source *s,
			 const struct rpage_connect_opts *o, const char *peer)
{
	(void)s, (void)peer;
	if (o && o->transport == RPAGE_TRANSPORT_RDMA)
		rp_err("this build has no RDMA transport; use --transport tcp");
	else
		rp_info("transport auto: using tcp: this build has no RDMA transport");
	return -EPROTONOSUPPORT;
}

void rp_rdma_source_free(struct rp_rdma_source *r)
{
	(void)r;
}

int rp_rdma_chan_open(struct rpage_source *src, enum rp_role role,
		      struct rp_chan **out)
{
	(void)src, (void)role, (void)out;
	return -EPROTONOSUPPORT;
}

int rp_rdma_source_refresh(struct rpage_source *s, const char *peer)
{
	(void)s, (void)peer;
	return 0;
}
#endif
