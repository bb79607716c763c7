/* SPDX-License-Identifier: MIT */
/* rpage-bench: benchmarks and the workload generator. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "pattern.h"

int64_t bench_parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || v > (1ull << 50))
		return -1;
	return (int64_t)v;
}

/* mkimage FILE SIZE [SEED]: writes the deterministic image. */
int cmd_mkimage(int argc, char **argv)
{
	uint64_t seed = 1, chunk = 1 << 20;
	int64_t size;
	char *buf;
	int fd;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: rpage-bench mkimage FILE SIZE [SEED]\n");
		return 2;
	}
	size = bench_parse_size(argv[2]);
	if (size <= 0 || size % 4096) {
		fprintf(stderr, "rpage-bench: SIZE must be a positive multiple of 4096\n");
		return 2;
	}
	if (argc == 4)
		seed = strtoull(argv[3], NULL, 0);
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "rpage-bench: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	buf = malloc(chunk);
	if (!buf)
		return 1;
	for (uint64_t off = 0; off < (uint64_t)size; off += chunk) {
		uint64_t n = (uint64_t)size - off < chunk ? (uint64_t)size - off : chunk;

		rp_pattern_fill(buf, off, n, seed);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			fprintf(stderr, "rpage-bench: writing %s: %s\n", argv[1],
				strerror(errno ? errno : EIO));
			return 1;
		}
	}
	free(buf);
	if (close(fd)) {
		fprintf(stderr, "rpage-bench: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-bench COMMAND [options]\n"
		"  mkimage FILE SIZE [SEED]   write the deterministic test image\n"
		"  guest [options]            a Firecracker-style process: maps memory, hands\n"
		"                             its userfaultfd to rpage-client, reads and checks\n"
		"Run 'rpage-bench COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "mkimage"))
		return cmd_mkimage(argc - 1, argv + 1);
	if (!strcmp(argv[1], "guest"))
		return cmd_guest(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "rpage-bench: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
