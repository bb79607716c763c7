/* SPDX-License-Identifier: MIT */
/*
 * Fetching pages without a userfaultfd: the transport's part of a fault
 * alone, into a buffer of the caller's. rpage-bench's `fault --split`
 * times it beside whole faults; nothing here places pages (the fault
 * handler, client/attach.c, alone does that).
 *
 * Threads: a fetcher is one urgent-role channel of the source; one thread
 * uses it at a time. It borrows the source, which must outlive it.
 */
#ifndef RP_FETCH_H
#define RP_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "rpage/rpage.h"

struct rp_fetcher;

/* Opens a channel to @src that fetches into [buf, buf+len) (registered
 * with the transport where it needs that: RDMA). 0 or -errno. */
int rp_fetcher_open(struct rpage_source *src, void *buf, size_t len,
		    struct rp_fetcher **out);
/* Fetches @len bytes at offset @off of region @region into @dst, which
 * lies in the buffer; returns when every byte has arrived. 0 or -errno. */
int rp_fetcher_read(struct rp_fetcher *f, uint32_t region, uint64_t off,
		    uint32_t len, void *dst);
void rp_fetcher_close(struct rp_fetcher *f);

#endif
