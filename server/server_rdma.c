/* SPDX-License-Identifier: MIT */
/*
 * The RDMA side of the source: an rdma_cm listener whose connections can
 * only belong to a client that is already authenticated on its TCP control
 * connection (TLS, when the server has credentials).
 *
 * How a client gets to READ, and why each step is there:
 *  1. On the control connection it asks for a ticket (RDMA_TICKET_REQ):
 *     16 random bytes, good for one CONNECT within 30 s. The session token
 *     alone is not enough to connect: CONNECT private data crosses the
 *     fabric in clear, and a ticket seen there has already been used.
 *  2. It CONNECTs naming its session and the ticket. The CM thread checks
 *     both, the caps (connections per session, in all), and creates the
 *     QP in the session's protection domain. Nothing slow happens on the
 *     CM thread: no memory registration.
 *  3. On the control connection it asks for the keys of that connection
 *     (RDMA_KEYS_REQ with the ticket). The control connection's thread
 *     registers the session's regions the first time (REMOTE_READ only,
 *     zero-based: the iova of every byte is its offset in the region, so
 *     no virtual address of this process ever leaves it) and, where the
 *     device has them (rxe does), binds type-2 memory windows for that
 *     QP alone: their rkeys work on no other QP, even of the same
 *     session, and carry a random key byte. Without windows the keys are
 *     the session's MRs, which work only on the session's own QPs.
 *  4. When a QP disconnects, its windows are deallocated (invalidated);
 *     when the control connection ends, every window and MR of the
 *     session goes and its QPs are disconnected.
 *
 * A session exists here only between its control connection's first
 * ticket and that connection's end, and both happen on the control
 * connection's thread, so no CONNECT can join a session that has ended
 * (the CM thread checks `dead` under the lock).
 *
 * Threads: one CM thread ("rpage/srv/rdma") handles every rdma_cm event
 * and is stopped by an eventfd; control-connection threads call
 * srv_rdma_ctl / srv_rdma_session_end. `lock` protects the session list,
 * the tickets, the connection lists and the QPs; a session's MRs are
 * written only by its control thread.
 */
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "../common/inject.h"
#include "../common/proto_rdma.h"
#include "../common/rp.h"
#include "../common/tls.h"
#include "server_int.h"

#ifdef RPAGE_HAVE_RDMA
#include "../common/rdma.h"

#define TICKET_NS (30ull * 1000000000ull) /* a ticket is good for 30 s */
#define QP_SEND_WR 16                   /* memory-window binds in flight */
#define BIND_MS 5000                    /* bound on waiting for binds */

struct srv_ticket {
	uint8_t t[RP_RDMA_TICKET_LEN];
	uint64_t expires_ns;
	struct srv_ticket *next;
};

struct srv_rid { /* one accepted RDMA connection */
	struct rdma_cm_id *id;
	uint8_t role;
	uint8_t ticket[RP_RDMA_TICKET_LEN];
	bool keyed;          /* its keys were handed out (once) */
	struct ibv_mw **mw;  /* windows bound to its QP (nmw) */
	uint32_t *mw_rkey;
	unsigned nmw;
	struct srv_rid *next;
};

struct srv_rmr {
	uint64_t off;     /* region offset of this chunk (= its iova) */
	struct ibv_mr *mr;
};

struct srv_rsess {
	uint64_t session;
	uint16_t *view;            /* server region of each of its ids */
	unsigned nview;
	struct ibv_context *verbs; /* device its PD lives on (first CONNECT) */
	struct ibv_pd *pd;
	struct ibv_cq *cq;         /* the QPs' CQ: only binds complete here */
	bool use_mw;               /* the device has type-2 windows */
	struct srv_rmr **mrs;      /* per view entry: nmr[i] chunks */
	uint32_t *nmr;
	bool dead;                 /* control connection ended */
	bool registered;
	struct srv_ticket *tickets;
	unsigned ntickets, nconns;
	struct srv_rid *ids;
	struct srv_rsess *next;
};

struct srv_rdma {
	struct rpage_server *srv;
	const struct srv_region *regions;
	unsigned nregions;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *listen_id;
	int port;
	int stop_efd;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	struct srv_rsess *sessions;
	unsigned nconns, ntickets;  /* in all (lock) */
	unsigned max_total, max_per_session;
	uint64_t max_mr_override; /* tests: RP_INJECT_RDMA_MAX_MR */
	void **rw_view;            /* per region: see rw_view() */
};

/*
 * Kernels before 6.2 pin the pages of every MR for writing (FOLL_FORCE),
 * which a read-only shared mapping refuses with EFAULT. For those, the
 * region gets a second, writable shared view of the same file (the same
 * page cache: no copy), used only to register it; the MR itself still
 * allows remote READ only and nothing on this host writes through the
 * view. When the file cannot be reopened for writing, a private view is
 * the last resort: its pages are copied when pinned (a snapshot at
 * registration time, which post-copy's frozen source allows).
 */
static void *rw_view(const struct srv_region *g)
{
	char path[64];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", g->fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		p = mmap(NULL, g->length, PROT_READ | PROT_WRITE, MAP_SHARED,
			 fd, 0);
		close(fd);
		if (p != MAP_FAILED) {
			rp_info("RDMA: region '%s': this kernel cannot register read-only mappings; registering a shared writable view (the MR stays remote-read only)",
				g->name);
			return p;
		}
	}
	p = mmap(NULL, g->length, PROT_READ, MAP_PRIVATE, g->fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	rp_warn("RDMA: region '%s': this kernel cannot register read-only mappings and %s cannot be opened for writing: registering a private copy (uses memory; later changes to the file are not seen)",
		g->name, g->name);
	return p;
}


/* Deallocates @rid's windows: their rkeys stop working now (lock held). */
static void rid_unbind(struct srv_rid *rid)
{
	for (unsigned i = 0; i < rid->nmw; i++)
		if (rid->mw[i])
			ibv_dealloc_mw(rid->mw[i]);
	free(rid->mw);
	free(rid->mw_rkey);
	rid->mw = NULL;
	rid->mw_rkey = NULL;
	rid->nmw = 0;
}

static void sess_dereg(struct srv_rsess *s)
{
	for (unsigned i = 0; s->mrs && i < s->nview; i++) {
		for (uint32_t k = 0; s->mrs[i] && k < s->nmr[i]; k++)
			if (s->mrs[i][k].mr)
				rp_ibv_dereg_mr(s->mrs[i][k].mr);
		free(s->mrs[i]);
	}
	free(s->mrs);
	free(s->nmr);
	s->mrs = NULL;
	s->nmr = NULL;
	s->registered = false;
}

static void tickets_free(struct srv_rdma *r, struct srv_rsess *s)
{
	while (s->tickets) {
		struct srv_ticket *t = s->tickets;

		s->tickets = t->next;
		memset(t, 0, sizeof(*t));
		free(t);
	}
	r->ntickets -= s->ntickets;
	s->ntickets = 0;
}

/* Frees a session that has no connections left (lock held). */
static void sess_free(struct srv_rdma *r, struct srv_rsess *s)
{
	struct srv_rsess **pp;

	for (pp = &r->sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	tickets_free(r, s);
	sess_dereg(s);
	if (s->cq)
		ibv_destroy_cq(s->cq);
	if (s->pd)
		ibv_dealloc_pd(s->pd);
	free(s->view);
	free(s);
}

static struct srv_rsess *sess_find(struct srv_rdma *r, uint64_t session)
{
	for (struct srv_rsess *s = r->sessions; s; s = s->next)
		if (s->session == session && !s->dead)
			return s;
	return NULL;
}

/* Constant-time comparison of two tickets. */
static bool ticket_eq(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;

	for (unsigned i = 0; i < RP_RDMA_TICKET_LEN; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* Drops expired tickets of @s (lock held). */
static void tickets_expire(struct srv_rdma *r, struct srv_rsess *s,
			   uint64_t now)
{
	struct srv_ticket **pp = &s->tickets, *t;

	while ((t = *pp)) {
		if (t->expires_ns <= now) {
			*pp = t->next;
			free(t);
			s->ntickets--;
			r->ntickets--;
		} else {
			pp = &t->next;
		}
	}
}

/* Takes @tk out of @s's tickets: true when it was there (lock held). */
static bool ticket_take(struct srv_rdma *r, struct srv_rsess *s,
			const uint8_t *tk)
{
	struct srv_ticket **pp, *t;

	tickets_expire(r, s, rp_now_ns());
	for (pp = &s->tickets; (t = *pp); pp = &t->next) {
		if (!ticket_eq(t->t, tk))
			continue;
		*pp = t->next;
		free(t);
		s->ntickets--;
		r->ntickets--;
		return true;
	}
	return false;
}

/* Registers every region of @s's view in its PD, zero-based. Runs on the
 * control connection's thread without the lock: only that thread writes
 * the MRs, and the PD lives until the session is dead, which only that
 * thread decides. */
static int sess_register(struct srv_rdma *r, struct srv_rsess *s)
{
	const char *dev = ibv_get_device_name(s->verbs->device);
	/* with windows the MR itself grants no remote access at all: only
	 * the windows bound to one QP each do */
	int access = s->use_mw ? IBV_ACCESS_MW_BIND : IBV_ACCESS_REMOTE_READ;
	struct ibv_device_attr da;
	uint64_t max_mr;
	int ret;

	if (ibv_query_device(s->verbs, &da))
		return errno ? -errno : -EIO;
	max_mr = da.max_mr_size ? da.max_mr_size : UINT64_MAX;
	if (r->max_mr_override && r->max_mr_override < max_mr)
		max_mr = r->max_mr_override;
	s->mrs = calloc(s->nview ? s->nview : 1, sizeof(*s->mrs));
	s->nmr = calloc(s->nview ? s->nview : 1, sizeof(*s->nmr));
	if (!s->mrs || !s->nmr)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nview; i++) {
		unsigned gi = s->view[i];
		const struct srv_region *g = &r->regions[gi];
		uint64_t step = max_mr - max_mr % g->page_size;
		uint64_t n;

		if (step == 0)
			step = g->page_size;
		/* not RP_DIV_ROUND_UP: step may be close to 2^64 */
		n = g->length / step + (g->length % step != 0);
		if (n > RP_RDMA_MAX_CHUNKS) {
			rp_err("region '%s' (%llu bytes) would need %llu memory regions on %s (max_mr_size %llu)",
			       g->name, (unsigned long long)g->length,
			       (unsigned long long)n, dev,
			       (unsigned long long)max_mr);
			return -E2BIG;
		}
		s->mrs[i] = calloc(n, sizeof(**s->mrs));
		if (!s->mrs[i])
			return -ENOMEM;
		s->nmr[i] = (uint32_t)n;
		for (uint64_t k = 0; k < n; k++) {
			uint64_t off = k * step;
			uint64_t len = RP_MIN(step, g->length - off);
			char *base;

			s->mrs[i][k].off = off;
			pthread_mutex_lock(&r->lock); /* rw_view is shared */
			base = r->rw_view[gi] ? r->rw_view[gi] : g->map;
			pthread_mutex_unlock(&r->lock);
			/* remote READ only: the source's memory is never
			 * written from the network; iova = region offset */
			ret = rp_ibv_reg_mr_iova(s->pd, base + off, len, off,
						 access, &s->mrs[i][k].mr);
			if (ret == -EFAULT) {
				pthread_mutex_lock(&r->lock);
				if (!r->rw_view[gi])
					r->rw_view[gi] = rw_view(g);
				base = r->rw_view[gi];
				pthread_mutex_unlock(&r->lock);
				if (base)
					ret = rp_ibv_reg_mr_iova(
						s->pd, base + off, len, off,
						access, &s->mrs[i][k].mr);
			}
			if (ret) {
				char hint[512] = "";

				if (ret == -ENOMEM || ret == -EPERM)
					rp_memlock_hint(len, hint, sizeof(hint));
				rp_err("registering region '%s' [0x%llx, +0x%llx) on %s failed: %s%s%s",
				       g->name, (unsigned long long)off,
				       (unsigned long long)len, dev,
				       strerror(-ret), *hint ? ": " : "", hint);
				return ret;
			}
		}
	}
	s->registered = true;
	rp_info("RDMA: session %016llx: %u region%s registered on %s (remote read only, zero-based%s)",
		(unsigned long long)s->session, s->nview,
		s->nview == 1 ? "" : "s", dev,
		s->use_mw ? ", per-connection memory windows" : "");
	return 0;
}

/* Binds one type-2 window per chunk of every region to @rid's QP and
 * waits for the binds (lock held: the QP cannot go meanwhile). */
static int rid_bind(struct srv_rsess *s, struct srv_rid *rid)
{
	unsigned total = 0, posted = 0, done = 0, w = 0;
	struct ibv_wc wc[16];
	uint64_t deadline = rp_now_ns() + BIND_MS * 1000000ull;
	int ret = 0;

	for (unsigned i = 0; i < s->nview; i++)
		total += s->nmr[i];
	rid->mw = calloc(total ? total : 1, sizeof(*rid->mw));
	rid->mw_rkey = calloc(total ? total : 1, sizeof(*rid->mw_rkey));
	if (!rid->mw || !rid->mw_rkey)
		return -ENOMEM;
	rid->nmw = total;
	for (unsigned i = 0; i < s->nview; i++) {
		for (uint32_t k = 0; k < s->nmr[i]; k++, w++) {
			struct ibv_mr *mr = s->mrs[i][k].mr;
			struct ibv_send_wr wr = { 0 }, *bad = NULL;
			uint8_t key;

			rid->mw[w] = ibv_alloc_mw(s->pd, IBV_MW_TYPE_2);
			if (!rid->mw[w])
				return errno ? -errno : -ENOMEM;
			if (getrandom(&key, 1, 0) != 1)
				return -EIO;
			/* a key byte nobody can predict: ReDMArk guessed
			 * rkeys that only counted up */
			rid->mw_rkey[w] = (rid->mw[w]->rkey & ~0xffu) | key;
			wr.wr_id = w;
			wr.opcode = IBV_WR_BIND_MW;
			wr.send_flags = IBV_SEND_SIGNALED;
			wr.bind_mw.mw = rid->mw[w];
			wr.bind_mw.rkey = rid->mw_rkey[w];
			wr.bind_mw.bind_info.mr = mr;
			wr.bind_mw.bind_info.addr = s->mrs[i][k].off;
			wr.bind_mw.bind_info.length = mr->length;
			wr.bind_mw.bind_info.mw_access_flags =
				IBV_ACCESS_REMOTE_READ;
			while (posted - done >= QP_SEND_WR && !ret) {
				int n = rp_ibv_poll_cq(s->cq, 16, wc);

				if (n < 0)
					return n;
				for (int c = 0; c < n; c++)
					if (wc[c].status != IBV_WC_SUCCESS)
						ret = rp_wc_errno(wc[c].status);
				done += (unsigned)n;
				if (!n && rp_now_ns() > deadline)
					return -ETIMEDOUT;
			}
			if (ret)
				return ret;
			ret = rp_ibv_post_send(rid->id->qp, &wr, &bad);
			if (ret)
				return ret;
			posted++;
		}
	}
	while (done < posted) {
		int n = rp_ibv_poll_cq(s->cq, 16, wc);

		if (n < 0)
			return n;
		for (int c = 0; c < n; c++)
			if (wc[c].status != IBV_WC_SUCCESS && !ret)
				ret = rp_wc_errno(wc[c].status);
		done += (unsigned)n;
		if (!n && rp_now_ns() > deadline)
			return -ETIMEDOUT;
	}
	return ret;
}

static void id_peer(struct rdma_cm_id *id, char *buf, size_t len)
{
	struct sockaddr *sa = rdma_get_peer_addr(id);
	char h[64] = "?", p[16] = "?";

	if (sa)
		getnameinfo(sa, sizeof(struct sockaddr_in6), h, sizeof(h), p,
			    sizeof(p), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(buf, len, "%s:%s", h, p);
}

static void reject_id(struct srv_rdma *r, struct rdma_cm_id *id,
		      const char *peer, const char *why)
{
	srv_refused(r->srv, SRV_REFUSE_RDMA);
	rp_warn("RDMA connection from %s refused: %s", peer, why);
	rdma_reject(id, NULL, 0);
}

/* The PD and CQ of @s on @id's device, at its first CONNECT (lock held):
 * cheap, unlike registration. */
static int sess_verbs(struct srv_rsess *s, struct rdma_cm_id *id)
{
	struct ibv_device_attr da;

	s->verbs = id->verbs;
	s->pd = ibv_alloc_pd(id->verbs);
	if (!s->pd)
		return errno ? -errno : -ENOMEM;
	s->cq = ibv_create_cq(id->verbs, 64, NULL, NULL, 0);
	if (!s->cq)
		return errno ? -errno : -ENOMEM;
	if (!ibv_query_device(id->verbs, &da))
		s->use_mw = (da.device_cap_flags &
			     (IBV_DEVICE_MEM_WINDOW_TYPE_2A |
			      IBV_DEVICE_MEM_WINDOW_TYPE_2B)) != 0;
	return 0;
}

/* CONNECT_REQUEST on the CM thread: check, set up, accept. Returns true
 * when @id was accepted (it now belongs to a session). Everything is
 * decided under the lock, so the session cannot end in between. */
static bool on_connect(struct srv_rdma *r, struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	struct rp_rdma_conn cr;
	struct rdma_conn_param cp = { 0 };
	struct ibv_qp_init_attr qa = { 0 };
	struct ibv_device_attr da;
	struct srv_rsess *s;
	struct srv_rid *rid;
	const char *why = NULL, *dev = ibv_get_device_name(id->verbs->device);
	char peer[96];
	int ret;

	id_peer(id, peer, sizeof(peer));
	if (rp_rdma_conn_decode(ev->param.conn.private_data,
				ev->param.conn.private_data_len, &cr, &why)) {
		reject_id(r, id, peer, why);
		return false;
	}
	rid = calloc(1, sizeof(*rid));
	if (!rid) {
		reject_id(r, id, peer, "out of memory");
		return false;
	}
	pthread_mutex_lock(&r->lock);
	s = sess_find(r, cr.session);
	if (!s)
		why = "it names no live session";
	else if (!ticket_take(r, s, cr.ticket))
		why = "its ticket is unknown, used or expired (tickets come from the authenticated control connection, one per connection)";
	else if (s->verbs && s->verbs != id->verbs)
		why = "its session is bound to another RDMA device";
	else if (s->nconns >= r->max_per_session)
		why = "its session has as many RDMA connections as allowed";
	else if (r->nconns >= r->max_total)
		why = "the server has as many RDMA connections as allowed";
	if (why) {
		pthread_mutex_unlock(&r->lock);
		free(rid);
		reject_id(r, id, peer, why);
		return false;
	}
	if (!s->pd) {
		ret = sess_verbs(s, id);
		if (ret) {
			rp_err("RDMA: cannot allocate a PD/CQ on %s: %s", dev,
			       strerror(-ret));
			goto fail;
		}
	}
	qa.send_cq = s->cq;
	qa.recv_cq = s->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = QP_SEND_WR;
	qa.cap.max_recv_wr = 1;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(id, s->pd, &qa)) {
		rp_err("RDMA: cannot create a QP on %s for %s: %s", dev, peer,
		       strerror(errno));
		goto fail;
	}
	if (ibv_query_device(id->verbs, &da))
		memset(&da, 0, sizeof(da));
	/* the client READs: answer as many at once as its initiator depth.
	 * The event states the request from our side: its responder
	 * resources are what the client asked to initiate. Zero here would
	 * leave the client unable to issue any READ. */
	cp.responder_resources = (uint8_t)RP_MAX(1, RP_MIN(
		(int)ev->param.conn.responder_resources, da.max_qp_rd_atom));
	cp.initiator_depth = 0;
	cp.rnr_retry_count = 7;
	if (rdma_accept(id, &cp)) {
		rp_err("RDMA: accepting %s failed: %s", peer, strerror(errno));
		rdma_destroy_qp(id);
		goto fail;
	}
	rid->id = id;
	rid->role = cr.role;
	memcpy(rid->ticket, cr.ticket, sizeof(rid->ticket));
	rid->next = s->ids;
	s->ids = rid;
	s->nconns++;
	r->nconns++;
	id->context = s;
	pthread_mutex_unlock(&r->lock);
	rp_dbg("RDMA: accepted %s (%s) for session %016llx on %s", peer,
	       cr.role == RP_ROLE_URGENT ? "urgent" : "bulk",
	       (unsigned long long)cr.session, dev);
	return true;
fail:
	pthread_mutex_unlock(&r->lock);
	free(rid);
	rdma_reject(id, NULL, 0);
	return false;
}

/* Removes @id from its session; returns true when it was found (lock
 * held). Its windows go first (their keys stop working), then its QP;
 * frees a dead session left without connections. */
static bool unlink_id(struct srv_rdma *r, struct rdma_cm_id *id)
{
	struct srv_rsess *s = id->context;
	struct srv_rid **pp, *rid;

	if (!s)
		return false;
	for (pp = &s->ids; (rid = *pp); pp = &rid->next) {
		if (rid->id != id)
			continue;
		*pp = rid->next;
		rid_unbind(rid);
		free(rid);
		s->nconns--;
		r->nconns--;
		id->context = NULL;
		/* the QP uses the session's PD and CQ: destroy it first, or
		 * freeing them fails (EBUSY) and both leak */
		if (id->qp)
			rdma_destroy_qp(id);
		if (s->dead && !s->ids)
			sess_free(r, s);
		return true;
	}
	return false;
}

static void on_event(struct srv_rdma *r, struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	enum rdma_cm_event_type type = ev->event;
	bool destroy = false;

	switch (type) {
	case RDMA_CM_EVENT_CONNECT_REQUEST:
		destroy = !on_connect(r, ev);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_REJECTED:
		pthread_mutex_lock(&r->lock);
		destroy = unlink_id(r, id) || id != r->listen_id;
		pthread_mutex_unlock(&r->lock);
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		rp_err("RDMA: the device was removed");
		break;
	default:
		rp_dbg("RDMA: ignoring rdma_cm event %s", rdma_event_str(type));
		break;
	}
	rdma_ack_cm_event(ev);
	if (destroy && id != r->listen_id) {
		if (id->qp)
			rdma_destroy_qp(id);
		rdma_destroy_id(id);
	}
}

static void *cm_main(void *arg)
{
	struct srv_rdma *r = arg;
	struct pollfd pf[2] = { { r->ch->fd, POLLIN, 0 },
				{ r->stop_efd, POLLIN, 0 } };

	rp_thread_name("rpage/srv/rdma");
	for (;;) {
		struct rdma_cm_event *ev;

		if (rdma_get_cm_event(r->ch, &ev) == 0) {
			on_event(r, ev);
			continue;
		}
		if (errno != EAGAIN && errno != EINTR) {
			rp_err("RDMA: reading rdma_cm events: %s",
			       strerror(errno));
			break;
		}
		if (poll(pf, 2, -1) < 0 && errno != EINTR) {
			rp_err("poll: %s", strerror(errno));
			break;
		}
		if (pf[1].revents)
			break;
	}
	return NULL;
}

int srv_rdma_listen(struct rpage_server *srv, const struct srv_region *regions,
		    unsigned nregions, const char *host, const char *port,
		    struct srv_rdma **out)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM },
			*ai = NULL;
	struct srv_rdma *r;
	const char *why;
	char dev[64];
	int ret;

	ret = rp_rdma_find_device(NULL, dev, sizeof(dev), &why);
	if (ret) {
		rp_info("RDMA: %s: serving TCP only", why);
		return ret;
	}
	ret = getaddrinfo(host && *host ? host : NULL, port, &hints, &ai);
	if (ret) {
		rp_err("RDMA: cannot resolve %s:%s: %s", host, port,
		       gai_strerror(ret));
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		freeaddrinfo(ai);
		return -ENOMEM;
	}
	r->srv = srv;
	r->max_total = 1024;
	r->max_per_session = 64;
	r->regions = regions;
	r->nregions = nregions;
	r->rw_view = calloc(nregions ? nregions : 1, sizeof(*r->rw_view));
	if (!r->rw_view) {
		free(r);
		freeaddrinfo(ai);
		return -ENOMEM;
	}
	r->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&r->lock, NULL);
	r->max_mr_override = rp_inject_value(RP_INJECT_RDMA_MAX_MR);
	r->ch = rdma_create_event_channel();
	if (!r->ch || r->stop_efd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = rp_set_nonblock(r->ch->fd, true);
	if (!ret)
		ret = rp_rdma_err(rdma_create_id(r->ch, &r->listen_id, r,
						 RDMA_PS_TCP));
	if (ret)
		goto fail;
	ret = rp_rdma_err(rdma_bind_addr(r->listen_id, ai->ai_addr));
	if (ret) {
		rp_info("RDMA: cannot bind %s:%s (%s%s): serving TCP only",
			host && *host ? host : "*", port, strerror(-ret),
			ret == -EACCES ? "; a port below 1024 needs CAP_NET_BIND_SERVICE" : "");
		if (ret == -EADDRNOTAVAIL || ret == -ENODEV)
			ret = -ENODEV;
		goto fail;
	}
	ret = rp_rdma_err(rdma_listen(r->listen_id, 64));
	if (ret) {
		rp_err("RDMA: listen on %s:%s failed: %s",
		       host && *host ? host : "*", port, strerror(-ret));
		goto fail;
	}
	r->port = ntohs(rdma_get_src_port(r->listen_id));
	freeaddrinfo(ai);
	*out = r;
	return 0;
fail:
	freeaddrinfo(ai);
	srv_rdma_free(r);
	return ret;
}

int srv_rdma_port(const struct srv_rdma *r)
{
	return r ? r->port : -ENOTCONN;
}

int srv_rdma_start(struct srv_rdma *r)
{
	int ret;

	if (!r || r->running)
		return 0;
	ret = -pthread_create(&r->thread, NULL, cm_main, r);
	if (!ret)
		r->running = true;
	return ret;
}

void srv_rdma_set_limits(struct srv_rdma *r, unsigned total,
			 unsigned per_session)
{
	if (!r)
		return;
	r->max_total = total;
	r->max_per_session = per_session;
}

unsigned srv_rdma_conns(struct srv_rdma *r)
{
	unsigned n;

	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	n = r->nconns;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void srv_rdma_stop(struct srv_rdma *r)
{
	if (!r)
		return;
	if (r->running) {
		rp_efd_signal(r->stop_efd);
		pthread_join(r->thread, NULL);
		r->running = false;
	}
	/* the CM thread is gone: tear every connection down here */
	pthread_mutex_lock(&r->lock);
	while (r->sessions) {
		struct srv_rsess *s = r->sessions;

		while (s->ids) {
			struct srv_rid *rid = s->ids;

			s->ids = rid->next;
			rid_unbind(rid);
			rdma_disconnect(rid->id);
			rdma_destroy_qp(rid->id);
			rdma_destroy_id(rid->id);
			free(rid);
			s->nconns--;
			r->nconns--;
		}
		sess_free(r, s);
	}
	pthread_mutex_unlock(&r->lock);
}

/* The keys of @rid for its session's regions, zero-based (lock held). */
static int build_keys(struct srv_rsess *s, struct srv_rid *rid,
		      const struct srv_region *regions, uint8_t **out,
		      size_t *len)
{
	struct rp_rdma_region_keys *k = calloc(s->nview ? s->nview : 1,
					       sizeof(*k));
	uint8_t *buf = NULL;
	unsigned w = 0;
	size_t n;
	int ret = -ENOMEM;

	if (!k)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nview; i++) {
		const struct srv_region *g = &regions[s->view[i]];

		k[i].id = i;
		k[i].page_size = g->page_size;
		k[i].length = g->length;
		k[i].nchunks = s->nmr[i];
		k[i].chunks = calloc(s->nmr[i], sizeof(*k[i].chunks));
		if (!k[i].chunks)
			goto out;
		for (uint32_t c = 0; c < s->nmr[i]; c++, w++) {
			struct ibv_mr *mr = s->mrs[i][c].mr;

			k[i].chunks[c].addr = s->mrs[i][c].off;
			k[i].chunks[c].length = mr->length;
			k[i].chunks[c].rkey = rid->nmw ? rid->mw_rkey[w]
						       : mr->rkey;
		}
	}
	n = rp_rdma_keys_size(k, s->nview);
	if (n > RP_RDMA_KEYS_MAX) {
		ret = -E2BIG;
		goto out;
	}
	buf = malloc(n);
	if (!buf)
		goto out;
	rp_rdma_keys_encode(buf, k, s->nview, rid->nmw ? RP_RDMA_KEYS_MW : 0);
	*out = buf;
	*len = n;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	rp_rdma_keys_free(k, s->nview);
	return ret;
}

static struct srv_rid *rid_by_ticket(struct srv_rsess *s, const uint8_t *tk)
{
	for (struct srv_rid *rid = s->ids; rid; rid = rid->next)
		if (ticket_eq(rid->ticket, tk))
			return rid;
	return NULL;
}

/* RDMA_TICKET_REQ: a ticket for one CONNECT of @session. */
static int ctl_ticket(struct srv_rdma *r, uint64_t session,
		      const struct srv_view *view, struct rp_conn *c,
		      uint64_t tag)
{
	struct srv_rsess *s;
	struct srv_ticket *t = calloc(1, sizeof(*t));
	uint8_t tk[RP_RDMA_TICKET_LEN];
	int ret;

	if (!t)
		return -ENOMEM;
	if (getrandom(t->t, sizeof(t->t), 0) != sizeof(t->t)) {
		free(t);
		return -EIO;
	}
	t->expires_ns = rp_now_ns() + TICKET_NS;
	pthread_mutex_lock(&r->lock);
	s = sess_find(r, session);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (s)
			s->view = malloc((view->n ? view->n : 1) *
					 sizeof(*s->view));
		if (!s || !s->view) {
			pthread_mutex_unlock(&r->lock);
			if (s)
				free(s);
			free(t);
			return -ENOMEM;
		}
		memcpy(s->view, view->idx, view->n * sizeof(*s->view));
		s->nview = view->n;
		s->session = session;
		s->next = r->sessions;
		r->sessions = s;
	}
	tickets_expire(r, s, rp_now_ns());
	if (s->nconns + s->ntickets >= r->max_per_session ||
	    r->nconns + r->ntickets >= r->max_total) {
		bool mine = s->nconns + s->ntickets >= r->max_per_session;
		char msg[128];
		uint8_t b[8 + sizeof(msg)];
		size_t n;

		pthread_mutex_unlock(&r->lock);
		free(t);
		/* a limit, not bad input: refuse this one, keep the session */
		snprintf(msg, sizeof(msg), "no more RDMA connections: %u %s",
			 mine ? r->max_per_session : r->max_total,
			 mine ? "per session" : "in all");
		srv_refused(r->srv, SRV_REFUSE_RDMA);
		rp_warn("RDMA: session %016llx: ticket refused: %s",
			(unsigned long long)session, msg);
		n = rp_error_encode(b, EBUSY, msg);
		return rp_conn_send_frame(c, RP_MSG_ERROR, tag, b, (uint32_t)n);
	}
	t->next = s->tickets;
	s->tickets = t;
	s->ntickets++;
	r->ntickets++;
	memcpy(tk, t->t, sizeof(tk));
	pthread_mutex_unlock(&r->lock);
	ret = rp_conn_send_frame(c, RP_MSG_RDMA_TICKET, tag, tk, sizeof(tk));
	memset(tk, 0, sizeof(tk));
	return ret;
}

/* RDMA_KEYS_REQ: registers the session's memory (the first time), binds
 * windows to the connection's QP, sends its keys. */
static int ctl_keys(struct srv_rdma *r, uint64_t session, struct rp_conn *c,
		    uint64_t tag, const uint8_t *tk, const char **why)
{
	struct srv_rsess *s;
	struct srv_rid *rid;
	uint8_t *buf = NULL;
	size_t n = 0;
	int ret;

	pthread_mutex_lock(&r->lock);
	s = sess_find(r, session);
	rid = s ? rid_by_ticket(s, tk) : NULL;
	if (!rid || rid->keyed) {
		pthread_mutex_unlock(&r->lock);
		*why = "RDMA_KEYS_REQ names no RDMA connection of this session that has no keys yet";
		return -EPROTO;
	}
	pthread_mutex_unlock(&r->lock);
	/* registration, off the CM thread and without the lock */
	if (!s->registered) {
		ret = sess_register(r, s);
		if (ret) {
			sess_dereg(s);
			return ret;
		}
	}
	pthread_mutex_lock(&r->lock);
	rid = rid_by_ticket(s, tk); /* it may have disconnected meanwhile */
	if (!rid) {
		pthread_mutex_unlock(&r->lock);
		*why = "the RDMA connection went away before its keys were sent";
		return -EPROTO;
	}
	rid->keyed = true;
	ret = s->use_mw ? rid_bind(s, rid) : 0;
	if (ret) {
		rp_err("RDMA: session %016llx: binding memory windows failed: %s",
		       (unsigned long long)session, strerror(-ret));
		rid_unbind(rid);
	}
	if (!ret)
		ret = build_keys(s, rid, r->regions, &buf, &n);
	pthread_mutex_unlock(&r->lock);
	if (!ret)
		ret = rp_conn_send_frame(c, RP_MSG_RDMA_KEYS, tag, buf,
					 (uint32_t)n);
	free(buf);
	return ret;
}

int srv_rdma_ctl(struct srv_rdma *r, uint64_t session,
		 const struct srv_view *view, struct rp_conn *c,
		 const struct rp_hdr *h, const uint8_t *p, const char **why)
{
	switch (h->type) {
	case RP_MSG_RDMA_INFO_REQ: {
		uint8_t b[RP_RDMA_INFO_LEN];
		struct rp_rdma_info in = { .port = r ? (uint16_t)r->port : 0 };

		if (h->len) {
			*why = "RDMA_INFO_REQ with a payload";
			return -EPROTO;
		}
		rp_rdma_info_encode(b, &in);
		return rp_conn_send_frame(c, RP_MSG_RDMA_INFO, h->tag, b,
					  sizeof(b));
	}
	case RP_MSG_RDMA_TICKET_REQ:
		if (h->len) {
			*why = "RDMA_TICKET_REQ with a payload";
			return -EPROTO;
		}
		if (!r) {
			*why = "RDMA_TICKET_REQ but this server has no RDMA";
			return -EPROTO;
		}
		return ctl_ticket(r, session, view, c, h->tag);
	case RP_MSG_RDMA_KEYS_REQ:
		if (h->len != RP_RDMA_TICKET_LEN) {
			*why = "RDMA_KEYS_REQ without a ticket";
			return -EPROTO;
		}
		if (!r) {
			*why = "RDMA_KEYS_REQ but this server has no RDMA";
			return -EPROTO;
		}
		return ctl_keys(r, session, c, h->tag, p, why);
	default:
		*why = "unexpected RDMA message";
		return -EPROTO;
	}
}

void srv_rdma_session_end(struct srv_rdma *r, uint64_t session)
{
	struct srv_rsess *s;

	if (!r || !session)
		return;
	pthread_mutex_lock(&r->lock);
	s = sess_find(r, session);
	if (s) {
		s->dead = true;
		tickets_free(r, s);
		/* the keys stop working now: windows, then MRs; the QPs go
		 * to the error state and the CM thread frees them on
		 * DISCONNECTED */
		for (struct srv_rid *rid = s->ids; rid; rid = rid->next)
			rid_unbind(rid);
		sess_dereg(s);
		for (struct srv_rid *rid = s->ids; rid; rid = rid->next)
			rdma_disconnect(rid->id);
		if (!s->ids)
			sess_free(r, s);
		rp_dbg("RDMA: session %016llx ended", (unsigned long long)session);
	}
	pthread_mutex_unlock(&r->lock);
}

void srv_rdma_free(struct srv_rdma *r)
{
	if (!r)
		return;
	srv_rdma_stop(r);
	if (r->listen_id)
		rdma_destroy_id(r->listen_id);
	if (r->ch)
		rdma_destroy_event_channel(r->ch);
	if (r->stop_efd >= 0)
		close(r->stop_efd);
	for (unsigned i = 0; i < r->nregions; i++)
		if (r->rw_view[i])
			munmap(r->rw_view[i], r->regions[i].length);
	free(r->rw_view);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

#else /* !RPAGE_HAVE_RDMA */

int srv_rdma_listen(struct rpage_server *s, const struct srv_region *regions,
		    unsigned nregions, const char *host, const char *port,
		    struct srv_rdma **out)
{
	(void)s, (void)regions, (void)nregions, (void)host, (void)port;
	(void)out;
	return -EPROTONOSUPPORT;
}

int srv_rdma_port(const struct srv_rdma *r)
{
	(void)r;
	return -ENOTCONN;
}

int srv_rdma_start(struct srv_rdma *r)
{
	(void)r;
	return 0;
}

void srv_rdma_stop(struct srv_rdma *r)
{
	(void)r;
}

void srv_rdma_free(struct srv_rdma *r)
{
	(void)r;
}

void srv_rdma_set_limits(struct srv_rdma *r, unsigned total,
			 unsigned per_session)
{
	(void)r, (void)total, (void)per_session;
}

unsigned srv_rdma_conns(struct srv_rdma *r)
{
	(void)r;
	return 0;
}

int srv_rdma_ctl(struct srv_rdma *r, uint64_t session,
		 const struct srv_view *view, struct rp_conn *c,
		 const struct rp_hdr *h, const uint8_t *p, const char **why)
{
	struct rp_rdma_info in = { 0 };
	uint8_t b[RP_RDMA_INFO_LEN];

	(void)r, (void)session, (void)p, (void)view;
	if (h->type == RP_MSG_RDMA_INFO_REQ && !h->len) {
		rp_rdma_info_encode(b, &in);
		return rp_conn_send_frame(c, RP_MSG_RDMA_INFO, h->tag, b,
					  sizeof(b));
	}
	*why = "this server has no RDMA";
	return -EPROTO;
}

void srv_rdma_session_end(struct srv_rdma *r, uint64_t session)
{
	(void)r, (void)session;
}
#endif
