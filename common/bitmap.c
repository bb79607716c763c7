/* SPDX-License-Identifier: MIT */
#include "bitmap.h"

uint64_t rp_bitmap_next_clear2(const struct rp_bitmap *a,
			       const struct rp_bitmap *b, uint64_t from)
{
	uint64_t n = a->nbits;

	while (from < n) {
		uint64_t wi = from / 64;
		uint64_t w = __atomic_load_n(&a->w[wi], __ATOMIC_ACQUIRE);

		if (b)
			w |= __atomic_load_n(&b->w[wi], __ATOMIC_ACQUIRE);
		w |= (1ull << (from % 64)) - 1; /* ignore bits below from */
		if (~w) {
			uint64_t i = wi * 64 + (uint64_t)__builtin_ctzll(~w);

			return i < n ? i : n;
		}
		from = (wi + 1) * 64;
	}
	return n;
}

uint64_t rp_bitmap_weight(const struct rp_bitmap *b)
{
	uint64_t c = 0, nw = (b->nbits + 63) / 64;

	for (uint64_t i = 0; i < nw; i++) {
		uint64_t w = __atomic_load_n(&b->w[i], __ATOMIC_ACQUIRE);

		if (i == nw - 1 && b->nbits % 64)
			w &= (1ull << (b->nbits % 64)) - 1;
		c += (uint64_t)__builtin_popcountll(w);
	}
	return c;
}
