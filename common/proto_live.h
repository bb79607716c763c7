/* SPDX-License-Identifier: MIT */
/*
 * Live-migration messages (types 32..63; docs/protocol.md, section "Live
 * migration"). The source connects to the destination: one control
 * connection and N stream connections, each opened with LIVE_HELLO.
 * Encoders return the payload length; decoders validate a whole payload
 * and return -EPROTO with a reason in *why.
 */
#ifndef RP_PROTO_LIVE_H
#define RP_PROTO_LIVE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

enum rp_live_msg {
	RP_MSG_LIVE_HELLO = 32,         /* S->D: first frame on every connection */
	RP_MSG_LIVE_HELLO_ACK = 33,     /* D->S */
	RP_MSG_LIVE_PAGES = 34,         /* S->D stream: a run of page data */
	RP_MSG_LIVE_ROUND_END = 35,     /* S->D stream: end of a round */
	RP_MSG_LIVE_ROUND_ACK = 36,     /* D->S control: round fully received */
	RP_MSG_LIVE_SWITCHOVER = 37,    /* S->D control: paused; drop set */
	RP_MSG_LIVE_SWITCHOVER_ACK = 38,/* D->S control: resumed (or failed) */
	RP_MSG_LIVE_COMPLETE = 39,      /* D->S control: post-copy ended */
	RP_MSG_LIVE_ABORT = 40,         /* S->D control: migration abandoned */
};

#define RP_LIVE_VERSION 1
#define RP_LIVE_ROLE_CONTROL 0
#define RP_LIVE_ROLE_STREAM 1
#define RP_LIVE_MAX_STREAMS 16
/* one page run per frame, at most this many pages (and RP_MAX_DATA) */
#define RP_LIVE_MAX_RUN 64

struct rp_live_hello {
	uint16_t version;
	uint8_t role;      /* RP_LIVE_ROLE_* */
	uint8_t stream;    /* index of a stream connection, < nstreams */
	uint16_t nstreams; /* 1..RP_LIVE_MAX_STREAMS */
	uint32_t page_size;
	uint64_t length;   /* region bytes, multiple of page_size */
	uint64_t session;  /* non-zero, chosen by the source */
};
#define RP_LIVE_HELLO_LEN 32

struct rp_live_hello_ack {
	int32_t status;    /* 0, or a positive errno: refused */
	uint64_t session;
};
#define RP_LIVE_HELLO_ACK_LEN 16

struct rp_live_pages {
	uint32_t round;
	uint32_t npages;
	uint64_t first;    /* page index */
};
#define RP_LIVE_PAGES_HDR 16

struct rp_live_round {
	uint32_t round;
	uint64_t pages;    /* pages on this stream (END) or in all (ACK) */
};
#define RP_LIVE_ROUND_LEN 16

#define RP_LIVE_SW_POSTCOPY 1u /* the dropped pages come by post-copy */
struct rp_live_switch {
	uint32_t flags;
	uint16_t port;     /* the source's page server (TCP) */
	uint32_t round;    /* rounds of pre-copy done */
	uint64_t npages;   /* bits in the bitmap = pages in the region */
	uint64_t ndrop;    /* bits set */
	const uint64_t *bits; /* points into the decoded buffer (LE words) */
};
#define RP_LIVE_SWITCH_HDR 32

struct rp_live_status {
	int32_t status;    /* 0 or a positive errno */
	uint64_t resident; /* pages resident at this point */
	uint64_t by_fault, by_fill;
};
#define RP_LIVE_STATUS_LEN 32

size_t rp_live_hello_encode(uint8_t *out, const struct rp_live_hello *m);
int rp_live_hello_decode(const uint8_t *p, size_t len,
			 struct rp_live_hello *m, const char **why);
size_t rp_live_hello_ack_encode(uint8_t *out,
				const struct rp_live_hello_ack *m);
int rp_live_hello_ack_decode(const uint8_t *p, size_t len,
			     struct rp_live_hello_ack *m, const char **why);
size_t rp_live_pages_hdr_encode(uint8_t *out, const struct rp_live_pages *m);
/* Checks the prefix of a PAGES frame of @frame_len bytes against a region
 * of @npages pages of @psize bytes. */
int rp_live_pages_hdr_decode(const uint8_t *p, size_t frame_len,
			     uint64_t npages, uint32_t psize,
			     struct rp_live_pages *m, const char **why);
size_t rp_live_round_encode(uint8_t *out, const struct rp_live_round *m);
int rp_live_round_decode(const uint8_t *p, size_t len,
			 struct rp_live_round *m, const char **why);
/* SWITCHOVER: header then ceil(npages/64) little-endian u64 words. */
size_t rp_live_switch_size(uint64_t npages);
size_t rp_live_switch_encode(uint8_t *out, const struct rp_live_switch *m);
/* Checks length, npages == @npages, no bit beyond npages, popcount. */
int rp_live_switch_decode(const uint8_t *p, size_t len, uint64_t npages,
			  struct rp_live_switch *m, const char **why);
size_t rp_live_status_encode(uint8_t *out, const struct rp_live_status *m);
int rp_live_status_decode(const uint8_t *p, size_t len,
			  struct rp_live_status *m, const char **why);
const char *rp_live_msg_name(unsigned type);

/* The switchover names the pages to drop in one frame, a bit each: false
 * (with a message) for a region too large for that. */
bool rp_live_length_ok(uint64_t length);


#endif
