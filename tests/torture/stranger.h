/* SPDX-License-Identifier: MIT */
/*
 * What a process that hands its memory to rpage does, written from the
 * kernel's userfaultfd documentation and Firecracker's UFFD handshake, not
 * from rpage's own code: open a userfaultfd, register memory, send the
 * region table with the descriptor over a Unix socket. Shared by the
 * regression probes and the torture workload, which check rpage from the
 * outside.
 *
 * The source image they expect is generated here too: every 8-byte word
 * at byte offset o of the image holds st_word(seed, o / 8).
 */
#ifndef RP_STRANGER_H
#define RP_STRANGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/userfaultfd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static inline uint64_t st_word(uint64_t seed, uint64_t idx)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + idx + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z ? z : 1; /* never a zero word: zeros mean "discarded" */
}

/* Writes an image of @len bytes (a multiple of 8) to @path. 0 or -errno. */
int st_make_image(const char *path, uint64_t len, uint64_t seed);

/* Fills @len bytes at @dst as the image holds them at offset @off. */
void st_fill(void *dst, uint64_t off, uint64_t len, uint64_t seed);

/*
 * Compares @len bytes at @p with the image at @off: returns -1 when all
 * match, else the byte index of the first mismatching word.
 */
int64_t st_check(const void *p, uint64_t off, uint64_t len, uint64_t seed);
/* -1 when @len bytes at @p are all @byte, else the first other index. */
int64_t st_check_byte(const void *p, uint64_t len, uint8_t byte);

/* userfaultfd(2) with @features through UFFDIO_API; -errno on failure. */
int st_uffd_open(uint64_t features);
/* UFFDIO_REGISTER in missing mode; 0 or -errno. */
int st_uffd_register(int uffd, void *p, uint64_t len);

/* One entry of Firecracker's handshake. */
struct st_range {
	uint64_t base, size, offset, page_size;
};

/* Connects to the handler's Unix socket at @path; the fd or -errno. */
int st_connect(const char *path);
/* Sends the JSON array for @n ranges with @uffd attached (SCM_RIGHTS). */
int st_handshake(int sock, const struct st_range *r, unsigned n, int uffd);

/* Number of open descriptors of process @pid, or -errno. */
int st_count_fds(int pid);

/* Anonymous (or MAP_HUGETLB when @psize is 2 MiB) private memory. */
void *st_map_anon(uint64_t len, uint64_t psize);

/* Seconds on a monotonic clock. */
double st_now(void);

#endif
