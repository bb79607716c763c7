/* SPDX-License-Identifier: MIT */
/*
 * RDMA connection data (message types 16..31; docs/protocol.md, section
 * "RDMA transport"). Like proto.c, this is a place that parses untrusted
 * bytes: every decoder checks every length, count and sum and returns
 * -EPROTO with a reason in *why.
 *
 * Control-session messages (on the TCP control connection, after HELLO
 * with RP_FEAT_RDMA acknowledged; with credentials that connection is
 * authenticated and encrypted, so nothing below is seen by anyone else):
 *   RDMA_INFO_REQ    C->S  empty
 *   RDMA_INFO        S->C  u16 port, u16 0, u32 0   (port 0: no RDMA here)
 *   RDMA_TICKET_REQ  C->S  empty: the client is about to open an RDMA
 *                          connection
 *   RDMA_TICKET      S->C  16 random bytes, good for one CONNECT of this
 *                          session within 30 s
 *   RDMA_KEYS_REQ    C->S  the 16-byte ticket of an accepted connection
 *   RDMA_KEYS        S->C  the keys for one-sided READs on that connection:
 *       u32 nregions, u32 flags (bit 0: memory windows bound to that
 *       connection's QP), then per region
 *         u32 id, u32 page_size, u64 length, u32 nchunks, u32 0, then per
 *         chunk u64 addr, u64 length, u32 rkey, u32 0
 *       Chunks cover the region in order (a region larger than the
 *       device's max_mr_size is split), each a positive multiple of the
 *       page size, summing to the region's length. Addresses are
 *       zero-based: a chunk's addr is its offset in the region, never a
 *       virtual address of the server.
 *
 * rdma_cm private data of a CONNECT (not a frame, not encrypted):
 *   u32 magic "RPRD", u16 version, u8 role, u8 0, u64 session,
 *   u8 ticket[16]   (32 bytes; the transport may pad it with zeros, which
 *   the decoder accepts)
 */
#ifndef RP_PROTO_RDMA_H
#define RP_PROTO_RDMA_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

enum rp_rdma_msg_type {
	RP_MSG_RDMA_INFO_REQ = 16,
	RP_MSG_RDMA_INFO = 17,
	RP_MSG_RDMA_KEYS_REQ = 18,
	RP_MSG_RDMA_KEYS = 19,
	RP_MSG_RDMA_TICKET_REQ = 20,
	RP_MSG_RDMA_TICKET = 21,
	RP_MSG_RDMA_TYPE_MAX = 21,
};

#define RP_RDMA_INFO_LEN 8
#define RP_RDMA_TICKET_LEN 16
#define RP_RDMA_CONN_MAGIC 0x44525052u /* "RPRD" */
#define RP_RDMA_CONN_VERSION 2
#define RP_RDMA_CONN_LEN 32
/* RDMA_KEYS flags */
#define RP_RDMA_KEYS_MW 1u /* keys of memory windows bound to one QP */
/* rdma_cm carries at most 56 bytes of private data on a CONNECT (IB/RoCE) */
#define RP_RDMA_CONN_MAX 56
/* Memory regions one region may be split into. */
#define RP_RDMA_MAX_CHUNKS 4096u
#define RP_RDMA_KEYS_HDR 8
#define RP_RDMA_KEYS_REGION 24
#define RP_RDMA_KEYS_CHUNK 24
/* Largest RDMA_KEYS payload a client accepts. */
#define RP_RDMA_KEYS_MAX (4u << 20)

struct rp_rdma_info {
	uint16_t port; /* rdma_cm port, 0: the server has no RDMA */
};

struct rp_rdma_chunk {
	uint64_t addr;
	uint64_t length;
	uint32_t rkey;
};

struct rp_rdma_region_keys {
	uint32_t id;
	uint32_t page_size;
	uint64_t length;
	uint32_t nchunks;
	struct rp_rdma_chunk *chunks; /* nchunks entries */
};

struct rp_rdma_conn {
	uint16_t version;
	uint8_t role;     /* RP_ROLE_URGENT or RP_ROLE_BULK */
	uint64_t session; /* the control session's token */
	uint8_t ticket[RP_RDMA_TICKET_LEN]; /* from RDMA_TICKET, once */
};

const char *rp_rdma_msg_name(unsigned type);

size_t rp_rdma_info_encode(uint8_t *out, const struct rp_rdma_info *m);
int rp_rdma_info_decode(const uint8_t *p, size_t len, struct rp_rdma_info *m,
			const char **why);

/* Bytes rp_rdma_keys_encode writes for these regions. */
size_t rp_rdma_keys_size(const struct rp_rdma_region_keys *r, unsigned n);
size_t rp_rdma_keys_encode(uint8_t *out, const struct rp_rdma_region_keys *r,
			   unsigned n, uint32_t flags);
/*
 * Decodes and validates an RDMA_KEYS payload against the region table the
 * client already has (@desc, @ndesc: ids, lengths and page sizes must
 * match; every chunk's addr must be its offset in the region). Allocates
 * *out (n entries, each with its chunks; free with rp_rdma_keys_free);
 * *flags gets the header's flags (may be NULL).
 */
int rp_rdma_keys_decode(const uint8_t *p, size_t len,
			const struct rp_region_desc *desc, unsigned ndesc,
			struct rp_rdma_region_keys **out, unsigned *n,
			uint32_t *flags, const char **why);
void rp_rdma_keys_free(struct rp_rdma_region_keys *r, unsigned n);

size_t rp_rdma_conn_encode(uint8_t out[RP_RDMA_CONN_LEN],
			   const struct rp_rdma_conn *m);
int rp_rdma_conn_decode(const void *p, size_t len, struct rp_rdma_conn *m,
			const char **why);

#endif
