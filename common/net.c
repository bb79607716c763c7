/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net.h"
#include "rp.h"

static int gai_errno(int e)
{
	return e == EAI_SYSTEM ? -errno : -ENOENT;
}

/* net.ipv4.ip_unprivileged_port_start: 1024 when it cannot be read. */
static long unprivileged_port_start(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re");
	long v = 1024;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 1024;
		fclose(f);
	}
	return v;
}

int rp_tcp_listen(const char *host, const char *port, int backlog)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE },
			*res, *a;
	int fd = -ENOENT, one = 1, e;

	e = getaddrinfo(host && *host ? host : NULL, port, &hints, &res);
	if (e)
		return gai_errno(e);
	for (a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
			    a->ai_protocol);
		if (fd < 0) {
			fd = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 &&
		    listen(fd, backlog) == 0)
			break;
		e = -errno;
		close(fd);
		fd = e;
	}
	freeaddrinfo(res);
	if (fd == -EACCES)
		rp_err("cannot listen on %s:%s: %s: port %s is below %ld, the first this user may bind (sysctl net.ipv4.ip_unprivileged_port_start): give the program CAP_NET_BIND_SERVICE (AmbientCapabilities=CAP_NET_BIND_SERVICE in the unit), lower net.ipv4.ip_unprivileged_port_start, or use a port of %ld or above",
		       host && *host ? host : "*", port, strerror(-fd), port,
		       unprivileged_port_start(), unprivileged_port_start());
	else if (fd < 0)
		rp_err("cannot listen on %s:%s: %s", host && *host ? host : "*",
		       port, fd == -ENOENT ? "name does not resolve"
					    : strerror(-fd));
	return fd;
}

/* connect(2) bounded by RP_CONNECT_MS: a lost SYN (a link that is down)
 * would otherwise hold a blocking connect for minutes. 0 or -errno. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len)
{
	int fl = fcntl(fd, F_GETFL), err = 0;
	socklen_t el = sizeof(err);
	struct pollfd pf = { fd, POLLOUT, 0 };
	int r;

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		do
			r = poll(&pf, 1, RP_CONNECT_MS);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			return -errno;
		if (err)
			return -err;
	}
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int rp_tcp_connect(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM },
			*res, *a;
	int fd = -ENOENT, one = 1, e;

	e = getaddrinfo(host, port, &hints, &res);
	if (e)
		return gai_errno(e);
	for (a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
			    a->ai_protocol);
		if (fd < 0) {
			fd = -errno;
			continue;
		}
		e = connect_within(fd, a->ai_addr, a->ai_addrlen);
		if (!e) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			rp_tcp_liveness(fd);
			break;
		}
		close(fd);
		fd = e;
	}
	freeaddrinfo(res);
	return fd;
}

void rp_tcp_liveness(int fd)
{
	int on = 1, idle = 5, intvl = 2, cnt = 3;
	unsigned int uto = 15000;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
}

/* The numeric address and port of @ss into @h (left as it is for a family
 * other than IPv4 and IPv6); returns the port, 0 when there is none. */
static int addr_str(const struct sockaddr_storage *ss, char *h, size_t hl)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s->sin_addr, h, (socklen_t)hl);
		return ntohs(s->sin_port);
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, h, (socklen_t)hl);
		return ntohs(s->sin6_port);
	}
	return 0;
}

void rp_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char h[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		port = addr_str(&ss, h, sizeof(h));
	snprintf(buf, len, "%s:%d", h, port);
}

void rp_sock_host(int fd, bool peer, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int r;

	buf[0] = 0;
	r = peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
		 : getsockname(fd, (struct sockaddr *)&ss, &sl);
	if (r == 0)
		addr_str(&ss, buf, len);
}

int rp_send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = sizeof(cm.b);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return (size_t)r == len ? 0 : -EMSGSIZE;
}

int rp_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}

int rp_split_hostport(const char *s, char *host, size_t hl, char *port,
		      size_t pl)
{
	const char *colon, *hs = s, *he;

	if (*s == '[') {
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		hs = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		he = colon;
	}
	if ((size_t)(he - hs) >= hl || strlen(colon + 1) >= pl ||
	    !colon[1])
		return -EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = 0;
	strcpy(port, colon + 1);
	return 0;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

int rp_peer_pidfd(int fd, pid_t pid)
{
	socklen_t len = sizeof(int);
	int pfd = -1;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pfd, &len) == 0 &&
	    pfd >= 0)
		return pfd;
	if (pid <= 0)
		return -1;
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd >= 0)
		fcntl(pfd, F_SETFD, FD_CLOEXEC);
	return pfd;
}

int rp_pidfd_kill(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}
