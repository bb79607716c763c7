/* SPDX-License-Identifier: MIT */
/* RDMA connection data: encoders and strict decoders (see proto_rdma.h). */
#include <stdlib.h>

#include "proto_rdma.h"
#include "wire.h"
#include "rp.h"

const char *rp_rdma_msg_name(unsigned type)
{
	switch (type) {
	case RP_MSG_RDMA_INFO_REQ:
		return "RDMA_INFO_REQ";
	case RP_MSG_RDMA_INFO:
		return "RDMA_INFO";
	case RP_MSG_RDMA_KEYS_REQ:
		return "RDMA_KEYS_REQ";
	case RP_MSG_RDMA_KEYS:
		return "RDMA_KEYS";
	case RP_MSG_RDMA_TICKET_REQ:
		return "RDMA_TICKET_REQ";
	case RP_MSG_RDMA_TICKET:
		return "RDMA_TICKET";
	}
	return "UNKNOWN";
}

size_t rp_rdma_info_encode(uint8_t *out, const struct rp_rdma_info *m)
{
	put16(out, m->port);
	put16(out + 2, 0);
	put32(out + 4, 0);
	return RP_RDMA_INFO_LEN;
}

int rp_rdma_info_decode(const uint8_t *p, size_t len, struct rp_rdma_info *m,
			const char **why)
{
	if (len != RP_RDMA_INFO_LEN)
		FAIL("RDMA_INFO has the wrong length");
	if (get16(p + 2) || get32(p + 4))
		FAIL("RDMA_INFO reserved fields set");
	m->port = get16(p);
	return 0;
}

size_t rp_rdma_keys_size(const struct rp_rdma_region_keys *r, unsigned n)
{
	size_t sz = RP_RDMA_KEYS_HDR;

	for (unsigned i = 0; i < n; i++)
		sz += RP_RDMA_KEYS_REGION +
		      (size_t)r[i].nchunks * RP_RDMA_KEYS_CHUNK;
	return sz;
}

size_t rp_rdma_keys_encode(uint8_t *out, const struct rp_rdma_region_keys *r,
			   unsigned n, uint32_t flags)
{
	uint8_t *p = out;

	put32(p, n);
	put32(p + 4, flags);
	p += RP_RDMA_KEYS_HDR;
	for (unsigned i = 0; i < n; i++) {
		put32(p, r[i].id);
		put32(p + 4, r[i].page_size);
		put64(p + 8, r[i].length);
		put32(p + 16, r[i].nchunks);
		put32(p + 20, 0);
		p += RP_RDMA_KEYS_REGION;
		for (uint32_t k = 0; k < r[i].nchunks; k++) {
			put64(p, r[i].chunks[k].addr);
			put64(p + 8, r[i].chunks[k].length);
			put32(p + 16, r[i].chunks[k].rkey);
			put32(p + 20, 0);
			p += RP_RDMA_KEYS_CHUNK;
		}
	}
	return (size_t)(p - out);
}

void rp_rdma_keys_free(struct rp_rdma_region_keys *r, unsigned n)
{
	if (!r)
		return;
	for (unsigned i = 0; i < n; i++)
		free(r[i].chunks);
	free(r);
}

/* Decodes one region entry at *pp (bounds already known to hold the fixed
 * part); advances *pp and *left. */
static int keys_region(const uint8_t **pp, size_t *left, uint32_t want_id,
		       const struct rp_region_desc *d,
		       struct rp_rdma_region_keys *k, const char **why)
{
	const uint8_t *p = *pp;
	uint64_t sum = 0;

	if (*left < RP_RDMA_KEYS_REGION)
		FAIL("RDMA_KEYS is truncated (region entry)");
	k->id = get32(p);
	k->page_size = get32(p + 4);
	k->length = get64(p + 8);
	k->nchunks = get32(p + 16);
	if (get32(p + 20))
		FAIL("RDMA_KEYS region entry reserved field set");
	p += RP_RDMA_KEYS_REGION;
	*left -= RP_RDMA_KEYS_REGION;
	if (k->id != want_id)
		FAIL("RDMA_KEYS regions are not in id order");
	if (k->page_size != d->page_size || k->length != d->length)
		FAIL("RDMA_KEYS region length or page size differs from the region table");
	if (k->nchunks == 0 || k->nchunks > RP_RDMA_MAX_CHUNKS)
		FAIL("RDMA_KEYS chunk count is zero or beyond the limit");
	if ((uint64_t)k->nchunks * RP_RDMA_KEYS_CHUNK > *left)
		FAIL("RDMA_KEYS is truncated (chunks)");
	k->chunks = calloc(k->nchunks, sizeof(*k->chunks));
	if (!k->chunks)
		return -ENOMEM;
	for (uint32_t c = 0; c < k->nchunks; c++) {
		struct rp_rdma_chunk *ch = &k->chunks[c];

		ch->addr = get64(p);
		ch->length = get64(p + 8);
		ch->rkey = get32(p + 16);
		if (get32(p + 20))
			FAIL("RDMA_KEYS chunk reserved field set");
		p += RP_RDMA_KEYS_CHUNK;
		if (ch->length == 0 || ch->length % k->page_size)
			FAIL("RDMA_KEYS chunk length is zero or not a multiple of the page size");
		if (ch->addr != sum)
			FAIL("RDMA_KEYS chunk address is not its offset in the region (addresses are zero-based)");
		if (ch->length > k->length - sum)
			FAIL("RDMA_KEYS chunk lengths exceed the region length");
		sum += ch->length;
	}
	if (sum != k->length)
		FAIL("RDMA_KEYS chunk lengths do not add up to the region length");
	*left -= (size_t)k->nchunks * RP_RDMA_KEYS_CHUNK;
	*pp = p;
	return 0;
}

int rp_rdma_keys_decode(const uint8_t *p, size_t len,
			const struct rp_region_desc *desc, unsigned ndesc,
			struct rp_rdma_region_keys **out, unsigned *n,
			uint32_t *flags, const char **why)
{
	struct rp_rdma_region_keys *r;
	uint32_t cnt, fl;
	size_t left;
	int ret = 0;

	*out = NULL;
	*n = 0;
	if (len < RP_RDMA_KEYS_HDR)
		FAIL("RDMA_KEYS is truncated");
	if (len > RP_RDMA_KEYS_MAX)
		FAIL("RDMA_KEYS is beyond the size limit");
	cnt = get32(p);
	fl = get32(p + 4);
	if (fl & ~RP_RDMA_KEYS_MW)
		FAIL("RDMA_KEYS has unknown flags");
	if (cnt > RP_MAX_REGIONS)
		FAIL("RDMA_KEYS region count beyond the limit");
	if (cnt != ndesc)
		FAIL("RDMA_KEYS region count differs from the region table");
	if ((uint64_t)cnt * RP_RDMA_KEYS_REGION > len - RP_RDMA_KEYS_HDR)
		FAIL("RDMA_KEYS is truncated (region count)");
	r = calloc(cnt ? cnt : 1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	p += RP_RDMA_KEYS_HDR;
	left = len - RP_RDMA_KEYS_HDR;
	for (uint32_t i = 0; i < cnt && !ret; i++)
		ret = keys_region(&p, &left, i, &desc[i], &r[i], why);
	if (!ret && left) {
		if (why)
			*why = "RDMA_KEYS has trailing bytes";
		ret = -EPROTO;
	}
	if (ret) {
		rp_rdma_keys_free(r, cnt);
		return ret;
	}
	*out = r;
	*n = cnt;
	if (flags)
		*flags = fl;
	return 0;
}

size_t rp_rdma_conn_encode(uint8_t out[RP_RDMA_CONN_LEN],
			   const struct rp_rdma_conn *m)
{
	put32(out, RP_RDMA_CONN_MAGIC);
	put16(out + 4, m->version);
	out[6] = m->role;
	out[7] = 0;
	put64(out + 8, m->session);
	memcpy(out + 16, m->ticket, RP_RDMA_TICKET_LEN);
	return RP_RDMA_CONN_LEN;
}

int rp_rdma_conn_decode(const void *data, size_t len, struct rp_rdma_conn *m,
			const char **why)
{
	const uint8_t *p = data;

	if (!p || len < RP_RDMA_CONN_LEN)
		FAIL("RDMA connection request without rpage private data");
	if (len > RP_RDMA_CONN_MAX)
		FAIL("RDMA connection private data too long");
	for (size_t i = RP_RDMA_CONN_LEN; i < len; i++)
		if (p[i])
			FAIL("RDMA connection private data has trailing bytes");
	if (get32(p) != RP_RDMA_CONN_MAGIC)
		FAIL("RDMA connection private data has the wrong magic");
	m->version = get16(p + 4);
	m->role = p[6];
	if (p[7])
		FAIL("RDMA connection private data reserved byte set");
	m->session = get64(p + 8);
	memcpy(m->ticket, p + 16, RP_RDMA_TICKET_LEN);
	if (m->version != RP_RDMA_CONN_VERSION)
		FAIL("RDMA connection for another protocol version");
	if (m->role != RP_ROLE_URGENT && m->role != RP_ROLE_BULK)
		FAIL("RDMA connection with an invalid role");
	if (!m->session)
		FAIL("RDMA connection names no session");
	return 0;
}
