/* SPDX-License-Identifier: MIT */
/*
 * The TLS connection layer (common/conn.c, common/tls.c) over a socketpair
 * with a pre-shared key, user-space records: what a reader sees when the
 * peer sends records that carry no data. A second thread plays the peer.
 */
#include <gnutls/gnutls.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../common/tls.h"
#include "rpage/rpage.h"
#include "tests.h"

struct peer {
	struct rpage_tls *tls;
	int fd;
	int ret;
	pthread_barrier_t sent;
};

/* The server side: the handshake, a TLS 1.3 KeyUpdate (a record with no
 * data, which GnuTLS also sends by itself after 2^24 records), then ten
 * bytes; both leave before the client reads. */
static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct rp_conn s;

	rp_conn_init(&s, p->fd);
	p->ret = rp_tls_server(&s, p->tls);
	if (!p->ret)
		p->ret = gnutls_session_key_update(s.session, 0);
	if (!p->ret)
		p->ret = rp_conn_write_full(&s, "0123456789", 10);
	pthread_barrier_wait(&p->sent);
	/* wait for the client to finish reading before closing */
	pthread_barrier_wait(&p->sent);
	rp_conn_close(&s);
	return NULL;
}

static void key_update_then_data(bool nowait)
{
	char dir[] = "/tmp/rpage-unit-tls.XXXXXX", path[64], buf[32];
	struct rpage_tls_opts o = { .no_ktls = 1 };
	struct peer p = { 0 };
	struct rp_conn c;
	struct iovec iov = { buf, sizeof(buf) };
	pthread_t t;
	ssize_t n = -EAGAIN;
	int sv[2];

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/k.psk", dir);
	CU_ASSERT_EQUAL_FATAL(rpage_tls_gen_psk(path, "node1"), 0);
	o.psk_file = path;
	CU_ASSERT_EQUAL_FATAL(rpage_tls_new(&o, &p.tls), 0);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p.fd = sv[1];
	pthread_barrier_init(&p.sent, NULL, 2);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, peer_main, &p), 0);
	rp_conn_init(&c, sv[0]);
	CU_ASSERT_EQUAL(rp_tls_client(&c, p.tls, NULL), 0);
	pthread_barrier_wait(&p.sent);
	CU_ASSERT_EQUAL(p.ret, 0);
	/* both records are in the socket now: one read must return the
	 * data, not "nothing yet" (the socket would then never become
	 * readable again while the data waits in the read-ahead) */
	if (nowait)
		n = rp_conn_readv_nowait(&c, &iov, 1);
	else
		n = rp_conn_readv(&c, &iov, 1);
	CU_ASSERT_EQUAL(n, 10);
	if (n == 10) {
		CU_ASSERT_EQUAL(memcmp(buf, "0123456789", 10), 0);
	} else {
		fprintf(stderr, "\n  read after a KeyUpdate: %zd (%s)\n", n,
			n < 0 ? strerror((int)-n) : "short");
	}
	pthread_barrier_wait(&p.sent);
	pthread_join(t, NULL);
	rp_conn_close(&c);
	pthread_barrier_destroy(&p.sent);
	rpage_tls_free(p.tls);
	unlink(path);
	rmdir(dir);
}

static void t_key_update_nowait(void)
{
	key_update_then_data(true);
}

static void t_key_update_blocking(void)
{
	key_update_then_data(false);
}

int register_tls_tests(void)
{
	CU_pSuite s = CU_add_suite("tls", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, t_key_update_nowait);
	ADD(s, t_key_update_blocking);
	return 0;
}
