/* SPDX-License-Identifier: MIT */
/*
 * The daemons' metrics endpoint (--metrics HOST:PORT): the exposition
 * text (OpenMetrics 1.0.0, or Prometheus text 0.0.4 for scrapers that do
 * not ask for OpenMetrics), and a small HTTP/1.1 server that answers
 * GET /metrics with it. docs/metrics.md lists every metric.
 *
 * Rendering (metrics.c) has no thread and no state beyond its output
 * buffer. The server (metrics_http.c) has one thread, "rpage/metrics",
 * that owns the listening socket and serves one connection at a time
 * under a deadline for the whole exchange; it takes each snapshot through
 * the render callback, on its own thread, from the daemons' statistics
 * calls (never from the fault path's data structures directly).
 */
#ifndef RP_METRICS_H
#define RP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpage/rpage.h"

/* ---- exposition text (metrics.c) ---- */

enum rp_mfmt {
	RP_MFMT_TEXT = 0,        /* Prometheus text format 0.0.4 */
	RP_MFMT_OPENMETRICS = 1, /* OpenMetrics 1.0.0 */
};

enum rp_mtype { RP_M_COUNTER, RP_M_GAUGE, RP_M_HISTOGRAM };

/* A metric family. @name ends with "_" @unit when there is a unit, and
 * never with "_total" (counters get it on their sample). */
struct rp_mfam {
	const char *name;
	enum rp_mtype type;
	const char *unit; /* "seconds", "bytes", "ratio", or NULL */
	const char *help;
};

struct rp_label {
	const char *name;
	const char *value;
};

/* The text being written. err turns -ENOMEM when memory ran out, -EINVAL
 * when a name was not a valid metric or label name, or samples were
 * written outside a family: the text is then not to be served. */
struct rp_mout {
	char *p;
	size_t len, cap;
	int err;
	enum rp_mfmt fmt;
	const struct rp_mfam *fam; /* the family being written */
};

void rp_mout_init(struct rp_mout *o, enum rp_mfmt fmt);
void rp_mout_free(struct rp_mout *o);
/* Starts family @f (borrowed until the next family): HELP, TYPE, and in
 * OpenMetrics UNIT. Every sample of a family follows its start. */
void rp_m_family(struct rp_mout *o, const struct rp_mfam *f);
/* One sample of the current counter or gauge with labels @l[0..nl). */
void rp_m_u64(struct rp_mout *o, const struct rp_label *l, unsigned nl,
	      uint64_t v);
void rp_m_dbl(struct rp_mout *o, const struct rp_label *l, unsigned nl,
	      double v);
/*
 * One histogram of the current family: @n finite upper bounds @le
 * (strictly increasing) and @n + 1 bucket counts @b, b[i] counting the
 * values in (le[i-1], le[i]] and b[n] those above le[n-1] (not cumulative:
 * the text is). @sum is the sum of the values.
 */
void rp_m_hist(struct rp_mout *o, const struct rp_label *l, unsigned nl,
	       const double *le, const uint64_t *b, unsigned n, double sum);
/* Ends the text ("# EOF" in OpenMetrics). */
void rp_m_end(struct rp_mout *o);
/* True for a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), and label
 * name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"). */
bool rp_m_name_valid(const char *s);
bool rp_m_label_valid(const char *s);
/* Writes @v as the shortest text that reads back as the same double
 * ("+Inf", "-Inf", "NaN" for those). @buf holds at least 32 bytes. */
void rp_m_fmt_double(char *buf, size_t len, double v);

/* ---- HTTP (metrics_http.c) ---- */

#define RP_HTTP_MAX_HEAD 8192 /* request line and headers, in bytes */

struct rp_http_req {
	bool get, head;     /* the method (anything else is refused) */
	bool metrics;       /* the path is /metrics (a query is ignored) */
	int minor;          /* HTTP/1.minor */
	bool openmetrics;   /* Accept prefers OpenMetrics 1.0.0 */
	size_t head_len;    /* bytes of the request line and headers */
	/* Accept weights seen so far, in thousandths (-1: not named) */
	int q_om, q_text;
};

/*
 * Parses the request head in @buf[0..@len) (untrusted bytes). 0: a whole
 * head, in *req. -EAGAIN: it has not ended yet (read more, up to
 * RP_HTTP_MAX_HEAD). -EINVAL: malformed (*why says how; answer 400).
 * -EPROTONOSUPPORT: not HTTP/1.x (answer 505). A request with a body is
 * malformed: GET /metrics has none.
 */
int rp_http_parse(const char *buf, size_t len, struct rp_http_req *req,
		  const char **why);

/* ---- the endpoint (metrics_http.c) ---- */

/* Writes the daemon's families into @o (from the endpoint's thread);
 * 0 or -errno. */
typedef int (*rp_metrics_render_fn)(struct rp_mout *o, void *arg);

struct rp_metrics_opts {
	const char *prefix;     /* of the endpoint's own metric, "rpage_client" */
	const char *addr;       /* HOST:PORT, or :PORT for loopback */
	/* The daemon's credentials (borrowed; may be NULL). Beyond loopback
	 * the endpoint needs X.509 ones: it then speaks HTTPS and takes only
	 * clients whose certificate the CA signed. */
	const struct rpage_tls *tls;
	rp_metrics_render_fn render;
	void *arg;
	unsigned deadline_ms;   /* for one whole exchange (0: 5000) */
};

struct rp_metrics_srv;

/*
 * Listens on opts->addr and starts the endpoint's thread. -EACCES (after
 * a message naming the fix) for an address beyond loopback without X.509
 * credentials; -EINVAL for a malformed address; the socket's -errno.
 */
int rp_metrics_start(const struct rp_metrics_opts *opts,
		     struct rp_metrics_srv **out);
/* Checks a --metrics address (HOST:PORT or :PORT, a numeric port) before
 * anything starts: 0, or -EINVAL after a message. */
int rp_metrics_addr_check(const char *addr);
/* "http://127.0.0.1:9100/metrics" (or https://), for the ready line. */
const char *rp_metrics_url(const struct rp_metrics_srv *m);
/* Stops the thread, closes the socket, frees. NULL is ignored. */
void rp_metrics_stop(struct rp_metrics_srv *m);

#endif
