/* SPDX-License-Identifier: MIT */
/*
 * rpage-torture: a seeded random workload that does to its memory what real
 * processes do while rpage is still bringing that memory in — reads,
 * writes, discards (MADV_DONTNEED, MADV_REMOVE, hole punches in part of a
 * huge page), faults racing discards of the same page, balloon inflate and
 * deflate, munmap and mmap of pieces, mremap, fork with a child that reads —
 * from several threads at once, and checks every read against a shadow
 * model of what each page must hold by the kernel's semantics: the source's
 * bytes, zeros after a discard, or what the process wrote.
 *
 * It runs in epochs: each epoch is a fresh process memory handed to the
 * handler (a new post-copy), so a run covers many starts.
 *
 *   daemon mode: the memory is handed to rpage-client over its Unix socket
 *     with Firecracker's handshake (stranger.c); the client serves it from
 *     an rpage-server or a local file holding the image `mkimage` wrote.
 *   live mode: the memory is live-migrated inside this process with the
 *     public API; the workload runs on the source during pre-copy, pauses
 *     at the switchover and goes on at the destination during post-copy.
 *
 * Threads: one worker per --threads, each with a "buddy" that performs the
 * other half of a race; the main thread paces epochs and reaps children.
 * Page operations hold the lock of their chunk; operations that change the
 * mappings (munmap, mmap, mremap, fork) hold the layout lock exclusively.
 *
 * A mismatch prints the seed, the epoch, the page, what was expected and
 * what was found, and the run fails.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/memfd.h>
#include <linux/mman.h>

#include "rpage/rpage.h"
#include "stranger.h"

#define NSTRIPE 64
#define MAX_THREADS 16
#define MAX_KIDS 4
#define BLK 4096ull
#define WSEED 0x5eed5eedull
#define STALL_S 60 /* no operation finishing for this long: a hang */
static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

enum backing { B_ANON, B_MEMFD, B_HUGE, B_HUGEFS };
enum kind { K_SRC, K_ZERO, K_WRITTEN, K_UNMAPPED };
enum op { OP_READ, OP_WRITE, OP_DISCARD, OP_RACE, OP_BALLOON, OP_PUNCH,
	  OP_UNMAP, OP_MAPNEW, OP_REMAP, OP_FORK, OP_NUM };
static const char *const op_name[OP_NUM] = {
	"read", "write", "discard", "race", "balloon", "punch-part",
	"munmap", "mmap-new", "mremap", "fork",
};

struct pstate {
	uint8_t kind;
	uint64_t tag; /* K_WRITTEN: which write */
};

struct chunk {
	char *addr;      /* where it is mapped (or reserved when unmapped) */
	bool mapped;
	bool fresh;      /* mapped anew: private memory, not the original */
	int slot;        /* spare slot it occupies, or -1 (its home) */
};

struct opts {
	bool live;
	const char *sock;
	enum backing backing;
	uint64_t img_seed, img_size;
	uint64_t seed;
	double duration, epoch_s;
	unsigned threads;
	bool sync_wp;
	enum rpage_live_mode live_mode;
	bool any_live_mode;
	const char *report;
	unsigned ops_mask; /* operations allowed (0: all) */
};

struct epoch;

struct worker {
	struct epoch *e;
	unsigned id;
	uint64_t rng;
	pthread_t thr, buddy_thr;
	/* the race: the buddy discards page `race_pg` while the worker reads */
	pthread_barrier_t race_go, race_done;
	uint64_t race_pg;
	bool race_quit;
	uint64_t balloon[16];
	unsigned nballoon;
	uint64_t ops[OP_NUM];
};

struct epoch {
	const struct opts *o;
	unsigned no;
	uint64_t seed;      /* this epoch's seed */
	uint64_t src_seed;  /* what SRC pages hold */
	uint64_t npages, psize, cpages, nchunks, wpp;
	uint64_t src_off[2]; /* image offsets of the two ranges */
	struct pstate *ps;
	uint64_t *zmask;    /* huge pages: zeroed 4 KiB blocks, 8 words each */
	struct chunk *ch;
	char *area;         /* home of the region, then spare slots */
	char *area_raw;     /* the reservation as mapped (area is aligned) */
	size_t area_len;
	unsigned nslots;
	bool *slot_used;
	int memfd, uffd, sock;
	bool structural;    /* munmap/mmap/mremap/fork allowed now */
	bool can_register;  /* we hold the userfaultfd (daemon mode) */
	pthread_rwlock_t layout;
	pthread_mutex_t stripe[NSTRIPE];
	pthread_mutex_t kid_lock;
	pid_t kids[MAX_KIDS];
	unsigned nkids;
	volatile int stop;
	/* live mode: workers park while the migration switches over */
	volatile int pause_req;
	int parked;
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;
	struct worker w[MAX_THREADS];
};

static volatile int g_failed;
static uint64_t g_tag;
static uint64_t g_ops[OP_NUM], g_epochs, g_kids, g_mismatch;
static uint64_t g_checked; /* pages the checks between phases read */
static pthread_mutex_t g_out = PTHREAD_MUTEX_INITIALIZER;

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

static bool shared_backing(const struct epoch *e)
{
	return e->o->backing == B_MEMFD || e->o->backing == B_HUGEFS;
}

/* ---- the shadow model ---- */

static uint64_t src_offset(const struct epoch *e, uint64_t pg)
{
	uint64_t h = e->npages / 2;

	return pg < h ? e->src_off[0] + pg * e->psize
		      : e->src_off[1] + (pg - h) * e->psize;
}

static bool zblock(const struct epoch *e, uint64_t pg, uint64_t blk)
{
	return e->zmask && (e->zmask[pg * 8 + blk / 64] >> (blk % 64)) & 1;
}

/* What word @j of page @pg must hold. */
static uint64_t expect_word(const struct epoch *e, uint64_t pg, uint64_t j)
{
	const struct pstate *p = &e->ps[pg];

	if (p->kind == K_ZERO || zblock(e, pg, j * 8 / BLK))
		return 0;
	if (p->kind == K_SRC)
		return st_word(e->src_seed, src_offset(e, pg) / 8 + j);
	return st_word(WSEED ^ p->tag, pg * e->wpp + j);
}

static const char *kind_name(const struct epoch *e, uint64_t pg, uint64_t j)
{
	if (e->ps[pg].kind == K_ZERO)
		return "zeros (discarded)";
	if (zblock(e, pg, j * 8 / BLK))
		return "zeros (hole punched in part of the page)";
	return e->ps[pg].kind == K_SRC ? "the source's data" : "what the process wrote";
}

static void mismatch(const struct epoch *e, const char *who, uint64_t pg,
		     const char *p, uint64_t j, uint64_t found)
{
	pthread_mutex_lock(&g_out);
	g_mismatch++;
	fprintf(stderr,
		"rpage-torture: MISMATCH (%s) seed %" PRIu64 " epoch %u: page %" PRIu64
		" at %p, byte %" PRIu64 ": expected %016" PRIx64 " (%s), found %016" PRIx64 "\n",
		who, e->o->seed, e->no, pg, (const void *)p, j * 8,
		expect_word(e, pg, j), kind_name(e, pg, j), found);
	pthread_mutex_unlock(&g_out);
	g_failed = 1;
}

/* Checks page @pg at @p: every word of a 4 KiB page; for a huge page, three
 * words of every 4 KiB block. Returns true when it matches. */
static bool verify(const struct epoch *e, const char *who, uint64_t pg,
		   const char *p, uint64_t *rng)
{
	const volatile uint64_t *w = (const volatile uint64_t *)p;

	if (e->psize == BLK) {
		for (uint64_t j = 0; j < e->wpp; j++)
			if (w[j] != expect_word(e, pg, j)) {
				mismatch(e, who, pg, p, j, w[j]);
				return false;
			}
		return true;
	}
	for (uint64_t b = 0; b < e->psize / BLK; b++) {
		uint64_t js[3] = { b * 512, b * 512 + 511, b * 512 + below(rng, 512) };

		for (int k = 0; k < 3; k++)
			if (w[js[k]] != expect_word(e, pg, js[k])) {
				mismatch(e, who, pg, p, js[k], w[js[k]]);
				return false;
			}
	}
	return true;
}

static char *page_addr(const struct epoch *e, uint64_t pg)
{
	const struct chunk *c = &e->ch[pg / e->cpages];

	return c->addr + (pg % e->cpages) * e->psize;
}

static pthread_mutex_t *stripe_of(struct epoch *e, uint64_t pg)
{
	return &e->stripe[(pg / e->cpages) % NSTRIPE];
}

/* ---- page operations (chunk lock held) ---- */

static void write_page(struct epoch *e, uint64_t pg)
{
	uint64_t *w = (uint64_t *)page_addr(e, pg);
	uint64_t tag = __atomic_add_fetch(&g_tag, 1, __ATOMIC_RELAXED);

	for (uint64_t j = 0; j < e->wpp; j++)
		w[j] = st_word(WSEED ^ tag, pg * e->wpp + j);
	e->ps[pg] = (struct pstate){ K_WRITTEN, tag };
	if (e->zmask)
		memset(&e->zmask[pg * 8], 0, 64);
}

/* Discards @n pages from @pg (one chunk) the way such memory is discarded:
 * MADV_REMOVE punches a hole in shared memory, MADV_DONTNEED drops
 * private pages. */
static void discard(struct epoch *e, uint64_t pg, uint64_t n)
{
	const struct chunk *c = &e->ch[pg / e->cpages];
	int advice = !c->fresh && shared_backing(e) ? MADV_REMOVE : MADV_DONTNEED;

	if (madvise(page_addr(e, pg), n * e->psize, advice)) {
		fprintf(stderr, "rpage-torture: madvise: %s\n", strerror(errno));
		g_failed = 1;
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		e->ps[pg + i].kind = K_ZERO;
		if (e->zmask)
			memset(&e->zmask[(pg + i) * 8], 0, 64);
	}
}

static bool mapped(const struct epoch *e, uint64_t pg)
{
	return e->ch[pg / e->cpages].mapped;
}

static void op_read(struct worker *w, uint64_t pg)
{
	struct epoch *e = w->e;

	pthread_mutex_lock(stripe_of(e, pg));
	if (mapped(e, pg))
		verify(e, "read", pg, page_addr(e, pg), &w->rng);
	pthread_mutex_unlock(stripe_of(e, pg));
}

static void op_write(struct worker *w, uint64_t pg)
{
	struct epoch *e = w->e;

	pthread_mutex_lock(stripe_of(e, pg));
	if (mapped(e, pg))
		write_page(e, pg);
	pthread_mutex_unlock(stripe_of(e, pg));
}

static void op_discard(struct worker *w, uint64_t pg)
{
	struct epoch *e = w->e;
	uint64_t n = 1 + below(&w->rng, e->psize == BLK ? 8 : 2);

	n = min_u64(n, e->cpages - pg % e->cpages);
	pthread_mutex_lock(stripe_of(e, pg));
	if (mapped(e, pg))
		discard(e, pg, n);
	pthread_mutex_unlock(stripe_of(e, pg));
}

/* Part of a huge page of hugetlbfs: MADV_REMOVE of some 4 KiB blocks. */
static void op_punch(struct worker *w, uint64_t pg)
{
	struct epoch *e = w->e;
	uint64_t nb = e->psize / BLK, b0 = below(&w->rng, nb);
	uint64_t b1 = min_u64(nb, b0 + 1 + below(&w->rng, 64)); /* in the page */

	pthread_mutex_lock(stripe_of(e, pg));
	if (mapped(e, pg) && !e->ch[pg / e->cpages].fresh) {
		if (madvise(page_addr(e, pg) + b0 * BLK, (b1 - b0) * BLK,
			    MADV_REMOVE)) {
			fprintf(stderr, "rpage-torture: MADV_REMOVE: %s\n", strerror(errno));
			g_failed = 1;
		} else if (e->ps[pg].kind != K_ZERO) {
			for (uint64_t b = b0; b < b1; b++)
				e->zmask[pg * 8 + b / 64] |= 1ull << (b % 64);
		}
	}
	pthread_mutex_unlock(stripe_of(e, pg));
}

/* A fault racing a discard of the same page: the buddy discards while this
 * thread reads. The read may see either; afterwards the page is zeros. */
static void op_race(struct worker *w, uint64_t pg)
{
	struct epoch *e = w->e;
	uint64_t before, got;
	char *p;

	pthread_mutex_lock(stripe_of(e, pg));
	if (!mapped(e, pg)) {
		pthread_mutex_unlock(stripe_of(e, pg));
		return;
	}
	p = page_addr(e, pg);
	before = expect_word(e, pg, 0);
	w->race_pg = pg;
	pthread_barrier_wait(&w->race_go);
	got = *(volatile uint64_t *)p;
	pthread_barrier_wait(&w->race_done);
	if (got != before && got != 0) {
		pthread_mutex_lock(&g_out);
		fprintf(stderr, "rpage-torture: MISMATCH (race) seed %" PRIu64 " epoch %u: page %" PRIu64
			": a read racing a discard found %016" PRIx64 ", neither the old %016" PRIx64 " nor zero\n",
			e->o->seed, e->no, pg, got, before);
		g_mismatch++;
		pthread_mutex_unlock(&g_out);
		g_failed = 1;
	}
	verify(e, "after race", pg, p, &w->rng);
	pthread_mutex_unlock(stripe_of(e, pg));
}

static void *buddy_main(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		pthread_barrier_wait(&w->race_go);
		if (w->race_quit)
			return NULL;
		discard(w->e, w->race_pg, 1);
		pthread_barrier_wait(&w->race_done);
	}
}

/* Balloon: inflate returns scattered pages (discard), deflate takes them
 * back and uses them (write). */
static void op_balloon(struct worker *w)
{
	struct epoch *e = w->e;

	if (w->nballoon) {
		for (unsigned i = 0; i < w->nballoon; i++)
			op_write(w, w->balloon[i]);
		w->nballoon = 0;
		return;
	}
	w->nballoon = 4 + (unsigned)below(&w->rng, 12);
	for (unsigned i = 0; i < w->nballoon; i++) {
		uint64_t pg = below(&w->rng, e->npages);

		w->balloon[i] = pg;
		pthread_mutex_lock(stripe_of(e, pg));
		if (mapped(e, pg))
			discard(e, pg, 1);
		pthread_mutex_unlock(stripe_of(e, pg));
	}
}

/* ---- layout operations (layout lock held exclusively) ---- */

static int reserve(char *addr, size_t len)
{
	return mmap(addr, len, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		    -1, 0) == addr ? 0 : -errno;
}

static size_t chunk_len(const struct epoch *e)
{
	return e->cpages * e->psize;
}

static void op_unmap(struct worker *w)
{
	struct epoch *e = w->e;
	uint64_t c = below(&w->rng, e->nchunks);
	struct chunk *ch = &e->ch[c];

	if (!ch->mapped)
		return;
	/* replaced, not unmapped then reserved: another thread (the fault
	 * handler, in live mode) could be given the hole in between */
	if (reserve(ch->addr, chunk_len(e))) {
		fprintf(stderr, "rpage-torture: unmapping a chunk: %s\n", strerror(errno));
		g_failed = 1;
		return;
	}
	ch->mapped = false;
	for (uint64_t i = 0; i < e->cpages; i++)
		e->ps[c * e->cpages + i].kind = K_UNMAPPED;
}

/* Fresh private memory where a chunk was unmapped: it reads zeros, whether
 * or not it is registered with the userfaultfd (a fault there is outside
 * every range the handler was given). */
static void op_mapnew(struct worker *w)
{
	struct epoch *e = w->e;
	uint64_t c = below(&w->rng, e->nchunks);
	struct chunk *ch = &e->ch[c];
	int fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

	if (ch->mapped)
		return;
	if (e->psize != BLK)
		fl |= MAP_HUGETLB | MAP_HUGE_2MB;
	if (mmap(ch->addr, chunk_len(e), PROT_READ | PROT_WRITE, fl, -1, 0) != ch->addr) {
		fprintf(stderr, "rpage-torture: mmap: %s\n", strerror(errno));
		g_failed = 1;
		return;
	}
	if (e->can_register && below(&w->rng, 2))
		st_uffd_register(e->uffd, ch->addr, chunk_len(e));
	ch->mapped = true;
	ch->fresh = true;
	for (uint64_t i = 0; i < e->cpages; i++) {
		e->ps[c * e->cpages + i].kind = K_ZERO;
		if (e->zmask)
			memset(&e->zmask[(c * e->cpages + i) * 8], 0, 64);
	}
}

/* Moves a chunk to a free spare slot (its contents go with it). Private
 * anonymous memory moves with MREMAP_DONTUNMAP, which leaves the old place
 * mapped and empty: it must read zeros, and it is then replaced by a
 * reservation (never a hole another thread could be given). Other memory
 * moves plainly and the hole is reserved again at once. */
static void op_remap(struct worker *w)
{
	struct epoch *e = w->e;
	uint64_t c = below(&w->rng, e->nchunks);
	struct chunk *ch = &e->ch[c];
	size_t len = chunk_len(e);
	unsigned s = (unsigned)below(&w->rng, e->nslots);
	char *to = e->area + (e->nchunks + s) * len, *from = ch->addr;
	bool dontunmap = e->psize == BLK && (ch->fresh || e->o->backing == B_ANON);
	int fl = MREMAP_MAYMOVE | MREMAP_FIXED | (dontunmap ? MREMAP_DONTUNMAP : 0);

	if (!ch->mapped || e->slot_used[s])
		return;
	if (mremap(from, len, len, fl, to) != to) {
		fprintf(stderr, "rpage-torture: mremap: %s\n", strerror(errno));
		g_failed = 1;
		return;
	}
	if (dontunmap && *(volatile uint64_t *)from != 0) {
		fprintf(stderr, "rpage-torture: MISMATCH (mremap) seed %" PRIu64 " epoch %u: the old place of a chunk moved with MREMAP_DONTUNMAP does not read zeros\n",
			e->o->seed, e->no);
		g_failed = 1;
		g_mismatch++;
	}
	if (reserve(from, len)) {
		fprintf(stderr, "rpage-torture: reserving: %s\n", strerror(errno));
		g_failed = 1;
	}
	if (ch->slot >= 0)
		e->slot_used[ch->slot] = false;
	e->slot_used[s] = true;
	ch->slot = (int)s;
	ch->addr = to;
}

/* A child that reads: its memory is the parent's at the fork, and pages not
 * yet arrived are served through its own userfaultfd. */
static void op_fork(struct worker *w)
{
	struct epoch *e = w->e;
	pid_t p;

	pthread_mutex_lock(&e->kid_lock);
	if (e->nkids == MAX_KIDS) {
		pthread_mutex_unlock(&e->kid_lock);
		return;
	}
	p = fork();
	if (p > 0 && shared_backing(e)) {
		/* the child shares that memory with us: it checks while the
		 * workload is held still (we hold the layout lock) */
		int st = 0;

		if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "rpage-torture: a forked child (seed %" PRIu64 " epoch %u) failed: status 0x%x\n",
				e->o->seed, e->no, st);
			g_failed = 1;
		}
		__atomic_add_fetch(&g_kids, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&e->kid_lock);
		return;
	}
	if (p == 0) {
		uint64_t rng = w->rng ^ 0xc41d;

		for (int i = 0; i < 32; i++) {
			uint64_t pg = below(&rng, e->npages);

			if (mapped(e, pg) && !verify(e, "fork child", pg, page_addr(e, pg), &rng))
				_exit(1);
		}
		_exit(0);
	}
	if (p > 0) {
		e->kids[e->nkids++] = p;
		__atomic_add_fetch(&g_kids, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&e->kid_lock);
}

/* Collects children that have exited; @all waits for every one. */
static void reap(struct epoch *e, bool all)
{
	pthread_mutex_lock(&e->kid_lock);
	for (unsigned i = 0; i < e->nkids;) {
		int st = 0;
		pid_t r = waitpid(e->kids[i], &st, all ? 0 : WNOHANG);

		if (r == 0) {
			i++;
			continue;
		}
		if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "rpage-torture: a forked child (seed %" PRIu64 " epoch %u) failed: status 0x%x\n",
				e->o->seed, e->no, st);
			g_failed = 1;
		}
		e->kids[i] = e->kids[--e->nkids];
	}
	pthread_mutex_unlock(&e->kid_lock);
}

/* ---- workers ---- */

static enum op pick(struct worker *w)
{
	const struct epoch *e = w->e;
	unsigned wt[OP_NUM] = { 40, 18, 12, 6, 3, 0, 0, 0, 0, 0 };
	unsigned sum = 0, r;

	if (e->o->backing == B_HUGEFS)
		wt[OP_PUNCH] = 5;
	if (e->structural) {
		wt[OP_UNMAP] = 2;
		wt[OP_MAPNEW] = 3;
		/* mremap of part of a private hugetlb mapping leaks huge page
		 * reservations in the kernel (HugePages_Rsvd grows for good,
		 * with or without userfaultfd): not with 2 MiB private pages */
		wt[OP_REMAP] = e->o->backing == B_HUGE ? 0 : 3;
		wt[OP_FORK] = 1;
	}
	if (e->psize != BLK) /* 2 MiB writes and checks are heavy */
		wt[OP_WRITE] = 6;
	for (int i = 0; i < OP_NUM; i++) {
		if (e->o->ops_mask && !(e->o->ops_mask & (1u << i)))
			wt[i] = 0;
		sum += wt[i];
	}
	if (!sum)
		return OP_READ;
	r = (unsigned)below(&w->rng, sum);
	for (int i = 0; i < OP_NUM; i++) {
		if (r < wt[i])
			return (enum op)i;
		r -= wt[i];
	}
	return OP_READ;
}

static void park(struct epoch *e)
{
	pthread_mutex_lock(&e->park_lock);
	e->parked++;
	pthread_cond_broadcast(&e->park_cond);
	while (e->pause_req && !e->stop)
		pthread_cond_wait(&e->park_cond, &e->park_lock);
	e->parked--;
	pthread_mutex_unlock(&e->park_lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoch *e = w->e;

	while (!e->stop && !g_failed) {
		enum op op = pick(w);
		uint64_t pg = below(&w->rng, e->npages);
		bool layout = op >= OP_UNMAP;

		if (e->pause_req)
			park(e);
		if (layout)
			pthread_rwlock_wrlock(&e->layout);
		else
			pthread_rwlock_rdlock(&e->layout);
		switch (op) {
		case OP_READ: op_read(w, pg); break;
		case OP_WRITE: op_write(w, pg); break;
		case OP_DISCARD: op_discard(w, pg); break;
		case OP_RACE: op_race(w, pg); break;
		case OP_BALLOON: op_balloon(w); break;
		case OP_PUNCH: op_punch(w, pg); break;
		case OP_UNMAP: op_unmap(w); break;
		case OP_MAPNEW: op_mapnew(w); break;
		case OP_REMAP: op_remap(w); break;
		case OP_FORK: op_fork(w); break;
		case OP_NUM: break;
		}
		pthread_rwlock_unlock(&e->layout);
		__atomic_add_fetch(&w->ops[op], 1, __ATOMIC_RELAXED);
	}
	/* count as parked for good: a pause must not wait for us */
	pthread_mutex_lock(&e->park_lock);
	e->parked++;
	pthread_cond_broadcast(&e->park_cond);
	pthread_mutex_unlock(&e->park_lock);
	return NULL;
}

static int start_workers(struct epoch *e)
{
	for (unsigned i = 0; i < e->o->threads; i++) {
		struct worker *w = &e->w[i];

		w->e = e;
		w->id = i;
		w->rng = e->seed * 131 + i;
		pthread_barrier_init(&w->race_go, NULL, 2);
		pthread_barrier_init(&w->race_done, NULL, 2);
		if (pthread_create(&w->buddy_thr, NULL, buddy_main, w) ||
		    pthread_create(&w->thr, NULL, worker_main, w))
			return -1;
	}
	return 0;
}

static void stop_workers(struct epoch *e)
{
	e->stop = 1;
	pthread_mutex_lock(&e->park_lock);
	pthread_cond_broadcast(&e->park_cond);
	pthread_mutex_unlock(&e->park_lock);
	for (unsigned i = 0; i < e->o->threads; i++) {
		struct worker *w = &e->w[i];

		pthread_join(w->thr, NULL);
		w->race_quit = true;
		pthread_barrier_wait(&w->race_go);
		pthread_join(w->buddy_thr, NULL);
		pthread_barrier_destroy(&w->race_go);
		pthread_barrier_destroy(&w->race_done);
		for (int k = 0; k < OP_NUM; k++)
			g_ops[k] += w->ops[k];
	}
}

/* Every mapped page, once, against the model (workers stopped). */
static void verify_all(struct epoch *e, const char *who)
{
	uint64_t rng = e->seed;

	for (uint64_t pg = 0; pg < e->npages && !g_failed; pg++)
		if (mapped(e, pg)) {
			verify(e, who, pg, page_addr(e, pg), &rng);
			/* progress for the watchdog: without the fill, a
			 * slow host takes minutes to fault a large region
			 * in, page by page */
			__atomic_add_fetch(&g_checked, 1, __ATOMIC_RELAXED);
		}
}

/* ---- epochs ---- */

static int epoch_init(struct epoch *e, const struct opts *o, unsigned no,
		      uint64_t npages)
{
	memset(e, 0, sizeof(*e));
	e->o = o;
	e->no = no;
	e->seed = o->seed * 1000003ull + no;
	e->psize = o->backing == B_HUGE || o->backing == B_HUGEFS ? 2ull << 20 : BLK;
	e->wpp = e->psize / 8;
	e->cpages = e->psize == BLK ? 16 : 1;
	e->npages = npages - npages % (2 * e->cpages);
	e->nchunks = e->npages / e->cpages;
	e->nslots = (unsigned)min_u64(e->nchunks, 64);
	e->ps = calloc(e->npages, sizeof(*e->ps));
	e->ch = calloc(e->nchunks, sizeof(*e->ch));
	e->slot_used = calloc(e->nslots, 1);
	if (e->psize != BLK)
		e->zmask = calloc(e->npages * 8, 8);
	e->memfd = e->uffd = e->sock = -1;
	pthread_rwlock_init(&e->layout, NULL);
	for (int i = 0; i < NSTRIPE; i++)
		pthread_mutex_init(&e->stripe[i], NULL);
	pthread_mutex_init(&e->kid_lock, NULL);
	pthread_mutex_init(&e->park_lock, NULL);
	pthread_cond_init(&e->park_cond, NULL);
	if (!e->ps || !e->ch || !e->slot_used || (e->psize != BLK && !e->zmask))
		return -ENOMEM;
	/* the region's home, then as many chunks again of spare slots */
	e->area_len = (e->nchunks + e->nslots) * chunk_len(e) + e->psize;
	e->area_raw = mmap(NULL, e->area_len, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (e->area_raw == MAP_FAILED) {
		e->area_raw = NULL;
		return -errno;
	}
	/* align to the page size */
	e->area = (char *)(((uintptr_t)e->area_raw + e->psize - 1) &
			   ~(uintptr_t)(e->psize - 1));
	for (uint64_t c = 0; c < e->nchunks; c++)
		e->ch[c] = (struct chunk){ e->area + c * chunk_len(e), true, false, -1 };
	return 0;
}

static void epoch_free(struct epoch *e)
{
	if (e->area_raw)
		munmap(e->area_raw, e->area_len);
	if (e->memfd >= 0)
		close(e->memfd);
	if (e->uffd >= 0)
		close(e->uffd);
	if (e->sock >= 0)
		close(e->sock);
	free(e->ps);
	free(e->ch);
	free(e->slot_used);
	free(e->zmask);
}

/* Maps the region at its home, with the backing asked for. */
static int map_region(struct epoch *e)
{
	size_t len = e->npages * e->psize;
	int fl = MAP_FIXED, prot = PROT_READ | PROT_WRITE;
	void *p;

	switch (e->o->backing) {
	case B_ANON:
		p = mmap(e->area, len, prot, fl | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		break;
	case B_HUGE:
		p = mmap(e->area, len, prot,
			 fl | MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
		break;
	default:
		e->memfd = memfd_create("rpage-torture", MFD_CLOEXEC |
				(e->o->backing == B_HUGEFS ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
		if (e->memfd < 0 || ftruncate(e->memfd, (off_t)len))
			return -errno;
		p = mmap(e->area, len, prot, fl | MAP_SHARED, e->memfd, 0);
		break;
	}
	return p == e->area ? 0 : -errno;
}

static int run_daemon_epoch(struct epoch *e)
{
	const struct opts *o = e->o;
	uint64_t img_pages = o->img_size / e->psize, h = e->npages / 2, win;
	struct st_range r[2];
	double until;
	int ret;

	/* two ranges, swapped halves of a window of the image */
	win = below(&e->seed, img_pages - e->npages + 1);
	e->src_off[0] = (win + h) * e->psize;
	e->src_off[1] = win * e->psize;
	e->src_seed = o->img_seed;
	ret = map_region(e);
	if (ret)
		return ret;
	e->uffd = st_uffd_open(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP |
			       UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_FORK);
	if (e->uffd < 0)
		return e->uffd;
	ret = st_uffd_register(e->uffd, e->area, e->npages * e->psize);
	if (ret)
		return ret;
	for (int i = 0; i < 2; i++)
		r[i] = (struct st_range){ (uint64_t)(uintptr_t)e->area + (uint64_t)i * h * e->psize,
					  h * e->psize, e->src_off[i], e->psize };
	e->sock = st_connect(o->sock);
	if (e->sock < 0)
		return e->sock;
	ret = st_handshake(e->sock, r, 2, e->uffd);
	if (ret)
		return ret;
	e->can_register = true;
	e->structural = true;
	if (start_workers(e))
		return -EAGAIN;
	until = st_now() + o->epoch_s * (0.5 + (double)below(&e->seed, 100) / 100.0);
	while (st_now() < until && !g_failed) {
		usleep(20000);
		reap(e, false);
	}
	stop_workers(e);
	reap(e, true);
	if (!g_failed)
		verify_all(e, "final check");
	return 0;
}

/* ---- live mode ---- */

struct live_ctx {
	struct epoch *e;
	struct rpage_live_source *s;
	struct rpage_live_dest *d;
	char *src, *dst;
	int sret, dret;
	volatile int switched;
};

static int live_pause(void *arg)
{
	struct epoch *e = arg;

	pthread_mutex_lock(&e->park_lock);
	e->pause_req = 1;
	while (e->parked < (int)e->o->threads && !e->stop)
		pthread_cond_wait(&e->park_cond, &e->park_lock);
	pthread_mutex_unlock(&e->park_lock);
	return 0;
}

static int live_resume(void *arg)
{
	struct epoch *e = arg;

	pthread_mutex_lock(&e->park_lock);
	e->pause_req = 0;
	pthread_cond_broadcast(&e->park_cond);
	pthread_mutex_unlock(&e->park_lock);
	return 0;
}

static void *live_src_main(void *arg)
{
	struct live_ctx *l = arg;
	char port[16];

	snprintf(port, sizeof(port), "%d", rpage_live_dest_port(l->d));
	l->sret = rpage_live_source_migrate(l->s, "127.0.0.1", port);
	return NULL;
}

static int run_live_epoch(struct epoch *e)
{
	const struct opts *o = e->o;
	size_t len = e->npages * e->psize;
	struct rpage_live_opts lo = {
		.mode = o->any_live_mode ? (enum rpage_live_mode)below(&e->seed, 3) : o->live_mode,
		.streams = 1 + (unsigned)below(&e->seed, 4),
		.max_downtime_ms = 5 + (uint32_t)below(&e->seed, 50),
		.max_rounds = 2 + (unsigned)below(&e->seed, 6),
		.force_sync_wp = o->sync_wp,
		.pause = live_pause, .resume = live_resume, .arg = e,
		.postcopy_transport = RPAGE_TRANSPORT_TCP,
	};
	struct rpage_attach_opts ao = { .no_fill = below(&e->seed, 4) == 0 };
	struct live_ctx l = { .e = e };
	pthread_t st;
	double until;
	int ret;

	if (lo.mode == RPAGE_LIVE_PRECOPY)
		lo.mode = RPAGE_LIVE_HYBRID; /* pre-copy alone may refuse to end */
	e->src_off[0] = 0;
	e->src_off[1] = e->npages / 2 * e->psize;
	e->src_seed = e->seed;
	l.src = st_map_anon(len, BLK);
	l.dst = e->area;
	if (!l.src || mmap(e->area, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != e->area)
		return -ENOMEM;
	st_fill(l.src, 0, len, e->src_seed);
	/* the workload runs at the source first: chunks point there */
	for (uint64_t c = 0; c < e->nchunks; c++)
		e->ch[c].addr = l.src + c * chunk_len(e);
	ret = rpage_live_source_new(l.src, len, (uint32_t)e->psize, &lo, &l.s);
	if (!ret)
		ret = rpage_live_dest_new(l.dst, len, (uint32_t)e->psize, &ao, &l.d);
	if (!ret)
		ret = rpage_live_dest_set_transport(l.d, RPAGE_TRANSPORT_TCP);
	if (!ret)
		ret = rpage_live_dest_listen(l.d, "127.0.0.1", "0");
	if (ret)
		return ret;
	if (start_workers(e) || pthread_create(&st, NULL, live_src_main, &l))
		return -EAGAIN;
	ret = rpage_live_dest_run(l.d);
	if (ret) {
		/* the source gave up (pre-copy refused, or it resumed here):
		 * the workload goes on at the source; end the epoch there */
		pthread_join(st, NULL);
		live_resume(e);
		stop_workers(e);
		verify_all(e, "final check (source)");
		rpage_live_dest_free(l.d);
		rpage_live_source_free(l.s);
		munmap(l.src, len);
		return 0;
	}
	/* switched: the paused workload goes on at the destination */
	for (uint64_t c = 0; c < e->nchunks; c++)
		e->ch[c].addr = e->area + c * chunk_len(e);
	e->structural = true;
	live_resume(e);
	until = st_now() + o->epoch_s * (0.5 + (double)below(&e->seed, 100) / 100.0);
	while (st_now() < until && !g_failed) {
		usleep(20000);
		reap(e, false);
	}
	stop_workers(e);
	reap(e, true);
	/* every page once (without the fill, this is what completes it) */
	verify_all(e, "check before completion");
	ret = g_failed ? 0 : rpage_live_dest_wait(l.d, 120000);
	pthread_join(st, NULL);
	if (ret || l.sret) {
		fprintf(stderr, "rpage-torture: live migration (seed %" PRIu64 " epoch %u) did not complete: destination %s, source %s\n",
			o->seed, e->no, strerror(-ret), strerror(-l.sret));
		g_failed = 1;
	}
	if (!g_failed)
		verify_all(e, "final check");
	rpage_live_dest_free(l.d);
	rpage_live_source_free(l.s);
	munmap(l.src, len);
	return 0;
}

/* ---- main ---- */

static struct epoch *volatile g_cur;

/* Where each thread waits, from the kernel's view (a debugger cannot stop
 * a thread that waits in the kernel for an event to be read). */
static void dump_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char path[300], comm[64] = "", wchan[128] = "", kstack[2048] = "";
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		if ((f = fopen(path, "r"))) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		comm[strcspn(comm, "\n")] = 0;
		snprintf(path, sizeof(path), "/proc/self/task/%s/wchan", de->d_name);
		if ((f = fopen(path, "r"))) {
			if (!fgets(wchan, sizeof(wchan), f))
				wchan[0] = 0;
			fclose(f);
		}
		snprintf(path, sizeof(path), "/proc/self/task/%s/stack", de->d_name);
		if ((f = fopen(path, "r"))) {
			size_t n = fread(kstack, 1, sizeof(kstack) - 1, f);

			kstack[n] = 0;
			fclose(f);
		}
		fprintf(stderr, "  thread %s %s: %s\n%s", de->d_name, comm, wchan, kstack);
	}
	if (d)
		closedir(d);
}

/* A fault that is never served shows as no operation finishing. */
static void *watchdog_main(void *arg)
{
	const struct opts *o = arg;
	uint64_t last = UINT64_MAX;
	double since = st_now();

	for (;;) {
		struct epoch *e = g_cur;
		uint64_t n = g_epochs * 1000003ull +
			     __atomic_load_n(&g_checked, __ATOMIC_RELAXED);

		sleep(1);
		for (unsigned i = 0; e && i < o->threads; i++)
			for (int k = 0; k < OP_NUM; k++)
				n += __atomic_load_n(&e->w[i].ops[k], __ATOMIC_RELAXED);
		if (n != last) {
			last = n;
			since = st_now();
		} else if (st_now() - since > STALL_S) {
			fprintf(stderr, "rpage-torture: FAIL: no operation finished for %d s (seed %" PRIu64 " epoch %" PRIu64 "): a fault is never served\n",
				STALL_S, o->seed, g_epochs);
			dump_threads();
			_exit(1);
		}
	}
	return NULL;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	}
	return *end ? 0 : v;
}

static double parse_duration(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (*end == 'm')
		v *= 60;
	else if (*end == 'h')
		v *= 3600;
	else if (*end && strcmp(end, "s"))
		return -1;
	return v;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-torture mkimage PATH SIZE SEED\n"
		"       rpage-torture --socket PATH --image-seed N --image-size BYTES [options]\n"
		"       rpage-torture --live [--tracker async|sync] [options]\n"
		"  --backing anon|memfd|huge|hugefs   the memory (huge: 2 MiB pages)\n"
		"  --seed N           the run's seed (default: from the clock; printed)\n"
		"  --duration T       how long (60, 90s, 10m, 1h; default 60 s)\n"
		"  --epoch T          about how long each epoch runs (default 2 s)\n"
		"  --threads N        workers (default 4)\n"
		"  --live-mode M      hybrid, postcopy or any (default any)\n"
		"  --report FILE      append a JSON summary line\n"
		"  --ops LIST         only these operations (read,write,discard,race,balloon,\n"
		"                     punch-part,munmap,mmap-new,mremap,fork)\n");
}

static void report(const struct opts *o, double secs)
{
	uint64_t total = 0;
	FILE *f;

	for (int i = 0; i < OP_NUM; i++)
		total += g_ops[i];
	printf("rpage-torture: seed %" PRIu64 ": %" PRIu64 " epochs, %" PRIu64 " operations in %.0f s, %" PRIu64 " forked children, %" PRIu64 " mismatches\n",
	       o->seed, g_epochs, total, secs, g_kids, g_mismatch);
	for (int i = 0; i < OP_NUM; i++)
		if (g_ops[i])
			printf("  %-10s %" PRIu64 "\n", op_name[i], g_ops[i]);
	if (!o->report || !(f = fopen(o->report, "a")))
		return;
	fprintf(f, "{\"seed\":%" PRIu64 ",\"seconds\":%.0f,\"epochs\":%" PRIu64 ",\"operations\":%" PRIu64
		   ",\"children\":%" PRIu64 ",\"mismatches\":%" PRIu64,
		o->seed, secs, g_epochs, total, g_kids, g_mismatch);
	for (int i = 0; i < OP_NUM; i++)
		fprintf(f, ",\"%s\":%" PRIu64, op_name[i], g_ops[i]);
	fprintf(f, "}\n");
	fclose(f);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "image-seed", required_argument, NULL, 'I' },
		{ "image-size", required_argument, NULL, 'Z' },
		{ "backing", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 'S' },
		{ "duration", required_argument, NULL, 'd' },
		{ "epoch", required_argument, NULL, 'e' },
		{ "threads", required_argument, NULL, 't' },
		{ "live", no_argument, NULL, 'L' },
		{ "tracker", required_argument, NULL, 'T' },
		{ "live-mode", required_argument, NULL, 'M' },
		{ "report", required_argument, NULL, 'R' },
		{ "ops", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .duration = 60, .epoch_s = 2, .threads = 4,
			  .any_live_mode = true, .seed = (uint64_t)time(NULL) };
	double t0;
	int c;

	if (argc == 5 && !strcmp(argv[1], "mkimage")) {
		int r = st_make_image(argv[2], parse_size(argv[3]),
				      strtoull(argv[4], NULL, 0));

		if (r)
			fprintf(stderr, "rpage-torture: %s: %s\n", argv[2], strerror(-r));
		return r ? 2 : 0;
	}
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 's': o.sock = optarg; break;
		case 'I': o.img_seed = strtoull(optarg, NULL, 0); break;
		case 'Z': o.img_size = parse_size(optarg); break;
		case 'S': o.seed = strtoull(optarg, NULL, 0); break;
		case 'd': o.duration = parse_duration(optarg); break;
		case 'e': o.epoch_s = parse_duration(optarg); break;
		case 't': o.threads = (unsigned)atoi(optarg); break;
		case 'L': o.live = true; break;
		case 'R': o.report = optarg; break;
		case 'O':
			for (char *t = strtok(optarg, ","); t; t = strtok(NULL, ",")) {
				int i;

				for (i = 0; i < OP_NUM && strcmp(t, op_name[i]); i++)
					;
				if (i == OP_NUM) {
					fprintf(stderr, "rpage-torture: no operation '%s'\n", t);
					return 2;
				}
				o.ops_mask |= 1u << i;
			}
			break;
		case 'T':
			if (strcmp(optarg, "async") && strcmp(optarg, "sync")) {
				usage(stderr);
				return 2;
			}
			o.sync_wp = !strcmp(optarg, "sync");
			break;
		case 'M':
			o.any_live_mode = !strcmp(optarg, "any");
			if (!o.any_live_mode) {
				int m = rpage_live_mode_parse(optarg);

				if (m < 0) {
					usage(stderr);
					return 2;
				}
				o.live_mode = (enum rpage_live_mode)m;
			}
			break;
		case 'b':
			if (!strcmp(optarg, "anon"))
				o.backing = B_ANON;
			else if (!strcmp(optarg, "memfd"))
				o.backing = B_MEMFD;
			else if (!strcmp(optarg, "huge"))
				o.backing = B_HUGE;
			else if (!strcmp(optarg, "hugefs"))
				o.backing = B_HUGEFS;
			else {
				usage(stderr);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || o.duration <= 0 || o.epoch_s <= 0 ||
	    !o.threads || o.threads > MAX_THREADS ||
	    (!o.live && (!o.sock || !o.img_size)) ||
	    (o.live && o.backing != B_ANON)) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!getenv("RPAGE_LOG"))
		rpage_set_log_level(RPAGE_LOG_ERR);
	printf("rpage-torture: seed %" PRIu64 ", %s, %u threads, %.0f s\n", o.seed,
	       o.live ? (o.sync_wp ? "live migration, synchronous write-protect tracking"
				   : "live migration, default dirty tracking")
		      : "handed to rpage-client",
	       o.threads, o.duration);
	fflush(stdout);
	t0 = st_now();
	{
		pthread_t wd;

		if (pthread_create(&wd, NULL, watchdog_main, &o) == 0)
			pthread_detach(wd);
	}
	while (st_now() - t0 < o.duration && !g_failed) {
		static struct epoch e;
		uint64_t rng = o.seed * 7919 + g_epochs, pages;
		uint64_t psize = o.backing == B_HUGE || o.backing == B_HUGEFS ? 2ull << 20 : BLK;
		uint64_t maxp = o.live ? (64ull << 20) / psize : o.img_size / psize;
		int ret;

		/* sizes vary from epoch to epoch: 4-64 MiB, 8-32 huge pages */
		pages = psize == BLK ? (1024 + below(&rng, 15 * 1024)) : 8 + below(&rng, 25);
		pages = min_u64(pages, maxp);
		g_cur = NULL;
		ret = epoch_init(&e, &o, (unsigned)g_epochs, pages);
		g_cur = &e;
		if (!ret)
			ret = o.live ? run_live_epoch(&e) : run_daemon_epoch(&e);
		epoch_free(&e);
		if (ret) {
			fprintf(stderr, "rpage-torture: epoch %" PRIu64 " could not run: %s\n",
				g_epochs, strerror(-ret));
			return 2;
		}
		g_epochs++;
	}
	report(&o, st_now() - t0);
	return g_failed ? 1 : 0;
}
