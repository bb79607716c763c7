/* SPDX-License-Identifier: MIT */
#ifndef RP_NET_H
#define RP_NET_H

#include <stdbool.h>
#include <stddef.h>

/* Listening TCP socket on host:port (host NULL or "" = any). fd, or -errno
 * after logging which address could not be used. */
int rp_tcp_listen(const char *host, const char *port, int backlog);
/* Connected TCP socket with TCP_NODELAY. fd or -errno (-EHOSTUNREACH etc.;
 * -ENOENT when the name does not resolve). Connects within RP_CONNECT_MS:
 * a SYN lost to a link that is down fails with -ETIMEDOUT, not minutes
 * later. */
#define RP_CONNECT_MS 10000
int rp_tcp_connect(const char *host, const char *port);
/* Every rpage TCP connection detects a silent peer: keepalive probes
 * after 5 s idle (3 x 2 s) and TCP_USER_TIMEOUT of 15 s on unacknowledged
 * data, so a vanished host ends the transfer with an error, not a hang. */
void rp_tcp_liveness(int fd);
/* "a.b.c.d:port" of the peer (or "?"). */
void rp_peer_name(int fd, char *buf, size_t len);
/* The numeric address (no port) of @fd's peer (@peer true) or of its own
 * end: where a second connection to the same host, or a listener that the
 * peer can reach, must go. "" when it has none. */
void rp_sock_host(int fd, bool peer, char *buf, size_t len);
/* Sends @len bytes on a Unix socket in one sendmsg, with descriptor @fd
 * attached by SCM_RIGHTS (none when @fd < 0). 0, -EMSGSIZE when the
 * message went out short, or -errno. */
int rp_send_with_fd(int sock, const void *buf, size_t len, int fd);
/* Local port of a bound socket, or -errno. */
int rp_local_port(int fd);
/* Splits "HOST:PORT" (IPv6 as "[addr]:port") into the two buffers. */
int rp_split_hostport(const char *s, char *host, size_t hl, char *port,
		      size_t pl);

/*
 * A pidfd for the process at the other end of the Unix socket @fd: from
 * SO_PEERPIDFD where the kernel has it (no race with pid reuse), else
 * pidfd_open(@pid). -1 when neither works.
 */
int rp_peer_pidfd(int fd, pid_t pid);
/* Sends @sig to the process of @pidfd. 0 or -errno. */
int rp_pidfd_kill(int pidfd, int sig);

#endif
