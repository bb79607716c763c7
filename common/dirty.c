/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/fs.h>

#include "dirty.h"
#include "inject.h"
#include "rp.h"
#include "uffd.h"

/* The installed headers may predate Linux 6.7: the kernel's values. */
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#define SCAN_VEC 512
#define SWEEP_PAGES 4096 /* pages per pagemap read in the sweep */

struct rp_dirty {
	enum rp_dirty_mode mode;
	bool unpopulated_ok; /* WP applies to pages never touched */
	char *mem;
	uint64_t len, npages;
	uint32_t psize;
	int uffd, pagemap_fd, stop_efd;
	struct page_region *vec;
	uint64_t *pm_buf;     /* sync mode: pagemap entries for the sweep */
	/* sync mode: pages the fault thread un-protected. The fault thread
	 * sets a bit and lifts the protection (which wakes the writer) under
	 * `lock`; a collect takes bits and re-protects under it too, so
	 * "unprotected <=> bit set" holds at every lock release, and a write
	 * that completed is always in the bitmap. */
	struct rp_bitmap seen;
	pthread_mutex_t lock;
	pthread_t thr;
	bool thr_started;
};

static int wp_range_locked(struct rp_dirty *d, uint64_t start, uint64_t len);

static int wp_range(int uffd, uint64_t start, uint64_t len, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	/* -EAGAIN: a discard's event is queued; the tracker thread reads it
	 * (without our lock) and its waiter moves on in a moment */
	for (unsigned tries = 0;; tries++) {
		if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0)
			return 0;
		if (errno != EAGAIN || tries == 100000)
			return -errno;
		if (tries < 16)
			sched_yield();
		else
			usleep(50);
	}
}

/*
 * A discard (MADV_DONTNEED, MADV_REMOVE) zaps the pages and their
 * write-protection with them: the destination must get the zeros, and a
 * write after the zap raises no fault. The pages are recorded as written
 * here; the collector's sweep re-protects them once the zap is done.
 */
static void on_remove(struct rp_dirty *d, uint64_t start, uint64_t end)
{
	uint64_t base = (uint64_t)(uintptr_t)d->mem;
	uint64_t lo = RP_MAX(start, base), hi = RP_MIN(end, base + d->len);

	/* no lock: the collector may be waiting, holding it, for this very
	 * event to be read; a bit set after its exchange is simply taken by
	 * the next collect */
	for (uint64_t a = lo & ~(uint64_t)(d->psize - 1); a < hi; a += d->psize)
		rp_bit_set(&d->seen, (a - base) / d->psize);
}

/*
 * Records page @a as written and lifts its protection, which wakes the
 * writer. -EAGAIN: a discard's event is queued; the caller reads it and
 * tries again (retrying here would wait for ourselves).
 */
static int unprotect(struct rp_dirty *d, uint64_t a)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = a, .len = d->psize },
		.mode = 0,
	};
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	rp_bit_set(&d->seen, (a - (uint64_t)(uintptr_t)d->mem) / d->psize);
	if (ioctl(d->uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
		ret = -errno;
	pthread_mutex_unlock(&d->lock);
	return ret;
}

#define WP_PEND 1024

static void *wp_main(void *arg)
{
	struct rp_dirty *d = arg;
	struct pollfd pf[2] = { { d->uffd, POLLIN, 0 },
				{ d->stop_efd, POLLIN, 0 } };
	uint64_t base = (uint64_t)(uintptr_t)d->mem;
	uint64_t *pend = calloc(WP_PEND, sizeof(*pend));
	struct uffd_msg m[16];
	unsigned np = 0;

	rp_thread_name("rpage/wp");
	if (!pend) {
		rp_err("out of memory starting the write-protect tracker");
		return NULL;
	}
	for (;;) {
		ssize_t n;

		if (poll(pf, 2, np ? 1 : -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		n = read(d->uffd, m, sizeof(m));
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			rp_err("reading the write-protect userfaultfd: %s",
			       strerror(errno));
			break;
		}
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(m[0]); i++) {
			uint64_t a;

			if (m[i].event == UFFD_EVENT_REMOVE) {
				on_remove(d, m[i].arg.remove.start,
					  m[i].arg.remove.end);
				continue;
			}
			if (m[i].event != UFFD_EVENT_PAGEFAULT ||
			    !(m[i].arg.pagefault.flags &
			      UFFD_PAGEFAULT_FLAG_WP))
				continue;
			a = m[i].arg.pagefault.address & ~(uint64_t)(d->psize - 1);
			if (a < base || (a - base) / d->psize >= d->npages)
				continue;
			if (np < WP_PEND)
				pend[np++] = a;
			else /* more writers than that: wait for this one */
				while (unprotect(d, a) == -EAGAIN)
					sched_yield();
		}
		/* the events of this read are applied: now the faults */
		for (unsigned i = 0; i < np;) {
			int ret = unprotect(d, pend[i]);

			if (ret == -EAGAIN) {
				i++;
				continue;
			}
			if (ret)
				rp_warn("un-protecting the page at 0x%llx: %s",
					(unsigned long long)pend[i], strerror(-ret));
			pend[i] = pend[--np];
		}
	}
	free(pend);
	return NULL;
}

static int open_tracker(struct rp_dirty *d, bool force_sync)
{
	uint64_t base = UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	/* the synchronous tracker has a thread to read discards with */
	uint64_t tries[4] = { base | UFFD_FEATURE_WP_ASYNC,
			      UFFD_FEATURE_WP_ASYNC,
			      base | UFFD_FEATURE_EVENT_REMOVE,
			      UFFD_FEATURE_EVENT_REMOVE };

	/* tests: behave as a kernel older than 6.4 (sync, no WP_UNPOPULATED) */
	bool old_kernel = rp_inject_value(RP_INJECT_UFFD_WP_OLD_KERNEL) != 0;

	for (unsigned i = old_kernel ? 3 : force_sync ? 2 : 0; i < 4; i++) {
		int fd = rp_uffd_open(tries[i], NULL);

		if (fd == -ENOTSUP)
			continue;
		if (fd < 0)
			return fd;
		d->uffd = fd;
		d->mode = (tries[i] & UFFD_FEATURE_WP_ASYNC) ? RP_DIRTY_ASYNC
							     : RP_DIRTY_SYNC;
		d->unpopulated_ok = tries[i] & UFFD_FEATURE_WP_UNPOPULATED;
		if (i == 2 || i == 3) {
			if (!force_sync)
				rp_warn("userfaultfd has no async write-protect (UFFD_FEATURE_WP_ASYNC, Linux >= 6.7): tracking dirty pages with synchronous write-protect faults, which costs the workload a round trip to a thread per first write");
		}
		return 0;
	}
	return -ENOTSUP;
}

int rp_dirty_start(void *mem, uint64_t len, uint32_t psize, bool force_sync,
		   struct rp_dirty **out)
{
	struct rp_dirty *d = calloc(1, sizeof(*d));
	uint64_t ioctls = 0;
	int ret;

	if (!d)
		return -ENOMEM;
	d->mem = mem;
	d->len = len;
	d->psize = psize;
	d->npages = len / psize;
	d->uffd = d->pagemap_fd = d->stop_efd = -1;
	pthread_mutex_init(&d->lock, NULL);
	ret = open_tracker(d, force_sync);
	if (ret) {
		rp_err("no userfaultfd write-protect for dirty tracking: %s%s%s",
		       strerror(-ret), ret == -EPERM ? ": " : "",
		       ret == -EPERM ? rp_uffd_perm_hint(0) : "");
		goto fail;
	}
	ret = rp_uffd_register(d->uffd, mem, len, UFFDIO_REGISTER_MODE_WP,
			       &ioctls);
	if (ret) {
		rp_err("registering %llu bytes for write-protect: %s",
		       (unsigned long long)len, strerror(-ret));
		goto fail;
	}
	if (!(ioctls & (1ull << _UFFDIO_WRITEPROTECT))) {
		rp_err("UFFDIO_WRITEPROTECT not offered for this memory");
		ret = -ENOTSUP;
		goto fail;
	}
	if (d->mode == RP_DIRTY_ASYNC) {
		d->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		d->vec = calloc(SCAN_VEC, sizeof(*d->vec));
		if (d->pagemap_fd < 0 || !d->vec) {
			ret = d->vec ? -errno : -ENOMEM;
			goto fail;
		}
	} else {
		ret = rp_bitmap_init(&d->seen, d->npages);
		if (ret)
			goto fail;
		d->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		d->pm_buf = malloc((size_t)SWEEP_PAGES * (psize / RP_PAGE_4K) * 8);
		if (d->pagemap_fd < 0 || !d->pm_buf) {
			ret = d->pm_buf ? -errno : -ENOMEM;
			goto fail;
		}
		d->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->stop_efd < 0) {
			ret = -errno;
			goto fail;
		}
		ret = -pthread_create(&d->thr, NULL, wp_main, d);
		if (ret)
			goto fail;
		d->thr_started = true;
	}
	/* Without UFFD_FEATURE_WP_UNPOPULATED (Linux < 6.4) write-protect
	 * does nothing to pages with no page table entry yet, and a first
	 * write to such a page would never be seen: map them all (to the
	 * zero page, no memory used) before protecting. */
	if (!d->unpopulated_ok &&
	    madvise(mem, len, MADV_POPULATE_READ) < 0) {
		ret = -errno;
		rp_err("this kernel cannot write-protect unpopulated pages and MADV_POPULATE_READ failed (%s): refusing to track dirty pages that could be missed",
		       strerror(errno));
		ret = ret == -EINVAL ? -ENOTSUP : ret;
		goto fail;
	}
	ret = wp_range(d->uffd, (uint64_t)(uintptr_t)mem, len, true);
	if (ret) {
		rp_err("write-protecting the region: %s", strerror(-ret));
		goto fail;
	}
	*out = d;
	return 0;
fail:
	rp_dirty_stop(d);
	return ret;
}

enum rp_dirty_mode rp_dirty_get_mode(const struct rp_dirty *d)
{
	return d->mode;
}

const char *rp_dirty_mode_name(enum rp_dirty_mode m)
{
	return m == RP_DIRTY_ASYNC ? "uffd-wp-async+PAGEMAP_SCAN"
	       : m == RP_DIRTY_SYNC ? "uffd-wp-sync" : "none";
}

static int64_t collect_async(struct rp_dirty *d, struct rp_bitmap *bits)
{
	uint64_t base = (uint64_t)(uintptr_t)d->mem, end = base + d->len;
	uint64_t cur = base;
	int64_t count = 0;

	while (cur < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			.start = cur,
			.end = end,
			.vec = (uint64_t)(uintptr_t)d->vec,
			.vec_len = SCAN_VEC,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		int n = ioctl(d->pagemap_fd, PAGEMAP_SCAN, &a);

		if (n < 0) {
			int e = -errno;

			rp_err("PAGEMAP_SCAN: %s", strerror(errno));
			return e;
		}
		for (int i = 0; i < n; i++) {
			uint64_t s = (d->vec[i].start - base) / d->psize;
			uint64_t e = (d->vec[i].end - base + d->psize - 1) / d->psize;

			for (uint64_t pg = s; pg < e && pg < d->npages; pg++) {
				rp_bit_set(bits, pg);
				count++;
			}
		}
		if (a.walk_end <= cur)
			break;
		cur = a.walk_end;
	}
	return count;
}

/*
 * Write-protects a range with d->lock held. While a discard's event waits
 * to be read the kernel answers -EAGAIN, and the tracker thread may itself
 * be waiting for the lock (a write fault) before it can read that event:
 * the lock is let go between tries.
 */
static int wp_range_locked(struct rp_dirty *d, uint64_t start, uint64_t len)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	for (unsigned tries = 0;; tries++) {
		if (ioctl(d->uffd, UFFDIO_WRITEPROTECT, &wp) == 0)
			return 0;
		if (errno != EAGAIN || tries == 100000)
			return -errno;
		pthread_mutex_unlock(&d->lock);
		if (tries < 16)
			sched_yield();
		else
			usleep(50);
		pthread_mutex_lock(&d->lock);
	}
}

#define PM_UFFD_WP (1ull << 57) /* /proc/PID/pagemap: uffd write-protected */

/*
 * Pages that lost their write-protection without a fault: zapped by a
 * discard (whose zap may land after the page was re-protected) and maybe
 * written since. They are dirty; they are protected again (mapped to the
 * zero page first where the kernel cannot protect an empty entry). Called
 * with d->lock held, after the recorded pages were re-protected, so every
 * page that is not protected now is one of these.
 */
static int64_t sweep_lost(struct rp_dirty *d, struct rp_bitmap *bits)
{
	uint64_t base = (uint64_t)(uintptr_t)d->mem, step = d->psize / RP_PAGE_4K;
	uint64_t *ent = d->pm_buf;
	int64_t count = 0;

	for (uint64_t pg = 0; pg < d->npages;) {
		uint64_t n = RP_MIN(d->npages - pg, (uint64_t)SWEEP_PAGES);
		off_t off = (off_t)((base + pg * d->psize) / RP_PAGE_4K * 8);
		size_t len = (size_t)(n * step * 8);

		if (pread(d->pagemap_fd, ent, len, off) != (ssize_t)len)
			return -EIO;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t p = pg + i, a = base + p * d->psize;
			int ret;

			if (ent[i * step] & PM_UFFD_WP)
				continue;
			if (!d->unpopulated_ok)
				madvise((void *)(uintptr_t)a, d->psize,
					MADV_POPULATE_READ);
			ret = wp_range_locked(d, a, d->psize);
			if (ret)
				return ret;
			rp_bit_set(bits, p);
			count++;
		}
		pg += n;
	}
	return count;
}

static int64_t collect_sync(struct rp_dirty *d, struct rp_bitmap *bits)
{
	uint64_t nw = (d->npages + 63) / 64, base = (uint64_t)(uintptr_t)d->mem;
	int64_t count = 0, lost;

	pthread_mutex_lock(&d->lock);
	for (uint64_t i = 0; i < nw; i++) {
		uint64_t w = __atomic_exchange_n(&d->seen.w[i], 0, __ATOMIC_ACQ_REL);

		while (w) {
			unsigned b = (unsigned)__builtin_ctzll(w);
			uint64_t pg = i * 64 + b, run = 1;
			int ret;

			w &= w - 1;
			while (b + run < 64 && (w & (1ull << (b + run)))) {
				w &= ~(1ull << (b + run));
				run++;
			}
			ret = wp_range_locked(d, base + pg * d->psize,
					      run * d->psize);
			if (ret) {
				pthread_mutex_unlock(&d->lock);
				return ret;
			}
			for (uint64_t k = 0; k < run; k++)
				rp_bit_set(bits, pg + k);
			count += (int64_t)run;
		}
	}
	lost = sweep_lost(d, bits);
	pthread_mutex_unlock(&d->lock);
	if (lost < 0) {
		rp_err("reading the write-protect state of the region: %s",
		       strerror((int)-lost));
		return lost;
	}
	return count + lost;
}

int64_t rp_dirty_collect(struct rp_dirty *d, struct rp_bitmap *bits)
{
	return d->mode == RP_DIRTY_ASYNC ? collect_async(d, bits)
					 : collect_sync(d, bits);
}

void rp_dirty_stop(struct rp_dirty *d)
{
	if (!d)
		return;
	if (d->thr_started) {
		rp_efd_signal(d->stop_efd);
		pthread_join(d->thr, NULL);
	}
	if (d->uffd >= 0) {
		/* lifts every protection and wakes any blocked writer */
		rp_uffd_unregister(d->uffd, d->mem, d->len);
		close(d->uffd);
	}
	if (d->pagemap_fd >= 0)
		close(d->pagemap_fd);
	if (d->stop_efd >= 0)
		close(d->stop_efd);
	rp_bitmap_free(&d->seen);
	pthread_mutex_destroy(&d->lock);
	free(d->vec);
	free(d->pm_buf);
	free(d);
}
