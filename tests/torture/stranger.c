/* SPDX-License-Identifier: MIT */
/* See stranger.h: the outside view of a process served by rpage. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "stranger.h"

int st_make_image(const char *path, uint64_t len, uint64_t seed)
{
	size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret = 0;

	if (fd < 0 || !buf) {
		ret = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	for (uint64_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? (size_t)(len - off) : chunk;

		st_fill(buf, off, n, seed);
		if (write(fd, buf, n) != (ssize_t)n) {
			ret = -EIO;
			break;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

void st_fill(void *dst, uint64_t off, uint64_t len, uint64_t seed)
{
	uint64_t *w = dst;

	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = st_word(seed, off / 8 + i);
}

int64_t st_check(const void *p, uint64_t off, uint64_t len, uint64_t seed)
{
	const uint64_t *w = p;

	for (uint64_t i = 0; i < len / 8; i++)
		if (w[i] != st_word(seed, off / 8 + i))
			return (int64_t)(i * 8);
	return -1;
}

int64_t st_check_byte(const void *p, uint64_t len, uint8_t byte)
{
	const uint8_t *b = p;

	for (uint64_t i = 0; i < len; i++)
		if (b[i] != byte)
			return (int64_t)i;
	return -1;
}

int st_uffd_open(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(__NR_userfaultfd,
			      O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0)
		fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

int st_uffd_register(int uffd, void *p, uint64_t len)
{
	struct uffdio_register r = {
		.range = { .start = (uint64_t)(uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &r) < 0 ? -errno : 0;
}

int st_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

int st_handshake(int sock, const struct st_range *r, unsigned n, int uffd)
{
	char json[16384];
	size_t len = 0;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov;
	struct msghdr mh = { 0 };
	struct cmsghdr *c;

	len += (size_t)snprintf(json, sizeof(json), "[");
	for (unsigned i = 0; i < n && len < sizeof(json) - 200; i++)
		len += (size_t)snprintf(json + len, sizeof(json) - len,
			"%s{\"base_host_virt_addr\": %llu, \"size\": %llu, \"offset\": %llu, \"page_size\": %llu, \"page_size_kib\": %llu}",
			i ? ", " : "", (unsigned long long)r[i].base,
			(unsigned long long)r[i].size,
			(unsigned long long)r[i].offset,
			(unsigned long long)r[i].page_size,
			(unsigned long long)r[i].page_size / 1024);
	len += (size_t)snprintf(json + len, sizeof(json) - len, "]");
	iov.iov_base = json;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	memset(&u, 0, sizeof(u));
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EIO;
}

int st_count_fds(int pid)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

void *st_map_anon(uint64_t len, uint64_t psize)
{
	int fl = MAP_PRIVATE | MAP_ANONYMOUS;
	void *p;

	if (psize > 4096)
		fl |= MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, fl, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

double st_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
