// SPDX-License-Identifier: GPL-2.0
/*
 * The device switch: command validation against a fake driver.
 */
#include "cunit_main.h"
#include "devswitch.h"

static void test_placeholder_names(void)
{
	CU_ASSERT_STRING_EQUAL(DS_DRIVER_NAME, "pairvisor-blkdrv");
}

static CU_TestInfo tests[] = {
	{ "driver name", test_placeholder_names },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "devswitch", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
