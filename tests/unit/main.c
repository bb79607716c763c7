/* SPDX-License-Identifier: MIT */
/*
 * The unit-test runner: every suite in one binary (single-threaded; the
 * tests start what threads they need). Exit 0 only when all that ran
 * passed, 1 when one failed, 2 for a bad command line.
 *
 *   unit-tests                 every suite
 *   unit-tests -l              the names: SUITE/TEST, one a line
 *   unit-tests -s SUITE[/TEST] one suite, or one test of it
 *   unit-tests -v              debug logging from the library
 */
#include <CUnit/Basic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rpage/rpage.h"
#include "tests.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: unit-tests [-v] [-l | -s SUITE[/TEST]]\n"
		   "  -l               list the tests as SUITE/TEST\n"
		   "  -s SUITE[/TEST]  run one suite, or one test of it\n"
		   "  -v               debug logging\n");
}

static void list(void)
{
	for (CU_pSuite s = CU_get_registry()->pSuite; s; s = s->pNext)
		for (CU_pTest t = s->pTest; t; t = t->pNext)
			printf("%s/%s\n", s->pName, t->pName);
}

/* Runs SUITE or SUITE/TEST; -1 when there is no such suite or test. */
static int run_one(char *name)
{
	char *slash = strchr(name, '/');
	CU_pSuite s;
	CU_pTest t = NULL;

	if (slash)
		*slash = 0;
	s = CU_get_suite(name);
	if (s && slash)
		t = CU_get_test(s, slash + 1);
	if (!s || (slash && !t)) {
		if (slash)
			*slash = '/';
		fprintf(stderr, "unit-tests: no %s named '%s' (unit-tests -l lists them)\n",
			slash ? "test" : "suite", name);
		return -1;
	}
	return t ? CU_basic_run_test(s, t) : CU_basic_run_suite(s);
}

int main(int argc, char **argv)
{
	enum rpage_log_level level = RPAGE_LOG_ERR;
	char *one = NULL;
	bool do_list = false;
	unsigned fails;
	int o;

	while ((o = getopt(argc, argv, "ls:vh")) != -1) {
		switch (o) {
		case 'l':
			do_list = true;
			break;
		case 's':
			one = optarg;
			break;
		case 'v':
			level = RPAGE_LOG_DEBUG;
			break;
		default: /* -h, or a bad option */
			usage(o == 'h' ? stdout : stderr);
			return o == 'h' ? 0 : 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	rpage_set_log_level(level);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	if (register_proto_tests() || register_proto_rdma_tests() || register_fc_tests() ||
	    register_util_tests() || register_uffd_tests() ||
	    register_attach_tests() || register_place_tests() ||
	    register_live_tests() || register_metrics_tests() ||
	    register_tls_tests()) {
		fprintf(stderr, "cannot register tests: %s\n", CU_get_error_msg());
		return 2;
	}
	if (do_list) {
		list();
		CU_cleanup_registry();
		return 0;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (one) {
		if (run_one(one) < 0) {
			CU_cleanup_registry();
			return 2;
		}
	} else {
		CU_basic_run_tests();
	}
	fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	printf("\n%u passed, %u failed\n",
	       CU_get_number_of_tests_run() - CU_get_number_of_tests_failed(),
	       CU_get_number_of_tests_failed());
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
