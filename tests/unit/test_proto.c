/* SPDX-License-Identifier: MIT */
/* The wire protocol: round trips and every class of malformed input. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/proto.h"
#include "../../common/rp.h"
#include "tests.h"

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4); /* x86: little-endian */
}

static void t_hdr_roundtrip(void)
{
	struct rp_hdr h = { .type = RP_MSG_PAGE_REQ, .len = 16, .tag = 0x1122334455667788ull }, o;
	uint8_t b[RP_HDR_LEN];
	const char *why = NULL;

	rp_hdr_encode(b, &h);
	CU_ASSERT_EQUAL(rp_hdr_decode(b, &o, &why), 0);
	CU_ASSERT_EQUAL(o.type, h.type);
	CU_ASSERT_EQUAL(o.len, h.len);
	CU_ASSERT_EQUAL(o.tag, h.tag);
}

static void t_hdr_rejects(void)
{
	struct rp_hdr h = { 0 }, o;
	uint8_t b[RP_HDR_LEN];
	const char *why = NULL;

	/* unknown type */
	h.type = 99;
	rp_hdr_encode(b, &h);
	CU_ASSERT_EQUAL(rp_hdr_decode(b, &o, &why), -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(why);
	h.type = 0;
	rp_hdr_encode(b, &h);
	CU_ASSERT_EQUAL(rp_hdr_decode(b, &o, &why), -EPROTO);
	/* control message longer than the control limit */
	h.type = RP_MSG_PAGE_REQ;
	h.len = RP_MAX_CTRL + 1;
	rp_hdr_encode(b, &h);
	CU_ASSERT_EQUAL(rp_hdr_decode(b, &o, &why), -EPROTO);
	/* page data beyond the data limit */
	h.type = RP_MSG_PAGE_DATA;
	h.len = RP_PAGE_DATA_HDR + RP_MAX_DATA + 1;
	rp_hdr_encode(b, &h);
	CU_ASSERT_EQUAL(rp_hdr_decode(b, &o, &why), -EPROTO);
	h.len = RP_PAGE_DATA_HDR + RP_MAX_DATA;
	rp_hdr_encode(b, &h);
	CU_ASSERT_EQUAL(rp_hdr_decode(b, &o, &why), 0);
	/* reserved flags */
	h.type = RP_MSG_DONE;
	h.len = 4;
	h.flags = 1;
	rp_hdr_encode(b, &h);
	CU_ASSERT_EQUAL(rp_hdr_decode(b, &o, &why), -EPROTO);
}

static void t_hello(void)
{
	uint8_t auth[3] = { 1, 2, 3 }, b[RP_HELLO_LEN + 16];
	struct rp_hello h = { .ver_min = 1, .ver_max = 3, .role = RP_ROLE_BULK,
			      .features = RP_FEAT_SENDFILE, .session = 42,
			      .auth_len = 3, .auth = auth }, o;
	const char *why = NULL;
	size_t n = rp_hello_encode(b, &h);

	CU_ASSERT_EQUAL(n, RP_HELLO_LEN + 3);
	CU_ASSERT_EQUAL(rp_hello_decode(b, n, &o, &why), 0);
	CU_ASSERT_EQUAL(o.ver_max, 3);
	CU_ASSERT_EQUAL(o.role, RP_ROLE_BULK);
	CU_ASSERT_EQUAL(o.session, 42);
	CU_ASSERT_EQUAL(o.auth_len, 3);
	CU_ASSERT_EQUAL(memcmp(o.auth, auth, 3), 0);
	/* truncated, trailing byte, bad magic, bad role, empty version range */
	CU_ASSERT_EQUAL(rp_hello_decode(b, n - 1, &o, &why), -EPROTO);
	CU_ASSERT_EQUAL(rp_hello_decode(b, RP_HELLO_LEN - 1, &o, &why), -EPROTO);
	b[n] = 0;
	CU_ASSERT_EQUAL(rp_hello_decode(b, n + 1, &o, &why), -EPROTO);
	b[0] ^= 0xff;
	CU_ASSERT_EQUAL(rp_hello_decode(b, n, &o, &why), -EPROTO);
	b[0] ^= 0xff;
	b[8] = 7;
	CU_ASSERT_EQUAL(rp_hello_decode(b, n, &o, &why), -EPROTO);
	b[8] = RP_ROLE_BULK;
	h.ver_min = 4;
	n = rp_hello_encode(b, &h);
	CU_ASSERT_EQUAL(rp_hello_decode(b, n, &o, &why), -EPROTO);
}

static void t_hello_ack(void)
{
	struct rp_hello_ack a = { .version = RP_VERSION, .features = 0, .session = 7,
				  .max_data = RP_MAX_DATA, .nregions = 2 }, o;
	uint8_t b[RP_HELLO_ACK_LEN];
	const char *why = NULL;

	rp_hello_ack_encode(b, &a);
	CU_ASSERT_EQUAL(rp_hello_ack_decode(b, sizeof(b), &o, &why), 0);
	CU_ASSERT_EQUAL(o.session, 7);
	CU_ASSERT_EQUAL(o.nregions, 2);
	/* wrong version */
	a.version = RP_VERSION + 1;
	rp_hello_ack_encode(b, &a);
	CU_ASSERT_EQUAL(rp_hello_ack_decode(b, sizeof(b), &o, &why), -EPROTO);
	/* features we never offered */
	a.version = RP_VERSION;
	a.features = 1ull << 40;
	rp_hello_ack_encode(b, &a);
	CU_ASSERT_EQUAL(rp_hello_ack_decode(b, sizeof(b), &o, &why), -EPROTO);
	/* region count beyond the limit */
	a.features = 0;
	a.nregions = RP_MAX_REGIONS + 1;
	rp_hello_ack_encode(b, &a);
	CU_ASSERT_EQUAL(rp_hello_ack_decode(b, sizeof(b), &o, &why), -EPROTO);
	/* wrong length */
	CU_ASSERT_EQUAL(rp_hello_ack_decode(b, sizeof(b) - 1, &o, &why), -EPROTO);
}

static void t_regions(void)
{
	struct rp_region_desc d[2] = {
		{ .id = 0, .page_size = 4096, .length = 1 << 20, .identity = 0x1122334455667788ull,
		  .name_len = 3, .name = "mem" },
		{ .id = 1, .page_size = 2 << 20, .length = 4 << 20, .identity = 7,
		  .name_len = 9, .name = "huge.pg-1" },
	};
	struct rp_region_desc *o = NULL;
	uint8_t b[1024];
	const char *why = NULL;
	unsigned n = 0;
	size_t len = rp_regions_encode(b, d, 2);

	CU_ASSERT_EQUAL(len, rp_regions_size(d, 2));
	CU_ASSERT_EQUAL_FATAL(rp_regions_decode(b, len, &o, &n, &why), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_STRING_EQUAL(o[1].name, "huge.pg-1");
	CU_ASSERT_EQUAL(o[1].page_size, 2u << 20);
	CU_ASSERT_EQUAL(o[0].identity, 0x1122334455667788ull);
	CU_ASSERT_EQUAL(o[1].identity, 7);
	free(o);
	/* every truncation is rejected */
	for (size_t l = 0; l < len; l++)
		CU_ASSERT_EQUAL(rp_regions_decode(b, l, &o, &n, &why), -EPROTO);
	/* count that claims more than there is */
	put32(b, 3);
	CU_ASSERT_EQUAL(rp_regions_decode(b, len, &o, &n, &why), -EPROTO);
	put32(b, RP_MAX_REGIONS + 1);
	CU_ASSERT_EQUAL(rp_regions_decode(b, len, &o, &n, &why), -EPROTO);
	put32(b, 2);
	/* name with a character outside the allowed set */
	b[4 + 32] = '/';
	CU_ASSERT_EQUAL(rp_regions_decode(b, len, &o, &n, &why), -EPROTO);
	b[4 + 32] = 'm';
	/* the padding after a name must be zero (docs/protocol.md) */
	b[4 + 32 + 3] = 'x';
	CU_ASSERT_EQUAL(rp_regions_decode(b, len, &o, &n, &why), -EPROTO);
	b[4 + 32 + 3] = 0;
	b[4 + 32 + 7] = 1;
	CU_ASSERT_EQUAL(rp_regions_decode(b, len, &o, &n, &why), -EPROTO);
	b[4 + 32 + 7] = 0;
	CU_ASSERT_EQUAL(rp_regions_decode(b, len, &o, &n, &why), 0);
	free(o);
	/* length not a multiple of the page size */
	put32(b + 4 + 8, 4097);
	CU_ASSERT_EQUAL(rp_regions_decode(b, len, &o, &n, &why), -EPROTO);
}

static void t_page_req(void)
{
	struct rp_page_req r = { .region = 1, .len = 8192, .offset = 4096 }, o;
	uint8_t b[RP_PAGE_REQ_LEN + 1];
	const char *why = NULL;

	rp_page_req_encode(b, &r);
	CU_ASSERT_EQUAL(rp_page_req_decode(b, RP_PAGE_REQ_LEN, &o, &why), 0);
	CU_ASSERT_EQUAL(o.offset, 4096);
	CU_ASSERT_EQUAL(rp_page_req_decode(b, RP_PAGE_REQ_LEN - 1, &o, &why), -EPROTO);
	CU_ASSERT_EQUAL(rp_page_req_decode(b, RP_PAGE_REQ_LEN + 1, &o, &why), -EPROTO);
	/* bounds */
	CU_ASSERT_EQUAL(rp_page_req_check(&o, 12288, &why), 0);
	CU_ASSERT_EQUAL(rp_page_req_check(&o, 8192, &why), -EPROTO);
	o.offset = UINT64_MAX - 4095; /* offset + len overflows */
	CU_ASSERT_EQUAL(rp_page_req_check(&o, UINT64_MAX - 4095, &why), -EPROTO);
	o.offset = 100; /* unaligned */
	CU_ASSERT_EQUAL(rp_page_req_check(&o, 1 << 20, &why), -EPROTO);
	o.offset = 0;
	o.len = 0;
	CU_ASSERT_EQUAL(rp_page_req_check(&o, 1 << 20, &why), -EPROTO);
	o.len = RP_MAX_DATA + 4096;
	CU_ASSERT_EQUAL(rp_page_req_check(&o, 1ull << 40, &why), -EPROTO);
}

static void t_page_data_and_error(void)
{
	struct rp_page_req r = { .region = 0, .len = 4096, .offset = 0 }, o;
	uint8_t b[RP_PAGE_DATA_HDR], eb[8 + RP_MAX_ERRMSG];
	struct rp_error e;
	const char *why = NULL;
	size_t n;

	rp_page_data_hdr_encode(b, &r);
	CU_ASSERT_EQUAL(rp_page_data_hdr_decode(b, RP_PAGE_DATA_HDR + 4096, &o, &why), 0);
	CU_ASSERT_EQUAL(rp_page_data_hdr_decode(b, RP_PAGE_DATA_HDR + 4095, &o, &why), -EPROTO);
	CU_ASSERT_EQUAL(rp_page_data_hdr_decode(b, 8, &o, &why), -EPROTO);
	n = rp_error_encode(eb, ERANGE, "out of\x1b[31m range");
	CU_ASSERT_EQUAL(rp_error_decode(eb, n, &e, &why), 0);
	CU_ASSERT_EQUAL(e.code, ERANGE);
	CU_ASSERT_PTR_NULL(strchr(e.msg, '\x1b')); /* control bytes neutralised */
	CU_ASSERT_EQUAL(rp_error_decode(eb, n - 1, &e, &why), -EPROTO);
	/* DEL, C1 controls (raw and UTF-8 encoded) and every other byte
	 * outside printable ASCII become '?' before a log sees them */
	n = rp_error_encode(eb, EIO, "a\x7f" "b\x9b" "31m" "c\xc2\x9b" "d\xff");
	CU_ASSERT_EQUAL_FATAL(rp_error_decode(eb, n, &e, &why), 0);
	CU_ASSERT_STRING_EQUAL(e.msg, "a?b?31mc??d?");
}

/* Framed I/O: a frame larger than the receiver's buffer is refused. */
static void t_frames(void)
{
	int sv[2];
	uint8_t buf[64];
	struct rp_hdr h;
	const char *why = NULL;

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_EQUAL(rp_send_frame(sv[0], RP_MSG_DONE, 9, "abcd", 4), 0);
	CU_ASSERT_EQUAL(rp_recv_frame(sv[1], &h, buf, sizeof(buf), &why), 0);
	CU_ASSERT_EQUAL(h.tag, 9);
	CU_ASSERT_EQUAL(memcmp(buf, "abcd", 4), 0);
	CU_ASSERT_EQUAL(rp_send_frame(sv[0], RP_MSG_ERROR, 1, buf, 64), 0);
	CU_ASSERT_EQUAL(rp_recv_frame(sv[1], &h, buf, 32, &why), -EPROTO);
	close(sv[0]);
	close(sv[1]);
	/* peer gone mid-header */
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_EQUAL(write(sv[0], buf, 8), 8);
	close(sv[0]);
	CU_ASSERT_EQUAL(rp_recv_frame(sv[1], &h, buf, sizeof(buf), &why), -ECONNRESET);
	close(sv[1]);
}

int register_proto_tests(void)
{
	CU_pSuite s = CU_add_suite("proto", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, t_hdr_roundtrip);
	ADD(s, t_hdr_rejects);
	ADD(s, t_hello);
	ADD(s, t_hello_ack);
	ADD(s, t_regions);
	ADD(s, t_page_req);
	ADD(s, t_page_data_and_error);
	ADD(s, t_frames);
	return 0;
}
