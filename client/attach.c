/* SPDX-License-Identifier: MIT */
/*
 * One userfaultfd and the memory behind it: the fault thread and the
 * background fill thread.
 *
 * Threads and ownership:
 *  - The fault thread ("rpage/fault") is the only thread that reads the
 *    userfaultfd and the only one that places pages (UFFDIO_COPY/ZEROPAGE).
 *    It owns the `resident` and `zero` bitmaps. Being the single placer is
 *    what makes balloon removes exact: the kernel zaps a removed range only
 *    after the REMOVE event has been read, so a second placing thread could
 *    land stale source data after the zap; here every placement after the
 *    read sees the range marked.
 *  - The fill thread ("rpage/fill") fetches chunks over its own channel
 *    into slots and hands them to the fault thread, which places them a
 *    slice at a time between batches of fault messages (64 KiB while faults
 *    keep coming, 256 KiB when idle): a fault waits for at most one slice
 *    copy, never for the network, and a steady stream of faults cannot
 *    starve the fill. The fill thread owns the `queued` bitmap.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/bitmap.h"
#include "../common/hist.h"
#include "../common/uffd.h"
#include "client_int.h"
#include "live_int.h"

#define FILL_CHUNK_DEFAULT (1u << 20)
#define FILL_DEPTH_DEFAULT 4u
#define PLACE_SLICE (256u << 10) /* bytes placed between fault checks */
#define PLACE_SLICE_BUSY (64u << 10) /* ... while faults keep coming */
#define FAULT_WINDOW (2u << 20)  /* bytes filled after a fault first */
#define MSG_BATCH 16
#define SPIN_LIMIT 10000 /* faults in a row on a page reported present */

struct att_range {
	uint64_t base, size, offset;
	uint64_t first; /* index of its first page in the attachment */
	uint64_t npages;
};

struct slot {
	void *buf;
	uint64_t page;   /* first page (attachment index) */
	uint32_t npages;
	uint32_t placed; /* pages handled so far (fault thread) */
};

struct rpage_attach {
	struct rpage_source *src;
	uint32_t region;
	int uffd;
	struct att_range *r;
	unsigned nr;
	uint64_t psize;
	uint64_t npages;
	uint32_t chunk, depth;
	bool no_fill;

	struct rp_bitmap resident; /* fault thread */
	struct rp_bitmap zero;     /* fault thread: removed, reads as zeros */
	struct rp_bitmap queued;   /* fill thread */
	uint64_t done;             /* pages resident or zero (fault thread) */

	struct rp_chan *urgent, *bulk;
	pthread_t fault_thr, fill_thr;
	bool threads_started, fill_started;
	int stop_efd, event_efd, ready_efd;

	/* slot ring between fill (producer) and fault thread (consumer) */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct slot *slots;
	unsigned nslots, head, count;
	bool stopping;

	uint64_t spin_addr;  /* fault thread: the last page faulted on... */
	unsigned spin_count; /* ...and how often in a row it was present */

	uint64_t hint_page; /* last faulting page, for the fill order */
	uint64_t hint_gen;

	void *fault_buf, *zero_buf;

	pthread_mutex_t slock; /* stats */
	struct rpage_stats st;
	struct rp_hist hist;
	uint64_t t_start, t_end;
};

static struct att_range *range_of(struct rpage_attach *a, uint64_t addr)
{
	for (unsigned i = 0; i < a->nr; i++)
		if (addr >= a->r[i].base && addr - a->r[i].base < a->r[i].size)
			return &a->r[i];
	return NULL;
}

static struct att_range *range_of_page(struct rpage_attach *a, uint64_t pg)
{
	for (unsigned i = 0; i < a->nr; i++)
		if (pg >= a->r[i].first && pg - a->r[i].first < a->r[i].npages)
			return &a->r[i];
	return NULL;
}

static uint64_t page_addr(const struct rpage_attach *a,
			  const struct att_range *r, uint64_t pg)
{
	return r->base + (pg - r->first) * a->psize;
}

static uint64_t page_off(const struct rpage_attach *a,
			 const struct att_range *r, uint64_t pg)
{
	return r->offset + (pg - r->first) * a->psize;
}

/* The state is written under slock by the fault or the fill thread and
 * read anywhere. */
static uint32_t att_state(struct rpage_attach *a)
{
	return __atomic_load_n(&a->st.state, __ATOMIC_ACQUIRE);
}

/* The attachment ends (failure or process gone). */
static void set_final(struct rpage_attach *a, uint32_t state, int err)
{
	pthread_mutex_lock(&a->slock);
	if (att_state(a) == RPAGE_ATTACH_RUNNING ||
	    att_state(a) == RPAGE_ATTACH_COMPLETE) {
		__atomic_store_n(&a->st.state, state, __ATOMIC_RELEASE);
		a->st.error = err;
		a->t_end = rp_now_ns();
	}
	pthread_mutex_unlock(&a->slock);
	rp_efd_signal(a->event_efd);
}

static void page_done(struct rpage_attach *a, uint64_t n)
{
	a->done += n;
	if (a->done == a->npages && att_state(a) == RPAGE_ATTACH_RUNNING) {
		pthread_mutex_lock(&a->slock);
		__atomic_store_n(&a->st.state, RPAGE_ATTACH_COMPLETE,
				 __ATOMIC_RELEASE);
		a->st.resident_ns = rp_now_ns() - a->t_start;
		pthread_mutex_unlock(&a->slock);
		rp_source_notify_done(a->src, a->region);
		rp_efd_signal(a->event_efd);
	}
}

/* Maps a placement error to an end state; returns true when fatal. */
static bool place_fatal(struct rpage_attach *a, int ret, uint64_t addr)
{
	if (ret == -ESRCH || ret == -ENOENT || ret == -EFAULT) {
		rp_dbg("uffd %d: process gone or range unmapped at 0x%" PRIx64,
		       a->uffd, addr);
		set_final(a, RPAGE_ATTACH_GONE, ret);
		return true;
	}
	rp_err("placing the page at 0x%" PRIx64 " failed: %s", addr,
	       strerror(-ret));
	set_final(a, RPAGE_ATTACH_FAILED, ret);
	return true;
}

/*
 * Places zeros at page @pg (after a balloon remove). Returns 0, or -errno
 * after setting the final state.
 */
static int place_zero(struct rpage_attach *a, struct att_range *r, uint64_t pg)
{
	uint64_t addr = page_addr(a, r, pg), n = 0;
	int ret;

	if (a->zero_buf)
		ret = rp_uffd_copy(a->uffd, addr, a->zero_buf, a->psize, &n);
	else
		ret = rp_uffd_zeropage(a->uffd, addr, a->psize, &n);
	if (ret == -EEXIST)
		ret = rp_uffd_wake(a->uffd, addr, a->psize);
	if (ret == -EAGAIN)
		return ret; /* an event is pending: it will be read first */
	if (ret) {
		place_fatal(a, ret, addr);
		return ret;
	}
	rp_bit_set(&a->resident, pg);
	pthread_mutex_lock(&a->slock);
	a->st.pages_zeroed++;
	pthread_mutex_unlock(&a->slock);
	return 0;
}

static int handle_fault(struct rpage_attach *a, const struct uffd_msg *m,
			uint64_t t0)
{
	uint64_t addr = m->arg.pagefault.address & ~(a->psize - 1);
	struct att_range *r = range_of(a, addr);
	struct rp_fetch f;
	uint64_t pg, n = 0, t1;
	bool raced = false;
	int ret;

	if (!r) {
		rp_err("fault at 0x%llx is outside every range this handler was given",
		       (unsigned long long)m->arg.pagefault.address);
		set_final(a, RPAGE_ATTACH_FAILED, -EFAULT);
		return -EFAULT;
	}
	pg = r->first + (addr - r->base) / a->psize;
	if (addr != a->spin_addr) {
		a->spin_addr = addr;
		a->spin_count = 0;
	}
	if (rp_bit_test(&a->resident, pg) && a->spin_count == 0) {
		/* placed (by fill) after the fault was raised: just wake.
		 * If it faults again at once, it is missing after all (dropped
		 * without a REMOVE event): fetch it below. */
		ret = rp_uffd_wake(a->uffd, addr, a->psize);
		raced = true;
		if (ret) {
			place_fatal(a, ret, addr);
			return ret;
		}
	} else if (rp_bit_test(&a->zero, pg)) {
		ret = place_zero(a, r, pg);
	} else {
		f.off = page_off(a, r, pg);
		f.len = (uint32_t)a->psize;
		f.dst = a->fault_buf;
		ret = a->urgent->ops->fetch(a->urgent, a->region, &f, 1);
		if (ret) {
			rp_err("fetching page at offset 0x%" PRIx64 " of region '%s' from %s failed: %s",
			       f.off, a->src->regions[a->region].name,
			       rpage_transport_name(a->src->transport),
			       strerror(-ret));
			set_final(a, RPAGE_ATTACH_FAILED, ret);
			return ret;
		}
		ret = rp_uffd_copy(a->uffd, addr, a->fault_buf, a->psize, &n);
		if (ret == -EEXIST) {
			if (!rp_bit_set(&a->resident, pg))
				page_done(a, 1);
			ret = rp_uffd_wake(a->uffd, addr, a->psize);
			raced = true;
		} else if (ret == 0 && !rp_bit_set(&a->resident, pg)) {
			/* not counted before: it may have been resident and
			 * dropped without a REMOVE event */
			page_done(a, 1);
		}
		if (ret == -EAGAIN)
			return ret;
		if (ret) {
			place_fatal(a, ret, addr);
			return ret;
		}
		__atomic_store_n(&a->hint_page, pg, __ATOMIC_RELAXED);
		__atomic_fetch_add(&a->hint_gen, 1, __ATOMIC_RELEASE);
	}
	if (ret)
		return ret;
	if (raced && ++a->spin_count > SPIN_LIMIT) {
		/* e.g. hugetlb memory mapped MAP_NORESERVE with no huge page
		 * left: the kernel says EEXIST and the process faults again */
		rp_err("the page at 0x%" PRIx64 " keeps faulting although the kernel reports it present (out of huge pages?): giving up on this process",
		       addr);
		set_final(a, RPAGE_ATTACH_FAILED, -ENOMEM);
		return -ENOMEM;
	}
	t1 = rp_now_ns();
	pthread_mutex_lock(&a->slock);
	a->st.faults++;
	if (raced) {
		a->st.faults_raced++;
	} else if (!rp_bit_test(&a->zero, pg)) {
		a->st.pages_by_fault++;
		a->st.bytes_fault += a->psize;
	}
	a->st.blocked_ns += t1 - t0;
	rp_hist_add(&a->hist, t1 - t0);
	pthread_mutex_unlock(&a->slock);
	return 0;
}

static void handle_remove(struct rpage_attach *a, uint64_t start, uint64_t end)
{
	uint64_t removed = 0, newly = 0;

	for (unsigned i = 0; i < a->nr; i++) {
		struct att_range *r = &a->r[i];
		uint64_t s = RP_MAX(start, r->base);
		uint64_t e = RP_MIN(end, r->base + r->size);

		if (s >= e)
			continue;
		/* only whole pages are dropped by the kernel */
		s = (s + a->psize - 1) & ~(a->psize - 1);
		e &= ~(a->psize - 1);
		for (uint64_t addr = s; addr < e; addr += a->psize) {
			uint64_t pg = r->first + (addr - r->base) / a->psize;
			bool was_res = rp_bit_clear(&a->resident, pg);
			bool was_zero = rp_bit_set(&a->zero, pg);

			if (!was_res && !was_zero)
				newly++;
			removed++;
		}
	}
	pthread_mutex_lock(&a->slock);
	a->st.removes++;
	pthread_mutex_unlock(&a->slock);
	rp_dbg("remove [0x%" PRIx64 ", 0x%" PRIx64 "): %" PRIu64 " pages",
	       start, end, removed);
	if (newly)
		page_done(a, newly);
}

/*
 * Reads and handles one batch of pending messages (at most MSG_BATCH), so
 * that a steady stream of faults cannot starve the placement of fill data;
 * *busy tells whether there were any. Returns 0, -EAGAIN when a placement
 * must be retried after more events, or -errno when the attachment ended.
 */
static int drain_uffd(struct rpage_attach *a, bool *busy)
{
	struct uffd_msg msgs[MSG_BATCH];

	*busy = false;
	for (;;) {
		ssize_t n = read(a->uffd, msgs, sizeof(msgs));
		uint64_t t0 = rp_now_ns();
		int ret;

		if (n < 0) {
			if (errno == EAGAIN)
				return 0;
			if (errno == EINTR)
				continue;
			ret = -errno;
			rp_err("reading the userfaultfd: %s", strerror(errno));
			set_final(a, RPAGE_ATTACH_FAILED, ret);
			return ret;
		}
		if (n == 0 || n % (ssize_t)sizeof(msgs[0])) {
			set_final(a, RPAGE_ATTACH_FAILED, -EIO);
			return -EIO;
		}
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
			const struct uffd_msg *m = &msgs[i];

			switch (m->event) {
			case UFFD_EVENT_PAGEFAULT:
				do {
					ret = handle_fault(a, m, t0);
					/* EAGAIN: a remove is being queued;
					 * read it, then retry this fault */
					if (ret == -EAGAIN) {
						bool b2;
						int r2 = drain_uffd(a, &b2);

						if (r2 && r2 != -EAGAIN)
							return r2;
					}
				} while (ret == -EAGAIN);
				if (ret)
					return ret;
				break;
			case UFFD_EVENT_REMOVE:
				handle_remove(a, m->arg.remove.start,
					      m->arg.remove.end);
				break;
			case UFFD_EVENT_UNMAP:
				rp_warn("the process unmapped [0x%llx, 0x%llx): pages there are no longer served",
					(unsigned long long)m->arg.remove.start,
					(unsigned long long)m->arg.remove.end);
				handle_remove(a, m->arg.remove.start,
					      m->arg.remove.end);
				break;
			default:
				rp_warn("ignoring userfaultfd event %u",
					m->event);
				break;
			}
		}
		*busy = true;
		return 0;
	}
}

/* Places up to @bytes of the head slot; *finished tells whether the slot
 * is done. */
static int place_slice(struct rpage_attach *a, struct slot *s, uint32_t bytes,
		       bool *finished)
{
	struct att_range *r = range_of_page(a, s->page);
	uint32_t budget = RP_MAX(1u, bytes / (uint32_t)a->psize);

	*finished = false;
	while (budget && s->placed < s->npages) {
		uint64_t pg = s->page + s->placed, run = 0, n = 0;
		int ret;

		if (rp_bit_test(&a->resident, pg) || rp_bit_test(&a->zero, pg)) {
			s->placed++;
			continue;
		}
		while (s->placed + run < s->npages && run < budget &&
		       !rp_bit_test(&a->resident, pg + run) &&
		       !rp_bit_test(&a->zero, pg + run))
			run++;
		ret = rp_uffd_copy(a->uffd, page_addr(a, r, pg),
				   (char *)s->buf + (uint64_t)s->placed * a->psize,
				   run * a->psize, &n);
		n /= a->psize;
		for (uint64_t i = 0; i < n; i++)
			rp_bit_set(&a->resident, pg + i);
		if (n) {
			pthread_mutex_lock(&a->slock);
			a->st.pages_by_fill += n;
			pthread_mutex_unlock(&a->slock);
			page_done(a, n);
		}
		s->placed += (uint32_t)n;
		budget -= (uint32_t)RP_MIN(n, budget);
		if (ret == -EEXIST) {
			/* present already (the process populated it): done */
			rp_bit_set(&a->resident, pg + n);
			page_done(a, 1);
			s->placed++;
		} else if (ret == -EAGAIN) {
			return -EAGAIN;
		} else if (ret) {
			place_fatal(a, ret, page_addr(a, r, pg + n));
			return ret;
		}
	}
	*finished = s->placed == s->npages;
	return 0;
}

static void *fault_main(void *arg)
{
	struct rpage_attach *a = arg;
	struct pollfd pf[3] = {
		{ a->uffd, POLLIN, 0 },
		{ a->stop_efd, POLLIN, 0 },
		{ a->ready_efd, POLLIN, 0 },
	};

	rp_thread_name("rpage/fault");
	for (;;) {
		bool have_slot, busy, finished = false;
		int ret;

		pthread_mutex_lock(&a->qlock);
		have_slot = a->count > 0;
		pthread_mutex_unlock(&a->qlock);
		if (poll(pf, 3, have_slot ? 0 : -1) < 0) {
			if (errno == EINTR)
				continue;
			rp_err("poll: %s", strerror(errno));
			set_final(a, RPAGE_ATTACH_FAILED, -errno);
			break;
		}
		if (pf[1].revents)
			break;
		if (pf[2].revents) {
			uint64_t v;

			if (read(a->ready_efd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				break;
		}
		ret = drain_uffd(a, &busy);
		if (ret && ret != -EAGAIN)
			break;
		if (!have_slot || att_state(a) > RPAGE_ATTACH_COMPLETE)
			continue;
		/* faults flowing: a short slice keeps their wait short */
		ret = place_slice(a, &a->slots[a->head],
				  busy ? PLACE_SLICE_BUSY : PLACE_SLICE, &finished);
		if (ret && ret != -EAGAIN)
			break;
		if (finished) {
			pthread_mutex_lock(&a->qlock);
			a->head = (a->head + 1) % a->nslots;
			a->count--;
			pthread_cond_broadcast(&a->qcond);
			pthread_mutex_unlock(&a->qlock);
		}
	}
	/* let a fill thread blocked on a full ring go */
	pthread_mutex_lock(&a->qlock);
	a->stopping = true;
	pthread_cond_broadcast(&a->qcond);
	pthread_mutex_unlock(&a->qlock);
	return NULL;
}

static bool page_wanted(struct rpage_attach *a, uint64_t pg)
{
	return !rp_bit_test(&a->queued, pg) && !rp_bit_test(&a->resident, pg) &&
	       !rp_bit_test(&a->zero, pg);
}

/* Next page to fill: just after the latest fault first (within a window),
 * then a sweep from @cursor. Returns npages when nothing is left. */
static uint64_t next_fill_page(struct rpage_attach *a, uint64_t *cursor,
			       uint64_t *hint_seen, uint64_t *win_pos,
			       uint64_t *win_end)
{
	uint64_t gen = __atomic_load_n(&a->hint_gen, __ATOMIC_ACQUIRE), pg;

	if (gen != *hint_seen) {
		struct att_range *r;

		*hint_seen = gen;
		pg = __atomic_load_n(&a->hint_page, __ATOMIC_RELAXED);
		r = range_of_page(a, pg);
		*win_pos = pg + 1;
		*win_end = RP_MIN(pg + 1 + RP_MAX(1u, FAULT_WINDOW / a->psize),
				  r->first + r->npages);
	}
	while (*win_pos < *win_end) {
		pg = rp_bitmap_next_clear2(&a->queued, &a->resident, *win_pos);
		if (pg >= *win_end)
			break;
		*win_pos = pg + 1;
		if (page_wanted(a, pg))
			return pg;
	}
	*win_end = 0;
	for (int pass = 0; pass < 2; pass++) {
		while (*cursor < a->npages) {
			pg = rp_bitmap_next_clear2(&a->queued, &a->resident,
						   *cursor);
			if (pg >= a->npages)
				break;
			*cursor = pg + 1;
			if (page_wanted(a, pg))
				return pg;
		}
		*cursor = 0; /* wrap once: pages skipped as resident may have
			      * been removed since (they are zero now) */
	}
	return a->npages;
}

/*
 * The bulk channel failed with @err: gives the batch back (clears its
 * `queued` bits, so the sweep fetches those pages again) and reopens the
 * channel, up to three times with a growing pause. Returns true to go on;
 * false when stopping, or after ending the attachment as failed (faults
 * are still served over the urgent channel, but the memory would never
 * complete without the fill).
 */
static bool fill_recover(struct rpage_attach *a, const unsigned *idx,
			 unsigned n, int err)
{
	static const unsigned pause_ms[] = { 100, 1000, 5000 };
	struct rp_chan *nc = NULL, *old;
	bool stop;

	for (unsigned k = 0; k < n; k++) {
		const struct slot *s = &a->slots[idx[k]];

		for (uint32_t i = 0; i < s->npages; i++)
			rp_bit_clear(&a->queued, s->page + i);
	}
	for (unsigned t = 0; t < RP_ARRAY_SIZE(pause_ms); t++) {
		struct timespec until;
		int ret;

		pthread_mutex_lock(&a->qlock);
		stop = a->stopping;
		pthread_mutex_unlock(&a->qlock);
		if (stop)
			return false;
		rp_warn("background fill from %s failed (%s): reconnecting in %u ms",
			rpage_transport_name(a->src->transport),
			strerror(-err), pause_ms[t]);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += pause_ms[t] / 1000;
		until.tv_nsec += (long)(pause_ms[t] % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&a->qlock);
		while (!a->stopping &&
		       pthread_cond_timedwait(&a->qcond, &a->qlock, &until) == 0)
			;
		stop = a->stopping;
		pthread_mutex_unlock(&a->qlock);
		if (stop)
			return false;
		ret = rp_source_open_chan(a->src, RP_ROLE_BULK, &nc);
		for (unsigned i = 0; !ret && nc->ops->reg_buf && i < a->nslots; i++)
			ret = nc->ops->reg_buf(nc, a->slots[i].buf, a->chunk);
		if (ret) {
			if (nc)
				nc->ops->close(nc);
			nc = NULL;
			err = ret;
			continue;
		}
		pthread_mutex_lock(&a->qlock);
		old = a->bulk;
		a->bulk = nc;
		pthread_mutex_unlock(&a->qlock);
		old->ops->close(old);
		rp_info("background fill reconnected");
		return true;
	}
	rp_err("background fill from %s failed for good (%s): this process's memory will not complete",
	       rpage_transport_name(a->src->transport), strerror(-err));
	set_final(a, RPAGE_ATTACH_FAILED, err);
	return false;
}

static void *fill_main(void *arg)
{
	struct rpage_attach *a = arg;
	uint64_t cursor = 0, hint_seen = 0, win_pos = 0, win_end = 0;
	uint32_t chunk_pages = RP_MAX(1u, a->chunk / (uint32_t)a->psize);
	struct rp_fetch *f = calloc(a->depth, sizeof(*f));
	unsigned *idx = calloc(a->depth, sizeof(*idx));

	rp_thread_name("rpage/fill");
	if (!f || !idx)
		goto out;
	for (;;) {
		unsigned n = 0, tail;
		bool stop;
		int ret;

		/* wait until at least one slot is free */
		pthread_mutex_lock(&a->qlock);
		while (a->count == a->nslots && !a->stopping)
			pthread_cond_wait(&a->qcond, &a->qlock);
		tail = (a->head + a->count) % a->nslots;
		n = RP_MIN(a->depth, a->nslots - a->count);
		stop = a->stopping;
		pthread_mutex_unlock(&a->qlock);
		if (stop)
			break;
		for (unsigned k = 0; k < n; k++) {
			unsigned si = (tail + k) % a->nslots;
			struct slot *s = &a->slots[si];
			uint64_t pg = next_fill_page(a, &cursor, &hint_seen,
						     &win_pos, &win_end);
			struct att_range *r;
			uint32_t run = 0;

			if (pg >= a->npages) {
				n = k;
				break;
			}
			r = range_of_page(a, pg);
			while (run < chunk_pages &&
			       pg + run < r->first + r->npages &&
			       page_wanted(a, pg + run)) {
				rp_bit_set(&a->queued, pg + run);
				run++;
			}
			s->page = pg;
			s->npages = run;
			s->placed = 0;
			f[k].off = page_off(a, r, pg);
			f[k].len = run * (uint32_t)a->psize;
			f[k].dst = s->buf;
			idx[k] = si;
		}
		if (n == 0)
			break; /* every page is queued, resident or zero */
		ret = a->bulk->ops->fetch(a->bulk, a->region, f, n);
		if (ret) {
			if (fill_recover(a, idx, n, ret))
				continue;
			break;
		}
		pthread_mutex_lock(&a->slock);
		for (unsigned k = 0; k < n; k++)
			a->st.bytes_fill += f[k].len;
		pthread_mutex_unlock(&a->slock);
		pthread_mutex_lock(&a->qlock);
		a->count += n;
		pthread_mutex_unlock(&a->qlock);
		rp_efd_signal(a->ready_efd);
	}
out:
	free(f);
	free(idx);
	return NULL;
}

static int check_ranges(struct rpage_source *src, unsigned region,
			const struct rpage_range *rg, unsigned n)
{
	const struct rp_region_desc *d;

	if (region >= src->nregions || n == 0)
		return -EINVAL;
	d = &src->regions[region];
	for (unsigned i = 0; i < n; i++) {
		uint64_t ps = rg[i].page_size;

		if (ps != rg[0].page_size) {
			rp_err("ranges mix page sizes (%" PRIu64 " and %" PRIu64 ")",
			       ps, rg[0].page_size);
			return -EINVAL;
		}
		if (!rp_is_pow2(ps) || ps < RP_PAGE_4K || ps > RP_MAX_DATA ||
		    rg[i].size == 0 || rg[i].base % ps || rg[i].size % ps ||
		    rg[i].offset % ps || rg[i].base + rg[i].size < rg[i].base) {
			rp_err("range %u is not aligned to its page size %" PRIu64
			       " or wraps", i, ps);
			return -EINVAL;
		}
		if (rg[i].offset > d->length ||
		    rg[i].size > d->length - rg[i].offset) {
			rp_err("range %u (offset 0x%" PRIx64 ", size 0x%" PRIx64
			       ") lies beyond the end of region '%s' (0x%" PRIx64 " bytes)",
			       i, rg[i].offset, rg[i].size, d->name, d->length);
			return -EINVAL;
		}
		for (unsigned k = 0; k < i; k++)
			if (rg[i].base < rg[k].base + rg[k].size &&
			    rg[k].base < rg[i].base + rg[i].size) {
				rp_err("ranges %u and %u overlap", k, i);
				return -EINVAL;
			}
	}
	return 0;
}

static void attach_destroy(struct rpage_attach *a)
{
	if (a->urgent)
		a->urgent->ops->close(a->urgent);
	if (a->bulk)
		a->bulk->ops->close(a->bulk);
	for (unsigned i = 0; a->slots && i < a->nslots; i++)
		if (a->slots[i].buf)
			munmap(a->slots[i].buf, a->chunk);
	free(a->slots);
	if (a->fault_buf)
		munmap(a->fault_buf, a->psize);
	if (a->zero_buf)
		munmap(a->zero_buf, a->psize);
	rp_bitmap_free(&a->resident);
	rp_bitmap_free(&a->zero);
	rp_bitmap_free(&a->queued);
	for (int *fd = &a->stop_efd; fd <= &a->ready_efd; fd++)
		if (*fd >= 0)
			close(*fd);
	if (a->uffd >= 0)
		close(a->uffd);
	pthread_mutex_destroy(&a->qlock);
	pthread_cond_destroy(&a->qcond);
	pthread_mutex_destroy(&a->slock);
	free(a->r);
	free(a);
}

static void *map_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int rp_attach_start_ex(struct rpage_source *src, unsigned region, int uffd,
		       const struct rpage_range *ranges, unsigned n,
		       const struct rpage_attach_opts *opts,
		       const uint64_t *resident_bits,
		       struct rpage_attach **out)
{
	struct rpage_attach *a;
	int ret;

	ret = check_ranges(src, region, ranges, n);
	if (ret)
		return ret;
	if (!rp_is_uffd(uffd)) {
		rp_err("descriptor %d is not a userfaultfd", uffd);
		return -EBADF;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->uffd = -1;
	a->stop_efd = a->event_efd = a->ready_efd = -1;
	pthread_mutex_init(&a->qlock, NULL);
	pthread_cond_init(&a->qcond, NULL);
	pthread_mutex_init(&a->slock, NULL);
	a->src = src;
	a->region = region;
	a->psize = ranges[0].page_size;
	a->chunk = opts && opts->fill_chunk ? opts->fill_chunk
					    : FILL_CHUNK_DEFAULT;
	a->depth = opts && opts->fill_depth ? opts->fill_depth
					    : FILL_DEPTH_DEFAULT;
	a->no_fill = opts && opts->no_fill;
	if (a->depth > 64)
		a->depth = 64;
	/* a chunk holds whole pages and fits one frame */
	a->chunk = (uint32_t)RP_MIN((uint64_t)RP_MAX_DATA,
				    RP_MAX((uint64_t)a->chunk, a->psize));
	a->chunk -= a->chunk % (uint32_t)a->psize;
	a->r = calloc(n, sizeof(*a->r));
	if (!a->r) {
		ret = -ENOMEM;
		goto fail;
	}
	a->nr = n;
	for (unsigned i = 0; i < n; i++) {
		a->r[i].base = ranges[i].base;
		a->r[i].size = ranges[i].size;
		a->r[i].offset = ranges[i].offset;
		a->r[i].first = a->npages;
		a->r[i].npages = ranges[i].size / a->psize;
		a->npages += a->r[i].npages;
	}
	ret = rp_bitmap_init(&a->resident, a->npages);
	if (!ret)
		ret = rp_bitmap_init(&a->zero, a->npages);
	if (!ret)
		ret = rp_bitmap_init(&a->queued, a->npages);
	if (ret)
		goto fail;
	if (resident_bits) { /* live migration: placed before registration */
		for (uint64_t w = 0; w < (a->npages + 63) / 64; w++)
			a->resident.w[w] = resident_bits[w] &
				(w == a->npages / 64 ? (1ull << (a->npages % 64)) - 1
						     : ~0ull);
		a->done = rp_bitmap_weight(&a->resident);
	}
	a->fault_buf = map_buf(a->psize);
	/* UFFDIO_ZEROPAGE exists for anonymous 4 KiB memory only: huge
	 * pages get their zeros by UFFDIO_COPY from a zero buffer */
	if (a->psize != RP_PAGE_4K)
		a->zero_buf = map_buf(a->psize);
	a->nslots = a->depth * 2;
	a->slots = calloc(a->nslots, sizeof(*a->slots));
	if (!a->fault_buf || (a->psize != RP_PAGE_4K && !a->zero_buf) ||
	    !a->slots) {
		ret = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; !a->no_fill && i < a->nslots; i++) {
		a->slots[i].buf = map_buf(a->chunk);
		if (!a->slots[i].buf) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	a->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a->event_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a->ready_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->stop_efd < 0 || a->event_efd < 0 || a->ready_efd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = rp_source_open_chan(src, RP_ROLE_URGENT, &a->urgent);
	if (!ret && !a->no_fill)
		ret = rp_source_open_chan(src, RP_ROLE_BULK, &a->bulk);
	/* transports that read into registered staging buffers (RDMA) */
	if (!ret && a->urgent->ops->reg_buf)
		ret = a->urgent->ops->reg_buf(a->urgent, a->fault_buf, a->psize);
	for (unsigned i = 0; !ret && a->bulk && a->bulk->ops->reg_buf &&
			     i < a->nslots; i++)
		ret = a->bulk->ops->reg_buf(a->bulk, a->slots[i].buf, a->chunk);
	if (ret)
		goto fail;
	ret = rp_set_nonblock(uffd, true);
	if (ret)
		goto fail;
	a->uffd = uffd;
	a->st.page_size = a->psize;
	a->st.pages_total = a->npages;
	rp_hist_init(&a->hist);
	a->t_start = rp_now_ns();
	if (a->npages && a->done == a->npages) {
		a->st.state = RPAGE_ATTACH_COMPLETE;
		rp_efd_signal(a->event_efd);
	}
	ret = -pthread_create(&a->fault_thr, NULL, fault_main, a);
	if (ret) {
		a->uffd = -1; /* the caller keeps it on failure */
		goto fail;
	}
	a->threads_started = true;
	if (!a->no_fill) {
		ret = -pthread_create(&a->fill_thr, NULL, fill_main, a);
		if (ret) {
			rp_warn("no fill thread (%s): faults only", strerror(-ret));
		} else {
			a->fill_started = true;
		}
	}
	*out = a;
	return 0;
fail:
	if (ret == -ENOMEM)
		rp_err("out of memory setting up %" PRIu64 " pages", a->npages);
	a->uffd = -1;
	attach_destroy(a);
	return ret;
}

RP_EXPORT int rpage_attach_start(struct rpage_source *src, unsigned region,
				 int uffd, const struct rpage_range *ranges,
				 unsigned n,
				 const struct rpage_attach_opts *opts,
				 struct rpage_attach **out)
{
	return rp_attach_start_ex(src, region, uffd, ranges, n, opts, NULL,
				  out);
}

void rp_attach_get_hist(struct rpage_attach *a, struct rp_hist *out)
{
	pthread_mutex_lock(&a->slock);
	*out = a->hist;
	pthread_mutex_unlock(&a->slock);
}

RP_EXPORT int rpage_attach_event_fd(const struct rpage_attach *att)
{
	return att->event_efd;
}

RP_EXPORT int rpage_attach_get_stats(struct rpage_attach *a,
				     struct rpage_stats *st)
{
	uint64_t now = rp_now_ns();

	pthread_mutex_lock(&a->slock);
	*st = a->st;
	st->pages_resident = rp_bitmap_weight(&a->resident);
	st->elapsed_ns = (a->t_end ? a->t_end : now) - a->t_start;
	if (a->hist.count) {
		st->lat_min_ns = a->hist.min;
		st->lat_p50_ns = rp_hist_quantile(&a->hist, 0.50);
		st->lat_p99_ns = rp_hist_quantile(&a->hist, 0.99);
		st->lat_p999_ns = rp_hist_quantile(&a->hist, 0.999);
		st->lat_max_ns = a->hist.max;
		st->lat_avg_ns = a->hist.sum / a->hist.count;
	}
	pthread_mutex_unlock(&a->slock);
	return 0;
}

RP_EXPORT int rpage_attach_stop(struct rpage_attach *a)
{
	if (!a->threads_started)
		return 0;
	pthread_mutex_lock(&a->qlock);
	a->stopping = true;
	pthread_cond_broadcast(&a->qcond);
	/* under qlock: the fill thread may be replacing its channel */
	if (a->bulk)
		a->bulk->ops->abort(a->bulk);
	pthread_mutex_unlock(&a->qlock);
	rp_efd_signal(a->stop_efd);
	/* a fault thread blocked on a silent server must return too */
	a->urgent->ops->abort(a->urgent);
	pthread_join(a->fault_thr, NULL);
	if (a->fill_started)
		pthread_join(a->fill_thr, NULL);
	a->threads_started = false;
	a->fill_started = false;
	pthread_mutex_lock(&a->slock);
	if (!a->t_end)
		a->t_end = rp_now_ns();
	pthread_mutex_unlock(&a->slock);
	return 0;
}

RP_EXPORT void rpage_attach_free(struct rpage_attach *a)
{
	if (!a)
		return;
	rpage_attach_stop(a);
	attach_destroy(a);
}

static const char *state_name(uint32_t s)
{
	static const char *const n[] = { "running", "complete", "failed",
					 "gone" };

	return s < RP_ARRAY_SIZE(n) ? n[s] : "?";
}

RP_EXPORT void rpage_stats_print(FILE *f, const char *name,
				 const struct rpage_stats *st)
{
	double el = (double)st->elapsed_ns / 1e9;
	double fill_mb = (double)st->bytes_fill / 1e6;

	fprintf(f, "%s: %s%s%s\n", name, state_name(st->state),
		st->error ? ": " : "", st->error ? strerror(-st->error) : "");
	fprintf(f, "  pages      %" PRIu64 " of %" PRIu64 " resident (page size %" PRIu64
		   "): %" PRIu64 " by fault, %" PRIu64 " by fill, %" PRIu64 " zeroed after %" PRIu64 " removes\n",
		st->pages_resident, st->pages_total, st->page_size,
		st->pages_by_fault, st->pages_by_fill, st->pages_zeroed,
		st->removes);
	fprintf(f, "  faults     %" PRIu64 " (%" PRIu64 " raced with fill), blocked %.3f ms in all\n",
		st->faults, st->faults_raced, (double)st->blocked_ns / 1e6);
	fprintf(f, "  latency    min %.1f  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  avg %.1f us\n",
		(double)st->lat_min_ns / 1e3, (double)st->lat_p50_ns / 1e3,
		(double)st->lat_p99_ns / 1e3, (double)st->lat_p999_ns / 1e3,
		(double)st->lat_max_ns / 1e3, (double)st->lat_avg_ns / 1e3);
	fprintf(f, "  bytes      %.1f MB by fault, %.1f MB by fill (%.1f MB/s over %.3f s)\n",
		(double)st->bytes_fault / 1e6, fill_mb,
		el > 0 ? fill_mb / el : 0.0, el);
	if (st->resident_ns)
		fprintf(f, "  resident   fully resident after %.3f s\n",
			(double)st->resident_ns / 1e9);
}

RP_EXPORT void rpage_stats_print_json(FILE *f, const char *name,
				      const struct rpage_stats *st)
{
	fprintf(f,
		"{\"name\":\"%s\",\"state\":\"%s\",\"error\":%d,\"page_size\":%" PRIu64
		",\"pages_total\":%" PRIu64 ",\"pages_resident\":%" PRIu64
		",\"pages_by_fault\":%" PRIu64 ",\"pages_by_fill\":%" PRIu64
		",\"pages_zeroed\":%" PRIu64 ",\"removes\":%" PRIu64
		",\"faults\":%" PRIu64 ",\"faults_raced\":%" PRIu64
		",\"bytes_fault\":%" PRIu64 ",\"bytes_fill\":%" PRIu64
		",\"blocked_us\":%.3f,\"elapsed_s\":%.6f,\"resident_s\":%.6f"
		",\"fill_MBps\":%.3f"
		",\"latency_us\":{\"min\":%.3f,\"p50\":%.3f,\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f,\"avg\":%.3f}}\n",
		name, state_name(st->state), st->error, st->page_size,
		st->pages_total, st->pages_resident, st->pages_by_fault,
		st->pages_by_fill, st->pages_zeroed, st->removes, st->faults,
		st->faults_raced, st->bytes_fault, st->bytes_fill,
		(double)st->blocked_ns / 1e3, (double)st->elapsed_ns / 1e9,
		(double)st->resident_ns / 1e9,
		st->elapsed_ns ? (double)st->bytes_fill / 1e6 /
					 ((double)st->elapsed_ns / 1e9)
			       : 0.0,
		(double)st->lat_min_ns / 1e3, (double)st->lat_p50_ns / 1e3,
		(double)st->lat_p99_ns / 1e3, (double)st->lat_p999_ns / 1e3,
		(double)st->lat_max_ns / 1e3, (double)st->lat_avg_ns / 1e3);
}
