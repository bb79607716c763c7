/* SPDX-License-Identifier: MIT */
/*
 * The RDMA side of the source: an rdma_cm listener whose connections can
 * only belong to a client that completed the TCP handshake. The client
 * names its control session in the CONNECT's private data; the server
 * accepts only live sessions. Each session gets its own protection domain
 * with every region registered REMOTE_READ only (split at the device's
 * max_mr_size), so its keys work on its own QPs only and stop working when
 * its control connection ends (the MRs are deregistered, the QPs
 * disconnected). After that the server does no work per page: clients
 * READ the regions one-sidedly.
 *
 * Threads: one CM thread ("rpage/srv/rdma") handles every rdma_cm event
 * and is stopped by an eventfd; control-connection threads call
 * srv_rdma_ctl / srv_rdma_session_end. `lock` protects the session list.
 */
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/inject.h"
#include "../common/proto_rdma.h"
#include "../common/rp.h"
#include "server_int.h"

#ifdef RPAGE_HAVE_RDMA
#include "../common/rdma.h"

struct srv_rid { /* one accepted (or accepting) RDMA connection */
	struct rdma_cm_id *id;
	uint8_t role;
	struct srv_rid *next;
};

struct srv_rmr {
	uint64_t off;     /* region offset of this chunk */
	struct ibv_mr *mr;
};

struct srv_rsess {
	uint64_t session;
	struct ibv_context *verbs; /* device its PD lives on */
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct srv_rmr **mrs;      /* per region: nmr[i] chunks */
	uint32_t *nmr;
	bool dead;                 /* control connection ended */
	bool registered;
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

static void sess_dereg(struct srv_rsess *s, unsigned nregions)
{
	for (unsigned i = 0; s->mrs && i < nregions; i++) {
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

/* Frees a session that has no connections left (lock held). */
static void sess_free(struct srv_rdma *r, struct srv_rsess *s)
{
	struct srv_rsess **pp;

	for (pp = &r->sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	sess_dereg(s, r->nregions);
	if (s->cq)
		ibv_destroy_cq(s->cq);
	if (s->pd)
		ibv_dealloc_pd(s->pd);
	free(s);
}

static struct srv_rsess *sess_find(struct srv_rdma *r, uint64_t session)
{
	for (struct srv_rsess *s = r->sessions; s; s = s->next)
		if (s->session == session && !s->dead)
			return s;
	return NULL;
}

/* Registers every region in @s's PD (lock held). */
static int sess_register(struct srv_rdma *r, struct srv_rsess *s,
			 const char *dev)
{
	struct ibv_device_attr da;
	uint64_t max_mr;
	int ret;

	if (ibv_query_device(s->verbs, &da))
		return errno ? -errno : -EIO;
	max_mr = da.max_mr_size ? da.max_mr_size : UINT64_MAX;
	if (r->max_mr_override && r->max_mr_override < max_mr)
		max_mr = r->max_mr_override;
	s->mrs = calloc(r->nregions ? r->nregions : 1, sizeof(*s->mrs));
	s->nmr = calloc(r->nregions ? r->nregions : 1, sizeof(*s->nmr));
	if (!s->mrs || !s->nmr)
		return -ENOMEM;
	for (unsigned i = 0; i < r->nregions; i++) {
		const struct srv_region *g = &r->regions[i];
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

			s->mrs[i][k].off = off;
			/* REMOTE_READ only: the source's memory is never
			 * written from the network */
			ret = rp_ibv_reg_mr(s->pd,
					    (char *)(r->rw_view[i] ? r->rw_view[i]
								   : g->map) + off,
					    len, IBV_ACCESS_REMOTE_READ,
					    &s->mrs[i][k].mr);
			if (ret == -EFAULT && !r->rw_view[i]) {
				r->rw_view[i] = rw_view(g);
				if (r->rw_view[i])
					ret = rp_ibv_reg_mr(
						s->pd, (char *)r->rw_view[i] + off,
						len, IBV_ACCESS_REMOTE_READ,
						&s->mrs[i][k].mr);
			}
			if (ret) {
				rp_err("registering region '%s' [0x%llx, +0x%llx) on %s failed: %s%s",
				       g->name, (unsigned long long)off,
				       (unsigned long long)len, dev,
				       strerror(-ret),
				       ret == -ENOMEM || ret == -EPERM
					       ? " (raise the locked-memory limit: ulimit -l)"
					       : "");
				return ret;
			}
		}
	}
	s->registered = true;
	return 0;
}

/*
 * Frees sessions without connections whose control connection has ended
 * (lock held): a CONNECT accepted just as its control connection closed
 * can leave one behind. Lock order: r->lock, then the server's lock.
 */
static void sweep(struct srv_rdma *r)
{
	struct srv_rsess *s, *next;

	for (s = r->sessions; s; s = next) {
		next = s->next;
		if (!s->ids && !srv_session_live(r->srv, s->session))
			sess_free(r, s);
	}
}

static void reject_id(struct rdma_cm_id *id, const char *peer, const char *why)
{
	rp_warn("RDMA connection from %s refused: %s", peer, why);
	rdma_reject(id, NULL, 0);
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

/* CONNECT_REQUEST on the CM thread: check, set up, accept. Returns true
 * when @id was accepted (it now belongs to a session). */
static bool on_connect(struct srv_rdma *r, struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	struct rp_rdma_conn cr;
	struct rdma_conn_param cp = { 0 };
	struct ibv_qp_init_attr qa = { 0 };
	struct ibv_device_attr da;
	struct srv_rsess *s;
	struct srv_rid *rid;
	bool created = false;
	const char *why = NULL, *dev = ibv_get_device_name(id->verbs->device);
	char peer[96];
	int ret;

	id_peer(id, peer, sizeof(peer));
	if (rp_rdma_conn_decode(ev->param.conn.private_data,
				ev->param.conn.private_data_len, &cr, &why)) {
		reject_id(id, peer, why);
		return false;
	}
	if (!srv_session_live(r->srv, cr.session)) {
		reject_id(id, peer, "it names no live session");
		return false;
	}
	rid = calloc(1, sizeof(*rid));
	if (!rid) {
		reject_id(id, peer, "out of memory");
		return false;
	}
	pthread_mutex_lock(&r->lock);
	sweep(r);
	s = sess_find(r, cr.session);
	if (s && s->verbs != id->verbs) {
		pthread_mutex_unlock(&r->lock);
		free(rid);
		reject_id(id, peer, "its session is bound to another RDMA device");
		return false;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			goto fail_nomem;
		created = true;
		s->session = cr.session;
		s->verbs = id->verbs;
		s->pd = ibv_alloc_pd(id->verbs);
		s->cq = s->pd ? ibv_create_cq(id->verbs, 4, NULL, NULL, 0) : NULL;
		s->next = r->sessions;
		r->sessions = s;
		if (!s->cq) {
			rp_err("RDMA: cannot allocate a PD/CQ on %s: %s", dev,
			       strerror(errno));
			goto fail;
		}
		ret = sess_register(r, s, dev);
		if (ret)
			goto fail;
		rp_info("RDMA: session %016llx: %u region%s registered on %s (remote read only)",
			(unsigned long long)s->session, r->nregions,
			r->nregions == 1 ? "" : "s", dev);
	}
	qa.send_cq = s->cq;
	qa.recv_cq = s->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = 1;
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
	rid->next = s->ids;
	s->ids = rid;
	id->context = s;
	pthread_mutex_unlock(&r->lock);
	rp_dbg("RDMA: accepted %s (%s) for session %016llx on %s", peer,
	       cr.role == RP_ROLE_URGENT ? "urgent" : "bulk",
	       (unsigned long long)cr.session, dev);
	return true;
fail_nomem:
	rp_err("RDMA: out of memory");
fail:
	if (created)
		sess_free(r, s);
	pthread_mutex_unlock(&r->lock);
	free(rid);
	rdma_reject(id, NULL, 0);
	return false;
}

/* Removes @id from its session; returns true when it was found (lock
 * held). Frees a dead session left without connections. */
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
		free(rid);
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
		rp_info("RDMA: cannot bind %s:%s (%s): serving TCP only",
			host && *host ? host : "*", port, strerror(-ret));
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
			rdma_disconnect(rid->id);
			rdma_destroy_qp(rid->id);
			rdma_destroy_id(rid->id);
			free(rid);
		}
		sess_free(r, s);
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

/* Encodes @s's key table into a malloc'ed *out (lock held). */
static int build_keys(struct srv_rdma *r, struct srv_rsess *s, uint8_t **out,
		      size_t *len)
{
	struct rp_rdma_region_keys *k = calloc(r->nregions ? r->nregions : 1,
					       sizeof(*k));
	uint8_t *buf = NULL;
	size_t n;
	int ret = -ENOMEM;

	if (!k)
		return -ENOMEM;
	for (unsigned i = 0; i < r->nregions; i++) {
		k[i].id = i;
		k[i].page_size = r->regions[i].page_size;
		k[i].length = r->regions[i].length;
		k[i].nchunks = s->nmr[i];
		k[i].chunks = calloc(s->nmr[i], sizeof(*k[i].chunks));
		if (!k[i].chunks)
			goto out;
		for (uint32_t c = 0; c < s->nmr[i]; c++) {
			struct ibv_mr *mr = s->mrs[i][c].mr;

			k[i].chunks[c].addr = (uint64_t)(uintptr_t)mr->addr;
			k[i].chunks[c].length = mr->length;
			k[i].chunks[c].rkey = mr->rkey;
		}
	}
	n = rp_rdma_keys_size(k, r->nregions);
	if (n > RP_RDMA_KEYS_MAX) {
		ret = -E2BIG;
		goto out;
	}
	buf = malloc(n);
	if (!buf)
		goto out;
	rp_rdma_keys_encode(buf, k, r->nregions);
	*out = buf;
	*len = n;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	rp_rdma_keys_free(k, r->nregions);
	return ret;
}

int srv_rdma_ctl(struct srv_rdma *r, uint64_t session, int fd,
		 const struct rp_hdr *h, const uint8_t *p, const char **why)
{
	(void)p;
	switch (h->type) {
	case RP_MSG_RDMA_INFO_REQ: {
		uint8_t b[RP_RDMA_INFO_LEN];
		struct rp_rdma_info in = { .port = r ? (uint16_t)r->port : 0 };

		if (h->len) {
			*why = "RDMA_INFO_REQ with a payload";
			return -EPROTO;
		}
		rp_rdma_info_encode(b, &in);
		return rp_send_frame(fd, RP_MSG_RDMA_INFO, h->tag, b, sizeof(b));
	}
	case RP_MSG_RDMA_KEYS_REQ: {
		struct srv_rsess *s;
		uint8_t *buf = NULL;
		size_t n = 0;
		int ret;

		if (h->len) {
			*why = "RDMA_KEYS_REQ with a payload";
			return -EPROTO;
		}
		if (!r) {
			*why = "RDMA_KEYS_REQ but this server has no RDMA";
			return -EPROTO;
		}
		/* the keys cannot go stale before they are sent: the
		 * session only ends on this very thread */
		pthread_mutex_lock(&r->lock);
		s = sess_find(r, session);
		if (!s || !s->registered) {
			pthread_mutex_unlock(&r->lock);
			*why = "RDMA_KEYS_REQ before any RDMA connection of this session";
			return -EPROTO;
		}
		ret = build_keys(r, s, &buf, &n);
		pthread_mutex_unlock(&r->lock);
		if (!ret)
			ret = rp_send_frame(fd, RP_MSG_RDMA_KEYS, h->tag, buf,
					    (uint32_t)n);
		free(buf);
		return ret;
	}
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
		/* the keys stop working now; the QPs go to the error state
		 * and the CM thread frees them on DISCONNECTED */
		sess_dereg(s, r->nregions);
		for (struct srv_rid *rid = s->ids; rid; rid = rid->next)
			rdma_disconnect(rid->id);
		if (!s->ids)
			sess_free(r, s);
		rp_dbg("RDMA: session %016llx ended", (unsigned long long)session);
	}
	pthread_mutex_unlock(&r->lock);
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

int srv_rdma_ctl(struct srv_rdma *r, uint64_t session, int fd,
		 const struct rp_hdr *h, const uint8_t *p, const char **why)
{
	struct rp_rdma_info in = { 0 };
	uint8_t b[RP_RDMA_INFO_LEN];

	(void)r, (void)session, (void)p;
	if (h->type == RP_MSG_RDMA_INFO_REQ && !h->len) {
		rp_rdma_info_encode(b, &in);
		return rp_send_frame(fd, RP_MSG_RDMA_INFO, h->tag, b, sizeof(b));
	}
	*why = "this server has no RDMA";
	return -EPROTO;
}

void srv_rdma_session_end(struct srv_rdma *r, uint64_t session)
{
	(void)r, (void)session;
}
#endif
