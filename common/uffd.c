/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rp.h"
#include "uffd.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

static int uffd_raw_open(void)
{
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd = (int)syscall(__NR_userfaultfd, flags | UFFD_USER_MODE_ONLY);
	int dev;

	if (fd >= 0)
		return fd;
	fd = (int)syscall(__NR_userfaultfd, flags);
	if (fd >= 0)
		return fd;
	/* refused (vm.unprivileged_userfaultfd = 0): try the device */
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -EPERM;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	if (fd < 0)
		fd = -errno;
	close(dev);
	return fd;
}

int rp_uffd_open(uint64_t features, uint64_t *missing)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = uffd_raw_open();

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = errno;
		struct uffdio_api probe = { .api = UFFD_API };
		int pfd;

		close(fd);
		if (missing && e == EINVAL && (pfd = uffd_raw_open()) >= 0) {
			if (ioctl(pfd, UFFDIO_API, &probe) == 0)
				*missing = features & ~probe.features;
			close(pfd);
		}
		return e == EINVAL ? -ENOTSUP : -e;
	}
	return fd;
}

int rp_uffd_register(int fd, void *addr, uint64_t len, uint64_t mode,
		     uint64_t *ioctls)
{
	struct uffdio_register r = {
		.range = { .start = (uint64_t)(uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &r) < 0)
		return -errno;
	if (ioctls)
		*ioctls = r.ioctls;
	return 0;
}

int rp_uffd_open_register(uint64_t features, void *mem, uint64_t len,
			  uint64_t mode)
{
	int fd = rp_uffd_open(features, NULL), ret;

	if (fd < 0)
		return fd;
	ret = rp_uffd_register(fd, mem, len, mode, NULL);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

int rp_uffd_unregister(int fd, void *addr, uint64_t len)
{
	struct uffdio_range r = { .start = (uint64_t)(uintptr_t)addr,
				  .len = len };

	return ioctl(fd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;
}

int rp_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len,
		 uint64_t *copied)
{
	struct uffdio_copy c = {
		.dst = dst,
		.src = (uint64_t)(uintptr_t)src,
		.len = len,
	};
	int r = ioctl(fd, UFFDIO_COPY, &c);

	if (copied)
		*copied = c.copy > 0 ? (uint64_t)c.copy : 0;
	if (r == 0)
		return 0;
	/* c.copy holds -errno or the bytes copied before the failure */
	if (c.copy < 0)
		return (int)c.copy;
	return -errno;
}

int rp_uffd_zeropage(int fd, uint64_t dst, uint64_t len, uint64_t *zeroed)
{
	struct uffdio_zeropage z = { .range = { .start = dst, .len = len } };
	int r = ioctl(fd, UFFDIO_ZEROPAGE, &z);

	if (zeroed)
		*zeroed = z.zeropage > 0 ? (uint64_t)z.zeropage : 0;
	if (r == 0)
		return 0;
	if (z.zeropage < 0)
		return (int)z.zeropage;
	return -errno;
}

int rp_uffd_wake(int fd, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}

bool rp_is_uffd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return strcmp(link, "anon_inode:[userfaultfd]") == 0;
}

int rp_uffd_features(int fd, uint64_t *features)
{
	char path[64], line[256];
	unsigned long long api, ioctls;
	unsigned int feat;
	int ret = -ENOTSUP;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	/* "API:\t<UFFD_API>:<features>:<ioctls>" (fs/userfaultfd.c) */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "API:\t%llx:%x:%llx", &api, &feat, &ioctls) == 3) {
			*features = feat;
			ret = 0;
			break;
		}
	fclose(f);
	return ret;
}

bool rp_uffd_mm_alive(int fd, uint64_t addr, uint64_t psize)
{
	/* A copy from an unreadable source fails before anything is placed
	 * (EFAULT), or finds no mapping (ENOENT) or a page (EEXIST); only an
	 * address space that has gone answers ESRCH first. */
	struct uffdio_copy c = { .dst = addr, .src = 0, .len = psize,
				 .mode = UFFDIO_COPY_MODE_DONTWAKE };

	return ioctl(fd, UFFDIO_COPY, &c) == 0 || errno != ESRCH;
}

int rp_uffd_probe(uint64_t features, const char **why)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t missing = 0, ioctls = 0;
	void *p;
	int fd, ret;

	fd = rp_uffd_open(features, &missing);
	if (fd < 0) {
		*why = fd == -ENOTSUP ? "the kernel lacks a requested userfaultfd feature"
		       : fd == -EPERM ? "userfaultfd is not permitted (vm.unprivileged_userfaultfd=0 and no access to /dev/userfaultfd)"
				      : "userfaultfd cannot be opened";
		return fd;
	}
	p = mmap(NULL, (size_t)psz, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		close(fd);
		*why = "mmap failed";
		return -ENOMEM;
	}
	ret = rp_uffd_register(fd, p, (uint64_t)psz,
			       UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	if (ret)
		*why = "UFFDIO_REGISTER of anonymous memory failed";
	else if (!(ioctls & (1ull << _UFFDIO_COPY)))
		ret = -ENOTSUP, *why = "UFFDIO_COPY not offered";
	munmap(p, (size_t)psz);
	close(fd);
	return ret;
}
