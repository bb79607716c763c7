/* SPDX-License-Identifier: MIT */
/*
 * The service manager's protocol (systemd's sd_notify(3) and
 * sd_listen_fds(3)), spoken directly so the daemons need no libsystemd:
 * readiness and watchdog datagrams on $NOTIFY_SOCKET, descriptors kept in
 * the manager's file-descriptor store across a restart, and the stored
 * descriptors handed back as $LISTEN_FDS/$LISTEN_FDNAMES. Every call is a
 * no-op returning 0 when there is no manager ($NOTIFY_SOCKET unset).
 */
#ifndef RP_SD_H
#define RP_SD_H

#include <stdbool.h>
#include <stdint.h>

#define RP_SD_LISTEN_FDS_START 3

/* True when a service manager listens ($NOTIFY_SOCKET is set). */
bool rp_sd_active(void);
/* Sends @state ("READY=1", "STATUS=...", "STOPPING=1", ...). 0 or -errno. */
int rp_sd_notify(const char *state);
/* Stores @n descriptors under @name ("FDSTORE=1"). The manager keeps them
 * until removed or the service is stopped for good. 0 or -errno. */
int rp_sd_store_fds(const char *name, const int *fds, unsigned n);
/* Removes every stored descriptor named @name. 0 or -errno. */
int rp_sd_remove_fds(const char *name);
/* The watchdog interval the manager asks for, in microseconds (0: none). */
uint64_t rp_sd_watchdog_usec(void);

/* One descriptor handed back at start. */
struct rp_sd_fd {
	int fd;
	char name[256];
};

/*
 * The descriptors passed at start ($LISTEN_FDS for this pid), with their
 * names ($LISTEN_FDNAMES; "unknown" when absent), into @out (at most
 * @cap). Sets FD_CLOEXEC on each and unsets the variables. Returns how
 * many, or -errno.
 */
int rp_sd_listen_fds(struct rp_sd_fd *out, unsigned cap);

#endif
