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
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
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
	return s;
}

static int fetch_regions(struct rpage_source *s, const char *peer)
{
	struct rp_hdr h;
	const char *why = NULL;
	uint32_t cap = 4 + RP_MAX_REGIONS * (24 + 256);
	uint8_t *buf = malloc(cap);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = rp_conn_send_frame(&s->ctl, RP_MSG_REGIONS_REQ, 2, NULL, 0);
	if (!ret)
		ret = rp_conn_recv_frame(&s->ctl, &h, buf, cap, &why);
	if (!ret && h.type != RP_MSG_REGIONS) {
		why = "answered the region request with something else";
		ret = -EPROTO;
	}
	if (!ret)
		ret = rp_regions_decode(buf, h.len, &s->regions, &s->nregions,
					&why);
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
	ret = fetch_regions(s, peer);
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
	rp_conn_close(&src->ctl);
	if (src->local_fd >= 0)
		close(src->local_fd);
	free(src->regions);
	rp_rdma_source_free(src->rdma);
	pthread_mutex_destroy(&src->ctl_lock);
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

void rp_source_notify_done(struct rpage_source *src, uint32_t region)
{
	uint8_t b[4] = { (uint8_t)region, (uint8_t)(region >> 8),
			 (uint8_t)(region >> 16), (uint8_t)(region >> 24) };

	if (src->ctl.fd < 0)
		return;
	pthread_mutex_lock(&src->ctl_lock);
	rp_conn_send_frame(&src->ctl, RP_MSG_DONE, 0, b, sizeof(b));
	pthread_mutex_unlock(&src->ctl_lock);
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
	if (!ret)
		ret = rp_tcp_hello(out, role, role == RP_ROLE_CONTROL
					      ? 0 : src->session, ack, peer);
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
