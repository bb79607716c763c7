/* SPDX-License-Identifier: MIT */
/*
 * Live migration, source side: pre-copy rounds over N TCP streams with
 * dirty tracking (common/dirty.c), the switchover policy, the switchover
 * itself, then post-copy served by an in-process page server from the
 * paused workload's own memory.
 *
 * Threads: the caller's thread runs rpage_live_source_migrate (the control
 * connection, the policy); each round starts one sender thread per stream
 * ("rpage/live/tx"). A page always travels on the same stream (stream =
 * (page / 64) % N), so a newer copy can never overtake an older one.
 * `pending` (pages the destination lacks or holds stale) is shared: the
 * senders clear bits as they send, the collector sets them.
 *
 * With credentials every connection is TLS 1.3: the destination must prove
 * it holds the key (or present a certificate for the host migrated to).
 * The post-copy page server starts only at the switchover, when the
 * workload is paused, with the same credentials, and serves that one
 * identity.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../common/bitmap.h"
#include "../common/dirty.h"
#include "../common/net.h"
#include "../common/proto_live.h"
#include "../common/rp.h"
#include "../common/tls.h"
#include "server_int.h"

#define BLOCK_PAGES RP_LIVE_MAX_RUN /* stream partition granularity */
#define HANDSHAKE_MS 10000           /* connect to LIVE_HELLO_ACK */
/* A connection lost during pre-copy: how long to keep reconnecting to
 * the destination (which waits as long for us) before giving up */
#define PRECOPY_RESUME_MS 30000ull

struct rpage_live_source {
	char *mem;
	uint64_t length, npages;
	uint32_t psize;
	struct rpage_live_opts o;
	struct rp_conn ctl;
	bool peer_refused; /* the destination answered with ERROR */
	struct rp_conn *strm;
	uint64_t session;
	char peer[300];
	struct rp_bitmap pending;
	struct rp_bitmap round_set; /* what the round under way started with */
	uint32_t round_base; /* rounds done before the connections now up */
	char host[256], port[32];
	struct rp_dirty *dirty;
	struct rpage_server *srv;
	bool switch_req; /* atomic */
	bool fits;       /* the remaining set fits the downtime target */
	pthread_mutex_t slock;
	struct rpage_live_stats st;
};

RP_EXPORT int rpage_live_source_new(void *mem, uint64_t length,
				    uint32_t page_size,
				    const struct rpage_live_opts *opts,
				    struct rpage_live_source **out)
{
	struct rpage_live_source *s;

	if (!rp_live_length_ok(length))
		return -EFBIG;
	if (!mem || !opts || page_size != RP_PAGE_4K || !length ||
	    length % page_size || (uintptr_t)mem % page_size ||
	    (unsigned)opts->mode > RPAGE_LIVE_POSTCOPY ||
	    opts->streams > RP_LIVE_MAX_STREAMS)
		return -EINVAL;
	if (!opts->pause) {
		rp_err("a live migration needs a pause callback");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->mem = mem;
	s->length = length;
	s->psize = page_size;
	s->npages = length / page_size;
	s->o = *opts;
	if (!s->o.streams)
		s->o.streams = 4;
	if (!s->o.max_downtime_ms)
		s->o.max_downtime_ms = 300;
	if (!s->o.max_rounds)
		s->o.max_rounds = 30;
	if (s->o.max_rounds > RPAGE_LIVE_MAX_ROUNDS - 1)
		s->o.max_rounds = RPAGE_LIVE_MAX_ROUNDS - 1;
	rp_conn_init(&s->ctl, -1);
	s->strm = calloc(s->o.streams, sizeof(*s->strm));
	if (!s->strm || rp_bitmap_init(&s->pending, s->npages) ||
	    rp_bitmap_init(&s->round_set, s->npages)) {
		rp_bitmap_free(&s->pending);
		free(s->strm);
		free(s);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < s->o.streams; i++)
		rp_conn_init(&s->strm[i], -1);
	pthread_mutex_init(&s->slock, NULL);
	s->st.mode = s->o.mode;
	s->st.page_size = page_size;
	s->st.pages_total = s->npages;
	*out = s;
	return 0;
}

RP_EXPORT int rpage_live_source_switchover(struct rpage_live_source *s)
{
	__atomic_store_n(&s->switch_req, true, __ATOMIC_RELEASE);
	return 0;
}

RP_EXPORT int rpage_live_source_get_stats(struct rpage_live_source *s,
					  struct rpage_live_stats *st)
{
	pthread_mutex_lock(&s->slock);
	*st = s->st;
	pthread_mutex_unlock(&s->slock);
	return 0;
}

static void set_why(struct rpage_live_source *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_why(struct rpage_live_source *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->slock);
	va_start(ap, fmt);
	vsnprintf(s->st.why, sizeof(s->st.why), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->slock);
}

/* Reads an ERROR frame's payload already received and logs it. */
static int peer_error(struct rpage_live_source *s, const uint8_t *p,
		      uint32_t len)
{
	struct rp_error e;
	const char *why = NULL;

	if (rp_error_decode(p, len, &e, &why)) {
		rp_err("destination %s: malformed ERROR: %s", s->peer, why);
		return -EPROTO;
	}
	rp_err("destination %s reports: %s", s->peer, e.msg);
	return e.code > 0 && e.code < 4096 ? -e.code : -EPROTO;
}

/* Receives one control frame of type @want into @buf (cap bytes). */
static int ctl_expect(struct rpage_live_source *s, uint16_t want,
		      uint8_t *buf, uint32_t cap, uint32_t *len)
{
	struct rp_hdr h;
	const char *why = NULL;
	int ret = rp_conn_recv_frame(&s->ctl, &h, buf, cap, &why);

	if (ret == -EPROTO) {
		rp_err("destination %s: %s", s->peer, why);
		return ret;
	}
	if (ret)
		return ret;
	if (h.type == RP_MSG_ERROR) {
		s->peer_refused = true; /* it answered, so it did not act */
		return peer_error(s, buf, h.len);
	}
	if (h.type != want) {
		rp_err("destination %s sent %s where %s was expected", s->peer,
		       rp_live_msg_name(h.type), rp_live_msg_name(want));
		return -EPROTO;
	}
	*len = h.len;
	return 0;
}

/*
 * One connection to the destination, made usable: connect, the security
 * policy, TLS (with credentials), LIVE_HELLO and its answer, under one
 * deadline. The one place the source's connections are set up.
 */
static int live_connect(struct rpage_live_source *s, const char *host,
			const char *port, uint8_t role, uint8_t idx,
			struct rp_conn *out)
{
	uint8_t buf[RP_LIVE_HELLO_LEN + 8 + RP_MAX_ERRMSG];
	struct rp_live_hello h = { .version = RP_LIVE_VERSION, .role = role,
				   .stream = idx,
				   .nstreams = (uint16_t)s->o.streams,
				   .page_size = s->psize, .length = s->length,
				   .session = s->session };
	struct rp_live_hello_ack a;
	struct rp_hdr hdr;
	const char *why = NULL;
	int fd = rp_tcp_connect(host, port), ret;

	if (fd < 0) {
		rp_err("cannot connect to the destination %s: %s", s->peer,
		       strerror(-fd));
		return fd;
	}
	rp_tcp_liveness(fd);
	rp_conn_init(out, fd);
	if (!s->o.tls && !s->o.insecure && !rp_fd_peer_is_loopback(fd)) {
		rp_err("refusing to send memory to %s without authentication: give credentials, or say insecure",
		       s->peer);
		ret = -EACCES;
		goto fail;
	}
	ret = rp_conn_set_deadline(out, rp_now_ns() + HANDSHAKE_MS * 1000000ull);
	if (!ret && s->o.tls)
		ret = rp_tls_client(out, s->o.tls, host);
	if (ret)
		goto fail;
	if (s->o.tls && role == RP_LIVE_ROLE_CONTROL)
		rp_info("destination %s authenticated: %s", s->peer, out->desc);
	ret = rp_conn_send_frame(out, RP_MSG_LIVE_HELLO, 1, buf,
				 (uint32_t)rp_live_hello_encode(buf, &h));
	if (!ret)
		ret = rp_conn_recv_frame(out, &hdr, buf, sizeof(buf), &why);
	if (!ret && hdr.type == RP_MSG_ERROR) {
		ret = peer_error(s, buf, hdr.len);
	} else if (!ret && (hdr.type != RP_MSG_LIVE_HELLO_ACK ||
			    rp_live_hello_ack_decode(buf, hdr.len, &a, &why) ||
			    a.session != s->session)) {
		rp_err("destination %s: bad LIVE_HELLO_ACK: %s", s->peer,
		       why ? why : "wrong type or session");
		ret = -EPROTO;
	} else if (!ret && a.status) {
		rp_err("destination %s refused the migration: %s", s->peer,
		       strerror(a.status));
		ret = -a.status;
	}
	if (!ret)
		ret = rp_conn_set_deadline(out, 0);
	if (!ret)
		return 0;
fail:
	rp_conn_close(out);
	return ret;
}

struct tx_arg {
	struct rpage_live_source *s;
	unsigned idx;
	uint32_t round;
	bool final; /* the workload is paused: ignore switchover requests */
	uint64_t pages, bytes;
	int ret;
	pthread_t thr;
	bool started;
};

static int send_run(struct rp_conn *c, uint32_t round, uint64_t first,
		    uint32_t n, const char *data, uint32_t psize)
{
	uint8_t hb[RP_HDR_LEN + RP_LIVE_PAGES_HDR];
	struct rp_live_pages m = { .round = round, .npages = n, .first = first };
	struct rp_hdr h = { .type = RP_MSG_LIVE_PAGES,
			    .len = RP_LIVE_PAGES_HDR + n * psize };
	struct iovec iov[2] = { { hb, sizeof(hb) },
				{ (void *)data, (size_t)n * psize } };

	rp_hdr_encode(hb, &h);
	rp_live_pages_hdr_encode(hb + RP_HDR_LEN, &m);
	return rp_conn_sendv_full(c, iov, 2);
}

static void *tx_main(void *arg)
{
	struct tx_arg *t = arg;
	struct rpage_live_source *s = t->s;
	unsigned n = s->o.streams;
	uint8_t buf[RP_LIVE_ROUND_LEN];
	struct rp_live_round re;

	rp_thread_name("rpage/live/tx");
	for (uint64_t b = t->idx * BLOCK_PAGES; b < s->npages;
	     b += (uint64_t)n * BLOCK_PAGES) {
		uint64_t end = RP_MIN(b + BLOCK_PAGES, s->npages), pg = b;

		/* an explicit switchover cuts a round short: the rest stays
		 * pending (final round, when paused, always runs to the end) */
		if (!t->final && __atomic_load_n(&s->switch_req, __ATOMIC_ACQUIRE))
			break;
		while (pg < end) {
			uint64_t run = 0;

			if (!rp_bit_test(&s->pending, pg)) {
				pg++;
				continue;
			}
			while (pg + run < end && rp_bit_clear(&s->pending, pg + run))
				run++;
			t->ret = send_run(&s->strm[t->idx], t->round, pg,
					  (uint32_t)run, s->mem + pg * s->psize,
					  s->psize);
			if (t->ret) {
				for (uint64_t k = 0; k < run; k++)
					rp_bit_set(&s->pending, pg + k);
				return NULL;
			}
			t->pages += run;
			t->bytes += run * s->psize;
			pg += run;
		}
	}
	re.round = t->round;
	re.pages = t->pages;
	t->ret = rp_conn_send_frame(&s->strm[t->idx], RP_MSG_LIVE_ROUND_END, 0,
				    buf, (uint32_t)rp_live_round_encode(buf, &re));
	return NULL;
}

/* Sends every pending page (@final: ignore switchover requests, the
 * workload is paused) and waits for the destination's acknowledgement. */
static int run_round(struct rpage_live_source *s, uint32_t round, bool final,
		     struct rpage_live_round_stats *rs)
{
	struct tx_arg *t = calloc(s->o.streams, sizeof(*t));
	uint32_t wire = round - s->round_base; /* from 1 on each connection */
	uint64_t t0 = rp_now_ns();
	uint8_t buf[8 + RP_MAX_ERRMSG];
	struct rp_live_round ack;
	const char *why = NULL;
	uint32_t len = 0;
	int ret = 0;

	if (!t)
		return -ENOMEM;
	for (unsigned i = 0; i < s->o.streams; i++) {
		t[i].s = s;
		t[i].idx = i;
		t[i].round = wire;
		t[i].final = final;
		t[i].started = !pthread_create(&t[i].thr, NULL, tx_main, &t[i]);
		if (!t[i].started)
			tx_main(&t[i]); /* no thread: send this stream from here */
	}
	for (unsigned i = 0; i < s->o.streams; i++) {
		if (t[i].started)
			pthread_join(t[i].thr, NULL);
		rs->pages += t[i].pages;
		rs->bytes += t[i].bytes;
		if (t[i].ret && !ret)
			ret = t[i].ret;
	}
	free(t);
	if (ret) {
		rp_err("pre-copy round %u: sending to %s failed: %s", round,
		       s->peer, strerror(-ret));
		return ret;
	}
	ret = ctl_expect(s, RP_MSG_LIVE_ROUND_ACK, buf, sizeof(buf), &len);
	if (!ret && rp_live_round_decode(buf, len, &ack, &why))
		ret = -EPROTO;
	if (!ret && ack.round != wire) {
		why = "acknowledged another round";
		ret = -EPROTO;
	}
	if (ret == -EPROTO && why)
		rp_err("destination %s: %s", s->peer, why);
	rs->ns = rp_now_ns() - t0;
	return ret;
}

static int send_abort(struct rpage_live_source *s, int code, const char *msg)
{
	uint8_t buf[8 + RP_MAX_ERRMSG];
	size_t n = rp_error_encode(buf, code, msg);

	return rp_conn_send_frame(&s->ctl, RP_MSG_LIVE_ABORT, 0, buf, (uint32_t)n);
}

static int start_page_server(struct rpage_live_source *s, uint16_t *port)
{
	char host[INET6_ADDRSTRLEN];
	int ret;

	/* listen where the destination reached us */
	rp_sock_host(s->ctl.fd, false, host, sizeof(host));
	ret = rpage_server_new(&s->srv);
	if (ret)
		return ret;
	ret = rp_server_add_region_mem(s->srv, "live", s->mem, s->length,
				       s->psize);
	/* the same credentials; with them, only the identity that proved
	 * itself as the destination may read (its certificate's name, or the
	 * key's identity) */
	if (ret >= 0)
		ret = rpage_server_set_tls(s->srv, s->o.tls, s->o.insecure);
	if (!ret && s->o.tls)
		ret = rpage_server_allow(s->srv, s->ctl.identity, "live");
	if (ret >= 0)
		ret = rpage_server_listen(s->srv, host[0] ? host : NULL, "0");
	if (!ret && s->o.postcopy_transport != RPAGE_TRANSPORT_TCP) {
		/* one-sided READs of this memory: no CPU here per fault */
		int r2 = rpage_server_listen_rdma(s->srv, host[0] ? host : NULL,
						  "0");

		if (r2 && s->o.postcopy_transport == RPAGE_TRANSPORT_RDMA) {
			rp_err("post-copy over RDMA was asked for: %s",
			       strerror(-r2));
			ret = r2;
		}
	}
	if (!ret)
		ret = rpage_server_start(s->srv);
	if (!ret) {
		ret = rpage_server_port(s->srv);
		if (ret > 0) {
			*port = (uint16_t)ret;
			ret = 0;
		}
	}
	return ret;
}

/* The switchover failed while the destination certainly did not resume:
 * restart the workload here when the application allows it. */
static void resume_here(struct rpage_live_source *s, const char *what, int err)
{
	int r = s->o.resume ? s->o.resume(s->o.arg) : -ENOTSUP;

	if (!r) {
		s->st.resumed_here = 1;
		set_why(s, "%s (%s): the destination did not resume; the workload resumed here",
			what, strerror(-err));
	} else {
		set_why(s, "%s (%s): the workload is paused here, memory intact%s",
			what, strerror(-err),
			s->o.resume ? " (the resume callback failed)" : "");
	}
	rp_err("%s", s->st.why);
}

/* Decides after a round whether to switch; fills *reason. */
static bool should_switch(struct rpage_live_source *s, uint32_t round,
			  uint64_t remaining, uint64_t prev_remaining,
			  const struct rpage_live_round_stats *rs,
			  enum rpage_live_reason *reason)
{
	double rate = (double)s->st.send_rate_Bps;
	double need_ms = rate > 0 ? (double)(remaining * s->psize) / rate * 1e3
				  : 1e18;
	double dirty_rate = rs->ns ? (double)(rs->dirtied * s->psize) * 1e9 /
					     (double)rs->ns
				   : 0;

	s->fits = need_ms <= s->o.max_downtime_ms;
	if (__atomic_load_n(&s->switch_req, __ATOMIC_ACQUIRE)) {
		*reason = RPAGE_LIVE_EXPLICIT;
		set_why(s, "explicit switchover after round %u: %" PRIu64 " pages remain (%.0f ms at %.1f MB/s)",
			round, remaining, need_ms, rate / 1e6);
		return true;
	}
	if (need_ms <= s->o.max_downtime_ms) {
		*reason = RPAGE_LIVE_CONVERGED;
		set_why(s, "converged after round %u: %" PRIu64 " pages remain, %.1f ms at %.1f MB/s <= %u ms target",
			round, remaining, need_ms, rate / 1e6,
			s->o.max_downtime_ms);
		return true;
	}
	/* prev_remaining is the whole region before round 1: a first round
	 * that sees 90 % of memory re-dirtied cannot converge either */
	if (dirty_rate >= rate || remaining * 10 >= prev_remaining * 9) {
		*reason = RPAGE_LIVE_NOT_CONVERGING;
		set_why(s, "not converging after round %u: dirty rate %.1f MB/s vs send rate %.1f MB/s, %" PRIu64 " pages remain (was %" PRIu64 "), %.0f ms needed > %u ms target",
			round, dirty_rate / 1e6, rate / 1e6, remaining,
			prev_remaining, need_ms, s->o.max_downtime_ms);
		return true;
	}
	if (round >= s->o.max_rounds) {
		*reason = RPAGE_LIVE_MAX_ROUNDS;
		set_why(s, "%u rounds done (the maximum): %" PRIu64 " pages remain, %.0f ms needed > %u ms target",
			round, remaining, need_ms, s->o.max_downtime_ms);
		return true;
	}
	return false;
}

static void set_all(struct rp_bitmap *b)
{
	for (uint64_t i = 0; i < b->nbits; i++)
		rp_bit_set(b, i);
}

static int live_setup_connections(struct rpage_live_source *s,
				  const char *host, const char *port);

/* Errors of the link, not of the peer's judgement: worth reconnecting. */
static bool precopy_retryable(const struct rpage_live_source *s, int err)
{
	return !s->peer_refused && err != -EPROTO && err != -EACCES &&
	       err != -ENOMEM && err != -EINVAL && err != -EPERM;
}

static void close_connections(struct rpage_live_source *s)
{
	rp_conn_close(&s->ctl);
	for (unsigned i = 0; i < s->o.streams; i++)
		rp_conn_close(&s->strm[i]);
}

/*
 * The connections broke (@err) during the pre-copy round after @done
 * rounds. Whatever that round was to send is pending again (what did
 * arrive is sent again: the destination acknowledges only whole rounds),
 * then the connections come back with exponential backoff and jitter for
 * up to PRECOPY_RESUME_MS; the destination, which waits as long, takes
 * them as the same session (its token, its identity). 0 when they are
 * back and the round can be run again.
 */
static int precopy_reconnect(struct rpage_live_source *s, uint32_t done,
			     int err)
{
	uint64_t t0 = rp_now_ns(), deadline = t0 + PRECOPY_RESUME_MS * 1000000ull;
	unsigned delay = 100, attempt = 0, jit;
	int ret;

	for (uint64_t i = 0; i < (s->npages + 63) / 64; i++)
		__atomic_fetch_or(&s->pending.w[i], s->round_set.w[i],
				  __ATOMIC_ACQ_REL);
	rp_warn("pre-copy round %u to %s broke (%s): reconnecting; the round will be sent again",
		done + 1, s->peer, strerror(-err));
	pthread_mutex_lock(&s->slock);
	s->st.recovering = 1;
	pthread_mutex_unlock(&s->slock);
	for (;;) {
		attempt++;
		close_connections(s);
		ret = live_setup_connections(s, s->host, s->port);
		if (!ret || !precopy_retryable(s, ret) || rp_now_ns() >= deadline)
			break;
		if (getrandom(&jit, sizeof(jit), GRND_NONBLOCK) != sizeof(jit))
			jit = (unsigned)rp_now_ns();
		usleep((delay / 2 + jit % (delay / 2 + 1)) * 1000u);
		delay = RP_MIN(delay * 2, 5000u);
	}
	pthread_mutex_lock(&s->slock);
	s->st.recovering = 0;
	if (!ret)
		s->st.reconnects++;
	pthread_mutex_unlock(&s->slock);
	if (ret) {
		close_connections(s);
		return ret;
	}
	s->round_base = done;
	rp_info("reconnected to %s after %.3f s (attempt %u): pre-copy goes on with round %u again",
		s->peer, (double)(rp_now_ns() - t0) / 1e9, attempt, done + 1);
	return 0;
}

static int precopy(struct rpage_live_source *s, enum rpage_live_reason *reason)
{
	uint64_t prev = s->npages, remaining;
	uint32_t round = 0;
	int ret;

	ret = rp_dirty_start(s->mem, s->length, s->psize,
			     s->o.force_sync_wp != 0, &s->dirty);
	if (ret)
		return ret;
	s->st.tracking = rp_dirty_get_mode(s->dirty);
	rp_info("pre-copy to %s: %" PRIu64 " pages, %u streams, dirty tracking by %s",
		s->peer, s->npages, s->o.streams,
		rp_dirty_mode_name(rp_dirty_get_mode(s->dirty)));
	for (;;) {
		struct rpage_live_round_stats rs = { 0 };
		uint64_t c0;
		int64_t n;

		round++;
		memcpy(s->round_set.w, s->pending.w, (s->npages + 63) / 64 * 8);
		ret = run_round(s, round, false, &rs);
		if (ret && precopy_retryable(s, ret)) {
			ret = precopy_reconnect(s, round - 1, ret);
			if (!ret) {
				round--;
				continue;
			}
		}
		if (ret)
			return ret;
		c0 = rp_now_ns();
		n = rp_dirty_collect(s->dirty, &s->pending);
		if (n < 0)
			return (int)n;
		rs.dirtied = (uint64_t)n;
		remaining = rp_bitmap_weight(&s->pending);
		pthread_mutex_lock(&s->slock);
		s->st.collect_ns += rp_now_ns() - c0;
		s->st.round[round - 1] = rs;
		s->st.rounds = round;
		if (rs.ns && rs.bytes >= (1u << 20))
			s->st.send_rate_Bps = rs.bytes * 1000000000ull / rs.ns;
		else if (!s->st.send_rate_Bps && rs.ns)
			s->st.send_rate_Bps = rs.bytes * 1000000000ull / rs.ns;
		pthread_mutex_unlock(&s->slock);
		rp_info("round %u: %" PRIu64 " pages in %.1f ms (%.1f MB/s), %" PRIu64 " dirtied, %" PRIu64 " remain",
			round, rs.pages, (double)rs.ns / 1e6,
			rs.ns ? (double)rs.bytes * 1e3 / (double)rs.ns : 0.0,
			rs.dirtied, remaining);
		if (should_switch(s, round, remaining, prev, &rs, reason))
			return 0;
		prev = remaining;
	}
}

/*
 * The steps of a migration, in order. Each returns 0 or -errno and, on
 * failure, has already set the reason in the stats (why) and done what the
 * failure requires of the workload (resumed it here, or left it paused).
 */

/* Connects the control and stream connections to the destination (each
 * authenticated when there are credentials). No page server yet: it
 * starts at the switchover, and only for post-copy. */
static int live_setup_connections(struct rpage_live_source *s,
				  const char *host, const char *port)
{
	int ret;

	ret = live_connect(s, host, port, RP_LIVE_ROLE_CONTROL, 0, &s->ctl);
	for (unsigned i = 0; !ret && i < s->o.streams; i++)
		ret = live_connect(s, host, port, RP_LIVE_ROLE_STREAM,
				   (uint8_t)i, &s->strm[i]);
	if (ret)
		set_why(s, "setting up the migration to %s failed: %s", s->peer,
			strerror(-ret));
	return ret;
}

/* Pre-copy rounds while the workload runs (none in post-copy mode); in
 * pre-copy mode, gives up when the rounds cannot converge. */
static int live_run_precopy(struct rpage_live_source *s, uint64_t t_start,
			    enum rpage_live_reason *reason)
{
	int ret;

	set_all(&s->pending);
	if (s->o.mode != RPAGE_LIVE_POSTCOPY) {
		ret = precopy(s, reason);
		if (ret) {
			set_why(s, "destination %s lost during pre-copy round %u (%s): the workload keeps running here, its memory untouched",
				s->peer, s->st.rounds + 1, strerror(-ret));
			return ret;
		}
	} else {
		set_why(s, "post-copy only: switching at once");
	}
	s->st.reason = *reason;
	s->st.precopy_ns = rp_now_ns() - t_start;
	if (s->o.mode == RPAGE_LIVE_PRECOPY &&
	    (*reason == RPAGE_LIVE_NOT_CONVERGING ||
	     *reason == RPAGE_LIVE_MAX_ROUNDS)) {
		char msg[512];

		snprintf(msg, sizeof(msg),
			 "pre-copy refuses to finish: %s; the workload runs on here (hybrid mode bounds the time)",
			 s->st.why);
		set_why(s, "%s", msg);
		send_abort(s, ETIMEDOUT, msg);
		return -ETIMEDOUT;
	}
	return 0;
}

/* Pauses the workload (the application's callback) and takes the final
 * dirty set; tracking ends here. *paused tells whether it is paused. */
static int live_pause_workload(struct rpage_live_source *s, bool *paused)
{
	int64_t n;
	int ret;

	ret = s->o.pause(s->o.arg);
	if (ret) {
		set_why(s, "the pause callback failed: %s", strerror(-ret));
		send_abort(s, ECANCELED, "the source could not pause its workload");
		return ret;
	}
	*paused = true;
	if (!s->dirty)
		return 0;
	n = rp_dirty_collect(s->dirty, &s->pending);
	rp_dirty_stop(s->dirty);
	s->dirty = NULL;
	if (n < 0) {
		ret = (int)n;
		send_abort(s, -ret, "the source lost its dirty tracking");
		resume_here(s, "collecting the final dirty set failed", ret);
		return ret;
	}
	return 0;
}

/* Hybrid: stop-and-copy when what remains fits the target (converged, or
 * an explicit request that happens to fit), else post-copy; pre-copy
 * mode always copies. Sets *stop_copy and sends the final round, or, for
 * post-copy, starts the page server (the workload is paused now). */
static int live_final_copy(struct rpage_live_source *s, bool *stop_copy)
{
	struct rpage_live_round_stats rs = { 0 };
	int ret;

	*stop_copy = s->o.mode == RPAGE_LIVE_PRECOPY ||
		     (s->o.mode == RPAGE_LIVE_HYBRID && s->fits);
	if (!*stop_copy) {
		/* post-copy: the page server starts now, over the paused
		 * workload, for the authenticated destination alone */
		uint16_t port16 = 0;

		ret = start_page_server(s, &port16);
		s->st.postcopy_port = port16;
		if (ret) {
			send_abort(s, -ret, "the source could not start its page server");
			resume_here(s, "starting the post-copy page server failed", ret);
		}
		return ret;
	}
	ret = run_round(s, s->st.rounds + 1, true, &rs);
	if (ret) {
		resume_here(s, "destination lost during the final copy", ret);
		return ret;
	}
	s->st.final_pages = rs.pages;
	return 0;
}

/* Sends SWITCHOVER (with the pages left to post-copy, unless @stop_copy)
 * and waits for the destination to say it resumed. The workload resumes
 * here only when the destination certainly did not. */
static int live_switchover(struct rpage_live_source *s,
			   enum rpage_live_reason reason, bool stop_copy,
			   uint64_t t_pause, uint64_t *t_resume)
{
	uint8_t buf[8 + RP_MAX_ERRMSG];
	struct rp_live_switch sw = { 0 };
	struct rp_live_status ack;
	const char *why = NULL;
	uint8_t *swbuf;
	uint32_t len;
	int ret;

	sw.flags = stop_copy ? 0 : RP_LIVE_SW_POSTCOPY;
	sw.port = s->st.postcopy_port;
	sw.round = s->st.rounds;
	sw.npages = s->npages;
	sw.ndrop = stop_copy ? 0 : rp_bitmap_weight(&s->pending);
	sw.bits = stop_copy ? NULL : s->pending.w;
	s->st.postcopy_pages = sw.ndrop;
	swbuf = malloc(rp_live_switch_size(s->npages));
	if (!swbuf)
		return -ENOMEM;
	ret = rp_conn_send_frame(&s->ctl, RP_MSG_LIVE_SWITCHOVER, 0, swbuf,
				 (uint32_t)rp_live_switch_encode(swbuf, &sw));
	free(swbuf);
	if (ret) {
		/* the frame did not leave whole: the destination cannot act
		 * on it, so it cannot have resumed */
		resume_here(s, "sending the switchover failed", ret);
		return ret;
	}
	ret = ctl_expect(s, RP_MSG_LIVE_SWITCHOVER_ACK, buf, sizeof(buf), &len);
	if (!ret && rp_live_status_decode(buf, len, &ack, &why)) {
		rp_err("destination %s: %s", s->peer, why);
		ret = -EPROTO;
	}
	if ((!ret && ack.status) || (ret && s->peer_refused)) {
		/* the destination says it failed, or rejected the message
		 * with an ERROR frame: either way it did not resume */
		if (!ret)
			ret = -ack.status;
		resume_here(s, "the destination refused the switchover", ret);
		return ret;
	}
	*t_resume = rp_now_ns();
	if (ret) {
		/* the switchover may have reached the destination: both sides
		 * must not run, so the workload stays paused here */
		set_why(s, "switchover interrupted (%s): the destination may have resumed, so the workload stays paused here, memory intact",
			strerror(-ret));
		return ret;
	}
	s->st.downtime_ns = *t_resume - t_pause;
	rp_info("switchover (%s): %" PRIu64 " pages sent while paused, %" PRIu64 " left to post-copy, downtime %.1f ms",
		rpage_live_reason_name(reason), s->st.final_pages, sw.ndrop,
		(double)s->st.downtime_ns / 1e6);
	return 0;
}

/* How long the page server waits for a destination whose control
 * connection broke in post-copy: as long as it keeps the session */
#define LIVE_POSTCOPY_GRACE_MS 60000ull

/*
 * The control connection broke during post-copy. The workload runs on the
 * destination now, with pages only this page server has: it keeps serving
 * (the destination's fault handler reconnects and resumes its session) until
 * the destination reports over it that every page has arrived, or until
 * the page server's grace period passes without it. 1 when complete.
 */
static int await_postcopy_without_ctl(struct rpage_live_source *s, int err)
{
	struct rpage_server_stats st = { 0 };
	uint64_t t0 = rp_now_ns(), grace = LIVE_POSTCOPY_GRACE_MS * 1000000ull;

	if (!s->srv)
		return err;
	rp_warn("destination %s: the control connection broke in post-copy (%s): the page server keeps serving the destination until it reports every page arrived (or sends no request for %.0f s)",
		s->peer, strerror(-err), (double)LIVE_POSTCOPY_GRACE_MS / 1e3);
	__atomic_store_n(&s->st.recovering, 1, __ATOMIC_RELEASE);
	for (uint64_t last = t0, reqs = 0;;) {
		rpage_server_get_stats(s->srv, &st);
		if (st.completions)
			break;
		/* the grace counts from the destination's last request: a
		 * long post-copy still going on is not given up */
		if (st.page_requests != reqs) {
			reqs = st.page_requests;
			last = rp_now_ns();
		}
		if (rp_now_ns() - last >= grace)
			break;
		usleep(20000);
	}
	__atomic_store_n(&s->st.recovering, 0, __ATOMIC_RELEASE);
	if (!st.completions)
		return err;
	rp_info("destination %s: every page arrived (reported to the page server after %.3f s without the control connection)",
		s->peer, (double)(rp_now_ns() - t0) / 1e9);
	return 1;
}

/* Post-copy: the page server answers the destination's faults and fill;
 * waits for the destination to report the end. */
static int live_await_postcopy(struct rpage_live_source *s, uint64_t t_resume)
{
	uint8_t buf[8 + RP_MAX_ERRMSG];
	struct rp_live_status ack;
	const char *why = NULL;
	uint32_t len;
	int ret;

	ret = ctl_expect(s, RP_MSG_LIVE_COMPLETE, buf, sizeof(buf), &len);
	if (ret && ret != -EPROTO && !s->peer_refused)
		ret = await_postcopy_without_ctl(s, ret);
	if (ret == 1) {
		/* complete, as the page server was told */
		s->st.postcopy_ns = rp_now_ns() - t_resume;
		return 0;
	}
	if (!ret && rp_live_status_decode(buf, len, &ack, &why)) {
		rp_err("destination %s: %s", s->peer, why);
		ret = -EPROTO;
	}
	if (!ret && ack.status) {
		ret = -ack.status;
		rp_err("destination %s: post-copy failed there: %s (%" PRIu64 " of %" PRIu64 " pages resident)",
		       s->peer, strerror(ack.status), ack.resident, s->npages);
	}
	s->st.postcopy_ns = rp_now_ns() - t_resume;
	if (ret) {
		set_why(s, "post-copy ended with an error (%s): the workload stays paused here with its memory intact; the destination holds newer writes, so it cannot resume here",
			strerror(-ret));
		rp_err("%s", s->st.why);
	}
	return ret;
}

/* Ends tracking and the page server, whatever step the migration
 * reached; the connections stay until rpage_live_source_free. */
static void live_teardown(struct rpage_live_source *s)
{
	if (s->dirty) {
		rp_dirty_stop(s->dirty);
		s->dirty = NULL;
	}
	if (s->srv) {
		rpage_server_free(s->srv);
		s->srv = NULL;
	}
}

RP_EXPORT int rpage_live_source_migrate(struct rpage_live_source *s,
					const char *host, const char *port)
{
	enum rpage_live_reason reason = RPAGE_LIVE_POSTCOPY_ONLY;
	uint64_t t_start = rp_now_ns(), t_pause = 0, t_resume = 0;
	bool stop_copy = false, paused = false;
	int ret;

	snprintf(s->peer, sizeof(s->peer), "%s:%s", host, port);
	snprintf(s->host, sizeof(s->host), "%s", host);
	snprintf(s->port, sizeof(s->port), "%s", port);
	if (getrandom(&s->session, sizeof(s->session), 0) != sizeof(s->session))
		return -EIO;
	s->session |= 1;
	ret = live_setup_connections(s, host, port);
	if (!ret)
		ret = live_run_precopy(s, t_start, &reason);
	if (!ret) {
		t_pause = rp_now_ns();
		ret = live_pause_workload(s, &paused);
	}
	if (!ret)
		ret = live_final_copy(s, &stop_copy);
	if (!ret)
		ret = live_switchover(s, reason, stop_copy, t_pause, &t_resume);
	if (!ret)
		ret = live_await_postcopy(s, t_resume);
	s->st.total_ns = rp_now_ns() - t_start;
	s->st.error = ret;
	live_teardown(s);
	if (ret && !paused && s->st.why[0])
		rp_err("%s", s->st.why);
	return ret;
}

RP_EXPORT void rpage_live_source_free(struct rpage_live_source *s)
{
	if (!s)
		return;
	if (s->dirty)
		rp_dirty_stop(s->dirty);
	if (s->srv)
		rpage_server_free(s->srv);
	rp_conn_close(&s->ctl);
	for (unsigned i = 0; i < s->o.streams; i++)
		rp_conn_close(&s->strm[i]);
	free(s->strm);
	rp_bitmap_free(&s->pending);
	rp_bitmap_free(&s->round_set);
	pthread_mutex_destroy(&s->slock);
	free(s);
}
