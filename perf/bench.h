/* SPDX-License-Identifier: MIT */
#ifndef RP_BENCH_H
#define RP_BENCH_H

#include <stdint.h>

int cmd_mkimage(int argc, char **argv);
int cmd_guest(int argc, char **argv);

/* "4096", "4k", "2M", "1G" -> bytes; -1 on error */
int64_t bench_parse_size(const char *s);

#endif
