/* SPDX-License-Identifier: MIT */
/*
 * Dirty-page tracking of a region of this process's own memory, for
 * pre-copy. Preferred: userfaultfd write-protect in async mode
 * (UFFD_FEATURE_WP_ASYNC) read and re-armed in one PAGEMAP_SCAN ioctl
 * (Linux >= 6.7): the kernel resolves write faults itself, no thread.
 * Fallback: synchronous write-protect faults handled by a thread
 * ("rpage/wp") that records the page and lifts the protection.
 */
#ifndef RP_DIRTY_H
#define RP_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

#include "bitmap.h"

enum rp_dirty_mode {
	RP_DIRTY_ASYNC = 1, /* uffd-wp async + PAGEMAP_SCAN */
	RP_DIRTY_SYNC = 2,  /* uffd-wp faults handled by a thread */
};

struct rp_dirty;

/*
 * Starts tracking [mem, mem+len) (page aligned; anonymous or shmem).
 * Every page starts write-protected: the first collect reports what was
 * written since this call. @force_sync picks the fallback even where the
 * async mode exists. Returns 0, or -errno (-ENOTSUP: no uffd-wp here).
 */
int rp_dirty_start(void *mem, uint64_t len, uint32_t psize, bool force_sync,
		   struct rp_dirty **out);
enum rp_dirty_mode rp_dirty_get_mode(const struct rp_dirty *d);
const char *rp_dirty_mode_name(enum rp_dirty_mode m);
/*
 * Sets in @bits (one bit per page of the region) every page written since
 * the previous collect and write-protects it again, so its contents may
 * be read after this returns. Returns the number of pages reported
 * (pages already set in @bits count too), or -errno.
 */
int64_t rp_dirty_collect(struct rp_dirty *d, struct rp_bitmap *bits);
/* Stops tracking: the memory stays as it is, writes run freely again. */
void rp_dirty_stop(struct rp_dirty *d);

#endif
