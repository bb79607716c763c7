/* SPDX-License-Identifier: MIT */
/* Live migration: message round trips, malformed input, dirty tracking. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../common/dirty.h"
#include "../../common/inject.h"
#include "../../common/proto_live.h"
#include "../../common/rp.h"
#include "tests.h"

static void t_live_hello(void)
{
	struct rp_live_hello h = { .version = RP_LIVE_VERSION,
				   .role = RP_LIVE_ROLE_STREAM, .stream = 2,
				   .nstreams = 4, .page_size = 4096,
				   .length = 1 << 20, .session = 77 }, o;
	uint8_t b[RP_LIVE_HELLO_LEN];
	const char *why = NULL;

	CU_ASSERT_EQUAL(rp_live_hello_encode(b, &h), RP_LIVE_HELLO_LEN);
	CU_ASSERT_EQUAL(rp_live_hello_decode(b, sizeof(b), &o, &why), 0);
	CU_ASSERT_EQUAL(o.stream, 2);
	CU_ASSERT_EQUAL(o.length, 1 << 20);
	CU_ASSERT_EQUAL(o.session, 77);
	/* wrong length, bad stream index, zero session, odd page size,
	 * length not a page multiple, reserved bytes */
	CU_ASSERT_EQUAL(rp_live_hello_decode(b, sizeof(b) - 1, &o, &why), -EPROTO);
	h.stream = 4;
	rp_live_hello_encode(b, &h);
	CU_ASSERT_EQUAL(rp_live_hello_decode(b, sizeof(b), &o, &why), -EPROTO);
	h.stream = 0;
	h.session = 0;
	rp_live_hello_encode(b, &h);
	CU_ASSERT_EQUAL(rp_live_hello_decode(b, sizeof(b), &o, &why), -EPROTO);
	h.session = 1;
	h.page_size = 6000;
	rp_live_hello_encode(b, &h);
	CU_ASSERT_EQUAL(rp_live_hello_decode(b, sizeof(b), &o, &why), -EPROTO);
	h.page_size = 4096;
	h.length = 4097;
	rp_live_hello_encode(b, &h);
	CU_ASSERT_EQUAL(rp_live_hello_decode(b, sizeof(b), &o, &why), -EPROTO);
	h.length = 4096;
	rp_live_hello_encode(b, &h);
	b[13] = 1;
	CU_ASSERT_EQUAL(rp_live_hello_decode(b, sizeof(b), &o, &why), -EPROTO);
	h.nstreams = 17;
	rp_live_hello_encode(b, &h);
	CU_ASSERT_EQUAL(rp_live_hello_decode(b, sizeof(b), &o, &why), -EPROTO);
}

static void t_live_pages(void)
{
	struct rp_live_pages m = { .round = 1, .npages = 3, .first = 10 }, o;
	uint8_t b[RP_LIVE_PAGES_HDR];
	const char *why = NULL;
	size_t ok = RP_LIVE_PAGES_HDR + 3 * 4096;

	rp_live_pages_hdr_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_pages_hdr_decode(b, ok, 13, 4096, &o, &why), 0);
	CU_ASSERT_EQUAL(o.first, 10);
	/* beyond the region, length mismatch, too many pages, overflow */
	CU_ASSERT_EQUAL(rp_live_pages_hdr_decode(b, ok, 12, 4096, &o, &why), -EPROTO);
	CU_ASSERT_EQUAL(rp_live_pages_hdr_decode(b, ok - 1, 13, 4096, &o, &why), -EPROTO);
	m.npages = RP_LIVE_MAX_RUN + 1;
	rp_live_pages_hdr_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_pages_hdr_decode(b, RP_LIVE_PAGES_HDR + (size_t)m.npages * 4096,
						 1000, 4096, &o, &why), -EPROTO);
	m.npages = 2;
	m.first = UINT64_MAX - 1;
	rp_live_pages_hdr_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_pages_hdr_decode(b, RP_LIVE_PAGES_HDR + 2 * 4096,
						 UINT64_MAX, 4096, &o, &why), -EPROTO);
	m.first = 0;
	m.round = 0;
	rp_live_pages_hdr_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_pages_hdr_decode(b, RP_LIVE_PAGES_HDR + 2 * 4096,
						 10, 4096, &o, &why), -EPROTO);
}

static void t_live_switch(void)
{
	uint64_t bits[2] = { 0x5, 0x1 }; /* pages 0, 2, 64 */
	struct rp_live_switch m = { .flags = RP_LIVE_SW_POSTCOPY, .port = 9,
				    .round = 3, .npages = 70, .ndrop = 3,
				    .bits = bits }, o;
	size_t n = rp_live_switch_size(70);
	uint8_t *b = malloc(n);
	const char *why = NULL;

	CU_ASSERT_EQUAL(rp_live_switch_encode(b, &m), n);
	CU_ASSERT_EQUAL(rp_live_switch_decode(b, n, 70, &o, &why), 0);
	CU_ASSERT_EQUAL(o.ndrop, 3);
	CU_ASSERT_EQUAL(o.port, 9);
	/* region size differs; length; popcount; bits beyond; no port */
	CU_ASSERT_EQUAL(rp_live_switch_decode(b, n, 71, &o, &why), -EPROTO);
	CU_ASSERT_EQUAL(rp_live_switch_decode(b, n - 8, 70, &o, &why), -EPROTO);
	m.ndrop = 2;
	rp_live_switch_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_switch_decode(b, n, 70, &o, &why), -EPROTO);
	bits[1] = 1ull << 63;
	m.ndrop = 3;
	rp_live_switch_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_switch_decode(b, n, 70, &o, &why), -EPROTO);
	bits[1] = 1;
	m.port = 0;
	rp_live_switch_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_switch_decode(b, n, 70, &o, &why), -EPROTO);
	/* dropping without post-copy */
	m.port = 9;
	m.flags = 0;
	rp_live_switch_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_switch_decode(b, n, 70, &o, &why), -EPROTO);
	free(b);
}

static void t_live_status(void)
{
	struct rp_live_status m = { .status = 104, .resident = 5 }, o;
	struct rp_live_round r = { .round = 2, .pages = 9 }, ro;
	uint8_t b[RP_LIVE_STATUS_LEN];
	const char *why = NULL;

	rp_live_status_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_status_decode(b, sizeof(b), &o, &why), 0);
	CU_ASSERT_EQUAL(o.status, 104);
	CU_ASSERT_EQUAL(o.resident, 5);
	m.status = -1;
	rp_live_status_encode(b, &m);
	CU_ASSERT_EQUAL(rp_live_status_decode(b, sizeof(b), &o, &why), -EPROTO);
	rp_live_round_encode(b, &r);
	CU_ASSERT_EQUAL(rp_live_round_decode(b, RP_LIVE_ROUND_LEN, &ro, &why), 0);
	CU_ASSERT_EQUAL(ro.pages, 9);
	r.round = 0;
	rp_live_round_encode(b, &r);
	CU_ASSERT_EQUAL(rp_live_round_decode(b, RP_LIVE_ROUND_LEN, &ro, &why), -EPROTO);
}

/* Written pages, and only those, are reported; a collect re-arms. */
static void dirty_case(bool sync)
{
	const uint64_t n = 256;
	char *m = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rp_dirty *d;
	struct rp_bitmap b;
	int ret;

	CU_ASSERT_FATAL(m != MAP_FAILED);
	memset(m, 1, n * 4096);
	ret = rp_dirty_start(m, n * 4096, 4096, sync, &d);
	if (ret == -ENOTSUP || ret == -EPERM) {
		munmap(m, n * 4096);
		return; /* no uffd-wp here: reported by the e2e tests */
	}
	CU_ASSERT_EQUAL_FATAL(ret, 0);
	CU_ASSERT_EQUAL(rp_bitmap_init(&b, n), 0);
	m[3 * 4096] = 2;
	m[100 * 4096 + 7] = 2;
	m[255 * 4096 + 4095] = 2;
	CU_ASSERT_EQUAL(rp_dirty_collect(d, &b), 3);
	CU_ASSERT(rp_bit_test(&b, 3) && rp_bit_test(&b, 100) &&
		  rp_bit_test(&b, 255));
	CU_ASSERT_EQUAL(rp_bitmap_weight(&b), 3);
	/* nothing written since: nothing reported; then a rewrite is seen */
	CU_ASSERT_EQUAL(rp_dirty_collect(d, &b), 0);
	m[100 * 4096] = 3;
	rp_bitmap_free(&b);
	rp_bitmap_init(&b, n);
	CU_ASSERT_EQUAL(rp_dirty_collect(d, &b), 1);
	CU_ASSERT(rp_bit_test(&b, 100));
	rp_bitmap_free(&b);
	rp_dirty_stop(d);
	m[5 * 4096] = 4; /* writes run freely after stop */
	munmap(m, n * 4096);
}

static void t_dirty_async(void)
{
	dirty_case(false);
}

static void t_dirty_sync(void)
{
	dirty_case(true);
}

/* Is the page at @p mapped (present in this process's page table)? */
static bool page_mapped(const void *p)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;

	if (fd < 0)
		return false;
	if (pread(fd, &e, sizeof(e),
		  (off_t)((uintptr_t)p / 4096 * sizeof(e))) != sizeof(e))
		e = 0;
	close(fd);
	return e >> 63;
}

/* Writes to pages never touched before tracking started must be seen,
 * with WP_UNPOPULATED (async, sync) and as on a kernel without it. */
static void untouched_case(bool sync, bool old_kernel)
{
	const uint64_t n = 256;
	char *m = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rp_dirty *d = NULL;
	struct rp_bitmap b;

	CU_ASSERT_FATAL(m != MAP_FAILED);
	m[0] = 1; /* one page populated, the rest never touched */
	if (old_kernel)
		CU_ASSERT_EQUAL_FATAL(rp_inject_set("uffd-wp-old-kernel"), 0);
	CU_ASSERT_EQUAL_FATAL(rp_dirty_start(m, n * 4096, 4096, sync, &d), 0);
	rp_inject_set("");
	/* the old-kernel case really ran as on an old kernel: without
	 * WP_UNPOPULATED the tracker maps never-touched pages first */
	CU_ASSERT_EQUAL(page_mapped(m + 100 * 4096), old_kernel);
	CU_ASSERT_EQUAL(rp_bitmap_init(&b, n), 0);
	m[3 * 4096] = 2;
	m[200 * 4096 + 9] = 2;
	m[0] = 2;
	CU_ASSERT_EQUAL(rp_dirty_collect(d, &b), 3);
	CU_ASSERT(rp_bit_test(&b, 0) && rp_bit_test(&b, 3) &&
		  rp_bit_test(&b, 200));
	rp_bitmap_free(&b);
	rp_dirty_stop(d);
	munmap(m, n * 4096);
}

static void t_dirty_untouched(void)
{
	untouched_case(false, false);
	untouched_case(true, false);
	untouched_case(true, true);
}

int register_live_tests(void)
{
	CU_pSuite s = CU_add_suite("live", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, t_live_hello);
	ADD(s, t_live_pages);
	ADD(s, t_live_switch);
	ADD(s, t_live_status);
	ADD(s, t_dirty_async);
	ADD(s, t_dirty_sync);
	ADD(s, t_dirty_untouched);
	return 0;
}
