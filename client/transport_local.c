/* SPDX-License-Identifier: MIT */
/* The local transport: pages come from a file on this host. The floor the
 * network transports are measured against, and lazy local restore. */
#include <stdlib.h>
#include <unistd.h>

#include "client_int.h"

struct local_chan {
	struct rp_chan ch;
	int fd;
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

static void local_abort(struct rp_chan *ch)
{
	(void)ch; /* pread does not block indefinitely */
}

static void local_close(struct rp_chan *ch)
{
	free(ch);
}

static const struct rp_chan_ops local_ops = {
	.fetch = local_fetch,
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
	*out = &lc->ch;
	return 0;
}
