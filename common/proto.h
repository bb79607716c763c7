/* SPDX-License-Identifier: MIT */
/*
 * The wire protocol (docs/protocol.md is the specification). This file and
 * proto.c are the only place that turns untrusted bytes into structures:
 * every decoder checks every length and bound and returns -EPROTO (or
 * -EINVAL for values out of range) with a reason in *why.
 *
 * All integers are little-endian. A frame is a 16-byte header followed by
 * `len` payload bytes.
 */
#ifndef RP_PROTO_H
#define RP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define RP_MAGIC 0x31475052u /* "RPG1" */
#define RP_VERSION 2
#define RP_HDR_LEN 16

/* Largest page-data payload in one frame, and largest frame. */
#define RP_MAX_DATA (4u << 20)
#define RP_MAX_FRAME (RP_MAX_DATA + 64u)
/* Control frames are small; anything bigger than this is an attack. */
#define RP_MAX_CTRL 65536u
#define RP_MAX_REGIONS 1024u
#define RP_MAX_AUTH 1024u
#define RP_MAX_ERRMSG 1024u

enum rp_msg_type {
	RP_MSG_HELLO = 1,      /* C->S */
	RP_MSG_HELLO_ACK = 2,  /* S->C */
	RP_MSG_REGIONS_REQ = 3,/* C->S */
	RP_MSG_REGIONS = 4,    /* S->C */
	RP_MSG_PAGE_REQ = 5,   /* C->S */
	RP_MSG_PAGE_DATA = 6,  /* S->C */
	RP_MSG_ERROR = 7,      /* both */
	RP_MSG_DONE = 8,       /* C->S: u32 region: fully resident here */
	RP_MSG_BYE = 9,        /* C->S, control, empty: the session ends
				* normally (not kept for a resume) */
	RP_MSG_TYPE_MAX = 9,
};

/*
 * Type ranges reserved for extensions, each with its own encoders and
 * strict decoders in its own proto_*.c file: the header check admits them
 * with the general frame limit and the extension's decoder does the rest.
 *   16..31  RDMA connection data (common/proto_rdma.c)
 *   32..63  live migration: pre-copy, dirty sets, switchover
 *           (common/proto_live.c)
 */
#define RP_MSG_RDMA_FIRST 16
#define RP_MSG_RDMA_LAST 31
#define RP_MSG_LIVE_FIRST 32
#define RP_MSG_LIVE_LAST 63

/* Connection roles announced in HELLO. */
enum rp_role {
	RP_ROLE_CONTROL = 0,
	RP_ROLE_URGENT = 1,
	RP_ROLE_BULK = 2,
	RP_ROLE_MAX = 2,
};

/* Feature bits negotiated in HELLO: the ACK carries the intersection. */
#define RP_FEAT_SENDFILE (1ull << 0) /* informative: server zero-copy */
#define RP_FEAT_RDMA (1ull << 1)     /* RDMA connection data follows */
#define RP_FEATURES_KNOWN (RP_FEAT_SENDFILE | RP_FEAT_RDMA)

struct rp_hdr {
	uint16_t type;
	uint16_t flags;
	uint32_t len; /* payload bytes after the header */
	uint64_t tag; /* echoed in the reply */
};

/* HELLO auth_type: the connection's own authentication is the TLS
 * handshake before HELLO; 0 is the only value sent, others are refused. */
#define RP_AUTH_NONE 0

struct rp_hello {
	uint16_t ver_min, ver_max;
	uint8_t role;
	uint8_t auth_type; /* RP_AUTH_NONE */
	uint16_t auth_len;
	uint64_t features;
	/* 0: new session; else join an existing one (data connections) or,
	 * on a control connection, resume it if the server still keeps it */
	uint64_t session;
	const uint8_t *auth; /* points into the decoded buffer */
};
#define RP_HELLO_LEN 32

struct rp_hello_ack {
	uint16_t version;
	uint64_t features;
	uint64_t session;
	uint32_t max_data;
	uint32_t nregions;
};
#define RP_HELLO_ACK_LEN 32

struct rp_region_desc {
	uint32_t id;
	uint32_t page_size;
	uint64_t length;
	/* what the region holds: changes when its file is replaced or written
	 * (or, for memory, each time it is exported); a client never resumes
	 * against a region whose identity changed */
	uint64_t identity;
	uint16_t name_len;
	char name[256];
};

struct rp_page_req {
	uint32_t region;
	uint32_t len;
	uint64_t offset;
};
#define RP_PAGE_REQ_LEN 16
#define RP_PAGE_DATA_HDR 16 /* region, len, offset precede the bytes */

struct rp_error {
	int32_t code; /* positive errno value */
	uint16_t msg_len;
	char msg[RP_MAX_ERRMSG + 1];
};

/* Header */
void rp_hdr_encode(uint8_t out[RP_HDR_LEN], const struct rp_hdr *h);
/* Checks type and the length limit for that type (direction-agnostic). */
int rp_hdr_decode(const uint8_t in[RP_HDR_LEN], struct rp_hdr *h,
		  const char **why);

/* Each encode returns the payload length written (buffer must be big
 * enough: sizes above); each decode validates an entire payload. */
size_t rp_hello_encode(uint8_t *out, const struct rp_hello *m);
int rp_hello_decode(const uint8_t *p, size_t len, struct rp_hello *m,
		    const char **why);
size_t rp_hello_ack_encode(uint8_t *out, const struct rp_hello_ack *m);
int rp_hello_ack_decode(const uint8_t *p, size_t len, struct rp_hello_ack *m,
			const char **why);

/* REGIONS: u32 count, then per region: u32 id, u32 page_size, u64 length,
 * u16 name_len, u16 0, u32 0, u64 identity, name bytes padded with zeros
 * to 8. */
size_t rp_regions_size(const struct rp_region_desc *r, unsigned n);
size_t rp_regions_encode(uint8_t *out, const struct rp_region_desc *r,
			 unsigned n);
/* Allocates *out (caller frees). */
int rp_regions_decode(const uint8_t *p, size_t len,
		      struct rp_region_desc **out, unsigned *n,
		      const char **why);

size_t rp_page_req_encode(uint8_t *out, const struct rp_page_req *m);
int rp_page_req_decode(const uint8_t *p, size_t len, struct rp_page_req *m,
		       const char **why);
/* Checks a request against a region (alignment to 4 KiB, bounds without
 * overflow, length limit). */
int rp_page_req_check(const struct rp_page_req *m, uint64_t region_len,
		      const char **why);

/* PAGE_DATA prefix (16 bytes) before @len data bytes. */
size_t rp_page_data_hdr_encode(uint8_t *out, const struct rp_page_req *m);
int rp_page_data_hdr_decode(const uint8_t *p, size_t frame_len,
			    struct rp_page_req *m, const char **why);

size_t rp_error_encode(uint8_t *out, int code, const char *msg);
int rp_error_decode(const uint8_t *p, size_t len, struct rp_error *m,
		    const char **why);

const char *rp_msg_name(unsigned type);

/* ---- framed I/O on a blocking socket ---- */

/* Sends a header and a payload in one call. Returns 0 or -errno. */
int rp_send_frame(int fd, uint16_t type, uint64_t tag, const void *payload,
		  uint32_t len);
/*
 * Receives one frame whose payload fits @cap bytes; stores the header in
 * *h. -EPROTO (*why set) on a bad header or a payload over @cap.
 */
int rp_recv_frame(int fd, struct rp_hdr *h, void *payload, uint32_t cap,
		  const char **why);

#endif
