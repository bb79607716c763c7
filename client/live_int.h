/* SPDX-License-Identifier: MIT */
/* Live-migration hooks into the destination's fault handler (attach.c). */
#ifndef RP_LIVE_INT_H
#define RP_LIVE_INT_H

#include <stdint.h>

#include "rpage/rpage.h"

/*
 * rpage_attach_start, with the pages already present in the memory given
 * up front: @resident_bits (one bit per page of the attachment, in range
 * order; NULL for none; borrowed) marks pages that were placed before the
 * userfaultfd was registered (pre-copy) and must be neither fetched nor
 * placed again.
 */
int rp_attach_start_ex(struct rpage_source *src, unsigned region, int uffd,
		       const struct rpage_range *ranges, unsigned n,
		       const struct rpage_attach_opts *opts,
		       const uint64_t *resident_bits,
		       struct rpage_attach **out);

/* A copy of the fault service-time histogram (for live-migration stats). */
struct rp_hist;
void rp_attach_get_hist(struct rpage_attach *a, struct rp_hist *out);

#endif
