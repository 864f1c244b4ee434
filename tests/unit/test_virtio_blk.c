// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-blk: the strict chain parser.
 */
#include <endian.h>
#include <string.h>

#include "cunit_main.h"
#include "virtio_blk.h"

static uint8_t mem[4096];
static struct vq_chain chain;
static struct blk_req req;

static void seg(unsigned int i, uint32_t off, uint32_t len, bool write)
{
	chain.seg[i] = (struct vq_seg){ .gpa = 0x1000 + off, .ptr = mem + off,
					.len = len, .write = write };
	chain.nr = i + 1;
}

static void hdr(uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = htole32(type),
				       .sector = htole64(sector) };

	memcpy(mem, &h, sizeof(h));
}

static void test_parse_read(void)
{
	const char *why;

	hdr(VIRTIO_BLK_T_IN, 8);
	seg(0, 0, 16, false);
	seg(1, 512, 1024, true);
	seg(2, 2048, 1, true);
	CU_ASSERT_EQUAL(blk_parse_chain(&chain, &req, &why), BLK_PARSE_OK);
	CU_ASSERT_EQUAL(req.type, VIRTIO_BLK_T_IN);
	CU_ASSERT_EQUAL(req.sector, 8);
	CU_ASSERT_EQUAL(req.nr_in, 1);
	CU_ASSERT_EQUAL(req.in_len, 1024);
	CU_ASSERT_PTR_EQUAL(req.status, mem + 2048);
}

static CU_TestInfo tests[] = {
	{ "parse a read", test_parse_read },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "virtio-blk", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
