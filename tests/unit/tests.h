/* SPDX-License-Identifier: MIT */
#ifndef RP_TESTS_H
#define RP_TESTS_H

#include <CUnit/CUnit.h>
#include <string.h>

/* Each test file registers its suite. */
int register_proto_tests(void);
int register_proto_rdma_tests(void);
int register_fc_tests(void);
int register_util_tests(void);
int register_uffd_tests(void);
int register_attach_tests(void);
int register_place_tests(void);
int register_live_tests(void);
int register_metrics_tests(void);
int register_tls_tests(void);

/* Registers test function t_NAME as SUITE/NAME (unit-tests -l lists them,
 * unit-tests -s SUITE/NAME runs one). */
#define ADD(s, fn)                                                   \
	do {                                                         \
		if (!CU_add_test((s), rp_test_name(#fn), (fn)))      \
			return -1;                                   \
	} while (0)

static inline const char *rp_test_name(const char *fn)
{
	return strncmp(fn, "t_", 2) ? fn : fn + 2;
}

#endif
