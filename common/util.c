/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "rp.h"

static enum rpage_log_level g_level = RPAGE_LOG_INFO;
static bool g_level_init;

RP_EXPORT void rpage_set_log_level(enum rpage_log_level level)
{
	__atomic_store_n(&g_level, level, __ATOMIC_RELAXED);
	g_level_init = true;
}

RP_EXPORT const char *rpage_version_string(void)
{
	return "0.1";
}

bool rp_log_enabled(enum rpage_log_level lvl)
{
	if (!g_level_init) {
		const char *e = getenv("RPAGE_LOG");

		g_level_init = true;
		if (e && *e >= '0' && *e <= '3')
			g_level = (enum rpage_log_level)(*e - '0');
	}
	return lvl <= __atomic_load_n(&g_level, __ATOMIC_RELAXED);
}

void rp_log(enum rpage_log_level lvl, const char *func, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info",
					     "debug" };
	char buf[1024];
	va_list ap;
	int n;

	if (!rp_log_enabled(lvl))
		return;
	n = snprintf(buf, sizeof(buf), "rpage: %s: ", names[lvl]);
	if (lvl == RPAGE_LOG_DEBUG && n > 0 && (size_t)n < sizeof(buf))
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s: ", func);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(buf))
		vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
#ifdef RP_FUZZ_QUIET
	/* fuzzing builds format every message (that is fuzzed too) and
	 * write none: millions of runs would only print rejections */
	return;
#endif
	/* one write per line so lines from threads do not interleave */
	fprintf(stderr, "%s\n", buf);
}

int rp_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t r = read(fd, p, len);

		if (r > 0) {
			p += r;
			len -= (size_t)r;
		} else if (r == 0) {
			return -ECONNRESET;
		} else if (errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

int rp_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t r = send(fd, p, len, MSG_NOSIGNAL);

		if (r < 0 && errno == ENOTSOCK)
			r = write(fd, p, len);
		if (r > 0) {
			p += r;
			len -= (size_t)r;
		} else if (r < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

int rp_sendv_full(int fd, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	while (mh.msg_iovlen) {
		ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		rp_iov_advance(&mh, (size_t)r);
	}
	return 0;
}

void rp_iov_advance(struct msghdr *mh, size_t n)
{
	while (mh->msg_iovlen && n >= mh->msg_iov->iov_len) {
		n -= mh->msg_iov->iov_len;
		mh->msg_iov++;
		mh->msg_iovlen--;
	}
	if (mh->msg_iovlen) {
		mh->msg_iov->iov_base = (char *)mh->msg_iov->iov_base + n;
		mh->msg_iov->iov_len -= n;
	}
}

int rp_efd_signal(int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
		return 0;
	rp_warn("signalling eventfd %d: %s", efd, strerror(errno));
	return -errno;
}

int rp_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	if (fcntl(fd, F_SETFL, fl) < 0)
		return -errno;
	return 0;
}

void rp_thread_name(const char *name)
{
	char n[16];

	snprintf(n, sizeof(n), "%s", name);
	pthread_setname_np(pthread_self(), n);
}

bool rp_valid_name(const char *s, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* VmPin of /proc/self/status (pages pinned for devices), in KiB; 0 when
 * it cannot be read. */
static unsigned long long pinned_kib(void)
{
	unsigned long long v = 0;
	char line[128];
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %llu kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

void rp_memlock_hint(size_t len, char *buf, size_t n)
{
	unsigned long long need = (len + 1023) / 1024, pinned = pinned_kib();
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0) {
		snprintf(buf, n, "the locked-memory limit cannot be read: %s",
			 strerror(errno));
		return;
	}
	if (rl.rlim_cur == RLIM_INFINITY) {
		snprintf(buf, n, "RLIMIT_MEMLOCK is unlimited: the device or the host has no more memory to pin for %llu KiB",
			 need);
		return;
	}
	snprintf(buf, n, "RLIMIT_MEMLOCK (ulimit -l) is %llu KiB, %llu KiB are pinned already and this needs %llu KiB more: raise it to at least %llu KiB, or unlimited (LimitMEMLOCK=infinity in the systemd unit, a memlock line in /etc/security/limits.conf, ulimit -l in the starting shell), or give the program CAP_IPC_LOCK",
		 (unsigned long long)rl.rlim_cur / 1024, pinned, need,
		 pinned + need);
}
