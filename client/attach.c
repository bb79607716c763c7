/* SPDX-License-Identifier: MIT */
/*
 * One userfaultfd and the memory behind it: the fault thread and the
 * background fill thread.
 *
 * Threads and ownership:
 *  - The fault thread ("rpage/fault") is the only thread that reads the
 *    userfaultfd (and those of the process's forked children) and the only
 *    one that places pages, always through att_place() (place.c). It owns
 *    the page states and the mappings of every address space it serves.
 *    Each batch read from a userfaultfd has its events applied before its
 *    faults are served; the kernel answers a placement with -EAGAIN while
 *    an event is queued and unread, so no placement can land after a
 *    discard it has not seen (docs/architecture.md states the rules).
 *  - The fill thread ("rpage/fill") fetches chunks over its own channel
 *    into slots and hands them to the fault thread, which places them a
 *    slice at a time between batches of fault messages (64 KiB while faults
 *    keep coming, 256 KiB when idle): a fault waits for at most one slice
 *    copy, never for the network, and a steady stream of faults cannot
 *    starve the fill. The fill thread owns the `queued` bitmap and reads
 *    the page states only as hints.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/random.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/bitmap.h"
#include "../common/hist.h"
#include "../common/inject.h"
#include "../common/uffd.h"
#include "attach_int.h"
#include "live_int.h"

#define FILL_CHUNK_DEFAULT (1u << 20)
#define FILL_DEPTH_DEFAULT 4u
#define PLACE_SLICE (256u << 10) /* bytes placed between fault checks */
#define PLACE_SLICE_BUSY (64u << 10) /* ... while faults keep coming */
#define FAULT_WINDOW (2u << 20)  /* bytes filled after a fault first */
#define MSG_BATCH 16
#define SPIN_LIMIT 10000 /* faults in a row on a page reported present */
#define MAX_CHILDREN 256 /* forked children served per process */
#define CHILD_PROBE_MS 1000 /* how often to look for children that exited */
#define INFLIGHT_DEFAULT 16u     /* faults' pages in flight at once */
#define INFLIGHT_HUGE_DEFAULT 4u /* ... of 2 MiB */
#define INFLIGHT_MAX 64u
/* How long a broken connection is retried before the process is given up:
 * long enough for a server restart, a link flap or a switch rebooting
 * (one to three minutes); beyond that the source host is likely gone and
 * the process is better restarted from elsewhere than kept waiting. */
#define RESUME_MS_DEFAULT 180000u

/* The state is written under slock by the fault or the fill thread and
 * read anywhere. */
uint32_t att_state(struct rpage_attach *a)
{
	return __atomic_load_n(&a->st.state, __ATOMIC_ACQUIRE);
}

/* The attachment ends (failure or process gone). */
static bool state_final(uint32_t st)
{
	return st == RPAGE_ATTACH_FAILED || st == RPAGE_ATTACH_GONE;
}

void att_set_final(struct rpage_attach *a, uint32_t state, int err)
{
	pthread_mutex_lock(&a->slock);
	if (!state_final(att_state(a))) {
		__atomic_store_n(&a->st.state, state, __ATOMIC_RELEASE);
		a->st.error = err;
		a->t_end = rp_now_ns();
	}
	pthread_mutex_unlock(&a->slock);
	rp_efd_signal(a->event_efd);
}

/* @newly pages of @m became settled (resident, discarded or gone). */
void att_settle(struct rpage_attach *a, struct att_mm *m, uint64_t newly)
{
	if (m->child || !newly)
		return;
	a->done += newly;
	if (a->done == a->npages) {
		uint32_t st;

		/* under the lock: a failure recorded meanwhile stands */
		pthread_mutex_lock(&a->slock);
		st = att_state(a);
		if (st != RPAGE_ATTACH_RUNNING && st != RPAGE_ATTACH_RECOVERING) {
			pthread_mutex_unlock(&a->slock);
			return;
		}
		__atomic_store_n(&a->st.state, RPAGE_ATTACH_COMPLETE,
				 __ATOMIC_RELEASE);
		a->st.resident_ns = rp_now_ns() - a->t_start;
		pthread_mutex_unlock(&a->slock);
		rp_source_notify_done(a->src, a->region);
		rp_efd_signal(a->event_efd);
	}
}

int att_backoff(struct rpage_attach *a, unsigned repeat)
{
	unsigned ms = 100u << RP_MIN(repeat - 1, 6u), jit;
	struct pollfd pf = { a->stop_efd, POLLIN, 0 };

	ms = RP_MIN(ms, 5000u);
	if (getrandom(&jit, sizeof(jit), GRND_NONBLOCK) != sizeof(jit))
		jit = (unsigned)rp_now_ns();
	ms = ms / 2 + jit % (ms / 2 + 1);
	return poll(&pf, 1, (int)ms) > 0 ? -ECANCELED : 0;
}

void att_recovering(struct rpage_attach *a, int delta)
{
	int n = __atomic_add_fetch(&a->nrecovering, delta, __ATOMIC_ACQ_REL);
	uint32_t st;

	pthread_mutex_lock(&a->slock);
	st = att_state(a);
	if (n == 1 && delta > 0)
		a->t_recover = rp_now_ns();
	/* one recovery: from the first channel down to the last one back */
	if (n == 0 && delta < 0 && st != RPAGE_ATTACH_FAILED) {
		a->st.reconnects++;
		a->st.recovering_ns += rp_now_ns() - a->t_recover;
	}
	if (n > 0 && st == RPAGE_ATTACH_RUNNING)
		__atomic_store_n(&a->st.state, RPAGE_ATTACH_RECOVERING,
				 __ATOMIC_RELEASE);
	else if (n == 0 && st == RPAGE_ATTACH_RECOVERING)
		__atomic_store_n(&a->st.state, RPAGE_ATTACH_RUNNING,
				 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&a->slock);
	rp_efd_signal(a->event_efd);
}

static const struct att_range *range_of_page(const struct rpage_attach *a,
					     uint64_t pg)
{
	for (unsigned i = 0; i < a->nr; i++)
		if (pg >= a->r[i].first && pg - a->r[i].first < a->r[i].npages)
			return &a->r[i];
	return NULL;
}

static uint64_t page_off(const struct rpage_attach *a, uint64_t pg)
{
	const struct att_range *r = range_of_page(a, pg);

	return r->offset + (pg - r->first) * a->psize;
}

static void fault_done(struct rpage_attach *a, struct att_mm *m,
		       uint64_t t_read, bool raced, bool data)
{
	uint64_t t1 = rp_now_ns();

	pthread_mutex_lock(&a->slock);
	a->st.faults++;
	if (raced)
		a->st.faults_raced++;
	else if (data && !m->child)
		a->st.bytes_fault += a->psize;
	a->st.blocked_ns += t1 - t_read;
	rp_hist_add(&a->hist, t1 - t_read);
	pthread_mutex_unlock(&a->slock);
}

/*
 * A fault outside every range we were given: memory the process mapped,
 * registered or moved there since (an mremap that grew a mapping, the old
 * place of an MREMAP_DONTUNMAP). Where that memory is private and
 * anonymous the kernel's answer is zeros. Anywhere else (a shared or
 * file-backed mapping) we cannot know what it holds: the fault is left
 * unanswered and the process's service ends, rather than give it bytes
 * that may be wrong.
 */
static int fault_outside(struct rpage_attach *a, struct att_mm *m,
			 uint64_t addr, uint64_t t_read)
{
	bool anon = false;
	uint64_t k;
	int ret = 0;

	if (m->child) {
		anon = rp_area_covers(m->anon, m->nanon, addr, a->psize);
	} else if (a->pid) {
		ret = rp_proc_addr_kind(a->pid, addr);
		if (ret == -ENOENT) {
			/* nothing is mapped there any more: a message that
			 * outlived its mapping (two threads faulted on one
			 * page, or the process unmapped it meanwhile). Waking
			 * the address lets any access still waiting retry,
			 * and get the kernel's own answer. */
			rp_dbg("uffd %d: a fault at 0x%" PRIx64 " where nothing is mapped any more: woken",
			       m->uffd, addr);
			rp_uffd_wake(m->uffd, addr, a->psize);
			fault_done(a, m, t_read, true, false);
			return 0;
		}
		anon = ret == 1;
	}
	if (!anon) {
		rp_err("uffd %d: a fault at 0x%" PRIx64 " is outside every range this handler was given, in memory %s: cannot know what it holds, so the fault is not answered",
		       m->uffd, addr,
		       !a->pid ? "of a process whose pid is unknown"
		       : ret == -EACCES || ret == -EPERM
			       ? "this daemon may not look at (its /proc/PID/maps is unreadable: run the daemon as the process's user, or give it CAP_SYS_PTRACE)"
			       : "that is not private anonymous (shared or file-backed)");
		if (m->child) {
			m->stuck = true;
			return 0; /* the child's other faults are still served */
		}
		att_set_final(a, RPAGE_ATTACH_FAILED, -EFAULT);
		return -EFAULT;
	}
	if (!m->warned_outside) {
		m->warned_outside = true;
		rp_info("uffd %d: a fault at 0x%" PRIx64 " is outside every range this handler was given, in private anonymous memory: it reads zeros",
			m->uffd, addr);
	}
	ret = att_place(a, m, UINT64_MAX, addr, 1, NULL, ORIGIN_FAULT, &k);
	if (ret == -EAGAIN)
		return ret;
	fault_done(a, m, t_read, ret == -EEXIST, false);
	return ret == -EEXIST || ret == -ENOENT || ret == -EFAULT ? 0 : ret;
}

/*
 * Serves one fault of @m. Returns 0 (answered), 1 (its page is asked for
 * on the urgent channel: it is answered when the page arrives), -EAGAIN
 * (an event must be read first: keep the fault and try again), or -errno
 * when @m can no longer be served (its end state is recorded).
 */
static int serve_fault(struct rpage_attach *a, struct att_mm *m,
		       const struct att_fault *f)
{
	uint64_t addr = f->addr & ~(a->psize - 1), pg, k = 0;
	struct att_seg *s;
	int ret;

	if (f->flags & (UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_MINOR)) {
		rp_err("uffd %d: a %s fault at 0x%" PRIx64 ": the process registered that mode on the userfaultfd it handed over, and only missing faults are served",
		       m->uffd, f->flags & UFFD_PAGEFAULT_FLAG_WP ? "write-protect" : "minor",
		       addr);
		if (m->child) {
			m->dead = true;
		} else {
			att_set_final(a, RPAGE_ATTACH_FAILED, -EINVAL);
		}
		return -EINVAL;
	}
	s = att_seg_of_addr(m, addr, a->psize);
	if (!s)
		return fault_outside(a, m, addr, f->t_read);
	pg = s->first + (addr - s->base) / a->psize;
	if (addr != m->spin_addr) {
		m->spin_addr = addr;
		m->spin_count = 0;
	}
	if (rp_bit_test(&m->resident, pg) || rp_bit_test(&m->zero, pg)) {
		/* Placed already: either this message was read before the
		 * placement woke the thread, or the page was discarded since
		 * without an event. Placing zeros tells them apart
		 * atomically: -EEXIST, present; else it was discarded, and
		 * zeros are what a discarded page reads. */
		bool was_res = rp_bit_test(&m->resident, pg);

		ret = att_place(a, m, pg, addr, 1, NULL, ORIGIN_FAULT, &k);
		if (ret == 0 && was_res && !rp_bit_set(&m->zero, pg))
			rp_dbg("uffd %d: page at 0x%" PRIx64 " was dropped without an event: zeros",
			       m->uffd, addr);
	} else {
		/* the source's data: asked for on the urgent channel; the
		 * fault is answered when it arrives (att_faults_answered) */
		att_urgent_request(a, m, pg);
		return 1;
	}
	if (ret == -EAGAIN)
		return ret;
	if (ret == -EEXIST && ++m->spin_count > SPIN_LIMIT) {
		/* e.g. hugetlb memory mapped MAP_NORESERVE with no huge page
		 * left: the kernel says EEXIST and the process faults again */
		rp_err("the page at 0x%" PRIx64 " keeps faulting although the kernel reports it present (out of huge pages?): giving up on this process",
		       addr);
		if (m->child)
			m->dead = true;
		else
			att_set_final(a, RPAGE_ATTACH_FAILED, -ENOMEM);
		return -ENOMEM;
	}
	if (ret && ret != -EEXIST && ret != -ENOENT && ret != -EFAULT)
		return ret;
	fault_done(a, m, f->t_read, ret == -EEXIST, false);
	return 0;
}

void att_faults_answered(struct rpage_attach *a, struct att_mm *m,
			 uint64_t pg, int ret)
{
	bool first = true;

	for (unsigned i = 0; i < m->npend;) {
		struct att_fault *f = &m->pend[i];
		struct att_seg *s = att_seg_of_addr(m, f->addr & ~(a->psize - 1),
						    a->psize);

		if (!s || s->first + ((f->addr & ~(a->psize - 1)) - s->base) /
					   a->psize != pg) {
			i++;
			continue;
		}
		fault_done(a, m, f->t_read, ret == -EEXIST, first && ret == 0);
		first = false;
		memmove(f, f + 1, (--m->npend - i) * sizeof(*f));
	}
}

void att_pend_wake(struct rpage_attach *a, struct att_mm *m, uint64_t lo,
		   uint64_t hi)
{
	for (unsigned i = 0; i < m->npend;) {
		uint64_t addr = m->pend[i].addr & ~(a->psize - 1);

		if (addr < lo || addr >= hi) {
			i++;
			continue;
		}
		rp_dbg("uffd %d: a fault at 0x%" PRIx64 " outlived its mapping: woken",
		       m->uffd, addr);
		rp_uffd_wake(m->uffd, addr, a->psize);
		fault_done(a, m, m->pend[i].t_read, true, false);
		memmove(&m->pend[i], &m->pend[i + 1],
			(--m->npend - i) * sizeof(*m->pend));
	}
}

static void child_free(struct rpage_attach *a, struct att_mm *c)
{
	att_urgent_forget(a, c);
	if (c->uffd >= 0)
		close(c->uffd);
	att_mm_free(c);
	att_tbl_free(c, sizeof(*c));
}

/* Drops the children whose address space has gone (they exited or
 * exec'd); with @all, checks each one now. */
static void reap_children(struct rpage_attach *a, bool all)
{
	for (unsigned i = 0; i < a->nchild;) {
		struct att_mm *c = a->child[i];
		uint64_t probe = c->nseg ? c->seg[0].base : 1ull << 30;

		if (all && !c->dead &&
		    !rp_uffd_mm_alive(c->uffd, probe, a->psize))
			c->dead = true;
		if (!c->dead) {
			i++;
			continue;
		}
		rp_dbg("uffd %d: a forked child has gone", c->uffd);
		child_free(a, c);
		a->child[i] = a->child[--a->nchild];
	}
}

/* UFFD_EVENT_FORK: the child's userfaultfd, now ours; its missing pages
 * are served like the parent's, until its address space goes. */
static void on_fork(struct rpage_attach *a, struct att_mm *m, int ufd)
{
	struct att_mm *c = NULL;

	if (a->nchild == MAX_CHILDREN)
		reap_children(a, true);
	if (a->nchild == MAX_CHILDREN) {
		rp_err("uffd %d: more than %d forked children at once: the new child's userfaultfd is closed, so its pages not yet arrived read zeros",
		       m->uffd, MAX_CHILDREN);
		close(ufd);
		return;
	}
	if (!att_grow((void **)&a->child, &a->childcap, a->nchild + 1,
		      sizeof(*a->child)))
		c = att_tbl_alloc(sizeof(*c));
	if (!c || att_mm_clone(c, m)) {
		rp_err("uffd %d: out of memory serving a forked child: its userfaultfd is closed",
		       m->uffd);
		att_tbl_free(c, sizeof(*c));
		close(ufd);
		return;
	}
	/* where a fault outside the ranges may read zeros: the private
	 * anonymous memory at the fork (the child's is the parent's) */
	c->anon = att_tbl_alloc(ATT_AREAS * sizeof(*c->anon));
	if (c->anon && m->child) {
		memcpy(c->anon, m->anon, m->nanon * sizeof(*c->anon));
		c->nanon = m->nanon;
	} else if (c->anon && a->pid) {
		int n = rp_proc_anon_areas(a->pid, c->anon, ATT_AREAS);

		c->nanon = n > 0 ? (unsigned)n : 0;
	}
	c->uffd = ufd;
	rp_set_nonblock(ufd, true);
	a->child[a->nchild++] = c;
	rp_dbg("uffd %d: forked child served on uffd %d", m->uffd, ufd);
}

static int pend_push(struct att_mm *m, const struct uffd_msg *msg,
		     uint64_t t_read)
{
	if (att_grow((void **)&m->pend, &m->pendcap, m->npend + 1,
		     sizeof(*m->pend)))
		return -ENOMEM;
	m->pend[m->npend++] = (struct att_fault){
		msg->arg.pagefault.address, msg->arg.pagefault.flags, t_read
	};
	return 0;
}

/*
 * Serves @m's faults, older ones first: those answered leave the list;
 * those whose page is asked for stay until it arrives; at -EAGAIN the rest
 * waits for the events to be read. 0, or -errno when @m can no longer be
 * served.
 */
static int serve_pending(struct rpage_attach *a, struct att_mm *m)
{
	m->eagain = false;
	for (unsigned i = 0; i < m->npend && !m->dead;) {
		int ret = serve_fault(a, m, &m->pend[i]);

		if (ret == -EAGAIN) {
			m->eagain = true;
			return 0;
		}
		if (ret == 1) {
			i++;
			continue;
		}
		memmove(&m->pend[i], &m->pend[i + 1],
			(--m->npend - i) * sizeof(*m->pend));
		if (ret)
			return ret;
	}
	return m->dead ? -ESRCH : 0;
}

/*
 * Reads one batch of @m's messages (at most MSG_BATCH, so a stream of
 * faults cannot starve the fill), applies its events in order, then serves
 * the faults, older ones first. *busy tells whether anything was read.
 * Returns 0, or -errno when @m can no longer be served.
 */
static int service_mm(struct rpage_attach *a, struct att_mm *m, bool *busy,
		      short revents)
{
	struct uffd_msg msgs[MSG_BATCH];
	/* read only what poll found: a read that finds nothing costs a
	 * system call per turn, and a message that came since is found
	 * by the next poll */
	ssize_t n = revents ? read(m->uffd, msgs, sizeof(msgs)) : 0;
	uint64_t t_read = rp_now_ns();
	int ret = 0;

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			ret = -errno;
			rp_err("reading userfaultfd %d: %s", m->uffd, strerror(errno));
			goto dead;
		}
		n = 0;
	}
	if (n % (ssize_t)sizeof(msgs[0])) {
		ret = -EIO;
		rp_err("userfaultfd %d: a short message", m->uffd);
		goto dead;
	}
	for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
		const struct uffd_msg *g = &msgs[i];

		switch (g->event) {
		case UFFD_EVENT_PAGEFAULT:
			if (pend_push(m, g, t_read)) {
				ret = -ENOMEM;
				goto dead;
			}
			break;
		case UFFD_EVENT_REMOVE:
			att_on_remove(a, m, g->arg.remove.start, g->arg.remove.end);
			break;
		case UFFD_EVENT_UNMAP:
			att_on_unmap(a, m, g->arg.remove.start, g->arg.remove.end);
			break;
		case UFFD_EVENT_REMAP:
			att_on_remap(a, m, g->arg.remap.from, g->arg.remap.to,
				     g->arg.remap.len);
			break;
		case UFFD_EVENT_FORK:
			on_fork(a, m, (int)g->arg.fork.ufd);
			break;
		default:
			rp_warn("uffd %d: ignoring userfaultfd event 0x%x", m->uffd,
				g->event);
			break;
		}
	}
	if (n)
		*busy = true;
	return serve_pending(a, m);
dead:
	if (m->child)
		m->dead = true;
	else
		att_set_final(a, RPAGE_ATTACH_FAILED, ret);
	return ret;
}

/* Places up to @bytes of the head slot; *finished tells whether the slot
 * is done. */
static int place_slice(struct rpage_attach *a, struct slot *s, uint32_t bytes,
		       bool *finished)
{
	struct att_mm *m = &a->mm;
	uint32_t budget = RP_MAX(1u, bytes / (uint32_t)a->psize);

	*finished = false;
	while (budget && s->placed < s->npages) {
		uint64_t pg = s->page + s->placed, run = 0, k = 0;
		struct att_seg *sg;
		int ret;

		if (att_settled(m, pg) || !(sg = att_seg_of_page(m, pg))) {
			s->placed++;
			continue;
		}
		while (s->placed + run < s->npages && run < budget &&
		       pg + run < sg->first + sg->npages &&
		       !att_settled(m, pg + run))
			run++;
		ret = att_place(a, m, pg, att_seg_addr(sg, pg, a->psize), run,
				(char *)s->buf + (uint64_t)s->placed * a->psize,
				ORIGIN_FILL, &k);
		s->placed += (uint32_t)k;
		budget -= (uint32_t)RP_MIN(k, budget);
		if (ret == -EAGAIN)
			return ret;
		if (ret == -ENOENT || ret == -EFAULT || ret == -EEXIST)
			continue;
		if (ret)
			return ret;
	}
	*finished = s->placed == s->npages;
	return 0;
}

/* A placement met -EAGAIN somewhere: the loop must look again soon. */
static bool any_eagain(const struct rpage_attach *a)
{
	if (a->mm.eagain || att_urgent_waiting(a))
		return true;
	for (unsigned i = 0; i < a->nchild; i++)
		if (a->child[i]->eagain)
			return true;
	return false;
}

static void *fault_main(void *arg)
{
	struct rpage_attach *a = arg;
	struct pollfd *pf = a->pf;
	unsigned spins = 0;
	bool kick = false;

	rp_thread_name("rpage/fault");
	for (;;) {
		bool have_slot, busy = false, finished = false, again;
		unsigned np = 0;
		int timeout = -1, ret;
		uint64_t now;

		pthread_mutex_lock(&a->qlock);
		have_slot = a->count > 0 && !a->mm.dead;
		pthread_mutex_unlock(&a->qlock);
		again = any_eagain(a);
		pf[np++] = (struct pollfd){ a->stop_efd, POLLIN, 0 };
		pf[np++] = (struct pollfd){ a->ready_efd, POLLIN, 0 };
		pf[np++] = (struct pollfd){ att_urgent_fd(a), POLLIN, 0 };
		pf[np++] = (struct pollfd){ att_urgent_rx_fd(a), POLLIN, 0 };
		pf[np++] = (struct pollfd){ a->mm.dead ? -1 : a->mm.uffd, POLLIN, 0 };
		for (unsigned i = 0; i < a->nchild; i++)
			pf[np++] = (struct pollfd){ a->child[i]->uffd, POLLIN, 0 };
		/* a placement waits for an event's waiter to move on: look
		 * again at once a few times, then every millisecond (faults
		 * that wait for the network do not make us spin) */
		if (have_slot || kick || (again && spins < 8))
			timeout = 0;
		else if (again)
			timeout = 1;
		else if (a->nchild)
			timeout = CHILD_PROBE_MS;
		if (poll(pf, np, timeout) < 0 && errno != EINTR) {
			rp_err("poll: %s", strerror(errno));
			att_set_final(a, RPAGE_ATTACH_FAILED, -errno);
			break;
		}
		if (pf[0].revents)
			break;
		if (att_urgent_polled(a, pf[2].revents, pf[3].revents))
			break;
		if (pf[1].revents) {
			uint64_t v;

			if (read(a->ready_efd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				break;
		}
		/* the events and faults each address space has for us */
		if (!a->mm.dead) {
			ret = service_mm(a, &a->mm, &busy, pf[4].revents);
			if (ret && ret != -ESRCH)
				break; /* the process cannot be served */
		}
		for (unsigned i = 0; i < a->nchild; i++)
			service_mm(a, a->child[i], &busy,
				   i + 5 < np ? pf[i + 5].revents : POLLIN);
		/* the pages that arrived; a broken channel; a recovery */
		if (att_urgent_process(a, &busy))
			break; /* the source is lost for good */
		/* faults that can go on now (a slot freed, a page settled) */
		if (!a->mm.dead && serve_pending(a, &a->mm) &&
		    !a->mm.dead)
			break;
		for (unsigned i = 0; i < a->nchild; i++)
			serve_pending(a, a->child[i]);
		/* every page asked for in this turn: one submit */
		att_urgent_flush(a);
		/* answers there already (the local transport's: a network's
		 * come once poll finds the connection readable) and slots
		 * whose placement met -EAGAIN are placed now; the faults they
		 * let go (a slot freed) are served next turn, without sleeping */
		kick = false;
		if (att_urgent_process(a, &kick))
			break;
		busy |= kick;
		now = rp_now_ns();
		if (a->nchild && now >= a->next_probe_ns) {
			reap_children(a, true);
			a->next_probe_ns = now + CHILD_PROBE_MS * 1000000ull;
		} else {
			reap_children(a, false);
		}
		spins = any_eagain(a) ? spins + 1 : 0;
		if (a->mm.dead && !a->nchild)
			break; /* the process and every child have gone */
		if (!have_slot)
			continue;
		/* faults flowing: a short slice keeps their wait short */
		ret = place_slice(a, &a->slots[a->head],
				  busy ? PLACE_SLICE_BUSY : PLACE_SLICE, &finished);
		if (ret && ret != -EAGAIN && ret != -ESRCH)
			break;
		if (finished) {
			pthread_mutex_lock(&a->qlock);
			a->head = (a->head + 1) % a->nslots;
			a->count--;
			pthread_cond_broadcast(&a->qcond);
			pthread_mutex_unlock(&a->qlock);
		}
	}
	/* let a fill thread blocked on a full ring go */
	pthread_mutex_lock(&a->qlock);
	a->stopping = true;
	pthread_cond_broadcast(&a->qcond);
	pthread_mutex_unlock(&a->qlock);
	return NULL;
}

static bool page_wanted(struct rpage_attach *a, uint64_t pg)
{
	return !rp_bit_test(&a->queued, pg) && !att_settled(&a->mm, pg);
}

/* Next page to fill: just after the latest fault first (within a window),
 * then a sweep from @cursor. Returns npages when nothing is left. */
static uint64_t next_fill_page(struct rpage_attach *a, uint64_t *cursor,
			       uint64_t *hint_seen, uint64_t *win_pos,
			       uint64_t *win_end)
{
	uint64_t gen = __atomic_load_n(&a->hint_gen, __ATOMIC_ACQUIRE), pg;

	if (gen != *hint_seen) {
		const struct att_range *r;

		*hint_seen = gen;
		pg = __atomic_load_n(&a->hint_page, __ATOMIC_RELAXED);
		r = range_of_page(a, pg);
		*win_pos = pg + 1;
		*win_end = RP_MIN(pg + 1 + RP_MAX(1u, FAULT_WINDOW / a->psize),
				  r->first + r->npages);
	}
	while (*win_pos < *win_end) {
		pg = rp_bitmap_next_clear2(&a->queued, &a->mm.resident, *win_pos);
		if (pg >= *win_end)
			break;
		*win_pos = pg + 1;
		if (page_wanted(a, pg))
			return pg;
	}
	*win_end = 0;
	for (int pass = 0; pass < 2; pass++) {
		while (*cursor < a->npages) {
			pg = rp_bitmap_next_clear2(&a->queued, &a->mm.resident,
						   *cursor);
			if (pg >= a->npages)
				break;
			*cursor = pg + 1;
			if (page_wanted(a, pg))
				return pg;
		}
		*cursor = 0; /* wrap once: pages skipped as resident may have
			      * been removed since (they are zero now) */
	}
	return a->npages;
}

/*
 * The bulk channel failed with @err: gives the batch back (clears its
 * `queued` bits, so the sweep fetches those pages again), waits for the
 * source's control session to be back (rp_source_recover: backoff,
 * session resumed, the image checked) and opens a new bulk channel. The
 * fill then goes on from what is resident. Returns true to go on; false
 * when stopping, or after ending the attachment as failed (the source is
 * gone for good, or the deadline passed: the memory would never complete).
 */
static bool fill_recover(struct rpage_attach *a, const unsigned *idx,
			 unsigned n, int err)
{
	uint64_t t0 = rp_now_ns(), deadline;
	struct rp_chan *nc = NULL, *old;
	int ret;

	for (unsigned k = 0; k < n; k++) {
		const struct slot *s = &a->slots[idx[k]];

		for (uint32_t i = 0; i < s->npages; i++)
			rp_bit_clear(&a->queued, s->page + i);
	}
	rp_warn("background fill from %s failed (%s): reconnecting",
		rpage_transport_name(a->src->transport), strerror(-err));
	if (a->bulk_since)
		a->bulk_repeat++; /* failed again before any data */
	else
		a->bulk_since = t0;
	deadline = a->resume_ms == UINT32_MAX ? 0
		   : a->bulk_since + (uint64_t)a->resume_ms * 1000000ull;
	att_recovering(a, +1);
	ret = a->bulk_repeat ? att_backoff(a, a->bulk_repeat) : 0;
	if (!ret && deadline && rp_now_ns() >= deadline)
		ret = -ETIMEDOUT; /* failing again and again since */
	for (; !ret;) {
		ret = rp_source_recover(a->src, a->bulk_gen, deadline, a->stop_efd);
		if (ret)
			break;
		a->bulk_gen = rp_source_gen(a->src);
		ret = rp_source_open_chan(a->src, RP_ROLE_BULK, &nc);
		for (unsigned i = 0; !ret && nc->ops->reg_buf && i < a->nslots; i++)
			ret = nc->ops->reg_buf(nc, a->slots[i].buf, a->chunk);
		if (!ret)
			break;
		if (nc)
			nc->ops->close(nc);
		nc = NULL;
		if (ret == -EACCES || ret == -EPROTONOSUPPORT)
			break;
		if (deadline && rp_now_ns() >= deadline) {
			ret = -ETIMEDOUT;
			break;
		}
		ret = att_backoff(a, ++a->bulk_repeat);
	}
	att_recovering(a, -1);
	if (ret == -ECANCELED)
		return false; /* stopping */
	if (ret) {
		rp_err("background fill from %s failed for good (%s): this process's memory will not complete",
		       rpage_transport_name(a->src->transport), strerror(-ret));
		att_set_final(a, RPAGE_ATTACH_FAILED, ret);
		return false;
	}
	pthread_mutex_lock(&a->qlock);
	old = a->bulk;
	a->bulk = nc;
	pthread_mutex_unlock(&a->qlock);
	old->ops->close(old);
	rp_info("background fill reconnected after %.3f s: going on from what is resident",
		(double)(rp_now_ns() - t0) / 1e9);
	return true;
}

static void *fill_main(void *arg)
{
	struct rpage_attach *a = arg;
	uint64_t cursor = 0, hint_seen = 0, win_pos = 0, win_end = 0;
	uint32_t chunk_pages = RP_MAX(1u, a->chunk / (uint32_t)a->psize);
	struct rp_fetch *f = calloc(a->depth, sizeof(*f));
	unsigned *idx = calloc(a->depth, sizeof(*idx));

	rp_thread_name("rpage/fill");
	if (!f || !idx)
		goto out;
	for (;;) {
		unsigned n = 0, tail;
		bool stop;
		int ret;

		/* wait until at least one slot is free */
		pthread_mutex_lock(&a->qlock);
		while (a->count == a->nslots && !a->stopping)
			pthread_cond_wait(&a->qcond, &a->qlock);
		tail = (a->head + a->count) % a->nslots;
		n = RP_MIN(a->depth, a->nslots - a->count);
		stop = a->stopping || state_final(att_state(a));
		pthread_mutex_unlock(&a->qlock);
		if (stop)
			break;
		for (unsigned k = 0; k < n; k++) {
			unsigned si = (tail + k) % a->nslots;
			struct slot *s = &a->slots[si];
			uint64_t pg = next_fill_page(a, &cursor, &hint_seen,
						     &win_pos, &win_end);
			const struct att_range *r;
			uint32_t run = 0;

			if (pg >= a->npages) {
				n = k;
				break;
			}
			r = range_of_page(a, pg);
			while (run < chunk_pages &&
			       pg + run < r->first + r->npages &&
			       page_wanted(a, pg + run)) {
				rp_bit_set(&a->queued, pg + run);
				run++;
			}
			s->page = pg;
			s->npages = run;
			s->placed = 0;
			f[k].off = page_off(a, pg);
			f[k].len = run * (uint32_t)a->psize;
			f[k].dst = s->buf;
			idx[k] = si;
		}
		if (n == 0)
			break; /* every page is queued, resident or zero */
		ret = a->bulk->ops->fetch(a->bulk, a->region, f, n);
		if (ret) {
			if (fill_recover(a, idx, n, ret))
				continue;
			break;
		}
		a->bulk_since = 0; /* data: the next failure starts afresh */
		a->bulk_repeat = 0;
		pthread_mutex_lock(&a->slock);
		for (unsigned k = 0; k < n; k++)
			a->st.bytes_fill += f[k].len;
		pthread_mutex_unlock(&a->slock);
		pthread_mutex_lock(&a->qlock);
		a->count += n;
		pthread_mutex_unlock(&a->qlock);
		if (rp_inject_fail(RP_INJECT_FILL_GIVE_UP)) {
			/* test builds: fail for good with this batch queued */
			rp_err("background fill failed for good (injected: fill-give-up)");
			att_set_final(a, RPAGE_ATTACH_FAILED, -EIO);
			rp_efd_signal(a->ready_efd);
			break;
		}
		rp_efd_signal(a->ready_efd);
	}
out:
	free(f);
	free(idx);
	return NULL;
}

static int check_ranges(struct rpage_source *src, unsigned region,
			const struct rpage_range *rg, unsigned n)
{
	const struct rp_region_desc *d;

	if (region >= src->nregions || n == 0)
		return -EINVAL;
	d = &src->regions[region];
	for (unsigned i = 0; i < n; i++) {
		uint64_t ps = rg[i].page_size;

		if (ps != rg[0].page_size) {
			rp_err("ranges mix page sizes (%" PRIu64 " and %" PRIu64 ")",
			       ps, rg[0].page_size);
			return -EINVAL;
		}
		if (!rp_is_pow2(ps) || ps < RP_PAGE_4K || ps > RP_MAX_DATA ||
		    rg[i].size == 0 || rg[i].base % ps || rg[i].size % ps ||
		    rg[i].offset % ps || rg[i].base + rg[i].size < rg[i].base) {
			rp_err("range %u is not aligned to its page size %" PRIu64
			       " or wraps", i, ps);
			return -EINVAL;
		}
		if (rg[i].offset > d->length ||
		    rg[i].size > d->length - rg[i].offset) {
			rp_err("range %u (offset 0x%" PRIx64 ", size 0x%" PRIx64
			       ") lies beyond the end of region '%s' (0x%" PRIx64 " bytes)",
			       i, rg[i].offset, rg[i].size, d->name, d->length);
			return -EINVAL;
		}
		for (unsigned k = 0; k < i; k++)
			if (rg[i].base < rg[k].base + rg[k].size &&
			    rg[k].base < rg[i].base + rg[i].size) {
				rp_err("ranges %u and %u overlap", k, i);
				return -EINVAL;
			}
	}
	return 0;
}

static void attach_destroy(struct rpage_attach *a)
{
	/* the receiver and a recovery first: they use the urgent channel */
	att_urgent_free(a);
	if (a->urgent)
		a->urgent->ops->close(a->urgent);
	if (a->bulk)
		a->bulk->ops->close(a->bulk);
	for (unsigned i = 0; a->slots && i < a->nslots; i++)
		if (a->slots[i].buf)
			munmap(a->slots[i].buf, a->chunk);
	free(a->slots);
	if (a->zero_buf)
		munmap(a->zero_buf, a->psize);
	while (a->nchild)
		child_free(a, a->child[--a->nchild]);
	att_tbl_free(a->child, a->childcap * sizeof(*a->child));
	free(a->pf);
	if (a->mm.uffd >= 0)
		close(a->mm.uffd);
	att_mm_free(&a->mm);
	rp_bitmap_free(&a->queued);
	for (int *fd = &a->stop_efd; fd <= &a->ready_efd; fd++)
		if (*fd >= 0)
			close(*fd);
	pthread_mutex_destroy(&a->qlock);
	pthread_cond_destroy(&a->qcond);
	pthread_mutex_destroy(&a->slock);
	free(a->r);
	free(a);
}

static void *map_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * What a handed-over userfaultfd must carry. EVENT_REMOVE is required:
 * without it the kernel drops a discarded page silently and it would fault
 * again and get the source's data back. SIGBUS is refused: faults would
 * never reach us. The other events are optional and logged.
 */
static int attach_check_uffd(int uffd, uint64_t *features)
{
	uint64_t f = 0;
	int ret;

	if (!rp_is_uffd(uffd)) {
		rp_err("descriptor %d is not a userfaultfd", uffd);
		return -EBADF;
	}
	ret = rp_uffd_features(uffd, &f);
	if (ret) {
		rp_err("cannot read the features of userfaultfd %d: %s", uffd,
		       strerror(-ret));
		return ret;
	}
	if (!(f & RP_UFFD_INITIALIZED)) {
		rp_err("the userfaultfd has not been through UFFDIO_API");
		return -EINVAL;
	}
	if (!(f & UFFD_FEATURE_EVENT_REMOVE)) {
		rp_err("the userfaultfd lacks UFFD_FEATURE_EVENT_REMOVE: a page the process discards (MADV_DONTNEED, a balloon) would get the source's data back instead of zeros; open it with that feature (Firecracker does)");
		return -ENOTSUP;
	}
	if (f & UFFD_FEATURE_SIGBUS) {
		rp_err("the userfaultfd has UFFD_FEATURE_SIGBUS: the process would get SIGBUS instead of its pages");
		return -ENOTSUP;
	}
	rp_dbg("userfaultfd %d: features 0x%" PRIx64 "%s%s%s", uffd, f,
	       f & UFFD_FEATURE_EVENT_UNMAP ? ", unmap" : "",
	       f & UFFD_FEATURE_EVENT_REMAP ? ", remap" : "",
	       f & UFFD_FEATURE_EVENT_FORK ? ", fork" : "");
	*features = f;
	return 0;
}

static struct rpage_attach *attach_alloc(struct rpage_source *src,
					 unsigned region, uint64_t psize,
					 const struct rpage_attach_opts *opts)
{
	struct rpage_attach *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->mm.uffd = -1;
	a->stop_efd = a->event_efd = a->ready_efd = a->done_efd = -1;
	pthread_mutex_init(&a->qlock, NULL);
	pthread_cond_init(&a->qcond, NULL);
	pthread_mutex_init(&a->slock, NULL);
	a->src = src;
	a->region = region;
	a->psize = psize;
	a->resume_ms = opts && opts->resume_timeout_ms ? opts->resume_timeout_ms
						       : RESUME_MS_DEFAULT;
	a->chunk = opts && opts->fill_chunk ? opts->fill_chunk
					    : FILL_CHUNK_DEFAULT;
	a->depth = opts && opts->fill_depth ? opts->fill_depth
					    : FILL_DEPTH_DEFAULT;
	a->no_fill = opts && opts->no_fill;
	a->pid = opts ? opts->pid : 0;
	if (a->depth > 64)
		a->depth = 64;
	/* a chunk holds whole pages and fits one frame */
	a->chunk = (uint32_t)RP_MIN((uint64_t)RP_MAX_DATA,
				    RP_MAX((uint64_t)a->chunk, psize));
	a->chunk -= a->chunk % (uint32_t)psize;
	return a;
}

/* The ranges, where they are mapped, and the page states. */
static int attach_setup_pages(struct rpage_attach *a,
			      const struct rpage_range *ranges, unsigned n,
			      const uint64_t *resident_bits)
{
	int ret;

	a->r = calloc(n, sizeof(*a->r));
	if (!a->r)
		return -ENOMEM;
	a->nr = n;
	for (unsigned i = 0; i < n; i++) {
		a->r[i].offset = ranges[i].offset;
		a->r[i].first = a->npages;
		a->r[i].npages = ranges[i].size / a->psize;
		a->npages += a->r[i].npages;
	}
	ret = att_mm_init(&a->mm, a->npages);
	if (!ret)
		ret = rp_bitmap_init(&a->queued, a->npages);
	for (unsigned i = 0; !ret && i < n; i++)
		ret = att_seg_add(&a->mm, ranges[i].base, a->r[i].first,
				  a->r[i].npages);
	if (ret)
		return ret;
	if (resident_bits) { /* live migration: placed before registration */
		for (uint64_t w = 0; w < (a->npages + 63) / 64; w++)
			a->mm.resident.w[w] = resident_bits[w] &
				(w == a->npages / 64 ? (1ull << (a->npages % 64)) - 1
						     : ~0ull);
		a->done = rp_bitmap_weight(&a->mm.resident);
	}
	return 0;
}

static int attach_map_buffers(struct rpage_attach *a,
			      const struct rpage_attach_opts *opts)
{
	unsigned depth = opts && opts->max_inflight ? opts->max_inflight
			 : a->psize == RP_PAGE_4K ? INFLIGHT_DEFAULT
						  : INFLIGHT_HUGE_DEFAULT;
	int ret = att_urgent_init(a, RP_MIN(depth, (unsigned)INFLIGHT_MAX));

	if (ret)
		return ret;
	/* UFFDIO_ZEROPAGE does not exist for huge pages: they get their
	 * zeros by UFFDIO_COPY from a zero buffer */
	if (a->psize != RP_PAGE_4K)
		a->zero_buf = map_buf(a->psize);
	a->nslots = a->depth * 2;
	a->slots = calloc(a->nslots, sizeof(*a->slots));
	a->pf = calloc(5 + MAX_CHILDREN, sizeof(*a->pf));
	if ((a->psize != RP_PAGE_4K && !a->zero_buf) ||
	    !a->slots || !a->pf)
		return -ENOMEM;
	for (unsigned i = 0; !a->no_fill && i < a->nslots; i++) {
		a->slots[i].buf = map_buf(a->chunk);
		if (!a->slots[i].buf)
			return -ENOMEM;
	}
	a->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a->event_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a->ready_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->stop_efd < 0 || a->event_efd < 0 || a->ready_efd < 0)
		return -errno;
	return 0;
}

/* The urgent channel for faults, the bulk channel for the fill. */
static int attach_open_channels(struct rpage_attach *a)
{
	int ret;

	a->urgent_gen = a->bulk_gen = rp_source_gen(a->src);
	ret = rp_source_open_chan(a->src, RP_ROLE_URGENT, &a->urgent);
	if (!ret && !a->no_fill)
		ret = rp_source_open_chan(a->src, RP_ROLE_BULK, &a->bulk);
	/* the slots' buffers (registered where the transport reads into
	 * registered memory, RDMA) and the receiver of their answers */
	if (!ret)
		ret = att_urgent_start(a);
	/* transports that read into registered staging buffers (RDMA) */
	for (unsigned i = 0; !ret && a->bulk && a->bulk->ops->reg_buf &&
			     i < a->nslots; i++)
		ret = a->bulk->ops->reg_buf(a->bulk, a->slots[i].buf, a->chunk);
	return ret;
}

static int attach_start_threads(struct rpage_attach *a)
{
	int ret;

	a->st.page_size = a->psize;
	a->st.pages_total = a->npages;
	rp_hist_init(&a->hist);
	a->t_start = rp_now_ns();
	if (a->npages && a->done == a->npages) {
		a->st.state = RPAGE_ATTACH_COMPLETE;
		rp_efd_signal(a->event_efd);
	}
	ret = -pthread_create(&a->fault_thr, NULL, fault_main, a);
	if (ret)
		return ret;
	a->threads_started = true;
	if (!a->no_fill) {
		ret = -pthread_create(&a->fill_thr, NULL, fill_main, a);
		if (ret)
			rp_warn("no fill thread (%s): faults only", strerror(-ret));
		else
			a->fill_started = true;
	}
	return 0;
}

int rp_attach_start_ex(struct rpage_source *src, unsigned region, int uffd,
		       const struct rpage_range *ranges, unsigned n,
		       const struct rpage_attach_opts *opts,
		       const uint64_t *resident_bits,
		       struct rpage_attach **out)
{
	struct rpage_attach *a;
	uint64_t features = 0;
	int ret;

	ret = check_ranges(src, region, ranges, n);
	if (!ret)
		ret = attach_check_uffd(uffd, &features);
	if (ret)
		return ret;
	a = attach_alloc(src, region, ranges[0].page_size, opts);
	if (!a)
		return -ENOMEM;
	a->uffd_features = features;
	ret = attach_setup_pages(a, ranges, n, resident_bits);
	if (!ret)
		ret = attach_map_buffers(a, opts);
	if (!ret)
		ret = attach_open_channels(a);
	if (!ret)
		ret = rp_set_nonblock(uffd, true);
	if (ret)
		goto fail;
	a->mm.uffd = uffd;
	ret = attach_start_threads(a);
	if (ret)
		goto fail;
	*out = a;
	return 0;
fail:
	if (ret == -ENOMEM)
		rp_err("out of memory setting up %" PRIu64 " pages", a->npages);
	a->mm.uffd = -1; /* the caller keeps it on failure */
	attach_destroy(a);
	return ret;
}

RP_EXPORT int rpage_attach_start(struct rpage_source *src, unsigned region,
				 int uffd, const struct rpage_range *ranges,
				 unsigned n,
				 const struct rpage_attach_opts *opts,
				 struct rpage_attach **out)
{
	return rp_attach_start_ex(src, region, uffd, ranges, n, opts, NULL,
				  out);
}

void rp_attach_get_hist(struct rpage_attach *a, struct rp_hist *out)
{
	pthread_mutex_lock(&a->slock);
	*out = a->hist;
	pthread_mutex_unlock(&a->slock);
}

RP_EXPORT int rpage_attach_event_fd(const struct rpage_attach *att)
{
	return att->event_efd;
}

RP_EXPORT int rpage_attach_get_stats(struct rpage_attach *a,
				     struct rpage_stats *st)
{
	uint64_t now = rp_now_ns();

	pthread_mutex_lock(&a->slock);
	*st = a->st;
	st->pages_resident = rp_bitmap_weight(&a->mm.resident);
	st->elapsed_ns = (a->t_end ? a->t_end : now) - a->t_start;
	st->recovering_for_ns = __atomic_load_n(&a->nrecovering, __ATOMIC_ACQUIRE) > 0
					? now - a->t_recover : 0;
	if (a->hist.count) {
		st->lat_min_ns = a->hist.min;
		st->lat_p50_ns = rp_hist_quantile(&a->hist, 0.50);
		st->lat_p99_ns = rp_hist_quantile(&a->hist, 0.99);
		st->lat_p999_ns = rp_hist_quantile(&a->hist, 0.999);
		st->lat_max_ns = a->hist.max;
		st->lat_avg_ns = a->hist.sum / a->hist.count;
	}
	pthread_mutex_unlock(&a->slock);
	return 0;
}

RP_EXPORT int rpage_attach_stop(struct rpage_attach *a)
{
	if (!a->threads_started)
		return 0;
	pthread_mutex_lock(&a->qlock);
	a->stopping = true;
	pthread_cond_broadcast(&a->qcond);
	/* under qlock: the fill thread may be replacing its channel */
	if (a->bulk)
		a->bulk->ops->abort(a->bulk);
	pthread_mutex_unlock(&a->qlock);
	rp_efd_signal(a->stop_efd);
	pthread_join(a->fault_thr, NULL);
	/* the receiver (and a recovery, which sees stop_efd) end too */
	att_urgent_abort(a);
	if (a->fill_started)
		pthread_join(a->fill_thr, NULL);
	a->threads_started = false;
	a->fill_started = false;
	pthread_mutex_lock(&a->slock);
	if (!a->t_end)
		a->t_end = rp_now_ns();
	pthread_mutex_unlock(&a->slock);
	return 0;
}

RP_EXPORT void rpage_attach_free(struct rpage_attach *a)
{
	if (!a)
		return;
	rpage_attach_stop(a);
	attach_destroy(a);
}

static const char *state_name(uint32_t s)
{
	static const char *const n[] = { "running", "complete", "failed",
					 "gone", "recovering" };

	return s < RP_ARRAY_SIZE(n) ? n[s] : "?";
}

RP_EXPORT void rpage_stats_print(FILE *f, const char *name,
				 const struct rpage_stats *st)
{
	double el = (double)st->elapsed_ns / 1e9;
	double fill_mb = (double)st->bytes_fill / 1e6;

	fprintf(f, "%s: %s%s%s\n", name, state_name(st->state),
		st->error ? ": " : "", st->error ? strerror(-st->error) : "");
	fprintf(f, "  pages      %" PRIu64 " of %" PRIu64 " resident (page size %" PRIu64
		   "): %" PRIu64 " by fault, %" PRIu64 " by fill, %" PRIu64 " zeroed after %" PRIu64 " removes\n",
		st->pages_resident, st->pages_total, st->page_size,
		st->pages_by_fault, st->pages_by_fill, st->pages_zeroed,
		st->removes);
	fprintf(f, "  faults     %" PRIu64 " (%" PRIu64 " raced with fill), blocked %.3f ms in all\n",
		st->faults, st->faults_raced, (double)st->blocked_ns / 1e6);
	fprintf(f, "  latency    min %.1f  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  avg %.1f us\n",
		(double)st->lat_min_ns / 1e3, (double)st->lat_p50_ns / 1e3,
		(double)st->lat_p99_ns / 1e3, (double)st->lat_p999_ns / 1e3,
		(double)st->lat_max_ns / 1e3, (double)st->lat_avg_ns / 1e3);
	fprintf(f, "  bytes      %.1f MB by fault, %.1f MB by fill (%.1f MB/s over %.3f s)\n",
		(double)st->bytes_fault / 1e6, fill_mb,
		el > 0 ? fill_mb / el : 0.0, el);
	if (st->resident_ns)
		fprintf(f, "  resident   fully resident after %.3f s\n",
			(double)st->resident_ns / 1e9);
	if (st->reconnects || st->state == RPAGE_ATTACH_RECOVERING)
		fprintf(f, "  recovery   %" PRIu64 " reconnect%s, %.3f s recovering, %" PRIu64 " fault%s waited for it\n",
			st->reconnects, st->reconnects == 1 ? "" : "s",
			(double)st->recovering_ns / 1e9, st->faults_waited,
			st->faults_waited == 1 ? "" : "s");
}

RP_EXPORT void rpage_stats_print_json(FILE *f, const char *name,
				      const struct rpage_stats *st)
{
	fprintf(f,
		"{\"name\":\"%s\",\"state\":\"%s\",\"error\":%d,\"page_size\":%" PRIu64
		",\"pages_total\":%" PRIu64 ",\"pages_resident\":%" PRIu64
		",\"pages_by_fault\":%" PRIu64 ",\"pages_by_fill\":%" PRIu64
		",\"pages_zeroed\":%" PRIu64 ",\"removes\":%" PRIu64
		",\"faults\":%" PRIu64 ",\"faults_raced\":%" PRIu64
		",\"bytes_fault\":%" PRIu64 ",\"bytes_fill\":%" PRIu64
		",\"blocked_us\":%.3f,\"elapsed_s\":%.6f,\"resident_s\":%.6f"
		",\"fill_MBps\":%.3f"
		",\"reconnects\":%" PRIu64 ",\"recovering_s\":%.6f,\"faults_waited\":%" PRIu64
		",\"latency_us\":{\"min\":%.3f,\"p50\":%.3f,\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f,\"avg\":%.3f}}\n",
		name, state_name(st->state), st->error, st->page_size,
		st->pages_total, st->pages_resident, st->pages_by_fault,
		st->pages_by_fill, st->pages_zeroed, st->removes, st->faults,
		st->faults_raced, st->bytes_fault, st->bytes_fill,
		(double)st->blocked_ns / 1e3, (double)st->elapsed_ns / 1e9,
		(double)st->resident_ns / 1e9,
		st->elapsed_ns ? (double)st->bytes_fill / 1e6 /
					 ((double)st->elapsed_ns / 1e9)
			       : 0.0,
		st->reconnects, (double)st->recovering_ns / 1e9,
		st->faults_waited,
		(double)st->lat_min_ns / 1e3, (double)st->lat_p50_ns / 1e3,
		(double)st->lat_p99_ns / 1e3, (double)st->lat_p999_ns / 1e3,
		(double)st->lat_max_ns / 1e3, (double)st->lat_avg_ns / 1e3);
}
