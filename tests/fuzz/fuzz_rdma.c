/* SPDX-License-Identifier: MIT */
/*
 * The RDMA extension's decoders (common/proto_rdma.c): RDMA_INFO, the
 * CONNECT private data and RDMA_KEYS, checked against a region table
 * taken from the input's first bytes. Invariant: an accepted message
 * encodes back to the same bytes, and accepted keys cover each region
 * exactly, chunk by chunk, from address 0 (zero-based).
 */
#include "../../common/proto_rdma.h"
#include "fuzz.h"

static void info(const uint8_t *p, size_t n)
{
	uint8_t out[RP_RDMA_INFO_LEN];
	struct rp_rdma_info m;
	const char *why = NULL;

	if (rp_rdma_info_decode(p, n, &m, &why))
		return;
	FUZZ_CHECK(rp_rdma_info_encode(out, &m) == n && !memcmp(out, p, n));
}

static void conn(const uint8_t *p, size_t n)
{
	uint8_t out[RP_RDMA_CONN_LEN];
	struct rp_rdma_conn m;
	const char *why = NULL;

	if (rp_rdma_conn_decode(p, n, &m, &why))
		return;
	FUZZ_CHECK(n >= RP_RDMA_CONN_LEN && n <= RP_RDMA_CONN_MAX);
	FUZZ_CHECK(rp_rdma_conn_encode(out, &m) == RP_RDMA_CONN_LEN);
	FUZZ_CHECK(!memcmp(out, p, RP_RDMA_CONN_LEN));
	FUZZ_CHECK(m.session && (m.role == RP_ROLE_URGENT || m.role == RP_ROLE_BULK));
}

static void keys(const uint8_t *p, size_t n)
{
	struct rp_region_desc d[4];
	struct rp_rdma_region_keys *k = NULL;
	const char *why = NULL;
	unsigned nd, nk = 0;
	uint32_t flags = 0;
	uint8_t *out;

	/* a region table: 1..4 regions of 1..16 pages of 4 KiB or 2 MiB */
	if (n < 1)
		return;
	nd = 1 + p[0] % 4;
	if (n < 1 + nd)
		return;
	for (unsigned i = 0; i < nd; i++) {
		memset(&d[i], 0, sizeof(d[i]));
		d[i].id = i;
		d[i].page_size = p[1 + i] & 0x80 ? 2u << 20 : 4096;
		d[i].length = (uint64_t)(1 + (p[1 + i] & 15)) * d[i].page_size;
	}
	p += 1 + nd;
	n -= 1 + nd;
	if (rp_rdma_keys_decode(p, n, d, nd, &k, &nk, &flags, &why))
		return;
	FUZZ_CHECK(nk == nd && !(flags & ~RP_RDMA_KEYS_MW));
	for (unsigned i = 0; i < nk; i++) {
		uint64_t off = 0;

		for (uint32_t c = 0; c < k[i].nchunks; c++) {
			FUZZ_CHECK(k[i].chunks[c].addr == off);
			FUZZ_CHECK(k[i].chunks[c].length % d[i].page_size == 0);
			off += k[i].chunks[c].length;
		}
		FUZZ_CHECK(off == d[i].length);
	}
	FUZZ_CHECK(rp_rdma_keys_size(k, nk) == n);
	out = malloc(n);
	FUZZ_CHECK(out);
	rp_rdma_keys_encode(out, k, nk, flags);
	FUZZ_CHECK(!memcmp(out, p, n));
	free(out);
	rp_rdma_keys_free(k, nk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		info(data + 1, size - 1);
		break;
	case 1:
		conn(data + 1, size - 1);
		break;
	default:
		keys(data + 1, size - 1);
		break;
	}
	return 0;
}
