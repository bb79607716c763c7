/* SPDX-License-Identifier: MIT */
/* userfaultfd helpers: thin, -errno returning wrappers over the ioctls. */
#ifndef RP_UFFD_H
#define RP_UFFD_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/userfaultfd.h>

/*
 * Opens a userfaultfd (O_CLOEXEC | O_NONBLOCK) and performs UFFDIO_API
 * asking for @features. It handles the kernel's faults too where this
 * process may have such a one (CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1
 * or /dev/userfaultfd); otherwise it is UFFD_USER_MODE_ONLY, and a warning
 * says once what that loses. Returns the fd, or -errno; -ENOTSUP when the
 * kernel lacks a requested feature (*missing says which, if non-NULL);
 * -EPERM when this user may not have it (rp_uffd_perm_hint says the fix).
 */
int rp_uffd_open(uint64_t features, uint64_t *missing);
/* For -EPERM from rp_uffd_open(@features): what to change, for a message. */
const char *rp_uffd_perm_hint(uint64_t features);

/* rp_uffd_open(@features) + rp_uffd_register(@mem, @len, @mode): the usual
 * set-up of a process handing its memory over. The fd, or -errno. */
int rp_uffd_open_register(uint64_t features, void *mem, uint64_t len,
			  uint64_t mode);

/* Registers [addr, addr+len) with @mode (UFFDIO_REGISTER_MODE_*); stores
 * the offered ioctls in *ioctls if non-NULL. */
int rp_uffd_register(int fd, void *addr, uint64_t len, uint64_t mode,
		     uint64_t *ioctls);
int rp_uffd_unregister(int fd, void *addr, uint64_t len);

/*
 * UFFDIO_COPY of @len bytes from @src to @dst. Returns 0 when all were
 * copied. Otherwise returns -errno and stores in *copied how many bytes
 * were placed before the failure (0 if none): -EEXIST means the page at
 * dst + *copied is already present (benign: someone placed it first),
 * -EAGAIN that the mm is changing (retry after reading events), -ESRCH or
 * -ENOENT that the process is gone.
 */
int rp_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len,
		 uint64_t *copied);
/* UFFDIO_ZEROPAGE (anonymous memory only); same convention. */
int rp_uffd_zeropage(int fd, uint64_t dst, uint64_t len, uint64_t *zeroed);
int rp_uffd_wake(int fd, uint64_t addr, uint64_t len);

/* True when @fd refers to a userfaultfd. */
bool rp_is_uffd(int fd);

/*
 * The features a userfaultfd was given by UFFDIO_API, as the kernel reports
 * them for the descriptor (/proc/self/fdinfo), with UFFD_FEATURE_* bits;
 * RP_UFFD_INITIALIZED is set once UFFDIO_API has been done. 0 or -errno.
 */
#define RP_UFFD_INITIALIZED (1ull << 31)
int rp_uffd_features(int fd, uint64_t *features);

/*
 * Whether the address space behind @fd still exists: false only when the
 * kernel says it is gone (ESRCH), e.g. after a forked child exited. Changes
 * nothing in that address space (@addr: any page-aligned address).
 */
bool rp_uffd_mm_alive(int fd, uint64_t addr, uint64_t psize);

/* A range of addresses [start, end). */
struct rp_area {
	uint64_t start, end;
};

/*
 * The private anonymous mappings of process @pid (0: this process), from
 * /proc/PID/maps, merged where adjacent, into @out (at most @cap). Returns
 * how many, or -errno (-ENOSPC: more than @cap). Uses no malloc: it may be
 * called from the fault thread while another thread of this process forks.
 */
int rp_proc_anon_areas(int pid, struct rp_area *out, unsigned cap);
/* What process @pid (0: this one) has mapped at @addr: 1 private anonymous
 * memory, 0 another mapping, -ENOENT nothing, or -errno. No allocation. */
int rp_proc_addr_kind(int pid, uint64_t addr);
/* Whether [addr, addr + len) lies in one of @n sorted areas. */
bool rp_area_covers(const struct rp_area *a, unsigned n, uint64_t addr,
		    uint64_t len);

/* Probe: can this process open a userfaultfd with @features and register
 * anonymous memory? 0 or -errno, with a reason in *why. */
int rp_uffd_probe(uint64_t features, const char **why);

#endif
