/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "proto.h"
#include "rp.h"
#include "tls.h"
#include "wire.h"

static const char *const msg_names[] = {
	[0] = "INVALID",
	[RP_MSG_HELLO] = "HELLO",
	[RP_MSG_HELLO_ACK] = "HELLO_ACK",
	[RP_MSG_REGIONS_REQ] = "REGIONS_REQ",
	[RP_MSG_REGIONS] = "REGIONS",
	[RP_MSG_PAGE_REQ] = "PAGE_REQ",
	[RP_MSG_PAGE_DATA] = "PAGE_DATA",
	[RP_MSG_ERROR] = "ERROR",
	[RP_MSG_DONE] = "DONE",
	[RP_MSG_BYE] = "BYE",
};

/* A REGIONS entry before its name. */
#define REGION_ENTRY_FIXED 32

const char *rp_msg_name(unsigned type)
{
	return type <= RP_MSG_TYPE_MAX ? msg_names[type] : "UNKNOWN";
}

void rp_hdr_encode(uint8_t out[RP_HDR_LEN], const struct rp_hdr *h)
{
	put16(out, h->type);
	put16(out + 2, h->flags);
	put32(out + 4, h->len);
	put64(out + 8, h->tag);
}

int rp_hdr_decode(const uint8_t in[RP_HDR_LEN], struct rp_hdr *h,
		  const char **why)
{
	uint32_t max;

	h->type = get16(in);
	h->flags = get16(in + 2);
	h->len = get32(in + 4);
	h->tag = get64(in + 8);
	if (h->type == 0 ||
	    (h->type > RP_MSG_TYPE_MAX &&
	     !(h->type >= RP_MSG_RDMA_FIRST && h->type <= RP_MSG_RDMA_LAST) &&
	     !(h->type >= RP_MSG_LIVE_FIRST && h->type <= RP_MSG_LIVE_LAST)))
		FAIL("unknown message type");
	if (h->flags != 0)
		FAIL("reserved header flags set");
	switch (h->type) {
	case RP_MSG_PAGE_DATA:
		max = RP_PAGE_DATA_HDR + RP_MAX_DATA;
		break;
	case RP_MSG_REGIONS:
		max = 4 + RP_MAX_REGIONS * (REGION_ENTRY_FIXED + 256);
		break;
	default:
		max = h->type > RP_MSG_TYPE_MAX ? RP_MAX_FRAME : RP_MAX_CTRL;
		break;
	}
	if (h->len > max)
		FAIL("frame length beyond the limit for its type");
	return 0;
}

size_t rp_hello_encode(uint8_t *out, const struct rp_hello *m)
{
	put32(out, RP_MAGIC);
	put16(out + 4, m->ver_min);
	put16(out + 6, m->ver_max);
	out[8] = m->role;
	out[9] = m->auth_type;
	put16(out + 10, m->auth_len);
	put32(out + 12, 0);
	put64(out + 16, m->features);
	put64(out + 24, m->session);
	if (m->auth_len)
		memcpy(out + RP_HELLO_LEN, m->auth, m->auth_len);
	return RP_HELLO_LEN + m->auth_len;
}

int rp_hello_decode(const uint8_t *p, size_t len, struct rp_hello *m,
		    const char **why)
{
	if (len < RP_HELLO_LEN)
		FAIL("HELLO truncated");
	if (get32(p) != RP_MAGIC)
		FAIL("bad magic: not an rpage peer");
	m->ver_min = get16(p + 4);
	m->ver_max = get16(p + 6);
	m->role = p[8];
	m->auth_type = p[9];
	m->auth_len = get16(p + 10);
	if (get32(p + 12) != 0)
		FAIL("HELLO reserved bytes set");
	m->features = get64(p + 16);
	m->session = get64(p + 24);
	if (m->ver_min > m->ver_max)
		FAIL("HELLO version range is empty");
	if (m->role > RP_ROLE_MAX)
		FAIL("HELLO names an unknown role");
	if (m->auth_len > RP_MAX_AUTH)
		FAIL("HELLO authentication data too long");
	if (len != RP_HELLO_LEN + (size_t)m->auth_len)
		FAIL("HELLO length does not match its authentication data");
	m->auth = m->auth_len ? p + RP_HELLO_LEN : NULL;
	return 0;
}

size_t rp_hello_ack_encode(uint8_t *out, const struct rp_hello_ack *m)
{
	put32(out, RP_MAGIC);
	put16(out + 4, m->version);
	put16(out + 6, 0);
	put64(out + 8, m->features);
	put64(out + 16, m->session);
	put32(out + 24, m->max_data);
	put32(out + 28, m->nregions);
	return RP_HELLO_ACK_LEN;
}

int rp_hello_ack_decode(const uint8_t *p, size_t len, struct rp_hello_ack *m,
			const char **why)
{
	if (len != RP_HELLO_ACK_LEN)
		FAIL("HELLO_ACK has the wrong length");
	if (get32(p) != RP_MAGIC)
		FAIL("bad magic: not an rpage server");
	m->version = get16(p + 4);
	if (get16(p + 6))
		FAIL("HELLO_ACK reserved bytes set");
	m->features = get64(p + 8);
	m->session = get64(p + 16);
	m->max_data = get32(p + 24);
	m->nregions = get32(p + 28);
	if (m->version != RP_VERSION)
		FAIL("server chose a version we do not speak");
	if (m->features & ~RP_FEATURES_KNOWN)
		FAIL("server granted features we did not offer");
	if (m->max_data < RP_PAGE_4K || m->max_data > RP_MAX_DATA)
		FAIL("server's max data size out of range");
	if (m->nregions > RP_MAX_REGIONS)
		FAIL("too many regions");
	return 0;
}

static size_t region_entry_size(uint16_t name_len)
{
	return REGION_ENTRY_FIXED + (((size_t)name_len + 7) & ~(size_t)7);
}

size_t rp_regions_size(const struct rp_region_desc *r, unsigned n)
{
	size_t s = 4;

	for (unsigned i = 0; i < n; i++)
		s += region_entry_size(r[i].name_len);
	return s;
}

size_t rp_regions_encode(uint8_t *out, const struct rp_region_desc *r,
			 unsigned n)
{
	uint8_t *p = out + 4;

	put32(out, n);
	for (unsigned i = 0; i < n; i++) {
		size_t es = region_entry_size(r[i].name_len);

		memset(p, 0, es);
		put32(p, r[i].id);
		put32(p + 4, r[i].page_size);
		put64(p + 8, r[i].length);
		put16(p + 16, r[i].name_len);
		put64(p + 24, r[i].identity);
		memcpy(p + REGION_ENTRY_FIXED, r[i].name, r[i].name_len);
		p += es;
	}
	return (size_t)(p - out);
}

int rp_regions_decode(const uint8_t *p, size_t len,
		      struct rp_region_desc **out, unsigned *n,
		      const char **why)
{
	struct rp_region_desc *r;
	size_t pos = 4;
	uint32_t cnt;

	if (len < 4)
		FAIL("REGIONS truncated");
	cnt = get32(p);
	if (cnt > RP_MAX_REGIONS)
		FAIL("REGIONS count beyond the limit");
	r = calloc(cnt ? cnt : 1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (uint32_t i = 0; i < cnt; i++) {
		const uint8_t *e = p + pos;
		size_t es;

		if (len - pos < REGION_ENTRY_FIXED)
			goto trunc;
		r[i].id = get32(e);
		r[i].page_size = get32(e + 4);
		r[i].length = get64(e + 8);
		r[i].name_len = get16(e + 16);
		r[i].identity = get64(e + 24);
		es = region_entry_size(r[i].name_len);
		if (len - pos < es)
			goto trunc;
		if (get16(e + 18) || get32(e + 20)) {
			free(r);
			FAIL("REGIONS entry reserved bytes set");
		}
		if (r[i].id != i || !rp_is_pow2(r[i].page_size) ||
		    r[i].page_size < RP_PAGE_4K || r[i].length == 0 ||
		    r[i].length % r[i].page_size ||
		    !rp_valid_name((const char *)e + REGION_ENTRY_FIXED, r[i].name_len)) {
			free(r);
			FAIL("REGIONS entry invalid (id, page size, length or name)");
		}
		for (size_t k = REGION_ENTRY_FIXED + r[i].name_len; k < es; k++)
			if (e[k]) {
				free(r);
				FAIL("REGIONS entry name padding is not zero");
			}
		memcpy(r[i].name, e + REGION_ENTRY_FIXED, r[i].name_len);
		r[i].name[r[i].name_len] = 0;
		pos += es;
	}
	if (pos != len) {
		free(r);
		FAIL("REGIONS has trailing bytes");
	}
	*out = r;
	*n = cnt;
	return 0;
trunc:
	free(r);
	FAIL("REGIONS truncated");
}

size_t rp_page_req_encode(uint8_t *out, const struct rp_page_req *m)
{
	put32(out, m->region);
	put32(out + 4, m->len);
	put64(out + 8, m->offset);
	return RP_PAGE_REQ_LEN;
}

int rp_page_req_decode(const uint8_t *p, size_t len, struct rp_page_req *m,
		       const char **why)
{
	if (len != RP_PAGE_REQ_LEN)
		FAIL("PAGE_REQ has the wrong length");
	m->region = get32(p);
	m->len = get32(p + 4);
	m->offset = get64(p + 8);
	return 0;
}

int rp_page_req_check(const struct rp_page_req *m, uint64_t region_len,
		      const char **why)
{
	if (m->len == 0 || m->len > RP_MAX_DATA)
		FAIL("page request length is zero or beyond the limit");
	if (m->len % RP_PAGE_4K || m->offset % RP_PAGE_4K)
		FAIL("page request is not 4 KiB aligned");
	if (m->offset >= region_len || m->len > region_len - m->offset)
		FAIL("page request beyond the end of the region");
	return 0;
}

size_t rp_page_data_hdr_encode(uint8_t *out, const struct rp_page_req *m)
{
	return rp_page_req_encode(out, m);
}

int rp_page_data_hdr_decode(const uint8_t *p, size_t frame_len,
			    struct rp_page_req *m, const char **why)
{
	if (frame_len < RP_PAGE_DATA_HDR)
		FAIL("PAGE_DATA truncated");
	rp_page_req_decode(p, RP_PAGE_DATA_HDR, m, why);
	if ((size_t)m->len != frame_len - RP_PAGE_DATA_HDR)
		FAIL("PAGE_DATA length does not match its frame");
	return 0;
}

size_t rp_error_encode(uint8_t *out, int code, const char *msg)
{
	size_t l = strnlen(msg, RP_MAX_ERRMSG);

	put32(out, (uint32_t)code);
	put16(out + 4, (uint16_t)l);
	put16(out + 6, 0);
	memcpy(out + 8, msg, l);
	return 8 + l;
}

int rp_error_decode(const uint8_t *p, size_t len, struct rp_error *m,
		    const char **why)
{
	if (len < 8)
		FAIL("ERROR truncated");
	m->code = (int32_t)get32(p);
	m->msg_len = get16(p + 4);
	if (m->msg_len > RP_MAX_ERRMSG || len != 8 + (size_t)m->msg_len)
		FAIL("ERROR message length wrong");
	memcpy(m->msg, p + 8, m->msg_len);
	m->msg[m->msg_len] = 0;
	/* no terminal control from the peer: C0, DEL, C1 and every other
	 * byte outside printable ASCII becomes '?' */
	for (unsigned i = 0; i < m->msg_len; i++)
		if ((unsigned char)m->msg[i] < 0x20 ||
		    (unsigned char)m->msg[i] >= 0x7f)
			m->msg[i] = '?';
	return 0;
}

/* The plain-socket forms: a connection without TLS around @fd. */
int rp_send_frame(int fd, uint16_t type, uint64_t tag, const void *payload,
		  uint32_t len)
{
	struct rp_conn c = { .fd = fd };

	return rp_conn_send_frame(&c, type, tag, payload, len);
}

int rp_recv_frame(int fd, struct rp_hdr *h, void *payload, uint32_t cap,
		  const char **why)
{
	struct rp_conn c = { .fd = fd };

	return rp_conn_recv_frame(&c, h, payload, cap, why);
}
