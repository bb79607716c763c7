/* SPDX-License-Identifier: MIT */
/*
 * mkseeds DIR: writes the seed corpus of every fuzz target into
 * DIR/TARGET/ (`make fuzz-seeds` runs it into tests/fuzz/corpus). Seeds
 * are valid messages made by the real encoders (and a real TLS handshake
 * recorded on a socketpair), so the fuzzers start from inputs that pass
 * the first checks.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/proto.h"
#include "../../common/proto_live.h"
#include "../../common/proto_rdma.h"
#include "../../common/rp.h"
#include "../../common/tls.h"

static const char *dir;

static void put(const char *target, const char *name, uint8_t sel,
		const void *p, size_t n, bool with_sel)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
	f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	if (with_sel)
		fputc(sel, f);
	fwrite(p, 1, n, f);
	fclose(f);
}

static void proto_seeds(void)
{
	uint8_t b[4096];
	struct rp_hdr h = { .type = RP_MSG_PAGE_REQ, .len = 16, .tag = 9 };
	struct rp_hello he = { .ver_min = RP_VERSION, .ver_max = RP_VERSION, .role = 1,
			       .features = 3, .session = 0x1234567 };
	struct rp_hello_ack ha = { .version = RP_VERSION, .features = 1, .session = 5,
				   .max_data = 1 << 20, .nregions = 2 };
	struct rp_region_desc d[2] = {
		{ .id = 0, .page_size = 4096, .length = 1 << 20, .name_len = 3, .name = "mem" },
		{ .id = 1, .page_size = 2 << 20, .length = 4 << 20, .name_len = 9, .name = "huge.pg-1" },
	};
	struct rp_page_req pr = { .region = 1, .len = 8192, .offset = 4096 };
	size_t n;

	rp_hdr_encode(b, &h);
	put("fuzz_proto", "hdr", 0, b, RP_HDR_LEN, true);
	n = rp_hello_encode(b, &he);
	put("fuzz_proto", "hello", 1, b, n, true);
	n = rp_hello_ack_encode(b, &ha);
	put("fuzz_proto", "hello_ack", 2, b, n, true);
	n = rp_regions_encode(b, d, 2);
	put("fuzz_proto", "regions", 3, b, n, true);
	n = rp_page_req_encode(b, &pr);
	put("fuzz_proto", "page_req", 4, b, n, true);
	memset(b, 0, 8);
	b[0] = 0x10; /* frame length 4112: 4096 bytes of data */
	b[1] = 0x10;
	n = rp_page_data_hdr_encode(b + 8, &(struct rp_page_req){ .len = 4096 });
	put("fuzz_proto", "page_data", 5, b, 8 + n, true);
	n = rp_error_encode(b, 13, "refused: a reason");
	put("fuzz_proto", "error", 6, b, n, true);
}

static void rdma_seeds(void)
{
	uint8_t b[4096];
	struct rp_rdma_info in = { .port = 7471 };
	struct rp_rdma_conn c = { .version = RP_RDMA_CONN_VERSION,
				  .role = RP_ROLE_BULK, .session = 77,
				  .ticket = { 9, 8, 7, 6, 5, 4, 3, 2, 1 } };
	struct rp_rdma_chunk ch[2] = { { .addr = 0, .length = 8192, .rkey = 0x1234 },
				       { .addr = 8192, .length = 8192, .rkey = 0x5678 } };
	/* table for the harness: 2 regions; first 4 pages of 4 KiB, the
	 * second 1 page of 2 MiB */
	struct rp_rdma_chunk ch2 = { .addr = 0, .length = 2 << 20, .rkey = 3 };
	struct rp_rdma_region_keys k[2] = {
		{ .id = 0, .page_size = 4096, .length = 16384, .nchunks = 2, .chunks = ch },
		{ .id = 1, .page_size = 2 << 20, .length = 2 << 20, .nchunks = 1, .chunks = &ch2 },
	};
	size_t n;

	n = rp_rdma_info_encode(b, &in);
	put("fuzz_rdma", "info", 0, b, n, true);
	n = rp_rdma_conn_encode(b, &c);
	put("fuzz_rdma", "conn", 1, b, n, true);
	b[0] = 1;       /* 2 regions */
	b[1] = 3;       /* 4 pages of 4 KiB */
	b[2] = 0x80;    /* 1 page of 2 MiB */
	n = rp_rdma_keys_encode(b + 3, k, 2, RP_RDMA_KEYS_MW);
	put("fuzz_rdma", "keys", 2, b, 3 + n, true);
}

static void live_seeds(void)
{
	uint8_t b[4096];
	uint64_t bits[2] = { 0x5, 0 };
	struct rp_live_hello h = { .version = RP_LIVE_VERSION, .role = 1,
				   .stream = 1, .nstreams = 4,
				   .page_size = 4096, .length = 1 << 20,
				   .session = 99 };
	struct rp_live_hello_ack a = { .status = 0, .session = 99 };
	struct rp_live_pages pg = { .round = 1, .npages = 2, .first = 3 };
	struct rp_live_round r = { .round = 2, .pages = 10 };
	struct rp_live_switch sw = { .flags = RP_LIVE_SW_POSTCOPY, .port = 7000,
				     .round = 3, .npages = 100, .ndrop = 2,
				     .bits = bits };
	struct rp_live_status st = { .status = 0, .resident = 7 };
	size_t n;

	n = rp_live_hello_encode(b, &h);
	put("fuzz_live", "hello", 0, b, n, true);
	n = rp_live_hello_ack_encode(b, &a);
	put("fuzz_live", "hello_ack", 1, b, n, true);
	b[0] = 99;      /* 100 pages */
	b[1] = 0;
	b[2] = 0;       /* of 4 KiB */
	b[3] = 2;       /* a frame of 2 pages */
	n = rp_live_pages_hdr_encode(b + 4, &pg);
	put("fuzz_live", "pages", 2, b, 4 + n, true);
	n = rp_live_round_encode(b, &r);
	put("fuzz_live", "round", 3, b, n, true);
	b[0] = 99;
	b[1] = 0;
	n = rp_live_switch_encode(b + 2, &sw);
	put("fuzz_live", "switch", 4, b, 2 + n, true);
	n = rp_live_status_encode(b, &st);
	put("fuzz_live", "status", 5, b, n, true);
}

static void text_seeds(void)
{
	static const char fc1[] =
		"[{\"base_host_virt_addr\":140000000000000,\"size\":1073741824,"
		"\"offset\":0,\"page_size\":4096,\"page_size_kib\":4}]";
	static const char fc2[] =
		"[ { \"x\" : {\"a\":[1,2,{\"b\":null}],\"c\":\"s\\\"\\u0041\"},"
		"\"base_host_virt_addr\": 2097152, \"y\": true, \"size\": 4194304,"
		"\"offset\": 0, \"z\": -1.5e3, \"page_size_kib\": 2048 } ]\n";
	static const char psk1[] =
		"qemu:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
	static const char psk2[] =
		"# keys\r\nnode-1:0011223344556677889900aabbccddee\r\n\nnode.2:AABBCCDDEEFF00112233445566778899AABBCCDDEEFF0011\n";
	/* what Prometheus 2.42 and curl send to a metrics endpoint */
	static const char prom[] =
		"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n"
		"User-Agent: Prometheus/2.42.0\r\n"
		"Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
		"Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
	static const char curl[] =
		"HEAD /metrics?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\n"
		"Accept: */*\r\nContent-Length: 0\r\n\r\n";
	static const char lf[] =
		"GET /metrics HTTP/1.0\nAccept: text/plain;q=0.4, application/openmetrics-text;q=0.5\n\n";

	put("fuzz_fc", "firecracker", 0, fc1, sizeof(fc1) - 1, false);
	put("fuzz_fc", "unknown-members", 0, fc2, sizeof(fc2) - 1, false);
	put("fuzz_psk", "one", 0, psk1, sizeof(psk1) - 1, false);
	put("fuzz_psk", "several", 0, psk2, sizeof(psk2) - 1, false);
	put("fuzz_http", "prometheus", 0, prom, sizeof(prom) - 1, false);
	put("fuzz_http", "curl-head", 0, curl, sizeof(curl) - 1, false);
	put("fuzz_http", "bare-lf", 0, lf, sizeof(lf) - 1, false);
}

/* ---- a real handshake, recorded ---- */
static struct rpage_tls *tls;
static uint8_t rec[2][65536];
static size_t nrec[2];

struct relay {
	int a, b; /* client side, server side */
};

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	struct pollfd pf[2] = { { r->a, POLLIN, 0 }, { r->b, POLLIN, 0 } };
	uint8_t buf[16384];

	for (;;) {
		if (poll(pf, 2, 3000) <= 0)
			return NULL;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!pf[i].revents)
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n <= 0)
				return NULL;
			if (nrec[i] + (size_t)n <= sizeof(rec[i])) {
				memcpy(rec[i] + nrec[i], buf, (size_t)n);
				nrec[i] += (size_t)n;
			}
			if (write(pf[!i].fd, buf, (size_t)n) != n)
				return NULL;
		}
	}
}

static void *client_main(void *arg)
{
	struct rp_conn *c = arg;

	rp_conn_set_deadline(c, rp_now_ns() + 5000000000ull);
	if (rp_tls_client(c, tls, "seed"))
		fprintf(stderr, "mkseeds: the recorded handshake failed (client)\n");
	return NULL;
}

static void tls_seeds(void)
{
	char path[] = "/tmp/rpage-seed-psk.XXXXXX";
	static const char key[] =
		"fuzz:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
	struct rpage_tls_opts o = { .psk_file = path, .no_ktls = 1 };
	int fd = mkstemp(path), cs[2], ss[2];
	struct rp_conn cc, sc;
	struct relay r;
	pthread_t rt, ct;
	static const uint8_t hello[RP_HDR_LEN + RP_HELLO_LEN] = { 1, 0, 0, 0, 32 };

	if (fd < 0 || write(fd, key, sizeof(key) - 1) != sizeof(key) - 1)
		exit(1);
	close(fd);
	if (rpage_tls_new(&o, &tls))
		exit(1);
	unlink(path);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, cs) ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, ss))
		exit(1);
	r.a = cs[1];
	r.b = ss[1];
	rp_conn_init(&cc, cs[0]);
	rp_conn_init(&sc, ss[0]);
	pthread_create(&rt, NULL, relay_main, &r);
	pthread_create(&ct, NULL, client_main, &cc);
	rp_conn_set_deadline(&sc, rp_now_ns() + 5000000000ull);
	if (rp_tls_server(&sc, tls))
		fprintf(stderr, "mkseeds: the recorded handshake failed (server)\n");
	pthread_join(ct, NULL);
	rp_conn_close(&cc);
	rp_conn_close(&sc);
	pthread_join(rt, NULL);
	/* selector: odd = the server side reads the client's stream */
	put("fuzz_tls", "client-stream", 1, rec[0], nrec[0], true);
	put("fuzz_tls", "server-stream", 0, rec[1], nrec[1], true);
	put("fuzz_tls", "plain-hello", 1, hello, sizeof(hello), true);
	rpage_tls_free(tls);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkseeds DIR\n");
		return 2;
	}
	dir = argv[1];
	mkdir(dir, 0755);
	rpage_set_log_level(RPAGE_LOG_ERR);
	proto_seeds();
	rdma_seeds();
	live_seeds();
	text_seeds();
	tls_seeds();
	return 0;
}
