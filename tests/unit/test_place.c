/* SPDX-License-Identifier: MIT */
/*
 * What the fault handler knows of an address space (client/place.c): how
 * munmap, mremap and discards change its mappings and page states, and that
 * "settled" pages are counted once each, whatever the order of events.
 * No userfaultfd is needed: events are applied as the fault thread would.
 */
#include <pthread.h>
#include <string.h>

#include "../../client/attach_int.h"
#include "tests.h"

#define PS 4096ull
#define NP 64ull
#define BASE 0x100000000ull

/* An attachment that is only what place.c touches: two ranges of 32 pages,
 * the second mapped right after the first. */
static struct rpage_source local_src = { .ctl = { .fd = -1 }, .local_fd = -1 };

static void fake_attach(struct rpage_attach *a)
{
	memset(a, 0, sizeof(*a));
	a->src = &local_src; /* completion tells a local source nothing */
	pthread_mutex_init(&a->slock, NULL);
	a->psize = PS;
	a->npages = NP;
	a->event_efd = -1;
	CU_ASSERT_EQUAL_FATAL(att_mm_init(&a->mm, NP), 0);
	CU_ASSERT_EQUAL_FATAL(att_seg_add(&a->mm, BASE, 0, 32), 0);
	CU_ASSERT_EQUAL_FATAL(att_seg_add(&a->mm, BASE + 32 * PS, 32, 32), 0);
}

static void fake_free(struct rpage_attach *a)
{
	att_mm_free(&a->mm);
	pthread_mutex_destroy(&a->slock);
}

/* The page mapped at @addr, or -1. */
static int64_t page_at(struct rpage_attach *a, uint64_t addr)
{
	struct att_seg *s = att_seg_of_addr(&a->mm, addr, PS);

	return s ? (int64_t)(s->first + (addr - s->base) / PS) : -1;
}

static void unmap_splits(void)
{
	struct rpage_attach a;

	fake_attach(&a);
	/* a hole in the middle of the first range */
	att_on_unmap(&a, &a.mm, BASE + 10 * PS, BASE + 12 * PS);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 9 * PS), 9);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 10 * PS), -1);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 11 * PS), -1);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 12 * PS), 12);
	CU_ASSERT(rp_bit_test(&a.mm.gone, 10) && rp_bit_test(&a.mm.gone, 11));
	CU_ASSERT(!rp_bit_test(&a.mm.gone, 9) && !rp_bit_test(&a.mm.gone, 12));
	CU_ASSERT_EQUAL(a.done, 2);
	/* across both ranges, in pieces not page aligned */
	att_on_unmap(&a, &a.mm, BASE + 30 * PS + 100, BASE + 34 * PS - 100);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 29 * PS), 29);
	for (uint64_t p = 30; p < 34; p++)
		CU_ASSERT_EQUAL(page_at(&a, BASE + p * PS), -1);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 34 * PS), 34);
	CU_ASSERT_EQUAL(a.done, 6);
	/* unmapping it again counts nothing twice */
	att_on_unmap(&a, &a.mm, BASE, BASE + NP * PS);
	CU_ASSERT_EQUAL(a.done, NP);
	CU_ASSERT_EQUAL(a.mm.nseg, 0);
	fake_free(&a);
}

static void remap_moves(void)
{
	struct rpage_attach a;
	uint64_t to = BASE + 1000 * PS;

	fake_attach(&a);
	/* pages 28..35 (both ranges) move away */
	att_on_remap(&a, &a.mm, BASE + 28 * PS, to, 8 * PS);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 27 * PS), 27);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 28 * PS), -1);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 35 * PS), -1);
	CU_ASSERT_EQUAL(page_at(&a, BASE + 36 * PS), 36);
	for (uint64_t i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(page_at(&a, to + i * PS), (int64_t)(28 + i));
	CU_ASSERT_EQUAL(att_seg_of_page(&a.mm, 30)->base, to);
	CU_ASSERT_EQUAL(a.done, 0);
	/* moved onto pages of ours: those were replaced, so they are gone */
	att_on_remap(&a, &a.mm, to + 2 * PS, BASE, 2 * PS);
	CU_ASSERT_EQUAL(page_at(&a, BASE), 30);
	CU_ASSERT_EQUAL(page_at(&a, BASE + PS), 31);
	CU_ASSERT(rp_bit_test(&a.mm.gone, 0) && rp_bit_test(&a.mm.gone, 1));
	CU_ASSERT_EQUAL(a.done, 2);
	fake_free(&a);
}

static void remove_settles_once(void)
{
	struct rpage_attach a;

	fake_attach(&a);
	/* placed, then discarded: counted when placed, not again */
	rp_bit_set(&a.mm.resident, 5);
	att_settle(&a, &a.mm, 1);
	att_on_remove(&a, &a.mm, BASE + 5 * PS, BASE + 7 * PS);
	CU_ASSERT(rp_bit_test(&a.mm.zero, 5) && rp_bit_test(&a.mm.zero, 6));
	CU_ASSERT(!rp_bit_test(&a.mm.resident, 5));
	CU_ASSERT_EQUAL(a.done, 2);
	/* discarded again, then unmapped: still counted once */
	att_on_remove(&a, &a.mm, BASE + 5 * PS, BASE + 7 * PS);
	att_on_unmap(&a, &a.mm, BASE + 5 * PS, BASE + 7 * PS);
	CU_ASSERT_EQUAL(a.done, 2);
	CU_ASSERT_EQUAL(a.st.removes, 2);
	/* only whole pages are discarded: a 4 KiB page never partly */
	att_on_remove(&a, &a.mm, BASE + 20 * PS + 8, BASE + 21 * PS);
	CU_ASSERT(!rp_bit_test(&a.mm.zero, 20));
	CU_ASSERT_EQUAL(a.mm.npart, 1);
	fake_free(&a);
}

static void fork_child_view(void)
{
	struct rpage_attach a;
	struct att_mm c = { 0 };

	fake_attach(&a);
	rp_bit_set(&a.mm.resident, 3);
	att_on_remove(&a, &a.mm, BASE + 4 * PS, BASE + 5 * PS);
	att_on_unmap(&a, &a.mm, BASE + 40 * PS, BASE + 41 * PS);
	CU_ASSERT_EQUAL_FATAL(att_mm_clone(&c, &a.mm), 0);
	CU_ASSERT(c.child);
	/* the parent's discards and unmaps, nothing placed */
	CU_ASSERT(rp_bit_test(&c.zero, 4));
	CU_ASSERT(rp_bit_test(&c.gone, 40));
	CU_ASSERT(!rp_bit_test(&c.resident, 3));
	CU_ASSERT_EQUAL(c.nseg, a.mm.nseg);
	/* its own events change only its own view */
	att_on_unmap(&a, &c, BASE, BASE + PS);
	CU_ASSERT(rp_bit_test(&c.gone, 0));
	CU_ASSERT(!rp_bit_test(&a.mm.gone, 0));
	att_mm_free(&c);
	fake_free(&a);
}

int register_place_tests(void)
{
	CU_pSuite s = CU_add_suite("place", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, unmap_splits);
	ADD(s, remap_moves);
	ADD(s, remove_settles_once);
	ADD(s, fork_child_view);
	return 0;
}
