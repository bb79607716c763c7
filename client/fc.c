/* SPDX-License-Identifier: MIT */
/*
 * Firecracker's UFFD handshake: one message on a Unix stream socket, a JSON
 * array of memory region mappings, with the userfaultfd attached by
 * SCM_RIGHTS. The JSON comes from another process and is untrusted: the
 * parser is strict (RFC 8259 values, bounded depth and size) and ignores
 * unknown members of any type.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/net.h"
#include "../common/rp.h"
#include "../common/uffd.h"

#define FC_MAX_MSG 65536
#define FC_MAX_RANGES 256
#define FC_MAX_DEPTH 16

struct jp {
	const char *p, *end;
	const char *err;
};

static void ws(struct jp *j)
{
	while (j->p < j->end &&
	       (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int fail(struct jp *j, const char *msg)
{
	if (!j->err)
		j->err = msg;
	return -EPROTO;
}

static int expect(struct jp *j, char c)
{
	ws(j);
	if (j->p >= j->end || *j->p != c)
		return fail(j, "unexpected character");
	j->p++;
	return 0;
}

/* Parses a string; copies up to cap-1 bytes of it into out (may be NULL). */
static int jstring(struct jp *j, char *out, size_t cap)
{
	size_t n = 0;

	if (expect(j, '"'))
		return -EPROTO;
	while (j->p < j->end) {
		unsigned char c = (unsigned char)*j->p++;

		if (c == '"') {
			if (out)
				out[n < cap ? n : cap - 1] = 0;
			return 0;
		}
		if (c < 0x20)
			return fail(j, "control character in string");
		if (c == '\\') {
			if (j->p >= j->end)
				break;
			c = (unsigned char)*j->p++;
			if (c == 'u') {
				for (int i = 0; i < 4; i++, j->p++)
					if (j->p >= j->end || !isxdigit((unsigned char)*j->p))
						return fail(j, "bad \\u escape");
				c = '?';
			} else if (c == 0 || !strchr("\"\\/bfnrt", c)) {
				/* c == 0: strchr would match the terminator */
				return fail(j, "bad escape");
			}
		}
		if (out && n + 1 < cap)
			out[n] = (char)c;
		n++;
	}
	return fail(j, "unterminated string");
}

/* A non-negative integer that fits in 64 bits, no fraction or exponent. */
static int juint(struct jp *j, uint64_t *v)
{
	uint64_t x = 0;
	const char *s;

	ws(j);
	s = j->p;
	if (j->p < j->end && *j->p == '-')
		return fail(j, "negative number where a size or address belongs");
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
		unsigned d = (unsigned)(*j->p - '0');

		if (x > (UINT64_MAX - d) / 10)
			return fail(j, "number does not fit in 64 bits");
		x = x * 10 + d;
		j->p++;
	}
	if (j->p == s)
		return fail(j, "number expected");
	if (j->p - s > 1 && *s == '0')
		return fail(j, "leading zero in number");
	if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
		return fail(j, "fractional number where an integer belongs");
	*v = x;
	return 0;
}

static int jskip(struct jp *j, int depth);

/* Digits at the cursor: how many were skipped. */
static size_t jdigits(struct jp *j)
{
	const char *s = j->p;

	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return (size_t)(j->p - s);
}

/* An RFC 8259 number, exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jskip_number(struct jp *j)
{
	const char *s;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	s = j->p;
	if (!jdigits(j))
		return fail(j, "value expected");
	if (j->p - s > 1 && *s == '0')
		return fail(j, "leading zero in number");
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!jdigits(j))
			return fail(j, "digits expected after the decimal point");
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!jdigits(j))
			return fail(j, "digits expected in the exponent");
	}
	return 0;
}

static int jskip_container(struct jp *j, int depth, char close)
{
	ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			if (jstring(j, NULL, 0) || expect(j, ':'))
				return -EPROTO;
		}
		if (jskip(j, depth + 1))
			return -EPROTO;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		return expect(j, close);
	}
}

static int jskip(struct jp *j, int depth)
{
	static const char *const lits[] = { "true", "false", "null" };

	if (depth > FC_MAX_DEPTH)
		return fail(j, "nesting too deep");
	ws(j);
	if (j->p >= j->end)
		return fail(j, "value expected");
	switch (*j->p) {
	case '"':
		return jstring(j, NULL, 0);
	case '{':
		j->p++;
		return jskip_container(j, depth, '}');
	case '[':
		j->p++;
		return jskip_container(j, depth, ']');
	default:
		for (unsigned i = 0; i < RP_ARRAY_SIZE(lits); i++) {
			size_t l = strlen(lits[i]);

			if ((size_t)(j->end - j->p) >= l &&
			    !memcmp(j->p, lits[i], l)) {
				j->p += l;
				return 0;
			}
		}
		return jskip_number(j);
	}
}

enum { F_BASE = 1, F_SIZE = 2, F_OFF = 4, F_PSZ = 8, F_PSZK = 16 };

static int jrange(struct jp *j, struct rpage_range *r)
{
	unsigned seen = 0;
	uint64_t kib = 0;

	if (expect(j, '{'))
		return -EPROTO;
	ws(j);
	if (j->p < j->end && *j->p == '}')
		return fail(j, "empty region object");
	for (;;) {
		char key[32];
		unsigned bit = 0;
		uint64_t *dst = NULL;

		if (jstring(j, key, sizeof(key)) || expect(j, ':'))
			return -EPROTO;
		if (!strcmp(key, "base_host_virt_addr"))
			bit = F_BASE, dst = &r->base;
		else if (!strcmp(key, "size"))
			bit = F_SIZE, dst = &r->size;
		else if (!strcmp(key, "offset"))
			bit = F_OFF, dst = &r->offset;
		else if (!strcmp(key, "page_size"))
			bit = F_PSZ, dst = &r->page_size;
		else if (!strcmp(key, "page_size_kib"))
			bit = F_PSZK, dst = &kib;
		if (bit) {
			if (seen & bit)
				return fail(j, "duplicate member");
			seen |= bit;
			if (juint(j, dst))
				return -EPROTO;
		} else if (jskip(j, 2)) {
			return -EPROTO;
		}
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (expect(j, '}'))
			return -EPROTO;
		break;
	}
	if ((seen & (F_BASE | F_SIZE | F_OFF)) != (F_BASE | F_SIZE | F_OFF))
		return fail(j, "region lacks base_host_virt_addr, size or offset");
	if (!(seen & F_PSZ)) {
		if (!(seen & F_PSZK))
			return fail(j, "region lacks page_size");
		if (kib > UINT64_MAX / 1024)
			return fail(j, "page_size_kib too large");
		r->page_size = kib * 1024;
	}
	return 0;
}

/* Shape checks that need no region: alignment, overflow, overlap. */
static int check_ranges(const struct rpage_range *r, unsigned n,
			const char **why)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t ps = r[i].page_size;

		if (!rp_is_pow2(ps) || ps < RP_PAGE_4K || ps > (1ull << 30)) {
			*why = "page_size is not a power of two between 4 KiB and 1 GiB";
			return -EINVAL;
		}
		if (r[i].size == 0 || r[i].size % ps || r[i].base % ps ||
		    r[i].offset % ps) {
			*why = "region size, base or offset is not a multiple of its page size";
			return -EINVAL;
		}
		if (r[i].base + r[i].size < r[i].base ||
		    r[i].offset + r[i].size < r[i].offset ||
		    r[i].base + r[i].size > (1ull << 57)) {
			*why = "region wraps around the address space";
			return -EINVAL;
		}
		for (unsigned k = 0; k < i; k++) {
			if (r[i].base < r[k].base + r[k].size &&
			    r[k].base < r[i].base + r[i].size) {
				*why = "regions overlap";
				return -EINVAL;
			}
		}
	}
	return 0;
}

RP_EXPORT int rpage_fc_parse(const char *json, size_t len,
			     struct rpage_range **ranges, unsigned *n)
{
	struct jp j = { .p = json, .end = json + len };
	struct rpage_range *r;
	const char *why = NULL;
	unsigned cnt = 0;
	int ret;

	if (len > FC_MAX_MSG) {
		rp_warn("uffd handshake: message of %zu bytes is too large", len);
		return -EPROTO;
	}
	r = calloc(FC_MAX_RANGES, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (expect(&j, '['))
		goto bad;
	ws(&j);
	if (j.p < j.end && *j.p == ']') {
		fail(&j, "empty region array");
		goto bad;
	}
	for (;;) {
		if (cnt == FC_MAX_RANGES) {
			fail(&j, "too many regions");
			goto bad;
		}
		if (jrange(&j, &r[cnt++]))
			goto bad;
		ws(&j);
		if (j.p < j.end && *j.p == ',') {
			j.p++;
			continue;
		}
		if (expect(&j, ']'))
			goto bad;
		break;
	}
	ws(&j);
	/* Firecracker's serde output has no trailing NUL, but tolerate one */
	if (j.p < j.end && *j.p == 0)
		j.p++;
	if (j.p != j.end) {
		fail(&j, "trailing bytes after the array");
		goto bad;
	}
	ret = check_ranges(r, cnt, &why);
	if (ret) {
		rp_warn("uffd handshake rejected: %s", why);
		free(r);
		return ret;
	}
	*ranges = r;
	*n = cnt;
	return 0;
bad:
	rp_warn("uffd handshake rejected: malformed JSON at byte %td: %s",
		j.p - json, j.err ? j.err : "syntax error");
	free(r);
	return -EPROTO;
}

RP_EXPORT int rpage_fc_recv(int sock, struct rpage_range **ranges,
			    unsigned *n, int *uffd)
{
	char *buf = malloc(FC_MAX_MSG + 1);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 4)];
	} cm;
	struct iovec iov = { buf, FC_MAX_MSG + 1 };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cm.b,
		.msg_controllen = sizeof(cm.b),
	};
	struct cmsghdr *c;
	int fd = -1, ret;
	ssize_t r;

	if (!buf)
		return -ENOMEM;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		ret = -errno;
		goto out;
	}
	/* collect every passed descriptor so none leaks */
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		     i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (fd < 0)
				fd = f;
			else
				close(f);
		}
	}
	if (r == 0) {
		ret = -ECONNRESET;
		goto out;
	}
	if (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC) || r > FC_MAX_MSG) {
		rp_warn("uffd handshake rejected: message or control data truncated");
		ret = -EPROTO;
		goto out;
	}
	if (fd < 0) {
		rp_warn("uffd handshake rejected: no descriptor attached (SCM_RIGHTS)");
		ret = -EPROTO;
		goto out;
	}
	if (!rp_is_uffd(fd)) {
		rp_warn("uffd handshake rejected: the attached descriptor is not a userfaultfd");
		ret = -EBADF;
		goto out;
	}
	ret = rpage_fc_parse(buf, (size_t)r, ranges, n);
	if (ret == 0) {
		*uffd = fd;
		fd = -1;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

RP_EXPORT int rpage_fc_send(int sock, const struct rpage_range *ranges,
			    unsigned n, int uffd)
{
	size_t cap = 64 + (size_t)n * 192, len = 0;
	char *buf = malloc(cap);
	int ret;

	if (!buf)
		return -ENOMEM;
	len += (size_t)snprintf(buf + len, cap - len, "[");
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(
			buf + len, cap - len,
			"%s{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu,\"page_size\":%llu,\"page_size_kib\":%llu}",
			i ? "," : "", (unsigned long long)ranges[i].base,
			(unsigned long long)ranges[i].size,
			(unsigned long long)ranges[i].offset,
			(unsigned long long)ranges[i].page_size,
			(unsigned long long)ranges[i].page_size / 1024);
	len += (size_t)snprintf(buf + len, cap - len, "]");
	ret = rp_send_with_fd(sock, buf, len, uffd);
	free(buf);
	return ret;
}
