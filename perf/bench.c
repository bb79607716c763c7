/* SPDX-License-Identifier: MIT */
/* rpage-bench: benchmarks and the workload generator. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "../common/pattern.h"

int bench_cmd_main(const struct bench_cmd *c, int argc, char **argv)
{
	void *b = calloc(1, c->size);
	int ret;

	if (!b) {
		fprintf(stderr, "rpage-bench %s: out of memory\n", c->name);
		return 1;
	}
	ret = c->parse(b, argc, argv);
	if (ret >= 0)
		goto out;
	ret = c->setup(b);
	if (!ret)
		ret = c->run(b);
	if (!ret)
		ret = c->report(b);
	if (c->teardown)
		c->teardown(b);
out:
	free(b);
	return ret;
}

bool bench_failed(const char *why)
{
	return !strncmp(why, "failed", 6);
}

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

/*
 * mkimage FILE SIZE [SEED]: writes the deterministic image through a shared
 * mapping, so the same code fills regular, /dev/shm and hugetlbfs files
 * (hugetlbfs has no write()).
 */
int cmd_mkimage(int argc, char **argv)
{
	uint64_t seed = 1;
	int64_t size;
	char *map;
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
	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "rpage-bench: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (ftruncate(fd, size)) {
		fprintf(stderr, "rpage-bench: cannot size %s to %lld bytes: %s\n",
			argv[1], (long long)size, strerror(errno));
		return 1;
	}
	map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "rpage-bench: cannot map %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	rp_pattern_fill(map, 0, (uint64_t)size, seed);
	if (msync(map, (size_t)size, MS_SYNC) && errno != EINVAL) {
		fprintf(stderr, "rpage-bench: writing %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	munmap(map, (size_t)size);
	close(fd);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpage-bench COMMAND [options]\n"
		"  mkimage FILE SIZE [SEED]   write the deterministic test image\n"
		"  guest [options]            a Firecracker-style process: maps memory, hands\n"
		"                             its userfaultfd to rpage-client, reads and checks\n"
		"  fault [options]            fault latency per transport beside same-run baselines\n"
		"  fill [options]             background fill rate beside the raw stream rate\n"
		"  migrate [options]          live migration of a running workload, verified\n"
		"  timeline [options]         a guest's whole post-copy migration, sampled every\n"
		"                             ms (--timeline FILE)\n"
		"  resume [options]           time to resume after the network is cut, and the\n"
		"                             workload's extra blocked time, beside a fresh connect\n"
		"Run 'rpage-bench COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	static const struct bench_cmd *const cmds[] = {
		&bench_guest_cmd, &bench_fault_cmd, &bench_fill_cmd,
		&bench_timeline_cmd, &bench_resume_cmd,
	};

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "mkimage"))
		return cmd_mkimage(argc - 1, argv + 1);
	if (!strcmp(argv[1], "migrate"))
		return cmd_migrate(argc - 1, argv + 1);
	for (unsigned i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i]->name))
			return bench_cmd_main(cmds[i], argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "rpage-bench: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
