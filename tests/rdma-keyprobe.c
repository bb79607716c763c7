/* SPDX-License-Identifier: MIT */
/*
 * rpage-keyprobe [--psk-file FILE] HOST PORT IMAGE: proves on real verbs
 * who can READ a server's memory with which keys, from the outside, with
 * raw verbs (no rpage transport code on the attacking side).
 *
 * IMAGE is what the server at HOST:PORT serves as region 0 (the bytes are
 * checked against it). Steps, each printing PASS or FAIL:
 *   1. session 1 (authenticated with --psk-file when given): a ticket, an
 *      rdma_cm connection naming the session and the ticket, the keys of
 *      that connection; the addresses are zero-based (no virtual address
 *      of the server) and one READ returns the image's bytes;
 *   2. an outsider who saw session 1's CONNECT on the fabric: a CONNECT
 *      naming session 1 with no ticket, with the ticket already used, and
 *      with a made-up session, are all refused: no QP, nothing to READ
 *      with;
 *   3. where the keys are memory windows bound to a QP: a second
 *      connection of session 1 READing with the first connection's key
 *      gets a remote access error and no data; its own key works;
 *   4. session 2 (another session): a READ with session 1's key on its
 *      QP fails with a remote access error, no data arrives;
 *   5. session 1's control connection is closed (its QP kept): the server
 *      disconnects the QP, and a READ on it with the old key returns no
 *      data; session 2's QP with session 1's old key still gets nothing;
 *   6. session 2's own key works on a fresh QP.
 * With --caps N (the server runs with --max-rdma-per-session N) it checks
 * that cap instead of steps 2 to 6.
 * Exit 0 when every step held, 1 otherwise. Every wait is bounded.
 */
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "../client/client_int.h"
#include "../common/proto_rdma.h"
#include "../common/rp.h"
#include "../common/tls.h"

#ifdef RPAGE_HAVE_RDMA
#include "../common/rdma.h"

#define CM_MS 10000
#define CQ_MS 15000
#define PROBE_LEN 4096u
#define PROBE_OFF (3 * 4096u) /* region offset read (inside chunk 0) */

static const char *host, *port, *file;
static struct rpage_tls *tls;
static int failures;

struct sess {
	struct rpage_source *src;
	uint16_t rdma_port;
};

struct conn {
	struct rdma_event_channel *cmch;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	bool connected;
	unsigned outstanding;
	uint8_t ticket[RP_RDMA_TICKET_LEN];
	struct rp_rdma_region_keys *keys; /* this connection's */
	unsigned nkeys;
	uint32_t keys_flags;
	uint8_t buf[PROBE_LEN];
};

static void result(bool ok, const char *what)
{
	printf("keyprobe: %s %s\n", ok ? "PASS" : "FAIL", what);
	fflush(stdout);
	if (!ok)
		failures++;
}

/* One request/answer on @s's control connection. */
static int ctl_call(struct sess *s, uint16_t type, const void *req,
		    uint32_t rlen, uint16_t want, uint8_t *buf, uint32_t cap,
		    struct rp_hdr *h)
{
	return rp_rdma_ctl_call(s->src, type, req, rlen, want, buf, cap, h,
				"keyprobe");
}

/* Waits for the next completion (bounded): its status, or -ETIMEDOUT. */
static int wait_wc(struct conn *c, int ms, enum ibv_wc_status *st)
{
	uint64_t deadline = rp_now_ns() + (uint64_t)ms * 1000000ull;

	for (;;) {
		struct ibv_wc wc;
		int n = rp_ibv_poll_cq(c->cq, 1, &wc);

		if (n < 0)
			return n;
		if (n == 1) {
			c->outstanding--;
			*st = wc.status;
			return 0;
		}
		if (rp_now_ns() >= deadline)
			return -ETIMEDOUT;
		usleep(1000); /* let ksoftirqd (rxe) run */
	}
}

static void conn_close(struct conn *c)
{
	enum ibv_wc_status st;

	if (!c)
		return;
	if (c->id && c->id->qp) {
		rp_ibv_qp_to_error(c->id->qp);
		while (c->outstanding && wait_wc(c, 5000, &st) == 0)
			;
		if (c->outstanding)
			result(false, "teardown: the QP in the error state did not flush its READ");
	}
	if (c->id && c->connected)
		rdma_disconnect(c->id);
	if (c->id && c->id->qp)
		rdma_destroy_qp(c->id);
	if (c->mr)
		rp_ibv_dereg_mr(c->mr);
	if (c->cq)
		ibv_destroy_cq(c->cq);
	if (c->pd)
		ibv_dealloc_pd(c->pd);
	if (c->id)
		rdma_destroy_id(c->id);
	if (c->cmch)
		rdma_destroy_event_channel(c->cmch);
	rp_rdma_keys_free(c->keys, c->nkeys);
	free(c);
}

/* The keys of connection @c of session @s. */
static int get_keys(struct sess *s, struct conn *c)
{
	int ret = rp_rdma_keys(s->src, c->ticket, &c->keys, &c->nkeys,
			       &c->keys_flags, "keyprobe");

	if (!ret && (c->nkeys < 1 || c->keys[0].nchunks < 1 ||
		     c->keys[0].chunks[0].length < PROBE_OFF + PROBE_LEN)) {
		fprintf(stderr, "keyprobe: region 0 is too small\n");
		ret = -EINVAL;
	}
	if (!ret)
		printf("keyprobe: session %016llx: region 0 chunk 0 at 0x%llx rkey 0x%x (%u chunk%s, %s)\n",
		       (unsigned long long)s->src->session,
		       (unsigned long long)c->keys[0].chunks[0].addr,
		       c->keys[0].chunks[0].rkey, c->keys[0].nchunks,
		       c->keys[0].nchunks == 1 ? "" : "s",
		       c->keys_flags & RP_RDMA_KEYS_MW ? "memory windows"
						       : "memory regions");
	return ret;
}

/* An rdma_cm connection naming @session and @ticket in its CONNECT; NULL
 * with *err set when it cannot be made (-ECONNREFUSED: the server
 * rejected it). */
static struct conn *conn_raw(uint16_t rdma_port, uint64_t session,
			     const uint8_t *ticket, int *err)
{
	struct rp_rdma_conn rc = { .version = RP_RDMA_CONN_VERSION,
				   .role = RP_ROLE_URGENT,
				   .session = session };
	uint8_t priv[RP_RDMA_CONN_LEN];
	struct rdma_conn_param cp = { 0 };
	struct ibv_qp_init_attr qa = { 0 };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct conn *c = calloc(1, sizeof(*c));
	uint8_t ack = RP_RDMA_ACK_TIMEOUT_DEFAULT;
	const char *what = "allocating";
	char p[8];
	int ret = -ENOMEM;

	if (!c)
		goto fail;
	what = "creating the rdma_cm id";
	c->cmch = rdma_create_event_channel();
	if (!c->cmch || rp_set_nonblock(c->cmch->fd, true) ||
	    rdma_create_id(c->cmch, &c->id, c, RDMA_PS_TCP)) {
		ret = -EIO;
		goto fail;
	}
	/* fast retransmission: a failed READ reports within a second */
	rdma_set_option(c->id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &ack,
			sizeof(ack));
	what = "resolving the address";
	memcpy(rc.ticket, ticket, RP_RDMA_TICKET_LEN);
	snprintf(p, sizeof(p), "%u", rdma_port);
	if (getaddrinfo(host, p, &hints, &ai)) {
		ret = -ENOENT;
		goto fail;
	}
	ret = rp_rdma_err(rdma_resolve_addr(c->id, NULL, ai->ai_addr, 2000));
	freeaddrinfo(ai);
	if (!ret)
		ret = rp_rdma_wait_event(c->cmch, c->id,
					 RDMA_CM_EVENT_ADDR_RESOLVED, CM_MS,
					 "keyprobe");
	what = "resolving the route";
	if (!ret)
		ret = rp_rdma_err(rdma_resolve_route(c->id, 2000));
	if (!ret)
		ret = rp_rdma_wait_event(c->cmch, c->id,
					 RDMA_CM_EVENT_ROUTE_RESOLVED, CM_MS,
					 "keyprobe");
	if (ret)
		goto fail;
	what = "allocating verbs resources";
	ret = -ENOMEM;
	c->pd = ibv_alloc_pd(c->id->verbs);
	c->cq = c->pd ? ibv_create_cq(c->id->verbs, 8, NULL, NULL, 0) : NULL;
	if (!c->cq)
		goto fail;
	ret = rp_ibv_reg_mr(c->pd, c->buf, sizeof(c->buf),
			    IBV_ACCESS_LOCAL_WRITE, &c->mr);
	if (ret)
		goto fail;
	qa.send_cq = c->cq;
	qa.recv_cq = c->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = 4;
	qa.cap.max_recv_wr = 1;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	what = "creating the QP";
	ret = rp_rdma_err(rdma_create_qp(c->id, c->pd, &qa));
	if (ret)
		goto fail;
	rp_rdma_conn_encode(priv, &rc);
	cp.private_data = priv;
	cp.private_data_len = sizeof(priv);
	cp.initiator_depth = 1;
	cp.retry_count = 7;
	cp.rnr_retry_count = 7;
	what = "connecting";
	ret = rp_rdma_err(rdma_connect(c->id, &cp));
	if (!ret)
		ret = rp_rdma_wait_event(c->cmch, c->id,
					 RDMA_CM_EVENT_ESTABLISHED, CM_MS,
					 "keyprobe");
	if (ret)
		goto fail;
	c->connected = true;
	memcpy(c->ticket, ticket, RP_RDMA_TICKET_LEN);
	*err = 0;
	return c;
fail:
	fprintf(stderr, "keyprobe: RDMA connection: %s failed: %s\n", what,
		strerror(-ret));
	*err = ret;
	conn_close(c);
	return NULL;
}

/* A connection of session @s the way a client makes one: a ticket, the
 * CONNECT, its keys. */
static struct conn *conn_open(struct sess *s)
{
	uint8_t tk[RP_RDMA_TICKET_LEN];
	struct conn *c;
	int err;

	if (rp_rdma_ticket(s->src, tk, "keyprobe"))
		return NULL;
	c = conn_raw(s->rdma_port, s->src->session, tk, &err);
	if (c && get_keys(s, c)) {
		conn_close(c);
		c = NULL;
	}
	return c;
}

/* Opens a control session and its first RDMA connection (*c) with its
 * keys. */
static int sess_open(struct sess *s, struct conn **c)
{
	struct rpage_connect_opts o = { .transport = RPAGE_TRANSPORT_TCP,
					.tls = tls, .insecure = !tls };
	struct rp_rdma_info info;
	struct rp_hdr h;
	const char *why = NULL;
	uint8_t *buf = malloc(RP_RDMA_KEYS_MAX);
	int ret;

	memset(s, 0, sizeof(*s));
	*c = NULL;
	if (!buf)
		return -ENOMEM;
	ret = rpage_source_connect_opts(host, port, &o, &s->src);
	if (ret)
		goto out;
	ret = -EPROTONOSUPPORT;
	if (!(s->src->features & RP_FEAT_RDMA) || s->src->nregions < 1) {
		fprintf(stderr, "keyprobe: the server offers no RDMA (or no region)\n");
		goto out;
	}
	ret = ctl_call(s, RP_MSG_RDMA_INFO_REQ, NULL, 0, RP_MSG_RDMA_INFO, buf,
		       64, &h);
	if (!ret && rp_rdma_info_decode(buf, h.len, &info, &why))
		ret = -EPROTO;
	if (ret)
		goto out;
	if (!info.port) {
		fprintf(stderr, "keyprobe: the server has no RDMA listener\n");
		ret = -EPROTONOSUPPORT;
		goto out;
	}
	s->rdma_port = info.port;
	*c = conn_open(s);
	if (!*c)
		ret = -ECONNREFUSED;
out:
	free(buf);
	return ret;
}

static void sess_close(struct sess *s)
{
	rpage_source_close(s->src);
	memset(s, 0, sizeof(*s));
}

/*
 * One RDMA READ of PROBE_LEN bytes at @addr/@rkey into c->buf (filled with
 * 0xA5 first). Returns 0 with the completion status in *st, -errno when
 * posting failed, -ETIMEDOUT when no completion came.
 */
static int probe_read(struct conn *c, uint64_t addr, uint32_t rkey, int ms,
		      enum ibv_wc_status *st)
{
	struct ibv_sge sge = { .addr = (uint64_t)(uintptr_t)c->buf,
			       .length = PROBE_LEN,
			       .lkey = c->mr->lkey };
	struct ibv_send_wr wr = { .wr_id = 1,
				  .sg_list = &sge,
				  .num_sge = 1,
				  .opcode = IBV_WR_RDMA_READ,
				  .send_flags = IBV_SEND_SIGNALED,
				  .wr.rdma = { .remote_addr = addr, .rkey = rkey } },
			   *bad = NULL;
	int ret;

	memset(c->buf, 0xA5, sizeof(c->buf));
	ret = rp_ibv_post_send(c->id->qp, &wr, &bad);
	if (ret)
		return ret;
	c->outstanding++;
	return wait_wc(c, ms, st);
}

static bool buf_untouched(const struct conn *c)
{
	for (unsigned i = 0; i < PROBE_LEN; i++)
		if (c->buf[i] != 0xA5)
			return false;
	return true;
}

/* A READ with @c's own key that must succeed and return the file's
 * bytes. */
static void expect_data(struct conn *c, const uint8_t *want, const char *what)
{
	const struct rp_rdma_chunk *k = &c->keys[0].chunks[0];
	enum ibv_wc_status st = IBV_WC_GENERAL_ERR;
	char msg[256];
	int ret = probe_read(c, k->addr + PROBE_OFF, k->rkey, CQ_MS, &st);

	if (!ret && st == IBV_WC_SUCCESS && !memcmp(c->buf, want, PROBE_LEN)) {
		snprintf(msg, sizeof(msg), "%s: %u bytes, all as in %s", what,
			 PROBE_LEN, file);
		result(true, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "%s: %s", what,
		 ret ? strerror(-ret)
		 : st != IBV_WC_SUCCESS ? ibv_wc_status_str(st)
					: "the bytes differ from the file");
	result(false, msg);
}

/* @c's QP state, or -1 when it cannot be queried. */
static int qp_state(struct conn *c)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;

	if (ibv_query_qp(c->id->qp, &a, IBV_QP_STATE, &ia))
		return -1;
	return (int)a.qp_state;
}

/*
 * A READ with a revoked key that must fail without data: with a remote
 * access error (@want_access_err), else any error; no completion within
 * @ms is accepted only when @timeout_ok (teardown then flushes it).
 */
static void expect_fail(struct conn *c, const struct rp_rdma_chunk *k,
			bool want_access_err, int ms, bool timeout_ok,
			const char *what)
{
	enum ibv_wc_status st = IBV_WC_SUCCESS;
	char msg[256];
	int ret = probe_read(c, k->addr + PROBE_OFF, k->rkey, ms, &st);

	if (ret == -ETIMEDOUT && timeout_ok && buf_untouched(c)) {
		snprintf(msg, sizeof(msg),
			 "%s: no data (no completion in %d ms: the server's end of the QP is gone)",
			 what, ms);
		result(true, msg);
	} else if (ret == -ETIMEDOUT) {
		snprintf(msg, sizeof(msg), "%s: no completion in %d ms (QP state %d)",
			 what, ms, qp_state(c));
		result(false, msg);
	} else if (!ret && st == IBV_WC_SUCCESS) {
		snprintf(msg, sizeof(msg),
			 "%s: the old key still works (the READ returned data): keys are not revoked",
			 what);
		result(false, msg);
	} else if (!buf_untouched(c)) {
		snprintf(msg, sizeof(msg), "%s: failed (%s) but bytes arrived",
			 what, ret ? strerror(-ret) : ibv_wc_status_str(st));
		result(false, msg);
	} else if (want_access_err && (ret || st != IBV_WC_REM_ACCESS_ERR)) {
		snprintf(msg, sizeof(msg),
			 "%s: failed with %s, not a remote access error", what,
			 ret ? strerror(-ret) : ibv_wc_status_str(st));
		result(false, msg);
	} else {
		snprintf(msg, sizeof(msg), "%s: refused (%s), no data", what,
			 ret ? strerror(-ret) : ibv_wc_status_str(st));
		result(true, msg);
	}
}

/* Waits (bounded) for the server to disconnect @c. */
static bool wait_disconnected(struct conn *c, int ms)
{
	uint64_t deadline = rp_now_ns() + (uint64_t)ms * 1000000ull;

	for (;;) {
		struct pollfd pf = { c->cmch->fd, POLLIN, 0 };
		struct rdma_cm_event *ev;
		uint64_t now = rp_now_ns();

		while (rdma_get_cm_event(c->cmch, &ev) == 0) {
			bool gone = ev->event == RDMA_CM_EVENT_DISCONNECTED;

			rdma_ack_cm_event(ev);
			if (gone) {
				c->connected = false;
				return true;
			}
		}
		if (now >= deadline)
			return false;
		poll(&pf, 1, (int)((deadline - now) / 1000000ull) + 1);
	}
}

/* A CONNECT that the server must refuse. */
static void expect_refused(uint16_t rdma_port, uint64_t session,
			   const uint8_t *ticket, const char *what)
{
	int err = 0;
	struct conn *c = conn_raw(rdma_port, session, ticket, &err);
	char msg[256];

	if (c) {
		snprintf(msg, sizeof(msg), "%s: the server accepted it", what);
		result(false, msg);
		conn_close(c);
		return;
	}
	snprintf(msg, sizeof(msg), "%s: refused (%s)", what, strerror(-err));
	result(err == -ECONNREFUSED, msg);
}

/*
 * The cap on RDMA connections per session (the server runs with
 * --max-rdma-per-session @cap): @c1 and cap - 1 more connect; one more is
 * refused at its ticket, and the control connection goes on (a slot
 * freed is usable again).
 */
static void caps_check(struct sess *s, unsigned cap)
{
	struct conn *more[64] = { NULL };
	uint8_t tk[RP_RDMA_TICKET_LEN];
	unsigned ok = 1;
	char msg[160];
	int ret;

	for (unsigned i = 0; i + 1 < cap && i < 64; i++) {
		more[i] = conn_open(s);
		ok += more[i] != NULL;
	}
	snprintf(msg, sizeof(msg), "caps: %u of %u RDMA connections of one session accepted",
		 ok, cap);
	result(ok == cap, msg);
	ret = rp_rdma_ticket(s->src, tk, "keyprobe");
	snprintf(msg, sizeof(msg), "caps: connection %u of the session refused at its ticket (%s)",
		 cap + 1, strerror(-ret));
	result(ret == -EBUSY, msg);
	conn_close(more[0]);
	more[0] = conn_open(s);
	result(more[0] != NULL,
	       "caps: the control connection goes on; a freed slot is used again");
	for (unsigned i = 0; i < 64; i++)
		conn_close(more[i]);
}

int main(int argc, char **argv)
{
	static const uint8_t zero[RP_RDMA_TICKET_LEN];
	struct sess s1, s2;
	struct conn *c1 = NULL, *c1b = NULL, *c2 = NULL, *c3 = NULL;
	struct rp_rdma_chunk old;
	uint8_t want[PROBE_LEN];
	unsigned cap = 0;
	int fd, a = 1;

	while (a + 1 < argc && argv[a][0] == '-') {
		if (!strcmp(argv[a], "--psk-file")) {
			struct rpage_tls_opts o = { .psk_file = argv[a + 1] };

			if (rpage_tls_new(&o, &tls))
				return 1;
		} else if (!strcmp(argv[a], "--caps")) {
			cap = (unsigned)strtoul(argv[a + 1], NULL, 0);
		} else {
			break;
		}
		a += 2;
	}
	if (argc - a != 3) {
		fprintf(stderr, "usage: rpage-keyprobe [--psk-file FILE] [--caps N] HOST PORT IMAGE\n");
		return 2;
	}
	host = argv[a];
	port = argv[a + 1];
	file = argv[a + 2];
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, want, PROBE_LEN, PROBE_OFF) != PROBE_LEN) {
		fprintf(stderr, "keyprobe: cannot read %u bytes of %s\n",
			PROBE_LEN, file);
		return 1;
	}
	close(fd);

	/* 1. session 1 works, with zero-based addresses */
	if (sess_open(&s1, &c1)) {
		result(false, "session 1: control session, ticket, RDMA connection and keys");
		sess_close(&s1);
		goto out;
	}
	result(c1->keys[0].chunks[0].addr == 0,
	       "session 1: addresses are zero-based (no virtual address of the server)");
	expect_data(c1, want, "session 1: READ with its own key");
	old = c1->keys[0].chunks[0];
	if (cap) {
		caps_check(&s1, cap);
		conn_close(c1);
		sess_close(&s1);
		goto out;
	}

	/* 2. what an outsider who watched the fabric can do with it */
	expect_refused(s1.rdma_port, s1.src->session, zero,
		       "outsider: CONNECT naming session 1 without a ticket");
	expect_refused(s1.rdma_port, s1.src->session, c1->ticket,
		       "outsider: CONNECT naming session 1 with its ticket seen on the wire (already used)");
	expect_refused(s1.rdma_port, s1.src->session ^ 0x5a5a0000ull, zero,
		       "outsider: CONNECT naming a made-up session");

	/* 3. windows: one connection's key is useless on another QP */
	c1b = conn_open(&s1);
	if (!c1b) {
		result(false, "session 1: a second RDMA connection");
	} else if (c1->keys_flags & RP_RDMA_KEYS_MW) {
		/* own key first: a refused READ puts the QP in error */
		expect_data(c1b, want, "session 1: READ with connection 2's own key");
		expect_fail(c1b, &old, true, CQ_MS, false,
			    "session 1: READ with connection 1's window key on connection 2's QP");
	} else {
		printf("keyprobe: note: this device has no type-2 memory windows: keys are per session\n");
		expect_data(c1b, want, "session 1: READ on a second connection");
	}
	conn_close(c1b);
	c1b = NULL;

	/* 4. another session cannot use session 1's key */
	if (sess_open(&s2, &c2)) {
		result(false, "session 2: control session, RDMA connection and keys");
		sess_close(&s2);
		conn_close(c1);
		sess_close(&s1);
		goto out;
	}
	expect_fail(c2, &old, true, CQ_MS, false,
		    "session 2: READ with session 1's {addr, rkey} on session 2's QP");

	/* 5. session 1's control connection ends: the server must
	 * disconnect the QP and revoke the keys */
	rp_conn_close(&s1.src->ctl);
	result(wait_disconnected(c1, CM_MS),
	       "session 1: the server disconnected its QP when its control connection ended");
	/* the QP (RTS on our side) must not return data: an error
	 * completion, or none at all (rxe in Linux 6.1 gives none for a
	 * peer QP that is gone; teardown then flushes it) */
	if (qp_state(c1) == IBV_QPS_ERR)
		result(true,
		       "session 1: its QP is in the error state after the disconnect: the old key cannot be used on it");
	else
		expect_fail(c1, &old, false, 5000, true,
			    "session 1: READ with its old key on its own QP after the session ended");
	conn_close(c1);
	c1 = NULL;
	sess_close(&s1);
	/* a fresh QP: the refused READ above put c2's in error */
	conn_close(c2);
	c2 = conn_open(&s2);
	if (!c2) {
		result(false, "session 2: a second RDMA connection");
		sess_close(&s2);
		goto out;
	}
	if (c2->keys[0].chunks[0].rkey == old.rkey)
		printf("keyprobe: note: session 2 got the same rkey 0x%x as session 1\n",
		       old.rkey);
	expect_fail(c2, &old, true, CQ_MS, false,
		    "session 2: READ with session 1's old key after session 1 ended");

	/* 6. session 2's own key works on a fresh QP */
	c3 = conn_open(&s2);
	if (!c3)
		result(false, "session 2: a second RDMA connection");
	else
		expect_data(c3, want,
			    "session 2: READ with its own key on a fresh QP");
	conn_close(c3);
	conn_close(c2);
	sess_close(&s2);
out:
	rpage_tls_free(tls);
	printf("keyprobe: %s\n", failures ? "FAIL" : "PASS: keys work only where they were given");
	return failures ? 1 : 0;
}

#else /* !RPAGE_HAVE_RDMA */

int main(void)
{
	fprintf(stderr, "rpage-keyprobe: this build has no RDMA\n");
	return 77;
}
#endif
