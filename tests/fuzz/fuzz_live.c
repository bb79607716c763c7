/* SPDX-License-Identifier: MIT */
/*
 * The live-migration decoders (common/proto_live.c). The first byte picks
 * the decoder; the region they are checked against (pages, page size)
 * comes from the next bytes. Invariant: an accepted message encodes back
 * to the same bytes, and what it names lies inside the region.
 */
#include "../../common/proto_live.h"
#include "../../common/rp.h"
#include "fuzz.h"

static void hello(const uint8_t *p, size_t n)
{
	uint8_t out[RP_LIVE_HELLO_LEN];
	struct rp_live_hello m;
	const char *why = NULL;

	if (rp_live_hello_decode(p, n, &m, &why))
		return;
	FUZZ_CHECK(rp_live_hello_encode(out, &m) == n && !memcmp(out, p, n));
	FUZZ_CHECK(m.session && m.nstreams >= 1 &&
		   m.nstreams <= RP_LIVE_MAX_STREAMS);
}

static void hello_ack(const uint8_t *p, size_t n)
{
	uint8_t out[RP_LIVE_HELLO_ACK_LEN];
	struct rp_live_hello_ack m;
	const char *why = NULL;

	if (rp_live_hello_ack_decode(p, n, &m, &why))
		return;
	FUZZ_CHECK(rp_live_hello_ack_encode(out, &m) == n && !memcmp(out, p, n));
}

static void pages(const uint8_t *p, size_t n)
{
	uint8_t out[RP_LIVE_PAGES_HDR];
	struct rp_live_pages m;
	const char *why = NULL;
	uint64_t npages;
	uint32_t psize;
	size_t frame;

	if (n < 4 + RP_LIVE_PAGES_HDR)
		return;
	npages = 1 + (p[0] | p[1] << 8);
	psize = p[2] & 1 ? 2u << 20 : 4096;
	frame = RP_LIVE_PAGES_HDR + (size_t)p[3] * psize;
	p += 4;
	if (rp_live_pages_hdr_decode(p, frame, npages, psize, &m, &why))
		return;
	FUZZ_CHECK(m.npages >= 1 && m.first + m.npages <= npages);
	FUZZ_CHECK((size_t)m.npages * psize + RP_LIVE_PAGES_HDR == frame);
	FUZZ_CHECK(rp_live_pages_hdr_encode(out, &m) == RP_LIVE_PAGES_HDR &&
		   !memcmp(out, p, RP_LIVE_PAGES_HDR));
}

static void round_msg(const uint8_t *p, size_t n)
{
	uint8_t out[RP_LIVE_ROUND_LEN];
	struct rp_live_round m;
	const char *why = NULL;

	if (rp_live_round_decode(p, n, &m, &why))
		return;
	FUZZ_CHECK(rp_live_round_encode(out, &m) == n && !memcmp(out, p, n));
}

static void sw(const uint8_t *p, size_t n)
{
	struct rp_live_switch m;
	const char *why = NULL;
	uint64_t npages;
	uint8_t *out, *in;

	if (n < 2)
		return;
	npages = 1 + (p[0] | p[1] << 8);
	/* the receiver decodes from a malloc'ed (aligned) buffer: so here */
	in = malloc(n - 2 + 1);
	FUZZ_CHECK(in);
	memcpy(in, p + 2, n - 2);
	p = in;
	n -= 2;
	if (rp_live_switch_decode(p, n, npages, &m, &why)) {
		free(in);
		return;
	}
	FUZZ_CHECK(rp_live_switch_size(npages) == n && m.ndrop <= npages);
	out = malloc(n);
	FUZZ_CHECK(out);
	FUZZ_CHECK(rp_live_switch_encode(out, &m) == n);
	FUZZ_CHECK(!memcmp(out, p, n));
	free(out);
	free(in);
}

static void status(const uint8_t *p, size_t n)
{
	uint8_t out[RP_LIVE_STATUS_LEN];
	struct rp_live_status m;
	const char *why = NULL;

	if (rp_live_status_decode(p, n, &m, &why))
		return;
	FUZZ_CHECK(rp_live_status_encode(out, &m) == n && !memcmp(out, p, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static void (*const f[])(const uint8_t *, size_t) = {
		hello, hello_ack, pages, round_msg, sw, status,
	};

	if (size < 1)
		return 0;
	f[data[0] % (sizeof(f) / sizeof(f[0]))](data + 1, size - 1);
	return 0;
}
