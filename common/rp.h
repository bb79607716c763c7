/* SPDX-License-Identifier: MIT */
/* Internal helpers shared by every part of librpage. Not installed. */
#ifndef RP_COMMON_H
#define RP_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "rpage/rpage.h"

#define RP_EXPORT __attribute__((visibility("default")))

#define RP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define RP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RP_MAX(a, b) ((a) > (b) ? (a) : (b))
#define RP_DIV_ROUND_UP(a, b) (((a) + (b) - 1) / (b))

#define RP_PAGE_4K 4096u

/* ---- logging ---- */
void rp_log(enum rpage_log_level lvl, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool rp_log_enabled(enum rpage_log_level lvl);

#define rp_err(...) rp_log(RPAGE_LOG_ERR, __func__, __VA_ARGS__)
#define rp_warn(...) rp_log(RPAGE_LOG_WARN, __func__, __VA_ARGS__)
#define rp_info(...) rp_log(RPAGE_LOG_INFO, __func__, __VA_ARGS__)
#define rp_dbg(...)                                                    \
	do {                                                           \
		if (rp_log_enabled(RPAGE_LOG_DEBUG))                   \
			rp_log(RPAGE_LOG_DEBUG, __func__, __VA_ARGS__); \
	} while (0)

/* ---- time ---- */
static inline uint64_t rp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- misc ---- */
static inline bool rp_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* For a memory registration of @len bytes refused for want of lockable
 * memory (ENOMEM, EPERM from ibv_reg_mr): the locked-memory limit, what is
 * pinned already, what is needed and how to raise it, into @buf. */
void rp_memlock_hint(size_t len, char *buf, size_t n);

/* Full-length I/O on blocking (or poll-driven) descriptors: 0 or -errno.
 * -ECONNRESET when the peer closes before @len bytes. */
int rp_read_full(int fd, void *buf, size_t len);
int rp_write_full(int fd, const void *buf, size_t len);

/* Sends every byte of @iov[0..n) on a blocking socket (the iovec array is
 * consumed: it is advanced past what was sent). 0 or -errno. */
struct iovec;
int rp_sendv_full(int fd, struct iovec *iov, int n);
/* Moves @mh's iovec array past @n bytes that were sent. */
struct msghdr;
void rp_iov_advance(struct msghdr *mh, size_t n);

/* Adds 1 to an eventfd (how every thread here is told to stop or look);
 * 0 or -errno (an eventfd that is already full counts as signalled). */
int rp_efd_signal(int efd);

/* Sets FD_CLOEXEC|O_NONBLOCK (nonblock optional). */
int rp_set_nonblock(int fd, bool on);

/* Thread naming (<= 15 characters). */
void rp_thread_name(const char *name);

/* Valid region names: 1..255 of [A-Za-z0-9._-]. */
bool rp_valid_name(const char *s, size_t len);

#endif
