/* SPDX-License-Identifier: MIT */
/*
 * The connection set-up as an unauthenticated peer meets it: the server
 * side of the TLS handshake (common/tls.c, with its record-at-a-time
 * reading and its plain-HELLO detection) and the client side, fed the
 * fuzzer's bytes as the peer's stream over a socketpair. The first byte
 * picks the side. Invariants: no memory error, every call returns under
 * its deadline, and no input authenticates (the fuzzer does not have the
 * key): the handshake must fail and no identity may be set.
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/rp.h"
#include "../../common/tls.h"
#include "fuzz.h"

static struct rpage_tls *tls;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/rpage-fuzz-psk.XXXXXX";
	static const char key[] =
		"fuzz:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
	struct rpage_tls_opts o = { .psk_file = path, .no_ktls = 1 };
	int fd = mkstemp(path);

	(void)argc, (void)argv;
	if (fd < 0 || write(fd, key, sizeof(key) - 1) != sizeof(key) - 1)
		abort();
	close(fd);
	if (rpage_tls_new(&o, &tls))
		abort();
	unlink(path);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_conn c;
	int sv[2], ret;
	bool server;
	uint64_t t0;

	if (size < 1 || size > 65536)
		return 0;
	server = data[0] & 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	/* the peer's whole stream is there already, then its end */
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	if (size > 1 && write(sv[1], data + 1, size - 1) < 0)
		abort();
	shutdown(sv[1], SHUT_WR);
	rp_conn_init(&c, sv[0]);
	t0 = rp_now_ns();
	rp_conn_set_deadline(&c, t0 + 2000000000ull);
	ret = server ? rp_tls_server(&c, tls) : rp_tls_client(&c, tls, "peer");
	FUZZ_CHECK(ret < 0);
	FUZZ_CHECK(rp_now_ns() - t0 < 3000000000ull);
	FUZZ_CHECK(c.mode == RP_CONN_PLAIN || ret < 0);
	FUZZ_CHECK(!server || c.identity[0] == 0);
	rp_conn_close(&c);
	close(sv[1]);
	return 0;
}
