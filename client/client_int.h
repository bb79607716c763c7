/* SPDX-License-Identifier: MIT */
/* Destination-side internals: the source handle and the channel interface
 * every transport implements. */
#ifndef RP_CLIENT_INT_H
#define RP_CLIENT_INT_H

#include <pthread.h>
#include <stdint.h>

#include "../common/proto.h"
#include "../common/rp.h"

/* One piece of a fetch: @len bytes at @off of the region into @dst. */
struct rp_fetch {
	uint64_t off;
	uint32_t len;
	void *dst;
};

struct rp_chan;

struct rp_chan_ops {
	/* Fetches all @n pieces (pipelined where the transport can) and
	 * returns 0 when every byte has arrived, or -errno. */
	int (*fetch)(struct rp_chan *ch, uint32_t region, struct rp_fetch *f,
		     unsigned n);
	/* Makes a blocked fetch return (from another thread). */
	void (*abort)(struct rp_chan *ch);
	void (*close)(struct rp_chan *ch);
};

struct rp_chan {
	const struct rp_chan_ops *ops;
};

struct rpage_source {
	enum rpage_transport transport;
	char host[256];
	char port[32];
	int ctl_fd;             /* control connection (TCP), -1 for local */
	uint64_t session;
	pthread_mutex_t ctl_lock;
	struct rp_region_desc *regions;
	unsigned nregions;
	int local_fd;           /* local transport: the file */
};

/* Opens a channel for one role (RP_ROLE_URGENT or RP_ROLE_BULK). */
int rp_source_open_chan(struct rpage_source *src, enum rp_role role,
			struct rp_chan **out);
/* Tells the source a region is fully resident here (best effort). */
void rp_source_notify_done(struct rpage_source *src, uint32_t region);

/* Transports */
int rp_tcp_chan_open(struct rpage_source *src, enum rp_role role,
		     struct rp_chan **out);
int rp_local_chan_open(struct rpage_source *src, struct rp_chan **out);
/* TCP session set-up shared by control and data connections. */
int rp_tcp_hello(int fd, enum rp_role role, uint64_t session,
		 struct rp_hello_ack *ack, const char *peer);

#endif
