/* SPDX-License-Identifier: MIT */
#ifndef RP_BENCH_H
#define RP_BENCH_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rpage/rpage.h"

int cmd_mkimage(int argc, char **argv);
int cmd_migrate(int argc, char **argv);

/*
 * A benchmark command, shaped like perftest's: parse the command line,
 * set up what is measured, run, report, tear down. bench_cmd_main runs the
 * steps in that order on the command's own state (@size bytes, zeroed)
 * and returns the exit status.
 */
struct bench_cmd {
	const char *name;
	size_t size;
	/* -1 to go on, else the exit status (0 after --help, 2 for a bad
	 * command line) */
	int (*parse)(void *b, int argc, char **argv);
	/* each: 0 to go on, else the exit status */
	int (*setup)(void *b);
	int (*run)(void *b);
	/* prints the results; returns the exit status */
	int (*report)(void *b);
	/* frees what setup made, however far it got (NULL: the process's
	 * end frees it) */
	void (*teardown)(void *b);
};
int bench_cmd_main(const struct bench_cmd *c, int argc, char **argv);
extern const struct bench_cmd bench_guest_cmd, bench_fault_cmd,
	bench_fill_cmd, bench_timeline_cmd, bench_resume_cmd;
/* A line that was asked for but failed (its reason starts "failed"), as
 * opposed to one that is not available here. */
bool bench_failed(const char *why);

/* "4096", "4k", "2M", "1G" -> bytes; -1 on error */
int64_t bench_parse_size(const char *s);

/* ---- perf/stats.c: raw latency samples in perftest's layout ---- */
struct bench_lat {
	char name[32];
	uint64_t bytes;
	uint64_t *ns;          /* raw samples; sorted by bench_lat_compute */
	size_t n, cap;
	char why[200];         /* non-empty: not measured, and why */
	/* microseconds, from the sorted samples (nearest rank) */
	double t_min, t_max, t_typical, t_avg, t_stdev, p99, p999;
};
void bench_lat_init(struct bench_lat *l, const char *name, uint64_t bytes);
int bench_lat_add(struct bench_lat *l, uint64_t ns);
void bench_lat_skip(struct bench_lat *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void bench_lat_compute(struct bench_lat *l);
void bench_lat_free(struct bench_lat *l);
/* The perftest header line, then one line per path ending in its ratio to
 * @floor (p50 and p99). */
void bench_lat_header(FILE *f);
void bench_lat_line(FILE *f, const struct bench_lat *l,
		    const struct bench_lat *floor);
/* One JSON object with perftest's keys (t_min ... percentile_99.9). */
void bench_lat_json(FILE *f, const struct bench_lat *l,
		    const struct bench_lat *floor);
int bench_cdf_write(const char *path, struct bench_lat *const *l, unsigned n);
void bench_json_str(FILE *f, const char *s);
double bench_ratio(double a, double b);
void bench_machine_print(FILE *f);
void bench_machine_json(FILE *f);
/* "# target: WHAT  value <= limit  PASS|MISS" (>= when @at_least). */
void bench_target(FILE *f, const char *what, double value, double limit,
		  bool at_least);

/* ---- perf/env.c: image, server, sources, raw baselines ---- */
/* The "tls" line: TCP with TLS 1.3 (PSK), beside the plain "tcp" one. */
#define BENCH_T_TLS ((enum rpage_transport)16)
const char *bench_transport_name(enum rpage_transport t);

struct bench_env {
	int memfd;              /* the image (also the local source) */
	uint64_t img_len;
	uint32_t psize;
	struct rpage_server *srv; /* in-process server, NULL with --connect */
	bool remote;
	char host[256], port[32];
	char local_path[64];
	char rdma_why[320];     /* why the in-process server has no RDMA */
	/* the "tls" line: its credentials (--psk-file, or a key made for the
	 * run) and, in-process, a second server that requires them */
	struct rpage_tls *tls;
	struct rpage_server *tls_srv;
	char tls_port[32];
};
/* In-process server on @host (NULL: 127.0.0.1), also listening for RDMA
 * when @rdma, when @connect is NULL; else a running one at @connect,
 * reached with the key in @psk_file (may be NULL). */
int bench_env_open(struct bench_env *e, const char *connect,
		   uint64_t img_len, uint32_t psize);
int bench_env_open_ex(struct bench_env *e, const char *connect,
		      const char *host, bool rdma, uint64_t img_len,
		      uint32_t psize, const char *psk_file);
void bench_env_close(struct bench_env *e);
/* A source for transport @t; on failure writes the reason into @why. */
int bench_env_source(struct bench_env *e, enum rpage_transport t,
		     struct rpage_source **out, char *why, size_t wl);
/* "local,tcp,tls,rdma" -> up to @max transports; count or -1. */
int bench_parse_transports(const char *s, enum rpage_transport *t,
			   unsigned max);

struct bench_raw {
	int cli_fd, conn_fd;
	void *buf, *cbuf;
	uint32_t buf_len;
	pthread_t thr;
	bool started;
};

/* What a benchmark measures and measures against: the image and its
 * server, the raw TCP socket pair, the raw RDMA peer; each open only once
 * its flag (or pointer) says so. */
struct bench_base {
	struct bench_env env;
	bool env_open;
	struct bench_raw raw;
	bool raw_ok;
	struct bench_rawrdma *rr;
};
/* The benchmarks' common start: the library's log down to warnings
 * (unless RPAGE_LOG says otherwise), then bench_env_open_ex, with RDMA
 * when one of the @nt transports @ts is rdma, and @psk_file (may be NULL)
 * for the tls line. 0 or -errno. */
int bench_base_open(struct bench_base *bb, const char *connect,
		    const char *host, const enum rpage_transport *ts, int nt,
		    uint64_t img_len, uint32_t psize, const char *psk_file);
/* Closes whatever of @bb is open. */
void bench_base_close(struct bench_base *bb);
/* A plain TCP server thread on loopback and one connected client. */
int bench_raw_start(struct bench_raw *r, uint32_t buf_len);
void bench_raw_stop(struct bench_raw *r);
int bench_raw_rtt(struct bench_raw *r, uint32_t len, bool spin);
int bench_raw_stream(struct bench_raw *r, uint64_t total, uint32_t chunk);

/* ---- perf/rawrdma.c: raw RDMA READ baselines, both ends in-process ---- */
struct bench_rawrdma;
/*
 * Connects a client QP to a peer QP in this process over the RDMA device
 * of @host (an address of the RoCE interface), the peer exposing the
 * @img_len bytes of @memfd REMOTE_READ; the client reads into a registered
 * buffer of @buf_len bytes with up to @depth READs in flight. 0, or -errno
 * with the reason in @why.
 */
int bench_rawrdma_open(struct bench_rawrdma **out, const char *host,
		       int memfd, uint64_t img_len, uint32_t buf_len,
		       unsigned depth, char *why, size_t wl);
void bench_rawrdma_close(struct bench_rawrdma *r);
/* One READ of @len bytes at image offset @off, its completion busy-polled. */
int bench_rawrdma_read(struct bench_rawrdma *r, uint64_t off, uint32_t len);
/* Reads image bytes [0, @total) in @chunk-byte READs, @depth in flight. */
int bench_rawrdma_stream(struct bench_rawrdma *r, uint64_t total,
			 uint32_t chunk, unsigned depth);

#endif
