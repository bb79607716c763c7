/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench migrate`: live migration of a running, deterministic
 * workload between two processes (on loopback, or in two network
 * namespaces joined by a veth pair, optionally shaped by netem), verified
 * against a reference computed without migration.
 *
 * The workload: T writer threads; thread t owns the data pages p with
 * p % T == t and runs steps i = 0..S-1; step i rewrites one page chosen by
 * (t, i) with words that depend on (page, i) and on the page's previous
 * first word, so the final memory is a pure function of the parameters
 * and any lost or stale write shows. Each thread's step counter lives in
 * the last page of the region (the "CPU state"), so it migrates with the
 * memory: the destination resumes every thread where the source paused it.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/dirty.h"
#include "../common/rp.h"
#include "bench.h"
#include "pattern.h"

#define PSIZE 4096u
#define MAX_THREADS 64
#define SEED 7

enum wl_kind { WL_SEQ, WL_RAND, WL_HOT };

struct mopt {
	uint64_t size;
	enum wl_kind kind;
	double rate;        /* bytes/s over all threads; <0: unthrottled */
	double duration;    /* seconds of work at @rate */
	unsigned threads, streams;
	uint32_t max_downtime, max_rounds;
	enum rpage_live_mode mode;
	bool json, netns, sync_wp;
	const char *link_rate, *link_delay;
	int switch_after_ms;   /* explicit switchover after this much pre-copy */
	int kill_dest_ms;      /* test: SIGKILL the destination after this */
	int cut_postcopy_ms;   /* test: kill the TCP connections in post-copy */
	int warmup_ms;
	bool memfd;            /* source memory backed by a memfd */
	enum rpage_transport transport; /* post-copy */
	const char *host;      /* address of both ends without --netns */
	struct rpage_attach_opts fill;
	const char *psk_file;  /* both ends authenticate with this key */
	bool insecure;         /* plain TCP beyond loopback */
};

/* The run's credentials, loaded in the child that uses them. NULL (and
 * 0) without --psk-file; non-zero when the key file is unusable. */
static int load_tls(const struct mopt *o, struct rpage_tls **tls)
{
	struct rpage_tls_opts to = { .psk_file = o->psk_file };

	*tls = NULL;
	return o->psk_file ? rpage_tls_new(&to, tls) : 0;
}

struct track_cost {
	bool measured;
	char mode[40];
	double write_ns, write_tracked_ns, collect_ns; /* per page */
	double sync_write_tracked_ns, sync_collect_ns;
};

/* Shared between the bench and its two children (MAP_SHARED). */
struct mres {
	int src_ret, dst_ret, src_exit, dst_exit;
	struct rpage_live_stats src, dst;
	double rate_before, rate_during, rate_post; /* steps/s, all threads */
	uint64_t steps_total, steps_at_switch;
	int verified;          /* 1 ok, 0 mismatch, -1 not checked */
	uint64_t mismatches;
	int src_verified;      /* source memory after a failed migration */
	int dst_port;
	int switched;          /* source: switchover done (for --cut-postcopy) */
	uint16_t srv_port;
	struct track_cost tc;
	char dst_host[64], src_host[64];
	char note[256];
};

/* ---------------- the workload ---------------- */

struct wl {
	char *mem;
	uint64_t npages, ndata; /* ndata = npages - 1: the last page holds counters */
	unsigned threads;
	enum wl_kind kind;
	uint64_t steps;         /* per thread */
	double ns_per_step;     /* per thread; 0: unthrottled */
	pthread_t thr[MAX_THREADS];
	pthread_mutex_t plock;  /* pause_req, paused, finished */
	pthread_cond_t pcond;
	bool pause_req;
	unsigned paused, finished;
	uint64_t done_steps;    /* atomic: steps executed by this process */
};

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t *wl_ctr(const struct wl *w, unsigned t)
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

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull),
			       (long)(ns % 1000000000ull) };

	nanosleep(&ts, NULL);
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

static int wl_start(struct wl *w)
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

/* The pause callback: every writer stops at a step boundary. */
static int wl_pause(void *arg)
{
	struct wl *w = arg;

	pthread_mutex_lock(&w->plock);
	__atomic_store_n(&w->pause_req, true, __ATOMIC_RELEASE);
	while (w->paused + w->finished < w->threads)
		pthread_cond_wait(&w->pcond, &w->plock);
	pthread_mutex_unlock(&w->plock);
	return 0;
}

/* The resume callback: a failed switchover hands the workload back. */
static int wl_resume(void *arg)
{
	struct wl *w = arg;

	pthread_mutex_lock(&w->plock);
	__atomic_store_n(&w->pause_req, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&w->pcond);
	pthread_mutex_unlock(&w->plock);
	return 0;
}

static void wl_init_image(char *mem, uint64_t size)
{
	rp_pattern_fill(mem, 0, size, SEED);
	memset(mem + size - PSIZE, 0, PSIZE); /* the step counters */
}

/* Reference: the image after every step of every thread. */
static int wl_reference(const struct wl *w, char **out)
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

static uint64_t wl_compare(const struct wl *w, const char *ref)
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

static int wl_setup(struct wl *w, const struct mopt *o, char *mem)
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

/* ---------------- tracking cost ---------------- */

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

/* ---------------- network namespaces ---------------- */

static char ns_src[32], ns_dst[32];
static bool ns_made;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r) {
		fprintf(stderr, "rpage-bench migrate: '%s' failed\n", cmd);
		return -1;
	}
	return 0;
}

static void netns_down(void)
{
	if (!ns_made)
		return;
	sh("ip netns del %s 2>/dev/null", ns_src);
	sh("ip netns del %s 2>/dev/null", ns_dst);
	ns_made = false;
}

static int netns_up(const struct mopt *o, struct mres *r)
{
	unsigned id = (unsigned)getpid() % 200 + 20;
	char netem[160] = "";

	snprintf(ns_src, sizeof(ns_src), "rplive-s-%d", (int)getpid());
	snprintf(ns_dst, sizeof(ns_dst), "rplive-d-%d", (int)getpid());
	if (sh("ip netns add %s", ns_src) || sh("ip netns add %s", ns_dst))
		goto fail;
	ns_made = true;
	snprintf(r->src_host, sizeof(r->src_host), "10.211.%u.1", id);
	snprintf(r->dst_host, sizeof(r->dst_host), "10.211.%u.2", id);
	if (sh("ip link add rplv%us netns %s type veth peer name rplv%ud netns %s",
	       id, ns_src, id, ns_dst) ||
	    sh("ip -n %s addr add %s/24 dev rplv%us", ns_src, r->src_host, id) ||
	    sh("ip -n %s addr add %s/24 dev rplv%ud", ns_dst, r->dst_host, id) ||
	    sh("ip -n %s link set rplv%us up", ns_src, id) ||
	    sh("ip -n %s link set rplv%ud up", ns_dst, id) ||
	    sh("ip -n %s link set lo up", ns_src) ||
	    sh("ip -n %s link set lo up", ns_dst))
		goto fail;
	if (o->link_rate || o->link_delay) {
		snprintf(netem, sizeof(netem), "netem%s%s%s%s limit 100000",
			 o->link_delay ? " delay " : "",
			 o->link_delay ? o->link_delay : "",
			 o->link_rate ? " rate " : "",
			 o->link_rate ? o->link_rate : "");
		char probe[320];

		/* netem where the kernel has it (quietly probed) */
		snprintf(probe, sizeof(probe),
			 "tc -n %s qdisc add dev rplv%us root %s 2>/dev/null",
			 ns_src, id, netem);
		if (system(probe) == 0) {
			if (sh("tc -n %s qdisc add dev rplv%ud root %s", ns_dst, id, netem))
				goto fail;
		} else if (o->link_delay) {
			fprintf(stderr, "rpage-bench migrate: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): --link-delay cannot be emulated\n");
			netns_down();
			return -2;
		} else {
			/* no netem: shape the rate with a token bucket */
			snprintf(netem, sizeof(netem), "tbf rate %s burst 64kb latency 500ms",
				 o->link_rate);
			fprintf(stderr, "rpage-bench migrate: no netem qdisc in this kernel: shaping with tbf (%s)\n",
				netem);
			if (sh("tc -n %s qdisc add dev rplv%us root %s", ns_src, id, netem) ||
			    sh("tc -n %s qdisc add dev rplv%ud root %s", ns_dst, id, netem))
				goto fail;
		}
	}
	return 0;
fail:
	netns_down();
	return -1;
}

static int enter_ns(const char *name)
{
	char path[96];
	int fd, r;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = setns(fd, CLONE_NEWNET);
	close(fd);
	return r ? -errno : 0;
}

/* ---------------- the two sides ---------------- */

static int dst_pipe[2];

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

static int run_dest(const struct mopt *o, struct mres *r)
{
	struct rpage_live_dest *d = NULL;
	struct rpage_tls *tls = NULL;
	struct wl w;
	char *mem = mmap_region(o->size), *ref = NULL;
	uint64_t s0, t0, t1;
	int ret, port;

	if (!mem)
		return 1;
	if (o->netns && enter_ns(ns_dst)) {
		fprintf(stderr, "destination: cannot enter %s\n", ns_dst);
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
	if (write(dst_pipe[1], &port, sizeof(port)) != sizeof(port) || port < 0)
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

static int run_source(const struct mopt *o, struct mres *r, int port)
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
	if (o->netns && enter_ns(ns_src)) {
		fprintf(stderr, "source: cannot enter %s\n", ns_src);
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

/* ---------------- report ---------------- */

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void print_human(const struct mopt *o, const struct mres *r)
{
	const struct rpage_live_stats *s = &r->src;
	const struct rpage_stats *p = &r->dst.post;
	char rate_s[32];

	snprintf(rate_s, sizeof(rate_s), "%.1f MB/s", o->rate / 1e6);
	printf("# rpage-bench migrate: %.0f MiB, workload %s, %u thread(s), write rate %s, mode %s, %u streams, max downtime %u ms%s%s%s%s%s\n",
	       (double)o->size / 1048576.0,
	       o->kind == WL_SEQ ? "seq" : o->kind == WL_HOT ? "hot" : "rand",
	       o->threads, o->rate < 0 ? "max" : o->rate == 0 ? "0 (idle)" : rate_s,
	       rpage_live_mode_name(o->mode), o->streams, o->max_downtime,
	       o->netns ? ", netns veth" : ", loopback",
	       o->link_rate ? " rate " : "", o->link_rate ? o->link_rate : "",
	       o->link_delay ? " delay " : "", o->link_delay ? o->link_delay : "");
	if (r->tc.measured)
		printf("tracking    %s: first write after protect %.0f ns/page (untracked write %.0f ns/page), collect+re-protect %.0f ns/page; sync uffd-wp: write %.0f ns/page, collect %.0f ns/page\n",
		       r->tc.mode, r->tc.write_tracked_ns, r->tc.write_ns,
		       r->tc.collect_ns, r->tc.sync_write_tracked_ns,
		       r->tc.sync_collect_ns);
	printf("tracking    in this run: %s\n",
	       s->tracking == 1 ? "uffd-wp async + PAGEMAP_SCAN"
	       : s->tracking == 2 ? "uffd-wp synchronous (fallback)" : "none");
	for (uint32_t i = 0; i < s->rounds; i++)
		printf("round %-4u  %8" PRIu64 " pages %9.1f MB %9.1f ms %8.1f MB/s  dirtied %" PRIu64 "\n",
		       i + 1, s->round[i].pages, (double)s->round[i].bytes / 1e6,
		       ms(s->round[i].ns),
		       s->round[i].ns ? (double)s->round[i].bytes * 1e3 / (double)s->round[i].ns : 0,
		       s->round[i].dirtied);
	printf("decision    %s (%s)\n", rpage_live_reason_name(s->reason), s->why);
	printf("switchover  downtime %.1f ms (destination part %.1f ms); %" PRIu64 " pages sent while paused, %" PRIu64 " left to post-copy\n",
	       ms(s->downtime_ns), ms(r->dst.downtime_ns), s->final_pages,
	       s->postcopy_pages);
	printf("post-copy   %.1f ms: %" PRIu64 " faults (%" PRIu64 " pages by fault, %" PRIu64 " by fill), blocked %.1f ms\n",
	       ms(s->postcopy_ns), p->faults, p->pages_by_fault,
	       p->pages_by_fill, ms(p->blocked_ns));
	printf("fault lat   min %.1f  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  avg %.1f us\n",
	       (double)p->lat_min_ns / 1e3, (double)p->lat_p50_ns / 1e3,
	       (double)p->lat_p99_ns / 1e3, (double)p->lat_p999_ns / 1e3,
	       (double)p->lat_max_ns / 1e3, (double)p->lat_avg_ns / 1e3);
	if (p->faults)
		printf("fault hist  (service time of each post-copy fault)\n");
	for (unsigned i = 0; i < RPAGE_LIVE_HIST_BUCKETS; i++) {
		uint64_t n = r->dst.fault_hist[i], mx = 0;

		for (unsigned k = 0; k < RPAGE_LIVE_HIST_BUCKETS; k++)
			mx = RP_MAX(mx, r->dst.fault_hist[k]);
		if (!n)
			continue;
		printf("  %8llu-%-8llu us %8" PRIu64 " %.*s\n",
		       i ? 1ull << i : 0ull, 1ull << (i + 1), n,
		       (int)(1 + 39 * n / mx), "########################################");
	}
	printf("total       %.1f ms (pre-copy %.1f ms)\n", ms(s->total_ns),
	       ms(s->precopy_ns));
	if (s->rounds)
		printf("workload    %.0f steps/s before migration, %.0f during pre-copy (slowdown x%.2f)\n",
		       r->rate_before, r->rate_during,
		       r->rate_during > 0 ? r->rate_before / r->rate_during : 0.0);
	else
		printf("workload    %.0f steps/s before migration (no pre-copy)\n",
		       r->rate_before);
	if (r->rate_post > 0)
		printf("workload    %.0f steps/s on the destination after resume (during post-copy, at least 0.5 s): slowdown x%.2f\n",
		       r->rate_post, r->rate_before / r->rate_post);
	if (r->src_ret)
		printf("source      FAILED: %s\n", strerror(-r->src_ret));
	if (r->dst_ret)
		printf("destination FAILED: %s%s%s\n", strerror(-r->dst_ret),
		       r->dst.why[0] ? ": " : "", r->dst.why);
	if (r->note[0])
		printf("note        %s\n", r->note);
	printf("verify      %s\n",
	       r->verified == 1 ? "PASS: destination memory equals the reference"
	       : r->verified == 0 ? "FAIL: destination memory differs from the reference"
				  : "not checked (no completed migration)");
}

static void print_json(const struct mopt *o, const struct mres *r)
{
	const struct rpage_live_stats *s = &r->src;
	const struct rpage_stats *p = &r->dst.post;

	printf("{\"size\":%" PRIu64 ",\"workload\":\"%s\",\"threads\":%u,\"write_rate_MBps\":%.3f,\"mode\":\"%s\",\"streams\":%u,\"max_downtime_ms\":%u,\"netns\":%s,",
	       o->size, o->kind == WL_SEQ ? "seq" : o->kind == WL_HOT ? "hot" : "rand",
	       o->threads, o->rate / 1e6, rpage_live_mode_name(o->mode),
	       o->streams, o->max_downtime, o->netns ? "true" : "false");
	printf("\"tracking\":\"%s\",\"tracking_cost\":{\"write_ns\":%.1f,\"write_tracked_ns\":%.1f,\"collect_ns\":%.1f,\"sync_write_tracked_ns\":%.1f,\"sync_collect_ns\":%.1f},",
	       s->tracking == 1 ? "async" : s->tracking == 2 ? "sync" : "none",
	       r->tc.write_ns, r->tc.write_tracked_ns, r->tc.collect_ns,
	       r->tc.sync_write_tracked_ns, r->tc.sync_collect_ns);
	printf("\"rounds\":[");
	for (uint32_t i = 0; i < s->rounds; i++)
		printf("%s{\"pages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"ms\":%.3f,\"dirtied\":%" PRIu64 "}",
		       i ? "," : "", s->round[i].pages, s->round[i].bytes,
		       ms(s->round[i].ns), s->round[i].dirtied);
	printf("],\"reason\":\"%s\",\"why\":", rpage_live_reason_name(s->reason));
	bench_json_str(stdout, s->why);
	printf(",\"downtime_ms\":%.3f,\"final_pages\":%" PRIu64 ",\"postcopy_pages\":%" PRIu64 ",\"postcopy_ms\":%.3f,\"precopy_ms\":%.3f,\"total_ms\":%.3f,",
	       ms(s->downtime_ns), s->final_pages, s->postcopy_pages,
	       ms(s->postcopy_ns), ms(s->precopy_ns), ms(s->total_ns));
	printf("\"postcopy\":{\"faults\":%" PRIu64 ",\"pages_by_fault\":%" PRIu64 ",\"pages_by_fill\":%" PRIu64 ",\"blocked_ms\":%.3f,\"latency_us\":{\"min\":%.1f,\"p50\":%.1f,\"p99\":%.1f,\"p99.9\":%.1f,\"max\":%.1f,\"avg\":%.1f}},",
	       p->faults, p->pages_by_fault, p->pages_by_fill, ms(p->blocked_ns),
	       (double)p->lat_min_ns / 1e3, (double)p->lat_p50_ns / 1e3,
	       (double)p->lat_p99_ns / 1e3, (double)p->lat_p999_ns / 1e3,
	       (double)p->lat_max_ns / 1e3, (double)p->lat_avg_ns / 1e3);
	printf("\"fault_hist_us\":[");
	for (unsigned i = 0, first = 1; i < RPAGE_LIVE_HIST_BUCKETS; i++) {
		if (!r->dst.fault_hist[i])
			continue;
		printf("%s{\"lo\":%llu,\"hi\":%llu,\"n\":%" PRIu64 "}",
		       first ? "" : ",", i ? 1ull << i : 0ull, 1ull << (i + 1),
		       r->dst.fault_hist[i]);
		first = 0;
	}
	printf("],");
	printf("\"workload_steps_per_s\":{\"before\":%.1f,\"precopy\":%.1f,\"postcopy\":%.1f},",
	       r->rate_before, r->rate_during, r->rate_post);
	printf("\"source_error\":%d,\"dest_error\":%d,\"dest_why\":", r->src_ret,
	       r->dst_ret);
	bench_json_str(stdout, r->dst.why);
	printf(",\"note\":");
	bench_json_str(stdout, r->note);
	printf(",\"verified\":%s}\n",
	       r->verified == 1 ? "true" : r->verified == 0 ? "false" : "null");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-bench migrate [options]\n"
		"  --size BYTES          region size (default 64M)\n"
		"  --workload seq|rand|hot  page choice of the writers (default rand)\n"
		"  --write-rate MB/s     over all writer threads; 0 idle; 'max' unthrottled (default 20)\n"
		"  --duration S          seconds of work at that rate (default 4)\n"
		"  --threads N           writer threads (default 1)\n"
		"  --mode hybrid|precopy|postcopy  (default hybrid)\n"
		"  --transport T         post-copy over auto (default), tcp or rdma; pre-copy\n"
		"                        always streams over TCP\n"
		"  --host ADDR           address of both ends without --netns (default\n"
		"                        127.0.0.1; RDMA needs the address of an RDMA netdev)\n"
		"  --streams N           pre-copy TCP streams (default 4)\n"
		"  --max-downtime MS     downtime target (default 300)\n"
		"  --max-rounds N        (default 30)\n"
		"  --netns               source and destination in two network namespaces (veth)\n"
		"  --link-rate R --link-delay D   netem shaping of the veth (e.g. 40mbit, 5ms)\n"
		"  --switch-after MS     explicit switchover after MS ms of pre-copy\n"
		"  --sync-wp             synchronous uffd-wp tracking (the fallback)\n"
		"  --kill-dest-after MS  test: kill the destination during pre-copy\n"
		"  --cut-postcopy-after MS  test: kill the TCP connections during post-copy\n"
		"  --memfd               source memory is a shared memfd mapping (default anonymous)\n"
		"  --fill-chunk B --fill-depth N  destination background fill (default 1M x 4)\n"
		"  --psk-file FILE       both ends authenticate with this key (keys.psk format):\n"
		"                        every connection is TLS 1.3; needed beyond loopback\n"
		"                        (--netns) unless --insecure\n"
		"  --insecure            plain TCP beyond loopback\n"
		"  --json                one JSON object\n");
}

static int parse(int argc, char **argv, struct mopt *o)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, 's' },
		{ "workload", required_argument, NULL, 'w' },
		{ "write-rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'D' },
		{ "threads", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "transport", required_argument, NULL, 'T' },
		{ "host", required_argument, NULL, 'H' },
		{ "streams", required_argument, NULL, 'n' },
		{ "max-downtime", required_argument, NULL, 'd' },
		{ "max-rounds", required_argument, NULL, 'R' },
		{ "netns", no_argument, NULL, 'N' },
		{ "link-rate", required_argument, NULL, 'L' },
		{ "link-delay", required_argument, NULL, 'Y' },
		{ "switch-after", required_argument, NULL, 'S' },
		{ "sync-wp", no_argument, NULL, 'W' },
		{ "kill-dest-after", required_argument, NULL, 'K' },
		{ "cut-postcopy-after", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "memfd", no_argument, NULL, 'M' },
		{ "fill-chunk", required_argument, NULL, 'F' },
		{ "fill-depth", required_argument, NULL, 'P' },
		{ "psk-file", required_argument, NULL, 'k' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c, v;
	int64_t sz;

	*o = (struct mopt){ .size = 64ull << 20, .kind = WL_RAND, .host = "127.0.0.1",
			    .rate = 20e6, .duration = 4, .threads = 1,
			    .streams = 4, .max_downtime = 300,
			    .max_rounds = 30, .mode = RPAGE_LIVE_HYBRID,
			    .warmup_ms = 300 };
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			sz = bench_parse_size(optarg);
			if (sz < 2 * (int64_t)PSIZE || sz % PSIZE)
				goto bad;
			o->size = (uint64_t)sz;
			break;
		case 'w':
			if (!strcmp(optarg, "seq"))
				o->kind = WL_SEQ;
			else if (!strcmp(optarg, "rand"))
				o->kind = WL_RAND;
			else if (!strcmp(optarg, "hot"))
				o->kind = WL_HOT;
			else
				goto bad;
			break;
		case 'r':
			o->rate = !strcmp(optarg, "max") ? -1 : atof(optarg) * 1e6;
			break;
		case 'D':
			o->duration = atof(optarg);
			break;
		case 't':
			o->threads = (unsigned)atoi(optarg);
			if (!o->threads || o->threads > MAX_THREADS)
				goto bad;
			break;
		case 'm':
			v = rpage_live_mode_parse(optarg);
			if (v < 0)
				goto bad;
			o->mode = (enum rpage_live_mode)v;
			break;
		case 'T':
			v = rpage_transport_parse(optarg);
			if (v < 0 || v == RPAGE_TRANSPORT_LOCAL) {
				fprintf(stderr, "rpage-bench migrate: --transport is auto, tcp or rdma (post-copy; pre-copy always streams over TCP), not '%s'\n",
					optarg);
				return 2;
			}
			o->transport = (enum rpage_transport)v;
			break;
		case 'H':
			o->host = optarg;
			break;
		case 'n':
			o->streams = (unsigned)atoi(optarg);
			if (!o->streams || o->streams > 16)
				goto bad;
			break;
		case 'd':
			o->max_downtime = (uint32_t)atoi(optarg);
			break;
		case 'R':
			o->max_rounds = (uint32_t)atoi(optarg);
			break;
		case 'N':
			o->netns = true;
			break;
		case 'L':
			o->link_rate = optarg;
			break;
		case 'Y':
			o->link_delay = optarg;
			break;
		case 'S':
			o->switch_after_ms = atoi(optarg);
			break;
		case 'W':
			o->sync_wp = true;
			break;
		case 'K':
			o->kill_dest_ms = atoi(optarg);
			break;
		case 'C':
			o->cut_postcopy_ms = atoi(optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'M':
			o->memfd = true;
			break;
		case 'F':
			sz = bench_parse_size(optarg);
			if (sz <= 0 || sz > (4 << 20))
				goto bad;
			o->fill.fill_chunk = (uint32_t)sz;
			break;
		case 'P':
			o->fill.fill_depth = (uint32_t)atoi(optarg);
			break;
		case 'k':
			o->psk_file = optarg;
			break;
		case 'I':
			o->insecure = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			goto bad;
		}
	}
	if ((o->link_rate || o->link_delay) && !o->netns) {
		fprintf(stderr, "rpage-bench migrate: --link-rate/--link-delay need --netns\n");
		return 2;
	}
	return 0;
bad:
	usage(stderr);
	return 2;
}

static int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int cmd_migrate(int argc, char **argv)
{
	struct mopt o;
	struct mres *r;
	pid_t sp, dp;
	int port = -1, ret;

	ret = parse(argc, argv, &o);
	if (ret)
		return ret == 1 ? 0 : ret;
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return 1;
	memset(r, 0, sizeof(*r));
	r->verified = -1;
	r->src_verified = -1;
	if (o.netns && (ret = netns_up(&o, r))) {
		if (ret == -1)
			fprintf(stderr, "rpage-bench migrate: cannot set up the network namespaces (root and iproute2 needed)\n");
		return 77;
	}
	if (pipe(dst_pipe))
		return 1;
	fflush(NULL);
	dp = fork();
	if (dp == 0)
		_exit(run_dest(&o, r));
	if (read(dst_pipe[0], &port, sizeof(port)) != sizeof(port) || port < 0) {
		fprintf(stderr, "rpage-bench migrate: the destination did not start\n");
		kill(dp, SIGKILL);
		wait_child(dp);
		netns_down();
		return 1;
	}
	sp = fork();
	if (sp == 0)
		_exit(run_source(&o, r, port));
	if (o.kill_dest_ms > 0) {
		sleep_ns((uint64_t)(o.kill_dest_ms + o.warmup_ms) * 1000000ull);
		fprintf(stderr, "rpage-bench migrate: killing the destination (test)\n");
		kill(dp, SIGKILL);
	}
	if (o.cut_postcopy_ms > 0) {
		/* wait for the switchover, then cut every TCP connection of
		 * the migration (ss -K: the kernel resets the sockets) */
		while (!__atomic_load_n(&r->switched, __ATOMIC_ACQUIRE) &&
		       waitpid(sp, NULL, WNOHANG) == 0)
			sleep_ns(2000000);
		sleep_ns((uint64_t)o.cut_postcopy_ms * 1000000ull);
		fprintf(stderr, "rpage-bench migrate: cutting the migration's TCP connections (test)\n");
		if (o.netns)
			sh("ip netns exec %s ss -K -t state established >/dev/null", ns_dst);
		else
			sh("ss -K -t '( sport = :%d or dport = :%d or sport = :%u or dport = :%u )' >/dev/null",
			   port, port, r->srv_port, r->srv_port);
	}
	r->src_exit = wait_child(sp);
	if (r->src_exit && r->dst.downtime_ns == 0) {
		/* the destination may wait for a source that is gone */
		usleep(200000);
		kill(dp, SIGTERM);
	}
	r->dst_exit = wait_child(dp);
	netns_down();
	if (o.json)
		print_json(&o, r);
	else
		print_human(&o, r);
	if (r->verified == 1)
		return 0;
	if (r->src_ret == -ETIMEDOUT)
		return 3; /* pre-copy refused to finish, as asked */
	return 1;
}
