// SPDX-License-Identifier: GPL-2.0
/*
 * Split virtqueue parsing (virtio 1.x 2.7) against well-formed and
 * malformed rings: buffers outside RAM, loops, bad indexes, overlong
 * chains, wrap-around of the avail index, indirect tables.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "cunit_main.h"
#include "memory.h"
#include "virtqueue.h"

#define RAM		(192ULL << 20)	/* sparse memfd: holds 128 MiB buffers */
#define QSZ		8
#define DESC_GPA	0x1000
#define AVAIL_GPA	0x2000
#define USED_GPA	0x3000
#define BUF_GPA		0x10000
#define IND_GPA		0x8000

static struct guest_mem mem;
static struct virtqueue vq;
static struct vq_chain chain;

static struct vring_desc *desc(uint64_t table, int i)
{
	return (struct vring_desc *)(mem.hva + table) + i;
}

static void set_desc(uint64_t table, int i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	struct vring_desc *d = desc(table, i);

	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

static struct vring_avail *avail(void)
{
	return (struct vring_avail *)(mem.hva + AVAIL_GPA);
}

static struct vring_used *used(void)
{
	return (struct vring_used *)(mem.hva + USED_GPA);
}

/* Make head @head available as the next avail entry. */
static void post(uint16_t head)
{
	uint16_t idx = le16toh(avail()->idx);

	avail()->ring[idx % QSZ] = htole16(head);
	avail()->idx = htole16(idx + 1);
}

static int setup(void)
{
	if (guest_mem_create(&mem, RAM))
		return -1;
	return 0;
}

static int teardown(void)
{
	guest_mem_destroy(&mem);
	return 0;
}

static void fresh_queue(void)
{
	memset(mem.hva, 0, 0x20000);
	vq_reset(&vq);
	vq.indirect = false;
	CU_ASSERT_EQUAL_FATAL(vq_setup(&vq, &mem, QSZ, DESC_GPA, AVAIL_GPA,
				       USED_GPA), 0);
}

static void test_setup_checks(void)
{
	vq_reset(&vq);
	CU_ASSERT_EQUAL(vq_setup(&vq, &mem, 6, DESC_GPA, AVAIL_GPA, USED_GPA),
			-EINVAL);	/* not a power of two */
	CU_ASSERT_EQUAL(vq_setup(&vq, &mem, 0, DESC_GPA, AVAIL_GPA, USED_GPA),
			-EINVAL);
	CU_ASSERT_EQUAL(vq_setup(&vq, &mem, QSZ, DESC_GPA + 8, AVAIL_GPA,
				 USED_GPA), -EINVAL);	/* desc align 16 */
	CU_ASSERT_EQUAL(vq_setup(&vq, &mem, QSZ, DESC_GPA, AVAIL_GPA + 1,
				 USED_GPA), -EINVAL);	/* avail align 2 */
	CU_ASSERT_EQUAL(vq_setup(&vq, &mem, QSZ, DESC_GPA, AVAIL_GPA,
				 USED_GPA + 2), -EINVAL);	/* used align 4 */
	CU_ASSERT_EQUAL(vq_setup(&vq, &mem, QSZ, RAM - 64, AVAIL_GPA,
				 USED_GPA), -EFAULT);	/* table past RAM */
	CU_ASSERT_EQUAL(vq_setup(&vq, &mem, QSZ, DESC_GPA, AVAIL_GPA,
				 RAM + 0x1000), -EFAULT);
	CU_ASSERT_FALSE(vq.ready);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), 0);	/* not ready: nothing */
}

static void test_good_chain(void)
{
	fresh_queue();
	set_desc(DESC_GPA, 3, BUF_GPA, 16, VRING_DESC_F_NEXT, 5);
	set_desc(DESC_GPA, 5, BUF_GPA + 0x100, 512,
		 VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(DESC_GPA, 1, BUF_GPA + 0x400, 1, VRING_DESC_F_WRITE, 0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), 0);
	post(3);
	CU_ASSERT_EQUAL(vq_pending(&vq), 1);
	CU_ASSERT_EQUAL_FATAL(vq_pop(&vq, &chain), 1);
	CU_ASSERT_EQUAL(chain.head, 3);
	CU_ASSERT_EQUAL_FATAL(chain.nr, 3);
	CU_ASSERT_EQUAL(chain.out_len, 16);
	CU_ASSERT_EQUAL(chain.in_len, 513);
	CU_ASSERT_EQUAL(chain.seg[0].gpa, BUF_GPA);
	CU_ASSERT_PTR_EQUAL(chain.seg[0].ptr, mem.hva + BUF_GPA);
	CU_ASSERT_FALSE(chain.seg[0].write);
	CU_ASSERT_TRUE(chain.seg[1].write);
	CU_ASSERT_EQUAL(chain.seg[1].len, 512);
	CU_ASSERT_PTR_EQUAL(chain.seg[2].ptr, mem.hva + BUF_GPA + 0x400);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), 0);

	CU_ASSERT_EQUAL(vq_push(&vq, 3, 100), 0);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 1);
	CU_ASSERT_EQUAL(le32toh(used()->ring[0].id), 3);
	CU_ASSERT_EQUAL(le32toh(used()->ring[0].len), 100);
	CU_ASSERT_EQUAL(vq_push(&vq, QSZ, 0), -EINVAL);	/* bad id */
	CU_ASSERT_EQUAL(le16toh(used()->idx), 1);
}

static void test_outside_ram(void)
{
	fresh_queue();
	set_desc(DESC_GPA, 0, RAM - 8, 16, 0, 0);	/* straddles the end */
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EFAULT);
	CU_ASSERT_EQUAL(chain.nr, 0);

	set_desc(DESC_GPA, 1, 0xfee00000, 4, VRING_DESC_F_WRITE, 0);
	post(1);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EFAULT);
	/* 64-bit wrap-around of addr + len */
	set_desc(DESC_GPA, 2, ~0ULL - 3, 16, 0, 0);
	post(2);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EFAULT);
	CU_ASSERT_EQUAL(vq.stats.bad_chains, 3);
}

static void test_loop(void)
{
	fresh_queue();
	set_desc(DESC_GPA, 0, BUF_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(DESC_GPA, 1, BUF_GPA, 8, VRING_DESC_F_NEXT, 2);
	set_desc(DESC_GPA, 2, BUF_GPA, 8, VRING_DESC_F_NEXT, 0);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -ELOOP);

	/* a self loop */
	set_desc(DESC_GPA, 4, BUF_GPA, 8, VRING_DESC_F_NEXT, 4);
	post(4);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -ELOOP);

	/* exactly QSZ descriptors in one chain is fine */
	for (int i = 0; i < QSZ; i++)
		set_desc(DESC_GPA, i, BUF_GPA, 8,
			 i < QSZ - 1 ? VRING_DESC_F_NEXT : 0, i + 1);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), 1);
	CU_ASSERT_EQUAL(chain.nr, QSZ);
}

static void test_bad_index(void)
{
	fresh_queue();
	set_desc(DESC_GPA, 0, BUF_GPA, 8, VRING_DESC_F_NEXT, QSZ);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EINVAL);	/* next >= size */
	post(QSZ);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EINVAL);	/* head >= size */
	CU_ASSERT_EQUAL(chain.head, QSZ);
	post(0xffff);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EINVAL);
}

static void test_overlong(void)
{
	fresh_queue();
	set_desc(DESC_GPA, 0, BUF_GPA, VQ_MAX_CHAIN_BYTES + 1, 0, 0);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -E2BIG);

	/* the sum counts, not each buffer */
	set_desc(DESC_GPA, 1, BUF_GPA, VQ_MAX_CHAIN_BYTES / 2 + 1,
		 VRING_DESC_F_NEXT, 2);
	set_desc(DESC_GPA, 2, BUF_GPA, VQ_MAX_CHAIN_BYTES / 2 + 1, 0, 0);
	post(1);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -E2BIG);
}

static void test_order(void)
{
	fresh_queue();
	set_desc(DESC_GPA, 0, BUF_GPA, 8, VRING_DESC_F_WRITE |
		 VRING_DESC_F_NEXT, 1);
	set_desc(DESC_GPA, 1, BUF_GPA, 8, 0, 0);	/* readable after */
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EINVAL);
}

static void test_avail_wrap(void)
{
	fresh_queue();
	set_desc(DESC_GPA, 0, BUF_GPA, 8, 0, 0);
	set_desc(DESC_GPA, 1, BUF_GPA, 8, 0, 0);
	set_desc(DESC_GPA, 2, BUF_GPA, 8, 0, 0);
	/* the driver's index wrapped from 0xffff to 0 and beyond */
	vq.last_avail = 0xfffe;
	vq.used_idx = 0xfffe;
	avail()->idx = htole16(0xfffe);
	post(0);
	post(1);
	post(2);
	CU_ASSERT_EQUAL(le16toh(avail()->idx), 1);
	CU_ASSERT_EQUAL(vq_pending(&vq), 3);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(vq_pop(&vq, &chain), 1);
		CU_ASSERT_EQUAL(chain.head, i);
		CU_ASSERT_EQUAL(vq_push(&vq, chain.head, 0), 0);
	}
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), 0);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 1);
	CU_ASSERT_EQUAL(le32toh(used()->ring[0xffff % QSZ].id), 1);

	/* more entries than the queue holds: a broken driver */
	avail()->idx = htole16(vq.last_avail + QSZ + 1);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EINVAL);
	CU_ASSERT_EQUAL(vq_pending(&vq), -EINVAL);
}

static void test_indirect(void)
{
	fresh_queue();
	set_desc(IND_GPA, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	set_desc(IND_GPA, 1, BUF_GPA + 64, 32, VRING_DESC_F_WRITE, 0);
	set_desc(DESC_GPA, 0, IND_GPA, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EINVAL);	/* not negotiated */

	vq.indirect = true;
	post(0);
	CU_ASSERT_EQUAL_FATAL(vq_pop(&vq, &chain), 1);
	CU_ASSERT_EQUAL(chain.nr, 2);
	CU_ASSERT_EQUAL(chain.in_len, 32);
	CU_ASSERT_EQUAL(chain.out_len, 4);

	/* table length not a multiple of 16 */
	set_desc(DESC_GPA, 0, IND_GPA, 24, VRING_DESC_F_INDIRECT, 0);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EINVAL);
	/* indirect inside indirect */
	set_desc(IND_GPA, 1, IND_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	set_desc(DESC_GPA, 0, IND_GPA, 32, VRING_DESC_F_INDIRECT, 0);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EINVAL);
	/* loop inside the table */
	set_desc(IND_GPA, 1, BUF_GPA, 4, VRING_DESC_F_NEXT, 0);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -ELOOP);
	/* table outside RAM */
	set_desc(DESC_GPA, 0, RAM - 16, 32, VRING_DESC_F_INDIRECT, 0);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EFAULT);
	/* INDIRECT together with NEXT */
	set_desc(DESC_GPA, 0, IND_GPA, 32, VRING_DESC_F_INDIRECT |
		 VRING_DESC_F_NEXT, 1);
	post(0);
	CU_ASSERT_EQUAL(vq_pop(&vq, &chain), -EINVAL);
}

static void test_no_interrupt_flag(void)
{
	fresh_queue();
	CU_ASSERT_TRUE(vq_should_signal(&vq));
	avail()->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	CU_ASSERT_FALSE(vq_should_signal(&vq));
}

static CU_TestInfo tests[] = {
	{ "setup validates rings", test_setup_checks },
	{ "well-formed chain, used ring", test_good_chain },
	{ "buffer outside RAM", test_outside_ram },
	{ "descriptor loops", test_loop },
	{ "index >= queue size", test_bad_index },
	{ "overlong chain", test_overlong },
	{ "readable after writable", test_order },
	{ "avail index wrap-around", test_avail_wrap },
	{ "indirect descriptors", test_indirect },
	{ "VRING_AVAIL_F_NO_INTERRUPT", test_no_interrupt_flag },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "virtqueue", setup, teardown, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
