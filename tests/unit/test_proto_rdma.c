/* SPDX-License-Identifier: MIT */
/* The RDMA extension's decoders: round trips, each class of malformed
 * input, and random mutations that must never crash or be half-accepted. */
#include <stdlib.h>
#include <string.h>

#include "../../common/proto_rdma.h"
#include "tests.h"

static const struct rp_region_desc desc[2] = {
	{ .id = 0, .page_size = 4096, .length = 3 << 20, .name_len = 1, .name = "a" },
	{ .id = 1, .page_size = 2 << 20, .length = 4 << 20, .name_len = 1, .name = "b" },
};

/* addresses are zero-based: each chunk's is its offset in the region */
static struct rp_rdma_chunk ch0[2] = {
	{ .addr = 0, .length = 2 << 20, .rkey = 11 },
	{ .addr = 2 << 20, .length = 1 << 20, .rkey = 12 },
};
static struct rp_rdma_chunk ch1[1] = {
	{ .addr = 0, .length = 4 << 20, .rkey = 13 },
};

static size_t encode(uint8_t *buf)
{
	struct rp_rdma_region_keys k[2] = {
		{ .id = 0, .page_size = 4096, .length = 3 << 20, .nchunks = 2, .chunks = ch0 },
		{ .id = 1, .page_size = 2 << 20, .length = 4 << 20, .nchunks = 1, .chunks = ch1 },
	};

	CU_ASSERT_FATAL(rp_rdma_keys_size(k, 2) <= 512);
	return rp_rdma_keys_encode(buf, k, 2, RP_RDMA_KEYS_MW);
}

static void t_keys_roundtrip(void)
{
	uint8_t b[512];
	struct rp_rdma_region_keys *out = NULL;
	const char *why = NULL;
	unsigned n = 0;
	size_t len = encode(b);

	uint32_t flags = 0;

	CU_ASSERT_EQUAL_FATAL(rp_rdma_keys_decode(b, len, desc, 2, &out, &n, &flags, &why), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(flags, RP_RDMA_KEYS_MW);
	CU_ASSERT_EQUAL(out[0].nchunks, 2);
	CU_ASSERT_EQUAL(out[0].chunks[1].rkey, 12);
	CU_ASSERT_EQUAL(out[0].chunks[1].addr, 2 << 20);
	rp_rdma_keys_free(out, n);
	/* unknown flags */
	b[4] |= 2;
	CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, len, desc, 2, &out, &n, NULL, &why), -EPROTO);
	b[4] &= (uint8_t)~2;
	/* every truncation and one trailing byte are rejected */
	for (size_t l = 0; l < len; l++)
		CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, l, desc, 2, &out, &n, NULL, &why), -EPROTO);
	b[len] = 0;
	CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, len + 1, desc, 2, &out, &n, NULL, &why), -EPROTO);
	/* a table that does not match the region table */
	CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, len, desc, 1, &out, &n, NULL, &why), -EPROTO);
}

static void t_keys_inconsistent(void)
{
	uint8_t b[512];
	struct rp_rdma_region_keys *out = NULL;
	const char *why = NULL;
	unsigned n = 0;
	size_t len;

	/* chunk lengths that do not add up to the region */
	ch0[1].length = 2 << 20;
	len = encode(b);
	CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, len, desc, 2, &out, &n, NULL, &why), -EPROTO);
	/* a chunk not a multiple of the page size */
	ch0[1].length = (1 << 20) - 512;
	len = encode(b);
	CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, len, desc, 2, &out, &n, NULL, &why), -EPROTO);
	/* a zero-length chunk */
	ch0[1].length = 0;
	len = encode(b);
	CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, len, desc, 2, &out, &n, NULL, &why), -EPROTO);
	ch0[1].length = 1 << 20;
	/* an address range that wraps, and a virtual address: neither is
	 * the chunk's region offset */
	ch0[1].addr = UINT64_MAX - 4095;
	len = encode(b);
	CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, len, desc, 2, &out, &n, NULL, &why), -EPROTO);
	ch0[1].addr = 0x7f0000200000ull;
	len = encode(b);
	CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, len, desc, 2, &out, &n, NULL, &why), -EPROTO);
	ch0[1].addr = 2 << 20;
	len = encode(b);
	CU_ASSERT_EQUAL(rp_rdma_keys_decode(b, len, desc, 2, &out, &n, NULL, &why), 0);
	rp_rdma_keys_free(out, n);
}

/* Random byte mutations: no crash, and anything accepted is consistent. */
static void t_keys_mutations(void)
{
	uint8_t good[512], b[512];
	size_t len = encode(good);
	uint64_t x = 0x1234567;
	unsigned accepted = 0;

	for (int it = 0; it < 20000; it++) {
		struct rp_rdma_region_keys *out = NULL;
		const char *why = NULL;
		unsigned n = 0, flips;

		memcpy(b, good, len);
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		flips = 1 + (unsigned)(x >> 60) % 4;
		for (unsigned f = 0; f < flips; f++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			b[(x >> 33) % len] ^= (uint8_t)(1u << ((x >> 20) % 8));
		}
		if (rp_rdma_keys_decode(b, len, desc, 2, &out, &n, NULL, &why) == 0) {
			accepted++;
			for (unsigned r = 0; r < n; r++) {
				uint64_t sum = 0;

				for (unsigned c = 0; c < out[r].nchunks; c++)
					sum += out[r].chunks[c].length;
				CU_ASSERT_EQUAL(sum, desc[r].length);
			}
			rp_rdma_keys_free(out, n);
		}
	}
	/* rkeys may flip freely; most other flips are caught */
	CU_ASSERT(accepted < 20000);
}

static void t_conn(void)
{
	struct rp_rdma_conn c = { .version = RP_RDMA_CONN_VERSION, .role = RP_ROLE_URGENT,
				  .session = 99, .ticket = { 1, 2, 3, [15] = 16 } }, o;
	uint8_t b[RP_RDMA_CONN_MAX] = { 0 };
	const char *why = NULL;

	CU_ASSERT_EQUAL(rp_rdma_conn_encode(b, &c), RP_RDMA_CONN_LEN);
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(b, RP_RDMA_CONN_LEN, &o, &why), 0);
	CU_ASSERT_EQUAL(o.session, 99);
	CU_ASSERT(!memcmp(o.ticket, c.ticket, sizeof(c.ticket)));
	/* rdma_cm pads private data with zeros: accepted */
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(b, RP_RDMA_CONN_MAX, &o, &why), 0);
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(NULL, 0, &o, &why), -EPROTO);
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(b, RP_RDMA_CONN_LEN - 1, &o, &why), -EPROTO);
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(b, RP_RDMA_CONN_MAX + 1, &o, &why), -EPROTO);
	b[RP_RDMA_CONN_LEN + 3] = 1;
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(b, RP_RDMA_CONN_MAX, &o, &why), -EPROTO);
	b[RP_RDMA_CONN_LEN + 3] = 0;
	b[0] ^= 1;
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(b, RP_RDMA_CONN_LEN, &o, &why), -EPROTO);
	b[0] ^= 1;
	c.role = RP_ROLE_CONTROL;
	rp_rdma_conn_encode(b, &c);
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(b, RP_RDMA_CONN_LEN, &o, &why), -EPROTO);
	c.role = RP_ROLE_BULK;
	c.session = 0;
	rp_rdma_conn_encode(b, &c);
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(b, RP_RDMA_CONN_LEN, &o, &why), -EPROTO);
	c.session = 5;
	c.version = RP_RDMA_CONN_VERSION - 1;
	rp_rdma_conn_encode(b, &c);
	CU_ASSERT_EQUAL(rp_rdma_conn_decode(b, RP_RDMA_CONN_LEN, &o, &why), -EPROTO);
}

static void t_info(void)
{
	struct rp_rdma_info i = { .port = 7071 }, o;
	uint8_t b[RP_RDMA_INFO_LEN + 1] = { 0 };
	const char *why = NULL;

	CU_ASSERT_EQUAL(rp_rdma_info_encode(b, &i), RP_RDMA_INFO_LEN);
	CU_ASSERT_EQUAL(rp_rdma_info_decode(b, RP_RDMA_INFO_LEN, &o, &why), 0);
	CU_ASSERT_EQUAL(o.port, 7071);
	CU_ASSERT_EQUAL(rp_rdma_info_decode(b, RP_RDMA_INFO_LEN - 1, &o, &why), -EPROTO);
	CU_ASSERT_EQUAL(rp_rdma_info_decode(b, RP_RDMA_INFO_LEN + 1, &o, &why), -EPROTO);
}

int register_proto_rdma_tests(void)
{
	CU_pSuite s = CU_add_suite("proto-rdma", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, t_keys_roundtrip);
	ADD(s, t_keys_inconsistent);
	ADD(s, t_keys_mutations);
	ADD(s, t_conn);
	ADD(s, t_info);
	return 0;
}
