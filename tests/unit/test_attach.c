/* SPDX-License-Identifier: MIT */
/*
 * The fault handler in-process, on real userfaultfd: local and TCP sources,
 * faults from several threads, background fill to completion, balloon
 * removes reading back as zeros.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../common/uffd.h"
#include "../../common/pattern.h"
#include "rpage/rpage.h"
#include "tests.h"

#define IMG_SIZE (8u << 20)
#define SEED 77

static char img_path[] = "/tmp/rpage-unit-XXXXXX";

static int suite_init(void)
{
	int fd = mkstemp(img_path);
	char *buf = malloc(IMG_SIZE);

	if (fd < 0 || !buf)
		return -1;
	rp_pattern_fill(buf, 0, IMG_SIZE, SEED);
	if (write(fd, buf, IMG_SIZE) != IMG_SIZE)
		return -1;
	free(buf);
	close(fd);
	return 0;
}

static int suite_clean(void)
{
	unlink(img_path);
	return 0;
}

struct mem {
	char *p;
	size_t len;
	int uffd;
	struct rpage_range r[2];
};

/* Anonymous memory registered for missing faults; two ranges mapped to
 * the image in swapped halves so offsets are exercised. */
static void mem_setup(struct mem *m)
{
	m->len = IMG_SIZE;
	m->p = mmap(NULL, m->len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(m->p != MAP_FAILED);
	m->uffd = rp_uffd_open(UFFD_FEATURE_EVENT_REMOVE, NULL);
	CU_ASSERT_FATAL(m->uffd >= 0);
	CU_ASSERT_EQUAL_FATAL(rp_uffd_register(m->uffd, m->p, m->len,
					       UFFDIO_REGISTER_MODE_MISSING, NULL), 0);
	for (int i = 0; i < 2; i++) {
		m->r[i].base = (uint64_t)(uintptr_t)m->p + (uint64_t)i * (m->len / 2);
		m->r[i].size = m->len / 2;
		m->r[i].offset = (uint64_t)(1 - i) * (m->len / 2);
		m->r[i].page_size = 4096;
	}
}

static uint64_t img_off(const struct mem *m, size_t pos)
{
	return pos < m->len / 2 ? pos + m->len / 2 : pos - m->len / 2;
}

static int check_all(const struct mem *m, size_t from)
{
	int bad = 0;

	for (size_t pos = from; pos < m->len; pos += 4096)
		if (rp_pattern_check(m->p + pos, img_off(m, pos), 4096, SEED) >= 0)
			bad++;
	return bad;
}

struct toucher {
	struct mem *m;
	unsigned id, n;
	int bad;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	size_t pages = t->m->len / 4096;

	for (size_t i = t->id; i < pages; i += t->n * 7) {
		size_t pos = ((i * 2654435761u) % pages) * 4096;

		if (rp_pattern_check(t->m->p + pos, img_off(t->m, pos), 4096, SEED) >= 0)
			t->bad++;
	}
	return NULL;
}

static int wait_state(struct rpage_attach *a, uint32_t want, int ms)
{
	struct rpage_stats st;

	for (int i = 0; i < ms / 10; i++) {
		struct pollfd pf = { rpage_attach_event_fd(a), POLLIN, 0 };

		rpage_attach_get_stats(a, &st);
		if (st.state == want)
			return 0;
		poll(&pf, 1, 10);
	}
	return -1;
}

static void run_attach(struct rpage_source *src, bool fill)
{
	struct rpage_attach_opts o = { .no_fill = !fill, .fill_chunk = 256 << 10 };
	struct rpage_attach *a = NULL;
	struct toucher t[3];
	pthread_t th[3];
	struct rpage_stats st;
	struct mem m;

	mem_setup(&m);
	CU_ASSERT_EQUAL_FATAL(rpage_attach_start(src, 0, m.uffd, m.r, 2, &o, &a), 0);
	for (unsigned i = 0; i < 3; i++) {
		t[i] = (struct toucher){ .m = &m, .id = i, .n = 3 };
		pthread_create(&th[i], NULL, touch_main, &t[i]);
	}
	for (unsigned i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(t[i].bad, 0);
	}
	if (fill) {
		CU_ASSERT_EQUAL(wait_state(a, RPAGE_ATTACH_COMPLETE, 20000), 0);
		rpage_attach_get_stats(a, &st);
		CU_ASSERT_EQUAL(st.pages_resident, IMG_SIZE / 4096);
		CU_ASSERT(st.pages_by_fill > 0);
		CU_ASSERT_EQUAL(st.pages_by_fill + st.pages_by_fault, IMG_SIZE / 4096);
	}
	CU_ASSERT_EQUAL(check_all(&m, 0), 0);
	/* balloon: drop the first MiB; it must read back as zeros and the
	 * rest must be untouched */
	CU_ASSERT_EQUAL(madvise(m.p, 1 << 20, MADV_DONTNEED), 0);
	for (size_t i = 0; i < (1 << 20); i += 512)
		if (m.p[i] != 0) {
			CU_FAIL("ballooned page does not read as zero");
			break;
		}
	CU_ASSERT_EQUAL(check_all(&m, 1 << 20), 0);
	/* UFFDIO_COPY/ZEROPAGE wake the reader before the handler's
	 * bookkeeping: give the counters a moment to catch up */
	for (int i = 0; i < 1000; i++) {
		rpage_attach_get_stats(a, &st);
		if (st.removes == 1 && st.pages_zeroed == 256)
			break;
		usleep(1000);
	}
	CU_ASSERT_EQUAL(st.removes, 1);
	CU_ASSERT_EQUAL(st.pages_zeroed, 256);
	CU_ASSERT(st.faults > 0);
	CU_ASSERT(st.lat_p50_ns > 0 && st.lat_p50_ns <= st.lat_p99_ns);
	rpage_attach_free(a);
	munmap(m.p, m.len);
}

static void t_local_faults_only(void)
{
	struct rpage_source *src = NULL;

	CU_ASSERT_EQUAL_FATAL(rpage_source_open_local("img", img_path, &src), 0);
	run_attach(src, false);
	rpage_source_close(src);
}

static void t_local_fill(void)
{
	struct rpage_source *src = NULL;

	CU_ASSERT_EQUAL_FATAL(rpage_source_open_local("img", img_path, &src), 0);
	run_attach(src, true);
	rpage_source_close(src);
}

static void t_tcp_fill(void)
{
	struct rpage_server *srv = NULL;
	struct rpage_source *src = NULL;
	struct rpage_region_info ri;
	struct rpage_server_stats ss;
	char port[16];

	CU_ASSERT_EQUAL_FATAL(rpage_server_new(&srv), 0);
	CU_ASSERT_EQUAL(rpage_server_add_region(srv, "img", img_path), 0);
	CU_ASSERT_EQUAL(rpage_server_add_region(srv, "img", img_path), -EEXIST);
	CU_ASSERT_EQUAL(rpage_server_add_region(srv, "bad/name", img_path), -EINVAL);
	CU_ASSERT_EQUAL_FATAL(rpage_server_listen(srv, "127.0.0.1", "0"), 0);
	CU_ASSERT_EQUAL_FATAL(rpage_server_start(srv), 0);
	snprintf(port, sizeof(port), "%d", rpage_server_port(srv));
	CU_ASSERT_EQUAL_FATAL(rpage_source_connect("127.0.0.1", port, RPAGE_TRANSPORT_TCP, &src), 0);
	CU_ASSERT_EQUAL(rpage_source_region_count(src), 1);
	CU_ASSERT_EQUAL(rpage_source_region_info(src, 0, &ri), 0);
	CU_ASSERT_STRING_EQUAL(ri.name, "img");
	CU_ASSERT_EQUAL(ri.length, IMG_SIZE);
	CU_ASSERT_EQUAL(rpage_source_find_region(src, "nope"), -ENOENT);
	run_attach(src, true);
	rpage_server_get_stats(srv, &ss);
	CU_ASSERT(ss.bytes_sent >= IMG_SIZE);
	CU_ASSERT_EQUAL(ss.rejected, 0);
	rpage_source_close(src);
	rpage_server_free(srv);
}

static void t_attach_rejects(void)
{
	struct rpage_source *src = NULL;
	struct rpage_attach *a = NULL;
	struct mem m;
	struct rpage_range r;

	CU_ASSERT_EQUAL_FATAL(rpage_source_open_local("img", img_path, &src), 0);
	mem_setup(&m);
	/* beyond the region */
	r = m.r[0];
	r.offset = IMG_SIZE;
	CU_ASSERT_EQUAL(rpage_attach_start(src, 0, m.uffd, &r, 1, NULL, &a), -EINVAL);
	/* mixed page sizes */
	m.r[1].page_size = 2 << 20;
	CU_ASSERT_EQUAL(rpage_attach_start(src, 0, m.uffd, m.r, 2, NULL, &a), -EINVAL);
	/* overlapping */
	m.r[1] = m.r[0];
	CU_ASSERT_EQUAL(rpage_attach_start(src, 0, m.uffd, m.r, 2, NULL, &a), -EINVAL);
	/* not a userfaultfd */
	CU_ASSERT_EQUAL(rpage_attach_start(src, 0, 0, m.r, 1, NULL, &a), -EBADF);
	/* no such region */
	CU_ASSERT_EQUAL(rpage_attach_start(src, 3, m.uffd, m.r, 1, NULL, &a), -EINVAL);
	close(m.uffd);
	munmap(m.p, m.len);
	rpage_source_close(src);
}

int register_attach_tests(void)
{
	CU_pSuite s = CU_add_suite("attach", suite_init, suite_clean);

	if (!s)
		return -1;
	ADD(s, t_local_faults_only);
	ADD(s, t_local_fill);
	ADD(s, t_tcp_fill);
	ADD(s, t_attach_rejects);
	return 0;
}
