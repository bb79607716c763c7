/* SPDX-License-Identifier: MIT */
/*
 * The fault handler's internals, shared by attach.c (threads, fill,
 * statistics) and place.c (what the handler knows of each address space,
 * the userfaultfd events, and the one placement path).
 *
 * Everything in `struct att_mm` and the counters `done` and `fault_buf_pg`
 * belong to the fault thread; the fill thread only reads the page bitmaps
 * (as hints) and owns `queued`.
 */
#ifndef RP_ATTACH_INT_H
#define RP_ATTACH_INT_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/userfaultfd.h>

#include "../common/bitmap.h"
#include "../common/hist.h"
#include "../common/uffd.h"
#include "client_int.h"

/* A range as it was handed over: where its pages come from. Immutable. */
struct att_range {
	uint64_t offset; /* region offset of its first page */
	uint64_t first;  /* attachment index of its first page */
	uint64_t npages;
};

/* Where some pages are mapped now: pages [first, first + npages) at
 * [base, base + npages * psize). Ranges split and move with the process's
 * munmap and mremap. */
struct att_seg {
	uint64_t base;
	uint64_t first, npages;
};

/* Part of a huge page that a hole punch zeroed before the page arrived:
 * the page is placed with these bytes zeroed. */
struct att_partial {
	uint64_t pg;
	uint32_t off, len;
};

/* A fault read but not yet served (its placement met -EAGAIN). */
struct att_fault {
	uint64_t addr;
	uint64_t flags;
	uint64_t t_read;
};

/*
 * One address space served through one userfaultfd: the process that
 * handed it over, or a child it forked (UFFD_EVENT_FORK). Page states, by
 * attachment page index:
 *   resident  placed (source data or zeros), or found present;
 *   zero      discarded (REMOVE): its source data is dead, it reads zeros;
 *   gone      unmapped: nothing to place there.
 * "Settled" (resident, zero or gone) only ever grows.
 */
struct att_mm {
	int uffd;
	bool child;
	struct att_seg *seg;
	unsigned nseg, segcap;
	struct rp_bitmap resident, zero, gone;
	struct att_partial *part;
	unsigned npart, partcap;
	struct att_fault *pend; /* faults waiting for events to be read */
	unsigned npend, pendcap;
	uint64_t spin_addr;     /* the last page reported present... */
	unsigned spin_count;    /* ...and how often in a row */
	bool warned_outside;
	bool dead;              /* the address space has gone (ESRCH) */
	bool stuck;             /* a fault we cannot answer is left waiting */
	bool eagain;            /* a placement met -EAGAIN: look again soon */
	/* a forked child: the private anonymous memory of its parent at the
	 * fork, where a fault outside every range reads zeros */
	struct rp_area *anon;
	unsigned nanon;
};

/* A page asked for on the urgent channel (client/urgent.c). */
enum att_slot_state {
	SLOT_FREE,
	SLOT_NEW,   /* to be sent with the next flush */
	SLOT_SENT,  /* in flight */
	SLOT_DONE,  /* its bytes are in buf: to be placed */
	SLOT_LOST,  /* the channel broke: sent again once it is back */
};

struct att_slot {
	enum att_slot_state state;
	struct att_mm *m;   /* for whom (NULL: that address space went) */
	uint64_t pg;
	uint64_t tag;
	char *buf;
};

/* An answer, or a channel event, from the receiver or recovery thread. */
struct att_done {
	uint64_t tag;
	int err;
};

struct slot {
	void *buf;
	uint64_t page;   /* first page (attachment index) */
	uint32_t npages;
	uint32_t placed; /* pages handled so far (fault thread) */
};

struct rpage_attach {
	struct rpage_source *src;
	uint32_t region;
	struct att_range *r;
	unsigned nr;
	uint64_t psize;
	uint64_t npages;
	uint32_t chunk, depth;
	bool no_fill;
	uint64_t uffd_features;
	int pid;                   /* the process, or 0 when unknown */

	struct att_mm mm;          /* the process that handed its memory over */
	struct att_mm **child;     /* its forked children (fault thread) */
	unsigned nchild, childcap;
	struct pollfd *pf;         /* the fault thread's poll set */
	uint64_t next_probe_ns;    /* when to check the children are alive */
	struct rp_bitmap queued;   /* fill thread */
	uint64_t done;             /* settled pages of `mm` (fault thread) */

	struct rp_chan *urgent, *bulk;
	pthread_t fault_thr, fill_thr;
	bool threads_started, fill_started;
	int stop_efd, event_efd, ready_efd;

	/* slot ring between fill (producer) and fault thread (consumer) */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct slot *slots;
	unsigned nslots, head, count;
	bool stopping;

	uint64_t hint_page; /* last faulting page, for the fill order */
	uint64_t hint_gen;

	void *zero_buf;

	/* the urgent channel's requests in flight (client/urgent.c) */
	struct att_slot *fl;       /* fault thread */
	unsigned nfl;
	char *flbuf;               /* nfl pages, the slots' buffers */
	uint64_t next_tag;
	pthread_t rx_thr;          /* receiver: waits for answers */
	bool rx_started;
	bool rx_ready;             /* the channel's fd polled readable */
	pthread_mutex_t dlock;     /* dq, between receiver/recovery and us */
	struct att_done *dq;
	unsigned dhead, dcount, dcap;
	int done_efd;
	bool urgent_down;          /* broken: a recovery runs */
	uint64_t t_down;
	uint64_t urgent_gen;       /* the source generation it was opened in */
	uint64_t bulk_gen;         /* fill thread: the same for bulk */
	pthread_t rec_thr;         /* recovery */
	bool rec_started;
	struct rp_chan *rec_chan;  /* what it opened (handed over in dq) */
	uint64_t rec_gen;
	int rec_err;
	uint64_t waited;           /* faults that waited for the channel */
	/* failures with no answer in between share one deadline, counted
	 * from the first, and back off: a page the server keeps failing on
	 * must not become an endless, immediate reconnect loop */
	uint64_t urgent_since, bulk_since;
	unsigned urgent_repeat, bulk_repeat;
	uint32_t resume_ms;        /* how long to try (UINT32_MAX: for ever) */
	int nrecovering;           /* channels being recovered (atomic) */
	uint64_t t_recover;        /* when the recovery under way began (slock) */

	pthread_mutex_t slock; /* stats */
	struct rpage_stats st;
	struct rp_hist hist;
	uint64_t t_start, t_end;
};

/* Where a placement's pages came from, for the counters. */
enum att_origin {
	ORIGIN_FAULT,
	ORIGIN_FILL,
};

#define ATT_AREAS 4096 /* mappings looked at for a fault outside the ranges */

/* ---- place.c: the address-space model and the one placement path ---- */

/* Memory for the fault thread's tables: mmap, never malloc (place.c says
 * why). att_grow grows a table of *cap elements of @elem bytes to @need. */
void *att_tbl_alloc(size_t len);
void att_tbl_free(void *p, size_t len);
int att_grow(void **p, unsigned *cap, unsigned need, size_t elem);

int att_mm_init(struct att_mm *m, uint64_t npages);
void att_mm_free(struct att_mm *m);
/* A fork child's view: the parent's mappings and discards, nothing placed. */
int att_mm_clone(struct att_mm *child, const struct att_mm *parent);
int att_seg_add(struct att_mm *m, uint64_t base, uint64_t first,
		uint64_t npages);
/* The mapping holding page @pg (NULL: unmapped), and the page at @addr. */
struct att_seg *att_seg_of_page(struct att_mm *m, uint64_t pg);
struct att_seg *att_seg_of_addr(struct att_mm *m, uint64_t addr,
				uint64_t psize);
static inline uint64_t att_seg_addr(const struct att_seg *s, uint64_t pg,
				    uint64_t psize)
{
	return s->base + (pg - s->first) * psize;
}
bool att_settled(const struct att_mm *m, uint64_t pg);

/* Events (applied before the faults read with them). */
void att_on_remove(struct rpage_attach *a, struct att_mm *m, uint64_t start,
		   uint64_t end);
/* The mapping under [lo, hi) went away or moved (UNMAP, REMAP): the
 * faults still waiting there are woken, as the kernel ends a fault whose
 * mapping changed under it, and retry against what is mapped now (a fresh
 * message, or the kernel's own answer). A page asked for still arrives
 * and is placed where it lives now. */
void att_pend_wake(struct rpage_attach *a, struct att_mm *m, uint64_t lo,
		   uint64_t hi);
void att_on_unmap(struct rpage_attach *a, struct att_mm *m, uint64_t start,
		  uint64_t end);
void att_on_remap(struct rpage_attach *a, struct att_mm *m, uint64_t from,
		  uint64_t to, uint64_t len);

/*
 * The one placement path. Places @n pages from page @pg (all in one
 * mapping, none settled) with @data (n * psize bytes; NULL: zeros), or, with
 * @pg == ~0, zeros at @addr outside every range. Keeps every rule: a
 * discarded page never gets source data, -EEXIST means present (marked
 * resident and woken), -EAGAIN means an event must be read first (*done
 * tells how many were placed before it), -ENOENT/-EFAULT mark the rest of
 * the mapping gone, -ESRCH means the address space has gone. Returns 0,
 * -EAGAIN, or -errno after recording the end state.
 */
int att_place(struct rpage_attach *a, struct att_mm *m, uint64_t pg,
	      uint64_t addr, uint64_t n, void *data, enum att_origin o,
	      uint64_t *done);

/* attach.c: the attachment's end states and completion. */
void att_set_final(struct rpage_attach *a, uint32_t state, int err);
void att_settle(struct rpage_attach *a, struct att_mm *m, uint64_t newly);
uint32_t att_state(struct rpage_attach *a);
/* A channel starts (+1) or ends (-1) recovering: the state says so. */
void att_recovering(struct rpage_attach *a, int delta);
/* Sleeps before the @repeat-th reconnection in a row with no data in
 * between: 100 ms doubling to 5 s, with jitter. 0, or -ECANCELED when
 * stopping. */
int att_backoff(struct rpage_attach *a, unsigned repeat);
/* The page @pg of @m was placed from the urgent channel (att_place
 * returned @ret): the faults waiting for it are answered. */
void att_faults_answered(struct rpage_attach *a, struct att_mm *m,
			 uint64_t pg, int ret);

/* ---- urgent.c: requests in flight on the urgent channel ---- */

/* Slots for @depth requests and their buffers. 0 or -ENOMEM. */
int att_urgent_init(struct rpage_attach *a, unsigned depth);
/* a->urgent is open: register the buffers, start the receiver. */
int att_urgent_start(struct rpage_attach *a);
void att_urgent_free(struct rpage_attach *a);
/* Makes a blocked receiver return (stopping). */
void att_urgent_abort(struct rpage_attach *a);
/* Readable when answers (or a failure, or a recovery) wait. */
int att_urgent_fd(const struct rpage_attach *a);
/* The channel's fd to poll for answers the fault thread reads itself, or
 * -1 (none in flight, or a receiver thread reads them). */
int att_urgent_rx_fd(const struct rpage_attach *a);
/* After poll: the revents of att_urgent_fd's and att_urgent_rx_fd's
 * entries. 0 or -errno. */
int att_urgent_polled(struct rpage_attach *a, short done_ev, short rx_ev);
/* Asks for page @pg of @m (coalesced with a request for the same page):
 * 0, or -EBUSY when every slot is in flight (ask again later). */
int att_urgent_request(struct rpage_attach *a, struct att_mm *m, uint64_t pg);
/* Sends what was asked since the last flush, in one submit. */
void att_urgent_flush(struct rpage_attach *a);
/* Takes the answers and places their pages; handles a failure (starts a
 * recovery) and a recovery's end. 0, or -errno when the attachment
 * failed. *busy is set when anything happened. */
int att_urgent_process(struct rpage_attach *a, bool *busy);
/* An answered page still waits for its placement (-EAGAIN). */
bool att_urgent_waiting(const struct rpage_attach *a);
/* @m has gone: answers for it are dropped. */
void att_urgent_forget(struct rpage_attach *a, struct att_mm *m);

#endif
