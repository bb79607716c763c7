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
/* Power-of-two microsecond buckets, as QEMU's postcopy-latency-dist:
 * us2[i] counts values whose whole microseconds u have floor(log2(u)) = i
 * (u = 0 counts in us2[0]); the last one takes everything above. The
 * log-linear buckets cannot give these exactly (2^i us is no power of two
 * in nanoseconds), so they are counted beside them. */
#define RP_HIST_US2 24

struct rp_hist {
	uint64_t count, sum, min, max;
	uint64_t b[RP_HIST_BUCKETS];
	uint64_t us2[RP_HIST_US2];
};

void rp_hist_init(struct rp_hist *h);
void rp_hist_add(struct rp_hist *h, uint64_t v);
/* Adds every value counted in @src to @dst. */
void rp_hist_merge(struct rp_hist *dst, const struct rp_hist *src);
/* Value at quantile q in [0,1] (upper edge of its bucket, clamped to max). */
uint64_t rp_hist_quantile(const struct rp_hist *h, double q);
unsigned rp_hist_bucket(uint64_t v);
/* The index into us2[] of @ns nanoseconds. */
unsigned rp_hist_us2_bucket(uint64_t ns);
uint64_t rp_hist_bucket_high(unsigned idx);

#endif
