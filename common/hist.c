/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "hist.h"

void rp_hist_init(struct rp_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned rp_hist_bucket(uint64_t v)
{
	unsigned lg, idx;

	if (v < (1ull << RP_HIST_SUB))
		return (unsigned)v;
	lg = 63u - (unsigned)__builtin_clzll(v);
	if (lg >= RP_HIST_MAXLOG)
		return RP_HIST_BUCKETS - 1;
	/* top SUB bits below the leading one select the sub-bucket */
	idx = ((lg - RP_HIST_SUB + 1) << RP_HIST_SUB) +
	      (unsigned)((v >> (lg - RP_HIST_SUB)) & ((1u << RP_HIST_SUB) - 1));
	return idx < RP_HIST_BUCKETS ? idx : RP_HIST_BUCKETS - 1;
}

uint64_t rp_hist_bucket_high(unsigned idx)
{
	unsigned grp = idx >> RP_HIST_SUB, sub = idx & ((1u << RP_HIST_SUB) - 1);
	unsigned lg;

	if (grp == 0)
		return idx;
	lg = grp + RP_HIST_SUB - 1;
	return (1ull << lg) + ((uint64_t)(sub + 1) << (lg - RP_HIST_SUB)) - 1;
}

unsigned rp_hist_us2_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned i = us ? 63u - (unsigned)__builtin_clzll(us) : 0;

	return i < RP_HIST_US2 ? i : RP_HIST_US2 - 1;
}

void rp_hist_add(struct rp_hist *h, uint64_t v)
{
	h->b[rp_hist_bucket(v)]++;
	h->us2[rp_hist_us2_bucket(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void rp_hist_merge(struct rp_hist *dst, const struct rp_hist *src)
{
	for (unsigned i = 0; i < RP_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	for (unsigned i = 0; i < RP_HIST_US2; i++)
		dst->us2[i] += src->us2[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->count && src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t rp_hist_quantile(const struct rp_hist *h, double q)
{
	uint64_t target, seen = 0;

	if (!h->count)
		return 0;
	if (q <= 0)
		return h->min;
	target = (uint64_t)(q * (double)h->count + 0.999999);
	if (target == 0)
		target = 1;
	if (target > h->count)
		target = h->count;
	for (unsigned i = 0; i < RP_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= target) {
			uint64_t v = rp_hist_bucket_high(i);

			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}
