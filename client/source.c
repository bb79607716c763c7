/* SPDX-License-Identifier: MIT */
/*
 * The destination's handle on a source of pages: a remote rpage-server
 * (control connection + region table) or a local file, and
 * rp_source_dial, which sets up every TCP connection to the server: the
 * security policy, TLS, HELLO.
 *
 * Threads: the caller's; afterwards the control connection is shared by
 * the transports (RDMA set-up, DONE notices) under ctl_lock.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/net.h"
#include "client_int.h"

RP_EXPORT const char *rpage_transport_name(enum rpage_transport t)
{
	switch (t) {
	case RPAGE_TRANSPORT_AUTO:
		return "auto";
	case RPAGE_TRANSPORT_LOCAL:
		return "local";
	case RPAGE_TRANSPORT_TCP:
		return "tcp";
	case RPAGE_TRANSPORT_RDMA:
		return "rdma";
	}
	return "?";
}

RP_EXPORT int rpage_transport_parse(const char *s)
{
	for (int t = RPAGE_TRANSPORT_AUTO; t <= RPAGE_TRANSPORT_RDMA; t++)
		if (!strcmp(s, rpage_transport_name((enum rpage_transport)t)))
			return t;
	return -EINVAL;
}

static struct rpage_source *source_alloc(void)
{
	struct rpage_source *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	rp_conn_init(&s->ctl, -1);
	s->local_fd = -1;
	pthread_mutex_init(&s->ctl_lock, NULL);
	pthread_cond_init(&s->rcond, NULL);
	return s;
}

/* The region table on @c: a malloc'ed array in *out (caller frees). */
static int fetch_regions(struct rp_conn *c, struct rp_region_desc **out,
			 unsigned *n, const char *peer)
{
	struct rp_hdr h;
	const char *why = NULL;
	uint32_t cap = 4 + RP_MAX_REGIONS * (32 + 256);
	uint8_t *buf = malloc(cap);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = rp_conn_send_frame(c, RP_MSG_REGIONS_REQ, 2, NULL, 0);
	if (!ret)
		ret = rp_conn_recv_frame(c, &h, buf, cap, &why);
	if (!ret && h.type != RP_MSG_REGIONS) {
		why = "answered the region request with something else";
		ret = -EPROTO;
	}
	if (!ret)
		ret = rp_regions_decode(buf, h.len, out, n, &why);
	if (ret == -EPROTO)
		rp_err("server %s: %s", peer, why ? why : "protocol error");
	free(buf);
	return ret;
}

RP_EXPORT int rpage_source_connect(const char *host, const char *port,
				   enum rpage_transport transport,
				   struct rpage_source **out)
{
	struct rpage_connect_opts o = { .transport = transport };

	return rpage_source_connect_opts(host, port, &o, out);
}

RP_EXPORT int rpage_source_connect_opts(const char *host, const char *port,
					const struct rpage_connect_opts *opts,
					struct rpage_source **out)
{
	enum rpage_transport transport =
		opts ? opts->transport : RPAGE_TRANSPORT_AUTO;
	struct rpage_source *s;
	struct rp_hello_ack ack;
	char peer[300];
	int ret;

	if (transport == RPAGE_TRANSPORT_LOCAL)
		return -EINVAL;
	if (strlen(host) >= sizeof(s->host) || strlen(port) >= sizeof(s->port))
		return -ENAMETOOLONG;
	s = source_alloc();
	if (!s)
		return -ENOMEM;
	s->transport = RPAGE_TRANSPORT_TCP;
	strcpy(s->host, host);
	strcpy(s->port, port);
	s->tls = opts ? opts->tls : NULL;
	s->insecure = opts && opts->insecure;
	snprintf(peer, sizeof(peer), "%s:%s", host, port);
	ret = rp_source_dial(s, RP_ROLE_CONTROL, &s->ctl, &ack);
	if (ret)
		goto fail;
	rp_info("connected to %s: %s", peer, s->ctl.desc);
	s->session = ack.session;
	s->features = ack.features;
	ret = fetch_regions(&s->ctl, &s->regions, &s->nregions, peer);
	if (ret)
		goto fail;
	if (transport != RPAGE_TRANSPORT_TCP) {
		/* logs the choice (auto) or the reason it cannot (rdma) */
		ret = rp_rdma_source_setup(s, opts, peer);
		if (!ret)
			s->transport = RPAGE_TRANSPORT_RDMA;
		else if (transport == RPAGE_TRANSPORT_RDMA || ret == -EPROTO)
			goto fail;
		ret = 0;
	}
	*out = s;
	return 0;
fail:
	rpage_source_close(s);
	return ret;
}

RP_EXPORT int rpage_source_open_local(const char *name, const char *path,
				      struct rpage_source **out)
{
	struct rpage_source *s;
	struct stat sb;
	int ret;

	if (!rp_valid_name(name, strlen(name)))
		return -EINVAL;
	s = source_alloc();
	if (!s)
		return -ENOMEM;
	s->transport = RPAGE_TRANSPORT_LOCAL;
	s->local_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->local_fd < 0) {
		ret = -errno;
		rp_err("cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(s->local_fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    sb.st_size <= 0 || sb.st_size % RP_PAGE_4K) {
		rp_err("%s: not a regular file whose size is a positive multiple of 4 KiB",
		       path);
		ret = -EINVAL;
		goto fail;
	}
	s->regions = calloc(1, sizeof(*s->regions));
	if (!s->regions) {
		ret = -ENOMEM;
		goto fail;
	}
	s->nregions = 1;
	s->regions[0].length = (uint64_t)sb.st_size;
	s->regions[0].page_size = RP_PAGE_4K;
	s->regions[0].name_len = (uint16_t)strlen(name);
	strcpy(s->regions[0].name, name);
	*out = s;
	return 0;
fail:
	rpage_source_close(s);
	return ret;
}

RP_EXPORT int rpage_source_region_count(const struct rpage_source *src)
{
	return (int)src->nregions;
}

RP_EXPORT int rpage_source_region_info(const struct rpage_source *src,
				       unsigned idx,
				       struct rpage_region_info *info)
{
	if (idx >= src->nregions)
		return -ENOENT;
	memset(info, 0, sizeof(*info));
	memcpy(info->name, src->regions[idx].name, src->regions[idx].name_len);
	info->length = src->regions[idx].length;
	info->page_size = src->regions[idx].page_size;
	info->id = idx;
	return 0;
}

RP_EXPORT int rpage_source_find_region(const struct rpage_source *src,
				       const char *name)
{
	for (unsigned i = 0; i < src->nregions; i++)
		if (!strcmp(src->regions[i].name, name))
			return (int)i;
	return -ENOENT;
}

RP_EXPORT enum rpage_transport
rpage_source_transport(const struct rpage_source *src)
{
	return src->transport;
}

RP_EXPORT void rpage_source_close(struct rpage_source *src)
{
	if (!src)
		return;
	/* a normal end: the server need not keep the session for a resume */
	if (src->ctl.fd >= 0) {
		pthread_mutex_lock(&src->ctl_lock);
		rp_conn_send_frame(&src->ctl, RP_MSG_BYE, 0, NULL, 0);
		pthread_mutex_unlock(&src->ctl_lock);
	}
	rp_conn_close(&src->ctl);
	if (src->local_fd >= 0)
		close(src->local_fd);
	free(src->regions);
	rp_rdma_source_free(src->rdma);
	pthread_mutex_destroy(&src->ctl_lock);
	pthread_cond_destroy(&src->rcond);
	free(src);
}

int rp_source_open_chan(struct rpage_source *src, enum rp_role role,
			struct rp_chan **out)
{
	switch (src->transport) {
	case RPAGE_TRANSPORT_LOCAL:
		return rp_local_chan_open(src, out);
	case RPAGE_TRANSPORT_TCP:
		return rp_tcp_chan_open(src, role, out);
	case RPAGE_TRANSPORT_RDMA:
		return rp_rdma_chan_open(src, role, out);
	default:
		return -EPROTONOSUPPORT;
	}
}

#define RP_DONE_RETRY_MS 10000ull

void rp_source_notify_done(struct rpage_source *src, uint32_t region)
{
	uint8_t b[4] = { (uint8_t)region, (uint8_t)(region >> 8),
			 (uint8_t)(region >> 16), (uint8_t)(region >> 24) };

	pthread_mutex_lock(&src->ctl_lock);
	if (src->ctl.fd < 0) {
		pthread_mutex_unlock(&src->ctl_lock);
		return;
	}
	pthread_mutex_unlock(&src->ctl_lock);
	/* the server may wait for this report (a live migration's source
	 * whose control connection broke): a broken control connection is
	 * reconnected once, for up to RP_DONE_RETRY_MS */
	for (int tries = 0; tries < 2; tries++) {
		uint64_t gen = rp_source_gen(src);
		int ret;

		pthread_mutex_lock(&src->ctl_lock);
		ret = rp_conn_send_frame(&src->ctl, RP_MSG_DONE, 0, b, sizeof(b));
		pthread_mutex_unlock(&src->ctl_lock);
		if (!ret || tries)
			return;
		rp_warn("could not report the memory complete to the server (%s): reconnecting once",
			strerror(-ret));
		if (rp_source_recover(src, gen, rp_now_ns() + RP_DONE_RETRY_MS * 1000000ull, -1))
			return;
	}
}

RP_EXPORT int rpage_source_security(const struct rpage_source *src,
				    char *buf, size_t len)
{
	if (src->transport == RPAGE_TRANSPORT_LOCAL)
		snprintf(buf, len, "local file");
	else if (src->ctl.mode == RP_CONN_PLAIN)
		snprintf(buf, len, "plain TCP (no credentials%s)",
			 src->insecure ? ", --insecure" : ", loopback");
	else
		snprintf(buf, len, "%s", src->ctl.desc);
	return 0;
}

int rp_source_dial(struct rpage_source *src, enum rp_role role,
		   struct rp_conn *out, struct rp_hello_ack *ack)
{
	char peer[300];
	int fd, ret;

	snprintf(peer, sizeof(peer), "%s:%s", src->host, src->port);
	fd = rp_tcp_connect(src->host, src->port);
	if (fd < 0) {
		rp_err("cannot connect to rpage-server at %s: %s", peer,
		       fd == -ENOENT ? "name does not resolve" : strerror(-fd));
		return fd;
	}
	rp_conn_init(out, fd);
	if (!src->tls && !src->insecure && !rp_fd_peer_is_loopback(fd)) {
		rp_err("refusing to fetch memory from %s without authentication: give credentials (--psk-file FILE, or --tls-cert/--tls-key/--tls-ca) or say --insecure",
		       peer);
		ret = -EACCES;
		goto fail;
	}
	ret = rp_conn_set_deadline(out, rp_now_ns() +
					       RP_DIAL_MS * 1000000ull);
	if (!ret && src->tls)
		ret = rp_tls_client(out, src->tls, src->host);
	/* a control connection names the session it had, if any: the
	 * server resumes it when it still keeps it */
	if (!ret) {
		uint64_t session;

		/* another attachment's reconnect may be setting it */
		pthread_mutex_lock(&src->ctl_lock);
		session = src->session;
		pthread_mutex_unlock(&src->ctl_lock);
		ret = rp_tcp_hello(out, role, session, ack, peer);
	}
	if (ret == -ETIMEDOUT)
		rp_err("server %s: no answer to the hello within %d ms", peer,
		       RP_DIAL_MS);
	if (!ret)
		ret = rp_conn_set_deadline(out, 0);
	if (!ret)
		return 0;
fail:
	rp_conn_close(out);
	return ret;
}

uint64_t rp_source_gen(struct rpage_source *src)
{
	uint64_t g;

	pthread_mutex_lock(&src->ctl_lock);
	g = src->gen;
	pthread_mutex_unlock(&src->ctl_lock);
	return g;
}

/* Is the region table @nr (@nn regions) the same memory as @src's? Every
 * region known before must be there, at its index, with its name, size,
 * page size and identity. */
static int same_image(const struct rpage_source *src,
		      const struct rp_region_desc *nr, unsigned nn,
		      const char *peer)
{
	for (unsigned i = 0; i < src->nregions; i++) {
		const struct rp_region_desc *o = &src->regions[i];

		if (i >= nn || strcmp(o->name, nr[i].name)) {
			rp_err("server %s no longer serves region '%s' as before: not resuming",
			       peer, o->name);
			return -ESTALE;
		}
		if (o->length != nr[i].length || o->page_size != nr[i].page_size ||
		    o->identity != nr[i].identity) {
			rp_err("server %s: region '%s' is not the image this memory came from any more (%s changed): not resuming, no page of it may be placed",
			       peer, o->name,
			       o->length != nr[i].length ? "its size"
			       : o->page_size != nr[i].page_size ? "its page size"
								 : "its identity: the file was replaced or written");
			return -ESTALE;
		}
	}
	return 0;
}

/* One reconnection: a control connection (resuming the session where the
 * server keeps it), the region table checked, RDMA told where to go. */
static int reconnect_once(struct rpage_source *src, const char *peer)
{
	struct rp_region_desc *nr = NULL;
	struct rp_hello_ack ack;
	struct rp_conn nc, old;
	unsigned nn = 0;
	int ret;

	ret = rp_source_dial(src, RP_ROLE_CONTROL, &nc, &ack);
	if (ret)
		return ret;
	ret = fetch_regions(&nc, &nr, &nn, peer);
	if (!ret)
		ret = same_image(src, nr, nn, peer);
	free(nr);
	if (ret) {
		rp_conn_close(&nc);
		return ret;
	}
	pthread_mutex_lock(&src->ctl_lock);
	/* a TLS connection knows its own address: move, never copy */
	rp_conn_move(&old, &src->ctl);
	rp_conn_move(&src->ctl, &nc);
	if (ack.session != src->session)
		rp_info("server %s: a new session (the old one is gone: a restarted server, or the grace period passed)",
			peer);
	src->session = ack.session;
	src->features = ack.features;
	pthread_mutex_unlock(&src->ctl_lock);
	rp_conn_close(&old);
	return src->transport == RPAGE_TRANSPORT_RDMA
		       ? rp_rdma_source_refresh(src, peer) : 0;
}

/* Sleeps @ms, or until @stop_efd is readable (-ECANCELED). */
static int backoff_sleep(unsigned ms, int stop_efd)
{
	struct pollfd pf = { stop_efd, POLLIN, 0 };

	if (stop_efd < 0) {
		usleep(ms * 1000u);
		return 0;
	}
	return poll(&pf, 1, (int)ms) > 0 ? -ECANCELED : 0;
}

int rp_source_recover(struct rpage_source *src, uint64_t seen_gen,
		      uint64_t deadline_ns, int stop_efd)
{
	char peer[300];
	unsigned delay = 100, attempt = 0;
	uint64_t t0 = rp_now_ns(), jit;
	int ret;

	if (src->transport == RPAGE_TRANSPORT_LOCAL)
		return 0; /* a file: nothing to reconnect */
	snprintf(peer, sizeof(peer), "%s:%s", src->host, src->port);
	pthread_mutex_lock(&src->ctl_lock);
	/* another attachment reconnects already: wait for it, but not past
	 * our deadline, and not when we are asked to stop */
	while (src->recovering) {
		struct pollfd pf = { stop_efd, POLLIN, 0 };
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&src->rcond, &src->ctl_lock, &ts);
		if (!src->recovering)
			break;
		if ((stop_efd >= 0 && poll(&pf, 1, 0) > 0) ||
		    (deadline_ns && rp_now_ns() >= deadline_ns)) {
			pthread_mutex_unlock(&src->ctl_lock);
			return stop_efd >= 0 && poll(&pf, 1, 0) > 0 ? -ECANCELED
								     : -ETIMEDOUT;
		}
	}
	if (src->dead || src->gen != seen_gen) {
		ret = src->dead;
		pthread_mutex_unlock(&src->ctl_lock);
		return ret;
	}
	src->recovering = true;
	pthread_mutex_unlock(&src->ctl_lock);
	/* at once first: most breaks are one connection, the server is up */
	for (;;) {
		attempt++;
		ret = reconnect_once(src, peer);
		if (!ret || ret == -ESTALE || ret == -EACCES ||
		    ret == -EPROTONOSUPPORT)
			break;
		if (deadline_ns && rp_now_ns() >= deadline_ns) {
			ret = -ETIMEDOUT;
			break;
		}
		/* exponential backoff with full jitter in its upper half, so
		 * many clients of one restarted server do not come back in
		 * step */
		if (getrandom(&jit, sizeof(jit), GRND_NONBLOCK) != sizeof(jit))
			jit = rp_now_ns();
		rp_warn("server %s: reconnecting (attempt %u, %.1f s so far): %s",
			peer, attempt, (double)(rp_now_ns() - t0) / 1e9,
			strerror(-ret));
		ret = backoff_sleep(delay / 2 + (unsigned)(jit % (delay / 2 + 1)),
				    stop_efd);
		if (ret)
			break;
		delay = RP_MIN(delay * 2, 5000u);
	}
	pthread_mutex_lock(&src->ctl_lock);
	src->recovering = false;
	if (!ret) {
		src->gen++;
		src->reconnects++;
	} else if (ret == -ESTALE || ret == -EACCES || ret == -EPROTONOSUPPORT) {
		src->dead = ret;
	}
	pthread_cond_broadcast(&src->rcond);
	pthread_mutex_unlock(&src->ctl_lock);
	if (!ret)
		rp_info("server %s: reconnected after %.3f s (attempt %u)", peer,
			(double)(rp_now_ns() - t0) / 1e9, attempt);
	return ret;
}
