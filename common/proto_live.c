/* SPDX-License-Identifier: MIT */
/* Live-migration messages: encoders and strict decoders. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "proto_live.h"
#include "wire.h"
#include "rp.h"

static bool zeros(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

bool rp_live_length_ok(uint64_t length)
{
	if (length / RP_PAGE_4K / 8 + 64 <= RP_MAX_FRAME)
		return true;
	rp_err("a live region of %llu bytes is too large: at most %llu GiB",
	       (unsigned long long)length,
	       (unsigned long long)((uint64_t)(RP_MAX_FRAME - 64) * 8 *
				    RP_PAGE_4K >> 30));
	return false;
}

const char *rp_live_msg_name(unsigned type)
{
	static const char *const n[] = {
		"LIVE_HELLO", "LIVE_HELLO_ACK", "LIVE_PAGES",
		"LIVE_ROUND_END", "LIVE_ROUND_ACK", "LIVE_SWITCHOVER",
		"LIVE_SWITCHOVER_ACK", "LIVE_COMPLETE", "LIVE_ABORT",
	};

	if (type >= RP_MSG_LIVE_HELLO && type <= RP_MSG_LIVE_ABORT)
		return n[type - RP_MSG_LIVE_HELLO];
	return rp_msg_name(type);
}

/* LIVE_HELLO: u16 version, u8 role, u8 stream, u16 nstreams, u16 0,
 * u32 page_size, u32 0, u64 length, u64 session */
size_t rp_live_hello_encode(uint8_t *out, const struct rp_live_hello *m)
{
	memset(out, 0, RP_LIVE_HELLO_LEN);
	put16(out, m->version);
	out[2] = m->role;
	out[3] = m->stream;
	put16(out + 4, m->nstreams);
	put32(out + 8, m->page_size);
	put64(out + 16, m->length);
	put64(out + 24, m->session);
	return RP_LIVE_HELLO_LEN;
}

int rp_live_hello_decode(const uint8_t *p, size_t len,
			 struct rp_live_hello *m, const char **why)
{
	if (len != RP_LIVE_HELLO_LEN)
		FAIL("LIVE_HELLO has the wrong length");
	if (get16(p + 6) || get32(p + 12))
		FAIL("LIVE_HELLO reserved bytes are not zero");
	m->version = get16(p);
	m->role = p[2];
	m->stream = p[3];
	m->nstreams = get16(p + 4);
	m->page_size = get32(p + 8);
	m->length = get64(p + 16);
	m->session = get64(p + 24);
	if (m->version != RP_LIVE_VERSION)
		FAIL("LIVE_HELLO names an unsupported live-migration version");
	if (m->role > RP_LIVE_ROLE_STREAM)
		FAIL("LIVE_HELLO has an unknown role");
	if (m->nstreams == 0 || m->nstreams > RP_LIVE_MAX_STREAMS)
		FAIL("LIVE_HELLO stream count out of range (1..16)");
	if (m->role == RP_LIVE_ROLE_STREAM && m->stream >= m->nstreams)
		FAIL("LIVE_HELLO stream index beyond the stream count");
	if (m->role == RP_LIVE_ROLE_CONTROL && m->stream)
		FAIL("LIVE_HELLO control connection with a stream index");
	if (!rp_is_pow2(m->page_size) || m->page_size < RP_PAGE_4K ||
	    m->page_size > RP_MAX_DATA)
		FAIL("LIVE_HELLO page size is not a power of two in [4 KiB, 4 MiB]");
	if (m->length == 0 || m->length % m->page_size)
		FAIL("LIVE_HELLO length is zero or not a multiple of the page size");
	if (m->session == 0)
		FAIL("LIVE_HELLO session is zero");
	return 0;
}

/* LIVE_HELLO_ACK: i32 status, u32 0, u64 session */
size_t rp_live_hello_ack_encode(uint8_t *out,
				const struct rp_live_hello_ack *m)
{
	put32(out, (uint32_t)m->status);
	put32(out + 4, 0);
	put64(out + 8, m->session);
	return RP_LIVE_HELLO_ACK_LEN;
}

int rp_live_hello_ack_decode(const uint8_t *p, size_t len,
			     struct rp_live_hello_ack *m, const char **why)
{
	if (len != RP_LIVE_HELLO_ACK_LEN)
		FAIL("LIVE_HELLO_ACK has the wrong length");
	if (get32(p + 4))
		FAIL("LIVE_HELLO_ACK reserved bytes are not zero");
	m->status = (int32_t)get32(p);
	m->session = get64(p + 8);
	if (m->status < 0 || m->status >= 4096)
		FAIL("LIVE_HELLO_ACK status out of range");
	return 0;
}

/* LIVE_PAGES prefix: u32 round, u32 npages, u64 first page */
size_t rp_live_pages_hdr_encode(uint8_t *out, const struct rp_live_pages *m)
{
	put32(out, m->round);
	put32(out + 4, m->npages);
	put64(out + 8, m->first);
	return RP_LIVE_PAGES_HDR;
}

int rp_live_pages_hdr_decode(const uint8_t *p, size_t frame_len,
			     uint64_t npages, uint32_t psize,
			     struct rp_live_pages *m, const char **why)
{
	if (frame_len < RP_LIVE_PAGES_HDR)
		FAIL("LIVE_PAGES shorter than its prefix");
	m->round = get32(p);
	m->npages = get32(p + 4);
	m->first = get64(p + 8);
	if (m->round == 0)
		FAIL("LIVE_PAGES in round 0");
	if (m->npages == 0 || m->npages > RP_LIVE_MAX_RUN ||
	    (uint64_t)m->npages * psize > RP_MAX_DATA)
		FAIL("LIVE_PAGES page count out of range");
	if (m->first >= npages || m->npages > npages - m->first)
		FAIL("LIVE_PAGES run lies beyond the end of the region");
	if (frame_len != RP_LIVE_PAGES_HDR + (uint64_t)m->npages * psize)
		FAIL("LIVE_PAGES length does not match its page count");
	return 0;
}

/* LIVE_ROUND_END / LIVE_ROUND_ACK: u32 round, u32 0, u64 pages */
size_t rp_live_round_encode(uint8_t *out, const struct rp_live_round *m)
{
	put32(out, m->round);
	put32(out + 4, 0);
	put64(out + 8, m->pages);
	return RP_LIVE_ROUND_LEN;
}

int rp_live_round_decode(const uint8_t *p, size_t len,
			 struct rp_live_round *m, const char **why)
{
	if (len != RP_LIVE_ROUND_LEN)
		FAIL("round message has the wrong length");
	if (get32(p + 4))
		FAIL("round message reserved bytes are not zero");
	m->round = get32(p);
	m->pages = get64(p + 8);
	if (m->round == 0)
		FAIL("round message for round 0");
	return 0;
}

/* LIVE_SWITCHOVER: u32 flags, u16 port, u16 0, u32 round, u32 0,
 * u64 npages, u64 ndrop, then the bitmap words */
size_t rp_live_switch_size(uint64_t npages)
{
	return RP_LIVE_SWITCH_HDR + (size_t)((npages + 63) / 64) * 8;
}

size_t rp_live_switch_encode(uint8_t *out, const struct rp_live_switch *m)
{
	uint64_t nw = (m->npages + 63) / 64;

	memset(out, 0, RP_LIVE_SWITCH_HDR);
	put32(out, m->flags);
	put16(out + 4, m->port);
	put32(out + 8, m->round);
	put64(out + 16, m->npages);
	put64(out + 24, m->ndrop);
	for (uint64_t i = 0; i < nw; i++)
		put64(out + RP_LIVE_SWITCH_HDR + i * 8, m->bits ? m->bits[i] : 0);
	return rp_live_switch_size(m->npages);
}

int rp_live_switch_decode(const uint8_t *p, size_t len, uint64_t npages,
			  struct rp_live_switch *m, const char **why)
{
	uint64_t nw, count = 0;
	const uint8_t *w;

	if (len < RP_LIVE_SWITCH_HDR)
		FAIL("LIVE_SWITCHOVER shorter than its header");
	if (!zeros(p + 6, 2) || !zeros(p + 12, 4))
		FAIL("LIVE_SWITCHOVER reserved bytes are not zero");
	m->flags = get32(p);
	m->port = get16(p + 4);
	m->round = get32(p + 8);
	m->npages = get64(p + 16);
	m->ndrop = get64(p + 24);
	if (m->flags & ~RP_LIVE_SW_POSTCOPY)
		FAIL("LIVE_SWITCHOVER has unknown flags");
	if (m->npages != npages)
		FAIL("LIVE_SWITCHOVER bitmap size differs from the region");
	nw = (npages + 63) / 64;
	if (len != RP_LIVE_SWITCH_HDR + nw * 8)
		FAIL("LIVE_SWITCHOVER length does not match its bitmap");
	if (m->ndrop > npages)
		FAIL("LIVE_SWITCHOVER drops more pages than the region has");
	if (m->ndrop && !(m->flags & RP_LIVE_SW_POSTCOPY))
		FAIL("LIVE_SWITCHOVER drops pages without post-copy");
	if (m->ndrop && !m->port)
		FAIL("LIVE_SWITCHOVER post-copy without a page server port");
	w = p + RP_LIVE_SWITCH_HDR;
	for (uint64_t i = 0; i < nw; i++) {
		uint64_t v = get64(w + i * 8);

		if (i == nw - 1 && npages % 64 && (v >> (npages % 64)))
			FAIL("LIVE_SWITCHOVER bitmap has bits beyond the region");
		count += (uint64_t)__builtin_popcountll(v);
	}
	if (count != m->ndrop)
		FAIL("LIVE_SWITCHOVER bitmap does not hold ndrop pages");
	m->bits = (const uint64_t *)(const void *)w; /* LE host: see proto.c */
	return 0;
}

/* LIVE_SWITCHOVER_ACK / LIVE_COMPLETE: i32 status, u32 0, u64 resident,
 * u64 by_fault, u64 by_fill */
size_t rp_live_status_encode(uint8_t *out, const struct rp_live_status *m)
{
	put32(out, (uint32_t)m->status);
	put32(out + 4, 0);
	put64(out + 8, m->resident);
	put64(out + 16, m->by_fault);
	put64(out + 24, m->by_fill);
	return RP_LIVE_STATUS_LEN;
}

int rp_live_status_decode(const uint8_t *p, size_t len,
			  struct rp_live_status *m, const char **why)
{
	if (len != RP_LIVE_STATUS_LEN)
		FAIL("status message has the wrong length");
	if (get32(p + 4))
		FAIL("status message reserved bytes are not zero");
	m->status = (int32_t)get32(p);
	m->resident = get64(p + 8);
	m->by_fault = get64(p + 16);
	m->by_fill = get64(p + 24);
	if (m->status < 0 || m->status >= 4096)
		FAIL("status out of range");
	return 0;
}

