// SPDX-License-Identifier: GPL-2.0
/* The MP table against the Intel MultiProcessor Specification 1.4. */
#include <errno.h>
#include <string.h>

#include "cunit_main.h"
#include "layout.h"
#include "mptable.h"

#define GPA	0x9fc00

static uint8_t sum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t s = 0;

	while (len--)
		s += *b++;
	return s;
}

static void check_table(int ncpu)
{
	static uint8_t buf[1024];
	struct mp_float *f = (void *)buf;
	struct mp_config *c;
	uint8_t *p, *end;
	int cpus = 0, bsp = 0, ioapics = 0, ioints = 0, lints = 0, n;

	memset(buf, 0xcc, sizeof(buf));
	n = mptable_build(buf, sizeof(buf), GPA, ncpu);
	CU_ASSERT_EQUAL_FATAL(n, (int)mptable_size(ncpu));

	CU_ASSERT_EQUAL(memcmp(f->signature, "_MP_", 4), 0);
	CU_ASSERT_EQUAL(f->length, 1);
	CU_ASSERT_EQUAL(f->spec_rev, 4);
	CU_ASSERT_EQUAL(sum(f, 16), 0);
	CU_ASSERT_EQUAL(f->feature[0], 0);	/* a config table follows */
	CU_ASSERT_EQUAL_FATAL(f->physptr, GPA + 16);

	c = (void *)(buf + (f->physptr - GPA));
	CU_ASSERT_EQUAL(memcmp(c->signature, "PCMP", 4), 0);
	CU_ASSERT_EQUAL(c->spec_rev, 4);
	CU_ASSERT_EQUAL(sum(c, c->length), 0);
	CU_ASSERT_EQUAL(c->lapic, PV_LAPIC_ADDR);
	CU_ASSERT_EQUAL(c->ext_length, 0);

	p = (uint8_t *)(c + 1);
	end = (uint8_t *)c + c->length;
	CU_ASSERT_FATAL(end <= buf + n);
	for (int i = 0; i < c->count && p < end; i++) {
		switch (*p) {
		case MP_PROCESSOR: {
			struct mp_cpu *cpu = (void *)p;

			CU_ASSERT_EQUAL(cpu->apic_id, cpus);
			CU_ASSERT(cpu->flags & MP_CPU_EN);
			bsp += !!(cpu->flags & MP_CPU_BP);
			cpus++;
			p += sizeof(*cpu);
			break;
		}
		case MP_IOAPIC: {
			struct mp_ioapic *io = (void *)p;

			CU_ASSERT_EQUAL(io->addr, PV_IOAPIC_ADDR);
			CU_ASSERT_EQUAL(io->apic_id, ncpu);
			ioapics++;
			p += sizeof(*io);
			break;
		}
		case MP_IOINTR: {
			struct mp_intr *in = (void *)p;

			CU_ASSERT_EQUAL(in->dst_apic, ncpu);
			CU_ASSERT_EQUAL(in->dst_pin, in->src_irq);
			ioints++;
			p += sizeof(*in);
			break;
		}
		case MP_LINTR:
			lints++;
			p += sizeof(struct mp_intr);
			break;
		case MP_BUS:
			CU_ASSERT_EQUAL(memcmp(p + 2, "ISA   ", 6), 0);
			p += sizeof(struct mp_bus);
			break;
		default:
			CU_FAIL("unknown MP entry type");
			return;
		}
	}
	CU_ASSERT_PTR_EQUAL(p, end);
	CU_ASSERT_EQUAL(cpus, ncpu);
	CU_ASSERT_EQUAL(bsp, 1);
	CU_ASSERT_EQUAL(ioapics, 1);
	CU_ASSERT_EQUAL(ioints, MP_IRQ_PINS);
	CU_ASSERT_EQUAL(lints, 2);
}

static void test_one_cpu(void) { check_table(1); }
static void test_two_cpus(void) { check_table(2); }
static void test_max_cpus(void)
{
	check_table(16);
	CU_ASSERT(mptable_size(16) <= 1024);	/* inside the EBDA KiB */
}

static void test_rejects(void)
{
	uint8_t buf[64];

	CU_ASSERT_EQUAL(mptable_build(buf, sizeof(buf), GPA, 0), -EINVAL);
	CU_ASSERT_EQUAL(mptable_build(buf, sizeof(buf), GPA, 1), -ENOSPC);
}

static CU_TestInfo mp_tests[] = {
	{ "one CPU", test_one_cpu },
	{ "two CPUs", test_two_cpus },
	{ "sixteen CPUs", test_max_cpus },
	{ "bad arguments", test_rejects },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "mptable", NULL, NULL, NULL, NULL, mp_tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
