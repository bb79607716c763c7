/* SPDX-License-Identifier: MIT */
/*
 * The metrics endpoint's HTTP/1.1 server (see metrics.h): GET (or HEAD)
 * /metrics, and nothing else.
 *
 * Whoever reaches the port is untrusted. A request head is read into a
 * buffer of RP_HTTP_MAX_HEAD bytes and judged only by rp_http_parse; the
 * whole exchange (TLS handshake, request, answer) has one deadline; every
 * answer closes the connection; a bad request gets its status code and
 * ends only its own connection. Connections are served one at a time:
 * a scrape is a few kilobytes, and a client that stalls holds the
 * endpoint for one deadline at most, never the daemon.
 *
 * Beyond loopback the endpoint speaks HTTPS with the daemon's X.509
 * credentials and takes only clients whose certificate chains to the CA
 * (common/tls.c, as for every rpage connection). A pre-shared key cannot
 * serve: no scraper speaks TLS-PSK.
 *
 * Threads: "rpage/metrics" owns the listening socket and each connection;
 * rp_metrics_start and rp_metrics_stop run on the daemon's main thread.
 * The render callback runs on "rpage/metrics".
 */
#include <poll.h>
#include <pthread.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "metrics.h"
#include "net.h"
#include "rp.h"
#include "tls.h"

#define DEADLINE_MS_DEFAULT 5000
#define LINGER_MS 200         /* reading what a client sent past its head */
#define WARN_EVERY_NS 1000000000ull /* at most one warning a second */

/* Answers, counted by code for rpage_*_metrics_http_requests_total. */
enum http_code {
	C_200, C_400, C_404, C_405, C_431, C_500, C_505, C_FAILED, C_N
};
static const struct {
	const char *code, *reason;
} codes[C_N] = {
	[C_200] = { "200", "OK" },
	[C_400] = { "400", "Bad Request" },
	[C_404] = { "404", "Not Found" },
	[C_405] = { "405", "Method Not Allowed" },
	[C_431] = { "431", "Request Header Fields Too Large" },
	[C_500] = { "500", "Internal Server Error" },
	[C_505] = { "505", "HTTP Version Not Supported" },
	/* no answer: TLS refused, the deadline passed, the peer left */
	[C_FAILED] = { "none", NULL },
};

struct rp_metrics_srv {
	struct rp_metrics_opts o;
	char prefix[64], addr[300];
	int listen_fd, stop_efd;
	pthread_t thr;
	bool tls;                /* HTTPS (beyond loopback) */
	char url[320];
	uint64_t answered[C_N];  /* the thread's own */
	uint64_t last_warn_ns;
	char buf[RP_HTTP_MAX_HEAD];
};

/* ---- request parsing -------------------------------------------------- */

static bool tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool ieq(const char *a, size_t n, const char *b)
{
	return strlen(b) == n && !strncasecmp(a, b, n);
}

/* The end of the line starting at @p (before @end): its CR LF or LF.
 * NULL: no line end yet. *bad: a CR not followed by LF. */
static const char *line_end(const char *p, const char *end, const char **next,
			    bool *bad)
{
	for (const char *q = p; q < end; q++) {
		if (*q == '\n') {
			*next = q + 1;
			return q;
		}
		if (*q == '\r') {
			if (q + 1 == end)
				return NULL;
			if (q[1] != '\n') {
				*bad = true;
				return NULL;
			}
			*next = q + 2;
			return q;
		}
	}
	return NULL;
}

/* "q=0.5" -> 500; -1 when malformed. */
static int qvalue(const char *s, size_t n)
{
	int v;
	size_t i = 2, d = 0;

	if (n < 3 || (s[0] != 'q' && s[0] != 'Q') || s[1] != '=' ||
	    (s[2] != '0' && s[2] != '1'))
		return -1;
	v = (s[2] - '0') * 1000;
	i = 3;
	if (i < n && s[i] == '.') {
		int scale = 100;

		for (i++; i < n && d < 3; i++, d++, scale /= 10) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			v += (s[i] - '0') * scale;
		}
	}
	return i == n && v <= 1000 ? v : -1;
}

static const char *trim(const char *s, const char *e, const char **te)
{
	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*te = e;
	return s;
}

/*
 * One Accept header value: application/openmetrics-text with version
 * 1.0.0 (or none) counts for OpenMetrics; text/plain with version 0.0.4
 * (or none), text/ *, * / * for the text format. The highest weight each
 * gets is kept.
 */
static void accept_value(struct rp_http_req *r, const char *s, const char *e)
{
	while (s < e) {
		const char *c = memchr(s, ',', (size_t)(e - s)), *ie, *te, *t;
		const char *ve = c ? c : e;
		int q = 1000, *slot = NULL;
		bool vers_ok = true, om = false;

		t = trim(s, ve, &te);
		ie = memchr(t, ';', (size_t)(te - t));
		if (!ie)
			ie = te;
		{
			const char *me, *m = trim(t, ie, &me);
			size_t n = (size_t)(me - m);

			if (ieq(m, n, "application/openmetrics-text"))
				om = true, slot = &r->q_om;
			else if (ieq(m, n, "text/plain") || ieq(m, n, "text/*") ||
				 ieq(m, n, "*/*"))
				slot = &r->q_text;
		}
		/* parameters: version=..., q=... */
		for (const char *p = ie; p < te;) {
			const char *pe = memchr(p + 1, ';', (size_t)(te - p - 1));
			const char *ke, *k;
			size_t n;

			if (!pe)
				pe = te;
			k = trim(p + 1, pe, &ke);
			n = (size_t)(ke - k);
			if (n > 8 && !strncasecmp(k, "version=", 8))
				vers_ok = om ? ieq(k + 8, n - 8, "1.0.0")
					     : ieq(k + 8, n - 8, "0.0.4");
			else if (n >= 2 && (k[0] == 'q' || k[0] == 'Q') &&
				 k[1] == '=')
				q = qvalue(k, n);
			p = pe;
		}
		if (slot && vers_ok && q > *slot)
			*slot = q;
		s = c ? c + 1 : e;
	}
}

int rp_http_parse(const char *buf, size_t len, struct rp_http_req *r,
		  const char **why)
{
	const char *p = buf, *end = buf + len, *le, *next = NULL, *sp1, *sp2;
	bool bad = false, host = false;

	memset(r, 0, sizeof(*r));
	r->q_om = r->q_text = -1;
	/* the request line: METHOD SP TARGET SP HTTP/1.x */
	le = line_end(p, end, &next, &bad);
	if (!le) {
		*why = "a carriage return without a line feed in the request line";
		return bad ? -EINVAL : -EAGAIN;
	}
	sp1 = memchr(p, ' ', (size_t)(le - p));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 == p) {
		*why = "the request line is not METHOD TARGET HTTP/1.1";
		return -EINVAL;
	}
	for (const char *q = p; q < sp1; q++)
		if (!tchar(*q)) {
			*why = "a method with characters a method cannot have";
			return -EINVAL;
		}
	r->get = sp1 - p == 3 && !memcmp(p, "GET", 3);
	r->head = sp1 - p == 4 && !memcmp(p, "HEAD", 4);
	if (sp2 == sp1 + 1 || sp1[1] != '/') {
		*why = "the target is not a path (it must start with '/')";
		return -EINVAL;
	}
	for (const char *q = sp1 + 1; q < sp2; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f) {
			*why = "a target with spaces or control characters";
			return -EINVAL;
		}
	{
		const char *qm = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
		const char *pe = qm ? qm : sp2;

		r->metrics = pe - sp1 - 1 == 8 && !memcmp(sp1 + 1, "/metrics", 8);
	}
	if (le - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/", 5) ||
	    sp2[6] < '0' || sp2[6] > '9' || sp2[7] != '.' || sp2[8] < '0' ||
	    sp2[8] > '9') {
		*why = "the request line does not end with an HTTP version";
		return -EINVAL;
	}
	if (sp2[6] != '1') {
		*why = "only HTTP/1.0 and HTTP/1.1 are spoken here";
		return -EPROTONOSUPPORT;
	}
	r->minor = sp2[8] - '0';
	/* header fields, up to the empty line */
	for (p = next;;) {
		const char *colon, *v, *ve;
		size_t n;

		le = line_end(p, end, &next, &bad);
		if (!le) {
			*why = "a carriage return without a line feed in a header";
			return bad ? -EINVAL : -EAGAIN;
		}
		if (le == p)
			break; /* the empty line: the head is complete */
		if (*p == ' ' || *p == '\t') {
			*why = "a folded header line (obsolete, refused)";
			return -EINVAL;
		}
		colon = memchr(p, ':', (size_t)(le - p));
		if (!colon || colon == p) {
			*why = "a header line without a name and a colon";
			return -EINVAL;
		}
		for (const char *q = p; q < colon; q++)
			if (!tchar(*q)) {
				*why = "a header name with characters a name cannot have";
				return -EINVAL;
			}
		for (const char *q = colon + 1; q < le; q++)
			if (((unsigned char)*q < 0x20 && *q != '\t') ||
			    (unsigned char)*q == 0x7f) {
				*why = "a header value with control characters";
				return -EINVAL;
			}
		n = (size_t)(colon - p);
		v = trim(colon + 1, le, &ve);
		if (ieq(p, n, "accept")) {
			accept_value(r, v, ve);
		} else if (ieq(p, n, "host")) {
			host = true;
		} else if (ieq(p, n, "transfer-encoding") ||
			   (ieq(p, n, "content-length") &&
			    !(ve - v == 1 && *v == '0'))) {
			*why = "a request with a body (GET /metrics has none)";
			return -EINVAL;
		}
		p = next;
	}
	if (r->minor >= 1 && !host) {
		*why = "an HTTP/1.1 request without a Host header";
		return -EINVAL;
	}
	r->head_len = (size_t)(next - buf);
	r->openmetrics = r->q_om > 0 && r->q_om >= r->q_text;
	return 0;
}

/* ---- the server ------------------------------------------------------ */

static void warn_limited(struct rp_metrics_srv *m, const char *fmt,
			 const char *peer, const char *why)
{
	uint64_t now = rp_now_ns();

	if (now - m->last_warn_ns < WARN_EVERY_NS && m->last_warn_ns)
		return;
	m->last_warn_ns = now;
	rp_warn(fmt, peer, why);
}

/* The endpoint's own counters, after the daemon's families. */
static void render_self(struct rp_metrics_srv *m, struct rp_mout *o,
			char *name, size_t nl)
{
	struct rp_mfam f = {
		.name = name, .type = RP_M_COUNTER,
		.help = "Requests to this metrics endpoint by the status code answered (none: no answer, e.g. TLS refused or the deadline passed)",
	};

	snprintf(name, nl, "%s_metrics_http_requests", m->prefix);
	rp_m_family(o, &f);
	for (unsigned i = 0; i < C_N; i++) {
		struct rp_label l = { "code", codes[i].code };

		rp_m_u64(o, &l, 1, m->answered[i]);
	}
}

static int answer(struct rp_metrics_srv *m, struct rp_conn *c,
		  enum http_code code, const char *ctype, const char *body,
		  size_t blen, bool head_only)
{
	char h[512];
	int n, ret;

	n = snprintf(h, sizeof(h),
		     "HTTP/1.1 %s %s\r\n"
		     "Content-Type: %s\r\n"
		     "Content-Length: %zu\r\n"
		     "%s"
		     "Cache-Control: no-store\r\n"
		     "Connection: close\r\n\r\n",
		     codes[code].code, codes[code].reason, ctype, blen,
		     code == C_405 ? "Allow: GET, HEAD\r\n" : "");
	m->answered[code]++;
	ret = rp_conn_write_full(c, h, (size_t)n);
	if (!ret && !head_only && blen)
		ret = rp_conn_write_full(c, body, blen);
	return ret;
}

static int answer_text(struct rp_metrics_srv *m, struct rp_conn *c,
		       enum http_code code, const char *msg)
{
	char b[256];
	int n = snprintf(b, sizeof(b), "%s\n", msg);

	return answer(m, c, code, "text/plain; charset=utf-8", b, (size_t)n,
		      false);
}

static int answer_metrics(struct rp_metrics_srv *m, struct rp_conn *c,
			  const struct rp_http_req *r)
{
	struct rp_mout o;
	char name[96];
	int ret;

	rp_mout_init(&o, r->openmetrics ? RP_MFMT_OPENMETRICS : RP_MFMT_TEXT);
	ret = m->o.render(&o, m->o.arg);
	if (!ret) {
		/* counted before it is written: this answer is in it */
		m->answered[C_200]++;
		render_self(m, &o, name, sizeof(name));
		m->answered[C_200]--;
		rp_m_end(&o);
		ret = o.err;
	}
	if (ret) {
		rp_err("metrics: cannot render the metrics: %s", strerror(-ret));
		rp_mout_free(&o);
		return answer_text(m, c, C_500, "the metrics could not be rendered");
	}
	ret = answer(m, c, C_200,
		     r->openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
				    : "text/plain; version=0.0.4; charset=utf-8",
		     o.p, o.len, r->head);
	rp_mout_free(&o);
	return ret;
}

/* Reads the request head; answers it. 0 when answered, else -errno. */
static int exchange(struct rp_metrics_srv *m, struct rp_conn *c)
{
	struct rp_http_req r;
	const char *why = "?";
	size_t have = 0;
	int ret;

	for (;;) {
		struct iovec iov = { m->buf + have, sizeof(m->buf) - have };
		ssize_t n;

		if (!iov.iov_len) {
			warn_limited(m, "metrics: client %s: %s: answered 431 and closed",
				     c->peer, "a request head larger than 8 KiB");
			return answer_text(m, c, C_431, "request head larger than 8192 bytes");
		}
		n = rp_conn_readv(c, &iov, 1);
		if (n < 0)
			return (int)n;
		have += (size_t)n;
		ret = rp_http_parse(m->buf, have, &r, &why);
		if (ret != -EAGAIN)
			break;
	}
	if (ret == -EPROTONOSUPPORT)
		return answer_text(m, c, C_505, why);
	if (ret) {
		warn_limited(m, "metrics: client %s: bad request: %s: answered 400 and closed",
			     c->peer, why);
		return answer_text(m, c, C_400, why);
	}
	if (!r.metrics)
		return answer_text(m, c, C_404, "not found: the metrics are at /metrics");
	if (!r.get && !r.head)
		return answer_text(m, c, C_405, "only GET and HEAD are answered");
	return answer_metrics(m, c, &r);
}

/* After the answer: no more to send; what the client still sends is read
 * and dropped for a moment, so closing does not reset the connection
 * before it has read the answer. */
static void linger_close(struct rp_conn *c)
{
	uint64_t until = rp_now_ns() + LINGER_MS * 1000000ull;
	char b[4096];

	rp_conn_close_write(c);
	for (unsigned k = 0; k < 16; k++) {
		struct pollfd pf = { c->fd, POLLIN, 0 };
		uint64_t now = rp_now_ns();

		if (now >= until ||
		    poll(&pf, 1, (int)((until - now) / 1000000 + 1)) <= 0 ||
		    recv(c->fd, b, sizeof(b), MSG_DONTWAIT) <= 0)
			break;
	}
	rp_conn_close(c);
}

static void serve_one(struct rp_metrics_srv *m, int fd)
{
	unsigned ms = m->o.deadline_ms ? m->o.deadline_ms : DEADLINE_MS_DEFAULT;
	struct rp_conn c;
	int ret;

	rp_conn_init(&c, fd);
	ret = rp_conn_set_deadline(&c, rp_now_ns() + (uint64_t)ms * 1000000ull);
	if (!ret && m->tls)
		ret = rp_tls_server(&c, m->o.tls);
	if (!ret)
		ret = exchange(m, &c);
	if (ret) {
		m->answered[C_FAILED]++;
		if (ret == -ETIMEDOUT)
			warn_limited(m, "metrics: client %s: %s: closing the connection",
				     c.peer, "no whole request and answer within the deadline");
		rp_conn_close(&c);
		return;
	}
	linger_close(&c);
}

static void *metrics_main(void *arg)
{
	struct rp_metrics_srv *m = arg;
	struct pollfd pf[2] = { { m->listen_fd, POLLIN, 0 },
				{ m->stop_efd, POLLIN, 0 } };

	rp_thread_name("rpage/metrics");
	for (;;) {
		int fd;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rp_err("metrics: poll: %s", strerror(errno));
			break;
		}
		if (pf[1].revents)
			break;
		fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(100000);
			continue;
		}
		serve_one(m, fd);
	}
	return NULL;
}

/* Beyond loopback: X.509 credentials, or a message naming the fix. */
static int check_policy(struct rp_metrics_srv *m)
{
	if (rp_fd_local_is_loopback(m->listen_fd))
		return 0;
	if (m->o.tls && rp_tls_is_x509(m->o.tls)) {
		m->tls = true;
		return 0;
	}
	if (m->o.tls)
		rp_err("--metrics %s is beyond loopback, and a pre-shared key cannot protect it: scrapers such as Prometheus do not speak TLS-PSK. Listen on loopback (--metrics 127.0.0.1:PORT, or :PORT), or give X.509 credentials (--tls-cert, --tls-key, --tls-ca): the endpoint then speaks HTTPS and takes only clients whose certificate the CA signed",
		       m->addr);
	else
		rp_err("--metrics %s is beyond loopback, and this daemon has no credentials: refusing to serve metrics to anyone who reaches the port. Listen on loopback (--metrics 127.0.0.1:PORT, or :PORT), or give X.509 credentials (--tls-cert, --tls-key, --tls-ca): the endpoint then speaks HTTPS and takes only clients whose certificate the CA signed",
		       m->addr);
	return -EACCES;
}

/* HOST:PORT or :PORT, the port a number 0..65535 (getaddrinfo would take
 * 99999 and listen elsewhere). */
static int split_addr(const char *addr, char *host, size_t hl, char *port,
		      size_t pl)
{
	char *end;
	unsigned long v;

	if (rp_split_hostport(addr, host, hl, port, pl))
		goto bad;
	errno = 0;
	v = strtoul(port, &end, 10);
	if (errno || *end || port[0] < '0' || port[0] > '9' || v > 65535)
		goto bad;
	return 0;
bad:
	rp_err("--metrics wants HOST:PORT or :PORT (a port 0-65535; 0: any free one), got '%s'",
	       addr);
	return -EINVAL;
}

int rp_metrics_addr_check(const char *addr)
{
	char host[256], port[32];

	return split_addr(addr, host, sizeof(host), port, sizeof(port));
}

int rp_metrics_start(const struct rp_metrics_opts *o,
		     struct rp_metrics_srv **out)
{
	struct rp_metrics_srv *m;
	char host[256], port[32], shown[300];
	int ret;

	ret = split_addr(o->addr, host, sizeof(host), port, sizeof(port));
	if (ret)
		return ret;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->o = *o;
	snprintf(m->prefix, sizeof(m->prefix), "%s", o->prefix);
	snprintf(m->addr, sizeof(m->addr), "%s", o->addr);
	m->o.prefix = m->prefix;
	m->o.addr = m->addr;
	m->stop_efd = -1;
	/* no host: loopback, never every address */
	m->listen_fd = rp_tcp_listen(*host ? host : "127.0.0.1", port, 8);
	if (m->listen_fd < 0) {
		ret = m->listen_fd;
		free(m);
		return ret;
	}
	ret = check_policy(m);
	if (ret)
		goto fail;
	m->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->stop_efd < 0) {
		ret = -errno;
		goto fail;
	}
	rp_sock_host(m->listen_fd, false, shown, sizeof(shown));
	snprintf(m->url, sizeof(m->url), strchr(shown, ':') ? "%s://[%s]:%d/metrics"
							    : "%s://%s:%d/metrics",
		 m->tls ? "https" : "http", shown, rp_local_port(m->listen_fd));
	ret = -pthread_create(&m->thr, NULL, metrics_main, m);
	if (ret)
		goto fail;
	*out = m;
	return 0;
fail:
	if (m->stop_efd >= 0)
		close(m->stop_efd);
	close(m->listen_fd);
	free(m);
	return ret;
}

const char *rp_metrics_url(const struct rp_metrics_srv *m)
{
	return m->url;
}

void rp_metrics_stop(struct rp_metrics_srv *m)
{
	if (!m)
		return;
	rp_efd_signal(m->stop_efd);
	pthread_join(m->thr, NULL);
	close(m->stop_efd);
	close(m->listen_fd);
	free(m);
}
