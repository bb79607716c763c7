/* SPDX-License-Identifier: MIT */
/* The unit-test runner: every suite, one binary. Exit 0 only when all pass. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "rpage/rpage.h"
#include "tests.h"

int main(int argc, char **argv)
{
	unsigned fails;

	rpage_set_log_level(argc > 1 && !strcmp(argv[1], "-v") ? RPAGE_LOG_DEBUG
								: RPAGE_LOG_ERR + 0);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	if (register_proto_tests() || register_proto_rdma_tests() || register_fc_tests() ||
	    register_util_tests() || register_uffd_tests() ||
	    register_attach_tests() || register_live_tests()) {
		fprintf(stderr, "cannot register tests: %s\n", CU_get_error_msg());
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	printf("\n%u passed, %u failed\n",
	       CU_get_number_of_tests_run() - CU_get_number_of_tests_failed(),
	       CU_get_number_of_tests_failed());
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
