/* SPDX-License-Identifier: MIT */
/* The local transport: pages come from a file on this host. The floor the
 * network transports are measured against, and lazy local restore.
 * submit reads at once (a read of the page cache is quicker than handing
 * it to another thread); wait_one and try_one return the tags in order. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "client_int.h"

struct local_chan {
	struct rp_chan ch;
	int fd;
	/* submit reads at once; wait_one hands the tags out, oldest first */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t *done;
	int *err;
	unsigned head, count, cap;
	bool aborted;
};

static int local_fetch(struct rp_chan *ch, uint32_t region, struct rp_fetch *f,
		       unsigned n)
{
	struct local_chan *lc = (struct local_chan *)ch;

	(void)region;
	for (unsigned i = 0; i < n; i++) {
		uint32_t done = 0;

		while (done < f[i].len) {
			ssize_t r = pread(lc->fd, (char *)f[i].dst + done,
					  f[i].len - done,
					  (off_t)(f[i].off + done));

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r == 0)
				return -ENODATA; /* file shrank under us */
			done += (uint32_t)r;
		}
	}
	return 0;
}

static int local_submit(struct rp_chan *ch, uint32_t region,
			const struct rp_fetch *f, unsigned n,
			const uint64_t *tags)
{
	struct local_chan *lc = (struct local_chan *)ch;
	int ret = 0;

	pthread_mutex_lock(&lc->lock);
	if (lc->count + n > lc->cap) {
		unsigned cap = RP_MAX(lc->cap * 2, lc->count + n);
		uint64_t *nd = malloc(cap * sizeof(*nd));
		int *ne = malloc(cap * sizeof(*ne));

		if (!nd || !ne) {
			free(nd);
			free(ne);
			pthread_mutex_unlock(&lc->lock);
			return -ENOMEM;
		}
		for (unsigned i = 0; i < lc->count; i++) {
			nd[i] = lc->done[(lc->head + i) % lc->cap];
			ne[i] = lc->err[(lc->head + i) % lc->cap];
		}
		free(lc->done);
		free(lc->err);
		lc->done = nd;
		lc->err = ne;
		lc->cap = cap;
		lc->head = 0;
	}
	pthread_mutex_unlock(&lc->lock);
	for (unsigned i = 0; i < n; i++) {
		int r = local_fetch(ch, region, (struct rp_fetch *)&f[i], 1);

		pthread_mutex_lock(&lc->lock);
		lc->done[(lc->head + lc->count) % lc->cap] = tags[i];
		lc->err[(lc->head + lc->count) % lc->cap] = r;
		lc->count++;
		pthread_cond_signal(&lc->cond);
		pthread_mutex_unlock(&lc->lock);
		if (r && !ret)
			ret = r;
	}
	return 0;
}

/* The oldest answer, waiting for one when @wait, else -EAGAIN. */
static int local_next(struct local_chan *lc, uint64_t *tag, bool wait)
{
	int ret;

	pthread_mutex_lock(&lc->lock);
	while (wait && !lc->count && !lc->aborted)
		pthread_cond_wait(&lc->cond, &lc->lock);
	if (lc->aborted || !lc->count) {
		pthread_mutex_unlock(&lc->lock);
		return lc->aborted ? -ECANCELED : -EAGAIN;
	}
	*tag = lc->done[lc->head];
	ret = lc->err[lc->head];
	lc->head = (lc->head + 1) % lc->cap;
	lc->count--;
	pthread_mutex_unlock(&lc->lock);
	return ret;
}

static int local_wait_one(struct rp_chan *ch, uint64_t *tag)
{
	return local_next((struct local_chan *)ch, tag, true);
}

static int local_try_one(struct rp_chan *ch, uint64_t *tag)
{
	return local_next((struct local_chan *)ch, tag, false);
}

static int local_poll_fd(struct rp_chan *ch)
{
	(void)ch;
	return -1; /* submit has read every page already */
}

static void local_abort(struct rp_chan *ch)
{
	struct local_chan *lc = (struct local_chan *)ch;

	pthread_mutex_lock(&lc->lock);
	lc->aborted = true;
	pthread_cond_broadcast(&lc->cond);
	pthread_mutex_unlock(&lc->lock);
}

static void local_close(struct rp_chan *ch)
{
	struct local_chan *lc = (struct local_chan *)ch;

	pthread_mutex_destroy(&lc->lock);
	pthread_cond_destroy(&lc->cond);
	free(lc->done);
	free(lc->err);
	free(lc);
}

static const struct rp_chan_ops local_ops = {
	.fetch = local_fetch,
	.submit = local_submit,
	.wait_one = local_wait_one,
	.try_one = local_try_one,
	.poll_fd = local_poll_fd,
	.abort = local_abort,
	.close = local_close,
};

int rp_local_chan_open(struct rpage_source *src, struct rp_chan **out)
{
	struct local_chan *lc = calloc(1, sizeof(*lc));

	if (!lc)
		return -ENOMEM;
	lc->ch.ops = &local_ops;
	lc->fd = src->local_fd;
	pthread_mutex_init(&lc->lock, NULL);
	pthread_cond_init(&lc->cond, NULL);
	*out = &lc->ch;
	return 0;
}
