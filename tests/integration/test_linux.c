// SPDX-License-Identifier: GPL-2.0
/*
 * Debian's stock kernel through our bzImage path: with
 * "earlyprintk=serial,ttyS0 nokaslr" its decompressor prints "KASLR
 * disabled" on the 8250 — proof that the setup header, boot_params, the
 * command line and the UART work for a real kernel. (Its kernel mode is
 * emulated here, so it gets no further in useful time; testbed.md.) The
 * VMM is then stopped with SIGTERM and must exit 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "vmmrun.h"

#define LINUX_TIMEOUT_MS	90000
#define LINUX_LINE		"KASLR disabled: 'nokaslr' on cmdline."

static char *debian_kernel(void)
{
	static char path[512];
	FILE *p = popen("sh " PV_FETCH_KERNEL " 2>/dev/null", "r");

	if (!p)
		return NULL;
	if (!fgets(path, sizeof(path), p))
		path[0] = '\0';
	pclose(p);
	path[strcspn(path, "\n")] = '\0';
	return path[0] ? path : NULL;
}

static void test_debian_kernel(void)
{
	char *kernel = debian_kernel();
	const char *argv[] = { "vmm", "--memory", "512M", "--vcpus", "2",
			       "--kernel", kernel, "--cmdline",
			       "earlyprintk=serial,ttyS0 nokaslr console=ttyS0",
			       NULL };
	struct vmm_result r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(kernel);
	/* the whole line: the kernel prints it a character at a time */
	CU_ASSERT_EQUAL_FATAL(vmm_run(&r, LINUX_TIMEOUT_MS, LINUX_LINE "\r\n",
				      argv), 0);
	CU_ASSERT_TRUE(r.matched);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, LINUX_LINE));
	CU_ASSERT_FALSE(r.timed_out);
	CU_ASSERT_EQUAL(r.status, 0);		/* SIGTERM: orderly stop */
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "stopping the guest"));
	vmm_result_free(&r);
}

static void test_debian_kernel_too_little_memory(void)
{
	char *kernel = debian_kernel();
	const char *argv[] = { "vmm", "--memory", "16M", "--kernel", kernel,
			       NULL };
	struct vmm_result r;

	/* pref_address is 16 MiB: the kernel cannot fit in 16 MiB of RAM */
	CU_ASSERT_PTR_NOT_NULL_FATAL(kernel);
	CU_ASSERT_EQUAL_FATAL(vmm_run(&r, LINUX_TIMEOUT_MS, NULL, argv), 0);
	CU_ASSERT_EQUAL(r.status, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "--memory too small"));
	vmm_result_free(&r);
}

static CU_TestInfo linux_tests[] = {
	{ "Debian stock kernel prints its first line", test_debian_kernel },
	{ "Debian kernel in too little memory", test_debian_kernel_too_little_memory },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "linux", NULL, NULL, NULL, NULL, linux_tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
