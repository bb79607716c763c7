/* SPDX-License-Identifier: MIT */
/*
 * Fetching pages without a userfaultfd (fetch.h): a thin wrapper around
 * one urgent channel, so that rpage-bench can time a transport's fetch
 * alone without knowing the channel interface. Threads: the caller's.
 */
#include <stdlib.h>

#include "client_int.h"
#include "fetch.h"

struct rp_fetcher {
	struct rp_chan *ch;
};

int rp_fetcher_open(struct rpage_source *src, void *buf, size_t len,
		    struct rp_fetcher **out)
{
	struct rp_fetcher *f = calloc(1, sizeof(*f));
	int ret;

	if (!f)
		return -ENOMEM;
	ret = rp_source_open_chan(src, RP_ROLE_URGENT, &f->ch);
	if (!ret && f->ch->ops->reg_buf)
		ret = f->ch->ops->reg_buf(f->ch, buf, len);
	if (ret) {
		rp_fetcher_close(f);
		return ret;
	}
	*out = f;
	return 0;
}

int rp_fetcher_read(struct rp_fetcher *f, uint32_t region, uint64_t off,
		    uint32_t len, void *dst)
{
	struct rp_fetch one = { .off = off, .len = len, .dst = dst };

	return f->ch->ops->fetch(f->ch, region, &one, 1);
}

void rp_fetcher_close(struct rp_fetcher *f)
{
	if (!f)
		return;
	if (f->ch)
		f->ch->ops->close(f->ch);
	free(f);
}
