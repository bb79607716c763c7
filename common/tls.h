/* SPDX-License-Identifier: MIT */
/*
 * Connections and their security: every TCP connection of rpage is a
 * struct rp_conn, plain (loopback, or --insecure) or TLS 1.3 (GnuTLS for
 * the handshake, then the kernel's TLS record layer when the kernel has
 * it, else GnuTLS's). Callers read and write through rp_conn_* and never
 * see which of the three paths carries the bytes.
 *
 * Credentials (struct rpage_tls) are loaded once, checked completely at
 * load time (a missing or malformed key is an error then, never later),
 * and are read-only afterwards: any number of threads may handshake with
 * the same credentials at once.
 *
 * Threads: a connection belongs to one thread at a time, except that one
 * thread may send while another receives (GnuTLS allows it, so does the
 * kernel), and rp_conn_shutdown may be called from any thread to make a
 * blocked call return.
 */
#ifndef RP_TLS_H
#define RP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rpage/rpage.h"

struct iovec;
struct rp_hdr;

/* Identities: PSK identities (the left of "IDENTITY:HEXKEY") and the
 * Common Name of X.509 certificates; printable ASCII, no ':' or space. */
#define RP_MAX_IDENTITY 128
#define RP_PSK_MIN 16 /* bytes: a key shorter than 128 bits is refused */
#define RP_PSK_MAX 64

/* One line of a keys.psk file. */
struct rp_psk {
	char identity[RP_MAX_IDENTITY + 1];
	uint8_t key[RP_PSK_MAX];
	unsigned key_len;
};

/*
 * Parses a keys.psk text (QEMU's and GnuTLS psktool's format: one
 * IDENTITY:HEXKEY per line; blank lines and lines starting with '#' are
 * skipped; a trailing CR is allowed). Allocates *out (caller frees).
 * -EINVAL with a reason and the line number in @why (at least 128 bytes)
 * for anything else: a bad identity, odd or non-hex key digits, a key
 * shorter than 16 or longer than 64 bytes, a duplicate identity, no key.
 */
int rp_psk_parse(const char *text, size_t len, struct rp_psk **out,
		 unsigned *n, char *why, size_t wl);

/* True for an identity rpage accepts (1..128 printable, no ':' or space). */
bool rp_identity_valid(const char *s, size_t len);

enum rp_conn_mode {
	RP_CONN_PLAIN = 0,
	RP_CONN_TLS = 1,  /* TLS records in user space (GnuTLS) */
};

struct rp_conn {
	int fd;
	enum rp_conn_mode mode;
	void *session;        /* gnutls_session_t (TLS only) */
	const struct rpage_tls *tls_creds; /* during the handshake */
	bool ktls_tx, ktls_rx;/* the kernel carries this direction's records */
	uint64_t deadline_ns; /* non-zero: waits end then (-ETIMEDOUT) */
	int last_errno;       /* of the socket call GnuTLS saw fail */
	bool rx_nowait;       /* rp_conn_readv_nowait runs: receives never wait */
	bool rx_blocked;      /* the socket had nothing for GnuTLS (EAGAIN) */
	/* user-space TLS: bytes read ahead of GnuTLS and records queued for
	 * one send (see tls.c: few system calls per megabyte) */
	uint8_t *rbuf, *wbuf;
	size_t rpos, rlen, wlen;
	bool wcork;           /* queue what GnuTLS pushes; rp_tls_flush sends */
	/* record boundary tracking while the handshake runs (see tls.c) */
	bool rec_guard;
	uint8_t rec_hdr[5];
	unsigned rec_hdr_have;
	size_t rec_left;
	char identity[RP_MAX_IDENTITY + 1]; /* authenticated peer, "" plain */
	int psk_seen;         /* server: 1 the peer named a known identity,
			       * -1 an unknown one (identity holds it) */
	char desc[320];       /* "TLS1.3 PSK 'id' AES-128-GCM X25519, kernel TLS" */
	char peer[64];        /* "a.b.c.d:port" */
};

/* A plain connection on @fd (takes it). */
void rp_conn_init(struct rp_conn *c, int fd);
/* Moves a connection to another place in memory (GnuTLS keeps a
 * pointer to it): *@dst takes it over, *@src is left empty. A struct
 * rp_conn is never copied by assignment once TLS runs on it. */
void rp_conn_move(struct rp_conn *dst, struct rp_conn *src);
/* Closes the descriptor and frees the TLS state; @c may be reused. */
void rp_conn_close(struct rp_conn *c);
/* Sends nothing more on @c: a TLS close_notify where the records are in
 * user space (best effort, never waits), then the TCP FIN. */
void rp_conn_close_write(struct rp_conn *c);
/* Makes every blocked read or write on @c return (any thread). */
void rp_conn_shutdown(struct rp_conn *c);
/*
 * From now on every wait of @c ends at @deadline_ns (CLOCK_MONOTONIC) with
 * -ETIMEDOUT: the descriptor becomes non-blocking and each call polls.
 * 0 clears it (blocking again). A whole exchange (a handshake) gets one
 * deadline, not one per read, so a slow sender cannot stretch it.
 */
int rp_conn_set_deadline(struct rp_conn *c, uint64_t deadline_ns);

/* Full-length I/O: 0 or -errno (-ECONNRESET when the peer closed,
 * -EBADMSG for a record that failed its integrity check, -ETIMEDOUT at the
 * deadline, -EAGAIN when a socket receive timeout expired). */
int rp_conn_read_full(struct rp_conn *c, void *buf, size_t len);
int rp_conn_write_full(struct rp_conn *c, const void *buf, size_t len);
/* Sends every byte of @iov[0..n) (the array is consumed). */
int rp_conn_sendv_full(struct rp_conn *c, struct iovec *iov, int n);
/* Reads what has arrived, at least one byte, into @iov (one system call
 * on a plain or kernel-TLS socket). Returns the count or -errno. */
ssize_t rp_conn_readv(struct rp_conn *c, struct iovec *iov, int n);
/* rp_conn_readv that never waits: -EAGAIN when no byte can be had now
 * (user-space TLS: no record is complete). Call it until -EAGAIN before
 * polling the socket: bytes TLS holds already make no socket readable. */
ssize_t rp_conn_readv_nowait(struct rp_conn *c, struct iovec *iov, int n);
/*
 * Sends @hdr (@hlen bytes) and then @len bytes: from @file_fd at @off
 * with sendfile when @file_fd >= 0 and the connection allows it (plain or
 * kernel TLS), else from @mem. *@no_sendfile is set when the file cannot
 * be spliced (the caller stops trying). 0 or -errno.
 */
int rp_conn_send_with_data(struct rp_conn *c, const void *hdr, size_t hlen,
			   int file_fd, uint64_t off, const void *mem,
			   size_t len, bool *no_sendfile);
/* Waits until a read would not block, up to @ms (-1: forever): 1
 * readable, 0 timed out, -errno. */
int rp_conn_wait_readable(struct rp_conn *c, int ms);

/* Framed messages (common/proto.h) over a connection. */
int rp_conn_send_frame(struct rp_conn *c, uint16_t type, uint64_t tag,
		       const void *payload, uint32_t len);
int rp_conn_recv_frame(struct rp_conn *c, struct rp_hdr *h, void *payload,
		       uint32_t cap, const char **why);

/* The last TLS error on @c in words (or strerror(-@err) when none). */
const char *rp_conn_strerror(const struct rp_conn *c, int err);

/* ---- credentials and handshakes ---- */

/* Is @tls set up with credentials (not NULL)? */
static inline bool rp_tls_on(const struct rpage_tls *tls)
{
	return tls != NULL;
}
/* Are @tls X.509 credentials (not a pre-shared key, not NULL)? */
bool rp_tls_is_x509(const struct rpage_tls *tls);
/* The identity this end presents ("" for none). */
const char *rp_tls_own_identity(const struct rpage_tls *tls);

/*
 * The client side: TLS 1.3 handshake on the connected @c, mutual
 * authentication with @tls, the server's certificate checked against
 * @peer_name (X.509), under the deadline set on @c (the caller's, for the
 * whole exchange). Then kernel TLS when the kernel has it. 0, or -EACCES (the peer could
 * not be authenticated or refused us: wrong key, unknown identity, bad
 * certificate), -ETIMEDOUT, -EPROTO (the peer does not speak TLS), or the
 * socket's -errno; the reason is logged naming @c->peer.
 */
int rp_tls_client(struct rp_conn *c, const struct rpage_tls *tls,
		  const char *peer_name);
/*
 * The server side, under the deadline already set on @c (the caller's
 * whole-handshake deadline). On success @c->identity holds the peer's
 * authenticated identity. A peer that sends a plain rpage HELLO instead
 * gets an ERROR frame saying this server requires TLS.
 */
int rp_tls_server(struct rp_conn *c, const struct rpage_tls *tls);

/* ---- command lines (rpage-server, rpage-client, rpage-bench) ---- */

/* getopt_long values of the credential options, and their table rows. */
enum {
	RP_OPT_PSK = 0x1000, RP_OPT_CERT, RP_OPT_KEY, RP_OPT_CA, RP_OPT_NAME,
	RP_OPT_INSECURE, RP_OPT_NO_KTLS,
};
#define RP_TLS_LONGOPTS                                          \
	{ "psk-file", required_argument, NULL, RP_OPT_PSK },     \
	{ "tls-cert", required_argument, NULL, RP_OPT_CERT },    \
	{ "tls-key", required_argument, NULL, RP_OPT_KEY },      \
	{ "tls-ca", required_argument, NULL, RP_OPT_CA },        \
	{ "tls-name", required_argument, NULL, RP_OPT_NAME },    \
	{ "insecure", no_argument, NULL, RP_OPT_INSECURE },      \
	{ "no-ktls", no_argument, NULL, RP_OPT_NO_KTLS }
/* Takes option @opt (one of RP_OPT_*) into @o / *@insecure: true when
 * it was one of them. */
bool rp_tls_getopt(int opt, const char *arg, struct rpage_tls_opts *o,
		   int *insecure);
/* Loads the credentials @o names (*out NULL when it names none); on
 * failure prints "@prog: cannot use these credentials" and returns
 * -errno: a program stops there, at start. */
int rp_tls_load(const char *prog, const struct rpage_tls_opts *o,
		struct rpage_tls **out);

/* Internal to conn.c / tls.c. */
void rp_tls_session_free(struct rp_conn *c);
/* User-space TLS: sends the records queued while c->wcork was set. 0,
 * -EAGAIN (socket full: call again when writable) or -errno. */
int rp_tls_flush(struct rp_conn *c);
/* Bytes read ahead and not yet given to GnuTLS. */
static inline size_t rp_tls_readahead(const struct rp_conn *c)
{
	return c->rlen - c->rpos;
}
const char *rp_tls_strerror(int gret);

/* True when @host:@port (already connected on @fd) is a loopback peer. */
bool rp_fd_peer_is_loopback(int fd);
/* True when the listening socket @fd is bound to a loopback address. */
bool rp_fd_local_is_loopback(int fd);

/* Replaces every byte outside printable ASCII (control bytes, DEL, C1
 * controls, anything >= 0x80) with '?', up to the NUL or @len. */
void rp_sanitize(char *s, size_t len);

#endif
