/* SPDX-License-Identifier: MIT */
/* Server internals shared with the RDMA part of the server. */
#ifndef RP_SERVER_INT_H
#define RP_SERVER_INT_H

#include <stdbool.h>
#include <stdint.h>

struct srv_region {
	char name[256];
	int fd;
	uint64_t length;
	uint32_t page_size;
	void *map;          /* read-only MAP_SHARED view of the whole region */
	bool use_sendfile;  /* cleared when the file cannot be spliced */
};

#endif
