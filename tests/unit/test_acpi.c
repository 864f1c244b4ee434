// SPDX-License-Identifier: GPL-2.0
/*
 * The ACPI tables against the spec (signatures, lengths, checksums, what
 * the FADT and MADT say) and the PM1 block through vm_pio() on a VM
 * without KVM: the power button, write-1-to-clear, S5, bad accesses.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "acpi.h"
#include "cunit_main.h"
#include "layout.h"
#include "vm.h"

#define GPA	0xe0000

static uint8_t buf[8192];

static uint8_t sum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t s = 0;

	while (len--)
		s += *b++;
	return s;
}

static void *at(uint64_t gpa)
{
	return buf + (gpa - GPA);
}

static void check_header(uint64_t gpa, const char *sig)
{
	struct acpi_header *h = at(gpa);

	CU_ASSERT_EQUAL(memcmp(h->signature, sig, 4), 0);
	CU_ASSERT(h->length >= sizeof(*h));
	CU_ASSERT(gpa + h->length <= GPA + sizeof(buf));
	CU_ASSERT_EQUAL(sum(h, h->length), 0);
	CU_ASSERT_EQUAL(gpa % 8, 0);
}

static void check_rsdp(const struct acpi_layout *l)
{
	struct acpi_rsdp *r = at(l->rsdp);
	uint32_t rsdt[2];
	uint64_t xsdt[2];	/* at offset 36: not 8-byte aligned, as ACPI has it */

	memcpy(rsdt, at(l->rsdt + sizeof(struct acpi_header)), sizeof(rsdt));
	memcpy(xsdt, at(l->xsdt + sizeof(struct acpi_header)), sizeof(xsdt));

	CU_ASSERT_EQUAL(memcmp(r->signature, "RSD PTR ", 8), 0);
	CU_ASSERT_EQUAL(sum(r, 20), 0);
	CU_ASSERT_EQUAL(sum(r, 36), 0);
	CU_ASSERT_EQUAL(r->revision, 2);
	CU_ASSERT_EQUAL(r->length, 36);
	CU_ASSERT_EQUAL(r->xsdt_address, l->xsdt);
	CU_ASSERT_EQUAL(r->rsdt_address, l->rsdt);
	check_header(l->rsdt, "RSDT");
	check_header(l->xsdt, "XSDT");
	CU_ASSERT_EQUAL(((struct acpi_header *)at(l->xsdt))->length, 36 + 16);
	CU_ASSERT_EQUAL(xsdt[0], l->fadt);
	CU_ASSERT_EQUAL(xsdt[1], l->madt);
	CU_ASSERT_EQUAL(rsdt[0], l->fadt);
	CU_ASSERT_EQUAL(rsdt[1], l->madt);
}

static void check_fadt(const struct acpi_layout *l)
{
	struct acpi_fadt *f = at(l->fadt);
	struct acpi_facs *facs = at(l->facs);
	uint8_t *dsdt = at(l->dsdt);
	static const uint8_t s5[] = { 0x08, '\\', '_', 'S', '5', '_', 0x12,
				      0x08, 0x04, 0x0a, ACPI_S5_SLP_TYP };

	check_header(l->fadt, "FACP");
	CU_ASSERT_EQUAL(f->h.length, 244);
	CU_ASSERT_EQUAL(f->h.revision, 3);
	CU_ASSERT_EQUAL(f->sci_interrupt, 9);
	CU_ASSERT_EQUAL(f->smi_command, 0);
	CU_ASSERT_EQUAL(f->pm1a_event_block, PV_PORT_PM1_EVT);
	CU_ASSERT_EQUAL(f->pm1a_control_block, PV_PORT_PM1_CNT);
	CU_ASSERT_EQUAL(f->pm1_event_length, 4);
	CU_ASSERT_EQUAL(f->pm1_control_length, 2);
	CU_ASSERT_EQUAL(f->x_pm1a_event_block.address, PV_PORT_PM1_EVT);
	CU_ASSERT_EQUAL(f->x_pm1a_event_block.bit_width, 32);
	CU_ASSERT_EQUAL(f->x_pm1a_control_block.address, PV_PORT_PM1_CNT);
	CU_ASSERT_EQUAL(f->x_pm1a_control_block.space_id, ACPI_GAS_IO);
	CU_ASSERT_EQUAL(f->pm1b_event_block | f->pm1b_control_block |
			f->pm_timer_block | f->gpe0_block, 0);
	CU_ASSERT_EQUAL(f->flags & ACPI_FADT_POWER_BUTTON, 0);
	CU_ASSERT_EQUAL(f->dsdt, l->dsdt);
	CU_ASSERT_EQUAL(f->x_dsdt, l->dsdt);
	CU_ASSERT_EQUAL(f->facs, l->facs);
	CU_ASSERT_EQUAL(l->facs % 64, 0);
	CU_ASSERT_EQUAL(memcmp(facs->signature, "FACS", 4), 0);
	CU_ASSERT_EQUAL(facs->length, 64);
	check_header(l->dsdt, "DSDT");
	CU_ASSERT_EQUAL(memcmp(dsdt + 36, s5, sizeof(s5)), 0);
	/* the ports are nobody else's: after the exit port, before PCI's */
	CU_ASSERT(PV_PORT_PM1_EVT > PV_PORT_TESTEXIT);
	CU_ASSERT_EQUAL(PV_PORT_PM1_CNT, PV_PORT_PM1_EVT + 4);
	CU_ASSERT(PV_PORT_PM1_CNT + 2 <= PV_PORT_PCI_CONF_ADDR);
}

static void check_madt(const struct acpi_layout *l, int ncpu)
{
	struct acpi_madt *m = at(l->madt);
	uint8_t *p = (uint8_t *)(m + 1), *end = (uint8_t *)m + m->h.length;
	int cpus = 0, ioapics = 0, sci = 0, nmi = 0;

	check_header(l->madt, "APIC");
	CU_ASSERT_EQUAL(m->lapic_address, PV_LAPIC_ADDR);
	CU_ASSERT_EQUAL(m->flags, ACPI_MADT_PCAT_COMPAT);
	while (p + 2 <= end && p[1] >= 2) {
		if (p[0] == ACPI_MADT_LAPIC) {
			struct acpi_madt_lapic *c = (void *)p;

			CU_ASSERT_EQUAL(c->length, 8);
			CU_ASSERT_EQUAL(c->apic_id, cpus);
			CU_ASSERT_EQUAL(c->flags, ACPI_MADT_ENABLED);
			cpus++;
		} else if (p[0] == ACPI_MADT_IOAPIC) {
			struct acpi_madt_ioapic *io = (void *)p;

			CU_ASSERT_EQUAL(io->length, 12);
			CU_ASSERT_EQUAL(io->address, PV_IOAPIC_ADDR);
			CU_ASSERT_EQUAL(io->id, ncpu);	/* as the MP table */
			CU_ASSERT_EQUAL(io->gsi_base, 0);
			ioapics++;
		} else if (p[0] == ACPI_MADT_OVERRIDE) {
			struct acpi_madt_override *o = (void *)p;

			CU_ASSERT_EQUAL(o->length, 10);
			sci += o->source_irq == 9 && o->gsi == 9 &&
			       o->flags == 0x000d;
		} else if (p[0] == ACPI_MADT_LAPIC_NMI) {
			CU_ASSERT_EQUAL(p[1], 6);
			nmi++;
		}
		p += p[1];
	}
	CU_ASSERT_PTR_EQUAL(p, end);
	CU_ASSERT_EQUAL(cpus, ncpu);
	CU_ASSERT_EQUAL(ioapics, 1);
	CU_ASSERT_EQUAL(sci, 1);
	CU_ASSERT_EQUAL(nmi, 1);
}

static void test_tables(void)
{
	static const int ncpus[] = { 1, 2, VM_MAX_VCPUS };

	for (size_t i = 0; i < sizeof(ncpus) / sizeof(ncpus[0]); i++) {
		struct acpi_layout l;
		int n;

		memset(buf, 0xcc, sizeof(buf));
		n = acpi_build(buf, sizeof(buf), GPA, ncpus[i], &l);
		CU_ASSERT_EQUAL_FATAL(n, (int)acpi_size(ncpus[i]));
		CU_ASSERT_EQUAL(l.size, (size_t)n);
		CU_ASSERT(n <= (int)PV_ACPI_MAX);
		CU_ASSERT_EQUAL(l.rsdp, GPA);
		check_rsdp(&l);
		check_fadt(&l);
		check_madt(&l, ncpus[i]);
	}
	/* the tables sit in the e820 hole an OS leaves alone */
	CU_ASSERT(PV_ACPI_ADDR >= PV_EBDA_ADDR);
	CU_ASSERT(PV_ACPI_ADDR + PV_ACPI_MAX <= PV_BIOS_END);
	CU_ASSERT_EQUAL(PV_ACPI_ADDR % 16, 0);
}

static void test_bad_args(void)
{
	struct acpi_layout l;

	CU_ASSERT_EQUAL(acpi_build(buf, acpi_size(2) - 1, GPA, 2, &l), -ENOSPC);
	CU_ASSERT_EQUAL(acpi_build(buf, sizeof(buf), GPA + 16, 2, &l), -EINVAL);
	CU_ASSERT_EQUAL(acpi_build(buf, sizeof(buf), GPA, 0, &l), -EINVAL);
	CU_ASSERT_EQUAL(acpi_build(buf, sizeof(buf), 1ULL << 32, 2, &l),
			-EINVAL);
}

/* The PM1 block of a VM without KVM (its SCI goes nowhere). */
static struct vm vm;
static const struct vm_config cfg = {
	.mem_size = 16 << 20,
	.no_vcpus = true,
};

static uint16_t pm_in(uint16_t port)
{
	uint16_t v = 0xdead;

	vm_pio(&vm, port, &v, 2, false);
	return v;
}

static void pm_out(uint16_t port, uint16_t v)
{
	vm_pio(&vm, port, &v, 2, true);
}

static void test_pm1(void)
{
	uint32_t v32 = 0xffffffff;
	uint8_t b = 0xff;

	CU_ASSERT_EQUAL(pm_in(PV_PORT_PM1_EVT), 0);
	CU_ASSERT_EQUAL(pm_in(PV_PORT_PM1_CNT), ACPI_PM1_SCI_EN);
	CU_ASSERT_EQUAL(pm_power_button(&vm), 0);
	CU_ASSERT_EQUAL(pm_in(PV_PORT_PM1_EVT), ACPI_PM1_PWRBTN);
	/* writing 0 clears nothing, 1 clears it */
	pm_out(PV_PORT_PM1_EVT, 0);
	CU_ASSERT_EQUAL(pm_in(PV_PORT_PM1_EVT), ACPI_PM1_PWRBTN);
	b = ACPI_PM1_PWRBTN >> 8;		/* the high byte alone */
	vm_pio(&vm, PV_PORT_PM1_EVT + 1, &b, 1, true);
	CU_ASSERT_EQUAL(pm_in(PV_PORT_PM1_EVT), 0);
	/* the enable bit sticks, others do not */
	pm_out(PV_PORT_PM1_EVT + 2, 0xffff);
	CU_ASSERT_EQUAL(pm_in(PV_PORT_PM1_EVT + 2), ACPI_PM1_PWRBTN);
	/* bad sizes and places: ignored, reads give 0 */
	vm_pio(&vm, PV_PORT_PM1_EVT, &v32, 4, true);
	vm_pio(&vm, PV_PORT_PM1_EVT + 1, &v32, 2, true);
	vm_pio(&vm, PV_PORT_PM1_CNT, &v32, 4, true);	/* past the block */
	v32 = 0xffffffff;
	vm_pio(&vm, PV_PORT_PM1_EVT, &v32, 4, false);
	CU_ASSERT_EQUAL(v32, 0);
	CU_ASSERT_EQUAL(pm_in(PV_PORT_PM1_EVT), 0);
	CU_ASSERT_FALSE(vm_stopping(&vm));
	/* SLP_EN with another sleep type: ignored; SCI_EN stays */
	pm_out(PV_PORT_PM1_CNT, 3 << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SLP_EN);
	CU_ASSERT_FALSE(vm_stopping(&vm));
	CU_ASSERT_EQUAL(pm_in(PV_PORT_PM1_CNT),
			(3 << ACPI_PM1_SLP_TYP_SHIFT) | ACPI_PM1_SCI_EN);
	/* SLP_TYP then SLP_EN, as ACPICA writes them: S5 */
	pm_out(PV_PORT_PM1_CNT, ACPI_S5_SLP_TYP << ACPI_PM1_SLP_TYP_SHIFT);
	CU_ASSERT_FALSE(vm_stopping(&vm));
	pm_out(PV_PORT_PM1_CNT, ACPI_S5_SLP_TYP << ACPI_PM1_SLP_TYP_SHIFT |
	       ACPI_PM1_SLP_EN | ACPI_PM1_SCI_EN);
	CU_ASSERT(vm_stopping(&vm));
	CU_ASSERT_EQUAL(vm.stop_reason, VM_STOP_POWEROFF);
	CU_ASSERT_EQUAL(vm.stop_status, 0);
}

static int setup(void)
{
	int fd = open("/dev/null", O_RDONLY);

	/* keep the UART away from the terminal */
	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
		return -1;
	close(fd);
	return vm_create(&vm, &cfg) || vm_devices_init(&vm) || !vm.pm;
}

static int teardown(void)
{
	vm_devices_exit(&vm);
	vm_destroy(&vm);
	return 0;
}

static CU_TestInfo tables_tests[] = {
	{ "tables: layout, checksums, FADT ports, MADT CPUs", test_tables },
	{ "tables: bad arguments", test_bad_args },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo pm_tests[] = {
	{ "PM1: power button, W1C, S5, bad accesses", test_pm1 },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "acpi", NULL, NULL, NULL, NULL, tables_tests },
	{ "pm1", setup, teardown, NULL, NULL, pm_tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
