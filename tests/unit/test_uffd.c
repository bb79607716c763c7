/* SPDX-License-Identifier: MIT */
/* userfaultfd helpers, on the real kernel interface. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../common/uffd.h"
#include "tests.h"

static void t_probe(void)
{
	const char *why = NULL;

	CU_ASSERT_EQUAL(rp_uffd_probe(UFFD_FEATURE_EVENT_REMOVE, &why), 0);
	/* a feature bit no kernel has: refused, and named as missing */
	{
		uint64_t missing = 0;
		int fd = rp_uffd_open(1ull << 62, &missing);

		CU_ASSERT_EQUAL(fd, -ENOTSUP);
		CU_ASSERT((missing & (1ull << 62)) != 0);
	}
}

static void t_copy_zero_wake(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, (size_t)ps * 4, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *src = malloc((size_t)ps * 2);
	uint64_t n = 99, ioctls = 0;
	int fd = rp_uffd_open(0, NULL);

	CU_ASSERT_FATAL(fd >= 0 && m != MAP_FAILED && src);
	CU_ASSERT_TRUE(rp_is_uffd(fd));
	CU_ASSERT_FALSE(rp_is_uffd(0));
	CU_ASSERT_EQUAL_FATAL(rp_uffd_register(fd, m, (uint64_t)ps * 4,
					       UFFDIO_REGISTER_MODE_MISSING, &ioctls), 0);
	CU_ASSERT((ioctls & (1ull << _UFFDIO_COPY)) != 0);
	memset(src, 0xab, (size_t)ps * 2);
	CU_ASSERT_EQUAL(rp_uffd_copy(fd, (uint64_t)(uintptr_t)m, src, (uint64_t)ps, &n), 0);
	CU_ASSERT_EQUAL(n, (uint64_t)ps);
	CU_ASSERT_EQUAL((unsigned char)m[100], 0xab);
	/* two pages where the first is present: EEXIST with nothing copied */
	CU_ASSERT_EQUAL(rp_uffd_copy(fd, (uint64_t)(uintptr_t)m, src, (uint64_t)ps * 2, &n), -EEXIST);
	CU_ASSERT_EQUAL(n, 0);
	/* zero page */
	CU_ASSERT_EQUAL(rp_uffd_zeropage(fd, (uint64_t)(uintptr_t)(m + 2 * ps), (uint64_t)ps, &n), 0);
	CU_ASSERT_EQUAL(m[2 * ps + 5], 0);
	CU_ASSERT_EQUAL(rp_uffd_wake(fd, (uint64_t)(uintptr_t)m, (uint64_t)ps), 0);
	/* a copy outside any registered range */
	CU_ASSERT(rp_uffd_copy(fd, 4096, src, (uint64_t)ps, &n) < 0);
	CU_ASSERT_EQUAL(rp_uffd_unregister(fd, m, (uint64_t)ps * 4), 0);
	close(fd);
	munmap(m, (size_t)ps * 4);
	free(src);
}

int register_uffd_tests(void)
{
	CU_pSuite s = CU_add_suite("uffd", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, t_probe);
	ADD(s, t_copy_zero_wake);
	return 0;
}
