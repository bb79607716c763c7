/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench migrate`, shared by its files:
 *   migrate.c          options and the run: the two children, the test cuts
 *   migrate_workload.c the deterministic writer workload and its reference
 *   migrate_netns.c    network namespaces, the veth pair and tc shaping
 *   migrate_run.c      the two ends: destination and source processes
 *   migrate_report.c   the human table and the JSON line
 *
 * The bench forks the destination, then the source; each runs in its own
 * process (and network namespace with --netns) and writes its results
 * into one struct mres shared by all three (MAP_SHARED).
 */
#ifndef RP_BENCH_MIGRATE_H
#define RP_BENCH_MIGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "rpage/rpage.h"

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
	int cut_precopy_ms;    /* test: kill them during pre-copy */
	int warmup_ms;
	bool memfd;            /* source memory backed by a memfd */
	enum rpage_transport transport; /* post-copy */
	const char *host;      /* address of both ends without --netns */
	struct rpage_attach_opts fill;
	const char *psk_file;  /* both ends authenticate with this key */
	bool insecure;         /* plain TCP beyond loopback */
};

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

/* ---- migrate_workload.c: the writer workload ---- */

/*
 * T writer threads; thread t owns the data pages p with p % T == t and
 * runs steps i = 0..S-1; step i rewrites one page chosen by (t, i) with
 * words that depend on (page, i) and on the page's previous first word,
 * so the final memory is a pure function of the parameters and any lost
 * or stale write shows. Each thread's step counter lives in the last
 * page of the region (the "CPU state"), so it migrates with the memory.
 */
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

/* Sizes the workload from the options over @mem (not started). */
int wl_setup(struct wl *w, const struct mopt *o, char *mem);
/* Starts the writers, each from the step its counter in memory says. */
int wl_start(struct wl *w);
/* The pause callback: every writer stops at a step boundary. */
int wl_pause(void *arg);
/* The resume callback: a failed switchover hands the workload back. */
int wl_resume(void *arg);
/* Thread @t's step counter, in the last page. */
uint64_t *wl_ctr(const struct wl *w, unsigned t);
/* The image the workload starts from: the pattern, counters zero. */
void wl_init_image(char *mem, uint64_t size);
/* Reference: the image after every step of every thread, computed here
 * without migration (a new anonymous mapping in *out). */
int wl_reference(const struct wl *w, char **out);
/* Pages of the workload's memory that differ from @ref (the first few
 * are named on stderr). */
uint64_t wl_compare(const struct wl *w, const char *ref);

static inline void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull),
			       (long)(ns % 1000000000ull) };

	nanosleep(&ts, NULL);
}

/* ---- migrate_netns.c: two network namespaces joined by a veth pair ---- */

/* Creates them (shaped by netem, or tbf without netem, when asked) and
 * stores both ends' addresses in @r. 0; -1 on failure (nothing left
 * behind); -2 when --link-delay cannot be emulated here. */
int migrate_netns_up(const struct mopt *o, struct mres *r);
void migrate_netns_down(void);
/* Moves the calling process into the destination's (@dest) or the
 * source's namespace. 0 or -errno. */
int migrate_netns_enter(bool dest);
/* Resets every established TCP connection in the destination's
 * namespace (ss -K). */
void migrate_netns_cut(void);
/* Runs a shell command (printf format); 0, or -1 after naming it. */
int migrate_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- migrate_run.c: the two ends, each in its own process ---- */

/* The destination: listens, writes its port to @port_fd (-1 on failure),
 * receives the migration, resumes the workload and checks it against the
 * reference. The process's exit status: 0 verified, else why not. */
int migrate_run_dest(const struct mopt *o, struct mres *r, int port_fd);
/* The source: runs the workload, measures tracking, migrates it to
 * @port; checks its own memory when the workload stayed here. */
int migrate_run_source(const struct mopt *o, struct mres *r, int port);

/* ---- migrate_report.c ---- */
void migrate_print_human(const struct mopt *o, const struct mres *r);
void migrate_print_json(const struct mopt *o, const struct mres *r);

#endif
