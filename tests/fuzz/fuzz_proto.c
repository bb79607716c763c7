/* SPDX-License-Identifier: MIT */
/*
 * The core protocol decoders (common/proto.c). The first byte picks the
 * decoder, the rest is the payload. Invariant: whatever a decoder accepts
 * encodes back to exactly the bytes it came from, and decodes again to
 * the same values (no field is ignored, no two encodings mean one thing).
 */
#include "../../common/proto.h"
#include "../../common/rp.h"
#include "fuzz.h"

static void hdr(const uint8_t *p, size_t n)
{
	uint8_t out[RP_HDR_LEN];
	struct rp_hdr h;
	const char *why = NULL;

	if (n != RP_HDR_LEN || rp_hdr_decode(p, &h, &why))
		return;
	rp_hdr_encode(out, &h);
	FUZZ_CHECK(!memcmp(out, p, RP_HDR_LEN));
}

static void hello(const uint8_t *p, size_t n)
{
	uint8_t out[RP_HELLO_LEN + RP_MAX_AUTH];
	struct rp_hello m, m2;
	const char *why = NULL;

	if (rp_hello_decode(p, n, &m, &why))
		return;
	FUZZ_CHECK(rp_hello_encode(out, &m) == n);
	FUZZ_CHECK(!memcmp(out, p, n));
	FUZZ_CHECK(rp_hello_decode(out, n, &m2, &why) == 0);
	FUZZ_CHECK(m2.session == m.session && m2.features == m.features &&
		   m2.role == m.role && m2.auth_len == m.auth_len);
}

static void hello_ack(const uint8_t *p, size_t n)
{
	uint8_t out[RP_HELLO_ACK_LEN];
	struct rp_hello_ack m;
	const char *why = NULL;

	if (rp_hello_ack_decode(p, n, &m, &why))
		return;
	FUZZ_CHECK(rp_hello_ack_encode(out, &m) == n);
	FUZZ_CHECK(!memcmp(out, p, n));
}

static void regions(const uint8_t *p, size_t n)
{
	struct rp_region_desc *d = NULL, *d2 = NULL;
	const char *why = NULL;
	unsigned cnt = 0, cnt2 = 0;
	uint8_t *out;

	if (rp_regions_decode(p, n, &d, &cnt, &why))
		return;
	FUZZ_CHECK(rp_regions_size(d, cnt) == n);
	out = malloc(n);
	FUZZ_CHECK(out);
	FUZZ_CHECK(rp_regions_encode(out, d, cnt) == n);
	FUZZ_CHECK(!memcmp(out, p, n));
	FUZZ_CHECK(rp_regions_decode(out, n, &d2, &cnt2, &why) == 0);
	FUZZ_CHECK(cnt2 == cnt);
	for (unsigned i = 0; i < cnt; i++) {
		FUZZ_CHECK(d[i].id == i && d2[i].length == d[i].length);
		FUZZ_CHECK(strlen(d[i].name) == d[i].name_len);
		FUZZ_CHECK(!strcmp(d[i].name, d2[i].name));
	}
	free(out);
	free(d);
	free(d2);
}

static void page_req(const uint8_t *p, size_t n)
{
	uint8_t out[RP_PAGE_REQ_LEN];
	struct rp_page_req m;
	const char *why = NULL;

	if (rp_page_req_decode(p, n, &m, &why))
		return;
	FUZZ_CHECK(rp_page_req_encode(out, &m) == n && !memcmp(out, p, n));
	if (rp_page_req_check(&m, 1ull << 40, &why) == 0)
		FUZZ_CHECK(m.len && m.len <= RP_MAX_DATA && !(m.offset % 4096) &&
			   m.offset + m.len <= 1ull << 40);
}

static void page_data(const uint8_t *p, size_t n)
{
	struct rp_page_req m;
	const char *why = NULL;
	size_t frame;

	if (n < 8)
		return;
	/* the frame length the header would announce */
	frame = (size_t)(p[0] | p[1] << 8 | p[2] << 16) % (RP_MAX_DATA + 64);
	frame = RP_MIN(n - 8, frame);
	if (rp_page_data_hdr_decode(p + 8, frame, &m, &why))
		return;
	FUZZ_CHECK((size_t)m.len + (size_t)RP_PAGE_DATA_HDR == frame);
}

static void error(const uint8_t *p, size_t n)
{
	struct rp_error e;
	const char *why = NULL;

	if (rp_error_decode(p, n, &e, &why))
		return;
	FUZZ_CHECK(n == 8 + (size_t)e.msg_len && e.msg[e.msg_len] == 0);
	/* what reaches a log is printable ASCII only */
	for (unsigned i = 0; i < e.msg_len; i++)
		FUZZ_CHECK(e.msg[i] >= 0x20 && e.msg[i] < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static void (*const f[])(const uint8_t *, size_t) = {
		hdr, hello, hello_ack, regions, page_req, page_data, error,
	};

	if (size < 1)
		return 0;
	f[data[0] % (sizeof(f) / sizeof(f[0]))](data + 1, size - 1);
	return 0;
}
