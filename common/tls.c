/* SPDX-License-Identifier: MIT */
/*
 * Credentials and TLS 1.3 handshakes (see tls.h). GnuTLS runs the
 * handshake; afterwards the record layer moves into the kernel (TCP_ULP
 * "tls", TLS_TX and TLS_RX) when the kernel has it, else GnuTLS keeps it.
 *
 * Why the handshake reads one record at a time: the kernel can only take
 * over receiving at a record boundary with nothing buffered in user space.
 * While the handshake runs, the transport's pull function never reads past
 * the end of the TLS record GnuTLS is reading, so when the handshake is
 * done every byte that follows is still in the socket for the kernel.
 *
 * With the record layer in user space, the transport under GnuTLS reads
 * ahead (up to 256 KiB a system call) and queues the records of one
 * message to send them in one system call: GnuTLS itself reads a record
 * header and its body with two calls and sends each 16 KiB record with
 * its own, some 200 system calls per megabyte that plain TCP, with
 * sendfile, does not make.
 *
 * No thread of its own: handshakes run on the caller's thread, under the
 * connection's deadline.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "proto.h"
#include "rp.h"
#include "tls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#define RBUF_SIZE (256u << 10)  /* read-ahead under user-space TLS */
#define WBUF_SIZE (256u << 10)  /* records queued for one send */

/* TLS 1.3 only, AES-GCM only (what the kernel's record layer takes and
 * what AES-NI makes fast); PSKs only with an ephemeral ECDH exchange, so
 * a key that leaks later does not open recorded sessions. Elliptic
 * curves only, X25519 first: with finite-field groups allowed GnuTLS
 * picks FFDHE2048 for a PSK, about 20 ms of CPU per handshake against
 * under 1 ms, and every connection of a switchover pays it. */
#define PRIO_GROUPS ":-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1"
#define PRIO_PSK                                                        \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:"             \
	"-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM" PRIO_GROUPS
#define PRIO_X509                                                       \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"       \
	"+AES-256-GCM" PRIO_GROUPS

enum tls_kind { TLS_PSK = 1, TLS_X509 = 2 };

struct rpage_tls {
	enum tls_kind kind;
	bool no_ktls;
	struct rp_psk *psk;   /* the file's lines; a client uses the first */
	unsigned npsk;
	gnutls_psk_client_credentials_t psk_cli;
	gnutls_psk_server_credentials_t psk_srv;
	gnutls_certificate_credentials_t x509;
	gnutls_priority_t prio;
	char identity[RP_MAX_IDENTITY + 1];
	char peer_name[256];
};

/* ---- small helpers ------------------------------------------------------ */

void rp_sanitize(char *s, size_t len)
{
	for (size_t i = 0; i < len && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f)
			s[i] = '?';
	}
}

bool rp_identity_valid(const char *s, size_t len)
{
	if (len == 0 || len > RP_MAX_IDENTITY)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == ':')
			return false;
	}
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int rp_psk_parse(const char *text, size_t len, struct rp_psk **out,
		 unsigned *n, char *why, size_t wl)
{
	struct rp_psk *v = NULL;
	unsigned cnt = 0, cap = 0, line = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - l) : len - pos;
		const char *colon;
		size_t il, hl;
		struct rp_psk *e;

		pos += ll + (nl ? 1 : 0);
		line++;
		if (ll && l[ll - 1] == '\r')
			ll--;
		if (ll == 0 || l[0] == '#')
			continue;
		colon = memchr(l, ':', ll);
		if (!colon) {
			snprintf(why, wl, "line %u: no ':' between identity and key", line);
			goto bad;
		}
		il = (size_t)(colon - l);
		hl = ll - il - 1;
		if (!rp_identity_valid(l, il)) {
			snprintf(why, wl, "line %u: the identity must be 1-%d printable characters without ':' or spaces",
				 line, RP_MAX_IDENTITY);
			goto bad;
		}
		if (hl % 2 || hl / 2 < RP_PSK_MIN || hl / 2 > RP_PSK_MAX) {
			snprintf(why, wl, "line %u: the key must be %d to %d bytes in hexadecimal (an even number of digits), not %zu digits",
				 line, RP_PSK_MIN, RP_PSK_MAX, hl);
			goto bad;
		}
		for (unsigned i = 0; i < cnt; i++)
			if (strlen(v[i].identity) == il &&
			    !memcmp(v[i].identity, l, il)) {
				snprintf(why, wl, "line %u: identity repeated", line);
				goto bad;
			}
		if (cnt == cap) {
			struct rp_psk *nv;

			cap = cap ? cap * 2 : 4;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		e = &v[cnt];
		memset(e, 0, sizeof(*e));
		memcpy(e->identity, l, il);
		for (size_t i = 0; i < hl; i += 2) {
			int hi = hexval(colon[1 + i]), lo = hexval(colon[2 + i]);

			if (hi < 0 || lo < 0) {
				snprintf(why, wl, "line %u: the key has a character that is not a hexadecimal digit",
					 line);
				goto bad;
			}
			e->key[i / 2] = (uint8_t)(hi << 4 | lo);
		}
		e->key_len = (unsigned)(hl / 2);
		cnt++;
	}
	if (!cnt) {
		snprintf(why, wl, "no IDENTITY:HEXKEY line");
		goto bad;
	}
	*out = v;
	*n = cnt;
	return 0;
bad:
	if (v)
		memset(v, 0, cap * sizeof(*v));
	free(v);
	return -EINVAL;
}

static bool sa_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		const uint8_t *a = s->sin6_addr.s6_addr;
		static const uint8_t v4m[12] = { 0, 0, 0, 0, 0, 0,
						 0, 0, 0, 0, 0xff, 0xff };

		if (IN6_IS_ADDR_LOOPBACK(&s->sin6_addr))
			return true;
		return !memcmp(a, v4m, sizeof(v4m)) && a[12] == 127;
	}
	return false;
}

bool rp_fd_peer_is_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	return getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	       sa_is_loopback(&ss);
}

bool rp_fd_local_is_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	return getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	       sa_is_loopback(&ss);
}

/* ---- credentials ---------------------------------------------------------- */

static int read_small_file(const char *path, const char *what, char **out,
			   size_t *len)
{
	struct stat sb;
	char *buf;
	ssize_t n;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		rp_err("cannot open the %s %s: %s", what, path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > 1 << 20) {
		rp_err("the %s %s is not a regular file of at most 1 MiB", what,
		       path);
		close(fd);
		return -EINVAL;
	}
	if (sb.st_mode & 077)
		rp_warn("the %s %s can be read by other users (mode %04o): chmod 600 it",
			what, path, (unsigned)(sb.st_mode & 07777));
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, buf, (size_t)sb.st_size);
	close(fd);
	if (n != sb.st_size) {
		rp_err("cannot read the %s %s", what, path);
		free(buf);
		return -EIO;
	}
	buf[n] = 0;
	*out = buf;
	*len = (size_t)n;
	return 0;
}

static int psk_server_cb(gnutls_session_t s, const gnutls_datum_t *user,
			 gnutls_datum_t *key)
{
	struct rp_conn *c = gnutls_session_get_ptr(s);
	const struct rpage_tls *t = c ? c->tls_creds : NULL;

	if (!t || !user)
		return -1;
	/* remembered, sanitised, for the log line of a failure */
	snprintf(c->identity, sizeof(c->identity), "%.*s",
		 (int)RP_MIN(user->size, (unsigned)RP_MAX_IDENTITY),
		 (const char *)user->data);
	rp_sanitize(c->identity, sizeof(c->identity));
	c->psk_seen = -1;
	if (!rp_identity_valid((const char *)user->data, user->size))
		return -1;
	for (unsigned i = 0; i < t->npsk; i++) {
		const struct rp_psk *p = &t->psk[i];

		if (strlen(p->identity) != user->size ||
		    memcmp(p->identity, user->data, user->size))
			continue;
		c->psk_seen = 1;
		key->data = gnutls_malloc(p->key_len);
		if (!key->data)
			return -1;
		memcpy(key->data, p->key, p->key_len);
		key->size = p->key_len;
		return 0;
	}
	/* unknown: the handshake fails; the caller logs the identity */
	return -1;
}

/* The Common Name of a DER certificate into @out ("" when none). */
static int cert_cn(const gnutls_datum_t *der, char *out, size_t len)
{
	gnutls_x509_crt_t crt;
	size_t sz = len;
	int ret;

	out[0] = 0;
	if (gnutls_x509_crt_init(&crt) < 0)
		return -ENOMEM;
	ret = gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER);
	if (!ret)
		ret = gnutls_x509_crt_get_dn_by_oid(
			crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out, &sz);
	gnutls_x509_crt_deinit(crt);
	if (ret < 0) {
		out[0] = 0;
		return -EINVAL;
	}
	return 0;
}

static int load_psk(struct rpage_tls *t, const char *path)
{
	char why[160];
	char *text = NULL;
	size_t len = 0;
	gnutls_datum_t key;
	int ret;

	ret = read_small_file(path, "key file", &text, &len);
	if (ret)
		return ret;
	ret = rp_psk_parse(text, len, &t->psk, &t->npsk, why, sizeof(why));
	memset(text, 0, len);
	free(text);
	if (ret) {
		if (ret == -EINVAL)
			rp_err("key file %s: %s (the format is IDENTITY:HEXKEY per line, as `rpage-server --gen-psk` and `psktool` write it)",
			       path, why);
		return ret;
	}
	snprintf(t->identity, sizeof(t->identity), "%s", t->psk[0].identity);
	if (gnutls_psk_allocate_client_credentials(&t->psk_cli) < 0 ||
	    gnutls_psk_allocate_server_credentials(&t->psk_srv) < 0)
		return -ENOMEM;
	key.data = t->psk[0].key;
	key.size = t->psk[0].key_len;
	if (gnutls_psk_set_client_credentials(t->psk_cli, t->psk[0].identity,
					      &key, GNUTLS_PSK_KEY_RAW) < 0)
		return -EINVAL;
	gnutls_psk_set_server_credentials_function2(t->psk_srv, psk_server_cb);
	return 0;
}

static int load_x509(struct rpage_tls *t, const struct rpage_tls_opts *o)
{
	gnutls_datum_t der;
	int ret;

	if (!o->cert_file || !o->key_file || !o->ca_file) {
		rp_err("X.509 needs all three of a certificate, its key and the CA certificate (--tls-cert, --tls-key, --tls-ca)");
		return -EINVAL;
	}
	for (int i = 0; i < 3; i++) {
		const char *f = i == 0 ? o->cert_file : i == 1 ? o->key_file
							      : o->ca_file;

		if (access(f, R_OK)) {
			ret = -errno;
			rp_err("cannot read %s: %s", f, strerror(errno));
			return ret;
		}
	}
	if (gnutls_certificate_allocate_credentials(&t->x509) < 0)
		return -ENOMEM;
	ret = gnutls_certificate_set_x509_trust_file(t->x509, o->ca_file,
						     GNUTLS_X509_FMT_PEM);
	if (ret <= 0) {
		rp_err("CA file %s: %s", o->ca_file,
		       ret == 0 ? "no certificate in it" : gnutls_strerror(ret));
		return -EINVAL;
	}
	ret = gnutls_certificate_set_x509_key_file(t->x509, o->cert_file,
						   o->key_file,
						   GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		rp_err("certificate %s with key %s: %s", o->cert_file,
		       o->key_file, gnutls_strerror(ret));
		return -EINVAL;
	}
	if (gnutls_certificate_get_crt_raw(t->x509, 0, 0, &der) == 0 &&
	    cert_cn(&der, t->identity, sizeof(t->identity)) == 0 &&
	    !rp_identity_valid(t->identity, strlen(t->identity))) {
		rp_err("certificate %s: its Common Name is not a usable identity (1-%d printable characters without ':' or spaces)",
		       o->cert_file, RP_MAX_IDENTITY);
		return -EINVAL;
	}
	return 0;
}

RP_EXPORT int rpage_tls_new(const struct rpage_tls_opts *o,
			    struct rpage_tls **out)
{
	struct rpage_tls *t;
	bool x509 = o && (o->cert_file || o->key_file || o->ca_file);
	const char *err = NULL;
	int ret;

	if (!o || (!o->psk_file && !x509)) {
		rp_err("no credentials given: a PSK file, or a certificate, its key and a CA");
		return -EINVAL;
	}
	if (o->psk_file && x509) {
		rp_err("give either a PSK file or X.509 files, not both");
		return -EINVAL;
	}
	if (o->peer_name && strlen(o->peer_name) >= sizeof(t->peer_name))
		return -ENAMETOOLONG;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->no_ktls = o->no_ktls;
	if (o->peer_name)
		snprintf(t->peer_name, sizeof(t->peer_name), "%s", o->peer_name);
	t->kind = o->psk_file ? TLS_PSK : TLS_X509;
	ret = t->kind == TLS_PSK ? load_psk(t, o->psk_file) : load_x509(t, o);
	if (!ret && gnutls_priority_init2(&t->prio,
					  t->kind == TLS_PSK ? PRIO_PSK
							     : PRIO_X509,
					  &err, 0) < 0) {
		rp_err("GnuTLS refuses the priority string at '%s'",
		       err ? err : "?");
		ret = -EINVAL;
	}
	if (ret) {
		rpage_tls_free(t);
		return ret;
	}
	*out = t;
	return 0;
}

RP_EXPORT void rpage_tls_free(struct rpage_tls *t)
{
	if (!t)
		return;
	if (t->psk_cli)
		gnutls_psk_free_client_credentials(t->psk_cli);
	if (t->psk_srv)
		gnutls_psk_free_server_credentials(t->psk_srv);
	if (t->x509)
		gnutls_certificate_free_credentials(t->x509);
	if (t->prio)
		gnutls_priority_deinit(t->prio);
	if (t->psk)
		memset(t->psk, 0, t->npsk * sizeof(*t->psk));
	free(t->psk);
	free(t);
}

bool rp_tls_is_x509(const struct rpage_tls *t)
{
	return t && t->kind == TLS_X509;
}

RP_EXPORT const char *rpage_tls_identity(const struct rpage_tls *t)
{
	return t ? t->identity : "";
}

const char *rp_tls_own_identity(const struct rpage_tls *t)
{
	return rpage_tls_identity(t);
}

RP_EXPORT int rpage_tls_gen_psk(const char *path, const char *identity)
{
	uint8_t key[32];
	char line[RP_MAX_IDENTITY + 2 + 2 * sizeof(key) + 2];
	size_t n = 0;
	int fd, ret = 0;

	if (!identity)
		identity = "rpage";
	if (!rp_identity_valid(identity, strlen(identity))) {
		rp_err("identity '%s' is not valid: 1-%d printable characters without ':' or spaces",
		       identity, RP_MAX_IDENTITY);
		return -EINVAL;
	}
	if (gnutls_rnd(GNUTLS_RND_KEY, key, sizeof(key)) < 0)
		return -EIO;
	n = (size_t)snprintf(line, sizeof(line), "%s:", identity);
	for (size_t i = 0; i < sizeof(key); i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%02x", key[i]);
	line[n++] = '\n';
	memset(key, 0, sizeof(key));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		rp_err("cannot create the key file %s: %s", path,
		       strerror(errno));
		goto out;
	}
	ret = rp_write_full(fd, line, n);
	if (!ret && fsync(fd))
		ret = -errno;
	close(fd);
	if (ret) {
		rp_err("writing %s: %s", path, strerror(-ret));
		unlink(path);
	}
out:
	memset(line, 0, sizeof(line));
	return ret;
}

/* ---- the transport under GnuTLS ----------------------------------------- */

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct rp_conn *c = p;
	ssize_t n;

	if (c->rpos < c->rlen) {
		n = (ssize_t)RP_MIN(len, c->rlen - c->rpos);
		memcpy(buf, c->rbuf + c->rpos, (size_t)n);
		c->rpos += (size_t)n;
		return n;
	}
	if (c->rec_guard) {
		/* never read past the record GnuTLS is reading */
		if (c->rec_hdr_have < 5)
			len = RP_MIN(len, 5 - (size_t)c->rec_hdr_have);
		else
			len = RP_MIN(len, c->rec_left);
	} else if (c->rbuf && len < RBUF_SIZE) {
		/* read ahead: what has arrived, up to RBUF_SIZE */
		do
			n = recv(c->fd, c->rbuf, RBUF_SIZE,
				 c->rx_nowait ? MSG_DONTWAIT : 0);
		while (n < 0 && errno == EINTR);
		if (n > 0) {
			c->rlen = (size_t)n;
			c->rpos = RP_MIN(len, (size_t)n);
			memcpy(buf, c->rbuf, c->rpos);
			return (ssize_t)c->rpos;
		}
		goto done;
	}
	do
		n = recv(c->fd, buf, len, c->rx_nowait ? MSG_DONTWAIT : 0);
	while (n < 0 && errno == EINTR);
done:
	if (n < 0) {
		c->last_errno = errno;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			c->rx_blocked = true;
		gnutls_transport_set_errno(c->session, errno);
		return -1;
	}
	if (c->rec_guard && n > 0) {
		if (c->rec_hdr_have < 5) {
			memcpy(c->rec_hdr + c->rec_hdr_have, buf, (size_t)n);
			c->rec_hdr_have += (unsigned)n;
			if (c->rec_hdr_have == 5) {
				c->rec_left = (size_t)c->rec_hdr[3] << 8 |
					      c->rec_hdr[4];
				if (!c->rec_left)
					c->rec_hdr_have = 0;
			}
		} else {
			c->rec_left -= (size_t)n;
			if (!c->rec_left)
				c->rec_hdr_have = 0;
		}
	}
	return n;
}

int rp_tls_flush(struct rp_conn *c)
{
	while (c->wlen) {
		ssize_t r = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			c->last_errno = errno;
			return -errno;
		}
		memmove(c->wbuf, c->wbuf + r, c->wlen - (size_t)r);
		c->wlen -= (size_t)r;
	}
	return 0;
}

static ssize_t tls_push(gnutls_transport_ptr_t p, const giovec_t *iov,
			int n)
{
	struct rp_conn *c = p;
	struct msghdr mh = { .msg_iov = (struct iovec *)iov,
			     .msg_iovlen = (size_t)n };
	size_t total = 0;
	ssize_t r;

	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	/* queue while corked; send the queue first when it is full */
	if (c->wbuf && (c->wcork || c->wlen)) {
		if (c->wlen + total > WBUF_SIZE) {
			int ret = rp_tls_flush(c);

			if (ret) {
				gnutls_transport_set_errno(c->session, -ret);
				return -1;
			}
		}
		if (c->wcork && total <= WBUF_SIZE) {
			for (int i = 0; i < n; i++) {
				memcpy(c->wbuf + c->wlen, iov[i].iov_base,
				       iov[i].iov_len);
				c->wlen += iov[i].iov_len;
			}
			return (ssize_t)total;
		}
	}
	do
		r = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		c->last_errno = errno;
		gnutls_transport_set_errno(c->session, errno);
	}
	return r;
}

/* Waits for the direction GnuTLS needs, until the deadline. */
static int hs_wait(struct rp_conn *c)
{
	struct pollfd pf = { c->fd, 0, 0 };
	uint64_t now = rp_now_ns();
	int r;

	pf.events = gnutls_record_get_direction(c->session) ? POLLOUT : POLLIN;
	if (c->deadline_ns && now >= c->deadline_ns)
		return -ETIMEDOUT;
	r = poll(&pf, 1, c->deadline_ns ?
			 (int)((c->deadline_ns - now) / 1000000 + 1) : -1);
	if (r < 0 && errno != EINTR)
		return -errno;
	return 0;
}

static int new_session(struct rp_conn *c, const struct rpage_tls *t,
		       unsigned flags)
{
	gnutls_session_t s;
	int ret;

	ret = gnutls_init(&s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS |
				      GNUTLS_NO_SIGNAL);
	if (ret < 0)
		return -ENOMEM;
	c->session = s;
	c->tls_creds = t;
	gnutls_session_set_ptr(s, c);
	gnutls_priority_set(s, t->prio);
	if (t->kind == TLS_PSK)
		ret = gnutls_credentials_set(
			s, GNUTLS_CRD_PSK,
			flags & GNUTLS_SERVER ? (void *)t->psk_srv
					      : (void *)t->psk_cli);
	else
		ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
					     t->x509);
	if (ret < 0)
		return -EINVAL;
	gnutls_transport_set_ptr(s, c);
	gnutls_transport_set_pull_function(s, tls_pull);
	gnutls_transport_set_vec_push_function(s, tls_push);
	c->rec_guard = true;
	c->rec_hdr_have = 0;
	c->rec_left = 0;
	return 0;
}

/* kTLS crypto state for one direction from GnuTLS's record state. */
static int ktls_set(struct rp_conn *c, bool rx, const char **why)
{
	gnutls_session_t s = c->session;
	gnutls_cipher_algorithm_t ca = gnutls_cipher_get(s);
	gnutls_datum_t mac, iv, key;
	unsigned char seq[8];
	union {
		struct tls12_crypto_info_aes_gcm_128 g128;
		struct tls12_crypto_info_aes_gcm_256 g256;
	} ci;
	socklen_t sl;
	int ret;

	memset(&ci, 0, sizeof(ci));
	ret = gnutls_record_get_state(s, rx, &mac, &iv, &key, seq);
	if (ret < 0) {
		*why = "GnuTLS does not give out the record state";
		return -EINVAL;
	}
/* TLS 1.3: the 12-byte IV is the kernel's 4-byte salt and 8-byte iv */
#define FILL(f, type, klen)                                             \
	do {                                                            \
		f.info.version = TLS_1_3_VERSION;                       \
		f.info.cipher_type = type;                              \
		memcpy(f.salt, iv.data, 4);                             \
		memcpy(f.iv, iv.data + 4, 8);                           \
		memcpy(f.key, key.data, klen);                          \
		memcpy(f.rec_seq, seq, 8);                              \
		sl = sizeof(f);                                         \
	} while (0)
	if (iv.size != 12) {
		*why = "unexpected IV size";
		return -EINVAL;
	} else if (ca == GNUTLS_CIPHER_AES_128_GCM && key.size == 16) {
		FILL(ci.g128, TLS_CIPHER_AES_GCM_128, 16);
	} else if (ca == GNUTLS_CIPHER_AES_256_GCM && key.size == 32) {
		FILL(ci.g256, TLS_CIPHER_AES_GCM_256, 32);
	} else {
		*why = "the cipher has no kernel implementation";
		return -EINVAL;
	}
#undef FILL
	ret = setsockopt(c->fd, SOL_TLS, rx ? TLS_RX : TLS_TX, &ci, sl);
	memset(&ci, 0, sizeof(ci));
	if (ret < 0) {
		*why = rx ? "the kernel refused TLS_RX" : "the kernel refused TLS_TX";
		return -errno;
	}
	return 0;
}

/* After the handshake: the kernel's record layer where it exists. */
static void ktls_try(struct rp_conn *c, const struct rpage_tls *t,
		     char *why, size_t wl)
{
	const char *w = NULL;
	int ret;

	if (t->no_ktls) {
		snprintf(why, wl, "kernel TLS not used (no_ktls)");
		return;
	}
	if (gnutls_record_check_pending(c->session) || c->rec_hdr_have) {
		snprintf(why, wl, "kernel TLS not used: data already buffered");
		return;
	}
	if (setsockopt(c->fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) < 0) {
		static atomic_bool told;

		if (errno == ENOENT && !atomic_exchange(&told, true))
			rp_info("no kernel TLS (TCP_ULP tls: %s): TLS stays in user space. If the kernel has the tls module, load it (modprobe tls, or tls in /etc/modules-load.d/): only a process with CAP_NET_ADMIN loads it by itself",
				strerror(errno));
		snprintf(why, wl, "no kernel TLS here (TCP_ULP tls: %s)",
			 strerror(errno));
		return;
	}
	ret = ktls_set(c, true, &w);
	if (!ret) {
		c->ktls_rx = true;
		ret = ktls_set(c, false, &w);
		if (!ret)
			c->ktls_tx = true;
	}
	if (ret)
		snprintf(why, wl, "kernel TLS %s: %s (%s)",
			 c->ktls_rx ? "for receiving only" : "not used", w,
			 strerror(-ret));
}

static const char *desc_cipher(gnutls_session_t s)
{
	return gnutls_cipher_get_name(gnutls_cipher_get(s));
}

static const char *desc_group(gnutls_session_t s)
{
	const char *g = gnutls_group_get_name(gnutls_group_get(s));

	return g ? g : "?";
}

static void conn_describe(struct rp_conn *c, const struct rpage_tls *t,
			  const char *kt)
{
	snprintf(c->desc, sizeof(c->desc), "TLS1.3 %s%s%s%s %s %s, %s",
		 t->kind == TLS_PSK ? "PSK" : "X.509",
		 c->identity[0] ? " '" : "", c->identity,
		 c->identity[0] ? "'" : "", desc_cipher(c->session),
		 desc_group(c->session),
		 c->ktls_tx && c->ktls_rx ? "kernel TLS"
		 : kt[0]                 ? kt
					 : "user-space TLS");
}

/* What a failed handshake means, for the log and the caller. */
static int hs_error(struct rp_conn *c, int gret, const char *side,
		    char *buf, size_t len)
{
	const char *hint = "";
	int e = -EACCES;

	switch (gret) {
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		snprintf(buf, len, "the peer refused us (TLS alert: %s)",
			 gnutls_alert_get_name(gnutls_alert_get(c->session)));
		hint = " (wrong key or certificate?)";
		break;
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_CERTIFICATE_ERROR: {
		gnutls_datum_t out = { 0 };
		unsigned st = gnutls_session_get_verify_cert_status(c->session);

		if (gnutls_certificate_verification_status_print(
			    st, GNUTLS_CRT_X509, &out, 0) == 0 && out.data) {
			snprintf(buf, len, "the peer's certificate is not accepted: %s",
				 (char *)out.data);
			gnutls_free(out.data);
		} else {
			snprintf(buf, len, "the peer's certificate is not accepted");
		}
		break;
	}
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		e = c->last_errno ? -c->last_errno : -EIO;
		snprintf(buf, len, "%s", strerror(-e));
		break;
	case GNUTLS_E_PREMATURE_TERMINATION:
		e = -ECONNRESET;
		snprintf(buf, len, "the peer closed the connection%s",
			 *side == 'c' ? " (it does not know our key or identity?)"
				      : "");
		break;
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
	case GNUTLS_E_UNEXPECTED_PACKET:
	case GNUTLS_E_UNEXPECTED_HANDSHAKE_PACKET:
		e = -EPROTO;
		snprintf(buf, len, "%s", gnutls_strerror(gret));
		hint = " (does the peer use TLS?)";
		break;
	default:
		snprintf(buf, len, "%s", gnutls_strerror(gret));
		break;
	}
	if (strlen(buf) + strlen(hint) < len)
		strcat(buf, hint);
	return e;
}

static int run_handshake(struct rp_conn *c, const char *side, char *err,
			 size_t el)
{
	for (;;) {
		int r = gnutls_handshake(c->session), w;

		if (r == 0)
			return 0;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			w = hs_wait(c);
			if (w) {
				snprintf(err, el, "%s",
					 w == -ETIMEDOUT ? "no complete handshake before the deadline"
							 : strerror(-w));
				return w;
			}
			continue;
		}
		if (!gnutls_error_is_fatal(r))
			continue;
		return hs_error(c, r, side, err, el);
	}
}

/* Back to reading whole buffers once the handshake is over. */
static void handshake_done(struct rp_conn *c)
{
	c->rec_guard = false;
}

/* User-space records from now on: the read-ahead and send queues. */
static void user_space_buffers(struct rp_conn *c)
{
	if (c->ktls_rx && c->ktls_tx)
		return;
	if (!c->ktls_rx)
		c->rbuf = malloc(RBUF_SIZE);
	if (!c->ktls_tx)
		c->wbuf = malloc(WBUF_SIZE);
	/* without them GnuTLS reads and writes directly: slower, correct */
}

int rp_tls_client(struct rp_conn *c, const struct rpage_tls *t,
		  const char *peer_name)
{
	char err[320], kt[160] = "";
	const char *name = t->peer_name[0] ? t->peer_name : peer_name;
	int ret;

	ret = new_session(c, t, GNUTLS_CLIENT);
	if (ret)
		return ret;
	if (t->kind == TLS_X509) {
		struct in6_addr a6;
		struct in_addr a4;

		if (!name || !*name) {
			rp_err("TLS with %s: no name to check the server's certificate against",
			       c->peer);
			return -EINVAL;
		}
		/* SNI only for names; the certificate check takes both */
		if (inet_pton(AF_INET, name, &a4) != 1 &&
		    inet_pton(AF_INET6, name, &a6) != 1)
			gnutls_server_name_set(c->session, GNUTLS_NAME_DNS,
					       name, strlen(name));
		gnutls_session_set_verify_cert(c->session, name, 0);
	}
	ret = run_handshake(c, "client", err, sizeof(err));
	if (ret) {
		rp_err("TLS handshake with %s failed: %s", c->peer, err);
		return ret;
	}
	handshake_done(c);
	if (t->kind == TLS_PSK) {
		snprintf(c->identity, sizeof(c->identity), "%s",
			 t->psk[0].identity);
	} else {
		unsigned n = 0;
		const gnutls_datum_t *pc = gnutls_certificate_get_peers(
			c->session, &n);

		if (pc && n)
			cert_cn(&pc[0], c->identity, sizeof(c->identity));
		rp_sanitize(c->identity, sizeof(c->identity));
	}
	ktls_try(c, t, kt, sizeof(kt));
	user_space_buffers(c);
	c->mode = RP_CONN_TLS;
	conn_describe(c, t, kt);
	return 0;
}

/* A first record that is not TLS: a plain rpage HELLO gets an answer. */
static int not_tls(struct rp_conn *c)
{
	uint8_t b[2];
	ssize_t n;

	n = recv(c->fd, b, sizeof(b), MSG_PEEK);
	if (n < 1 || b[0] == 22)
		return 0; /* a TLS handshake record (or nothing yet) */
	if (n == 2 && b[0] == RP_MSG_HELLO && b[1] == 0) {
		static const char msg[] =
			"this server requires TLS: give the client a key (--psk-file) or certificates (--tls-cert, --tls-key, --tls-ca)";
		uint8_t buf[8 + sizeof(msg)];
		size_t len = rp_error_encode(buf, EACCES, msg);

		rp_conn_send_frame(c, RP_MSG_ERROR, 0, buf, (uint32_t)len);
		return -EACCES;
	}
	return -EPROTO;
}

int rp_tls_server(struct rp_conn *c, const struct rpage_tls *t)
{
	char err[320], kt[160] = "";
	struct pollfd pf = { c->fd, POLLIN, 0 };
	int ret;

	/* wait for the first bytes, to tell a plain client what is wrong */
	for (;;) {
		uint64_t now = rp_now_ns();

		if (c->deadline_ns && now >= c->deadline_ns) {
			rp_warn("client %s: no TLS handshake before the deadline: closing the connection",
				c->peer);
			return -ETIMEDOUT;
		}
		ret = poll(&pf, 1, c->deadline_ns ?
				   (int)((c->deadline_ns - now) / 1000000 + 1) : -1);
		if (ret > 0)
			break;
		if (ret < 0 && errno != EINTR)
			return -errno;
	}
	ret = not_tls(c);
	if (ret) {
		rp_warn("client %s: %s: closing the connection", c->peer,
			ret == -EACCES ? "plain rpage HELLO, but this server requires TLS"
				       : "not a TLS handshake");
		return ret;
	}
	ret = new_session(c, t, GNUTLS_SERVER);
	if (ret)
		return ret;
	if (t->kind == TLS_X509) {
		gnutls_certificate_server_set_request(c->session,
						      GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert(c->session, NULL, 0);
	}
	ret = run_handshake(c, "server", err, sizeof(err));
	if (ret) {
		/* best effort: the peer learns why it failed */
		gnutls_alert_send(c->session, GNUTLS_AL_FATAL,
				  c->psk_seen < 0  ? GNUTLS_A_UNKNOWN_PSK_IDENTITY
				  : c->psk_seen > 0 ? GNUTLS_A_DECRYPT_ERROR
						    : GNUTLS_A_HANDSHAKE_FAILURE);
		if (c->psk_seen < 0)
			rp_warn("client %s: TLS handshake failed: unknown PSK identity '%s': closing the connection",
				c->peer, c->identity);
		else if (c->psk_seen > 0 && ret == -EACCES)
			rp_warn("client %s: TLS handshake failed: identity '%s' did not prove it has the key (wrong key?): %s: closing the connection",
				c->peer, c->identity, err);
		else
			rp_warn("client %s: TLS handshake failed: %s: closing the connection",
				c->peer, err);
		c->identity[0] = 0;
		return ret;
	}
	handshake_done(c);
	if (t->kind == TLS_PSK) {
		const char *u = gnutls_psk_server_get_username(c->session);

		snprintf(c->identity, sizeof(c->identity), "%s", u ? u : "");
	} else {
		unsigned n = 0;
		const gnutls_datum_t *pc = gnutls_certificate_get_peers(
			c->session, &n);

		if (!pc || !n || cert_cn(&pc[0], c->identity,
					 sizeof(c->identity)) ||
		    !rp_identity_valid(c->identity, strlen(c->identity))) {
			rp_warn("client %s: its certificate has no usable Common Name: closing the connection",
				c->peer);
			return -EACCES;
		}
	}
	rp_sanitize(c->identity, sizeof(c->identity));
	ktls_try(c, t, kt, sizeof(kt));
	user_space_buffers(c);
	c->mode = RP_CONN_TLS;
	conn_describe(c, t, kt);
	return 0;
}

void rp_conn_move(struct rp_conn *dst, struct rp_conn *src)
{
	*dst = *src;
	if (dst->session) {
		gnutls_transport_set_ptr(dst->session, dst);
		gnutls_session_set_ptr(dst->session, dst);
	}
	memset(src, 0, sizeof(*src));
	src->fd = -1;
}

void rp_tls_session_free(struct rp_conn *c)
{
	if (c->session)
		gnutls_deinit(c->session);
	c->session = NULL;
	free(c->rbuf);
	free(c->wbuf);
	c->rbuf = c->wbuf = NULL;
	c->rpos = c->rlen = c->wlen = 0;
	c->wcork = false;
}

const char *rp_tls_strerror(int gret)
{
	return gnutls_strerror(gret);
}

bool rp_tls_getopt(int opt, const char *arg, struct rpage_tls_opts *o,
		   int *insecure)
{
	switch (opt) {
	case RP_OPT_PSK:
		o->psk_file = arg;
		return true;
	case RP_OPT_CERT:
		o->cert_file = arg;
		return true;
	case RP_OPT_KEY:
		o->key_file = arg;
		return true;
	case RP_OPT_CA:
		o->ca_file = arg;
		return true;
	case RP_OPT_NAME:
		o->peer_name = arg;
		return true;
	case RP_OPT_INSECURE:
		*insecure = 1;
		return true;
	case RP_OPT_NO_KTLS:
		o->no_ktls = 1;
		return true;
	}
	return false;
}

int rp_tls_load(const char *prog, const struct rpage_tls_opts *o,
		struct rpage_tls **out)
{
	int ret;

	*out = NULL;
	if (!o->psk_file && !o->cert_file && !o->key_file && !o->ca_file)
		return 0;
	ret = rpage_tls_new(o, out);
	if (ret)
		fprintf(stderr, "%s: cannot use these credentials: %s\n", prog,
			strerror(-ret));
	return ret;
}
