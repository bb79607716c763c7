/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench migrate`: the deterministic writer workload (migrate.h).
 * Threads: the writers ("wl_main"), started by wl_start in whichever
 * process holds the workload; wl_pause/wl_resume run on the migration's
 * thread. The memory is the workload's; the step counters in its last
 * page are each written by their own thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../common/pattern.h"
#include "../common/rp.h"
#include "migrate.h"
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t *wl_ctr(const struct wl *w, unsigned t)
{
	return (uint64_t *)(w->mem + w->ndata * PSIZE) + (uint64_t)t * 8;
}

static uint64_t wl_page(const struct wl *w, unsigned t, uint64_t i)
{
	uint64_t np = (w->ndata - t + w->threads - 1) / w->threads, k, h;

	switch (w->kind) {
	case WL_SEQ:
		k = i % np;
		break;
	case WL_HOT:
		h = mix64(i ^ ((uint64_t)t << 48) ^ 0x51ed);
		k = (h & 0xff) < 230 ? (h >> 8) % RP_MAX(1, np / 10)
				     : (h >> 8) % np;
		break;
	default:
		k = mix64(i ^ ((uint64_t)t << 48)) % np;
		break;
	}
	return t + k * w->threads;
}

static void wl_step(char *mem, uint64_t page, uint64_t i)
{
	uint64_t *p = (uint64_t *)(mem + page * PSIZE);
	uint64_t acc = p[0] * 31 + i + 1;

	p[0] = acc;
	for (unsigned k = 1; k < PSIZE / 8; k++)
		p[k] = acc ^ (k * 0x9e3779b97f4a7c15ull);
}


struct wl_thr {
	struct wl *w;
	unsigned t;
};

static void *wl_main(void *arg)
{
	struct wl_thr *a = arg;
	struct wl *w = a->w;
	unsigned t = a->t;
	uint64_t *ctr = wl_ctr(w, t);
	uint64_t i0 = __atomic_load_n(ctr, __ATOMIC_ACQUIRE), t0 = rp_now_ns();

	free(a);
	for (;;) {
		uint64_t i = __atomic_load_n(ctr, __ATOMIC_RELAXED);

		if (__atomic_load_n(&w->pause_req, __ATOMIC_ACQUIRE)) {
			/* stopped at a step boundary; the workload now lives
			 * on the destination, unless a failed switchover
			 * resumes it here */
			pthread_mutex_lock(&w->plock);
			w->paused++;
			pthread_cond_broadcast(&w->pcond);
			while (w->pause_req)
				pthread_cond_wait(&w->pcond, &w->plock);
			w->paused--;
			pthread_mutex_unlock(&w->plock);
			t0 = rp_now_ns();
			i0 = __atomic_load_n(ctr, __ATOMIC_RELAXED);
			continue;
		}
		if (i >= w->steps)
			break;
		if (w->ns_per_step > 0) {
			uint64_t due = t0 + (uint64_t)((double)(i - i0) * w->ns_per_step);
			uint64_t now = rp_now_ns();

			if (due > now + 200000)
				sleep_ns(due - now);
		}
		wl_step(w->mem, wl_page(w, t, i), i);
		__atomic_store_n(ctr, i + 1, __ATOMIC_RELEASE);
		__atomic_fetch_add(&w->done_steps, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_lock(&w->plock);
	w->finished++;
	pthread_cond_broadcast(&w->pcond);
	pthread_mutex_unlock(&w->plock);
	return NULL;
}

int wl_start(struct wl *w)
{
	for (unsigned t = 0; t < w->threads; t++) {
		struct wl_thr *a = malloc(sizeof(*a));
		int ret;

		if (!a)
			return -ENOMEM;
		a->w = w;
		a->t = t;
		ret = pthread_create(&w->thr[t], NULL, wl_main, a);
		if (ret)
			return -ret;
	}
	return 0;
}

int wl_pause(void *arg)
{
	struct wl *w = arg;

	pthread_mutex_lock(&w->plock);
	__atomic_store_n(&w->pause_req, true, __ATOMIC_RELEASE);
	while (w->paused + w->finished < w->threads)
		pthread_cond_wait(&w->pcond, &w->plock);
	pthread_mutex_unlock(&w->plock);
	return 0;
}

int wl_resume(void *arg)
{
	struct wl *w = arg;

	pthread_mutex_lock(&w->plock);
	__atomic_store_n(&w->pause_req, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&w->pcond);
	pthread_mutex_unlock(&w->plock);
	return 0;
}

void wl_init_image(char *mem, uint64_t size)
{
	rp_pattern_fill(mem, 0, size, SEED);
	memset(mem + size - PSIZE, 0, PSIZE); /* the step counters */
}

int wl_reference(const struct wl *w, char **out)
{
	uint64_t size = w->npages * PSIZE;
	char *ref = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct wl r = *w;

	if (ref == MAP_FAILED)
		return -ENOMEM;
	wl_init_image(ref, size);
	r.mem = ref;
	for (unsigned t = 0; t < w->threads; t++) {
		for (uint64_t i = 0; i < w->steps; i++)
			wl_step(ref, wl_page(&r, t, i), i);
		*wl_ctr(&r, t) = w->steps;
	}
	*out = ref;
	return 0;
}

uint64_t wl_compare(const struct wl *w, const char *ref)
{
	uint64_t bad = 0;

	for (uint64_t pg = 0; pg < w->npages; pg++)
		if (memcmp(w->mem + pg * PSIZE, ref + pg * PSIZE, PSIZE)) {
			if (bad < 5)
				fprintf(stderr, "rpage-bench migrate: MISMATCH in page %" PRIu64 "\n",
					pg);
			bad++;
		}
	return bad;
}

int wl_setup(struct wl *w, const struct mopt *o, char *mem)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->plock, NULL);
	pthread_cond_init(&w->pcond, NULL);
	w->mem = mem;
	w->npages = o->size / PSIZE;
	w->ndata = w->npages - 1;
	w->threads = o->threads;
	w->kind = o->kind;
	if (o->rate == 0) {
		w->steps = 0;
	} else {
		double r = o->rate < 0 ? 2e9 : o->rate; /* "max": ~2 GB/s nominal */

		w->steps = (uint64_t)(r * o->duration / PSIZE / o->threads);
		w->ns_per_step = o->rate < 0 ? 0
				 : 1e9 * o->threads * PSIZE / o->rate;
	}
	return 0;
}
