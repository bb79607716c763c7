/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench migrate`: the two ends, each run in its own process by
 * cmd_migrate (migrate.c). The destination listens, receives the
 * migration, resumes the workload and checks it against the reference;
 * the source measures what dirty tracking costs here, runs the workload
 * and migrates it. Threads: the process's main thread drives the
 * migration; the workload's writers (migrate_workload.c); on the source,
 * optional "switch" and "watch" threads for --switch-after and
 * --cut-postcopy-after. Results go to the shared struct mres.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/dirty.h"
#include "../common/rp.h"
#include "migrate.h"

/* ---- what dirty tracking costs on this machine ---- */
static double now_s(void)
{
	return (double)rp_now_ns() / 1e9;
}

static void touch_pages(char *m, uint64_t n, uint64_t v)
{
	for (uint64_t pg = 0; pg < n; pg++)
		*(volatile uint64_t *)(m + pg * PSIZE + 8) = v + pg;
}

static int measure_one(char *m, uint64_t n, bool sync, double *wr, double *col)
{
	struct rp_dirty *d;
	struct rp_bitmap b;
	double t0, t1, t2;
	int ret = rp_dirty_start(m, n * PSIZE, PSIZE, sync, &d);

	if (ret)
		return ret;
	if (sync && rp_dirty_get_mode(d) != RP_DIRTY_SYNC) {
		rp_dirty_stop(d);
		return -ENOTSUP;
	}
	rp_bitmap_init(&b, n);
	t0 = now_s();
	touch_pages(m, n, 3); /* first write after protection: a wp fault */
	t1 = now_s();
	rp_dirty_collect(d, &b);
	t2 = now_s();
	*wr = (t1 - t0) * 1e9 / (double)n;
	*col = (t2 - t1) * 1e9 / (double)n;
	rp_bitmap_free(&b);
	rp_dirty_stop(d);
	return 0;
}

static void measure_tracking(struct track_cost *tc, uint64_t size)
{
	uint64_t n = RP_MIN(size, 64ull << 20) / PSIZE;
	char *m = mmap(NULL, n * PSIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double t0;
	struct rp_dirty *d;

	if (m == MAP_FAILED)
		return;
	touch_pages(m, n, 1); /* populate */
	t0 = now_s();
	touch_pages(m, n, 2);
	tc->write_ns = (now_s() - t0) * 1e9 / (double)n;
	if (rp_dirty_start(m, PSIZE, PSIZE, false, &d) == 0) {
		snprintf(tc->mode, sizeof(tc->mode), "%s",
			 rp_dirty_mode_name(rp_dirty_get_mode(d)));
		rp_dirty_stop(d);
	}
	if (measure_one(m, n, false, &tc->write_tracked_ns, &tc->collect_ns) == 0)
		tc->measured = true;
	if (measure_one(m, n, true, &tc->sync_write_tracked_ns,
			&tc->sync_collect_ns))
		tc->sync_write_tracked_ns = tc->sync_collect_ns = -1;
	munmap(m, n * PSIZE);
}

/* ---- the two ends ---- */
static void *mmap_region(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void *mmap_memfd(uint64_t size)
{
	int fd = memfd_create("rpage-live-src", MFD_CLOEXEC);
	void *p;

	if (fd < 0)
		return NULL;
	if (ftruncate(fd, (off_t)size)) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/* The run's credentials, loaded in the child that uses them: NULL (and
 * 0) without --psk-file, non-zero when the key file is unusable. */
static int load_tls(const struct mopt *o, struct rpage_tls **tls)
{
	struct rpage_tls_opts to = { .psk_file = o->psk_file };

	*tls = NULL;
	return o->psk_file ? rpage_tls_new(&to, tls) : 0;
}

int migrate_run_dest(const struct mopt *o, struct mres *r, int port_fd)
{
	struct rpage_live_dest *d = NULL;
	struct rpage_tls *tls = NULL;
	struct wl w;
	char *mem = mmap_region(o->size), *ref = NULL;
	uint64_t s0, t0, t1;
	int ret, port;

	if (!mem)
		return 1;
	if (o->netns && migrate_netns_enter(true)) {
		fprintf(stderr, "destination: cannot enter its network namespace\n");
		return 1;
	}
	wl_setup(&w, o, mem);
	ret = load_tls(o, &tls);
	if (!ret)
		ret = rpage_live_dest_new(mem, o->size, PSIZE, &o->fill, &d);
	if (!ret)
		ret = rpage_live_dest_set_transport(d, o->transport);
	if (!ret)
		ret = rpage_live_dest_set_tls(d, tls, o->insecure);
	if (!ret)
		ret = rpage_live_dest_listen(d, o->netns ? r->dst_host : o->host,
					     "0");
	port = ret ? -1 : rpage_live_dest_port(d);
	if (write(port_fd, &port, sizeof(port)) != sizeof(port) || port < 0)
		return 1;
	ret = rpage_live_dest_run(d);
	r->dst_ret = ret;
	if (ret) {
		rpage_live_dest_get_stats(d, &r->dst);
		return 3;
	}
	/* resume the workload here: counters come with the memory */
	s0 = 0;
	for (unsigned t = 0; t < w.threads; t++)
		s0 += *wl_ctr(&w, t);
	r->steps_at_switch = s0;
	t0 = rp_now_ns();
	if (wl_start(&w))
		return 1;
	ret = rpage_live_dest_wait(d, -1);
	t1 = rp_now_ns();
	/* the rate after resume: over post-copy, or at least 0.5 s */
	while (!ret && t1 - t0 < 500000000ull &&
	       __atomic_load_n(&w.finished, __ATOMIC_ACQUIRE) < w.threads) {
		sleep_ns(10000000);
		t1 = rp_now_ns();
	}
	r->rate_post = (double)__atomic_load_n(&w.done_steps, __ATOMIC_RELAXED) /
		       ((double)(t1 - t0) / 1e9);
	rpage_live_dest_get_stats(d, &r->dst);
	r->dst_ret = ret;
	if (ret) {
		/* writers may be stuck on pages that will never come */
		return 4;
	}
	for (unsigned t = 0; t < w.threads; t++)
		pthread_join(w.thr[t], NULL);
	if (wl_reference(&w, &ref))
		return 1;
	r->mismatches = wl_compare(&w, ref);
	r->verified = r->mismatches == 0;
	rpage_live_dest_free(d);
	rpage_tls_free(tls);
	return r->verified ? 0 : 5;
}

struct switcher {
	struct rpage_live_source *s;
	int ms;
	struct mres *r;
};

/* Publishes the switchover to the bench (for --cut-postcopy-after). */
static void *watch_main(void *arg)
{
	struct switcher *sw = arg;
	struct rpage_live_stats *st = malloc(sizeof(*st));

	if (!st)
		return NULL;
	for (;;) {
		rpage_live_source_get_stats(sw->s, st);
		if (st->downtime_ns) {
			sw->r->srv_port = (uint16_t)st->postcopy_port;
			__atomic_store_n(&sw->r->switched, 1, __ATOMIC_RELEASE);
			break;
		}
		if (st->error)
			break;
		sleep_ns(1000000);
	}
	free(st);
	return NULL;
}

static void *switch_main(void *arg)
{
	struct switcher *sw = arg;

	sleep_ns((uint64_t)sw->ms * 1000000ull);
	rp_info("explicit switchover requested after %d ms", sw->ms);
	rpage_live_source_switchover(sw->s);
	return NULL;
}

int migrate_run_source(const struct mopt *o, struct mres *r, int port)
{
	struct rpage_live_opts lo = { .mode = o->mode, .streams = o->streams,
				      .max_downtime_ms = o->max_downtime,
				      .max_rounds = o->max_rounds,
				      .force_sync_wp = o->sync_wp,
				      .pause = wl_pause,
				      .resume = wl_resume,
				      .postcopy_transport = o->transport };
	struct rpage_live_source *s = NULL;
	struct rpage_tls *tls = NULL;
	struct switcher sw = { 0 }, wt = { 0 };
	pthread_t swt;
	struct wl w;
	char *mem = o->memfd ? mmap_memfd(o->size) : mmap_region(o->size);
	char *ref = NULL;
	char portstr[16];
	uint64_t d0, d1, t0, t1;
	int ret;

	if (!mem)
		return 1;
	if (o->netns && migrate_netns_enter(false)) {
		fprintf(stderr, "source: cannot enter its network namespace\n");
		return 1;
	}
	measure_tracking(&r->tc, o->size);
	wl_init_image(mem, o->size);
	wl_setup(&w, o, mem);
	r->steps_total = w.steps * w.threads;
	lo.arg = &w;
	if (wl_start(&w))
		return 1;
	/* baseline rate, before any tracking */
	d0 = __atomic_load_n(&w.done_steps, __ATOMIC_RELAXED);
	t0 = rp_now_ns();
	sleep_ns((uint64_t)o->warmup_ms * 1000000ull);
	d1 = __atomic_load_n(&w.done_steps, __ATOMIC_RELAXED);
	t1 = rp_now_ns();
	r->rate_before = (double)(d1 - d0) / ((double)(t1 - t0) / 1e9);
	if (load_tls(o, &tls))
		return 1;
	lo.tls = tls;
	lo.insecure = o->insecure;
	ret = rpage_live_source_new(mem, o->size, PSIZE, &lo, &s);
	if (ret)
		return 1;
	if (o->cut_postcopy_ms > 0) {
		wt.s = s;
		wt.r = r;
		pthread_create(&swt, NULL, watch_main, &wt);
		pthread_detach(swt);
	}
	if (o->switch_after_ms > 0) {
		sw.s = s;
		sw.ms = o->switch_after_ms;
		pthread_create(&swt, NULL, switch_main, &sw);
		pthread_detach(swt);
	}
	snprintf(portstr, sizeof(portstr), "%d", port);
	d0 = __atomic_load_n(&w.done_steps, __ATOMIC_RELAXED);
	t0 = rp_now_ns();
	ret = rpage_live_source_migrate(s, o->netns ? r->dst_host : o->host,
					portstr);
	rpage_live_source_get_stats(s, &r->src);
	r->src_ret = ret;
	{
		uint64_t pre_ns = r->src.precopy_ns ? r->src.precopy_ns
						    : rp_now_ns() - t0;

		d1 = __atomic_load_n(&w.done_steps, __ATOMIC_RELAXED);
		/* no pre-copy (post-copy only): nothing to measure */
		r->rate_during = r->src.rounds ? (double)(d1 - d0) / ((double)pre_ns / 1e9)
					       : 0;
		if (r->rate_during > 0 && d1 - d0 > 0 && !r->src.downtime_ns)
			r->rate_during = (double)(d1 - d0) /
					 ((double)(rp_now_ns() - t0) / 1e9);
	}
	if (ret && (r->src.resumed_here ||
		    !__atomic_load_n(&w.pause_req, __ATOMIC_RELAXED))) {
		/* not migrated: the workload goes on here; check it */
		for (unsigned t = 0; t < w.threads; t++)
			pthread_join(w.thr[t], NULL);
		if (wl_reference(&w, &ref) == 0) {
			uint64_t bad = wl_compare(&w, ref);

			r->src_verified = bad == 0;
			snprintf(r->note, sizeof(r->note),
				 "migration did not happen%s; the workload ran to its end on the source and its memory %s the reference",
				 r->src.resumed_here ? " (the switchover failed and the workload resumed on the source)" : "",
				 bad ? "DIFFERS FROM" : "matches");
		}
	}
	rpage_live_source_free(s);
	rpage_tls_free(tls);
	return ret ? 3 : 0;
}
