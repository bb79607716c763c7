/* SPDX-License-Identifier: MIT */
/*
 * rpage-badpeer HOST PORT REGION_LEN: sends each class of bad input to a
 * running rpage-server on its own connection, checks that the server ends
 * that connection (with an ERROR frame where it can), and that a good
 * client connected all along is still served correctly afterwards.
 * Exit 0 when every case behaved.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/net.h"
#include "../common/proto.h"
#include "../common/rp.h"
#include "../common/uffd.h"

static const char *host, *port;
static uint64_t region_len;
static int failures, passes;

static int conn(void)
{
	int fd = rp_tcp_connect(host, port);

	if (fd < 0) {
		fprintf(stderr, "badpeer: connect: %s\n", strerror(-fd));
		exit(1);
	}
	return fd;
}

static size_t hello(uint8_t *b, uint16_t vmin, uint16_t vmax, uint8_t role,
		    uint64_t session, uint8_t auth)
{
	struct rp_hello h = { .ver_min = vmin, .ver_max = vmax, .role = role,
			      .session = session, .auth_type = auth };
	struct rp_hdr hd = { .type = RP_MSG_HELLO, .tag = 1 };
	size_t n = rp_hello_encode(b + RP_HDR_LEN, &h);

	hd.len = (uint32_t)n;
	rp_hdr_encode(b, &hd);
	return RP_HDR_LEN + n;
}

/* Reads until the server closes; returns 1 if an ERROR frame came first,
 * 0 if it just closed, -1 if it stayed open for 5 s. */
static int expect_close(int fd)
{
	uint8_t b[4096];
	struct pollfd pf = { fd, POLLIN, 0 };
	bool saw_error = false;
	size_t got = 0;

	for (;;) {
		ssize_t n;

		if (poll(&pf, 1, 5000) <= 0)
			return -1;
		n = read(fd, b + got, sizeof(b) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got >= 2 && b[0] == RP_MSG_ERROR && b[1] == 0)
			saw_error = true;
		if (got == sizeof(b))
			got = 0;
	}
	return saw_error ? 1 : 0;
}

static void check(const char *name, int fd, bool want_error)
{
	int r = expect_close(fd);

	close(fd);
	if (r < 0 || (want_error && r == 0)) {
		fprintf(stderr, "FAIL %s: %s\n", name,
			r < 0 ? "the server kept the connection open"
			      : "closed without an ERROR frame");
		failures++;
	} else {
		printf("ok   %s\n", name);
		passes++;
	}
}

/* A connection that completed the hello, ready for requests. */
static int good_conn(uint64_t *session)
{
	uint8_t b[256];
	int fd = conn();
	struct rp_hdr h;
	struct rp_hello_ack a;
	const char *why;

	if (rp_write_full(fd, b, hello(b, RP_VERSION, RP_VERSION, RP_ROLE_CONTROL, 0, 0)) ||
	    rp_recv_frame(fd, &h, b, sizeof(b), &why) ||
	    h.type != RP_MSG_HELLO_ACK ||
	    rp_hello_ack_decode(b, h.len, &a, &why)) {
		fprintf(stderr, "badpeer: the good hello failed\n");
		exit(1);
	}
	if (session)
		*session = a.session;
	return fd;
}

static void send_req(int fd, uint32_t region, uint64_t off, uint32_t len)
{
	uint8_t b[RP_HDR_LEN + RP_PAGE_REQ_LEN];
	struct rp_hdr h = { .type = RP_MSG_PAGE_REQ, .len = RP_PAGE_REQ_LEN, .tag = 5 };
	struct rp_page_req r = { .region = region, .len = len, .offset = off };

	rp_hdr_encode(b, &h);
	rp_page_req_encode(b + RP_HDR_LEN, &r);
	rp_write_full(fd, b, sizeof(b));
}

/* The good client fetches one page and checks the reply's shape. */
static void good_fetch(int fd, const char *when)
{
	uint8_t hb[RP_HDR_LEN + RP_PAGE_DATA_HDR];
	static uint8_t page[4096];
	struct rp_hdr h;
	struct rp_page_req r;
	const char *why = NULL;

	send_req(fd, 0, region_len - 4096, 4096);
	if (rp_read_full(fd, hb, sizeof(hb)) || rp_hdr_decode(hb, &h, &why) ||
	    h.type != RP_MSG_PAGE_DATA ||
	    rp_page_data_hdr_decode(hb + RP_HDR_LEN, h.len, &r, &why) ||
	    r.len != 4096 || rp_read_full(fd, page, sizeof(page))) {
		fprintf(stderr, "FAIL good client %s: not served\n", when);
		failures++;
	} else {
		printf("ok   good client served %s\n", when);
		passes++;
	}
}

static int unix_conn(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("badpeer: connect to the uffd socket");
		exit(1);
	}
	return fd;
}

/* Bad handshakes to rpage-client: each connection must be closed. */
static int uffd_cases(const char *path)
{
	static const char good_shape[] =
		"[{\"base_host_virt_addr\":1073741824,\"size\":4096,\"offset\":0,\"page_size\":4096}]";
	static const struct {
		const char *name, *msg;
		int fd_kind; /* 0 none, 1 uffd, 2 /dev/null */
	} cases[] = {
		{ "malformed JSON", "[{\"base_host_virt_addr\":", 1 },
		{ "JSON that is not an array of regions", "{\"a\":1}", 1 },
		{ "no descriptor attached", good_shape, 0 },
		{ "a descriptor that is not a userfaultfd", good_shape, 2 },
		{ "overlapping ranges",
		  "[{\"base_host_virt_addr\":1073741824,\"size\":8192,\"offset\":0,\"page_size\":4096},"
		  "{\"base_host_virt_addr\":1073745920,\"size\":4096,\"offset\":0,\"page_size\":4096}]", 1 },
		{ "range beyond the end of the region",
		  "[{\"base_host_virt_addr\":1073741824,\"size\":4096,\"offset\":1099511627776,\"page_size\":4096}]", 1 },
		{ "size that overflows",
		  "[{\"base_host_virt_addr\":1073741824,\"size\":18446744073709547520,\"offset\":0,\"page_size\":4096}]", 1 },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int s = unix_conn(path), fd = -1;

		if (cases[i].fd_kind == 1)
			fd = rp_uffd_open(0, NULL);
		else if (cases[i].fd_kind == 2)
			fd = open("/dev/null", O_RDONLY);
		if (rp_send_with_fd(s, cases[i].msg, strlen(cases[i].msg), fd))
			perror("badpeer: sendmsg");
		if (fd >= 0)
			close(fd);
		check(cases[i].name, s, false);
	}
	printf("%d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint8_t b[512];
	uint64_t session;
	int good, fd;

	if (argc == 3 && !strcmp(argv[1], "--uffd"))
		return uffd_cases(argv[2]);
	if (argc != 4) {
		fprintf(stderr, "usage: rpage-badpeer HOST PORT REGION_LEN | --uffd SOCKET\n");
		return 2;
	}
	host = argv[1];
	port = argv[2];
	region_len = strtoull(argv[3], NULL, 0);
	good = good_conn(&session);
	good_fetch(good, "before the bad peers");

	fd = conn();
	memset(b, 0xee, 64);
	rp_write_full(fd, b, 64);
	check("garbage bytes (unknown message type)", fd, true);

	fd = conn();
	rp_write_full(fd, b, hello(b, RP_VERSION, RP_VERSION, 0, 0, 0) - 4); /* truncated */
	shutdown(fd, SHUT_WR);
	check("truncated HELLO then half-close", fd, false);

	fd = conn();
	hello(b, RP_VERSION, RP_VERSION, 0, 0, 0);
	b[RP_HDR_LEN] ^= 0x55;
	rp_write_full(fd, b, RP_HDR_LEN + RP_HELLO_LEN);
	check("HELLO with a bad magic", fd, true);

	fd = conn();
	rp_write_full(fd, b, hello(b, RP_VERSION + 1, 9, 0, 0, 0));
	check("HELLO with no common version", fd, true);

	fd = conn();
	rp_write_full(fd, b, hello(b, RP_VERSION, RP_VERSION, 0, 0, 3));
	check("HELLO with an unknown authentication method", fd, true);

	fd = conn();
	rp_write_full(fd, b, hello(b, RP_VERSION, RP_VERSION, RP_ROLE_URGENT, 0x1234567, 0));
	check("data connection naming no live session", fd, true);

	fd = conn();
	send_req(fd, 0, 0, 4096);
	check("PAGE_REQ before HELLO", fd, true);

	fd = conn();
	{
		struct rp_hdr h = { .type = RP_MSG_HELLO, .len = 0x7fffffff };

		rp_hdr_encode(b, &h);
		rp_write_full(fd, b, RP_HDR_LEN);
	}
	check("frame length beyond the limit", fd, true);

	fd = good_conn(NULL);
	send_req(fd, 0, region_len, 4096);
	check("PAGE_REQ beyond the end of the region", fd, true);

	fd = good_conn(NULL);
	send_req(fd, 0, UINT64_MAX - 4095, 8192);
	check("PAGE_REQ whose offset + length overflows", fd, true);

	fd = good_conn(NULL);
	send_req(fd, 77, 0, 4096);
	check("PAGE_REQ for a region that does not exist", fd, true);

	fd = good_conn(NULL);
	send_req(fd, 0, 100, 4096);
	check("PAGE_REQ not aligned to 4 KiB", fd, true);

	fd = good_conn(NULL);
	send_req(fd, 0, 0, RP_MAX_DATA + 4096);
	check("PAGE_REQ longer than the data limit", fd, true);

	fd = good_conn(NULL);
	{
		struct rp_hdr h = { .type = RP_MSG_PAGE_DATA, .len = 16 };

		rp_hdr_encode(b, &h);
		memset(b + RP_HDR_LEN, 0, 16);
		rp_write_full(fd, b, RP_HDR_LEN + 16);
	}
	check("a server-only message sent by a client", fd, true);

	good_fetch(good, "after the bad peers");
	close(good);
	printf("%d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}
