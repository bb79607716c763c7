/* SPDX-License-Identifier: MIT */
/*
 * The source side: exports regions and serves page requests, one thread per
 * connection. The server does no per-page bookkeeping: the destination
 * decides what to fetch and when (fault or fill), so the same regions can
 * be read by one-sided RDMA with no server CPU at all.
 */
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
#include "server_int.h"

#define SRV_MAX_REGIONS RP_MAX_REGIONS
#define SRV_MAX_CONNS 1024       /* threads are per connection: bound them */
#define SRV_HELLO_TIMEOUT_S 10   /* a peer must say HELLO within this */

struct srv_conn {
	struct rpage_server *srv;
	int fd;
	pthread_t thread;
	bool done;        /* thread finished; may be joined */
	uint8_t role;
	uint64_t session;
	char peer[64];
	struct srv_conn *next;
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
	struct srv_rdma *rdma; /* RDMA listener, NULL without (server_rdma.c) */
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
	*out = s;
	return 0;
}

static uint32_t fd_page_size(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) == 0 && sf.f_type == (typeof(sf.f_type))HUGETLBFS_MAGIC)
		return (uint32_t)sf.f_bsize;
	return RP_PAGE_4K;
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

static int send_error(struct srv_conn *c, int code, const char *msg)
{
	uint8_t buf[8 + RP_MAX_ERRMSG];
	size_t n = rp_error_encode(buf, code, msg);

	return rp_send_frame(c->fd, RP_MSG_ERROR, 0, buf, (uint32_t)n);
}

/* Ends the connection for bad input: tell the peer, log the reason. */
static int reject(struct srv_conn *c, int code, const char *why)
{
	rp_warn("client %s: %s: closing the connection", c->peer, why);
	stat_add(&c->srv->st.rejected, 1);
	send_error(c, code, why);
	return -EPROTO;
}

static bool session_live(struct rpage_server *s, uint64_t session,
			 const struct srv_conn *self)
{
	bool found = false;

	pthread_mutex_lock(&s->lock);
	for (struct srv_conn *c = s->conns; c; c = c->next)
		if (c != self && !c->done && c->role == RP_ROLE_CONTROL &&
		    c->session == session)
			found = true;
	pthread_mutex_unlock(&s->lock);
	return found;
}

bool srv_session_live(struct rpage_server *s, uint64_t session)
{
	return session_live(s, session, NULL);
}

static int do_hello(struct srv_conn *c)
{
	struct rpage_server *s = c->srv;
	uint8_t buf[RP_HELLO_LEN + RP_MAX_AUTH];
	struct rp_hello h;
	struct rp_hello_ack a = { 0 };
	struct rp_hdr hdr;
	const char *why = NULL;
	int ret;

	ret = rp_recv_frame(c->fd, &hdr, buf, sizeof(buf), &why);
	if (ret == -EPROTO)
		return reject(c, EPROTO, why);
	if (ret)
		return ret;
	if (hdr.type != RP_MSG_HELLO)
		return reject(c, EPROTO, "first message is not HELLO");
	if (rp_hello_decode(buf, hdr.len, &h, &why))
		return reject(c, EPROTO, why);
	if (h.ver_min > RP_VERSION || h.ver_max < RP_VERSION)
		return reject(c, EPROTONOSUPPORT,
			      "no protocol version in common");
	if (h.auth_type != 0)
		return reject(c, EACCES, "authentication method not supported");
	c->role = h.role;
	if (h.role == RP_ROLE_CONTROL) {
		if (getrandom(&c->session, sizeof(c->session), 0) !=
		    sizeof(c->session))
			return -EIO;
		c->session |= 1;
	} else {
		if (!h.session || !session_live(s, h.session, c))
			return reject(c, EACCES,
				      "data connection names no live session");
		c->session = h.session;
	}
	a.version = RP_VERSION;
	a.features = h.features &
		     (RP_FEAT_SENDFILE | (s->rdma ? RP_FEAT_RDMA : 0));
	a.session = c->session;
	a.max_data = RP_MAX_DATA;
	a.nregions = s->nregions;
	rp_hello_ack_encode(buf, &a);
	rp_dbg("client %s: hello role %u session %016llx", c->peer, h.role,
	       (unsigned long long)c->session);
	return rp_send_frame(c->fd, RP_MSG_HELLO_ACK, hdr.tag, buf,
			     RP_HELLO_ACK_LEN);
}

static int send_regions(struct srv_conn *c, uint64_t tag)
{
	struct rpage_server *s = c->srv;
	struct rp_region_desc *d = calloc(s->nregions ? s->nregions : 1,
					  sizeof(*d));
	uint8_t *buf;
	size_t n;
	int ret;

	if (!d)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nregions; i++) {
		d[i].id = i;
		d[i].page_size = s->regions[i].page_size;
		d[i].length = s->regions[i].length;
		d[i].name_len = (uint16_t)strlen(s->regions[i].name);
		memcpy(d[i].name, s->regions[i].name, d[i].name_len);
	}
	buf = malloc(rp_regions_size(d, s->nregions));
	if (!buf) {
		free(d);
		return -ENOMEM;
	}
	n = rp_regions_encode(buf, d, s->nregions);
	ret = rp_send_frame(c->fd, RP_MSG_REGIONS, tag, buf, (uint32_t)n);
	free(buf);
	free(d);
	return ret;
}

static int send_pages(struct srv_conn *c, uint64_t tag,
		      const struct rp_page_req *rq)
{
	struct srv_region *r = &c->srv->regions[rq->region];
	uint8_t hb[RP_HDR_LEN + RP_PAGE_DATA_HDR];
	struct rp_hdr h = { .type = RP_MSG_PAGE_DATA,
			    .len = RP_PAGE_DATA_HDR + rq->len,
			    .tag = tag };

	rp_hdr_encode(hb, &h);
	rp_page_data_hdr_encode(hb + RP_HDR_LEN, rq);
	if (__atomic_load_n(&r->use_sendfile, __ATOMIC_RELAXED)) {
		off_t off = (off_t)rq->offset;
		size_t left = rq->len;

		if (send(c->fd, hb, sizeof(hb), MSG_MORE | MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(hb)) {
			/* a short send of 32 bytes on a blocking socket only
			 * happens on error */
			return -errno ? -errno : -EIO;
		}
		while (left) {
			ssize_t n = sendfile(c->fd, r->fd, &off, left);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (n < 0 && (errno == EINVAL || errno == ENOSYS) &&
				    left == rq->len) {
					/* no splice for this file: fall back */
					__atomic_store_n(&r->use_sendfile, false,
							 __ATOMIC_RELAXED);
					return rp_write_full(
						c->fd,
						(char *)r->map + rq->offset,
						rq->len);
				}
				return n < 0 ? -errno : -EIO;
			}
			left -= (size_t)n;
		}
	} else {
		struct iovec iov[2] = {
			{ hb, sizeof(hb) },
			{ (char *)r->map + rq->offset, rq->len },
		};
		int ret = rp_sendv_full(c->fd, iov, 2);

		if (ret)
			return ret;
	}
	stat_add(&c->srv->st.page_requests, 1);
	stat_add(&c->srv->st.bytes_sent, rq->len);
	return 0;
}

static int serve(struct srv_conn *c)
{
	struct rpage_server *s = c->srv;
	uint8_t buf[8 + RP_MAX_ERRMSG];
	struct rp_hdr h;
	const char *why = NULL;
	char msg[160];
	int ret;

	ret = do_hello(c);
	if (ret == -EAGAIN || ret == -EWOULDBLOCK) {
		rp_warn("client %s: no HELLO within %d s: closing the connection",
			c->peer, SRV_HELLO_TIMEOUT_S);
		return -ETIMEDOUT;
	}
	if (ret)
		return ret;
	/* an urgent connection may rightly stay idle for hours */
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ 0 },
		   sizeof(struct timeval));
	for (;;) {
		ret = rp_recv_frame(c->fd, &h, buf, sizeof(buf), &why);
		if (ret == -ECONNRESET)
			return 0; /* orderly close */
		if (ret == -EPROTO)
			return reject(c, EPROTO, why);
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

			if (rp_page_req_decode(buf, h.len, &rq, &why))
				return reject(c, EPROTO, why);
			if (rq.region >= s->nregions) {
				snprintf(msg, sizeof(msg),
					 "page request for region id %u, which does not exist",
					 rq.region);
				return reject(c, ENOENT, msg);
			}
			if (rp_page_req_check(&rq, s->regions[rq.region].length,
					      &why)) {
				snprintf(msg, sizeof(msg),
					 "%s (region '%s', offset 0x%llx, length %u)",
					 why, s->regions[rq.region].name,
					 (unsigned long long)rq.offset, rq.len);
				return reject(c, ERANGE, msg);
			}
			ret = send_pages(c, h.tag, &rq);
			break;
		}
		case RP_MSG_RDMA_FIRST ... RP_MSG_RDMA_LAST:
			if (c->role != RP_ROLE_CONTROL)
				return reject(c, EPROTO, "RDMA message on a data connection");
			ret = srv_rdma_ctl(s->rdma, c->session, c->fd, &h, buf,
					   &why);
			if (ret == -EPROTO)
				return reject(c, EPROTO, why);
			break;
		case RP_MSG_DONE:
			if (h.len != 4)
				return reject(c, EPROTO, "DONE has the wrong length");
			rp_info("client %s: reports its memory complete", c->peer);
			break;
		case RP_MSG_ERROR: {
			struct rp_error e;

			if (rp_error_decode(buf, h.len, &e, &why))
				return reject(c, EPROTO, why);
			rp_warn("client %s: sent error %d: %s", c->peer, e.code,
				e.msg);
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
	    ret != -ETIMEDOUT)
		rp_warn("client %s: connection ended: %s", c->peer,
			strerror(-ret));
	shutdown(c->fd, SHUT_RDWR);
	/* the session is dead before its RDMA state goes, so no RDMA
	 * connection can join it in between */
	pthread_mutex_lock(&c->srv->lock);
	c->done = true;
	pthread_mutex_unlock(&c->srv->lock);
	if (c->role == RP_ROLE_CONTROL)
		srv_rdma_session_end(c->srv->rdma, c->session);
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
		close(c->fd);
		free(c);
	}
}

static void *accept_main(void *arg)
{
	struct rpage_server *s = arg;
	struct pollfd pf[2] = { { s->listen_fd, POLLIN, 0 },
				{ s->stop_efd, POLLIN, 0 } };

	rp_thread_name("rpage/srv/acc");
	for (;;) {
		struct srv_conn *c;
		struct timeval hello_to = { .tv_sec = SRV_HELLO_TIMEOUT_S };
		int fd, one = 1;

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
		if (__atomic_load_n(&s->st.active, __ATOMIC_RELAXED) >=
		    SRV_MAX_CONNS) {
			char peer[64];

			rp_peer_name(fd, peer, sizeof(peer));
			rp_warn("client %s: refused: %u connections are open already",
				peer, SRV_MAX_CONNS);
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &hello_to, sizeof(hello_to));
		rp_tcp_liveness(fd);
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->srv = s;
		c->fd = fd;
		rp_peer_name(fd, c->peer, sizeof(c->peer));
		stat_add(&s->st.connections, 1);
		stat_add(&s->st.active, 1);
		pthread_mutex_lock(&s->lock);
		if (pthread_create(&c->thread, NULL, conn_main, c)) {
			pthread_mutex_unlock(&s->lock);
			rp_warn("client %s: cannot start a thread", c->peer);
			stat_add(&s->st.active, (uint64_t)-1);
			close(fd);
			free(c);
			continue;
		}
		c->next = s->conns;
		s->conns = c;
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

RP_EXPORT int rpage_server_start(struct rpage_server *srv)
{
	int ret;

	if (srv->listen_fd < 0)
		return -ENOTCONN;
	if (srv->running)
		return -EALREADY;
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
		shutdown(c->fd, SHUT_RDWR);
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
	return 0;
}
