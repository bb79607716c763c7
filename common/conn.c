/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing a connection (see tls.h): plain TCP, TLS in the
 * kernel (the same system calls as plain TCP: the kernel seals and opens
 * the records, so sendfile and readv keep working), or TLS in user space
 * (GnuTLS). Every byte read here is still untrusted: these functions only
 * move bytes, the decoders in proto*.c judge them.
 *
 * No thread of its own; see tls.h for what may run concurrently.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "net.h"
#include "proto.h"
#include "rp.h"
#include "tls.h"

/* First chunk of page data sealed together with its header (one record
 * holds at most 16 KiB). */
#define CORK_DATA (16384u - RP_HDR_LEN - RP_PAGE_DATA_HDR)

void rp_conn_init(struct rp_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	snprintf(c->desc, sizeof(c->desc), "plain TCP");
	if (fd >= 0)
		rp_peer_name(fd, c->peer, sizeof(c->peer));
}

void rp_conn_close(struct rp_conn *c)
{
	rp_tls_session_free(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->mode = RP_CONN_PLAIN;
	c->ktls_rx = c->ktls_tx = false;
}

void rp_conn_close_write(struct rp_conn *c)
{
	if (c->mode == RP_CONN_TLS && c->session && !c->ktls_tx)
		gnutls_bye(c->session, GNUTLS_SHUT_WR);
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_WR);
}

void rp_conn_shutdown(struct rp_conn *c)
{
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
}

int rp_conn_set_deadline(struct rp_conn *c, uint64_t deadline_ns)
{
	int ret = rp_set_nonblock(c->fd, deadline_ns != 0);

	if (!ret)
		c->deadline_ns = deadline_ns;
	return ret;
}

/* After EAGAIN: waits for @ev until the deadline. 0 to retry, -ETIMEDOUT,
 * or -EAGAIN on a blocking socket (its receive or send timeout fired). */
static int io_wait(struct rp_conn *c, short ev)
{
	struct pollfd pf = { c->fd, ev, 0 };
	uint64_t now;
	int r;

	if (!c->deadline_ns)
		return -EAGAIN;
	now = rp_now_ns();
	if (now >= c->deadline_ns)
		return -ETIMEDOUT;
	r = poll(&pf, 1, (int)((c->deadline_ns - now) / 1000000 + 1));
	if (r < 0 && errno != EINTR)
		return -errno;
	return 0;
}

int rp_conn_wait_readable(struct rp_conn *c, int ms)
{
	struct pollfd pf = { c->fd, POLLIN, 0 };
	int r;

	if (c->mode == RP_CONN_TLS && !c->ktls_rx &&
	    (gnutls_record_check_pending(c->session) || rp_tls_readahead(c)))
		return 1;
	do
		r = poll(&pf, 1, ms);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r > 0;
}

/* A failed receive on a plain or kernel-TLS socket (errno set, not
 * EAGAIN or EINTR): its -errno, logged when it tells of tampering. */
static int sock_rx_err(struct rp_conn *c)
{
	if (c->ktls_rx && errno == EBADMSG)
		rp_err("TLS record from %s failed its integrity check (kernel TLS): it was corrupted or tampered with in flight; ending this connection",
		       c->peer);
	else if (c->ktls_rx && errno == EIO)
		return -ECONNRESET; /* a TLS alert (a control record) */
	return -errno;
}

/* A failed TLS read or write: the -errno it means, logged when it tells
 * of tampering. */
static int tls_fail(struct rp_conn *c, ssize_t g, bool rx)
{
	switch (g) {
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		return c->last_errno ? -c->last_errno : -EIO;
	case GNUTLS_E_PREMATURE_TERMINATION:
		return -ECONNRESET;
	case GNUTLS_E_DECRYPTION_FAILED:
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_RECORD_OVERFLOW:
		rp_err("TLS record from %s failed its integrity check (%s): it was corrupted or tampered with in flight; ending this connection",
		       c->peer, gnutls_strerror((int)g));
		c->last_errno = EBADMSG;
		return -EBADMSG;
	default:
		rp_warn("TLS %s %s: %s: ending this connection",
			rx ? "from" : "to", c->peer, gnutls_strerror((int)g));
		c->last_errno = rx ? ECONNRESET : EPIPE;
		return rx ? -ECONNRESET : -EPIPE;
	}
}

/* One readv on a plain or kernel-TLS socket: the count (> 0) or
 * -errno. */
static ssize_t sock_readv(struct rp_conn *c, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	for (;;) {
		ssize_t r = recvmsg(c->fd, &mh, c->rx_nowait ? MSG_DONTWAIT : 0);

		if (r > 0)
			return r;
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return sock_rx_err(c);
		if (c->rx_nowait)
			return -EAGAIN;
		r = io_wait(c, POLLIN);
		if (r)
			return r;
	}
}

/* One receive of at most @len bytes: the count (> 0) or -errno. */
static ssize_t conn_recv(struct rp_conn *c, void *buf, size_t len)
{
	unsigned nodata = 0;

	for (;;) {
		ssize_t r;
		int w;

		if (c->mode == RP_CONN_TLS && !c->ktls_rx) {
			c->rx_blocked = false;
			r = gnutls_record_recv(c->session, buf, len);
			if (r > 0)
				return r;
			if (r == 0)
				return -ECONNRESET;
			if (r == GNUTLS_E_INTERRUPTED)
				continue;
			if (r != GNUTLS_E_AGAIN)
				return tls_fail(c, r, true);
			/* GnuTLS also says "again" after a record that holds no
			 * data (a TLS 1.3 KeyUpdate, a session ticket) while
			 * the socket or the read-ahead may hold the next one:
			 * only a socket that had nothing means wait */
			if (!c->rx_blocked &&
			    !gnutls_record_get_direction(c->session) &&
			    ++nodata < 64)
				continue;
			if (c->rx_nowait)
				return -EAGAIN; /* GnuTLS keeps a part record */
			w = io_wait(c, gnutls_record_get_direction(c->session)
					       ? POLLOUT : POLLIN);
		} else {
			struct iovec iov = { buf, len };

			return sock_readv(c, &iov, 1);
		}
		if (w)
			return w;
	}
}

/* One send of at most @len bytes: the count or -errno. */
static ssize_t conn_send(struct rp_conn *c, const void *buf, size_t len,
			 int flags)
{
	for (;;) {
		ssize_t r;
		int w;

		if (c->mode == RP_CONN_TLS && !c->ktls_tx) {
			r = gnutls_record_send(c->session, buf, len);
			if (r >= 0)
				return r;
			if (r == GNUTLS_E_INTERRUPTED)
				continue;
			if (r != GNUTLS_E_AGAIN)
				return tls_fail(c, r, false);
			/* GnuTLS keeps what it sealed: call again with the
			 * same data once the socket takes more */
		} else {
			r = send(c->fd, buf, len, flags | MSG_NOSIGNAL);
			if (r >= 0)
				return r;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
		}
		w = io_wait(c, POLLOUT);
		if (w)
			return w;
	}
}

int rp_conn_read_full(struct rp_conn *c, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t r = conn_recv(c, p, len);

		if (r < 0)
			return (int)r;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* User-space TLS: the records of one message are queued (corked) and
 * leave in as few system calls as the queue allows. */
static void tls_cork(struct rp_conn *c)
{
	if (c->mode == RP_CONN_TLS && !c->ktls_tx && c->wbuf)
		c->wcork = true;
}

static int tls_uncork(struct rp_conn *c, int ret)
{
	if (!c->wcork)
		return ret;
	c->wcork = false;
	while (!ret) {
		ret = rp_tls_flush(c);
		if (ret == -EAGAIN)
			ret = io_wait(c, POLLOUT);
		else
			break;
	}
	return ret;
}

static int write_full(struct rp_conn *c, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t r = conn_send(c, p, len, 0);

		if (r < 0)
			return (int)r;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* User-space TLS: the bytes of @iov sealed together, in as few records
 * as they fit (GnuTLS's own cork). */
static int tls_sealv(struct rp_conn *c, const struct iovec *iov, int n)
{
	int ret = 0;

	gnutls_record_cork(c->session);
	for (int i = 0; i < n && !ret; i++)
		ret = write_full(c, iov[i].iov_base, iov[i].iov_len);
	for (;;) {
		int r = gnutls_record_uncork(c->session, GNUTLS_RECORD_WAIT);

		if (ret || r >= 0)
			return ret;
		if (r == GNUTLS_E_INTERRUPTED)
			continue;
		ret = r == GNUTLS_E_AGAIN ? io_wait(c, POLLOUT)
					  : tls_fail(c, r, false);
	}
}

int rp_conn_write_full(struct rp_conn *c, const void *buf, size_t len)
{
	tls_cork(c);
	return tls_uncork(c, write_full(c, buf, len));
}

int rp_conn_sendv_full(struct rp_conn *c, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	if (c->mode == RP_CONN_TLS && !c->ktls_tx) {
		tls_cork(c);
		return tls_uncork(c, tls_sealv(c, iov, n));
	}
	while (mh.msg_iovlen) {
		ssize_t r = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				int w = io_wait(c, POLLOUT);

				if (w)
					return w;
				continue;
			}
			return -errno;
		}
		rp_iov_advance(&mh, (size_t)r);
	}
	return 0;
}

ssize_t rp_conn_readv(struct rp_conn *c, struct iovec *iov, int n)
{
	ssize_t got = 0;

	if (c->mode != RP_CONN_TLS || c->ktls_rx)
		return sock_readv(c, iov, n);
	/* user-space records: what one record holds, then whatever else
	 * GnuTLS has opened already, without waiting again */
	for (int i = 0; i < n; i++) {
		size_t off = 0;

		while (off < iov[i].iov_len) {
			ssize_t r;

			if (got && !gnutls_record_check_pending(c->session))
				return got;
			r = conn_recv(c, (char *)iov[i].iov_base + off,
				      iov[i].iov_len - off);
			if (r < 0)
				return got ? got : r;
			off += (size_t)r;
			got += r;
		}
	}
	return got;
}

ssize_t rp_conn_readv_nowait(struct rp_conn *c, struct iovec *iov, int n)
{
	ssize_t r;

	c->rx_nowait = true;
	r = rp_conn_readv(c, iov, n);
	c->rx_nowait = false;
	return r;
}

int rp_conn_send_with_data(struct rp_conn *c, const void *hdr, size_t hlen,
			   int file_fd, uint64_t off, const void *mem,
			   size_t len, bool *no_sendfile)
{
	if (c->mode == RP_CONN_TLS && !c->ktls_tx) {
		/* the header and the first bytes in one record, the rest in
		 * full records straight from the mapping */
		size_t first = RP_MIN(len, (size_t)CORK_DATA);
		struct iovec iov[2] = { { (void *)hdr, hlen },
					{ (void *)mem, first } };
		int ret;

		tls_cork(c);
		ret = tls_sealv(c, iov, 2);
		if (!ret && first < len)
			ret = write_full(c, (const char *)mem + first,
					 len - first);
		return tls_uncork(c, ret);
	}
	if (file_fd >= 0 && !*no_sendfile) {
		off_t o = (off_t)off;
		size_t left = len;
		ssize_t r;

		/* a short send of a small header on a blocking socket only
		 * happens on error */
		r = conn_send(c, hdr, hlen, MSG_MORE);
		if (r < 0)
			return (int)r;
		if ((size_t)r != hlen) {
			int ret = rp_conn_write_full(c, (const char *)hdr + r,
						     hlen - (size_t)r);
			if (ret)
				return ret;
		}
		while (left) {
			ssize_t n = sendfile(c->fd, file_fd, &o, left);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				int w = io_wait(c, POLLOUT);

				if (w)
					return w;
				continue;
			}
			if (n <= 0) {
				if (n < 0 && (errno == EINVAL || errno == ENOSYS) &&
				    left == len) {
					/* no splice for this file: fall back */
					*no_sendfile = true;
					return rp_conn_write_full(c, mem, len);
				}
				return n < 0 ? -errno : -EIO;
			}
			left -= (size_t)n;
		}
		return 0;
	}
	{
		struct iovec iov[2] = { { (void *)hdr, hlen },
					{ (void *)mem, len } };

		return rp_conn_sendv_full(c, iov, 2);
	}
}

int rp_conn_send_frame(struct rp_conn *c, uint16_t type, uint64_t tag,
		       const void *payload, uint32_t len)
{
	struct rp_hdr h = { .type = type, .len = len, .tag = tag };
	uint8_t hb[RP_HDR_LEN];
	struct iovec iov[2] = {
		{ hb, sizeof(hb) },
		{ (void *)payload, len },
	};

	rp_hdr_encode(hb, &h);
	return rp_conn_sendv_full(c, iov, len ? 2 : 1);
}

int rp_conn_recv_frame(struct rp_conn *c, struct rp_hdr *h, void *payload,
		       uint32_t cap, const char **why)
{
	uint8_t hb[RP_HDR_LEN];
	int ret;

	ret = rp_conn_read_full(c, hb, sizeof(hb));
	if (ret)
		return ret;
	ret = rp_hdr_decode(hb, h, why);
	if (ret)
		return ret;
	if (h->len > cap) {
		if (why)
			*why = "frame larger than expected here";
		return -EPROTO;
	}
	return rp_conn_read_full(c, payload, h->len);
}

const char *rp_conn_strerror(const struct rp_conn *c, int err)
{
	(void)c;
	return strerror(-err);
}
