/* SPDX-License-Identifier: MIT */
/*
 * rpage-client: the destination daemon. Processes hand it their
 * userfaultfd over a Unix socket exactly as Firecracker does for its UFFD
 * snapshot backend; it serves their faults from an rpage-server (or a local
 * file) and fills the rest in the background.
 *
 * The Unix socket is the daemon's local attack surface: whoever connects
 * can have region data placed in its own memory. It is created mode 0600
 * (--socket-mode, --socket-group widen it on purpose), every peer's
 * credentials are logged and may be restricted (--allow-uid, --allow-gid),
 * and a peer has a deadline to finish its handshake.
 *
 * Threads: the main thread runs one poll loop over the signals, the
 * listening socket, every process's socket and every process's event
 * descriptor; it never waits for the network. Starting to serve a process
 * (rpage_attach_start: connections to the server, TLS handshakes) runs on
 * a short-lived thread per process ("rpage/cli/att") that signals its
 * eventfd when done; the main thread then joins it. A guest record is
 * owned by the main thread except for the fields that attach thread
 * writes before it signals (att, attach_ret).
 *
 * With --metrics, the endpoint's thread ("rpage/metrics") takes a
 * snapshot on each scrape: under `mlock` it reads the guest list and each
 * served process's statistics through the library's calls (which hold the
 * process's statistics lock only to copy), then renders without it. The
 * main thread takes `mlock` only to change the list, a process's metric
 * slot, and the totals of processes that have gone.
 */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "../common/hist.h"
#include "../common/metrics.h"
#include "../common/net.h"
#include "../common/rp.h"
#include "../common/tls.h"
#include "live_int.h"

#define MAX_GUESTS 256
#define MAX_PENDING 32          /* connections still in their handshake */
#define HANDSHAKE_MS 5000       /* default handshake deadline */
#define MAX_IDS 32              /* --allow-uid / --allow-gid entries */
/* Processes with metric series of their own (label pid); the others
 * share the series pid="other" (docs/metrics.md). */
#define METRICS_PIDS 16

enum guest_state { G_HANDSHAKE, G_ATTACHING, G_SERVING };

struct client;

struct guest {
	struct client *c;
	int sock;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	enum guest_state state;
	uint64_t deadline_ns;       /* G_HANDSHAKE: when it is closed */
	/* G_ATTACHING: the attach thread's inputs and results */
	struct rpage_range *ranges;
	unsigned nranges;
	int uffd;
	int done_efd;
	pthread_t thr;
	int attach_ret;
	struct rpage_attach *att;
	int pidfd;                  /* the process, to kill it (fail closed) */
	bool reported_complete, reported_failed, gone, killed;
	bool accepted;              /* its handshake was accepted */
	uint64_t last_bytes, last_faults;
	char name[48];
	int mslot;                  /* its metric series (-1: pid="other") */
	bool mvisible;              /* served: the metrics read it (mlock) */
};

/* What the metrics show of one process, or of several summed. */
struct mproc {
	struct rpage_stats st;
	uint64_t us2[RP_HIST_US2];  /* fault latency, QEMU's buckets */
	uint64_t lat_sum_ns;
	unsigned nstate[5];         /* processes by enum rpage_attach_state */
	bool gauges;                /* it has live (or final) gauges */
};

/* A process's own series, kept after it has gone (state "gone", its
 * final figures) until its slot is needed by another. */
struct mslot {
	bool used, live;
	pid_t pid;
	uint64_t gone_ns;
	struct mproc final;
};

/* Why a process was not served (processes_refused_total{reason}). */
enum { REF_NOT_ALLOWED, REF_TOO_MANY, REF_HANDSHAKE, REF_HANDSHAKE_TIMEOUT,
       REF_N };

struct client {
	struct rpage_source *src;
	int region;
	struct rpage_attach_opts aopts;
	FILE *json;
	bool progress, tty, once;
	int listen_fd;
	struct guest *g[MAX_GUESTS];
	unsigned ng;
	unsigned served, failed;
	uint64_t last_tick;
	unsigned handshake_ms;
	uid_t allow_uid[MAX_IDS];
	gid_t allow_gid[MAX_IDS];
	unsigned nallow_uid, nallow_gid;
	bool wait_policy;           /* --on-source-lost=wait */
	bool stopping;              /* SIGTERM/SIGINT: exit when we may */
	unsigned finished;          /* served processes that have gone */
	/* --on-source-lost=wait: userfaultfds of processes that can no
	 * longer be served, kept open (so they stay blocked) until their
	 * pidfd says they have exited */
	struct { int uffd, pidfd; } held[MAX_GUESTS];
	unsigned nheld;
	/* metrics (see the top of this file) */
	pthread_mutex_t mlock;
	struct mslot slots[METRICS_PIDS];
	struct mproc other_gone;    /* counters of pid="other" processes gone */
	bool other_used;            /* a process has been pid="other" */
	uint64_t refused[REF_N];    /* atomics */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-client (--connect HOST:PORT | --local PATH) --uffd-socket PATH [options]\n"
		"\n"
		"Page-fault handler daemon. A process connects to --uffd-socket and sends,\n"
		"in one message, a JSON array of {base_host_virt_addr, size, offset,\n"
		"page_size} with its userfaultfd attached (SCM_RIGHTS), as Firecracker's\n"
		"UFFD snapshot backend does; \"offset\" is an offset into the region.\n"
		"\n"
		"  -c, --connect HOST:PORT  the rpage-server holding the memory\n"
		"      --local PATH         serve pages from a file on this host instead\n"
		"  -u, --uffd-socket PATH   Unix socket to listen on for handshakes\n"
		"  -r, --region NAME        region to serve (default: the only/first one)\n"
		"  -t, --transport T        auto (default: rdma when both ends have a usable\n"
		"                           RDMA device, else tcp), tcp, rdma\n"
		"      --rdma-dev NAME      RDMA device to use (default: the one routing to\n"
		"                           the server)\n"
		"      --psk-file FILE      pre-shared key (the file's first IDENTITY:HEXKEY line)\n"
		"      --tls-cert FILE      X.509: this client's certificate (PEM)\n"
		"      --tls-key FILE       its private key (PEM)\n"
		"      --tls-ca FILE        the CA that signs the server's certificate (PEM)\n"
		"      --tls-name NAME      the name the server's certificate must carry\n"
		"                           (default: HOST of --connect)\n"
		"      --insecure           talk to a server beyond loopback without credentials\n"
		"      --no-ktls            keep TLS records in user space\n"
		"      --socket-mode MODE   permissions of --uffd-socket (octal, default 0600)\n"
		"      --socket-group GROUP group of --uffd-socket (name or number)\n"
		"      --allow-uid UID      serve only processes of these users or groups\n"
		"      --allow-gid GID      (repeatable; default: whoever can open the socket)\n"
		"      --handshake-timeout MS  a process must hand over its userfaultfd\n"
		"                           within MS of connecting (default 5000)\n"
		"      --stats-json FILE    append one JSON object per process (complete, gone)\n"
		"      --metrics HOST:PORT  serve metrics (OpenMetrics/Prometheus) at\n"
		"                           /metrics; :PORT is loopback. Beyond loopback\n"
		"                           only with X.509 credentials, as HTTPS that\n"
		"                           takes client certificates --tls-ca signed\n"
		"      --progress           live progress (default when stderr is a terminal)\n"
		"      --no-progress\n"
		"      --once               exit after the first process has gone\n"
		"      --fill-chunk BYTES   background fill request size (default 1 MiB)\n"
		"      --fill-depth N       background fill requests in flight (default 4)\n"
		"      --no-fill            serve faults only\n"
		"      --resume-timeout S   after a connection to the source breaks, keep\n"
		"                           reconnecting for S seconds (default 180, 'inf':\n"
		"                           for ever); faults wait meanwhile\n"
		"      --on-source-lost P   when the source is lost for good: kill (default)\n"
		"                           the process before its memory could read zeros,\n"
		"                           or wait: keep it blocked and keep reconnecting\n"
		"                           for ever (--resume-timeout does not apply)\n"
		"  -v, --verbose / -q, --quiet\n");
}

/* ---- metrics (docs/metrics.md) ---- */

static void count_refused(struct client *c, unsigned why)
{
	__atomic_fetch_add(&c->refused[why], 1, __ATOMIC_RELAXED);
}

/* Adds one process's figures to @m: the counters always, the gauges
 * (pages, state) only with @gauges (a live process, or a gone one's own
 * series). */
static void mproc_add(struct mproc *m, const struct rpage_stats *st,
		      const struct rp_hist *h, bool gauges)
{
	m->st.faults += st->faults;
	m->st.faults_waited += st->faults_waited;
	m->st.pages_by_fault += st->pages_by_fault;
	m->st.pages_by_fill += st->pages_by_fill;
	m->st.pages_zeroed += st->pages_zeroed;
	m->st.bytes_fault += st->bytes_fault;
	m->st.bytes_fill += st->bytes_fill;
	m->st.blocked_ns += st->blocked_ns;
	m->st.reconnects += st->reconnects;
	m->st.recovering_ns += st->recovering_ns;
	for (unsigned i = 0; i < RP_HIST_US2; i++)
		m->us2[i] += h->us2[i];
	m->lat_sum_ns += h->sum;
	if (!gauges)
		return;
	m->gauges = true;
	m->st.pages_total += st->pages_total;
	m->st.pages_resident += st->pages_resident;
	if (st->recovering_for_ns > m->st.recovering_for_ns)
		m->st.recovering_for_ns = st->recovering_for_ns;
	if (st->state < RP_ARRAY_SIZE(m->nstate))
		m->nstate[st->state]++;
}

/* A slot for a new process @pid (mlock held): a free one, else that of a
 * gone process with the same pid (its series name it), else the one gone
 * longest; -1 when every slot is a live process's. */
static int slot_take(struct client *c, pid_t pid)
{
	int best = -1;

	for (int i = 0; i < METRICS_PIDS; i++) {
		struct mslot *s = &c->slots[i];

		if (s->used && !s->live && s->pid == pid) {
			best = i;
			break;
		}
		if (!s->used) {
			if (best < 0 || c->slots[best].used)
				best = i;
		} else if (!s->live && (best < 0 || (c->slots[best].used &&
						     s->gone_ns < c->slots[best].gone_ns))) {
			best = i;
		}
	}
	if (best >= 0) {
		memset(&c->slots[best], 0, sizeof(c->slots[best]));
		c->slots[best].used = c->slots[best].live = true;
		c->slots[best].pid = pid;
	}
	return best;
}

/* Process @g goes (mlock held, its attachment stopped): its own series
 * keep its final figures; a pid="other" process's counters stay in
 * "other". */
static void metrics_gone(struct client *c, struct guest *g)
{
	struct rp_hist *h = malloc(sizeof(*h));
	struct rpage_stats st;

	g->mvisible = false;
	if (!h)
		return;
	rpage_attach_get_stats(g->att, &st);
	rp_attach_get_hist(g->att, h);
	if (g->mslot >= 0) {
		struct mslot *s = &c->slots[g->mslot];

		s->live = false;
		s->gone_ns = rp_now_ns();
		memset(&s->final, 0, sizeof(s->final));
		mproc_add(&s->final, &st, h, true);
		/* it is gone, whatever its attachment last said */
		memset(s->final.nstate, 0, sizeof(s->final.nstate));
		s->final.nstate[RPAGE_ATTACH_GONE] = 1;
	} else {
		mproc_add(&c->other_gone, &st, h, false);
	}
	free(h);
}

/* One scrape's snapshot: the slots' series, then pid="other". */
struct msnap {
	struct mproc p[METRICS_PIDS + 1];
	char pid[METRICS_PIDS + 1][16];
	unsigned n;
	unsigned active;            /* processes served now */
	uint64_t served, failed;
};

static int metrics_snapshot(struct client *c, struct msnap *sn)
{
	struct rp_hist *h = malloc(sizeof(*h));
	struct mproc *other;
	int slot_of[METRICS_PIDS];

	if (!h)
		return -ENOMEM;
	memset(sn, 0, sizeof(*sn));
	pthread_mutex_lock(&c->mlock);
	for (int i = 0; i < METRICS_PIDS; i++) {
		const struct mslot *s = &c->slots[i];

		slot_of[i] = -1;
		if (!s->used)
			continue;
		slot_of[i] = (int)sn->n;
		snprintf(sn->pid[sn->n], sizeof(sn->pid[0]), "%d", (int)s->pid);
		if (!s->live)
			sn->p[sn->n] = s->final;
		sn->n++;
	}
	other = &sn->p[sn->n];
	*other = c->other_gone;
	for (unsigned i = 0; i < c->ng; i++) {
		struct guest *g = c->g[i];
		struct rpage_stats st;

		if (!g->mvisible)
			continue;
		rpage_attach_get_stats(g->att, &st);
		rp_attach_get_hist(g->att, h);
		mproc_add(g->mslot >= 0 ? &sn->p[slot_of[g->mslot]] : other,
			  &st, h, true);
		sn->active++;
	}
	if (c->other_used)
		snprintf(sn->pid[sn->n++], sizeof(sn->pid[0]), "other");
	sn->served = c->served;
	sn->failed = c->failed;
	pthread_mutex_unlock(&c->mlock);
	free(h);
	return 0;
}

static const struct rp_mfam m_served = {
	"rpage_client_processes_served", RP_M_COUNTER, NULL,
	"Processes whose memory this daemon started serving"
};
static const struct rp_mfam m_failed = {
	"rpage_client_processes_failed", RP_M_COUNTER, NULL,
	"Served processes whose service failed (their source lost for good)"
};
static const struct rp_mfam m_refused = {
	"rpage_client_processes_refused", RP_M_COUNTER, NULL,
	"Processes that connected and were not served, by reason"
};
static const struct rp_mfam m_active = {
	"rpage_client_processes_active", RP_M_GAUGE, NULL,
	"Processes served now"
};
static const struct rp_mfam m_state = {
	"rpage_client_processes", RP_M_GAUGE, NULL,
	"Processes by state (a pid's own series: 1 in its state; pid=\"other\": how many)"
};
static const struct rp_mfam m_pages = {
	"rpage_client_pages", RP_M_GAUGE, NULL,
	"Pages of the memory served"
};
static const struct rp_mfam m_resident = {
	"rpage_client_resident_pages", RP_M_GAUGE, NULL,
	"Pages resident (placed with the source's data, or zeros after a discard)"
};
static const struct rp_mfam m_ratio = {
	"rpage_client_resident_ratio", RP_M_GAUGE, "ratio",
	"Fraction of the pages resident"
};
static const struct rp_mfam m_faults = {
	"rpage_client_faults", RP_M_COUNTER, NULL,
	"Page faults served"
};
static const struct rp_mfam m_waited = {
	"rpage_client_faults_waited", RP_M_COUNTER, NULL,
	"Faults that waited for a broken connection to come back"
};
static const struct rp_mfam m_placed = {
	"rpage_client_pages_placed", RP_M_COUNTER, NULL,
	"Pages placed, by origin: fault (on demand), fill (background), zero (after a discard)"
};
static const struct rp_mfam m_bytes = {
	"rpage_client_fetched_bytes", RP_M_COUNTER, "bytes",
	"Bytes fetched from the source, by origin"
};
static const struct rp_mfam m_blocked = {
	"rpage_client_blocked_seconds", RP_M_COUNTER, "seconds",
	"Time faulting threads spent waiting for their pages, summed over faults"
};
static const struct rp_mfam m_reconnects = {
	"rpage_client_reconnects", RP_M_COUNTER, NULL,
	"Broken connections to the source brought back"
};
static const struct rp_mfam m_recovering = {
	"rpage_client_recovering_seconds", RP_M_COUNTER, "seconds",
	"Time spent reconnecting, over recoveries that have ended"
};
static const struct rp_mfam m_recovery = {
	"rpage_client_recovery_in_progress_seconds", RP_M_GAUGE, "seconds",
	"How long the recovery under way has lasted (0: none)"
};
static const struct rp_mfam m_latency = {
	"rpage_client_fault_latency_seconds", RP_M_HISTOGRAM, "seconds",
	"Fault service time, in the power-of-two microsecond buckets of QEMU's postcopy-latency-dist"
};

static const char *const state_names[5] = {
	[RPAGE_ATTACH_RUNNING] = "running",
	[RPAGE_ATTACH_COMPLETE] = "complete",
	[RPAGE_ATTACH_FAILED] = "failed",
	[RPAGE_ATTACH_GONE] = "gone",
	[RPAGE_ATTACH_RECOVERING] = "recovering",
};

static int render_metrics(struct rp_mout *o, void *arg)
{
	static const char *const refused[REF_N] = {
		[REF_NOT_ALLOWED] = "not_allowed", [REF_TOO_MANY] = "too_many",
		[REF_HANDSHAKE] = "bad_handshake",
		[REF_HANDSHAKE_TIMEOUT] = "handshake_timeout",
	};
	struct client *c = arg;
	struct msnap *sn = malloc(sizeof(*sn));
	double le[RP_HIST_US2 - 1];
	int ret;

	if (!sn)
		return -ENOMEM;
	ret = metrics_snapshot(c, sn);
	if (ret) {
		free(sn);
		return ret;
	}
	/* bucket i of us2 holds [2^i, 2^(i+1)) us: its upper bound */
	for (unsigned i = 0; i + 1 < RP_HIST_US2; i++)
		le[i] = (double)(2ull << i) / 1e6;
	rp_m_family(o, &m_served);
	rp_m_u64(o, NULL, 0, sn->served);
	rp_m_family(o, &m_failed);
	rp_m_u64(o, NULL, 0, sn->failed);
	rp_m_family(o, &m_refused);
	for (unsigned i = 0; i < REF_N; i++) {
		struct rp_label l = { "reason", refused[i] };

		rp_m_u64(o, &l, 1, __atomic_load_n(&c->refused[i], __ATOMIC_RELAXED));
	}
	rp_m_family(o, &m_active);
	rp_m_u64(o, NULL, 0, sn->active);
	/* the gauges: of live processes, and of gone ones' own series */
	rp_m_family(o, &m_state);
	for (unsigned k = 0; k < sn->n; k++)
		for (unsigned s = 0; s < 5 && sn->p[k].gauges; s++) {
			struct rp_label l[2] = { { "pid", sn->pid[k] },
						 { "state", state_names[s] } };

			rp_m_u64(o, l, 2, sn->p[k].nstate[s]);
		}
	for (int f = 0; f < 4; f++) {
		rp_m_family(o, f == 0 ? &m_pages : f == 1 ? &m_resident
			       : f == 2 ? &m_ratio : &m_recovery);
		for (unsigned k = 0; k < sn->n; k++) {
			const struct rpage_stats *st = &sn->p[k].st;
			struct rp_label l = { "pid", sn->pid[k] };

			if (!sn->p[k].gauges)
				continue;
			if (f == 0)
				rp_m_u64(o, &l, 1, st->pages_total);
			else if (f == 1)
				rp_m_u64(o, &l, 1, st->pages_resident);
			else if (f == 2)
				rp_m_dbl(o, &l, 1, st->pages_total ?
					 (double)st->pages_resident /
						 (double)st->pages_total : 0.0);
			else
				rp_m_dbl(o, &l, 1, (double)st->recovering_for_ns / 1e9);
		}
	}
	/* the counters */
	for (int f = 0; f < 6; f++) {
		static const struct rp_mfam *const fam[6] = {
			&m_faults, &m_waited, &m_blocked, &m_reconnects,
			&m_recovering, &m_latency,
		};

		rp_m_family(o, fam[f]);
		for (unsigned k = 0; k < sn->n; k++) {
			const struct mproc *p = &sn->p[k];
			struct rp_label l = { "pid", sn->pid[k] };

			if (f == 0)
				rp_m_u64(o, &l, 1, p->st.faults);
			else if (f == 1)
				rp_m_u64(o, &l, 1, p->st.faults_waited);
			else if (f == 2)
				rp_m_dbl(o, &l, 1, (double)p->st.blocked_ns / 1e9);
			else if (f == 3)
				rp_m_u64(o, &l, 1, p->st.reconnects);
			else if (f == 4)
				rp_m_dbl(o, &l, 1, (double)p->st.recovering_ns / 1e9);
			else
				rp_m_hist(o, &l, 1, le, p->us2, RP_HIST_US2 - 1,
					  (double)p->lat_sum_ns / 1e9);
		}
	}
	rp_m_family(o, &m_placed);
	for (unsigned k = 0; k < sn->n; k++) {
		const struct rpage_stats *st = &sn->p[k].st;
		struct rp_label l[2] = { { "pid", sn->pid[k] }, { "origin", "fault" } };

		rp_m_u64(o, l, 2, st->pages_by_fault);
		l[1].value = "fill";
		rp_m_u64(o, l, 2, st->pages_by_fill);
		l[1].value = "zero";
		rp_m_u64(o, l, 2, st->pages_zeroed);
	}
	rp_m_family(o, &m_bytes);
	for (unsigned k = 0; k < sn->n; k++) {
		const struct rpage_stats *st = &sn->p[k].st;
		struct rp_label l[2] = { { "pid", sn->pid[k] }, { "origin", "fault" } };

		rp_m_u64(o, l, 2, st->bytes_fault);
		l[1].value = "fill";
		rp_m_u64(o, l, 2, st->bytes_fill);
	}
	free(sn);
	return 0;
}

static void guest_report(struct client *c, struct guest *g, const char *why)
{
	struct rpage_stats st;

	rpage_attach_get_stats(g->att, &st);
	if (c->tty && c->progress)
		fprintf(stderr, "\r\033[K");
	fprintf(stderr, "rpage-client: %s %s\n", g->name, why);
	rpage_stats_print(stderr, g->name, &st);
	if (c->json) {
		rpage_stats_print_json(c->json, g->name, &st);
		fflush(c->json);
	}
}

/* A process still has pages that have not arrived. */
static bool guest_missing(struct guest *g)
{
	struct rpage_stats st;

	if (g->state != G_SERVING)
		return g->state == G_ATTACHING;
	rpage_attach_get_stats(g->att, &st);
	return st.state != RPAGE_ATTACH_COMPLETE && st.state != RPAGE_ATTACH_GONE;
}

/*
 * Fail closed: the process is killed while its userfaultfd is still open,
 * so none of its threads can read a page that has not arrived as zeros
 * (releasing the userfaultfd first would let them). The descriptor is
 * released when the process is gone (its socket closes).
 */
static int guest_kill(struct guest *g, const char *why)
{
	int ret;

	if (g->killed)
		return 0;
	ret = g->pidfd >= 0 ? rp_pidfd_kill(g->pidfd, SIGKILL) : -ENOENT;
	if (ret == -ESRCH)
		return 0; /* it has exited already */
	if (ret) {
		fprintf(stderr, "rpage-client: %s: cannot be killed (%s) although %s: its userfaultfd stays open, so it stays blocked%s\n",
			g->name, strerror(-ret), why,
			ret == -EPERM ? " (to kill it, run rpage-client as the process's user or give it CAP_KILL)" : "");
		return ret;
	}
	g->killed = true;
	fprintf(stderr, "rpage-client: %s killed: %s, and its pages that have not arrived must never read as zeros\n",
		g->name, why);
	return 0;
}

/*
 * A process whose userfaultfd we hold but whose memory we will not serve
 * to the end (its attach failed after its handshake was accepted, or we
 * are stopping) must not be left to read missing
 * pages as zeros when we let the descriptor go: killed first, or (wait,
 * or when it cannot be killed) its descriptor is held until it exits. A
 * process that closed its socket has gone.
 */
static void guest_fail_closed(struct client *c, struct guest *g)
{
	/* a refused handshake only ends the connection: the process is told
	 * so by its socket closing, and was never told it is served */
	bool missing = g->uffd >= 0 && g->accepted && !g->gone && !g->killed &&
		       (g->state != G_SERVING || guest_missing(g));

	if (!missing)
		return;
	if (!c->wait_policy &&
	    guest_kill(g, "its memory can no longer be served") == 0)
		return;
	if (g->pidfd < 0 || c->nheld == MAX_GUESTS) {
		fprintf(stderr, "rpage-client: %s: cannot tell when it exits: its userfaultfd is kept open for as long as we run%s\n",
			g->name, c->wait_policy ? " (--on-source-lost=wait)" : "");
		g->uffd = -1; /* leaked on purpose: it stays blocked */
		return;
	}
	fprintf(stderr, "rpage-client: %s stays blocked%s: its userfaultfd is kept open until it exits\n",
		g->name, c->wait_policy ? " (--on-source-lost=wait)" : "");
	c->held[c->nheld].uffd = g->uffd;
	c->held[c->nheld++].pidfd = g->pidfd;
	g->uffd = g->pidfd = -1;
}

/* Ends guest @i; an attach in progress is waited for first. */
static void guest_close(struct client *c, unsigned i)
{
	struct guest *g = c->g[i];
	struct rpage_stats st = { 0 };

	if (g->state == G_ATTACHING) {
		pthread_join(g->thr, NULL);
		if (!g->attach_ret)
			g->state = G_SERVING;
	}
	if (g->state == G_SERVING)
		c->finished++;
	guest_fail_closed(c, g);
	if (g->att) {
		rpage_attach_stop(g->att);
		rpage_attach_get_stats(g->att, &st);
		guest_report(c, g, "has gone");
	}
	/* the metrics keep its final figures before it goes */
	pthread_mutex_lock(&c->mlock);
	if (g->att && st.state == RPAGE_ATTACH_FAILED)
		c->failed++;
	if (g->mvisible)
		metrics_gone(c, g);
	c->g[i] = c->g[--c->ng];
	pthread_mutex_unlock(&c->mlock);
	if (g->att)
		rpage_attach_free(g->att);
	if (g->uffd >= 0)
		close(g->uffd);
	if (g->done_efd >= 0)
		close(g->done_efd);
	if (g->pidfd >= 0)
		close(g->pidfd);
	free(g->ranges);
	close(g->sock);
	free(g);
}

/* The attach thread: connects to the source (network, TLS) off the main
 * loop. */
static void *attach_main(void *arg)
{
	struct guest *g = arg;
	struct client *c = g->c;
	struct rpage_attach_opts aopts = c->aopts;

	rp_thread_name("rpage/cli/att");
	aopts.pid = g->pid; /* the process behind the userfaultfd */
	g->attach_ret = rpage_attach_start(c->src, (unsigned)c->region, g->uffd,
					   g->ranges, g->nranges, &aopts,
					   &g->att);
	if (!g->attach_ret)
		g->uffd = -1; /* the attachment has it */
	rp_efd_signal(g->done_efd);
	return NULL;
}

/* The handshake message has arrived (the socket is readable): parse it
 * and start the attach thread. 0, -EAGAIN (not yet), or -errno (close). */
static int guest_handshake(struct guest *g)
{
	int ret;

	ret = rpage_fc_recv(g->sock, &g->ranges, &g->nranges, &g->uffd);
	if (ret == -EAGAIN)
		return ret;
	if (ret) {
		count_refused(g->c, REF_HANDSHAKE);
		fprintf(stderr, "rpage-client: %s: handshake refused: %s\n",
			g->name, strerror(-ret));
		return ret;
	}
	g->done_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->done_efd < 0)
		return -errno;
	g->state = G_ATTACHING;
	g->accepted = true; /* from here it may expect its memory served */
	ret = pthread_create(&g->thr, NULL, attach_main, g);
	if (ret) {
		g->state = G_HANDSHAKE;
		fprintf(stderr, "rpage-client: %s: cannot start a thread: %s\n",
			g->name, strerror(ret));
		return -ret;
	}
	return 0;
}

/* The attach thread is done: report how it went. */
static int guest_attached(struct client *c, struct guest *g)
{
	uint64_t total = 0;

	pthread_join(g->thr, NULL);
	if (g->attach_ret) {
		g->state = G_HANDSHAKE; /* nothing to stop */
		/* ranges or a userfaultfd we refuse are bad input, like a
		 * refused handshake; anything else (the source) fails closed */
		if (g->attach_ret == -EINVAL || g->attach_ret == -ENOTSUP ||
		    g->attach_ret == -EBADF || g->attach_ret == -ERANGE)
			g->accepted = false;
		fprintf(stderr, "rpage-client: %s: cannot serve its memory: %s\n",
			g->name, strerror(-g->attach_ret));
		return g->attach_ret;
	}
	g->state = G_SERVING;
	for (unsigned i = 0; i < g->nranges; i++)
		total += g->ranges[i].size;
	fprintf(stderr, "rpage-client: %s: serving %u range%s, %.1f MiB, page size %" PRIu64 "\n",
		g->name, g->nranges, g->nranges == 1 ? "" : "s",
		(double)total / 1048576.0, g->ranges[0].page_size);
	pthread_mutex_lock(&c->mlock);
	c->served++;
	g->mslot = slot_take(c, g->pid);
	c->other_used |= g->mslot < 0;
	g->mvisible = true;
	pthread_mutex_unlock(&c->mlock);
	return 0;
}

static bool peer_allowed(const struct client *c, uid_t uid, gid_t gid)
{
	if (!c->nallow_uid && !c->nallow_gid)
		return true;
	for (unsigned i = 0; i < c->nallow_uid; i++)
		if (c->allow_uid[i] == uid)
			return true;
	for (unsigned i = 0; i < c->nallow_gid; i++)
		if (c->allow_gid[i] == gid)
			return true;
	return false;
}

static unsigned pending(const struct client *c)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->ng; i++)
		n += c->g[i]->state == G_HANDSHAKE;
	return n;
}

/*
 * What this daemon may not do to process @g, said when it connects: signal
 * it (to kill it when its memory can no longer be served: it is kept
 * blocked instead), or read its /proc/PID/maps (to know what a fault
 * outside its ranges may read: such a fault ends its service). Both are
 * refused for a process of another user unless we have the capability.
 */
static void guest_check_reach(const struct guest *g)
{
	char path[64];
	int fd;

	if (g->pidfd >= 0 && rp_pidfd_kill(g->pidfd, 0) == -EPERM)
		fprintf(stderr, "rpage-client: %s (uid %u): this daemon (uid %u) cannot signal it: if its memory can no longer be served it is kept blocked instead of killed; to kill it, run rpage-client as its user or with CAP_KILL (AmbientCapabilities=CAP_KILL in the unit)\n",
			g->name, (unsigned)g->uid, (unsigned)geteuid());
	if (!g->pid)
		return;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)g->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	else if (errno == EACCES || errno == EPERM)
		fprintf(stderr, "rpage-client: %s (uid %u): this daemon (uid %u) cannot read %s: a fault outside the ranges it handed over (memory it mapped since) ends its service rather than reading zeros; run rpage-client as its user or with CAP_SYS_PTRACE\n",
			g->name, (unsigned)g->uid, (unsigned)geteuid(), path);
}

static void accept_guest(struct client *c)
{
	struct ucred cr = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t cl = sizeof(cr);
	struct guest *g;
	int fd;

	fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl))
		cr.pid = 0;
	if (!peer_allowed(c, cr.uid, cr.gid)) {
		count_refused(c, REF_NOT_ALLOWED);
		fprintf(stderr, "rpage-client: refusing process %d (uid %u, gid %u): not in --allow-uid/--allow-gid\n",
			(int)cr.pid, (unsigned)cr.uid, (unsigned)cr.gid);
		close(fd);
		return;
	}
	if (c->ng == MAX_GUESTS || pending(c) >= MAX_PENDING) {
		count_refused(c, REF_TOO_MANY);
		fprintf(stderr, "rpage-client: refusing process %d (uid %u): %s\n",
			(int)cr.pid, (unsigned)cr.uid,
			c->ng == MAX_GUESTS ? "256 processes are served already"
					    : "too many handshakes in progress");
		close(fd);
		return;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		close(fd);
		return;
	}
	g->c = c;
	g->sock = fd;
	g->pid = cr.pid;
	g->uid = cr.uid;
	g->gid = cr.gid;
	g->uffd = -1;
	g->done_efd = -1;
	g->pidfd = rp_peer_pidfd(fd, cr.pid);
	g->state = G_HANDSHAKE;
	g->deadline_ns = rp_now_ns() + (uint64_t)c->handshake_ms * 1000000ull;
	snprintf(g->name, sizeof(g->name), "process %d", (int)g->pid);
	g->mslot = -1;
	pthread_mutex_lock(&c->mlock);
	c->g[c->ng++] = g;
	pthread_mutex_unlock(&c->mlock);
	fprintf(stderr, "rpage-client: %s connected (uid %u, gid %u)\n", g->name,
		(unsigned)cr.uid, (unsigned)cr.gid);
	guest_check_reach(g);
}

static void progress(struct client *c, bool force)
{
	uint64_t now = rp_now_ns();
	double dt = (double)(now - c->last_tick) / 1e9;
	char line[512];
	size_t len = 0;

	if (!c->progress || (!force && dt < (c->tty ? 0.25 : 2.0)))
		return;
	c->last_tick = now;
	for (unsigned i = 0; i < c->ng && len < sizeof(line) - 128; i++) {
		struct guest *g = c->g[i];
		struct rpage_stats st;
		uint64_t bytes;

		if (g->state != G_SERVING)
			continue;
		rpage_attach_get_stats(g->att, &st);
		if (st.state == RPAGE_ATTACH_RECOVERING) {
			len += (size_t)snprintf(line + len, sizeof(line) - len,
				"%s[%d] %5.1f%% resident, recovering for %.1f s (%" PRIu64 " faults waiting so far)  ",
				len ? "| " : "", (int)g->pid,
				st.pages_total ? 100.0 * (double)st.pages_resident /
							 (double)st.pages_total
					       : 0.0,
				(double)st.recovering_for_ns / 1e9,
				st.faults_waited);
			continue;
		}
		if (st.state != RPAGE_ATTACH_RUNNING)
			continue; /* its report is out: leave the line clean */
		bytes = st.bytes_fill + st.bytes_fault;
		len += (size_t)snprintf(line + len, sizeof(line) - len,
			"%s[%d] %5.1f%% resident, %.0f faults/s, %.0f MB/s  ",
			len ? "| " : "", (int)g->pid,
			st.pages_total ? 100.0 * (double)st.pages_resident /
						 (double)st.pages_total
				       : 0.0,
			(double)(st.faults - g->last_faults) / dt,
			(double)(bytes - g->last_bytes) / 1e6 / dt);
		g->last_faults = st.faults;
		g->last_bytes = bytes;
	}
	if (!len)
		return;
	if (c->tty)
		fprintf(stderr, "\r\033[K%s", line);
	else
		fprintf(stderr, "rpage-client: progress: %s\n", line);
}

/* Says why the socket @path cannot be made in its directory (@err from
 * bind) and what to change. */
static void unix_dir_refused(const char *path, int err)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	if (err == -EROFS) {
		fprintf(stderr, "rpage-client: cannot make the socket %s: %s is on a read-only file system (ReadWritePaths= in the unit, or another --uffd-socket)\n",
			path, dir);
		return;
	}
	fprintf(stderr, "rpage-client: cannot make the socket %s: %s is not writable by uid %u (%s): give the daemon's user a directory of its own (RuntimeDirectory=rpage in the systemd unit makes /run/rpage; or mkdir, then chown it to that user), or choose another --uffd-socket\n",
		path, dir, (unsigned)geteuid(), strerror(-err));
}

/* The Unix socket, created with mode 0600 from the start (no window in
 * which the umask's mode applies), then given @mode and @gid. */
static int listen_unix(const char *path, mode_t mode, gid_t gid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	mode_t old;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "rpage-client: socket path too long: %s\n", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			fprintf(stderr, "rpage-client: %s exists and is not a socket\n",
				path);
			return -EEXIST;
		}
		/* stale socket from an earlier run */
		if (unlink(path) < 0 && (errno == EACCES || errno == EPERM ||
					 errno == EROFS)) {
			int e = -errno;

			unix_dir_refused(path, e);
			return e;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	old = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
		int e = -errno;

		unix_dir_refused(path, e);
		close(fd);
		return e;
	}
	if (ret == 0 && gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) {
		fprintf(stderr, "rpage-client: cannot give %s to group %u: %s%s\n",
			path, (unsigned)gid, strerror(errno),
			errno == EPERM ? " (the daemon's user must be a member of that group: usermod -aG, or SupplementaryGroups= in the unit; or run it with CAP_CHOWN)"
				       : "");
		ret = -1;
	} else if (ret == 0 && chmod(path, mode) < 0) {
		fprintf(stderr, "rpage-client: cannot set mode %04o on %s: %s\n",
			(unsigned)mode, path, strerror(errno));
		ret = -1;
	} else if (ret == 0) {
		ret = listen(fd, 64);
	}
	if (ret < 0) {
		int e = -errno;

		fprintf(stderr, "rpage-client: cannot listen on %s: %s\n", path,
			strerror(errno));
		close(fd);
		unlink(path);
		return e;
	}
	return fd;
}

/* Poll timeout: the nearest handshake deadline, or the progress tick. */
static int poll_timeout(const struct client *c)
{
	uint64_t now = rp_now_ns(), next = UINT64_MAX;
	int ms = c->progress ? 250 : -1;

	for (unsigned i = 0; i < c->ng; i++)
		if (c->g[i]->state == G_HANDSHAKE && c->g[i]->deadline_ns < next)
			next = c->g[i]->deadline_ns;
	if (next != UINT64_MAX) {
		int t = next <= now ? 0 : (int)((next - now) / 1000000 + 1);

		if (ms < 0 || t < ms)
			ms = t;
	}
	return ms;
}

/* One guest's events. Returns 0, or when it was closed 1 (the process
 * went away) or -errno (it failed: its handshake, or its attach). */
static int guest_events(struct client *c, unsigned i, short sr, short er)
{
	struct guest *g = c->g[i];
	int ret;

	if (er && g->state == G_ATTACHING) {
		ret = guest_attached(c, g);
		if (ret) {
			guest_close(c, i);
			return ret;
		}
		if (g->gone) {
			guest_close(c, i); /* it left while we connected */
			return 1;
		}
		return 0;
	}
	if (er && g->state == G_SERVING) {
		struct rpage_stats st;
		uint64_t v;

		if (read(rpage_attach_event_fd(g->att), &v, sizeof(v)) < 0)
			v = 0;
		rpage_attach_get_stats(g->att, &st);
		if (st.state == RPAGE_ATTACH_COMPLETE && !g->reported_complete) {
			g->reported_complete = true;
			guest_report(c, g, "is complete");
		} else if (st.state == RPAGE_ATTACH_FAILED && !g->reported_failed) {
			g->reported_failed = true;
			guest_report(c, g, "FAILED");
			if (c->wait_policy)
				fprintf(stderr, "rpage-client: %s stays blocked (--on-source-lost=wait): its userfaultfd is kept open\n",
					g->name);
			else
				guest_kill(g, "its source is lost");
		}
	}
	if (g->state == G_HANDSHAKE && !sr && rp_now_ns() >= g->deadline_ns) {
		count_refused(c, REF_HANDSHAKE_TIMEOUT);
		fprintf(stderr, "rpage-client: %s: handshake refused: no userfaultfd within %u ms of connecting\n",
			g->name, c->handshake_ms);
		guest_close(c, i);
		return -ETIMEDOUT;
	}
	if (!sr)
		return 0;
	if (g->state == G_HANDSHAKE) {
		ret = guest_handshake(g);
		if (ret && ret != -EAGAIN) {
			guest_close(c, i);
			return ret;
		}
		return 0;
	}
	{
		char b[256];
		ssize_t n = recv(g->sock, b, sizeof(b), MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			g->gone = true; /* the process closed its socket */
			if (g->state == G_ATTACHING)
				return 0; /* closed once attached */
			guest_close(c, i);
			return 1;
		}
	}
	return 0;
}

static bool any_missing(struct client *c)
{
	if (c->nheld)
		return true;
	for (unsigned i = 0; i < c->ng; i++)
		if (guest_missing(c->g[i]))
			return true;
	return false;
}

/*
 * SIGTERM/SIGINT. Processes whose pages have all arrived lose nothing.
 * Those with missing pages would read them as zeros once their
 * userfaultfds close with us: by policy they are killed first, or (wait)
 * we stay until they complete. True: exit now.
 */
static bool stop_requested(struct client *c, int sfd)
{
	struct signalfd_siginfo si;
	unsigned n = 0;

	if (read(sfd, &si, sizeof(si)) < 0)
		si.ssi_signo = SIGTERM;
	for (unsigned i = 0; i < c->ng; i++)
		n += guest_missing(c->g[i]);
	if (!n)
		return true;
	if (c->stopping)
		return false; /* said already */
	c->stopping = true;
	if (c->wait_policy) {
		fprintf(stderr, "rpage-client: %s: %u process%s still %s missing pages: stopping once they complete (--on-source-lost=wait)\n",
			strsignal((int)si.ssi_signo), n, n == 1 ? "" : "es",
			n == 1 ? "has" : "have");
		return false;
	}
	fprintf(stderr, "rpage-client: %s: %u process%s still %s missing pages: killing %s before %s memory could read zeros\n",
		strsignal((int)si.ssi_signo), n, n == 1 ? "" : "es",
		n == 1 ? "has" : "have", n == 1 ? "it" : "them",
		n == 1 ? "its" : "their");
	for (unsigned i = 0; i < c->ng; i++)
		if (guest_missing(c->g[i]))
			guest_kill(c->g[i], "the handler is stopping");
	return false; /* they go, their sockets close, then we do */
}

static int run(struct client *c, int sfd)
{
	struct pollfd pf[2 + 3 * MAX_GUESTS];

	for (;;) {
		unsigned np = 0, ng;

		pf[np++] = (struct pollfd){ sfd, POLLIN, 0 };
		pf[np++] = (struct pollfd){ c->listen_fd, POLLIN, 0 };
		for (unsigned i = 0; i < c->ng; i++) {
			struct guest *g = c->g[i];

			/* a process that closed during its attach is not
			 * polled (it would wake us endlessly) */
			pf[np++] = (struct pollfd){ g->gone ? -1 : g->sock,
						    POLLIN, 0 };
			pf[np++] = (struct pollfd){
				g->state == G_ATTACHING ? g->done_efd
				: g->state == G_SERVING ? rpage_attach_event_fd(g->att)
							: -1,
				POLLIN, 0
			};
		}
		ng = c->ng;
		for (unsigned k = 0; k < c->nheld; k++)
			pf[np++] = (struct pollfd){ c->held[k].pidfd, POLLIN, 0 };
		if (poll(pf, np, poll_timeout(c)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pf[0].revents && stop_requested(c, sfd))
			return 0;
		/* held descriptors of processes that have exited: released
		 * (backwards: the last one moves into k) */
		for (unsigned k = np - 2 - 2 * ng; k-- > 0;) {
			if (!pf[2 + 2 * ng + k].revents || k >= c->nheld)
				continue;
			close(c->held[k].uffd);
			close(c->held[k].pidfd);
			c->held[k] = c->held[--c->nheld];
		}
		/* walk backwards: guest_close moves the last guest into i */
		for (unsigned i = ng; i-- > 0;) {
			if (i >= c->ng)
				continue;
			guest_events(c, i, pf[2 + 2 * i].revents,
				     pf[3 + 2 * i].revents);
		}
		/* --once: the first process served has gone (a failed one
		 * is its problem, not ours, except for our exit status) */
		if (c->once && c->finished && !(c->wait_policy && any_missing(c)))
			return c->failed ? -EPROTO : 0;
		if (c->stopping && !any_missing(c))
			return 0; /* the last process with missing pages left */
		if (pf[1].revents)
			accept_guest(c);
		progress(c, false);
	}
}

/* A user or group id from a name or a number; -1 after a message. */
static long parse_id(const char *s, bool group)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!errno && !*end && v >= 0 && v < 0x7fffffff)
		return v;
	if (group) {
		struct group *gr = getgrnam(s);

		if (gr)
			return (long)gr->gr_gid;
	}
	fprintf(stderr, "rpage-client: '%s' is not a %s\n", s,
		group ? "group name or number" : "user number");
	return -1;
}

int main(int argc, char **argv)
{
	enum { O_LOCAL = 256, O_JSON, O_PROG, O_NOPROG, O_ONCE, O_CHUNK,
	       O_DEPTH, O_NOFILL, O_RDMA_DEV, O_SMODE, O_SGROUP, O_AUID,
	       O_AGID, O_HS, O_RESUME, O_LOST, O_METRICS };
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "local", required_argument, NULL, O_LOCAL },
		{ "uffd-socket", required_argument, NULL, 'u' },
		{ "region", required_argument, NULL, 'r' },
		{ "transport", required_argument, NULL, 't' },
		{ "rdma-dev", required_argument, NULL, O_RDMA_DEV },
		RP_TLS_LONGOPTS,
		{ "socket-mode", required_argument, NULL, O_SMODE },
		{ "socket-group", required_argument, NULL, O_SGROUP },
		{ "allow-uid", required_argument, NULL, O_AUID },
		{ "allow-gid", required_argument, NULL, O_AGID },
		{ "handshake-timeout", required_argument, NULL, O_HS },
		{ "stats-json", required_argument, NULL, O_JSON },
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "progress", no_argument, NULL, O_PROG },
		{ "no-progress", no_argument, NULL, O_NOPROG },
		{ "once", no_argument, NULL, O_ONCE },
		{ "fill-chunk", required_argument, NULL, O_CHUNK },
		{ "fill-depth", required_argument, NULL, O_DEPTH },
		{ "no-fill", no_argument, NULL, O_NOFILL },
		{ "resume-timeout", required_argument, NULL, O_RESUME },
		{ "on-source-lost", required_argument, NULL, O_LOST },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct client cl;
	struct client *c = &cl;
	const char *connect_to = NULL, *local = NULL, *sock = NULL;
	const char *region = NULL, *json = NULL, *rdma_dev = NULL;
	const char *metrics = NULL;
	struct rp_metrics_srv *msrv = NULL;
	int transport = RPAGE_TRANSPORT_AUTO, progress_opt = -1, o, ret, sfd;
	struct rpage_tls_opts to = { 0 };
	struct rpage_tls *tls = NULL;
	mode_t smode = 0600;
	gid_t sgid = (gid_t)-1;
	int insecure = 0;
	struct rpage_region_info ri;
	char sec[400];
	sigset_t ss;

	c->handshake_ms = HANDSHAKE_MS;
	pthread_mutex_init(&c->mlock, NULL);
	while ((o = getopt_long(argc, argv, "c:u:r:t:vqh", opts, NULL)) != -1) {
		char *end;
		unsigned long v;
		long id;

		switch (o) {
		case 'c':
			connect_to = optarg;
			break;
		case O_LOCAL:
			local = optarg;
			break;
		case 'u':
			sock = optarg;
			break;
		case 'r':
			region = optarg;
			break;
		case 't':
			transport = rpage_transport_parse(optarg);
			if (transport < 0) {
				fprintf(stderr, "rpage-client: unknown transport '%s' (auto, tcp, rdma)\n",
					optarg);
				return 2;
			}
			break;
		case O_JSON:
			json = optarg;
			break;
		case O_METRICS:
			metrics = optarg;
			if (rp_metrics_addr_check(metrics))
				return 2;
			break;
		case O_RDMA_DEV:
			rdma_dev = optarg;
			break;
		case O_SMODE:
			errno = 0;
			v = strtoul(optarg, &end, 8);
			if (errno || *end || v > 0777) {
				fprintf(stderr, "rpage-client: bad value '%s' for --socket-mode (octal, e.g. 0660)\n",
					optarg);
				return 2;
			}
			smode = (mode_t)v;
			break;
		case O_SGROUP:
			id = parse_id(optarg, true);
			if (id < 0)
				return 2;
			sgid = (gid_t)id;
			break;
		case O_AUID:
		case O_AGID:
			id = parse_id(optarg, o == O_AGID);
			if (id < 0)
				return 2;
			if ((o == O_AUID ? c->nallow_uid : c->nallow_gid) == MAX_IDS) {
				fprintf(stderr, "rpage-client: at most %d --allow-uid/--allow-gid each\n",
					MAX_IDS);
				return 2;
			}
			if (o == O_AUID)
				c->allow_uid[c->nallow_uid++] = (uid_t)id;
			else
				c->allow_gid[c->nallow_gid++] = (gid_t)id;
			break;
		case O_HS:
		case O_CHUNK:
		case O_DEPTH:
			errno = 0;
			v = strtoul(optarg, &end, 0);
			if (errno || *end || !v ||
			    v > (o == O_CHUNK ? 4ul << 20 : o == O_DEPTH ? 64 : 600000)) {
				fprintf(stderr, "rpage-client: bad value '%s' for --%s\n",
					optarg, o == O_CHUNK ? "fill-chunk"
						: o == O_DEPTH ? "fill-depth"
							       : "handshake-timeout");
				return 2;
			}
			if (o == O_CHUNK)
				c->aopts.fill_chunk = (uint32_t)v;
			else if (o == O_DEPTH)
				c->aopts.fill_depth = (uint32_t)v;
			else
				c->handshake_ms = (unsigned)v;
			break;
		case O_PROG:
			progress_opt = 1;
			break;
		case O_NOPROG:
			progress_opt = 0;
			break;
		case O_ONCE:
			c->once = true;
			break;
		case O_NOFILL:
			c->aopts.no_fill = 1;
			break;
		case O_RESUME:
			if (!strcmp(optarg, "inf")) {
				c->aopts.resume_timeout_ms = UINT32_MAX;
				break;
			}
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || !v || v > 4000000) {
				fprintf(stderr, "rpage-client: bad value '%s' for --resume-timeout (seconds, 1..4000000, or inf)\n",
					optarg);
				return 2;
			}
			c->aopts.resume_timeout_ms = (uint32_t)(v * 1000);
			break;
		case O_LOST:
			if (strcmp(optarg, "kill") && strcmp(optarg, "wait")) {
				fprintf(stderr, "rpage-client: --on-source-lost wants kill or wait, not '%s'\n",
					optarg);
				return 2;
			}
			c->wait_policy = !strcmp(optarg, "wait");
			break;
		case 'v':
			rpage_set_log_level(RPAGE_LOG_DEBUG);
			break;
		case 'q':
			rpage_set_log_level(RPAGE_LOG_ERR);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (rp_tls_getopt(o, optarg, &to, &insecure))
				break;
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !sock || !!connect_to == !!local) {
		fprintf(stderr, "rpage-client: %s\n",
			optind != argc ? "unexpected argument"
			: !sock	       ? "--uffd-socket PATH is required"
				       : "give exactly one of --connect HOST:PORT and --local PATH");
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* keeping a process blocked means never giving up on its source */
	if (c->wait_policy)
		c->aopts.resume_timeout_ms = UINT32_MAX;
	/* credentials: every problem is fatal here, at start, never retried */
	if (rp_tls_load("rpage-client", &to, &tls))
		return 1;
	if (local) {
		ret = rpage_source_open_local(region ? region : "local", local,
					      &c->src);
	} else {
		char host[256], port[32];

		if (rp_split_hostport(connect_to, host, sizeof(host), port,
				      sizeof(port))) {
			fprintf(stderr, "rpage-client: --connect wants HOST:PORT, got '%s'\n",
				connect_to);
			rpage_tls_free(tls);
			return 2;
		}
		struct rpage_connect_opts co = {
			.transport = (enum rpage_transport)transport,
			.rdma_dev = rdma_dev,
			.tls = tls,
			.insecure = insecure,
		};

		ret = rpage_source_connect_opts(host, port, &co, &c->src);
	}
	if (ret) {
		fprintf(stderr, "rpage-client: cannot open the source: %s\n",
			strerror(-ret));
		rpage_tls_free(tls);
		return 1;
	}
	c->region = region ? rpage_source_find_region(c->src, region) : 0;
	if (c->region < 0) {
		fprintf(stderr, "rpage-client: the source has no region '%s'\n",
			region);
		ret = 1;
		goto out_src;
	}
	rpage_source_region_info(c->src, (unsigned)c->region, &ri);
	if (json) {
		c->json = fopen(json, "a");
		if (!c->json) {
			fprintf(stderr, "rpage-client: cannot open %s: %s\n", json,
				strerror(errno));
			ret = 1;
			goto out_src;
		}
	}
	c->tty = isatty(2);
	c->progress = progress_opt >= 0 ? progress_opt : c->tty;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_CLOEXEC);
	c->listen_fd = listen_unix(sock, smode, sgid);
	if (c->listen_fd < 0) {
		ret = 1;
		goto out_src;
	}
	if (metrics) {
		struct rp_metrics_opts mo = {
			.prefix = "rpage_client", .addr = metrics, .tls = tls,
			.render = render_metrics, .arg = c,
		};

		ret = rp_metrics_start(&mo, &msrv);
		if (ret) {
			fprintf(stderr, "rpage-client: cannot serve metrics on %s: %s\n",
				metrics, strerror(-ret));
			close(c->listen_fd);
			unlink(sock);
			if (c->json)
				fclose(c->json);
			ret = 1;
			goto out_src;
		}
		printf("rpage-client: metrics at %s\n", rp_metrics_url(msrv));
	}
	rpage_source_security(c->src, sec, sizeof(sec));
	printf("rpage-client: ready on %s: region '%s' (%.1f MiB, page size %u) over %s\n",
	       sock, ri.name, (double)ri.length / 1048576.0, ri.page_size,
	       rpage_transport_name(rpage_source_transport(c->src)));
	printf("rpage-client: connection to the source: %s\n", sec);
	fflush(stdout);
	ret = run(c, sfd);
	while (c->ng)
		guest_close(c, c->ng - 1);
	rp_metrics_stop(msrv);
	if (c->nheld)
		fprintf(stderr, "rpage-client: %u blocked process%s lose%s its userfaultfd as we exit\n",
			c->nheld, c->nheld == 1 ? "" : "es", c->nheld == 1 ? "s" : "");
	for (unsigned k = 0; k < c->nheld; k++) {
		close(c->held[k].uffd);
		close(c->held[k].pidfd);
	}
	close(c->listen_fd);
	unlink(sock);
	if (c->json)
		fclose(c->json);
	if (ret < 0 && ret != -EPROTO)
		fprintf(stderr, "rpage-client: %s\n", strerror(-ret));
	ret = ret || c->failed ? 1 : 0;
out_src:
	rpage_source_close(c->src);
	rpage_tls_free(tls);
	return ret;
}
