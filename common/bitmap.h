/* SPDX-License-Identifier: MIT */
/* Page bitmaps. Bit operations are atomic so that one thread may write
 * while others read; the owner of each bitmap is documented at its use. */
#ifndef RP_BITMAP_H
#define RP_BITMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct rp_bitmap {
	uint64_t nbits;
	uint64_t *w;
};

static inline int rp_bitmap_init(struct rp_bitmap *b, uint64_t nbits)
{
	b->nbits = nbits;
	b->w = calloc((nbits + 63) / 64 ? (nbits + 63) / 64 : 1, 8);
	return b->w ? 0 : -12 /* -ENOMEM */;
}

static inline void rp_bitmap_free(struct rp_bitmap *b)
{
	free(b->w);
	b->w = NULL;
	b->nbits = 0;
}

static inline bool rp_bit_test(const struct rp_bitmap *b, uint64_t i)
{
	return (__atomic_load_n(&b->w[i / 64], __ATOMIC_ACQUIRE) >> (i % 64)) &
	       1;
}

/* Returns the previous value of the bit. */
static inline bool rp_bit_set(struct rp_bitmap *b, uint64_t i)
{
	uint64_t m = 1ull << (i % 64);

	return __atomic_fetch_or(&b->w[i / 64], m, __ATOMIC_ACQ_REL) & m;
}

static inline bool rp_bit_clear(struct rp_bitmap *b, uint64_t i)
{
	uint64_t m = 1ull << (i % 64);

	return __atomic_fetch_and(&b->w[i / 64], ~m, __ATOMIC_ACQ_REL) & m;
}

/* First index >= @from whose bit is clear in @a and in @b (b may be NULL),
 * or nbits when there is none. */
uint64_t rp_bitmap_next_clear2(const struct rp_bitmap *a,
			       const struct rp_bitmap *b, uint64_t from);
/* Number of set bits. */
uint64_t rp_bitmap_weight(const struct rp_bitmap *b);

#endif
