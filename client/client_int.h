/* SPDX-License-Identifier: MIT */
/* Destination-side internals: the source handle and the channel interface
 * every transport implements. */
#ifndef RP_CLIENT_INT_H
#define RP_CLIENT_INT_H

#include <pthread.h>
#include <stdint.h>

#include "../common/proto.h"
#include "../common/rp.h"
#include "../common/tls.h"

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
	/*
	 * Requests kept in flight (the urgent channel): submit sends @n
	 * requests at once (one write, one doorbell) and returns without
	 * waiting; each is named by its @tags[i]. wait_one blocks until one
	 * of them has all its bytes in its dst and stores its tag; it is
	 * called by one thread at a time, concurrently with submit. Either
	 * returns -errno when the channel broke: every request not yet
	 * returned by wait_one is lost, and the channel is only good for
	 * close. -ECANCELED after abort.
	 */
	int (*submit)(struct rp_chan *ch, uint32_t region,
		      const struct rp_fetch *f, unsigned n,
		      const uint64_t *tags);
	int (*wait_one)(struct rp_chan *ch, uint64_t *tag);
	/*
	 * Optional: wait_one that never waits, for a channel read by the
	 * thread that submits (no receiver thread, no hand-off per answer).
	 * -EAGAIN when no answer is whole yet: call it until then, and poll
	 * poll_fd (POLLIN) before calling again; poll_fd -1: every answer is
	 * there when submit returns. Never concurrent with wait_one.
	 */
	int (*try_one)(struct rp_chan *ch, uint64_t *tag);
	int (*poll_fd)(struct rp_chan *ch);
	/* Makes a blocked fetch or wait_one return (from another thread). */
	void (*abort)(struct rp_chan *ch);
	void (*close)(struct rp_chan *ch);
	/* Optional (RDMA): makes [ptr, ptr+len) a valid fetch destination
	 * (registers it as a staging buffer). Every dst handed to fetch must
	 * lie in a registered buffer; close ends the registrations, so close
	 * the channel before freeing the memory. */
	int (*reg_buf)(struct rp_chan *ch, void *ptr, size_t len);
};

struct rp_chan {
	const struct rp_chan_ops *ops;
};

struct rpage_source {
	enum rpage_transport transport;
	char host[256];
	char port[32];
	struct rp_conn ctl;     /* control connection (TCP), fd -1 for local */
	uint64_t session;
	pthread_mutex_t ctl_lock;
	const struct rpage_tls *tls; /* borrowed; NULL: plain TCP */
	bool insecure;          /* plain TCP beyond loopback allowed */
	struct rp_region_desc *regions;
	unsigned nregions;
	int local_fd;           /* local transport: the file */
	uint64_t features;      /* HELLO_ACK features of the control session */
	struct rp_rdma_source *rdma; /* RDMA transport state (transport_rdma.c) */
	/* resume (rp_source_recover), under ctl_lock: */
	uint64_t gen;           /* the control session's generation */
	bool recovering;        /* a thread is reconnecting */
	int dead;               /* -errno: never to be resumed (identity,
				 * credentials), 0 */
	pthread_cond_t rcond;   /* recovering ended */
	uint64_t reconnects;    /* control sessions re-established */
};

/* transport_rdma.c: sets up RDMA on a connected source (control session
 * and region table done): device, server port, a test connection, the key
 * table. 0 on success (the caller then sets transport RDMA). */
struct rp_rdma_source;
int rp_rdma_source_setup(struct rpage_source *src,
			 const struct rpage_connect_opts *opts,
			 const char *peer);
void rp_rdma_source_free(struct rp_rdma_source *r);
int rp_rdma_chan_open(struct rpage_source *src, enum rp_role role,
		      struct rp_chan **out);
/* The two steps around an RDMA connection's CONNECT, on the control
 * connection: a one-time ticket (@tk, RP_RDMA_TICKET_LEN bytes) before
 * it, that connection's keys (allocated; rp_rdma_keys_free) after it. */
struct rp_rdma_region_keys;
int rp_rdma_ticket(struct rpage_source *src, uint8_t *tk, const char *peer);
int rp_rdma_keys(struct rpage_source *src, const uint8_t *tk,
		 struct rp_rdma_region_keys **keys, unsigned *nkeys,
		 uint32_t *flags, const char *peer);
/* One RDMA request and its answer (of type @want) on @s's control
 * connection; an ERROR or another type is logged, -EPROTO. */
int rp_rdma_ctl_call(struct rpage_source *s, uint16_t type, const void *req,
		     uint32_t req_len, uint16_t want, uint8_t *buf,
		     uint32_t cap, struct rp_hdr *h, const char *peer);

/* transport_rdma.c: after the control session was re-established, asks
 * the server where it listens for RDMA now (it may have restarted). */
int rp_rdma_source_refresh(struct rpage_source *s, const char *peer);

/*
 * Re-establishes @src's control session after a connection of it broke:
 * reconnects with a bounded exponential backoff and jitter until
 * @deadline_ns (CLOCK_MONOTONIC; 0: for ever), resuming the session where
 * the server still keeps it, and checks that every region is still the
 * same image (identity, size, page size). @seen_gen is the generation the
 * caller's connection was opened under: when another thread has
 * reconnected since, this returns at once. One thread reconnects, the
 * others wait for its result. Returns 0 (open channels anew),
 * -ESTALE (a region changed) or -EACCES (refused: credentials) — final,
 * never retried —, -ETIMEDOUT at the deadline, or -ECANCELED when
 * @stop_efd became readable.
 */
int rp_source_recover(struct rpage_source *src, uint64_t seen_gen,
		      uint64_t deadline_ns, int stop_efd);
/* The current generation of @src's control session. */
uint64_t rp_source_gen(struct rpage_source *src);

/* Opens a channel for one role (RP_ROLE_URGENT or RP_ROLE_BULK). */
int rp_source_open_chan(struct rpage_source *src, enum rp_role role,
			struct rp_chan **out);
/* Tells the source a region is fully resident here (best effort). */
void rp_source_notify_done(struct rpage_source *src, uint32_t region);

/* Transports */
int rp_tcp_chan_open(struct rpage_source *src, enum rp_role role,
		     struct rp_chan **out);
int rp_local_chan_open(struct rpage_source *src, struct rp_chan **out);

/*
 * Opens one TCP connection of @role to @src's server and makes it usable:
 * connect, the security policy (credentials, loopback, or insecure), the
 * TLS handshake, HELLO (session 0 for the control connection, else
 * @src->session). The one place every connection of a client is set up,
 * so a reconnect calls it again. Bounded by RP_DIAL_MS from the connect.
 * 0 and *out ready (blocking), or -errno after logging why: -EACCES for
 * an authentication failure or a refused plain connection, which must
 * not be retried.
 */
#define RP_DIAL_MS 10000
int rp_source_dial(struct rpage_source *src, enum rp_role role,
		   struct rp_conn *out, struct rp_hello_ack *ack);
/* The rpage HELLO on a connection that is up (TLS done). */
int rp_tcp_hello(struct rp_conn *c, enum rp_role role, uint64_t session,
		 struct rp_hello_ack *ack, const char *peer);

#endif
