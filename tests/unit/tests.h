/* SPDX-License-Identifier: MIT */
#ifndef RP_TESTS_H
#define RP_TESTS_H

#include <CUnit/CUnit.h>

/* Each test file registers its suite. */
int register_proto_tests(void);
int register_proto_rdma_tests(void);
int register_fc_tests(void);
int register_util_tests(void);
int register_uffd_tests(void);
int register_attach_tests(void);
int register_live_tests(void);

#define ADD(s, fn)                                      \
	do {                                            \
		if (!CU_add_test((s), #fn, (fn)))      \
			return -1;                      \
	} while (0)

#endif
