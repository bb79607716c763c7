/* SPDX-License-Identifier: MIT */
/*
 * The urgent channel of an attachment: the pages faults wait for, several
 * in flight at once, and getting the channel back when it breaks.
 *
 * Threads and ownership:
 *  - The fault thread ("rpage/fault") asks for pages (att_urgent_request),
 *    sends what it gathered in one submit (att_urgent_flush), and takes
 *    the answers (att_urgent_process), which it places itself: it stays
 *    the only thread that places pages. It owns the slots. Where the
 *    channel can be read without waiting (try_one: local, TCP), the fault
 *    thread reads the answers too, polling the channel's fd beside its
 *    userfaultfds: an answer costs no hand-off between threads.
 *  - Otherwise (RDMA) the receiver thread ("rpage/urgent") blocks in the
 *    channel's wait_one and queues each answered tag, or the channel's
 *    failure, for the fault thread (`dq`, under `dlock`; `done_efd` wakes
 *    it).
 *  - After a failure, the recovery thread ("rpage/recover") reconnects
 *    (rp_source_recover: backoff, session resumed, image checked) and
 *    opens a new channel; the fault thread installs it and sends again
 *    every request that was in flight. Faults wait meanwhile; events are
 *    still read, and pages that need no data (discarded, outside) are
 *    still placed.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "attach_int.h"

#define Q_RECOVERED UINT64_MAX      /* dq entry: a new channel is ready */
#define Q_GAVE_UP (UINT64_MAX - 1)  /* dq entry: recovery failed for good */

static const struct att_range *range_of(const struct rpage_attach *a,
					uint64_t pg)
{
	for (unsigned i = 0; i < a->nr; i++)
		if (pg >= a->r[i].first && pg - a->r[i].first < a->r[i].npages)
			return &a->r[i];
	return NULL;
}

/* Queues an answer (or a channel event) for the fault thread. */
static void dq_push(struct rpage_attach *a, uint64_t tag, int err)
{
	bool full;

	pthread_mutex_lock(&a->dlock);
	full = a->dcount >= a->dcap;
	if (!full) {
		a->dq[(a->dhead + a->dcount) % a->dcap] =
			(struct att_done){ tag, err };
		a->dcount++;
	}
	pthread_mutex_unlock(&a->dlock);
	/* it holds every answer a channel can owe twice over: never full */
	if (full)
		rp_err("internal: the urgent answer queue is full (%u): answer %" PRIu64 " (%d) dropped",
		       a->dcap, tag, err);
	rp_efd_signal(a->done_efd);
}

static void *rx_main(void *arg)
{
	struct rpage_attach *a = arg;
	struct rp_chan *ch = a->urgent;

	rp_thread_name("rpage/urgent");
	for (;;) {
		uint64_t tag = 0;
		int ret = ch->ops->wait_one(ch, &tag);

		dq_push(a, ret ? 0 : tag, ret);
		if (ret)
			return NULL; /* the channel is done */
	}
}

static int rx_start(struct rpage_attach *a)
{
	int ret;

	if (a->urgent->ops->try_one)
		return 0; /* the fault thread reads the answers */
	ret = -pthread_create(&a->rx_thr, NULL, rx_main, a);

	if (!ret)
		a->rx_started = true;
	return ret;
}

static void rx_stop(struct rpage_attach *a)
{
	if (!a->rx_started)
		return;
	a->urgent->ops->abort(a->urgent);
	pthread_join(a->rx_thr, NULL);
	a->rx_started = false;
}

int att_urgent_init(struct rpage_attach *a, unsigned depth)
{
	a->nfl = depth;
	a->fl = calloc(depth, sizeof(*a->fl));
	a->flbuf = mmap(NULL, (size_t)depth * a->psize, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	/* every slot's answer, twice over (answers of a channel that broke
	 * may still be queued when the new one answers the same slots), the
	 * recovery's result and a failure fit */
	a->dcap = 2 * depth + 4;
	a->dq = calloc(a->dcap, sizeof(*a->dq));
	a->done_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&a->dlock, NULL);
	if (a->flbuf == MAP_FAILED)
		a->flbuf = NULL;
	if (!a->fl || !a->flbuf || !a->dq || a->done_efd < 0)
		return -ENOMEM;
	for (unsigned i = 0; i < depth; i++)
		a->fl[i].buf = a->flbuf + (size_t)i * a->psize;
	return 0;
}

/* The urgent channel @a->urgent is open: registers the slots' buffers
 * (RDMA) and starts its receiver. */
int att_urgent_start(struct rpage_attach *a)
{
	int ret = 0;

	if (a->urgent->ops->reg_buf)
		ret = a->urgent->ops->reg_buf(a->urgent, a->flbuf,
					      (size_t)a->nfl * a->psize);
	if (!ret)
		ret = rx_start(a);
	return ret;
}

void att_urgent_free(struct rpage_attach *a)
{
	if (a->rec_started) {
		pthread_join(a->rec_thr, NULL);
		a->rec_started = false;
		if (a->rec_chan)
			a->rec_chan->ops->close(a->rec_chan);
		a->rec_chan = NULL;
	}
	if (a->urgent)
		rx_stop(a);
	free(a->fl);
	if (a->flbuf)
		munmap(a->flbuf, (size_t)a->nfl * a->psize);
	/* forked children are freed after this: no slot is theirs now */
	a->fl = NULL;
	a->flbuf = NULL;
	a->nfl = 0;
	free(a->dq);
	a->dq = NULL;
	if (a->done_efd >= 0)
		close(a->done_efd);
	a->done_efd = -1;
	pthread_mutex_destroy(&a->dlock);
}

int att_urgent_fd(const struct rpage_attach *a)
{
	return a->done_efd;
}

int att_urgent_rx_fd(const struct rpage_attach *a)
{
	if (!a->urgent || a->urgent_down || !a->urgent->ops->try_one)
		return -1;
	for (unsigned i = 0; i < a->nfl; i++)
		if (a->fl[i].state == SLOT_SENT)
			return a->urgent->ops->poll_fd(a->urgent);
	return -1; /* nothing to wait for */
}

/* Stops the receiver (the channel is being closed). */
void att_urgent_abort(struct rpage_attach *a)
{
	if (a->urgent)
		a->urgent->ops->abort(a->urgent);
}

static struct att_slot *slot_of(struct rpage_attach *a, struct att_mm *m,
				uint64_t pg)
{
	for (unsigned i = 0; i < a->nfl; i++)
		if (a->fl[i].state != SLOT_FREE && a->fl[i].m == m &&
		    a->fl[i].pg == pg)
			return &a->fl[i];
	return NULL;
}

void att_urgent_forget(struct rpage_attach *a, struct att_mm *m)
{
	for (unsigned i = 0; i < a->nfl; i++)
		if (a->fl[i].state != SLOT_FREE && a->fl[i].m == m)
			a->fl[i].m = NULL; /* its answer is dropped */
}

int att_urgent_request(struct rpage_attach *a, struct att_mm *m, uint64_t pg)
{
	struct att_slot *s = slot_of(a, m, pg);

	if (s)
		return 0; /* asked already: this fault waits with the first */
	for (unsigned i = 0; i < a->nfl; i++) {
		s = &a->fl[i];
		if (s->state != SLOT_FREE)
			continue;
		*s = (struct att_slot){ .state = SLOT_NEW, .m = m, .pg = pg,
					.buf = s->buf };
		if (a->urgent_down) {
			a->waited++;
			s->state = SLOT_LOST; /* sent once the channel is back */
		}
		return 0;
	}
	return -EBUSY; /* every slot in flight: the fault waits its turn */
}

/* Sends every slot in @state (NEW, or LOST after a recovery) in one
 * submit; on failure they are lost until the channel is back. */
static void channel_failed(struct rpage_attach *a, int err);

static void submit_state(struct rpage_attach *a, enum att_slot_state state)
{
	struct rp_fetch f[64];
	uint64_t tags[64];
	struct att_slot *sl[64];
	unsigned n = 0;
	int ret;

	if (a->urgent_down)
		return;
	for (unsigned i = 0; i < a->nfl && n < RP_ARRAY_SIZE(f); i++) {
		struct att_slot *s = &a->fl[i];
		const struct att_range *r;

		if (s->state != state)
			continue;
		r = range_of(a, s->pg);
		s->tag = ++a->next_tag;
		f[n] = (struct rp_fetch){ r->offset + (s->pg - r->first) * a->psize,
					  (uint32_t)a->psize, s->buf };
		tags[n] = s->tag;
		sl[n++] = s;
	}
	if (!n)
		return;
	for (unsigned i = 0; i < n; i++)
		sl[i]->state = SLOT_SENT;
	ret = a->urgent->ops->submit(a->urgent, a->region, f, n, tags);
	if (ret) {
		/* whatever the error (a broken connection, no memory, a full
		 * send queue), the channel is recovered and these requests
		 * are sent again: none may be left waiting for an answer
		 * that will not come */
		rp_dbg("submitting %u requests failed: %s", n, strerror(-ret));
		channel_failed(a, ret);
	}
}

void att_urgent_flush(struct rpage_attach *a)
{
	submit_state(a, SLOT_NEW);
}

/* ---- recovery ---- */

static void *rec_main(void *arg)
{
	struct rpage_attach *a = arg;
	uint64_t deadline = a->resume_ms == UINT32_MAX ? 0
			    : a->urgent_since + (uint64_t)a->resume_ms * 1000000ull;
	uint64_t gen = a->urgent_gen;
	struct rp_chan *nc = NULL;
	int ret = 0;

	rp_thread_name("rpage/recover");
	if (a->urgent_repeat)
		ret = att_backoff(a, a->urgent_repeat);
	if (!ret && deadline && rp_now_ns() >= deadline)
		ret = -ETIMEDOUT; /* failing again and again since */
	for (; !ret;) {
		ret = rp_source_recover(a->src, gen, deadline, a->stop_efd);
		if (ret)
			break;
		gen = rp_source_gen(a->src);
		ret = rp_source_open_chan(a->src, RP_ROLE_URGENT, &nc);
		if (!ret && nc->ops->reg_buf) {
			ret = nc->ops->reg_buf(nc, a->flbuf, (size_t)a->nfl * a->psize);
			if (ret) {
				nc->ops->close(nc);
				nc = NULL;
			}
		}
		if (!ret)
			break;
		if (ret == -EACCES || ret == -EPROTONOSUPPORT)
			break;
		/* the server went away again: reconnect again */
		if (deadline && rp_now_ns() >= deadline) {
			ret = -ETIMEDOUT;
			break;
		}
		ret = att_backoff(a, ++a->urgent_repeat);
	}
	a->rec_chan = nc;
	a->rec_gen = gen;
	a->rec_err = ret;
	dq_push(a, ret ? Q_GAVE_UP : Q_RECOVERED, ret);
	return NULL;
}

/* The urgent channel failed with @err: lose what was in flight and get a
 * channel back in the background. */
static void channel_failed(struct rpage_attach *a, int err)
{
	uint64_t lost = 0;

	if (a->urgent_down)
		return; /* reported twice (submit and receiver): one recovery */
	rx_stop(a);
	a->urgent_down = true;
	a->t_down = rp_now_ns();
	if (a->urgent_since)
		a->urgent_repeat++; /* failed again before any answer */
	else
		a->urgent_since = a->t_down;
	for (unsigned i = 0; i < a->nfl; i++)
		if (a->fl[i].state == SLOT_SENT) {
			a->fl[i].state = SLOT_LOST;
			lost++;
		}
	a->waited += lost; /* their faults wait for the recovery */
	rp_warn("the urgent connection to %s failed (%s): %" PRIu64 " page request%s in flight will be sent again once it is back",
		rpage_transport_name(a->src->transport), strerror(-err), lost,
		lost == 1 ? "" : "s");
	att_recovering(a, +1);
	a->rec_started = !pthread_create(&a->rec_thr, NULL, rec_main, a);
	if (!a->rec_started) {
		att_recovering(a, -1);
		att_set_final(a, RPAGE_ATTACH_FAILED, err);
	}
}

static void channel_back(struct rpage_attach *a)
{
	struct rp_chan *old = a->urgent;
	uint64_t ns = rp_now_ns() - a->t_down;
	int ret;

	pthread_join(a->rec_thr, NULL);
	a->rec_started = false;
	a->urgent = a->rec_chan;
	a->rec_chan = NULL;
	a->urgent_gen = a->rec_gen;
	old->ops->close(old);
	/* what the old channel's receiver said after the failure is stale:
	 * its errors must not end the new channel (answers find no slot:
	 * every request gets a fresh tag when it is sent again) */
	pthread_mutex_lock(&a->dlock);
	for (unsigned k = 0, n = a->dcount; k < n; k++) {
		struct att_done d = a->dq[a->dhead];

		a->dhead = (a->dhead + 1) % a->dcap;
		a->dcount--;
		if (!d.err || d.tag == Q_RECOVERED || d.tag == Q_GAVE_UP)
			a->dq[(a->dhead + a->dcount++) % a->dcap] = d;
	}
	pthread_mutex_unlock(&a->dlock);
	a->urgent_down = false;
	a->rx_ready = false;
	ret = rx_start(a);
	if (ret) {
		att_set_final(a, RPAGE_ATTACH_FAILED, ret);
		return;
	}
	pthread_mutex_lock(&a->slock);
	a->st.faults_waited += a->waited;
	pthread_mutex_unlock(&a->slock);
	a->waited = 0;
	att_recovering(a, -1);
	rp_info("the urgent connection is back after %.3f s: sending the page requests again",
		(double)ns / 1e9);
	submit_state(a, SLOT_LOST);
	submit_state(a, SLOT_NEW);
}

/* ---- answers ---- */

/* Places the page of slot @s; true when the slot is free again. */
static bool place_slot(struct rpage_attach *a, struct att_slot *s)
{
	struct att_mm *m = s->m;
	struct att_seg *sg;
	uint64_t k;
	int ret;

	if (!m || m->dead)
		return true; /* its address space has gone */
	/* placed by the fill meanwhile, or discarded (its data is dead: the
	 * faults waiting get zeros when served next). A page marked gone is
	 * still placed: a placement found nothing mapped there once, but the
	 * range may have moved since, and a fault waits on it; placing gets
	 * ENOENT and wakes it where nothing is mapped any more. */
	if (rp_bit_test(&m->resident, s->pg) || rp_bit_test(&m->zero, s->pg))
		return true;
	sg = att_seg_of_page(m, s->pg);
	if (!sg)
		return true;
	ret = att_place(a, m, s->pg, att_seg_addr(sg, s->pg, a->psize), 1,
			s->buf, ORIGIN_FAULT, &k);
	if (ret == -EAGAIN)
		return false; /* an event first: try again next time */
	if (!m->child) {
		__atomic_store_n(&a->hint_page, s->pg, __ATOMIC_RELAXED);
		__atomic_fetch_add(&a->hint_gen, 1, __ATOMIC_RELEASE);
	}
	att_faults_answered(a, m, s->pg, ret);
	return true;
}

/* The answer tagged @tag arrived: its slot is ready to place. */
static void answered(struct rpage_attach *a, uint64_t tag)
{
	for (unsigned i = 0; i < a->nfl; i++)
		if (a->fl[i].state == SLOT_SENT && a->fl[i].tag == tag) {
			a->fl[i].state = SLOT_DONE;
			a->urgent_since = 0; /* an answer */
			a->urgent_repeat = 0;
			return;
		}
}

int att_urgent_polled(struct rpage_attach *a, short done_ev, short rx_ev)
{
	uint64_t v;

	if (rx_ev)
		a->rx_ready = true;
	if (done_ev && read(a->done_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

/* The fault thread reads the answers itself: every one there is now
 * (once the channel's fd was readable: an answer takes longer than the
 * turn that asked for it; at once where poll_fd is -1). */
static void read_answers(struct rpage_attach *a, bool *busy)
{
	while (!a->urgent_down && a->urgent->ops->try_one) {
		uint64_t tag = 0;
		int ret;

		if (!a->rx_ready && a->urgent->ops->poll_fd(a->urgent) >= 0)
			return;
		ret = a->urgent->ops->try_one(a->urgent, &tag);
		if (ret == -EAGAIN) {
			a->rx_ready = false; /* poll the fd again first */
			return;
		}
		*busy = true;
		if (ret == -ECANCELED)
			return; /* stopping */
		if (ret) {
			channel_failed(a, ret);
			return;
		}
		answered(a, tag);
	}
}

int att_urgent_process(struct rpage_attach *a, bool *busy)
{
	read_answers(a, busy);
	for (;;) {
		struct att_done d;

		pthread_mutex_lock(&a->dlock);
		if (!a->dcount) {
			pthread_mutex_unlock(&a->dlock);
			break;
		}
		d = a->dq[a->dhead];
		a->dhead = (a->dhead + 1) % a->dcap;
		a->dcount--;
		pthread_mutex_unlock(&a->dlock);
		*busy = true;
		if (d.tag == Q_RECOVERED) {
			channel_back(a);
		} else if (d.tag == Q_GAVE_UP) {
			pthread_join(a->rec_thr, NULL);
			a->rec_started = false;
			if (d.err == -ECANCELED)
				return 0; /* asked to stop: not a failure */
			rp_err("the connection to %s did not come back (%s): giving up on this process's missing pages",
			       rpage_transport_name(a->src->transport),
			       strerror(-d.err));
			att_set_final(a, RPAGE_ATTACH_FAILED, d.err);
			return d.err;
		} else if (d.err) {
			if (d.err == -ECANCELED)
				continue; /* stopping */
			channel_failed(a, d.err);
		} else {
			answered(a, d.tag);
		}
	}
	/* a new channel may have answered already */
	read_answers(a, busy);
	/* place what arrived (and what met -EAGAIN before); a slot freed
	 * lets a fault waiting for one go on: the caller looks again at once */
	for (unsigned i = 0; i < a->nfl; i++)
		if (a->fl[i].state == SLOT_DONE && place_slot(a, &a->fl[i])) {
			a->fl[i].state = SLOT_FREE;
			*busy = true;
		}
	return 0;
}

bool att_urgent_waiting(const struct rpage_attach *a)
{
	for (unsigned i = 0; i < a->nfl; i++)
		if (a->fl[i].state == SLOT_DONE)
			return true; /* a placement met -EAGAIN */
	return false;
}
