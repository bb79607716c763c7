/* SPDX-License-Identifier: MIT */
/*
 * What the fault handler knows of one address space, how the userfaultfd
 * events change it, and the one path through which every page is placed.
 *
 * Everything here runs on the fault thread ("rpage/fault"), the only thread
 * that places pages; docs/architecture.md states the rules this file keeps:
 *  - a REMOVE (MADV_DONTNEED, MADV_REMOVE, MADV_FREE) is read before the
 *    faults read with it are served, and a discarded page never receives
 *    source data again: it reads zeros;
 *  - the kernel answers a placement with -EAGAIN while an event is queued
 *    and unread, so no placement can overtake a discard it has not seen;
 *  - -EEXIST: the page is present (placed before, or populated by the
 *    process): its contents stand, and waiters are woken;
 *  - -ENOENT/-EFAULT: nothing is mapped there any more (unmapped without an
 *    event, or a file truncated below it): that part is gone, the rest is
 *    still served; -ESRCH: the address space itself has gone.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "../common/uffd.h"
#include "attach_int.h"

/*
 * The fault thread's tables live in memory from mmap, never malloc. In the
 * workload's own process (live migration) a thread that forks holds
 * malloc's locks while the kernel waits for us to read its FORK event: a
 * malloc here then would never return.
 */
static size_t tbl_len(size_t len)
{
	return (len + 4095) & ~(size_t)4095;
}

void *att_tbl_alloc(size_t len)
{
	void *p = mmap(NULL, tbl_len(len ? len : 1), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void att_tbl_free(void *p, size_t len)
{
	if (p)
		munmap(p, tbl_len(len ? len : 1));
}

/* Grows the table at *p of *cap elements of @elem bytes to hold @need. */
static int grow(void **p, unsigned *cap, unsigned need, size_t elem)
{
	unsigned ncap = *cap ? *cap : 8;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	if (*p)
		np = mremap(*p, tbl_len(*cap * elem), tbl_len(ncap * elem),
			    MREMAP_MAYMOVE);
	else
		np = mmap(NULL, tbl_len(ncap * elem), PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (np == MAP_FAILED)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

int att_grow(void **p, unsigned *cap, unsigned need, size_t elem)
{
	return grow(p, cap, need, elem);
}

static int bits_init(struct rp_bitmap *b, uint64_t nbits)
{
	b->nbits = nbits;
	b->w = att_tbl_alloc((nbits + 63) / 64 * 8);
	return b->w ? 0 : -ENOMEM;
}

static void bits_free(struct rp_bitmap *b)
{
	att_tbl_free(b->w, (b->nbits + 63) / 64 * 8);
	b->w = NULL;
}

int att_mm_init(struct att_mm *m, uint64_t npages)
{
	int ret;

	m->uffd = -1;
	ret = bits_init(&m->resident, npages);
	if (!ret)
		ret = bits_init(&m->zero, npages);
	if (!ret)
		ret = bits_init(&m->gone, npages);
	return ret;
}

void att_mm_free(struct att_mm *m)
{
	bits_free(&m->resident);
	bits_free(&m->zero);
	bits_free(&m->gone);
	att_tbl_free(m->seg, m->segcap * sizeof(*m->seg));
	att_tbl_free(m->part, m->partcap * sizeof(*m->part));
	att_tbl_free(m->pend, m->pendcap * sizeof(*m->pend));
	att_tbl_free(m->anon, ATT_AREAS * sizeof(*m->anon));
	m->anon = NULL;
	m->nanon = 0;
	m->seg = NULL;
	m->part = NULL;
	m->pend = NULL;
	m->nseg = m->npart = m->npend = 0;
	m->segcap = m->partcap = m->pendcap = 0;
}

int att_mm_clone(struct att_mm *c, const struct att_mm *p)
{
	uint64_t nw = (p->resident.nbits + 63) / 64;
	int ret = att_mm_init(c, p->resident.nbits);

	if (!ret)
		ret = grow((void **)&c->seg, &c->segcap, p->nseg, sizeof(*c->seg));
	if (!ret && p->npart)
		ret = grow((void **)&c->part, &c->partcap, p->npart,
			   sizeof(*c->part));
	if (ret) {
		att_mm_free(c);
		return ret;
	}
	if (p->nseg) /* none: c->seg may still be NULL */
		memcpy(c->seg, p->seg, p->nseg * sizeof(*c->seg));
	c->nseg = p->nseg;
	if (p->npart)
		memcpy(c->part, p->part, p->npart * sizeof(*c->part));
	c->npart = p->npart;
	/* nothing is known to be placed in the child: what the parent had
	 * present was copied to it and will not fault; what was discarded or
	 * unmapped before the fork stays so */
	memcpy(c->zero.w, p->zero.w, nw * 8);
	memcpy(c->gone.w, p->gone.w, nw * 8);
	c->child = true;
	return 0;
}

int att_seg_add(struct att_mm *m, uint64_t base, uint64_t first,
		uint64_t npages)
{
	if (grow((void **)&m->seg, &m->segcap, m->nseg + 1, sizeof(*m->seg)))
		return -ENOMEM;
	m->seg[m->nseg++] = (struct att_seg){ base, first, npages };
	return 0;
}

struct att_seg *att_seg_of_page(struct att_mm *m, uint64_t pg)
{
	for (unsigned i = 0; i < m->nseg; i++)
		if (pg >= m->seg[i].first && pg - m->seg[i].first < m->seg[i].npages)
			return &m->seg[i];
	return NULL;
}

struct att_seg *att_seg_of_addr(struct att_mm *m, uint64_t addr,
				uint64_t psize)
{
	for (unsigned i = 0; i < m->nseg; i++)
		if (addr >= m->seg[i].base &&
		    (addr - m->seg[i].base) / psize < m->seg[i].npages)
			return &m->seg[i];
	return NULL;
}

bool att_settled(const struct att_mm *m, uint64_t pg)
{
	return rp_bit_test(&m->resident, pg) || rp_bit_test(&m->zero, pg) ||
	       rp_bit_test(&m->gone, pg);
}

/* Sets bit @pg of @b (one of @m's state bitmaps) and counts the page
 * as settled if it was not. */
static uint64_t mark(struct att_mm *m, struct rp_bitmap *b, uint64_t pg)
{
	bool was = att_settled(m, pg);

	rp_bit_set(b, pg);
	return was ? 0 : 1;
}

static void part_drop(struct att_mm *m, uint64_t pg)
{
	for (unsigned i = 0; i < m->npart;)
		if (m->part[i].pg == pg)
			m->part[i] = m->part[--m->npart];
		else
			i++;
}

static void part_add(struct att_mm *m, uint64_t pg, uint64_t off,
		     uint64_t len)
{
	/* present: the kernel zeroes it in place; discarded: zeros anyway */
	if (rp_bit_test(&m->resident, pg) || rp_bit_test(&m->zero, pg) ||
	    rp_bit_test(&m->gone, pg))
		return;
	if (grow((void **)&m->part, &m->partcap, m->npart + 1,
		 sizeof(*m->part))) {
		rp_err("out of memory recording a partial discard of page %" PRIu64,
		       pg);
		return;
	}
	m->part[m->npart++] = (struct att_partial){ pg, (uint32_t)off,
						    (uint32_t)len };
}

/*
 * Splits mappings so that none straddles @lo or @hi (page aligned): each is
 * then wholly inside [lo, hi) or wholly outside. 0 or -ENOMEM.
 */
static int seg_isolate(struct att_mm *m, uint64_t lo, uint64_t hi,
		       uint64_t psize)
{
	uint64_t cut[2] = { lo, hi };

	for (int k = 0; k < 2; k++) {
		for (unsigned i = 0; i < m->nseg; i++) {
			struct att_seg s = m->seg[i];
			uint64_t end = s.base + s.npages * psize, left;

			if (cut[k] <= s.base || cut[k] >= end)
				continue;
			if (att_seg_add(m, cut[k], 0, 0))
				return -ENOMEM;
			left = (cut[k] - s.base) / psize;
			m->seg[i].npages = left;
			m->seg[m->nseg - 1] = (struct att_seg){
				cut[k], s.first + left, s.npages - left
			};
			break;
		}
	}
	return 0;
}

static bool seg_inside(const struct att_seg *s, uint64_t lo, uint64_t hi)
{
	return s->npages && s->base >= lo && s->base < hi;
}

/* Drops the mappings inside [lo, hi): their pages are gone. */
static uint64_t seg_drop(struct att_mm *m, uint64_t lo, uint64_t hi)
{
	uint64_t newly = 0;

	for (unsigned i = 0; i < m->nseg;) {
		struct att_seg *s = &m->seg[i];

		if (!seg_inside(s, lo, hi)) {
			i++;
			continue;
		}
		for (uint64_t pg = s->first; pg < s->first + s->npages; pg++) {
			newly += mark(m, &m->gone, pg);
			part_drop(m, pg);
		}
		m->seg[i] = m->seg[--m->nseg];
	}
	return newly;
}

void att_on_remove(struct rpage_attach *a, struct att_mm *m, uint64_t start,
		   uint64_t end)
{
	uint64_t ps = a->psize, newly = 0, pages = 0;

	for (unsigned i = 0; i < m->nseg; i++) {
		struct att_seg *s = &m->seg[i];
		uint64_t lo = RP_MAX(start, s->base);
		uint64_t hi = RP_MIN(end, s->base + s->npages * ps);
		uint64_t wlo = (lo + ps - 1) & ~(ps - 1), whi = hi & ~(ps - 1);

		if (lo >= hi)
			continue;
		/* whole pages: their source data is dead */
		for (uint64_t addr = wlo; addr < whi; addr += ps) {
			uint64_t pg = s->first + (addr - s->base) / ps;

			newly += mark(m, &m->zero, pg);
			rp_bit_clear(&m->resident, pg);
			part_drop(m, pg);
			pages++;
		}
		/* a hole punched in part of a huge page (MADV_REMOVE on
		 * hugetlbfs): the kernel zeroes that part of a present page;
		 * a page still missing gets it zeroed when it arrives */
		if (lo < wlo) {
			uint64_t pa = lo & ~(ps - 1);

			part_add(m, s->first + (pa - s->base) / ps, lo - pa,
				 RP_MIN(wlo, hi) - lo);
		}
		if (whi < hi && whi >= wlo)
			part_add(m, s->first + (whi - s->base) / ps, 0, hi - whi);
	}
	rp_dbg("uffd %d: remove [0x%" PRIx64 ", 0x%" PRIx64 "): %" PRIu64 " pages discarded",
	       m->uffd, start, end, pages);
	if (!m->child) {
		pthread_mutex_lock(&a->slock);
		a->st.removes++;
		pthread_mutex_unlock(&a->slock);
	}
	att_settle(a, m, newly);
}

void att_on_unmap(struct rpage_attach *a, struct att_mm *m, uint64_t start,
		  uint64_t end)
{
	uint64_t ps = a->psize, lo = start & ~(ps - 1);
	uint64_t hi = (end + ps - 1) & ~(ps - 1);

	if (seg_isolate(m, lo, hi, ps)) {
		rp_err("out of memory following an unmap: serving faults there as zeros");
		return;
	}
	rp_dbg("uffd %d: unmap [0x%" PRIx64 ", 0x%" PRIx64 ")", m->uffd, start,
	       end);
	att_pend_wake(a, m, lo, hi);
	att_settle(a, m, seg_drop(m, lo, hi));
}

void att_on_remap(struct rpage_attach *a, struct att_mm *m, uint64_t from,
		  uint64_t to, uint64_t len)
{
	uint64_t ps = a->psize, newly;

	len = (len + ps - 1) & ~(ps - 1);
	/* whatever was mapped at the destination was replaced */
	if (seg_isolate(m, to, to + len, ps) ||
	    seg_isolate(m, from, from + len, ps)) {
		rp_err("out of memory following a remap: pages moved to 0x%" PRIx64 " read zeros",
		       to);
		return;
	}
	att_pend_wake(a, m, from, from + len);
	att_pend_wake(a, m, to, to + len);
	newly = seg_drop(m, to, to + len);
	for (unsigned i = 0; i < m->nseg; i++)
		if (seg_inside(&m->seg[i], from, from + len))
			m->seg[i].base = m->seg[i].base - from + to;
	rp_dbg("uffd %d: remap [0x%" PRIx64 ", +0x%" PRIx64 ") to 0x%" PRIx64,
	       m->uffd, from, len, to);
	att_settle(a, m, newly);
}

/* Zeroes, in @data, what hole punches took from pages [pg, pg + n). */
static void part_apply(struct att_mm *m, uint64_t pg, uint64_t n,
		       uint64_t psize, char *data)
{
	for (unsigned i = 0; i < m->npart; i++)
		if (m->part[i].pg >= pg && m->part[i].pg < pg + n)
			memset(data + (m->part[i].pg - pg) * psize +
				       m->part[i].off,
			       0, m->part[i].len);
}

/* Zeros for @n pages at @addr: the zero page where the kernel has one,
 * else copies of a zeroed huge page. */
static int place_zeros(struct rpage_attach *a, struct att_mm *m,
		       uint64_t addr, uint64_t n, uint64_t *copied)
{
	uint64_t c = 0;
	int ret = 0;

	*copied = 0;
	if (!a->zero_buf)
		return rp_uffd_zeropage(m->uffd, addr, n * a->psize, copied);
	for (uint64_t i = 0; i < n && !ret; i++) {
		ret = rp_uffd_copy(m->uffd, addr + i * a->psize, a->zero_buf,
				   a->psize, &c);
		*copied += c;
	}
	return ret;
}

int att_place(struct rpage_attach *a, struct att_mm *m, uint64_t pg,
	      uint64_t addr, uint64_t n, void *data, enum att_origin o,
	      uint64_t *done)
{
	bool outside = pg == UINT64_MAX;
	uint64_t copied = 0, k, newly = 0;
	int ret;

	*done = 0;
	if (!outside && data) {
		for (uint64_t i = 0; i < n; i++)
			if (rp_bit_test(&m->zero, pg + i)) {
				/* the rule this file exists for */
				rp_err("refusing to place source data on discarded page %" PRIu64,
				       pg + i);
				att_set_final(a, RPAGE_ATTACH_FAILED, -EINVAL);
				return -EINVAL;
			}
		if (m->npart)
			part_apply(m, pg, n, a->psize, data);
	}
	if (data)
		ret = rp_uffd_copy(m->uffd, addr, data, n * a->psize, &copied);
	else
		ret = place_zeros(a, m, addr, n, &copied);
	k = copied / a->psize;
	if (ret == -EEXIST && k < n)
		k++; /* that page is present: its contents stand */
	if (!outside) {
		for (uint64_t i = 0; i < k; i++) {
			newly += mark(m, &m->resident, pg + i);
			if (m->npart)
				part_drop(m, pg + i);
		}
		if (!m->child && k) {
			pthread_mutex_lock(&a->slock);
			if (!data)
				a->st.pages_zeroed += copied / a->psize;
			else if (o == ORIGIN_FILL)
				a->st.pages_by_fill += copied / a->psize;
			else
				a->st.pages_by_fault += copied / a->psize;
			pthread_mutex_unlock(&a->slock);
		}
	}
	*done = k;
	switch (ret) {
	case 0:
	case -EAGAIN: /* an event is queued: read it, then try again */
		break;
	case -EEXIST:
		rp_uffd_wake(m->uffd, addr + (k - 1) * a->psize, a->psize);
		break;
	case -ENOENT:
	case -EFAULT:
		/* no mapping there any more: the rest of that mapping is
		 * gone for the fill; a fault there is still served */
		rp_uffd_wake(m->uffd, addr + k * a->psize, a->psize);
		if (!outside) {
			struct att_seg *s = att_seg_of_page(m, pg + k);

			rp_dbg("uffd %d: nothing mapped at 0x%" PRIx64 " (%s): the rest of that range is served by faults only",
			       m->uffd, addr + k * a->psize, strerror(-ret));
			for (uint64_t p = pg + k; s && p < s->first + s->npages; p++)
				newly += mark(m, &m->gone, p);
		}
		break;
	case -ESRCH:
		m->dead = true;
		if (!m->child)
			att_set_final(a, RPAGE_ATTACH_GONE, ret);
		break;
	default:
		rp_err("placing the page at 0x%" PRIx64 " failed: %s",
		       addr + k * a->psize, strerror(-ret));
		if (m->child)
			m->dead = true;
		else
			att_set_final(a, RPAGE_ATTACH_FAILED, ret);
		break;
	}
	att_settle(a, m, newly);
	return ret;
}
