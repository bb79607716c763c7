/* SPDX-License-Identifier: MIT */
/* See sd.h: the service manager's notify and fd-store protocol. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rp.h"
#include "sd.h"

#define SD_MAX_FDS 253 /* SCM_RIGHTS carries at most this many */

bool rp_sd_active(void)
{
	const char *p = getenv("NOTIFY_SOCKET");

	return p && *p;
}

/* One datagram with @state and optionally @n descriptors. */
static int sd_send(const char *state, const int *fds, unsigned n)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	union {
		char buf[CMSG_SPACE(sizeof(int) * SD_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { (void *)state, strlen(state) };
	struct msghdr mh = { .msg_name = &sa, .msg_iov = &iov, .msg_iovlen = 1 };
	size_t plen;
	int fd, ret = 0;

	if (!path || !*path)
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path) ||
	    n > SD_MAX_FDS)
		return -EINVAL;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = 0; /* abstract namespace */
	mh.msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	if (n) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int rp_sd_notify(const char *state)
{
	return sd_send(state, NULL, 0);
}

/* Names are what systemd accepts: printable, no ':' (the separator in
 * $LISTEN_FDNAMES), at most 255 bytes. */
static bool sd_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (!n || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] <= ' ' || name[i] >= 127 || name[i] == ':')
			return false;
	return true;
}

int rp_sd_store_fds(const char *name, const int *fds, unsigned n)
{
	char state[300];

	if (!sd_name_ok(name) || !n)
		return -EINVAL;
	snprintf(state, sizeof(state), "FDSTORE=1\nFDNAME=%s", name);
	return sd_send(state, fds, n);
}

int rp_sd_remove_fds(const char *name)
{
	char state[300];

	if (!sd_name_ok(name))
		return -EINVAL;
	snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	return sd_send(state, NULL, 0);
}

uint64_t rp_sd_watchdog_usec(void)
{
	const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	char *end;
	unsigned long long v;

	if (!us)
		return 0;
	if (pid && strtol(pid, NULL, 10) != getpid())
		return 0;
	errno = 0;
	v = strtoull(us, &end, 10);
	return errno || *end ? 0 : v;
}

int rp_sd_listen_fds(struct rp_sd_fd *out, unsigned cap)
{
	const char *pid = getenv("LISTEN_PID"), *nfds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	char *end;
	long n;
	int ret;

	if (!pid || !nfds)
		return 0;
	if (strtol(pid, &end, 10) != getpid() || *end) {
		ret = 0; /* meant for another process */
		goto out;
	}
	errno = 0;
	n = strtol(nfds, &end, 10);
	if (errno || *end || n < 0 || n > 4096) {
		ret = -EINVAL;
		goto out;
	}
	if ((unsigned long)n > cap) {
		ret = -ENOSPC;
		goto out;
	}
	for (long i = 0; i < n; i++) {
		const char *colon;
		size_t len;

		out[i].fd = RP_SD_LISTEN_FDS_START + (int)i;
		if (fcntl(out[i].fd, F_SETFD, FD_CLOEXEC) < 0) {
			ret = -errno;
			goto out;
		}
		snprintf(out[i].name, sizeof(out[i].name), "unknown");
		if (!names)
			continue;
		colon = strchr(names, ':');
		len = colon ? (size_t)(colon - names) : strlen(names);
		if (len && len < sizeof(out[i].name)) {
			memcpy(out[i].name, names, len);
			out[i].name[len] = 0;
		}
		names = colon ? colon + 1 : names + len;
	}
	ret = (int)n;
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return ret;
}
