/* SPDX-License-Identifier: MIT */
/* The deterministic memory image: every 8-byte word is a function of its
 * offset in the image and a seed, so any page can be checked on its own.
 * `rpage-bench mkimage` writes it, rpage-bench's workloads and the tests
 * check against it; the library itself never uses it. */
#ifndef RP_PATTERN_H
#define RP_PATTERN_H

#include <stdint.h>
#include <string.h>

static inline uint64_t rp_pattern_word(uint64_t seed, uint64_t off)
{
	uint64_t z = seed ^ (off / 8) ^ 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline void rp_pattern_fill(void *buf, uint64_t off, uint64_t len,
				   uint64_t seed)
{
	uint64_t *w = buf;

	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = rp_pattern_word(seed, off + i * 8);
}

/* Returns the index of the first bad word, or -1 when @buf matches. */
static inline int64_t rp_pattern_check(const void *buf, uint64_t off,
				       uint64_t len, uint64_t seed)
{
	const uint64_t *w = buf;

	for (uint64_t i = 0; i < len / 8; i++)
		if (w[i] != rp_pattern_word(seed, off + i * 8))
			return (int64_t)i;
	return -1;
}

#endif
