// SPDX-License-Identifier: GPL-2.0
/*
 * The test guest on the real VMM and real KVM: boot with 1 and 2 vCPUs,
 * the hello/smp/virtio workloads, the initrd checksum, and every bad-input
 * case of the boot path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "vmmrun.h"

#define GUEST_TIMEOUT_MS	60000

static void run_guest(struct vmm_result *r, const char *vcpus,
		      const char *cmdline, const char *initrd)
{
	const char *argv[12] = { "pairvisor-vmm", "--memory", "128M",
				 "--vcpus", vcpus, "--kernel", PV_GUEST_PATH,
				 "--cmdline", cmdline };
	int n = 9;

	if (initrd) {
		argv[n++] = "--initrd";
		argv[n++] = initrd;
	}
	argv[n] = NULL;
	CU_ASSERT_EQUAL_FATAL(vmm_run(r, GUEST_TIMEOUT_MS, NULL, argv), 0);
	CU_ASSERT_FALSE(r->timed_out);
}

static void test_hello(const char *vcpus)
{
	struct vmm_result r;

	run_guest(&r, vcpus, "pvtest=hello", NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVTEST hello PASS"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVGUEST cmdline \"pvtest=hello\""));
	CU_ASSERT_PTR_NULL(strstr(r.out, "FAIL"));
	vmm_result_free(&r);
}

static void test_hello_1(void) { test_hello("1"); }
static void test_hello_2(void) { test_hello("2"); }

/* "cpuN=<work>" must be present and non-zero for every CPU. */
static void check_cpu_work(const char *line, int cpus)
{
	char key[16];

	for (int i = 0; i < cpus; i++) {
		const char *p;

		snprintf(key, sizeof(key), "cpu%d=", i);
		p = strstr(line, key);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		CU_ASSERT(strtoull(p + strlen(key), NULL, 0) > 0);
	}
}

static void test_smp(const char *vcpus, int n)
{
	struct vmm_result r;
	char want[64];
	const char *line;

	run_guest(&r, vcpus, "pvtest=smp", NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	snprintf(want, sizeof(want), "PVTEST smp PASS cpus=%d ", n);
	line = strstr(r.out, want);
	CU_ASSERT_PTR_NOT_NULL(line);
	if (line)
		check_cpu_work(line, n);
	snprintf(want, sizeof(want), "PVGUEST mptable cpus=%d", n);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, want));
	vmm_result_free(&r);
}

static void test_smp_1(void) { test_smp("1", 1); }
static void test_smp_2(void) { test_smp("2", 2); }

static void test_virtio(void)
{
	struct vmm_result r;
	const char *line;

	run_guest(&r, "1", "pvtest=virtio", NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	line = strstr(r.out, "PVTEST virtio PASS irqs=");
	CU_ASSERT_PTR_NOT_NULL(line);
	if (line)
		CU_ASSERT(strtoul(line + strlen("PVTEST virtio PASS irqs="), NULL, 10) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "1af4:1044"));
	vmm_result_free(&r);
}

static void test_initrd_checksum(void)
{
	size_t len = 100 * 1024 + 13;	/* not a multiple of a page */
	uint8_t *buf = malloc(len);
	struct vmm_result r;
	char want[96], *path;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	srand(7);
	for (size_t i = 0; i < len; i++)
		buf[i] = rand();
	path = tmpfile_write("initrd.bin", buf, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);

	run_guest(&r, "1", "pvtest=hello", path);
	CU_ASSERT_EQUAL(r.status, 0);
	snprintf(want, sizeof(want), "PVGUEST initrd len=%zu crc32=0x%08x",
		 len, crc32_ieee(buf, len));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, want));
	vmm_result_free(&r);
	free(path);
	free(buf);
}

static void test_all_workloads_2cpu(void)
{
	struct vmm_result r;

	run_guest(&r, "2", "pvtest=hello,smp,virtio", NULL);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVTEST hello PASS"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVTEST smp PASS cpus=2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVTEST virtio PASS"));
	vmm_result_free(&r);
}

/* A failing workload must make the VMM exit non-zero (the guest's status). */
static void test_unknown_workload(void)
{
	struct vmm_result r;

	run_guest(&r, "1", "pvtest=nosuchthing", NULL);
	CU_ASSERT_NOT_EQUAL(r.status, 0);
	CU_ASSERT(r.status < 128);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "FAIL"));
	vmm_result_free(&r);
}

/* A guest reboot ends the VMM: exit 0, with the reason in the log. */
static void test_guest_reset(void)
{
	struct vmm_result r;

	run_guest(&r, "2", "pvtest=reset", NULL);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVTEST reset RUN"));
	CU_ASSERT_PTR_NULL(strstr(r.out, "PVTEST reset FAIL"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "i8042: guest requested reset"));
	CU_ASSERT_EQUAL(r.status, 0);
	vmm_result_free(&r);
}

/*
 * Console input through a pipe: 4 KiB, far more than the UART's 16-byte
 * FIFO, must reach the guest whole and in order (it reports a CRC-32).
 */
static void test_console_input(void)
{
	const char *argv[] = { "pairvisor-vmm", "--memory", "64M", "--kernel",
			       PV_GUEST_PATH, "--cmdline", "pvtest=echo", NULL };
	char input[4097], want[64];
	struct vmm_result r;

	for (size_t i = 0; i < sizeof(input) - 1; i++)
		input[i] = 'a' + (i * 7) % 26;
	input[sizeof(input) - 1] = 0x04;	/* EOT ends the workload */
	CU_ASSERT_EQUAL_FATAL(vmm_run_input(&r, GUEST_TIMEOUT_MS, NULL, argv,
					    input, sizeof(input)), 0);
	CU_ASSERT_EQUAL(r.status, 0);
	snprintf(want, sizeof(want), "PVTEST echo PASS bytes=%zu crc32=0x%08x",
		 sizeof(input) - 1, crc32_ieee(input, sizeof(input) - 1));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, want));
	vmm_result_free(&r);
}

static CU_TestInfo boot_tests[] = {
	{ "hello, 1 vCPU", test_hello_1 },
	{ "hello, 2 vCPUs", test_hello_2 },
	{ "smp, 1 vCPU", test_smp_1 },
	{ "smp, 2 vCPUs (INIT/SIPI)", test_smp_2 },
	{ "virtio-pci entropy with MSI-X", test_virtio },
	{ "initrd checksum matches the file", test_initrd_checksum },
	{ "all workloads, 2 vCPUs", test_all_workloads_2cpu },
	{ "unknown workload fails", test_unknown_workload },
	{ "console input through a pipe", test_console_input },
	{ "guest resets through the i8042", test_guest_reset },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "testguest", NULL, NULL, NULL, NULL, boot_tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
