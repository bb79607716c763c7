/* SPDX-License-Identifier: MIT */
/* userfaultfd helpers, on the real kernel interface. */
#include <poll.h>
#include <pthread.h>
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

struct kread {
	int fd;
	char *buf;
	ssize_t ret;
	int err;
};

static void *kread_main(void *arg)
{
	struct kread *k = arg;

	k->ret = read(k->fd, k->buf, 100);
	k->err = errno;
	return NULL;
}

/* Root may have a userfaultfd that serves the kernel's accesses too: a
 * read(2) into a missing page waits for the page instead of failing with
 * EFAULT, as one for user-mode faults only would make it. */
static void t_kernel_faults(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, (size_t)ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *src = calloc(1, (size_t)ps), data[100];
	struct kread k = { .ret = -2 };
	struct uffd_msg msg;
	struct pollfd pf;
	pthread_t t;
	int p[2], fd;

	if (geteuid() != 0) {
		/* a user may have the other kind: that it opens is asserted */
		fd = rp_uffd_open(0, NULL);
		CU_ASSERT(fd >= 0);
		if (fd >= 0)
			close(fd);
		free(src);
		munmap(m, (size_t)ps);
		return;
	}
	fd = rp_uffd_open(0, NULL);
	CU_ASSERT_FATAL(fd >= 0 && m != MAP_FAILED && src && pipe(p) == 0);
	CU_ASSERT_EQUAL_FATAL(rp_uffd_register(fd, m, (uint64_t)ps,
					       UFFDIO_REGISTER_MODE_MISSING, NULL), 0);
	memset(data, 0x5a, sizeof(data));
	CU_ASSERT_EQUAL_FATAL(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	k.fd = p[0];
	k.buf = m;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, kread_main, &k), 0);
	pf = (struct pollfd){ fd, POLLIN, 0 };
	/* the kernel's copy into the page faults: the message arrives */
	CU_ASSERT_EQUAL(poll(&pf, 1, 5000), 1);
	if (pf.revents & POLLIN) {
		CU_ASSERT_EQUAL(read(fd, &msg, sizeof(msg)), (ssize_t)sizeof(msg));
		CU_ASSERT_EQUAL(msg.event, UFFD_EVENT_PAGEFAULT);
		CU_ASSERT_EQUAL(msg.arg.pagefault.address & ~(uint64_t)(ps - 1),
				(uint64_t)(uintptr_t)m);
	}
	CU_ASSERT_EQUAL(rp_uffd_copy(fd, (uint64_t)(uintptr_t)m, src, (uint64_t)ps, NULL), 0);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(k.ret, 100);
	CU_ASSERT_EQUAL((unsigned char)m[99], 0x5a);
	close(p[0]);
	close(p[1]);
	close(fd);
	munmap(m, (size_t)ps);
	free(src);
}

/* Without CAP_SYS_PTRACE, UFFD_FEATURE_EVENT_FORK is refused with EPERM,
 * and the reason names that capability. */
static void t_perm_hint(void)
{
	CU_ASSERT_PTR_NOT_NULL(strstr(rp_uffd_perm_hint(UFFD_FEATURE_EVENT_FORK),
				      "CAP_SYS_PTRACE"));
	CU_ASSERT_PTR_NOT_NULL(strstr(rp_uffd_perm_hint(0),
				      "vm.unprivileged_userfaultfd=1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(rp_uffd_perm_hint(0), "/dev/userfaultfd"));
}

int register_uffd_tests(void)
{
	CU_pSuite s = CU_add_suite("uffd", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, t_probe);
	ADD(s, t_copy_zero_wake);
	ADD(s, t_kernel_faults);
	ADD(s, t_perm_hint);
	return 0;
}
