/* SPDX-License-Identifier: MIT */
/*
 * Live migration, destination side: receives pre-copy rounds straight into
 * the (not yet registered) memory, one receiver thread per stream
 * ("rpage/live/rx"); at the switchover drops the pages the source names
 * (MADV_DONTNEED), registers the memory with a userfaultfd for missing
 * faults and hands it to the ordinary fault handler (attach.c) with the
 * pages that arrived and were not re-dirtied marked resident. Post-copy
 * then runs through the fault thread and background fill.
 *
 * Nothing touches the memory but the receivers until the switchover, and
 * after it nothing but the fault handler places pages.
 *
 * Who may write into that memory: only the source that authenticates
 * first on a control connection (TLS 1.3 with the destination's
 * credentials), and then only stream connections of its session and its
 * identity. Until then every connection is set up on a thread of its own
 * ("rpage/live/hs", at most 16 at once) under a handshake deadline, so an
 * idle, slow or unauthenticated peer is closed without holding up the
 * real source; anything that fails is logged and ignored.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/bitmap.h"
#include "../common/hist.h"
#include "../common/inject.h"
#include "../common/net.h"
#include "../common/proto_live.h"
#include "../common/uffd.h"
#include "client_int.h"
#include "live_int.h"

#define ACCEPT_TIMEOUT_MS 30000 /* for the control connection */
#define STREAMS_TIMEOUT_MS 10000 /* then for every stream */
#define HANDSHAKE_MS 10000      /* TLS and LIVE_HELLO, one deadline */
#define MAX_PENDING 16          /* connections in their handshake */
/* the source's connections lost during pre-copy: how long to wait for
 * that source (same session, same identity) to come back */
#define PRECOPY_RESUME_MS 30000

struct rpage_live_dest;

/* A connection in its handshake, on its own thread. */
struct pend {
	struct rpage_live_dest *d;
	struct rp_conn c;
	struct rp_live_hello h;
	uint64_t tag;
	int ret;
	bool done;                /* the thread has finished (d->lock) */
	pthread_t thr;
};

struct rx_arg {
	struct rpage_live_dest *d;
	unsigned idx;
	pthread_t thr;
	bool started;
};

struct rpage_live_dest {
	char *mem;
	uint64_t length, npages;
	uint32_t psize;
	struct rpage_attach_opts aopts;
	enum rpage_transport transport; /* post-copy: AUTO, TCP or RDMA */
	const struct rpage_tls *tls;    /* NULL: plain TCP */
	bool insecure;
	int lfd;
	struct rp_conn ctl;
	struct rp_conn *strm;
	unsigned nstreams;
	int pend_efd;          /* a handshake thread finished */
	uint64_t session;
	bool rejoin;           /* taking the source's connections back */
	char src_identity[256]; /* who the source proved to be */
	char peer[300];
	char peer_host[INET6_ADDRSTRLEN];
	struct rp_bitmap have; /* receivers, then the switchover */
	struct rx_arg *rx;
	pthread_mutex_t lock;  /* round accounting, ctl sends, stats */
	uint32_t expect_round;
	unsigned ended;        /* streams that ended expect_round */
	uint64_t round_pages;
	uint64_t round_t0;     /* first page of the round arrived */
	uint64_t rx_rate;      /* bytes/s of the last round */
	bool switched;         /* receivers may stop quietly */
	int rx_err;
	struct rpage_source *src;
	struct rpage_attach *att;
	bool finished;
	uint64_t t_start, t_resume;
	struct rpage_live_stats st;
};

RP_EXPORT int rpage_live_dest_set_transport(struct rpage_live_dest *d,
					  enum rpage_transport t)
{
	if (t != RPAGE_TRANSPORT_AUTO && t != RPAGE_TRANSPORT_TCP &&
	    t != RPAGE_TRANSPORT_RDMA)
		return -EINVAL;
	d->transport = t;
	return 0;
}

RP_EXPORT int rpage_live_dest_set_tls(struct rpage_live_dest *d,
				    const struct rpage_tls *tls, int insecure)
{
	d->tls = tls;
	d->insecure = insecure != 0;
	return 0;
}

RP_EXPORT int rpage_live_dest_new(void *mem, uint64_t length,
				  uint32_t page_size,
				  const struct rpage_attach_opts *opts,
				  struct rpage_live_dest **out)
{
	struct rpage_live_dest *d;

	if (!rp_live_length_ok(length))
		return -EFBIG;
	if (!mem || page_size != RP_PAGE_4K || !length || length % page_size ||
	    (uintptr_t)mem % page_size)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	/* whatever was there is not the source's: every page not received
	 * must fault later, so none may be present now */
	if (madvise(mem, length, MADV_DONTNEED)) {
		int e = -errno;

		rp_err("the destination memory must be a private anonymous mapping: %s",
		       strerror(errno));
		free(d);
		return e;
	}
	if (rp_bitmap_init(&d->have, length / page_size)) {
		free(d);
		return -ENOMEM;
	}
	d->mem = mem;
	d->length = length;
	d->psize = page_size;
	d->npages = length / page_size;
	if (opts)
		d->aopts = *opts;
	d->lfd = -1;
	rp_conn_init(&d->ctl, -1);
	d->pend_efd = -1;
	d->expect_round = 1;
	pthread_mutex_init(&d->lock, NULL);
	d->st.page_size = page_size;
	d->st.pages_total = d->npages;
	*out = d;
	return 0;
}

RP_EXPORT int rpage_live_dest_listen(struct rpage_live_dest *d,
				     const char *host, const char *port)
{
	int fd;

	if (d->lfd >= 0)
		return -EALREADY;
	fd = rp_tcp_listen(host, port, 32);
	if (fd < 0)
		return fd;
	d->lfd = fd;
	return 0;
}

RP_EXPORT int rpage_live_dest_port(const struct rpage_live_dest *d)
{
	return d->lfd < 0 ? -ENOTCONN : rp_local_port(d->lfd);
}

static int reject(struct rpage_live_dest *d, struct rp_conn *c, int code,
		  const char *why)
{
	uint8_t buf[8 + RP_MAX_ERRMSG];
	size_t n = rp_error_encode(buf, code, why);

	rp_err("source %s: %s", c->peer[0] ? c->peer : d->peer, why);
	rp_conn_send_frame(c, RP_MSG_ERROR, 0, buf, (uint32_t)n);
	return code == EPROTO ? -EPROTO : -code;
}

/* On a handshake thread: TLS (with credentials) and a LIVE_HELLO, under
 * one deadline. Nothing is answered yet: the main thread decides. */
static int hello_read(struct rpage_live_dest *d, struct pend *p)
{
	uint8_t buf[RP_LIVE_HELLO_LEN];
	struct rp_hdr hdr;
	const char *why = NULL;
	int ret;

	ret = rp_conn_set_deadline(&p->c, rp_now_ns() +
				   HANDSHAKE_MS * 1000000ull);
	if (!ret && d->tls)
		ret = rp_tls_server(&p->c, d->tls);
	if (ret)
		return ret;
	ret = rp_conn_recv_frame(&p->c, &hdr, buf, sizeof(buf), &why);
	if (ret == -EPROTO)
		return reject(d, &p->c, EPROTO, why);
	if (ret == -ETIMEDOUT)
		rp_warn("connection from %s: no LIVE_HELLO within %d ms: closing it",
			p->c.peer, HANDSHAKE_MS);
	if (ret)
		return ret;
	if (hdr.type != RP_MSG_LIVE_HELLO)
		return reject(d, &p->c, EPROTO, "first message is not LIVE_HELLO");
	if (rp_live_hello_decode(buf, hdr.len, &p->h, &why))
		return reject(d, &p->c, EPROTO, why);
	p->tag = hdr.tag;
	return rp_conn_set_deadline(&p->c, 0);
}

static void *pend_main(void *arg)
{
	struct pend *p = arg;
	struct rpage_live_dest *d = p->d;

	rp_thread_name("rpage/live/hs");
	p->ret = hello_read(d, p);
	pthread_mutex_lock(&d->lock);
	p->done = true;
	pthread_mutex_unlock(&d->lock);
	rp_efd_signal(d->pend_efd);
	return NULL;
}

/* Checks an accepted LIVE_HELLO against the region and answers it. */
static int hello_reply(struct rpage_live_dest *d, struct pend *p)
{
	uint8_t buf[RP_LIVE_HELLO_ACK_LEN];
	struct rp_live_hello_ack a = { 0 };

	if (p->h.length != d->length || p->h.page_size != d->psize) {
		char msg[200];

		snprintf(msg, sizeof(msg),
			 "the source region has %" PRIu64 " bytes in pages of %u, this destination %" PRIu64 " in pages of %u",
			 p->h.length, p->h.page_size, d->length, d->psize);
		return reject(d, &p->c, EINVAL, msg);
	}
	a.session = p->h.session;
	return rp_conn_send_frame(&p->c, RP_MSG_LIVE_HELLO_ACK, p->tag, buf,
				  (uint32_t)rp_live_hello_ack_encode(buf, &a));
}

static int send_ctl(struct rpage_live_dest *d, uint16_t type,
		    const void *p, uint32_t len)
{
	int ret;

	pthread_mutex_lock(&d->lock);
	ret = rp_conn_send_frame(&d->ctl, type, 0, p, len);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static int rx_frame(struct rpage_live_dest *d, unsigned idx)
{
	struct rp_conn *fd = &d->strm[idx];
	uint8_t b[RP_HDR_LEN + RP_LIVE_PAGES_HDR];
	struct rp_hdr h;
	const char *why = NULL;
	int ret;

	ret = rp_conn_read_full(fd, b, RP_HDR_LEN);
	if (ret)
		return ret;
	if (rp_hdr_decode(b, &h, &why))
		return reject(d, fd, EPROTO, why);
	if (h.type == RP_MSG_LIVE_PAGES) {
		struct rp_live_pages m;

		ret = rp_conn_read_full(fd, b + RP_HDR_LEN, RP_LIVE_PAGES_HDR);
		if (ret)
			return ret;
		if (rp_live_pages_hdr_decode(b + RP_HDR_LEN, h.len, d->npages,
					     d->psize, &m, &why))
			return reject(d, fd, EPROTO, why);
		if ((m.first / RP_LIVE_MAX_RUN) % d->nstreams != idx ||
		    m.first / RP_LIVE_MAX_RUN !=
			    (m.first + m.npages - 1) / RP_LIVE_MAX_RUN)
			return reject(d, fd, EPROTO,
				      "LIVE_PAGES for pages another stream carries");
		if (m.round != d->expect_round)
			return reject(d, fd, EPROTO, "LIVE_PAGES for a round not in progress");
		ret = rp_conn_read_full(fd, d->mem + m.first * d->psize,
					(size_t)m.npages * d->psize);
		if (ret)
			return ret;
		for (uint32_t i = 0; i < m.npages; i++)
			rp_bit_set(&d->have, m.first + i);
		pthread_mutex_lock(&d->lock);
		if (!d->round_t0)
			d->round_t0 = rp_now_ns();
		d->round_pages += m.npages;
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
	if (h.type == RP_MSG_LIVE_ROUND_END) {
		uint8_t p[RP_LIVE_ROUND_LEN];
		struct rp_live_round m;

		if (h.len != RP_LIVE_ROUND_LEN)
			return reject(d, fd, EPROTO, "LIVE_ROUND_END has the wrong length");
		ret = rp_conn_read_full(fd, p, sizeof(p));
		if (ret)
			return ret;
		if (rp_live_round_decode(p, sizeof(p), &m, &why))
			return reject(d, fd, EPROTO, why);
		pthread_mutex_lock(&d->lock);
		if (m.round != d->expect_round) {
			pthread_mutex_unlock(&d->lock);
			return reject(d, fd, EPROTO, "LIVE_ROUND_END for a round not in progress");
		}
		if (++d->ended == d->nstreams) {
			struct rp_live_round ack = { .round = m.round,
						     .pages = d->round_pages };

			rp_live_round_encode(p, &ack);
			if (d->round_t0 && d->round_pages >= 256) {
				uint64_t ns = rp_now_ns() - d->round_t0;

				if (ns)
					d->rx_rate = d->round_pages * d->psize *
						     1000000000ull / ns;
			}
			d->round_t0 = 0;
			d->ended = 0;
			d->round_pages = 0;
			d->expect_round++;
			d->st.rounds++;
			ret = rp_conn_send_frame(&d->ctl, RP_MSG_LIVE_ROUND_ACK,
						 0, p, sizeof(p));
		}
		pthread_mutex_unlock(&d->lock);
		return ret;
	}
	return reject(d, fd, EPROTO, "unexpected message on a pre-copy stream");
}

static void *rx_main(void *arg)
{
	struct rx_arg *r = arg;
	struct rpage_live_dest *d = r->d;

	rp_thread_name("rpage/live/rx");
	for (;;) {
		int ret = rx_frame(d, r->idx);

		if (!ret)
			continue;
		pthread_mutex_lock(&d->lock);
		if (!d->switched && !d->rx_err) {
			d->rx_err = ret;
			if (ret != -EPROTO)
				rp_err("pre-copy stream %u from %s ended: %s",
				       r->idx, d->peer, strerror(-ret));
		}
		pthread_mutex_unlock(&d->lock);
		/* let the control thread see it too */
		if (!d->switched)
			rp_conn_shutdown(&d->ctl);
		return NULL;
	}
}

static void stop_rx(struct rpage_live_dest *d)
{
	pthread_mutex_lock(&d->lock);
	d->switched = true;
	pthread_mutex_unlock(&d->lock);
	for (unsigned i = 0; d->strm && i < d->nstreams; i++)
		rp_conn_shutdown(&d->strm[i]);
	for (unsigned i = 0; d->rx && i < d->nstreams; i++)
		if (d->rx[i].started) {
			pthread_join(d->rx[i].thr, NULL);
			d->rx[i].started = false;
		}
}

/* Secure by default: credentials, loopback, or an explicit insecure. */
static int check_policy(struct rpage_live_dest *d)
{
	if (d->tls || d->insecure || rp_fd_local_is_loopback(d->lfd))
		return 0;
	rp_err("refusing to take a live migration on port %d without authentication: anyone could write into this memory. Give credentials, listen on loopback, or say insecure",
	       rp_local_port(d->lfd));
	return -EACCES;
}

/* Joins the handshake threads that are done (all of them when @all,
 * after cutting their connections), and hands each result to @take. */
static void pend_reap(struct rpage_live_dest *d, struct pend **pv,
		      unsigned *np, bool all,
		      int (*take)(struct rpage_live_dest *, struct pend *),
		      int *ret)
{
	for (unsigned i = 0; i < *np;) {
		struct pend *p = pv[i];
		bool done;

		if (all)
			rp_conn_shutdown(&p->c);
		pthread_mutex_lock(&d->lock);
		done = p->done;
		pthread_mutex_unlock(&d->lock);
		if (!done && !all) {
			i++;
			continue;
		}
		pthread_join(p->thr, NULL);
		if (!all && !*ret && take(d, p) == 0) {
			free(p); /* its connection was taken over */
		} else {
			rp_conn_close(&p->c);
			free(p);
		}
		pv[i] = pv[--*np];
	}
}

/* A finished handshake while there is no control connection: 0 when it
 * becomes it. Anything else is closed (and the migration fails only for
 * a source that proved itself but whose region does not match). */
static int take_ctl(struct rpage_live_dest *d, struct pend *p)
{
	int ret;

	if (p->ret) {
		if (p->ret != -EPROTO && p->ret != -ETIMEDOUT)
			rp_warn("connection from %s ended in its handshake: %s: ignored",
				p->c.peer, strerror(-p->ret));
		return p->ret;
	}
	if (p->h.role != RP_LIVE_ROLE_CONTROL)
		return reject(d, &p->c, EPROTO,
			      "a stream connection before any control connection");
	if (d->rejoin && (p->h.session != d->session ||
			  p->h.nstreams != d->nstreams ||
			  strcmp(p->c.identity, d->src_identity)))
		return reject(d, &p->c, EPROTO,
			      "a migration is in progress with another source");
	ret = hello_reply(d, p);
	if (ret) {
		d->rx_err = ret; /* the source proved itself: its refusal counts */
		return ret;
	}
	rp_conn_move(&d->ctl, &p->c);
	snprintf(d->peer, sizeof(d->peer), "%s", d->ctl.peer);
	rp_sock_host(d->ctl.fd, true, d->peer_host, sizeof(d->peer_host));
	if (d->rejoin)
		return 0; /* the same source, its streams closed already */
	d->session = p->h.session;
	snprintf(d->src_identity, sizeof(d->src_identity), "%s",
		 d->ctl.identity);
	d->nstreams = p->h.nstreams;
	d->strm = calloc(d->nstreams, sizeof(*d->strm));
	d->rx = calloc(d->nstreams, sizeof(*d->rx));
	if (!d->strm || !d->rx) {
		d->rx_err = -ENOMEM;
		return 0;
	}
	for (unsigned i = 0; i < d->nstreams; i++)
		rp_conn_init(&d->strm[i], -1);
	if (d->tls)
		rp_info("source %s authenticated: %s", d->peer, d->ctl.desc);
	return 0;
}

/* A finished handshake after the control connection: 0 when it becomes
 * one of its streams (same session, same identity, a free index). */
static int take_stream(struct rpage_live_dest *d, struct pend *p)
{
	if (d->ctl.fd < 0)
		return take_ctl(d, p);
	if (p->ret) {
		if (p->ret != -EPROTO && p->ret != -ETIMEDOUT)
			rp_warn("connection from %s ended in its handshake: %s: ignored",
				p->c.peer, strerror(-p->ret));
		return p->ret;
	}
	if (p->h.role != RP_LIVE_ROLE_STREAM || p->h.session != d->session ||
	    p->h.nstreams != d->nstreams || d->strm[p->h.stream].fd >= 0 ||
	    strcmp(p->c.identity, d->ctl.identity))
		return reject(d, &p->c, EPROTO,
			      "stream connection does not match the session");
	if (hello_reply(d, p))
		return -EPROTO;
	rp_conn_move(&d->strm[p->h.stream], &p->c);
	return 0;
}

static int connect_all(struct rpage_live_dest *d)
{
	struct pend *pv[MAX_PENDING];
	unsigned np = 0, got = 0;
	uint64_t deadline = rp_now_ns() +
			    (d->rejoin ? PRECOPY_RESUME_MS : ACCEPT_TIMEOUT_MS) *
				    1000000ull;
	bool have_ctl = false;
	int ret;

	ret = check_policy(d);
	if (ret)
		return ret;
	if (d->pend_efd < 0)
		d->pend_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->pend_efd < 0)
		return -errno;
	while (!d->rx_err && (!have_ctl || got < d->nstreams)) {
		struct pollfd pf[2] = { { d->lfd, POLLIN, 0 },
					{ d->pend_efd, POLLIN, 0 } };
		uint64_t now = rp_now_ns(), v;
		int r;

		if (now >= deadline) {
			if (!have_ctl && d->rejoin)
				rp_err("source %s did not come back within %d s",
				       d->peer, PRECOPY_RESUME_MS / 1000);
			else if (!have_ctl)
				rp_err("no source %sconnected within %d s",
				       d->tls ? "authenticated and " : "",
				       ACCEPT_TIMEOUT_MS / 1000);
			else
				rp_err("source %s: only %u of %u pre-copy streams connected within %d s",
				       d->peer, got, d->nstreams,
				       STREAMS_TIMEOUT_MS / 1000);
			ret = -ETIMEDOUT;
			break;
		}
		r = poll(pf, 2, (int)((deadline - now) / 1000000 + 1));
		if (r < 0 && errno != EINTR) {
			ret = -errno;
			break;
		}
		if (pf[1].revents && read(d->pend_efd, &v, sizeof(v)) < 0)
			v = 0;
		if (pf[1].revents) {
			/* the control connection first, then its streams */
			pend_reap(d, pv, &np, false, take_stream, &ret);
			if (!have_ctl && d->ctl.fd >= 0) {
				have_ctl = true;
				deadline = rp_now_ns() +
					   STREAMS_TIMEOUT_MS * 1000000ull;
			}
			got = 0;
			for (unsigned i = 0; have_ctl && d->strm && i < d->nstreams; i++)
				got += d->strm[i].fd >= 0;
		}
		if (pf[0].revents) {
			int one = 1, fd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC);
			struct pend *p;

			if (fd < 0)
				continue;
			if (np == MAX_PENDING) {
				char peer[64];

				rp_peer_name(fd, peer, sizeof(peer));
				rp_warn("connection from %s refused: %d handshakes in progress already",
					peer, MAX_PENDING);
				close(fd);
				continue;
			}
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			rp_tcp_liveness(fd);
			p = calloc(1, sizeof(*p));
			if (!p) {
				close(fd);
				continue;
			}
			p->d = d;
			rp_conn_init(&p->c, fd);
			if (pthread_create(&p->thr, NULL, pend_main, p)) {
				rp_conn_close(&p->c);
				free(p);
				continue;
			}
			pv[np++] = p;
		}
	}
	if (!ret && d->rx_err)
		ret = d->rx_err;
	pend_reap(d, pv, &np, true, NULL, &ret);
	/* one source per destination: the port stays open (nothing is
	 * accepted meanwhile) only for that source to come back during
	 * pre-copy, and closes at the switchover */
	if (ret)
		return ret;
	for (unsigned i = 0; i < d->nstreams; i++) {
		d->rx[i].d = d;
		d->rx[i].idx = i;
		ret = -pthread_create(&d->rx[i].thr, NULL, rx_main, &d->rx[i]);
		if (ret)
			return ret;
		d->rx[i].started = true;
	}
	return 0;
}

/*
 * The switchover's steps, in order (switchover() below). Each returns 0 or
 * -errno; the caller answers SWITCHOVER_ACK with the error.
 */

/* Drops what the source re-dirtied since it was sent (MADV_DONTNEED):
 * those pages must fault. */
static int drop_redirtied(struct rpage_live_dest *d,
			  const struct rp_live_switch *sw)
{
	for (uint64_t w = 0; w < (d->npages + 63) / 64; w++) {
		uint64_t v;

		memcpy(&v, (const uint8_t *)sw->bits + w * 8, 8);
		while (v) {
			unsigned b = (unsigned)__builtin_ctzll(v);
			uint64_t pg = w * 64 + b, run = 1;

			v &= v - 1;
			while (b + run < 64 && (v & (1ull << (b + run)))) {
				v &= ~(1ull << (b + run));
				run++;
			}
			if (madvise(d->mem + pg * d->psize, run * d->psize,
				    MADV_DONTNEED)) {
				int ret = -errno;

				rp_err("dropping re-dirtied pages: %s",
				       strerror(errno));
				return ret;
			}
			for (uint64_t k = 0; k < run; k++)
				rp_bit_clear(&d->have, pg + k);
		}
	}
	return 0;
}

/* A userfaultfd with the whole memory registered for missing faults. The
 * workload's discards, unmaps, moves and forks reach the fault handler,
 * which keeps their semantics exact. */
static int register_missing(struct rpage_live_dest *d, int *uffd)
{
	uint64_t f = UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP |
		     UFFD_FEATURE_EVENT_REMAP;
	int ret;

	*uffd = rp_uffd_open(f | UFFD_FEATURE_EVENT_FORK, NULL);
	if (*uffd == -EPERM) {
		/* fork events need CAP_SYS_PTRACE; the rest does not */
		*uffd = rp_uffd_open(f, NULL);
		if (*uffd >= 0)
			rp_warn("userfaultfd: no fork events (%s): a child this "
				"process forks before every page has arrived "
				"reads the pages still missing as zeros; fork "
				"only after the migration completes",
				rp_uffd_perm_hint(UFFD_FEATURE_EVENT_FORK));
	}
	if (*uffd < 0) {
		ret = *uffd;
		rp_err("userfaultfd: %s%s%s", strerror(-ret),
		       ret == -EPERM ? ": " : "",
		       ret == -EPERM ? rp_uffd_perm_hint(f) : "");
		return ret;
	}
	ret = rp_uffd_register(*uffd, d->mem, d->length,
			       UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret)
		rp_err("registering the memory for missing faults: %s",
		       strerror(-ret));
	return ret;
}

/* Connects to the page server the source started on @port; returns the
 * id of its region "live", which must be as long as this memory. */
static int connect_page_server(struct rpage_live_dest *d, uint16_t port)
{
	char ps[8];
	int region, ret;

	snprintf(ps, sizeof(ps), "%u", port);
	/* the same credentials, and the host that proved itself on the
	 * control connection */
	ret = rpage_source_connect_opts(
		d->peer_host, ps,
		&(struct rpage_connect_opts){ .transport = d->transport,
					      .tls = d->tls,
					      .insecure = d->insecure },
		&d->src);
	if (ret)
		return ret;
	region = rpage_source_find_region(d->src, "live");
	if (region < 0 || d->src->regions[region].length != d->length) {
		rp_err("the source's page server has no region 'live' of %" PRIu64 " bytes",
		       d->length);
		return -ENOENT;
	}
	return region;
}

/* On a slow link fill shares the bottleneck queue with the faults: unless
 * told otherwise, keep about 10 ms of fill in flight there (the rate
 * measured in pre-copy). */
static void fit_fill_to_link(struct rpage_live_dest *d)
{
	uint64_t c;

	if (d->aopts.fill_chunk || d->aopts.fill_depth || !d->rx_rate ||
	    d->rx_rate >= (200ull << 20))
		return;
	c = RP_MAX(64ull << 10, RP_MIN(1ull << 20, d->rx_rate / 200));
	d->aopts.fill_chunk = (uint32_t)(c - c % d->psize);
	d->aopts.fill_depth = 2;
	rp_info("link measured at %.1f MB/s: background fill in %u KiB chunks, 2 in flight",
		(double)d->rx_rate / 1e6, d->aopts.fill_chunk >> 10);
}

/* Hands the memory to the fault handler with what arrived marked
 * resident: from here on it alone places pages. */
static int start_postcopy(struct rpage_live_dest *d,
			  const struct rp_live_switch *sw)
{
	struct rpage_range rg = { .base = (uint64_t)(uintptr_t)d->mem,
				  .size = d->length, .offset = 0,
				  .page_size = d->psize };
	int ret, region, uffd = -1;

	if (!sw->port)
		return reject(d, &d->ctl, EPROTO,
			      "pages are missing but the source names no page server");
	ret = register_missing(d, &uffd);
	if (!ret) {
		region = connect_page_server(d, sw->port);
		ret = region < 0 ? region : 0;
	}
	if (!ret) {
		fit_fill_to_link(d);
		d->aopts.pid = getpid(); /* the workload is this process */
		ret = rp_attach_start_ex(d->src, (unsigned)region, uffd, &rg, 1,
					 &d->aopts, d->have.w, &d->att);
	}
	if (ret && uffd >= 0)
		close(uffd);
	/* on success the attachment owns the userfaultfd */
	return ret;
}

static int switchover(struct rpage_live_dest *d, const uint8_t *p,
		      uint32_t len)
{
	struct rp_live_switch sw;
	struct rp_live_status ack = { 0 };
	uint8_t buf[RP_LIVE_STATUS_LEN];
	const char *why = NULL;
	uint64_t t0 = rp_now_ns(), missing;
	int ret;

	stop_rx(d);
	if (d->lfd >= 0) {
		close(d->lfd); /* no source may come back from now on */
		d->lfd = -1;
	}
	if (rp_live_switch_decode(p, len, d->npages, &sw, &why))
		return reject(d, &d->ctl, EPROTO, why);
	ret = d->rx_err;
	if (!ret && rp_inject_fail(RP_INJECT_LIVE_SWITCHOVER_ERROR)) {
		rp_err("failing the switchover: fault injection asks for it");
		ret = -EIO;
	}
	if (!ret)
		ret = drop_redirtied(d, &sw);
	if (ret)
		goto fail;
	ack.resident = rp_bitmap_weight(&d->have);
	missing = d->npages - ack.resident;
	d->st.postcopy_pages = missing;
	d->st.reason = sw.flags & RP_LIVE_SW_POSTCOPY ? RPAGE_LIVE_NOT_YET : 0;
	if (missing) {
		ret = start_postcopy(d, &sw);
		if (ret)
			goto fail;
	}
	d->t_resume = rp_now_ns();
	d->st.downtime_ns = d->t_resume - t0;
	d->st.precopy_ns = t0 - d->t_start;
	rp_info("switchover: %" PRIu64 " pages resident, %" PRIu64 " dropped, %" PRIu64 " to post-copy; ready after %.1f ms",
		ack.resident, sw.ndrop, missing, (double)d->st.downtime_ns / 1e6);
	return send_ctl(d, RP_MSG_LIVE_SWITCHOVER_ACK, buf,
			(uint32_t)rp_live_status_encode(buf, &ack));
fail:
	ack.status = -ret;
	send_ctl(d, RP_MSG_LIVE_SWITCHOVER_ACK, buf,
		 (uint32_t)rp_live_status_encode(buf, &ack));
	return ret;
}

/*
 * The source's connections broke during pre-copy (@err): stop the
 * receivers, forget the round in progress (the source sends all of it
 * again: only whole rounds are acknowledged, and a page cut short in the
 * middle is among those it sends again), and take back connections of the
 * same session and identity for up to PRECOPY_RESUME_MS. 0 when they are
 * back.
 */
static int rejoin(struct rpage_live_dest *d, int err)
{
	uint64_t t0 = rp_now_ns();
	int ret;

	stop_rx(d);
	rp_conn_close(&d->ctl);
	for (unsigned i = 0; i < d->nstreams; i++)
		rp_conn_close(&d->strm[i]);
	pthread_mutex_lock(&d->lock);
	d->switched = false;
	d->rx_err = 0;
	d->expect_round = 1; /* the source numbers rounds from 1 again */
	d->ended = 0;
	d->round_pages = 0;
	d->round_t0 = 0;
	d->st.recovering = 1;
	pthread_mutex_unlock(&d->lock);
	rp_warn("source %s lost during pre-copy (%s): waiting up to %d s for it to come back",
		d->peer, strerror(-err), PRECOPY_RESUME_MS / 1000);
	d->rejoin = true;
	ret = connect_all(d);
	d->rejoin = false;
	pthread_mutex_lock(&d->lock);
	d->st.recovering = 0;
	if (!ret)
		d->st.reconnects++;
	pthread_mutex_unlock(&d->lock);
	if (!ret)
		rp_info("source %s is back after %.3f s: pre-copy goes on",
			d->peer, (double)(rp_now_ns() - t0) / 1e9);
	return ret;
}

RP_EXPORT int rpage_live_dest_run(struct rpage_live_dest *d)
{
	uint32_t cap = (uint32_t)RP_MAX(rp_live_switch_size(d->npages),
					(size_t)(8 + RP_MAX_ERRMSG));
	uint8_t *buf = malloc(cap);
	const char *why = NULL;
	struct rp_hdr h;
	int ret;

	if (!buf)
		return -ENOMEM;
	d->t_start = rp_now_ns();
	ret = connect_all(d);
	if (ret)
		goto out;
	rp_info("source %s connected: %u pre-copy streams", d->peer,
		d->nstreams);
	for (;;) {
		struct rp_error e;

		ret = rp_conn_recv_frame(&d->ctl, &h, buf, cap, &why);
		if (ret == -EPROTO) {
			ret = reject(d, &d->ctl, EPROTO, why);
			break;
		}
		if (ret) {
			int rxe;

			pthread_mutex_lock(&d->lock);
			rxe = d->rx_err;
			pthread_mutex_unlock(&d->lock);
			/* the link, not a peer breaking the protocol: the
			 * source may come back */
			if (rxe != -EPROTO && d->lfd >= 0 &&
			    !rejoin(d, rxe ? rxe : ret))
				continue;
			if (rxe)
				ret = rxe;
			snprintf(d->st.why, sizeof(d->st.why),
				 "source %.100s lost during pre-copy after %u rounds (%s): nothing was resumed here",
				 d->peer, d->st.rounds, strerror(-ret));
			rp_err("%s", d->st.why);
			ret = -ECONNRESET;
			break;
		}
		if (h.type == RP_MSG_LIVE_SWITCHOVER) {
			ret = switchover(d, buf, h.len);
			break;
		}
		if (h.type == RP_MSG_LIVE_ABORT || h.type == RP_MSG_ERROR) {
			if (rp_error_decode(buf, h.len, &e, &why)) {
				ret = reject(d, &d->ctl, EPROTO, why);
				break;
			}
			snprintf(d->st.why, sizeof(d->st.why),
				 "the source abandoned the migration: %.200s", e.msg);
			rp_err("%s", d->st.why);
			ret = -ECONNABORTED;
			break;
		}
		ret = reject(d, &d->ctl, EPROTO,
			     "unexpected message on the live control connection");
		break;
	}
out:
	stop_rx(d);
	free(buf);
	d->st.error = ret;
	return ret;
}

/* Folds the fault handler's fine histogram into log2 microsecond buckets. */
static void take_hist(struct rpage_live_dest *d, struct rpage_live_stats *st)
{
	struct rp_hist *h = malloc(sizeof(*h));

	if (!h || !d->att) {
		free(h);
		return;
	}
	_Static_assert(RPAGE_LIVE_HIST_BUCKETS == RP_HIST_US2,
		       "fault_hist has the histogram's power-of-two buckets");
	rp_attach_get_hist(d->att, h);
	memcpy(st->fault_hist, h->us2, sizeof(st->fault_hist));
	free(h);
}

static int finish(struct rpage_live_dest *d, int status)
{
	struct rp_live_status m = { .status = status > 0 ? status : -status };
	uint8_t buf[RP_LIVE_STATUS_LEN];

	m.resident = d->st.post.pages_resident;
	m.by_fault = d->st.post.pages_by_fault;
	m.by_fill = d->st.post.pages_by_fill;
	d->finished = true;
	d->st.postcopy_ns = rp_now_ns() - d->t_resume;
	d->st.total_ns = rp_now_ns() - d->t_start;
	if (send_ctl(d, RP_MSG_LIVE_COMPLETE, buf,
		     (uint32_t)rp_live_status_encode(buf, &m)) && !status)
		rp_warn("could not tell the source that post-copy is complete");
	return status;
}

RP_EXPORT int rpage_live_dest_wait(struct rpage_live_dest *d, int timeout_ms)
{
	uint64_t deadline = rp_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull;

	if (d->finished)
		return d->st.error;
	if (!d->t_resume)
		return -ENOTCONN;
	if (!d->att) {
		d->st.post.state = RPAGE_ATTACH_COMPLETE;
		d->st.post.pages_total = d->st.post.pages_resident = d->npages;
		d->st.post.page_size = d->psize;
		return finish(d, 0);
	}
	for (;;) {
		struct pollfd pf = { rpage_attach_event_fd(d->att), POLLIN, 0 };
		int left = timeout_ms < 0 ? 1000
			   : (int)RP_MIN(1000, (deadline - RP_MIN(deadline, rp_now_ns())) / 1000000);
		uint64_t v;

		rpage_attach_get_stats(d->att, &d->st.post);
		take_hist(d, &d->st);
		if (d->st.post.state == RPAGE_ATTACH_COMPLETE) {
			rpage_attach_free(d->att);
			d->att = NULL;
			return finish(d, 0);
		}
		if (d->st.post.state != RPAGE_ATTACH_RUNNING &&
		    d->st.post.state != RPAGE_ATTACH_RECOVERING) {
			int e = d->st.post.error ? d->st.post.error : -EIO;

			snprintf(d->st.why, sizeof(d->st.why),
				 "post-copy failed (%s): %" PRIu64 " of %" PRIu64 " pages resident here; the rest is lost with the source, the workload cannot continue",
				 strerror(-e), d->st.post.pages_resident,
				 d->npages);
			rp_err("%s", d->st.why);
			d->st.error = e;
			return finish(d, e);
		}
		if (timeout_ms >= 0 && rp_now_ns() >= deadline)
			return -ETIMEDOUT;
		if (poll(&pf, 1, left) > 0 &&
		    read(pf.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return -errno;
	}
}

RP_EXPORT int rpage_live_dest_get_stats(struct rpage_live_dest *d,
					struct rpage_live_stats *st)
{
	pthread_mutex_lock(&d->lock);
	*st = d->st;
	pthread_mutex_unlock(&d->lock);
	if (d->att) {
		rpage_attach_get_stats(d->att, &st->post);
		take_hist(d, st);
	}
	return 0;
}

RP_EXPORT void rpage_live_dest_free(struct rpage_live_dest *d)
{
	if (!d)
		return;
	stop_rx(d);
	if (d->att)
		rpage_attach_free(d->att);
	if (d->src)
		rpage_source_close(d->src);
	for (unsigned i = 0; d->strm && i < d->nstreams; i++)
		rp_conn_close(&d->strm[i]);
	rp_conn_close(&d->ctl);
	if (d->lfd >= 0)
		close(d->lfd);
	if (d->pend_efd >= 0)
		close(d->pend_efd);
	free(d->strm);
	free(d->rx);
	rp_bitmap_free(&d->have);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
