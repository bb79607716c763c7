/* SPDX-License-Identifier: MIT */
/* Server internals shared with the RDMA part of the server. */
#ifndef RP_SERVER_INT_H
#define RP_SERVER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "rpage/rpage.h"

struct srv_region {
	char name[256];
	int fd;
	uint64_t length;
	uint32_t page_size;
	void *map;          /* read-only MAP_SHARED view of the whole region */
	bool use_sendfile;  /* cleared when the file cannot be spliced */
	uint64_t identity;  /* what it holds (struct rp_region_desc) */
	uint64_t requests, bytes; /* served over TCP (atomics) */
};

struct rpage_server;
struct rp_hdr;
struct rp_conn;

/* The regions one peer may read, in its own numbering: its region id i is
 * the server's region idx[i]. */
struct srv_view {
	uint16_t *idx;
	unsigned n;
};

/* server.c: is @session the token of a control connection still open? */
bool srv_session_live(struct rpage_server *s, uint64_t session);

/* Why a connection was refused or closed early, for the metrics
 * (srv_refusal_name gives the label value). */
enum srv_refusal {
	SRV_REFUSE_MAX_CONNS,     /* --max-conns reached */
	SRV_REFUSE_MAX_PER_PEER,  /* --max-conns-per-peer reached */
	SRV_REFUSE_TLS,           /* TLS handshake failed, or no TLS */
	SRV_REFUSE_HANDSHAKE_TIMEOUT, /* no HELLO within the deadline */
	SRV_REFUSE_NOT_ALLOWED,   /* the identity may read nothing */
	SRV_REFUSE_NO_SESSION,    /* a data connection of no live session */
	SRV_REFUSE_VERSION,       /* no protocol version in common */
	SRV_REFUSE_BAD_INPUT,     /* a malformed or unexpected message */
	SRV_REFUSE_RDMA,          /* an RDMA connection or ticket refused */
	SRV_REFUSE_N
};
const char *srv_refusal_name(enum srv_refusal r);
void srv_refused(struct rpage_server *s, enum srv_refusal r);

/* A snapshot for rpage-server's metrics endpoint (server/main.c). */
struct srv_metrics {
	struct rpage_server_stats st;
	uint64_t refused[SRV_REFUSE_N];
	unsigned sessions_active;  /* control connections open */
	unsigned sessions_parked;  /* broken, resumable for the grace period */
	unsigned rdma_conns;       /* RDMA connections open */
	unsigned nregions;
};
int srv_get_metrics(struct rpage_server *s, struct srv_metrics *m);
/* Region @i (< nregions): its name (borrowed), length, and the page
 * requests and bytes served of it. 0 or -ENOENT. */
int srv_region_metrics(struct rpage_server *s, unsigned i, const char **name,
		       uint64_t *length, uint64_t *requests, uint64_t *bytes);

/*
 * server_rdma.c: the RDMA side of the server (stubs returning
 * -EPROTONOSUPPORT when built without RDMA). The regions array is
 * borrowed and must not change once listening.
 */
struct srv_rdma;
int srv_rdma_listen(struct rpage_server *s, const struct srv_region *regions,
		    unsigned nregions, const char *host, const char *port,
		    struct srv_rdma **out);
int srv_rdma_port(const struct srv_rdma *r);
int srv_rdma_start(struct srv_rdma *r);
/* Stops the CM thread and ends every RDMA connection. */
void srv_rdma_stop(struct srv_rdma *r);
void srv_rdma_free(struct srv_rdma *r);
/* RDMA connections open now (0 without RDMA). */
unsigned srv_rdma_conns(struct srv_rdma *r);
/* Caps on RDMA connections (rpage_server_limits). */
void srv_rdma_set_limits(struct srv_rdma *r, unsigned total,
			 unsigned per_session);
/*
 * Handles a control-session message of type 16..31 (payload @p of the
 * header's length, already read) for @session, whose peer reads the
 * regions of @view, on connection @c: sends the answer. Runs on the
 * control connection's thread, which is the only one that registers the
 * session's memory and ends the session. Returns 0, -EPROTO with *why set
 * (the caller rejects), or another -errno.
 */
int srv_rdma_ctl(struct srv_rdma *r, uint64_t session,
		 const struct srv_view *view, struct rp_conn *c,
		 const struct rp_hdr *h, const uint8_t *p, const char **why);
/* The control connection of @session ended: its keys stop working. */
void srv_rdma_session_end(struct srv_rdma *r, uint64_t session);

/* Live migration (server/live_source.c): a region backed by this process's own
 * memory (fd -1; borrowed: never unmapped by the server), served from the
 * pointer. Returns the region id. */
struct rpage_server;
int rp_server_add_region_mem(struct rpage_server *srv, const char *name,
			     void *mem, uint64_t length, uint32_t page_size);

#endif
