/* SPDX-License-Identifier: MIT */
/*
 * The source side: exports regions and serves page requests, one thread per
 * connection. The server does no per-page bookkeeping: the destination
 * decides what to fetch and when (fault or fill), so the same regions can
 * be read by one-sided RDMA with no server CPU at all.
 *
 * Security: with credentials every connection starts with a TLS 1.3
 * handshake (common/tls.c) that must end, together with HELLO, before one
 * deadline; nothing about the regions leaves before that. An identity
 * sees only the regions it is allowed (its "view": its own region table,
 * numbered from 0). Without credentials the server only starts on a
 * loopback address, unless told it may be insecure. Connections are
 * capped in all and per peer address.
 *
 * Threads: the accept thread ("rpage/srv/acc") accepts, applies the caps
 * and starts one thread per connection ("rpage/srv/conn"), which runs
 * the handshake, the hello and the requests. `lock` protects the
 * connection list; statistics are atomics.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../common/net.h"
#include "../common/proto.h"
#include "../common/rp.h"
#include "../common/tls.h"
#include "server_int.h"

#define SRV_MAX_REGIONS RP_MAX_REGIONS
/* Defaults of struct rpage_server_limits. Threads are per connection:
 * bound them in all and per peer. */
#define SRV_MAX_CONNS 1024
#define SRV_MAX_CONNS_PER_PEER 64
#define SRV_HANDSHAKE_MS 10000   /* accept to HELLO_ACK, TLS included */
#define SRV_MAX_RDMA 1024
#define SRV_MAX_RDMA_PER_SESSION 64
#define SRV_RESUME_GRACE_MS 60000
#define SRV_MAX_PARKED 256 /* broken sessions kept for a resume */

struct srv_conn {
	struct rpage_server *srv;
	struct rp_conn conn;
	pthread_t thread;
	bool done;        /* thread finished; may be joined */
	uint8_t role;
	uint64_t session;
	uint64_t accepted_ns;
	bool bye;         /* control: the client ended the session (BYE) */
	bool superseded;  /* control: a resume took its session over */
	struct srv_view view; /* the regions this peer may read */
	char ip[48];      /* peer address without the port (per-peer cap) */
	struct srv_conn *next;
};

/* A session whose control connection broke: resumable until @expires. */
struct srv_parked {
	uint64_t session;
	uint64_t expires_ns;
	char identity[RP_MAX_IDENTITY + 1];
};

struct srv_rule { /* rpage_server_allow */
	char identity[RP_MAX_IDENTITY + 1];
	int region;       /* -1: every region */
};

struct rpage_server {
	struct srv_region regions[SRV_MAX_REGIONS];
	unsigned nregions;
	int listen_fd;
	int stop_efd;
	pthread_t accept_thread;
	bool running;
	pthread_mutex_t lock; /* conns list */
	struct srv_conn *conns;
	struct rpage_server_stats st; /* updated with atomics */
	uint64_t refused[SRV_REFUSE_N]; /* atomics */
	struct srv_rdma *rdma; /* RDMA listener, NULL without (server_rdma.c) */
	const struct rpage_tls *tls; /* NULL: plain TCP */
	bool insecure;        /* plain TCP beyond loopback was asked for */
	struct rpage_server_limits lim;
	struct srv_rule *rules;
	unsigned nrules;
	bool tls_logged;      /* the record layer in use was reported */
	struct srv_parked parked[SRV_MAX_PARKED]; /* under lock */
	unsigned nparked;
};

RP_EXPORT int rpage_server_new(struct rpage_server **out)
{
	struct rpage_server *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->listen_fd = -1;
	s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_efd < 0) {
		free(s);
		return -errno;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->lim = (struct rpage_server_limits){
		.max_conns = SRV_MAX_CONNS,
		.max_conns_per_peer = SRV_MAX_CONNS_PER_PEER,
		.handshake_ms = SRV_HANDSHAKE_MS,
		.max_rdma = SRV_MAX_RDMA,
		.max_rdma_per_session = SRV_MAX_RDMA_PER_SESSION,
		.resume_grace_ms = SRV_RESUME_GRACE_MS,
	};
	*out = s;
	return 0;
}

RP_EXPORT int rpage_server_set_tls(struct rpage_server *srv,
				   const struct rpage_tls *tls, int insecure)
{
	if (srv->running)
		return -EBUSY;
	srv->tls = tls;
	srv->insecure = insecure != 0;
	return 0;
}

RP_EXPORT int rpage_server_allow(struct rpage_server *srv,
				 const char *identity, const char *region)
{
	struct srv_rule *nr;
	int idx = -1;

	if (srv->running)
		return -EBUSY;
	if (!identity || !region ||
	    !rp_identity_valid(identity, strlen(identity))) {
		rp_err("authorization: '%s' is not a valid identity",
		       identity ? identity : "(null)");
		return -EINVAL;
	}
	if (strcmp(region, "*")) {
		for (unsigned i = 0; i < srv->nregions; i++)
			if (!strcmp(srv->regions[i].name, region))
				idx = (int)i;
		if (idx < 0) {
			rp_err("authorization: no region '%s' (add the regions first)",
			       region);
			return -ENOENT;
		}
	}
	nr = realloc(srv->rules, (srv->nrules + 1) * sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	srv->rules = nr;
	snprintf(nr[srv->nrules].identity, sizeof(nr->identity), "%s",
		 identity);
	nr[srv->nrules].region = idx;
	srv->nrules++;
	return 0;
}

RP_EXPORT int rpage_server_set_limits(struct rpage_server *srv,
				      const struct rpage_server_limits *l)
{
	if (srv->running)
		return -EBUSY;
	if (!l)
		return -EINVAL;
#define LIM(f, d) srv->lim.f = l->f ? l->f : (d)
	LIM(max_conns, SRV_MAX_CONNS);
	LIM(max_conns_per_peer, SRV_MAX_CONNS_PER_PEER);
	LIM(handshake_ms, SRV_HANDSHAKE_MS);
	LIM(max_rdma, SRV_MAX_RDMA);
	LIM(max_rdma_per_session, SRV_MAX_RDMA_PER_SESSION);
	LIM(resume_grace_ms, SRV_RESUME_GRACE_MS);
#undef LIM
	srv->lim.idle_ms = l->idle_ms;
	return 0;
}

static uint32_t fd_page_size(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) == 0 && sf.f_type == (typeof(sf.f_type))HUGETLBFS_MAGIC)
		return (uint32_t)sf.f_bsize;
	return RP_PAGE_4K;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/*
 * What a file region holds, as a 64-bit identity: its device, inode, size
 * and page size, and a fingerprint of its content (4 KiB at 17 places:
 * every sixteenth of the file and its last page). A restarted server on
 * the same, untouched file gives the same identity; a replaced file
 * (another inode) or one rewritten another, so a client never resumes
 * against different bytes. Not the change time: registering the file for
 * RDMA with memory windows pins it writable, which the kernel counts as a
 * change.
 */
static uint64_t fd_identity(int fd, const char *map, uint64_t length,
			    uint32_t page_size)
{
	uint64_t v[4] = { 0, 0, length, page_size }, h = 0xcbf29ce484222325ull;
	struct stat sb;

	if (fstat(fd, &sb) == 0) {
		v[0] = (uint64_t)sb.st_dev;
		v[1] = (uint64_t)sb.st_ino;
	}
	h = fnv1a(h, v, sizeof(v));
	for (unsigned i = 0; i <= 16 && length; i++) {
		uint64_t off = i < 16 ? length / 16 * i : length - RP_PAGE_4K;

		off &= ~(uint64_t)(RP_PAGE_4K - 1);
		h = fnv1a(h, map + off, RP_PAGE_4K);
	}
	return h ? h : 1;
}

/* 0 when a region named @name may still be added, else -errno. */
static int region_slot_free(const struct rpage_server *srv, const char *name)
{
	if (srv->running)
		return -EBUSY;
	for (unsigned i = 0; i < srv->nregions; i++)
		if (!strcmp(srv->regions[i].name, name))
			return -EEXIST;
	if (srv->nregions == SRV_MAX_REGIONS)
		return -ENOSPC;
	return 0;
}

RP_EXPORT int rpage_server_add_region_fd(struct rpage_server *srv,
					 const char *name, int fd,
					 uint64_t length, uint32_t page_size)
{
	struct srv_region *r;
	int dfd, ret;
	void *map;

	if (!name || !rp_valid_name(name, strlen(name))) {
		rp_err("region name '%s' is invalid: use 1-255 of [A-Za-z0-9._-]",
		       name ? name : "(null)");
		return -EINVAL;
	}
	if (!rp_is_pow2(page_size) || page_size < RP_PAGE_4K || length == 0 ||
	    length % page_size) {
		rp_err("region '%s': length %llu is zero or not a multiple of the page size %u",
		       name, (unsigned long long)length, page_size);
		return -EINVAL;
	}
	ret = region_slot_free(srv, name);
	if (ret)
		return ret;
	dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return -errno;
	/* Read-only shared mapping: the RDMA transport registers it, the TCP
	 * path sends from it where sendfile cannot be used (hugetlbfs). */
	map = mmap(NULL, length, PROT_READ, MAP_SHARED, dfd, 0);
	if (map == MAP_FAILED) {
		int e = -errno;

		rp_err("region '%s': mmap of %llu bytes failed: %s", name,
		       (unsigned long long)length, strerror(-e));
		close(dfd);
		return e;
	}
	r = &srv->regions[srv->nregions];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->fd = dfd;
	r->length = length;
	r->page_size = page_size;
	r->map = map;
	r->use_sendfile = page_size == RP_PAGE_4K;
	r->identity = fd_identity(dfd, map, length, page_size);
	return (int)srv->nregions++;
}

int rp_server_add_region_mem(struct rpage_server *srv, const char *name,
			     void *mem, uint64_t length, uint32_t page_size)
{
	struct srv_region *r;
	int ret;

	if (!name || !rp_valid_name(name, strlen(name)) || !mem ||
	    !rp_is_pow2(page_size) || page_size < RP_PAGE_4K || length == 0 ||
	    length % page_size)
		return -EINVAL;
	ret = region_slot_free(srv, name);
	if (ret)
		return ret;
	r = &srv->regions[srv->nregions];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->fd = -1; /* in-process memory: sent from the pointer */
	r->length = length;
	r->page_size = page_size;
	r->map = mem;
	r->use_sendfile = false;
	/* a new identity each time: this memory never outlives the process */
	if (getrandom(&r->identity, sizeof(r->identity), 0) != sizeof(r->identity))
		r->identity = rp_now_ns() ^ (uint64_t)(uintptr_t)mem;
	return (int)srv->nregions++;
}

RP_EXPORT int rpage_server_add_region(struct rpage_server *srv,
				      const char *name, const char *path)
{
	struct stat sb;
	int fd, ret;
	uint32_t ps;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -EACCES)
			rp_err("region '%s': cannot open %s: %s: it must be readable by uid %u, which this server runs as (its mode, its group, or an ACL: setfacl -m u:%u:r)",
			       name, path, strerror(errno), (unsigned)geteuid(),
			       (unsigned)geteuid());
		else
			rp_err("region '%s': cannot open %s: %s", name, path,
			       strerror(errno));
		return ret;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		rp_err("region '%s': %s is not a regular file", name, path);
		close(fd);
		return -EINVAL;
	}
	ps = fd_page_size(fd);
	if (sb.st_size <= 0 || (uint64_t)sb.st_size % ps) {
		rp_err("region '%s': %s has size %lld, not a positive multiple of its page size %u",
		       name, path, (long long)sb.st_size, ps);
		close(fd);
		return -EINVAL;
	}
	ret = rpage_server_add_region_fd(srv, name, fd, (uint64_t)sb.st_size,
					 ps);
	close(fd);
	return ret;
}

RP_EXPORT int rpage_server_listen(struct rpage_server *srv, const char *host,
				  const char *port)
{
	int fd;

	if (srv->listen_fd >= 0)
		return -EALREADY;
	fd = rp_tcp_listen(host, port, 128);
	if (fd < 0)
		return fd;
	srv->listen_fd = fd;
	return 0;
}

RP_EXPORT int rpage_server_port(const struct rpage_server *srv)
{
	return srv->listen_fd < 0 ? -ENOTCONN : rp_local_port(srv->listen_fd);
}

RP_EXPORT int rpage_server_listen_rdma(struct rpage_server *srv,
				       const char *host, const char *port)
{
	if (srv->rdma)
		return -EALREADY;
	if (srv->running)
		return -EBUSY;
	return srv_rdma_listen(srv, srv->regions, srv->nregions, host, port,
			       &srv->rdma);
}

RP_EXPORT int rpage_server_rdma_port(const struct rpage_server *srv)
{
	return srv_rdma_port(srv->rdma);
}

static void stat_add(uint64_t *v, uint64_t n)
{
	__atomic_fetch_add(v, n, __ATOMIC_RELAXED);
}

const char *srv_refusal_name(enum srv_refusal r)
{
	static const char *const names[SRV_REFUSE_N] = {
		[SRV_REFUSE_MAX_CONNS] = "max_conns",
		[SRV_REFUSE_MAX_PER_PEER] = "max_conns_per_peer",
		[SRV_REFUSE_TLS] = "tls",
		[SRV_REFUSE_HANDSHAKE_TIMEOUT] = "handshake_timeout",
		[SRV_REFUSE_NOT_ALLOWED] = "not_allowed",
		[SRV_REFUSE_NO_SESSION] = "no_session",
		[SRV_REFUSE_VERSION] = "version",
		[SRV_REFUSE_BAD_INPUT] = "bad_input",
		[SRV_REFUSE_RDMA] = "rdma",
	};

	return (unsigned)r < SRV_REFUSE_N ? names[r] : "?";
}

void srv_refused(struct rpage_server *s, enum srv_refusal r)
{
	if (s && (unsigned)r < SRV_REFUSE_N)
		stat_add(&s->refused[r], 1);
}

static int send_error(struct srv_conn *c, int code, const char *msg)
{
	uint8_t buf[8 + RP_MAX_ERRMSG];
	size_t n = rp_error_encode(buf, code, msg);

	return rp_conn_send_frame(&c->conn, RP_MSG_ERROR, 0, buf, (uint32_t)n);
}

/* Ends the connection for bad input: tell the peer, log the reason. */
static int reject(struct srv_conn *c, int code, const char *why)
{
	rp_warn("client %s: %s: closing the connection", c->conn.peer, why);
	stat_add(&c->srv->st.rejected, 1);
	srv_refused(c->srv, code == EACCES ? SRV_REFUSE_NOT_ALLOWED
			  : code == ENOTCONN ? SRV_REFUSE_NO_SESSION
			  : code == EPROTONOSUPPORT ? SRV_REFUSE_VERSION
						    : SRV_REFUSE_BAD_INPUT);
	send_error(c, code, why);
	return -EPROTO;
}

/*
 * Is @session the token of a live control connection other than @self?
 * With @identity, the control connection must also have authenticated as
 * that identity (a data connection joins only its own peer's session).
 */
static bool session_live(struct rpage_server *s, uint64_t session,
			 const struct srv_conn *self, const char *identity)
{
	bool found = false;

	pthread_mutex_lock(&s->lock);
	for (struct srv_conn *c = s->conns; c; c = c->next)
		if (c != self && !c->done && c->role == RP_ROLE_CONTROL &&
		    c->session == session &&
		    (!identity || !strcmp(identity, c->conn.identity)))
			found = true;
	pthread_mutex_unlock(&s->lock);
	return found;
}

bool srv_session_live(struct rpage_server *s, uint64_t session)
{
	return session_live(s, session, NULL, NULL);
}

/* The parked session @session of @identity, or -1; drops expired ones.
 * Called with s->lock held. */
static int parked_find(struct rpage_server *s, uint64_t session,
		       const char *identity)
{
	uint64_t now = rp_now_ns();

	for (unsigned i = 0; i < s->nparked;) {
		if (s->parked[i].expires_ns <= now) {
			s->parked[i] = s->parked[--s->nparked];
			continue;
		}
		if (s->parked[i].session == session &&
		    !strcmp(s->parked[i].identity, identity))
			return (int)i;
		i++;
	}
	return -1;
}

/* A data connection may join @session if its control connection is open,
 * or broke less than the grace period ago (the client is resuming). */
static bool session_joinable(struct rpage_server *s, uint64_t session,
			     const struct srv_conn *self, const char *identity)
{
	bool parked;

	if (session_live(s, session, self, identity))
		return true;
	pthread_mutex_lock(&s->lock);
	parked = parked_find(s, session, identity) >= 0;
	pthread_mutex_unlock(&s->lock);
	return parked;
}

/*
 * A control connection's HELLO names session @want: the client resumes it
 * after its control connection broke. Its token stays if the session is
 * parked, or still looks open here (the old connection's end has not
 * reached us yet: that connection is shut down), for the same identity.
 * Otherwise (a restarted server, the grace period over) the client gets a
 * new session, and finds out from the token. Returns the token to use, 0
 * for a new one.
 */
static uint64_t session_resume(struct rpage_server *s, uint64_t want,
			       struct srv_conn *self)
{
	uint64_t got = 0;
	bool superseded = false;
	int i;

	pthread_mutex_lock(&s->lock);
	i = parked_find(s, want, self->conn.identity);
	if (i >= 0) {
		s->parked[i] = s->parked[--s->nparked];
		got = want;
	}
	for (struct srv_conn *c = s->conns; c; c = c->next)
		if (c != self && !c->done && c->role == RP_ROLE_CONTROL &&
		    c->session == want &&
		    !strcmp(c->conn.identity, self->conn.identity)) {
			/* superseded: not parked when it ends, and its end
			 * must not touch the session it hands over */
			c->bye = c->superseded = true;
			rp_conn_shutdown(&c->conn);
			superseded = true;
			got = want;
		}
	pthread_mutex_unlock(&s->lock);
	/* the old connection's RDMA state goes now, before this connection
	 * can hand out new RDMA connection data for the session */
	if (superseded)
		srv_rdma_session_end(s->rdma, want);
	return got;
}

/* The control connection of @c ended without BYE: keep its session
 * resumable for the grace period. */
static void session_park(struct srv_conn *c)
{
	struct rpage_server *s = c->srv;
	struct srv_parked *p;

	pthread_mutex_lock(&s->lock);
	parked_find(s, 0, ""); /* drops the expired */
	if (s->nparked == SRV_MAX_PARKED)
		s->parked[0] = s->parked[--s->nparked]; /* the oldest goes */
	p = &s->parked[s->nparked++];
	p->session = c->session;
	p->expires_ns = rp_now_ns() + (uint64_t)s->lim.resume_grace_ms * 1000000ull;
	snprintf(p->identity, sizeof(p->identity), "%s", c->conn.identity);
	pthread_mutex_unlock(&s->lock);
	rp_info("client %s: control connection lost: its session stays resumable for %u ms",
		c->conn.peer, s->lim.resume_grace_ms);
}

/* The regions @identity may read, in server order: 0 or -ENOMEM. */
static int build_view(struct rpage_server *s, const char *identity,
		      struct srv_view *v)
{
	v->idx = calloc(s->nregions ? s->nregions : 1, sizeof(*v->idx));
	v->n = 0;
	if (!v->idx)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nregions; i++) {
		bool ok = s->nrules == 0;

		for (unsigned k = 0; k < s->nrules && !ok; k++)
			ok = !strcmp(s->rules[k].identity, identity) &&
			     (s->rules[k].region < 0 ||
			      s->rules[k].region == (int)i);
		if (ok)
			v->idx[v->n++] = (uint16_t)i;
	}
	return 0;
}

static int do_hello(struct srv_conn *c)
{
	struct rpage_server *s = c->srv;
	uint8_t buf[RP_HELLO_LEN + RP_MAX_AUTH];
	struct rp_hello h;
	struct rp_hello_ack a = { 0 };
	struct rp_hdr hdr;
	uint8_t hb[RP_HDR_LEN];
	const char *why = NULL;
	uint64_t session;
	int ret;

	ret = rp_conn_read_full(&c->conn, hb, sizeof(hb));
	if (ret)
		return ret;
	if (hb[0] == 22 && hb[1] == 3 && c->conn.mode == RP_CONN_PLAIN)
		return reject(c, EPROTO,
			      "a TLS handshake, but this server has no credentials (start it with --psk-file or --tls-cert/--tls-key/--tls-ca)");
	if (rp_hdr_decode(hb, &hdr, &why))
		return reject(c, EPROTO, why);
	if (hdr.len > sizeof(buf))
		return reject(c, EPROTO, "HELLO larger than expected");
	ret = rp_conn_read_full(&c->conn, buf, hdr.len);
	if (ret)
		return ret;
	if (hdr.type != RP_MSG_HELLO)
		return reject(c, EPROTO, "first message is not HELLO");
	if (rp_hello_decode(buf, hdr.len, &h, &why))
		return reject(c, EPROTO, why);
	if (h.ver_min > RP_VERSION || h.ver_max < RP_VERSION)
		return reject(c, EPROTONOSUPPORT,
			      "no protocol version in common");
	if (h.auth_type != RP_AUTH_NONE)
		return reject(c, EACCES, "authentication method not supported");
	ret = build_view(s, c->conn.identity, &c->view);
	if (ret)
		return ret;
	if (!c->view.n && s->nregions) {
		char msg[RP_MAX_IDENTITY + 64];

		snprintf(msg, sizeof(msg), "identity '%s' may read no region",
			 c->conn.identity);
		return reject(c, EACCES, msg);
	}
	if (h.role == RP_ROLE_CONTROL) {
		session = h.session ? session_resume(s, h.session, c) : 0;
		if (session) {
			rp_info("client %s: session resumed", c->conn.peer);
		} else {
			if (getrandom(&session, sizeof(session), 0) !=
			    sizeof(session))
				return -EIO;
			session |= 1;
		}
	} else {
		if (!h.session ||
		    !session_joinable(s, h.session, c, c->conn.identity))
			return reject(c, ENOTCONN,
				      "data connection names no live session of this identity");
		session = h.session;
	}
	/* other connections' threads and the metrics read them under the
	 * lock (session_live, srv_get_metrics) */
	pthread_mutex_lock(&s->lock);
	c->role = h.role;
	c->session = session;
	pthread_mutex_unlock(&s->lock);
	a.version = RP_VERSION;
	a.features = h.features &
		     (RP_FEAT_SENDFILE | (s->rdma ? RP_FEAT_RDMA : 0));
	a.session = c->session;
	a.max_data = RP_MAX_DATA;
	a.nregions = c->view.n;
	rp_hello_ack_encode(buf, &a);
	rp_dbg("client %s: hello role %u session %016llx (%s)", c->conn.peer,
	       h.role, (unsigned long long)c->session, c->conn.desc);
	return rp_conn_send_frame(&c->conn, RP_MSG_HELLO_ACK, hdr.tag, buf,
				  RP_HELLO_ACK_LEN);
}

static int send_regions(struct srv_conn *c, uint64_t tag)
{
	struct rpage_server *s = c->srv;
	struct rp_region_desc *d = calloc(c->view.n ? c->view.n : 1,
					  sizeof(*d));
	uint8_t *buf;
	size_t n;
	int ret;

	if (!d)
		return -ENOMEM;
	for (unsigned i = 0; i < c->view.n; i++) {
		const struct srv_region *g = &s->regions[c->view.idx[i]];

		d[i].id = i;
		d[i].page_size = g->page_size;
		d[i].length = g->length;
		d[i].identity = g->identity;
		d[i].name_len = (uint16_t)strlen(g->name);
		memcpy(d[i].name, g->name, d[i].name_len);
	}
	buf = malloc(rp_regions_size(d, c->view.n));
	if (!buf) {
		free(d);
		return -ENOMEM;
	}
	n = rp_regions_encode(buf, d, c->view.n);
	ret = rp_conn_send_frame(&c->conn, RP_MSG_REGIONS, tag, buf,
				 (uint32_t)n);
	free(buf);
	free(d);
	return ret;
}

static int send_pages(struct srv_conn *c, uint64_t tag, unsigned region,
		      const struct rp_page_req *rq)
{
	struct srv_region *r = &c->srv->regions[region];
	uint8_t hb[RP_HDR_LEN + RP_PAGE_DATA_HDR];
	struct rp_hdr h = { .type = RP_MSG_PAGE_DATA,
			    .len = RP_PAGE_DATA_HDR + rq->len,
			    .tag = tag };
	bool no_sf = !__atomic_load_n(&r->use_sendfile, __ATOMIC_RELAXED);
	int ret;

	rp_hdr_encode(hb, &h);
	rp_page_data_hdr_encode(hb + RP_HDR_LEN, rq);
	ret = rp_conn_send_with_data(&c->conn, hb, sizeof(hb), r->fd,
				     rq->offset, (char *)r->map + rq->offset,
				     rq->len, &no_sf);
	if (no_sf && __atomic_load_n(&r->use_sendfile, __ATOMIC_RELAXED))
		__atomic_store_n(&r->use_sendfile, false, __ATOMIC_RELAXED);
	if (ret)
		return ret;
	stat_add(&c->srv->st.page_requests, 1);
	stat_add(&c->srv->st.bytes_sent, rq->len);
	stat_add(&r->requests, 1);
	stat_add(&r->bytes, rq->len);
	return 0;
}

/* The TLS handshake (with credentials) and HELLO, under one deadline
 * counted from the accept. */
static int handshake(struct srv_conn *c)
{
	struct rpage_server *s = c->srv;
	int ret;

	ret = rp_conn_set_deadline(&c->conn, c->accepted_ns +
				   (uint64_t)s->lim.handshake_ms * 1000000ull);
	if (ret)
		return ret;
	if (s->tls) {
		ret = rp_tls_server(&c->conn, s->tls);
		if (ret) {
			stat_add(&s->st.rejected, 1);
			srv_refused(s, ret == -ETIMEDOUT ? SRV_REFUSE_HANDSHAKE_TIMEOUT
							 : SRV_REFUSE_TLS);
			return ret == -ETIMEDOUT ? ret : -EPROTO;
		}
		if (!__atomic_exchange_n(&s->tls_logged, true, __ATOMIC_RELAXED))
			rp_info("client %s: %s", c->conn.peer, c->conn.desc);
	}
	ret = do_hello(c);
	if (ret == -ETIMEDOUT) {
		rp_warn("client %s: no HELLO within %u ms of connecting: closing the connection",
			c->conn.peer, s->lim.handshake_ms);
		stat_add(&s->st.rejected, 1);
		srv_refused(s, SRV_REFUSE_HANDSHAKE_TIMEOUT);
	}
	if (ret)
		return ret;
	/* authenticated (or on loopback): blocking again; an urgent
	 * connection may rightly stay idle for hours unless told otherwise */
	ret = rp_conn_set_deadline(&c->conn, 0);
	if (!ret && s->lim.idle_ms) {
		struct timeval tv = { .tv_sec = s->lim.idle_ms / 1000,
				      .tv_usec = (s->lim.idle_ms % 1000) * 1000 };

		setsockopt(c->conn.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	return ret;
}

static int serve(struct srv_conn *c)
{
	struct rpage_server *s = c->srv;
	uint8_t buf[8 + RP_MAX_ERRMSG];
	struct rp_hdr h;
	const char *why = NULL;
	char msg[160];
	int ret;

	ret = handshake(c);
	if (ret)
		return ret;
	for (;;) {
		ret = rp_conn_recv_frame(&c->conn, &h, buf, sizeof(buf), &why);
		if (ret == -ECONNRESET)
			return 0; /* orderly close */
		if (ret == -EPROTO)
			return reject(c, EPROTO, why);
		if (ret == -EAGAIN) {
			rp_warn("client %s: no request for %u ms: closing the idle connection",
				c->conn.peer, s->lim.idle_ms);
			return -ETIMEDOUT;
		}
		if (ret)
			return ret;
		switch (h.type) {
		case RP_MSG_REGIONS_REQ:
			if (h.len)
				return reject(c, EPROTO, "REGIONS_REQ with a payload");
			ret = send_regions(c, h.tag);
			break;
		case RP_MSG_PAGE_REQ: {
			struct rp_page_req rq;
			const struct srv_region *g;

			if (rp_page_req_decode(buf, h.len, &rq, &why))
				return reject(c, EPROTO, why);
			if (rq.region >= c->view.n) {
				snprintf(msg, sizeof(msg),
					 "page request for region id %u, which does not exist",
					 rq.region);
				return reject(c, ENOENT, msg);
			}
			g = &s->regions[c->view.idx[rq.region]];
			if (rp_page_req_check(&rq, g->length, &why)) {
				snprintf(msg, sizeof(msg),
					 "%s (region '%s', offset 0x%llx, length %u)",
					 why, g->name,
					 (unsigned long long)rq.offset, rq.len);
				return reject(c, ERANGE, msg);
			}
			ret = send_pages(c, h.tag, c->view.idx[rq.region], &rq);
			break;
		}
		case RP_MSG_RDMA_FIRST ... RP_MSG_RDMA_LAST:
			if (c->role != RP_ROLE_CONTROL)
				return reject(c, EPROTO, "RDMA message on a data connection");
			ret = srv_rdma_ctl(s->rdma, c->session, &c->view,
					   &c->conn, &h, buf, &why);
			if (ret == -EPROTO)
				return reject(c, EPROTO, why);
			break;
		case RP_MSG_BYE:
			if (h.len || c->role != RP_ROLE_CONTROL)
				return reject(c, EPROTO, "BYE with a payload, or not on the control connection");
			c->bye = true;
			return 0;
		case RP_MSG_DONE:
			if (h.len != 4)
				return reject(c, EPROTO, "DONE has the wrong length");
			rp_info("client %s: reports its memory complete",
				c->conn.peer);
			stat_add(&s->st.completions, 1);
			break;
		case RP_MSG_ERROR: {
			struct rp_error e;

			if (rp_error_decode(buf, h.len, &e, &why))
				return reject(c, EPROTO, why);
			rp_warn("client %s: sent error %d: %s", c->conn.peer,
				e.code, e.msg);
			return -EPROTO;
		}
		default:
			snprintf(msg, sizeof(msg), "unexpected %s message",
				 rp_msg_name(h.type));
			return reject(c, EPROTO, msg);
		}
		if (ret)
			return ret;
	}
}

static void *conn_main(void *arg)
{
	struct srv_conn *c = arg;
	int ret;

	rp_thread_name("rpage/srv/conn");
	ret = serve(c);
	if (ret && ret != -EPROTO && ret != -EPIPE && ret != -ECONNRESET &&
	    ret != -ETIMEDOUT && ret != -EACCES)
		rp_warn("client %s: connection ended: %s", c->conn.peer,
			strerror(-ret));
	rp_conn_shutdown(&c->conn);
	/* the session is dead before its RDMA state goes, so no RDMA
	 * connection can join it in between */
	pthread_mutex_lock(&c->srv->lock);
	c->done = true;
	pthread_mutex_unlock(&c->srv->lock);
	if (c->role == RP_ROLE_CONTROL && c->session && !c->superseded) {
		srv_rdma_session_end(c->srv->rdma, c->session);
		if (!c->bye && c->srv->lim.resume_grace_ms)
			session_park(c);
	}
	__atomic_fetch_sub(&c->srv->st.active, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* Joins and frees finished connections (all of them when @all). */
static void reap(struct rpage_server *s, bool all)
{
	struct srv_conn **pp, *c, *dead = NULL;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->conns; (c = *pp);) {
		if (c->done || all) {
			*pp = c->next;
			c->next = dead;
			dead = c;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&s->lock);
	while ((c = dead)) {
		dead = c->next;
		pthread_join(c->thread, NULL);
		rp_conn_close(&c->conn);
		free(c->view.idx);
		free(c);
	}
}

/* The peer's address without the port. */
static void peer_ip(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	snprintf(buf, len, "?");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl))
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf,
			  (socklen_t)len);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
			  buf, (socklen_t)len);
}

/* Connections open from @ip (lock held). */
static unsigned conns_from(struct rpage_server *s, const char *ip)
{
	unsigned n = 0;

	for (struct srv_conn *c = s->conns; c; c = c->next)
		if (!c->done && !strcmp(c->ip, ip))
			n++;
	return n;
}

/* A connection just accepted: within the caps, start its thread. */
static void admit(struct rpage_server *s, int fd)
{
	struct srv_conn *c;
	char ip[48];
	int one = 1;

	peer_ip(fd, ip, sizeof(ip));
	if (__atomic_load_n(&s->st.active, __ATOMIC_RELAXED) >=
	    s->lim.max_conns) {
		rp_warn("client %s: refused: %u connections are open already",
			ip, s->lim.max_conns);
		srv_refused(s, SRV_REFUSE_MAX_CONNS);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rp_tcp_liveness(fd);
	c->srv = s;
	c->accepted_ns = rp_now_ns();
	rp_conn_init(&c->conn, fd);
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	pthread_mutex_lock(&s->lock);
	if (conns_from(s, ip) >= s->lim.max_conns_per_peer) {
		pthread_mutex_unlock(&s->lock);
		rp_warn("client %s: refused: %u connections from this address are open already",
			c->conn.peer, s->lim.max_conns_per_peer);
		srv_refused(s, SRV_REFUSE_MAX_PER_PEER);
		rp_conn_close(&c->conn);
		free(c);
		return;
	}
	stat_add(&s->st.connections, 1);
	stat_add(&s->st.active, 1);
	if (pthread_create(&c->thread, NULL, conn_main, c)) {
		pthread_mutex_unlock(&s->lock);
		rp_warn("client %s: cannot start a thread", c->conn.peer);
		stat_add(&s->st.active, (uint64_t)-1);
		rp_conn_close(&c->conn);
		free(c);
		return;
	}
	c->next = s->conns;
	s->conns = c;
	pthread_mutex_unlock(&s->lock);
}

static void *accept_main(void *arg)
{
	struct rpage_server *s = arg;
	struct pollfd pf[2] = { { s->listen_fd, POLLIN, 0 },
				{ s->stop_efd, POLLIN, 0 } };

	rp_thread_name("rpage/srv/acc");
	for (;;) {
		int fd;
		/* wake once a second to join finished connections */
		int pr = poll(pf, 2, 1000);

		if (pr == 0) {
			reap(s, false);
			continue;
		}
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			rp_err("poll: %s", strerror(errno));
			break;
		}
		if (pf[1].revents)
			break;
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		reap(s, false);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN &&
			    errno != ECONNABORTED)
				rp_warn("accept: %s", strerror(errno));
			if (errno == EMFILE || errno == ENFILE)
				usleep(100000);
			continue;
		}
		admit(s, fd);
	}
	return NULL;
}

/* Secure by default: credentials, loopback, or an explicit insecure. */
static int check_policy(struct rpage_server *srv)
{
	char where[64] = "?";
	int port = rp_local_port(srv->listen_fd);

	if (srv->nrules && !srv->tls) {
		rp_err("authorization rules need credentials (a PSK file or X.509)");
		return -EINVAL;
	}
	if (srv->tls || srv->insecure || rp_fd_local_is_loopback(srv->listen_fd))
		return 0;
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockname(srv->listen_fd, (struct sockaddr *)&ss, &sl) == 0) {
			char h[48] = "?";

			if (ss.ss_family == AF_INET)
				inet_ntop(AF_INET,
					  &((struct sockaddr_in *)&ss)->sin_addr,
					  h, sizeof(h));
			else if (ss.ss_family == AF_INET6)
				inet_ntop(AF_INET6,
					  &((struct sockaddr_in6 *)&ss)->sin6_addr,
					  h, sizeof(h));
			snprintf(where, sizeof(where), "%s:%d", h, port);
		}
	}
	rp_err("refusing to serve memory on %s without authentication: anyone who reaches it could read every region. Give credentials (--psk-file FILE, or --tls-cert/--tls-key/--tls-ca), listen on loopback, or say --insecure",
	       where);
	return -EACCES;
}

RP_EXPORT int rpage_server_start(struct rpage_server *srv)
{
	int ret;

	if (srv->listen_fd < 0)
		return -ENOTCONN;
	if (srv->running)
		return -EALREADY;
	ret = check_policy(srv);
	if (ret)
		return ret;
	srv_rdma_set_limits(srv->rdma, srv->lim.max_rdma,
			    srv->lim.max_rdma_per_session);
	ret = srv_rdma_start(srv->rdma);
	if (ret)
		return ret;
	ret = pthread_create(&srv->accept_thread, NULL, accept_main, srv);
	if (ret)
		return -ret;
	srv->running = true;
	return 0;
}

RP_EXPORT int rpage_server_stop(struct rpage_server *srv)
{
	int ret;

	if (!srv->running)
		return 0;
	ret = rp_efd_signal(srv->stop_efd);
	if (ret)
		return ret;
	pthread_join(srv->accept_thread, NULL);
	pthread_mutex_lock(&srv->lock);
	for (struct srv_conn *c = srv->conns; c; c = c->next)
		rp_conn_shutdown(&c->conn);
	pthread_mutex_unlock(&srv->lock);
	reap(srv, true);
	srv_rdma_stop(srv->rdma);
	srv->running = false;
	return 0;
}

RP_EXPORT void rpage_server_free(struct rpage_server *srv)
{
	if (!srv)
		return;
	rpage_server_stop(srv);
	srv_rdma_free(srv->rdma); /* deregisters before the unmap */
	for (unsigned i = 0; i < srv->nregions; i++) {
		if (srv->regions[i].fd < 0)
			continue; /* in-process memory: the caller's */
		munmap(srv->regions[i].map, srv->regions[i].length);
		close(srv->regions[i].fd);
	}
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	close(srv->stop_efd);
	pthread_mutex_destroy(&srv->lock);
	free(srv->rules);
	free(srv);
}

RP_EXPORT int rpage_server_get_stats(struct rpage_server *srv,
				     struct rpage_server_stats *st)
{
	st->connections = __atomic_load_n(&srv->st.connections, __ATOMIC_RELAXED);
	st->active = __atomic_load_n(&srv->st.active, __ATOMIC_RELAXED);
	st->rejected = __atomic_load_n(&srv->st.rejected, __ATOMIC_RELAXED);
	st->page_requests =
		__atomic_load_n(&srv->st.page_requests, __ATOMIC_RELAXED);
	st->bytes_sent = __atomic_load_n(&srv->st.bytes_sent, __ATOMIC_RELAXED);
	st->completions = __atomic_load_n(&srv->st.completions, __ATOMIC_RELAXED);
	return 0;
}

int srv_get_metrics(struct rpage_server *srv, struct srv_metrics *m)
{
	memset(m, 0, sizeof(*m));
	rpage_server_get_stats(srv, &m->st);
	for (unsigned i = 0; i < SRV_REFUSE_N; i++)
		m->refused[i] = __atomic_load_n(&srv->refused[i], __ATOMIC_RELAXED);
	pthread_mutex_lock(&srv->lock);
	for (struct srv_conn *c = srv->conns; c; c = c->next)
		m->sessions_active += !c->done && c->role == RP_ROLE_CONTROL &&
				      c->session;
	parked_find(srv, 0, ""); /* drops the expired */
	m->sessions_parked = srv->nparked;
	pthread_mutex_unlock(&srv->lock);
	m->rdma_conns = srv_rdma_conns(srv->rdma);
	m->nregions = srv->nregions;
	return 0;
}

int srv_region_metrics(struct rpage_server *srv, unsigned i, const char **name,
		       uint64_t *length, uint64_t *requests, uint64_t *bytes)
{
	const struct srv_region *r;

	if (i >= srv->nregions)
		return -ENOENT;
	r = &srv->regions[i];
	*name = r->name;
	*length = r->length;
	*requests = __atomic_load_n(&r->requests, __ATOMIC_RELAXED);
	*bytes = __atomic_load_n(&r->bytes, __ATOMIC_RELAXED);
	return 0;
}
