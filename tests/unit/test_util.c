/* SPDX-License-Identifier: MIT */
/* Bitmaps and histograms. */
#include <stdlib.h>
#include <sys/resource.h>

#include "../../common/bitmap.h"
#include "../../common/hist.h"
#include "../../common/net.h"
#include "../../common/rp.h"
#include "tests.h"

static void t_bitmap(void)
{
	struct rp_bitmap a, b;

	CU_ASSERT_EQUAL_FATAL(rp_bitmap_init(&a, 200), 0);
	CU_ASSERT_EQUAL_FATAL(rp_bitmap_init(&b, 200), 0);
	CU_ASSERT_EQUAL(rp_bitmap_next_clear2(&a, &b, 0), 0);
	for (uint64_t i = 0; i < 130; i++)
		rp_bit_set(&a, i);
	CU_ASSERT_EQUAL(rp_bitmap_next_clear2(&a, NULL, 0), 130);
	rp_bit_set(&b, 130);
	CU_ASSERT_EQUAL(rp_bitmap_next_clear2(&a, &b, 0), 131);
	CU_ASSERT_EQUAL(rp_bitmap_next_clear2(&a, &b, 150), 150);
	CU_ASSERT_FALSE(rp_bit_set(&a, 199));
	CU_ASSERT_TRUE(rp_bit_set(&a, 199));
	CU_ASSERT_EQUAL(rp_bitmap_weight(&a), 131);
	for (uint64_t i = 131; i < 199; i++)
		rp_bit_set(&b, i);
	/* everything set: none clear */
	CU_ASSERT_EQUAL(rp_bitmap_next_clear2(&a, &b, 0), 200);
	CU_ASSERT_TRUE(rp_bit_clear(&a, 5));
	CU_ASSERT_FALSE(rp_bit_test(&a, 5));
	CU_ASSERT_EQUAL(rp_bitmap_next_clear2(&a, &b, 0), 5);
	rp_bitmap_free(&a);
	rp_bitmap_free(&b);
}

static void t_hist_exact_small(void)
{
	struct rp_hist h;

	rp_hist_init(&h);
	for (uint64_t v = 1; v <= 10; v++)
		rp_hist_add(&h, v);
	CU_ASSERT_EQUAL(h.count, 10);
	CU_ASSERT_EQUAL(rp_hist_quantile(&h, 0.5), 5);
	CU_ASSERT_EQUAL(rp_hist_quantile(&h, 1.0), 10);
	CU_ASSERT_EQUAL(rp_hist_quantile(&h, 0.0), 1);
}

static void t_hist_precision(void)
{
	struct rp_hist h;
	uint64_t *v = malloc(100000 * sizeof(*v));

	rp_hist_init(&h);
	/* 1..100000 us in ns: quantiles within the bucket precision (1/32) */
	for (uint64_t i = 1; i <= 100000; i++) {
		v[i - 1] = i * 1000;
		rp_hist_add(&h, v[i - 1]);
	}
	for (double q = 0.5; q < 1.0; q += 0.049) {
		double want = q * 100000 * 1000, got = (double)rp_hist_quantile(&h, q);

		CU_ASSERT(got >= want * 0.99 && got <= want * 1.04);
	}
	CU_ASSERT_EQUAL(rp_hist_quantile(&h, 1.0), 100000000);
	/* bucket edges are monotonic and cover each value */
	for (uint64_t x = 1; x < (1ull << 36); x = x * 3 + 1) {
		unsigned b = rp_hist_bucket(x);

		CU_ASSERT(rp_hist_bucket_high(b) >= x);
		if (b)
			CU_ASSERT(rp_hist_bucket_high(b - 1) < x);
	}
	free(v);
}

/* The power-of-two microsecond buckets: QEMU's postcopy-latency-dist
 * puts a fault of u whole microseconds in bucket floor(log2(u)). */
static void t_hist_us2(void)
{
	static const struct { uint64_t ns; unsigned b; } c[] = {
		{ 0, 0 }, { 999, 0 }, { 1000, 0 }, { 1999, 0 }, { 2000, 1 },
		{ 3999, 1 }, { 4000, 2 }, { 255999, 7 }, { 256000, 8 },
		{ 511999, 8 }, { 512000, 9 }, { 4194303999ull, 21 },
		{ 4194304000ull, 22 }, { 8388608000ull, 23 }, { UINT64_MAX, 23 },
	};
	struct rp_hist a, b;
	uint64_t n = 0;

	rp_hist_init(&a);
	rp_hist_init(&b);
	for (unsigned i = 0; i < RP_ARRAY_SIZE(c); i++) {
		CU_ASSERT_EQUAL(rp_hist_us2_bucket(c[i].ns), c[i].b);
		rp_hist_add(i & 1 ? &a : &b, c[i].ns);
	}
	rp_hist_merge(&a, &b);
	CU_ASSERT_EQUAL(a.count, RP_ARRAY_SIZE(c));
	for (unsigned i = 0; i < RP_HIST_US2; i++)
		n += a.us2[i];
	CU_ASSERT_EQUAL(n, a.count);
	CU_ASSERT_EQUAL(a.us2[0], 4);
	CU_ASSERT_EQUAL(a.us2[23], 2);
	CU_ASSERT_EQUAL(a.min, 0);
	CU_ASSERT_EQUAL(a.max, UINT64_MAX);
}

static void t_hostport(void)
{
	char h[64], p[16];

	CU_ASSERT_EQUAL(rp_split_hostport("127.0.0.1:7000", h, sizeof(h), p, sizeof(p)), 0);
	CU_ASSERT_STRING_EQUAL(h, "127.0.0.1");
	CU_ASSERT_STRING_EQUAL(p, "7000");
	CU_ASSERT_EQUAL(rp_split_hostport("[::1]:80", h, sizeof(h), p, sizeof(p)), 0);
	CU_ASSERT_STRING_EQUAL(h, "::1");
	CU_ASSERT_EQUAL(rp_split_hostport("nohost", h, sizeof(h), p, sizeof(p)), -EINVAL);
	CU_ASSERT_EQUAL(rp_split_hostport("host:", h, sizeof(h), p, sizeof(p)), -EINVAL);
	CU_ASSERT_EQUAL(rp_split_hostport("[::1:80", h, sizeof(h), p, sizeof(p)), -EINVAL);
	CU_ASSERT_TRUE(rp_valid_name("mem-0.img_x", 11));
	CU_ASSERT_FALSE(rp_valid_name("a/b", 3));
	CU_ASSERT_FALSE(rp_valid_name("", 0));
}

/* A registration refused for want of lockable memory: the message says
 * the limit, what is needed and where to raise it. */
static void t_memlock_hint(void)
{
	struct rlimit old, low;
	char hint[512] = "";

	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_MEMLOCK, &old), 0);
	low = old;
	low.rlim_cur = 64 * 1024; /* only the soft limit: it can go back */
	if (old.rlim_max != RLIM_INFINITY && old.rlim_max < low.rlim_cur)
		low.rlim_cur = old.rlim_max;
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_MEMLOCK, &low), 0);
	rp_memlock_hint(1 << 20, hint, sizeof(hint));
	CU_ASSERT_EQUAL(setrlimit(RLIMIT_MEMLOCK, &old), 0);
	if (low.rlim_cur == 64 * 1024)
		CU_ASSERT_PTR_NOT_NULL(strstr(hint, "RLIMIT_MEMLOCK (ulimit -l) is 64 KiB"));
	CU_ASSERT_PTR_NOT_NULL(strstr(hint, "this needs 1024 KiB more"));
	CU_ASSERT_PTR_NOT_NULL(strstr(hint, "LimitMEMLOCK=infinity"));
	CU_ASSERT_PTR_NOT_NULL(strstr(hint, "CAP_IPC_LOCK"));
}

int register_util_tests(void)
{
	CU_pSuite s = CU_add_suite("util", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, t_bitmap);
	ADD(s, t_hist_exact_small);
	ADD(s, t_hist_precision);
	ADD(s, t_hist_us2);
	ADD(s, t_hostport);
	ADD(s, t_memlock_hint);
	return 0;
}
