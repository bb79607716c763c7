/* SPDX-License-Identifier: MIT */
/* Firecracker's UFFD handshake: the JSON parser and the socket exchange. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/uffd.h"
#include "rpage/rpage.h"
#include "tests.h"

static int parse(const char *s, struct rpage_range **r, unsigned *n)
{
	return rpage_fc_parse(s, strlen(s), r, n);
}

static void t_parse_firecracker(void)
{
	/* what Firecracker sends, including the deprecated field */
	const char *js =
		"[{\"base_host_virt_addr\":140000000000000,\"size\":1073741824,"
		"\"offset\":0,\"page_size\":4096,\"page_size_kib\":4},"
		" {\"base_host_virt_addr\":140001073741824,\"size\":2097152,"
		"\"offset\":1073741824,\"page_size\":4096,\"page_size_kib\":4}]";
	struct rpage_range *r = NULL;
	unsigned n = 0;

	CU_ASSERT_EQUAL_FATAL(parse(js, &r, &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(r[0].base, 140000000000000ull);
	CU_ASSERT_EQUAL(r[0].size, 1ull << 30);
	CU_ASSERT_EQUAL(r[1].offset, 1ull << 30);
	CU_ASSERT_EQUAL(r[1].page_size, 4096);
	free(r);
}

static void t_parse_unknown_and_kib(void)
{
	/* unknown members of every JSON type are ignored; page_size_kib alone
	 * is accepted (older Firecracker) */
	const char *js =
		"[ { \"x\" : {\"a\":[1,2,{\"b\":null}],\"c\":\"s\\\"\\u0041\"},"
		"\"base_host_virt_addr\": 2097152, \"y\": true, \"size\": 4194304,"
		"\"offset\": 0, \"z\": -1.5e3, \"page_size_kib\": 2048 } ]\n";
	struct rpage_range *r = NULL;
	unsigned n = 0;

	CU_ASSERT_EQUAL_FATAL(parse(js, &r, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(r[0].page_size, 2u << 20);
	free(r);
}

static void t_parse_malformed(void)
{
	static const char *const bad[] = {
		"",
		"{}",
		"[]",
		"[{}]",
		"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0}]", /* no page size */
		"[{\"base_host_virt_addr\":0,\"size\":4096,\"page_size\":4096}]", /* no offset */
		"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096}",
		"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096}] x",
		"[{\"base_host_virt_addr\":-4096,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
		"[{\"base_host_virt_addr\":4096.5,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
		"[{\"base_host_virt_addr\":99999999999999999999,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
		"[{\"base_host_virt_addr\":0,\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
		"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096,\"q\":\"unterminated}]",
		"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096,\"q\":[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]}]",
		"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096,\"q\":tru}]",
		"[{\"base_host_virt_addr\":0 \"size\":4096,\"offset\":0,\"page_size\":4096}]",
		"[{\"base_host_virt_addr\":00,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
	};
	struct rpage_range *r = NULL;
	unsigned n = 0;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse(bad[i], &r, &n);

		if (ret != -EPROTO)
			fprintf(stderr, "accepted bad handshake %u: %s\n", i, bad[i]);
		CU_ASSERT_EQUAL(ret, -EPROTO);
	}
}

/* Strict JSON in skipped values too: NUL bytes and numbers that are not
 * RFC 8259 numbers are refused wherever they stand. */
static void t_parse_strict(void)
{
	static const char head[] =
		"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096,\"q\":";
	static const struct {
		const char *v;
		size_t len;
	} bad[] = {
		{ "\"a\\\0b\"", 6 },     /* a NUL after a backslash */
		{ "1\0", 2 },             /* a NUL inside a number */
		{ "-", 1 }, { ".", 1 }, { "1.2.3e+-", 8 }, { "1.", 2 },
		{ ".5", 2 }, { "01", 2 }, { "1e", 2 }, { "1e+", 3 },
		{ "--1", 3 }, { "+1", 2 }, { "1-2", 3 }, { "0x10", 4 },
	};
	static const char *const good[] = { "-0", "0", "-1.5e3", "1E+2",
					    "0.25", "123456789012345678901234" };
	char buf[256];
	struct rpage_range *r = NULL;
	unsigned n = 0;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t l = sizeof(head) - 1;
		int ret;

		memcpy(buf, head, l);
		memcpy(buf + l, bad[i].v, bad[i].len);
		l += bad[i].len;
		memcpy(buf + l, "}]", 2);
		l += 2;
		ret = rpage_fc_parse(buf, l, &r, &n);
		if (ret != -EPROTO)
			fprintf(stderr, "accepted bad skipped value %u\n", i);
		CU_ASSERT_EQUAL(ret, -EPROTO);
	}
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s}]", head, good[i]);
		CU_ASSERT_EQUAL(parse(buf, &r, &n), 0);
		free(r);
		r = NULL;
	}
	/* one trailing NUL is tolerated, two are not */
	snprintf(buf, sizeof(buf), "%s1}]", head);
	CU_ASSERT_EQUAL(rpage_fc_parse(buf, strlen(buf) + 1, &r, &n), 0);
	free(r);
	r = NULL;
	memset(buf + strlen(buf), 0, 2);
	CU_ASSERT_EQUAL(rpage_fc_parse(buf, strlen(buf) + 2, &r, &n), -EPROTO);
}

static void t_parse_bad_ranges(void)
{
	static const char *const bad[] = {
		/* overlap */
		"[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":0,\"page_size\":4096},"
		"{\"base_host_virt_addr\":8192,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
		/* wraps the address space */
		"[{\"base_host_virt_addr\":18446744073709547520,\"size\":8192,\"offset\":0,\"page_size\":4096}]",
		/* offset + size overflows */
		"[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":18446744073709547520,\"page_size\":4096}]",
		/* unaligned base, size, offset; bad page size; zero size */
		"[{\"base_host_virt_addr\":4097,\"size\":4096,\"offset\":0,\"page_size\":4096}]",
		"[{\"base_host_virt_addr\":4096,\"size\":4095,\"offset\":0,\"page_size\":4096}]",
		"[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":512,\"page_size\":4096}]",
		"[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":3000}]",
		"[{\"base_host_virt_addr\":4096,\"size\":0,\"offset\":0,\"page_size\":4096}]",
	};
	struct rpage_range *r = NULL;
	unsigned n = 0;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(parse(bad[i], &r, &n), -EINVAL);
}

static void t_socket_exchange(void)
{
	struct rpage_range in[2] = {
		{ .base = 1ull << 30, .size = 1 << 20, .offset = 1 << 20, .page_size = 4096 },
		{ .base = 2ull << 30, .size = 1 << 20, .offset = 0, .page_size = 4096 },
	}, *out = NULL;
	unsigned n = 0;
	int sv[2], uffd, got = -1, fd;

	uffd = rp_uffd_open(0, NULL);
	CU_ASSERT_FATAL(uffd >= 0);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_EQUAL(rpage_fc_send(sv[0], in, 2, uffd), 0);
	CU_ASSERT_EQUAL_FATAL(rpage_fc_recv(sv[1], &out, &n, &got), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(memcmp(in, out, sizeof(in)), 0);
	CU_ASSERT(got >= 0 && got != uffd);
	free(out);
	close(got);

	/* a message without a descriptor */
	CU_ASSERT(write(sv[0], "[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096}]", 71) == 71);
	CU_ASSERT_EQUAL(rpage_fc_recv(sv[1], &out, &n, &got), -EPROTO);

	/* a descriptor that is not a userfaultfd */
	fd = open("/dev/null", O_RDONLY);
	CU_ASSERT_EQUAL(rpage_fc_send(sv[0], in, 1, fd), 0);
	CU_ASSERT_EQUAL(rpage_fc_recv(sv[1], &out, &n, &got), -EBADF);
	close(fd);

	/* the peer closes without sending */
	close(sv[0]);
	CU_ASSERT_EQUAL(rpage_fc_recv(sv[1], &out, &n, &got), -ECONNRESET);
	close(sv[1]);
	close(uffd);
}

int register_fc_tests(void)
{
	CU_pSuite s = CU_add_suite("firecracker-handshake", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, t_parse_firecracker);
	ADD(s, t_parse_unknown_and_kib);
	ADD(s, t_parse_malformed);
	ADD(s, t_parse_bad_ranges);
	ADD(s, t_parse_strict);
	ADD(s, t_socket_exchange);
	return 0;
}
