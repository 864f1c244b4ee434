// SPDX-License-Identifier: GPL-2.0
/*
 * pairctl vm shutdown of a VMM outside the cluster presses its guest's
 * ACPI power button (PVCTL_POWERDOWN): pvtest=acpi finds the tables,
 * takes the SCI, acknowledges the press and enters S5, and the VMM exits
 * 0 saying the guest powered off, not stopped by a signal; a guest that
 * never enabled the button (pvtest=echo) keeps running after the press.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cunit_main.h"
#include "vmmrun.h"

#define TIMEOUT_MS	30000
#define EOT		"\x04"

static char *shutdown_vm(const char *name, int *status)
{
	char args[96];

	snprintf(args, sizeof(args), "vm shutdown %s", name);
	return pairctl_run(args, status);
}

static void test_powers_off(void)
{
	struct vmm_args a;
	struct vmm_result r;
	char name[32], *out;
	pid_t vmm;
	int st;

	snprintf(name, sizeof(name), "acpi%d", (int)getpid());
	vmm_args_init(&a, "pvtest=acpi");
	vmm_args_add(&a, "--name", name);
	vmm = vmm_start(a.v, NULL);
	CU_ASSERT_FATAL(vmm > 0);
	CU_ASSERT(vmm_console_wait("waiting for the power button", TIMEOUT_MS));
	out = shutdown_vm(name, &st);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "asked to shut down (ACPI power button)"));
	free(out);
	CU_ASSERT_EQUAL_FATAL(vmm_finish(&r, vmm, TIMEOUT_MS), 0);
	CU_ASSERT_FALSE(r.timed_out);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVGUEST acpi rsdp=0xe0000 pm1_evt=0x600 pm1_cnt=0x604 sci=9 s5=5 cpus=2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVTEST acpi PASS"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "sci_irqs=1"));
	CU_ASSERT_PTR_NULL(strstr(r.out, "FAIL"));
	CU_ASSERT_EQUAL(str_count(r.err, "ACPI power button pressed"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "the guest powered off"));
	CU_ASSERT_PTR_NULL(strstr(r.err, "stopping the guest"));
	vmm_result_free(&r);
}

static void test_ignored(void)
{
	struct vmm_args a;
	struct vmm_result r;
	char name[32], *out;
	pid_t vmm;
	int in, st;

	snprintf(name, sizeof(name), "noacpi%d", (int)getpid());
	vmm_args_init(&a, "pvtest=echo");
	vmm_args_add(&a, "--name", name);
	vmm = vmm_start(a.v, &in);
	CU_ASSERT_FATAL(vmm > 0);
	CU_ASSERT(vmm_console_wait("PVGUEST cmdline", TIMEOUT_MS));
	out = shutdown_vm(name, &st);
	CU_ASSERT_EQUAL(st, 0);
	free(out);
	/* the guest decides: this one does not listen, and runs on */
	sleep_ms(1000);
	CU_ASSERT_EQUAL(kill(vmm, 0), 0);
	CU_ASSERT_EQUAL(vmm_log_count("the guest has not enabled it"), 1);
	CU_ASSERT_EQUAL(write(in, EOT, 1), 1);
	close(in);
	CU_ASSERT_EQUAL_FATAL(vmm_finish(&r, vmm, TIMEOUT_MS), 0);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVTEST echo PASS bytes=0"));
	CU_ASSERT_PTR_NULL(strstr(r.err, "powered off"));
	vmm_result_free(&r);

	/* and a name nothing here runs under */
	out = shutdown_vm(name, &st);
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "not running"));
	free(out);
}

static CU_TestInfo acpi_tests[] = {
	{ "vm shutdown: the guest powers off through ACPI S5", test_powers_off },
	{ "vm shutdown: a guest that does not listen runs on", test_ignored },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "acpi", NULL, NULL, NULL, NULL, acpi_tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
