/* SPDX-License-Identifier: MIT */
/*
 * Log-linear latency histogram (HdrHistogram-like): values below 2^SUB are
 * exact; above, each power of two is split into 2^SUB buckets, so any
 * reported value is within 1/2^SUB (3 %) of the true one. Nanoseconds,
 * up to 2^40 ns (18 minutes); larger values land in the last bucket.
 * Single writer; readers take a copy.
 */
#ifndef RP_HIST_H
#define RP_HIST_H

#include <stdint.h>

#define RP_HIST_SUB 5
#define RP_HIST_MAXLOG 40
#define RP_HIST_BUCKETS ((RP_HIST_MAXLOG - RP_HIST_SUB + 1) << RP_HIST_SUB)

struct rp_hist {
	uint64_t count, sum, min, max;
	uint64_t b[RP_HIST_BUCKETS];
};

void rp_hist_init(struct rp_hist *h);
void rp_hist_add(struct rp_hist *h, uint64_t v);
/* Value at quantile q in [0,1] (upper edge of its bucket, clamped to max). */
uint64_t rp_hist_quantile(const struct rp_hist *h, double q);
unsigned rp_hist_bucket(uint64_t v);
uint64_t rp_hist_bucket_high(unsigned idx);

#endif
