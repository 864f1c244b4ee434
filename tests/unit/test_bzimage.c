// SPDX-License-Identifier: GPL-2.0
/*
 * Setup-header parsing and boot_params building, checked field by field
 * against Documentation/arch/x86/boot.rst on synthetic bzImages.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <asm/e820.h>

#include "bzimage.h"
#include "cunit_main.h"
#include "layout.h"

#define IMG_SETUP_SECTS	1
#define IMG_KERNEL_SIZE	8192
#define IMG_SIZE	((IMG_SETUP_SECTS + 1) * 512 + IMG_KERNEL_SIZE)
#define MEM_SIZE	(64ULL << 20)

static uint8_t img[IMG_SIZE];

static struct setup_header *img_hdr(void)
{
	return (struct setup_header *)(img + BZ_HDR_OFF);
}

/* A minimal, valid protocol-2.15 bzImage, as the test guest is built. */
static void img_make(void)
{
	struct setup_header *h = img_hdr();
	size_t k;

	memset(img, 0, sizeof(img));
	h->setup_sects = IMG_SETUP_SECTS;
	h->syssize = IMG_KERNEL_SIZE / 16;
	h->boot_flag = 0xaa55;
	/* jump at 0x200: eb <len>, header ends at 0x202 + len */
	img[0x200] = 0xeb;
	img[0x201] = BZ_HDR_OFF + sizeof(*h) - 0x202;
	h->header = 0x53726448;
	h->version = 0x020f;
	h->loadflags = LOADED_HIGH;
	h->initrd_addr_max = 0x7fffffff;
	h->kernel_alignment = 0x200000;
	h->xloadflags = XLF_KERNEL_64;
	h->cmdline_size = 255;
	h->pref_address = 0x100000;
	h->init_size = 0x10000;
	for (k = 0; k < IMG_KERNEL_SIZE; k++)
		img[(IMG_SETUP_SECTS + 1) * 512 + k] = (uint8_t)(k * 7 + 1);
}

static int img_parse(size_t len, struct bzimage *bz, const char **why)
{
	*why = NULL;
	return bzimage_parse(img, len, bz, why);
}

static void test_parse_valid(void)
{
	struct bzimage bz;
	const char *why;

	img_make();
	CU_ASSERT_EQUAL_FATAL(img_parse(IMG_SIZE, &bz, &why), 0);
	CU_ASSERT_EQUAL(bz.setup_size, 1024);
	CU_ASSERT_EQUAL(bz.kernel_size, IMG_KERNEL_SIZE);
	CU_ASSERT_PTR_EQUAL(bz.kernel, img + 1024);
	CU_ASSERT_EQUAL(bz.load_addr, 0x100000);
	CU_ASSERT_EQUAL(bz.footprint, 0x10000);
	CU_ASSERT_EQUAL(bz.hdr.version, 0x020f);
	CU_ASSERT_EQUAL(bz.hdr_len, sizeof(struct setup_header));
}

static void expect_reject(size_t len, int err, const char *words)
{
	struct bzimage bz;
	const char *why;

	CU_ASSERT_EQUAL(img_parse(len, &bz, &why), err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(why);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, words));
}

static void test_parse_rejects(void)
{
	img_make();
	expect_reject(600, -ENOEXEC, "too small");

	img_make();
	img_hdr()->boot_flag = 0x1234;
	expect_reject(IMG_SIZE, -ENOEXEC, "0xAA55");

	img_make();
	img_hdr()->header = 0;
	expect_reject(IMG_SIZE, -ENOEXEC, "not a bzImage");

	img_make();
	img_hdr()->version = 0x020b;	/* 2.11: no xloadflags yet */
	expect_reject(IMG_SIZE, -ENOTSUP, "too old");

	img_make();
	img_hdr()->loadflags = 0;
	expect_reject(IMG_SIZE, -ENOTSUP, "zImage");

	img_make();
	img_hdr()->xloadflags = 0;
	expect_reject(IMG_SIZE, -ENOTSUP, "64-bit entry");

	img_make();	/* syssize claims more than the file holds */
	expect_reject(IMG_SIZE - 16, -ENOEXEC, "truncated");

	img_make();
	img_hdr()->setup_sects = 40;
	expect_reject(IMG_SIZE, -ENOEXEC, "truncated");

	img_make();
	img_hdr()->pref_address = 0x1000;
	expect_reject(IMG_SIZE, -ENOEXEC, "load address");

	img_make();
	img[0x201] = 0x10;		/* header ends before cmdline_size */
	expect_reject(IMG_SIZE, -ENOEXEC, "shorter");
}

static void test_parse_setup_sects_zero(void)
{
	static uint8_t big[5 * 512 + 4096];
	struct bzimage bz;
	const char *why;

	img_make();
	memcpy(big, img, 1024);
	((struct setup_header *)(big + BZ_HDR_OFF))->setup_sects = 0;
	((struct setup_header *)(big + BZ_HDR_OFF))->syssize = 4096 / 16;
	CU_ASSERT_EQUAL_FATAL(bzimage_parse(big, sizeof(big), &bz, &why), 0);
	CU_ASSERT_EQUAL(bz.setup_size, 5 * 512);	/* 0 means 4 */
}

static void test_e820(void)
{
	struct boot_e820_entry t[8];
	struct guest_mem mem;
	int n;

	CU_ASSERT_EQUAL_FATAL(guest_mem_create(&mem, MEM_SIZE), 0);
	n = e820_build(&mem, t, 8);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT(t[0].addr == 0 && t[0].size == PV_EBDA_ADDR && t[0].type == E820_RAM);
	CU_ASSERT(t[1].addr == PV_EBDA_ADDR && t[1].type == E820_RESERVED);
	CU_ASSERT_EQUAL(t[1].addr + t[1].size, 0x100000);
	CU_ASSERT(t[2].addr == 0x100000 && t[2].size == MEM_SIZE - 0x100000 &&
		  t[2].type == E820_RAM);
	CU_ASSERT_EQUAL(e820_build(&mem, t, 2), 2);	/* respects max */
	guest_mem_destroy(&mem);

	/* above the PCI hole, RAM continues at 4 GiB */
	mem = (struct guest_mem) { .low_size = PV_LOWMEM_END, .high_size = 1 << 30 };
	n = e820_build(&mem, t, 8);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	CU_ASSERT(t[2].addr + t[2].size == PV_LOWMEM_END);
	CU_ASSERT(t[3].addr == PV_HIGHMEM_ADDR && t[3].size == 1 << 30);
}

static void test_load_boot_params(void)
{
	static const char initrd[] = "initrd-bytes-0123456789";
	const char *cmd = "console=ttyS0 pvtest=hello";
	struct boot_params *bp;
	struct guest_mem mem;
	struct boot_info bi;
	struct bzimage bz;
	const char *why;
	uint64_t iaddr;

	img_make();
	CU_ASSERT_EQUAL_FATAL(img_parse(IMG_SIZE, &bz, &why), 0);
	CU_ASSERT_EQUAL_FATAL(guest_mem_create(&mem, MEM_SIZE), 0);
	CU_ASSERT_EQUAL_FATAL(bzimage_load(&mem, &bz, initrd, sizeof(initrd),
					   cmd, &bi, &why), 0);

	/* 64-bit entry: protected-mode kernel start + 0x200 */
	CU_ASSERT_EQUAL(bi.entry, 0x100200);
	CU_ASSERT_EQUAL(bi.boot_params, PV_BOOT_PARAMS_ADDR);
	CU_ASSERT_EQUAL(memcmp(guest_ptr(&mem, 0x100000, IMG_KERNEL_SIZE),
			       img + 1024, IMG_KERNEL_SIZE), 0);

	bp = guest_ptr(&mem, PV_BOOT_PARAMS_ADDR, sizeof(*bp));
	CU_ASSERT_EQUAL(bp->hdr.header, 0x53726448);	/* header copied */
	CU_ASSERT_EQUAL(bp->hdr.version, 0x020f);
	CU_ASSERT_EQUAL(bp->hdr.type_of_loader, 0xff);	/* "undefined" */
	CU_ASSERT_EQUAL(bp->hdr.vid_mode, 0xffff);
	CU_ASSERT_EQUAL(bp->hdr.code32_start, 0x100000);
	CU_ASSERT_EQUAL(bp->hdr.setup_data, 0);
	CU_ASSERT_EQUAL(bp->hdr.cmd_line_ptr, PV_CMDLINE_ADDR);
	CU_ASSERT_EQUAL(bp->ext_cmd_line_ptr, 0);
	CU_ASSERT_STRING_EQUAL((char *)guest_ptr(&mem, PV_CMDLINE_ADDR, 1), cmd);

	/* initrd: page aligned, below initrd_addr_max and end of RAM, above
	 * the kernel's init_size footprint */
	iaddr = bp->hdr.ramdisk_image | (uint64_t)bp->ext_ramdisk_image << 32;
	CU_ASSERT_EQUAL(iaddr, bi.initrd_addr);
	CU_ASSERT_EQUAL(iaddr % 4096, 0);
	CU_ASSERT(iaddr >= 0x100000 + 0x10000);
	CU_ASSERT(iaddr + sizeof(initrd) <= MEM_SIZE);
	CU_ASSERT_EQUAL(bp->hdr.ramdisk_size, sizeof(initrd));
	CU_ASSERT_EQUAL(memcmp(guest_ptr(&mem, iaddr, sizeof(initrd)), initrd,
			       sizeof(initrd)), 0);

	CU_ASSERT_EQUAL(bp->e820_entries, 3);
	CU_ASSERT_EQUAL(bp->e820_table[2].addr, 0x100000);
	guest_mem_destroy(&mem);
}

static void test_load_rejects(void)
{
	static char longcmd[300];
	struct guest_mem mem;
	struct boot_info bi;
	struct bzimage bz;
	const char *why;
	void *big;

	img_make();
	CU_ASSERT_EQUAL_FATAL(img_parse(IMG_SIZE, &bz, &why), 0);

	/* RAM ends inside the kernel's init_size */
	CU_ASSERT_EQUAL_FATAL(guest_mem_create(&mem, 0x108000), 0);
	CU_ASSERT_EQUAL(bzimage_load(&mem, &bz, NULL, 0, "", &bi, &why), -ENOMEM);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "--memory too small"));
	guest_mem_destroy(&mem);

	CU_ASSERT_EQUAL_FATAL(guest_mem_create(&mem, MEM_SIZE), 0);
	memset(longcmd, 'x', sizeof(longcmd) - 1);	/* cmdline_size 255 */
	CU_ASSERT_EQUAL(bzimage_load(&mem, &bz, NULL, 0, longcmd, &bi, &why), -E2BIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "command line"));

	/* initrd larger than the RAM between the kernel and the end */
	big = calloc(1, MEM_SIZE);
	CU_ASSERT_EQUAL(bzimage_load(&mem, &bz, big, MEM_SIZE - 0x100000, "",
				     &bi, &why), -E2BIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "initrd"));

	/* initrd_addr_max below the kernel: nowhere to put it */
	bz.hdr.initrd_addr_max = 0xfffff;
	CU_ASSERT_EQUAL(bzimage_load(&mem, &bz, big, 4096, "", &bi, &why), -E2BIG);
	free(big);
	guest_mem_destroy(&mem);
}

static void test_initrd_addr_max(void)
{
	struct guest_mem mem;
	struct boot_info bi;
	struct bzimage bz;
	const char *why;
	char rd[100] = "x";

	img_make();
	img_hdr()->initrd_addr_max = 0x1ffffff;		/* 32 MiB - 1 */
	CU_ASSERT_EQUAL_FATAL(img_parse(IMG_SIZE, &bz, &why), 0);
	CU_ASSERT_EQUAL_FATAL(guest_mem_create(&mem, MEM_SIZE), 0);
	CU_ASSERT_EQUAL_FATAL(bzimage_load(&mem, &bz, rd, sizeof(rd), "", &bi, &why), 0);
	CU_ASSERT(bi.initrd_addr + sizeof(rd) - 1 <= 0x1ffffff);
	CU_ASSERT(bi.initrd_addr >= 0x1ffffff - 4096 - sizeof(rd));
	guest_mem_destroy(&mem);
}

static CU_TestInfo bz_tests[] = {
	{ "parse a valid header", test_parse_valid },
	{ "parse rejects bad images", test_parse_rejects },
	{ "setup_sects 0 means 4", test_parse_setup_sects_zero },
	{ "e820 map", test_e820 },
	{ "load fills boot_params", test_load_boot_params },
	{ "load rejects what does not fit", test_load_rejects },
	{ "initrd below initrd_addr_max", test_initrd_addr_max },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "bzimage", NULL, NULL, NULL, NULL, bz_tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
