/* SPDX-License-Identifier: MIT */
/*
 * The TCP transport: one connection per role, so an urgent fault never
 * queues behind bulk data anywhere (client socket buffer, server thread,
 * server socket buffer). A fetch of n pieces sends n requests in one write
 * and then reads the n replies, so bulk keeps n requests in flight. The
 * urgent channel keeps requests in flight too: the fault thread submits
 * (one write for all it has) and reads the answers, which come in order,
 * without waiting (try_one: what has arrived, the rest of an answer on a
 * later call); wait_one lets another thread read them instead. `qlock`
 * guards the queue of requests between submit and the reader.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/net.h"
#include "client_int.h"

/* A request sent and not yet answered (answers come in order). */
struct tcp_req {
	uint64_t tag;
	uint32_t region;
	struct rp_fetch f;
};

struct tcp_chan {
	struct rp_chan ch;
	struct rp_conn conn;
	char peer[300];
	uint64_t tag;
	uint8_t *reqbuf;
	unsigned reqcap;
	/* submit/wait_one: the requests in flight, oldest first */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct tcp_req *q;
	unsigned qhead, qcount, qcap;
	bool aborted, broken;
	/* try_one: the bytes of the oldest answer that have arrived (its
	 * headers here, its data in the request's dst) */
	uint8_t rxh[RP_HDR_LEN + RP_PAGE_DATA_HDR];
	size_t rx_have;
	/* an ERROR frame came instead: its payload so far */
	bool rx_err;
	uint8_t errbuf[8 + RP_MAX_ERRMSG];
	uint32_t err_len, err_have;
};

static int proto_fail(const char *peer, const char *why)
{
	rp_err("server %s: %s", peer, why);
	return -EPROTO;
}

/* The payload of an ERROR frame, @len bytes at @buf: its message logged,
 * its code as -errno. */
static int error_report(const char *peer, const uint8_t *buf, uint32_t len)
{
	struct rp_error e;
	const char *why = NULL;

	if (rp_error_decode(buf, len, &e, &why))
		return proto_fail(peer, why ? why : "malformed ERROR frame");
	rp_err("server %s refused: %s", peer, e.msg);
	return e.code > 0 && e.code < 4096 ? -e.code : -EPROTO;
}

/* Reads the frame after a header of type ERROR and reports it. @pre holds
 * the first @npre payload bytes when they were read already. */
static int server_error_pre(struct rp_conn *c, const struct rp_hdr *h,
			    const char *peer, const uint8_t *pre, size_t npre)
{
	uint8_t buf[8 + RP_MAX_ERRMSG];

	if (h->len > sizeof(buf) || npre > h->len)
		return proto_fail(peer, "malformed ERROR frame");
	if (npre)
		memcpy(buf, pre, npre);
	if (rp_conn_read_full(c, buf + npre, h->len - npre))
		return proto_fail(peer, "malformed ERROR frame");
	return error_report(peer, buf, h->len);
}

static int server_error(struct rp_conn *c, const struct rp_hdr *h,
			const char *peer)
{
	return server_error_pre(c, h, peer, NULL, 0);
}

int rp_tcp_hello(struct rp_conn *c, enum rp_role role, uint64_t session,
		 struct rp_hello_ack *ack, const char *peer)
{
	uint8_t buf[RP_HELLO_LEN];
	struct rp_hello h = { .ver_min = RP_VERSION,
			      .ver_max = RP_VERSION,
			      .role = (uint8_t)role,
			      .features = RP_FEAT_SENDFILE | RP_FEAT_RDMA,
			      .session = session };
	struct rp_hdr hdr;
	const char *why = NULL;
	uint8_t hb[RP_HDR_LEN];
	int ret;

	ret = rp_conn_send_frame(c, RP_MSG_HELLO, 1, buf,
				 (uint32_t)rp_hello_encode(buf, &h));
	if (ret)
		return ret;
	ret = rp_conn_read_full(c, hb, sizeof(hb));
	if (ret)
		return ret == -ECONNRESET ? proto_fail(peer, "closed the connection during the hello") : ret;
	if (hb[0] == 21 && hb[1] == 3 && c->mode == RP_CONN_PLAIN) {
		rp_err("server %s answered with a TLS alert: it requires TLS (give --psk-file or --tls-cert/--tls-key/--tls-ca)",
		       peer);
		return -EACCES;
	}
	if (rp_hdr_decode(hb, &hdr, &why))
		return proto_fail(peer, why);
	if (hdr.type == RP_MSG_ERROR)
		return server_error(c, &hdr, peer);
	if (hdr.type != RP_MSG_HELLO_ACK || hdr.len != RP_HELLO_ACK_LEN)
		return proto_fail(peer, "answered the hello with something else");
	ret = rp_conn_read_full(c, buf, RP_HELLO_ACK_LEN);
	if (ret)
		return ret;
	if (rp_hello_ack_decode(buf, RP_HELLO_ACK_LEN, ack, &why))
		return proto_fail(peer, why);
	return 0;
}

/* Encodes @n PAGE_REQ frames (tags @tags, or tag0 + i when NULL) into the
 * channel's request buffer; returns their length, or 0 out of memory. */
static size_t encode_reqs(struct tcp_chan *tc, uint32_t region,
			  const struct rp_fetch *f, unsigned n, uint64_t tag0,
			  const uint64_t *tags)
{
	if (n > tc->reqcap) {
		uint8_t *nb = realloc(tc->reqbuf,
				      (size_t)n * (RP_HDR_LEN + RP_PAGE_REQ_LEN));

		if (!nb)
			return 0;
		tc->reqbuf = nb;
		tc->reqcap = n;
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = tc->reqbuf + (size_t)i * (RP_HDR_LEN + RP_PAGE_REQ_LEN);
		struct rp_hdr h = { .type = RP_MSG_PAGE_REQ,
				    .len = RP_PAGE_REQ_LEN,
				    .tag = tags ? tags[i] : tag0 + i };
		struct rp_page_req rq = { .region = region,
					  .len = f[i].len,
					  .offset = f[i].off };

		rp_hdr_encode(p, &h);
		rp_page_req_encode(p + RP_HDR_LEN, &rq);
	}
	return (size_t)n * (RP_HDR_LEN + RP_PAGE_REQ_LEN);
}

/* Reads the answer to the request tagged @tag for @f: every byte into
 * f->dst, or -errno (a bad answer is -EPROTO, logged). */
static int read_reply(struct tcp_chan *tc, uint32_t region,
		      const struct rp_fetch *f, uint64_t tag)
{
	uint8_t hb[RP_HDR_LEN + RP_PAGE_DATA_HDR];
	struct rp_page_req got;
	struct rp_hdr h;
	const char *why = NULL;
	struct iovec iov[2] = { { hb, sizeof(hb) }, { f->dst, f->len } };
	size_t have;
	ssize_t r;
	int ret;

	/* One readv for the whole expected reply: header and data usually
	 * arrive together, so a page costs one system call instead of three
	 * (measured: -0.6 us per fault on loopback, docs/PERFORMANCE.md).
	 * Bytes land in dst before they are checked; a bad reply fails the
	 * fetch and nothing is placed. */
	r = rp_conn_readv(&tc->conn, iov, 2);
	if (r < 0)
		return (int)r;
	have = (size_t)r;
	if (have < RP_HDR_LEN) {
		ret = rp_conn_read_full(&tc->conn, hb + have, RP_HDR_LEN - have);
		if (ret)
			return ret;
		have = RP_HDR_LEN;
	}
	if (rp_hdr_decode(hb, &h, &why))
		return proto_fail(tc->peer, why);
	if (h.type == RP_MSG_ERROR) {
		uint8_t pre[8 + RP_MAX_ERRMSG];
		size_t npre = RP_MIN(have, sizeof(hb)) - RP_HDR_LEN;

		if (have - RP_HDR_LEN > sizeof(pre))
			return proto_fail(tc->peer, "malformed ERROR frame");
		memcpy(pre, hb + RP_HDR_LEN, npre);
		if (have > sizeof(hb))
			memcpy(pre + npre, f->dst, have - sizeof(hb));
		return server_error_pre(&tc->conn, &h, tc->peer, pre,
					have - RP_HDR_LEN);
	}
	if (h.type != RP_MSG_PAGE_DATA)
		return proto_fail(tc->peer, "sent an unexpected message instead of page data");
	if (h.tag != tag)
		return proto_fail(tc->peer, "answered out of order (tag mismatch)");
	if (have < sizeof(hb)) {
		ret = rp_conn_read_full(&tc->conn, hb + have, sizeof(hb) - have);
		if (ret)
			return ret;
		have = sizeof(hb);
	}
	if (rp_page_data_hdr_decode(hb + RP_HDR_LEN, h.len, &got, &why))
		return proto_fail(tc->peer, why);
	if (got.region != region || got.offset != f->off || got.len != f->len)
		return proto_fail(tc->peer, "sent page data for a range that was not asked for");
	return rp_conn_read_full(&tc->conn, (uint8_t *)f->dst + (have - sizeof(hb)),
				 f->len - (have - sizeof(hb)));
}

static int tcp_fetch(struct rp_chan *ch, uint32_t region, struct rp_fetch *f,
		     unsigned n)
{
	struct tcp_chan *tc = (struct tcp_chan *)ch;
	uint64_t tag0 = tc->tag;
	size_t len = encode_reqs(tc, region, f, n, tag0, NULL);
	int ret;

	if (!len)
		return -ENOMEM;
	tc->tag += n;
	ret = rp_conn_write_full(&tc->conn, tc->reqbuf, len);
	for (unsigned i = 0; !ret && i < n; i++)
		ret = read_reply(tc, region, &f[i], tag0 + i);
	return ret;
}

static int tcp_submit(struct rp_chan *ch, uint32_t region,
		      const struct rp_fetch *f, unsigned n,
		      const uint64_t *tags)
{
	struct tcp_chan *tc = (struct tcp_chan *)ch;
	size_t len;
	int ret = 0;

	pthread_mutex_lock(&tc->qlock);
	if (tc->aborted || tc->broken) {
		ret = tc->aborted ? -ECANCELED : -ENOTCONN;
	} else if (tc->qcount + n > tc->qcap) {
		unsigned cap = RP_MAX(tc->qcap * 2, tc->qcount + n);
		struct tcp_req *nq = malloc(cap * sizeof(*nq));

		if (!nq) {
			ret = -ENOMEM;
		} else {
			for (unsigned i = 0; i < tc->qcount; i++)
				nq[i] = tc->q[(tc->qhead + i) % tc->qcap];
			free(tc->q);
			tc->q = nq;
			tc->qcap = cap;
			tc->qhead = 0;
		}
	}
	/* queued before the bytes leave: the answer may come at once */
	for (unsigned i = 0; !ret && i < n; i++)
		tc->q[(tc->qhead + tc->qcount++) % tc->qcap] =
			(struct tcp_req){ tags[i], region, f[i] };
	if (!ret)
		pthread_cond_signal(&tc->qcond);
	pthread_mutex_unlock(&tc->qlock);
	if (ret)
		return ret;
	len = encode_reqs(tc, region, f, n, 0, tags);
	ret = len ? rp_conn_write_full(&tc->conn, tc->reqbuf, len) : -ENOMEM;
	if (ret) {
		pthread_mutex_lock(&tc->qlock);
		tc->broken = true;
		pthread_mutex_unlock(&tc->qlock);
		rp_conn_shutdown(&tc->conn); /* wait_one sees it too */
	}
	return ret;
}

/* The oldest answer, @rq, was read whole (@ret 0: its tag to *@tag) or
 * the channel broke reading it. */
static int answer_end(struct tcp_chan *tc, const struct tcp_req *rq, int ret,
		      uint64_t *tag)
{
	pthread_mutex_lock(&tc->qlock);
	if (ret) {
		if (tc->aborted)
			ret = -ECANCELED;
		tc->broken = true;
	} else {
		tc->qhead = (tc->qhead + 1) % tc->qcap;
		tc->qcount--;
		tc->rx_have = 0;
		*tag = rq->tag;
	}
	pthread_mutex_unlock(&tc->qlock);
	return ret;
}

static int tcp_wait_one(struct rp_chan *ch, uint64_t *tag)
{
	struct tcp_chan *tc = (struct tcp_chan *)ch;
	struct tcp_req rq;
	int ret;

	pthread_mutex_lock(&tc->qlock);
	while (!tc->qcount && !tc->aborted && !tc->broken)
		pthread_cond_wait(&tc->qcond, &tc->qlock);
	if (tc->aborted || tc->broken) {
		ret = tc->aborted ? -ECANCELED : -ENOTCONN;
		pthread_mutex_unlock(&tc->qlock);
		return ret;
	}
	rq = tc->q[tc->qhead];
	pthread_mutex_unlock(&tc->qlock);
	ret = read_reply(tc, rq.region, &rq.f, rq.tag);
	return answer_end(tc, &rq, ret, tag);
}

/* The answer in tc->rxh (@have bytes, @got more just now) for @rq:
 * checks each header once it is whole. 0, or -errno (the channel is done). */
static int check_partial(struct tcp_chan *tc, const struct tcp_req *rq,
			 size_t prev, size_t have)
{
	const size_t hl = sizeof(tc->rxh);
	struct rp_page_req got;
	struct rp_hdr h;
	const char *why = NULL;

	if (have < RP_HDR_LEN)
		return 0;
	if (rp_hdr_decode(tc->rxh, &h, &why))
		return proto_fail(tc->peer, why);
	if (prev < RP_HDR_LEN && h.type == RP_MSG_ERROR) {
		size_t inh = RP_MIN(have, hl) - RP_HDR_LEN;

		/* the server ends the connection with it; its payload is
		 * gathered without waiting, as an answer is */
		if (h.len > sizeof(tc->errbuf) || have - RP_HDR_LEN > h.len)
			return proto_fail(tc->peer, "malformed ERROR frame");
		memcpy(tc->errbuf, tc->rxh + RP_HDR_LEN, inh);
		if (have > hl)
			memcpy(tc->errbuf + inh, rq->f.dst, have - hl);
		tc->rx_err = true;
		tc->err_len = h.len;
		tc->err_have = (uint32_t)(have - RP_HDR_LEN);
		return 0;
	}
	if (tc->rx_err)
		return 0;
	if (prev < RP_HDR_LEN) {
		if (h.type != RP_MSG_PAGE_DATA)
			return proto_fail(tc->peer, "sent an unexpected message instead of page data");
		if (h.tag != rq->tag)
			return proto_fail(tc->peer, "answered out of order (tag mismatch)");
	}
	if (prev < hl && have >= hl) {
		if (rp_page_data_hdr_decode(tc->rxh + RP_HDR_LEN, h.len, &got,
					    &why))
			return proto_fail(tc->peer, why);
		if (got.region != rq->region || got.offset != rq->f.off ||
		    got.len != rq->f.len)
			return proto_fail(tc->peer, "sent page data for a range that was not asked for");
	}
	return 0;
}

/* An ERROR frame came instead of the answer: gathers the rest of its
 * payload without waiting. -EAGAIN until it is whole, then its error. */
static int error_rest(struct tcp_chan *tc)
{
	while (tc->err_have < tc->err_len) {
		struct iovec iov = { tc->errbuf + tc->err_have,
				     tc->err_len - tc->err_have };
		ssize_t r = rp_conn_readv_nowait(&tc->conn, &iov, 1);

		if (r < 0)
			return (int)r;
		tc->err_have += (uint32_t)r;
	}
	return error_report(tc->peer, tc->errbuf, tc->err_len);
}

static int tcp_try_one(struct rp_chan *ch, uint64_t *tag)
{
	struct tcp_chan *tc = (struct tcp_chan *)ch;
	const size_t hl = sizeof(tc->rxh);
	struct tcp_req rq;
	int ret;

	pthread_mutex_lock(&tc->qlock);
	ret = tc->aborted ? -ECANCELED
	      : tc->broken ? -ENOTCONN
	      : tc->qcount ? 0 : -EAGAIN;
	if (!ret)
		rq = tc->q[tc->qhead];
	pthread_mutex_unlock(&tc->qlock);
	if (ret)
		return ret;
	while (!tc->rx_err && tc->rx_have < hl + rq.f.len) {
		size_t prev = tc->rx_have, d = prev > hl ? prev - hl : 0;
		struct iovec iov[2] = {
			{ tc->rxh + RP_MIN(prev, hl), hl - RP_MIN(prev, hl) },
			{ (uint8_t *)rq.f.dst + d, rq.f.len - d },
		};
		/* one readv for the rest of the answer (see read_reply) */
		ssize_t r = prev < hl ? rp_conn_readv_nowait(&tc->conn, iov, 2)
				      : rp_conn_readv_nowait(&tc->conn, iov + 1, 1);

		if (r == -EAGAIN)
			return -EAGAIN; /* the rest comes later */
		if (r < 0) {
			ret = (int)r;
			break;
		}
		tc->rx_have += (size_t)r;
		ret = check_partial(tc, &rq, prev, tc->rx_have);
		if (ret)
			break;
	}
	if (!ret && tc->rx_err) {
		ret = error_rest(tc);
		if (ret == -EAGAIN)
			return ret;
	}
	return answer_end(tc, &rq, ret, tag);
}

static int tcp_poll_fd(struct rp_chan *ch)
{
	return ((struct tcp_chan *)ch)->conn.fd;
}

static void tcp_abort(struct rp_chan *ch)
{
	struct tcp_chan *tc = (struct tcp_chan *)ch;

	pthread_mutex_lock(&tc->qlock);
	tc->aborted = true;
	pthread_cond_broadcast(&tc->qcond);
	pthread_mutex_unlock(&tc->qlock);
	rp_conn_shutdown(&tc->conn);
}

static void tcp_close(struct rp_chan *ch)
{
	struct tcp_chan *tc = (struct tcp_chan *)ch;

	rp_conn_close(&tc->conn);
	pthread_mutex_destroy(&tc->qlock);
	pthread_cond_destroy(&tc->qcond);
	free(tc->q);
	free(tc->reqbuf);
	free(tc);
}

static const struct rp_chan_ops tcp_ops = {
	.fetch = tcp_fetch,
	.submit = tcp_submit,
	.wait_one = tcp_wait_one,
	.try_one = tcp_try_one,
	.poll_fd = tcp_poll_fd,
	.abort = tcp_abort,
	.close = tcp_close,
};

int rp_tcp_chan_open(struct rpage_source *src, enum rp_role role,
		     struct rp_chan **out)
{
	struct tcp_chan *tc = calloc(1, sizeof(*tc));
	struct rp_hello_ack ack;
	int ret;

	if (!tc)
		return -ENOMEM;
	tc->ch.ops = &tcp_ops;
	tc->tag = 1;
	pthread_mutex_init(&tc->qlock, NULL);
	pthread_cond_init(&tc->qcond, NULL);
	snprintf(tc->peer, sizeof(tc->peer), "%s:%s", src->host, src->port);
	ret = rp_source_dial(src, role, &tc->conn, &ack);
	if (ret) {
		pthread_mutex_destroy(&tc->qlock);
		pthread_cond_destroy(&tc->qcond);
		free(tc);
		return ret;
	}
	*out = &tc->ch;
	return 0;
}
