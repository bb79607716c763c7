/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdatomic.h>
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

/* A userfaultfd from /dev/userfaultfd (Linux 6.1+): its file mode, not a
 * capability, says who may have one. The fd, or -errno. */
static int uffd_dev_open(int flags)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC), fd;

	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	if (fd < 0)
		fd = -errno;
	close(dev);
	return fd;
}

/*
 * A userfaultfd that handles every fault, the kernel's own accesses too (a
 * read(2) into this memory, O_DIRECT, vhost, KVM), where this process may
 * have one: with CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1, or access
 * to /dev/userfaultfd. Otherwise one for faults from user mode only, which
 * any user may open (Linux 5.11+); what that loses is said once.
 */
static int uffd_raw_open(void)
{
	static atomic_bool told;
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd = (int)syscall(__NR_userfaultfd, flags), e;

	if (fd >= 0)
		return fd;
	e = -errno;
	fd = uffd_dev_open(flags);
	if (fd >= 0)
		return fd;
	fd = (int)syscall(__NR_userfaultfd, flags | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return e == -EPERM || e == -EACCES ? -EPERM : e;
	if (!atomic_exchange(&told, true))
		rp_warn("userfaultfd: user-mode faults only (%s): a system call "
			"that touches a page not yet arrived (read(2) or write(2) "
			"with a buffer in that memory, O_DIRECT, vhost, KVM) fails "
			"with EFAULT instead of waiting for it. To serve those too: "
			"sysctl vm.unprivileged_userfaultfd=1, or give this user "
			"read-write access to /dev/userfaultfd, or CAP_SYS_PTRACE",
			"vm.unprivileged_userfaultfd=0, /dev/userfaultfd not "
			"accessible, no CAP_SYS_PTRACE");
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

const char *rp_uffd_perm_hint(uint64_t features)
{
	if (features & UFFD_FEATURE_EVENT_FORK)
		return "UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE (setcap "
		       "cap_sys_ptrace+ep on the program, or "
		       "AmbientCapabilities=CAP_SYS_PTRACE in its systemd unit)";
	return "userfaultfd(2) is refused to this user: sysctl "
	       "vm.unprivileged_userfaultfd=1, or give it read-write access "
	       "to /dev/userfaultfd, or CAP_SYS_PTRACE; in a container, its "
	       "seccomp profile must allow userfaultfd(2)";
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

/* One line of /proc/PID/maps: "start-end perms offset dev inode path". A
 * private anonymous mapping has perms "..p" and inode 0, or is hugetlb
 * memory mapped MAP_ANONYMOUS ("/anon_hugepage"). */
/* One line of /proc/PID/maps: its range, and whether it is private
 * anonymous memory. False when the line does not parse. */
static bool maps_line(const char *l, uint64_t *start, uint64_t *end,
		      bool *anon)
{
	unsigned long long s, e, off, ino;
	char perms[8], dev[16];
	int n = 0;

	if (sscanf(l, "%llx-%llx %7s %llx %15s %llu %n", &s, &e, perms, &off,
		   dev, &ino, &n) < 6 || strlen(perms) < 4)
		return false;
	*start = s;
	*end = e;
	*anon = perms[3] == 'p' &&
		(ino == 0 || !strncmp(l + n, "/anon_hugepage", 14));
	return true;
}

/* Calls @fn for every mapping of process @pid (0: this one), in address
 * order, without allocating (the fault path calls it). @fn returns 0 to
 * go on, anything else to stop with that value. 0 or -errno. */
static int maps_scan(int pid, int (*fn)(void *ctx, uint64_t s, uint64_t e, bool anon),
		     void *ctx)
{
	char path[64], buf[8192];
	size_t have = 0;
	int fd, ret = 0;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/maps");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
		char *line = buf, *nl;

		if (r < 0) {
			ret = -errno;
			break;
		}
		have += (size_t)r;
		buf[have] = 0;
		while (!ret && (nl = strchr(line, '\n'))) {
			uint64_t s, e;
			bool anon;

			*nl = 0;
			if (maps_line(line, &s, &e, &anon))
				ret = fn(ctx, s, e, anon);
			line = nl + 1;
		}
		if (ret || r == 0)
			break;
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof(buf) - 1) { /* a line longer than the buffer */
			ret = -E2BIG;
			break;
		}
	}
	close(fd);
	return ret;
}

struct anon_ctx {
	struct rp_area *out;
	unsigned n, cap;
};

static int add_anon(void *ctx, uint64_t s, uint64_t e, bool anon)
{
	struct anon_ctx *c = ctx;

	if (!anon)
		return 0;
	if (c->n && c->out[c->n - 1].end == s) {
		c->out[c->n - 1].end = e;
		return 0;
	}
	if (c->n == c->cap)
		return -ENOSPC;
	c->out[c->n++] = (struct rp_area){ s, e };
	return 0;
}

int rp_proc_anon_areas(int pid, struct rp_area *out, unsigned cap)
{
	struct anon_ctx c = { out, 0, cap };
	int ret = maps_scan(pid, add_anon, &c);

	return ret ? ret : (int)c.n;
}

struct kind_ctx {
	uint64_t addr;
};

static int kind_of(void *ctx, uint64_t s, uint64_t e, bool anon)
{
	const struct kind_ctx *c = ctx;

	if (c->addr < s || c->addr >= e)
		return 0;
	return anon ? 1 : 2;
}

int rp_proc_addr_kind(int pid, uint64_t addr)
{
	struct kind_ctx c = { addr };
	int ret = maps_scan(pid, kind_of, &c);

	return ret == 1 ? 1 : ret == 2 ? 0 : ret ? ret : -ENOENT;
}

bool rp_area_covers(const struct rp_area *a, unsigned n, uint64_t addr,
		    uint64_t len)
{
	for (unsigned i = 0; i < n; i++)
		if (addr >= a[i].start && addr + len <= a[i].end)
			return true;
	return false;
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
		       : fd == -EPERM ? rp_uffd_perm_hint(features)
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
