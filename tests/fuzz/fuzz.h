/* SPDX-License-Identifier: MIT */
/*
 * Shared by the libFuzzer targets in this directory (see README.md).
 * A target feeds untrusted bytes to one decoder and checks what the
 * decoder promises: no memory error (ASan/UBSan catch those), and for
 * every input it accepts, an invariant (usually: encoding what it decoded
 * gives back the same bytes). A broken invariant aborts, which libFuzzer
 * reports as a crash with the input that caused it.
 */
#ifndef RP_FUZZ_H
#define RP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                  \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "%s:%d: invariant broken: %s\n",  \
				__FILE__, __LINE__, #cond);               \
			abort();                                          \
		}                                                         \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
