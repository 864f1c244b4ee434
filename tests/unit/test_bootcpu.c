// SPDX-License-Identifier: GPL-2.0
/*
 * The boot vCPU's state at the 64-bit entry, against boot.rst: long mode,
 * identity mapping, __BOOT_CS = 0x10 / __BOOT_DS = 0x18, interrupts off,
 * %rsi = boot_params. Then the same state through real KVM.
 */
#include <string.h>
#include <sys/ioctl.h>

#include "bootcpu.h"
#include "bzimage.h"
#include "cunit_main.h"
#include "layout.h"
#include "vcpu.h"
#include "vm.h"

#define MEM_SIZE	(64ULL << 20)

/* Walk the 4-level page tables in guest RAM like the MMU would. */
static int walk(struct guest_mem *mem, uint64_t cr3, uint64_t va,
		uint64_t *pa)
{
	uint64_t *pml4 = guest_ptr(mem, cr3 & ~0xfffULL, 4096);
	uint64_t e, *t;

	e = pml4[(va >> 39) & 511];
	if (!(e & PTE_P))
		return -1;
	t = guest_ptr(mem, e & 0xffffffffff000ULL, 4096);
	e = t[(va >> 30) & 511];
	if (!(e & PTE_P) || (e & PTE_PS))
		return -1;
	t = guest_ptr(mem, e & 0xffffffffff000ULL, 4096);
	e = t[(va >> 21) & 511];
	if (!(e & PTE_P) || !(e & PTE_PS) || !(e & PTE_RW))
		return -1;
	*pa = (e & 0xfffffffe00000ULL) | (va & 0x1fffff);
	return 0;
}

static void test_page_tables(void)
{
	static const uint64_t probes[] = {
		0, 0x7000, 0x100200, 0x20000, 0x3ffffff, 0xc0000000,
		PV_IOAPIC_ADDR, PV_LAPIC_ADDR + 0x300, 0xffffffffULL,
	};
	struct guest_mem mem;
	uint64_t pa;
	size_t i;

	CU_ASSERT_EQUAL_FATAL(guest_mem_create(&mem, MEM_SIZE), 0);
	CU_ASSERT_EQUAL_FATAL(bootcpu_write_tables(&mem), 0);
	for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		CU_ASSERT_EQUAL(walk(&mem, PV_PML4_ADDR, probes[i], &pa), 0);
		CU_ASSERT_EQUAL(pa, probes[i]);		/* identity */
	}
	CU_ASSERT_NOT_EQUAL(walk(&mem, PV_PML4_ADDR, 0x100000000ULL, &pa), 0);
	guest_mem_destroy(&mem);
}

static void test_gdt(void)
{
	struct guest_mem mem;
	uint64_t *gdt;

	CU_ASSERT_EQUAL_FATAL(guest_mem_create(&mem, MEM_SIZE), 0);
	CU_ASSERT_EQUAL_FATAL(bootcpu_write_tables(&mem), 0);
	gdt = guest_ptr(&mem, PV_GDT_ADDR, BOOT_GDT_ENTRIES * 8);
	CU_ASSERT_EQUAL(gdt[0], 0);
	/* __BOOT_CS: present, DPL 0, code execute/read, L = 1 (64-bit) */
	CU_ASSERT_EQUAL((gdt[0x10 / 8] >> 47) & 1, 1);		/* P */
	CU_ASSERT_EQUAL((gdt[0x10 / 8] >> 45) & 3, 0);		/* DPL */
	CU_ASSERT_EQUAL((gdt[0x10 / 8] >> 43) & 1, 1);		/* code */
	CU_ASSERT_EQUAL((gdt[0x10 / 8] >> 53) & 1, 1);		/* L */
	CU_ASSERT_EQUAL((gdt[0x10 / 8] >> 54) & 1, 0);		/* D clear */
	/* __BOOT_DS: present, data read/write */
	CU_ASSERT_EQUAL((gdt[0x18 / 8] >> 47) & 1, 1);
	CU_ASSERT_EQUAL((gdt[0x18 / 8] >> 43) & 1, 0);
	CU_ASSERT_EQUAL((gdt[0x18 / 8] >> 41) & 1, 1);		/* writable */
	guest_mem_destroy(&mem);
}

static void check_sregs(const struct kvm_sregs *s)
{
	CU_ASSERT_EQUAL(s->cs.selector, 0x10);
	CU_ASSERT_EQUAL(s->cs.l, 1);
	CU_ASSERT_EQUAL(s->cs.dpl, 0);
	CU_ASSERT_EQUAL(s->cs.present, 1);
	CU_ASSERT_EQUAL(s->ds.selector, 0x18);
	CU_ASSERT_EQUAL(s->es.selector, 0x18);
	CU_ASSERT_EQUAL(s->ss.selector, 0x18);
	CU_ASSERT_EQUAL(s->ds.base, 0);
	CU_ASSERT_EQUAL(s->ds.limit, 0xffffffff);
	CU_ASSERT_EQUAL(s->gdt.base, PV_GDT_ADDR);
	CU_ASSERT(s->cr0 & X86_CR0_PE);
	CU_ASSERT(s->cr0 & X86_CR0_PG);
	CU_ASSERT(s->cr4 & X86_CR4_PAE);
	CU_ASSERT(s->efer & X86_EFER_LME);
	CU_ASSERT(s->efer & X86_EFER_LMA);
	CU_ASSERT_EQUAL(s->cr3, PV_PML4_ADDR);
}

static void test_regs_sregs(void)
{
	struct kvm_sregs s;
	struct kvm_regs r;

	memset(&s, 0xa5, sizeof(s));
	bootcpu_sregs(&s);
	check_sregs(&s);
	bootcpu_regs(&r, 0x1000200, PV_BOOT_PARAMS_ADDR);
	CU_ASSERT_EQUAL(r.rip, 0x1000200);
	CU_ASSERT_EQUAL(r.rsi, PV_BOOT_PARAMS_ADDR);
	CU_ASSERT_EQUAL(r.rflags & (1 << 9), 0);	/* IF: interrupts off */
	CU_ASSERT_EQUAL(r.rflags & 2, 2);		/* reserved bit 1 */
	CU_ASSERT_EQUAL(r.rax | r.rbx | r.rdi | r.rbp, 0);
}

/* What KVM holds after vcpu_boot_setup(), read back from the vCPU. */
static void test_kvm_state(void)
{
	struct vm_config cfg = { .mem_size = MEM_SIZE, .nr_vcpus = 2 };
	struct boot_info bi = { .entry = 0x100200,
				.boot_params = PV_BOOT_PARAMS_ADDR };
	struct vcpu *bsp, *ap;
	struct kvm_mp_state mp;
	struct kvm_sregs s;
	struct kvm_regs r;
	struct vm vm;

	CU_ASSERT_EQUAL_FATAL(vm_create(&vm, &cfg), 0);
	CU_ASSERT_EQUAL_FATAL(vcpu_create(&vm, 0, &bsp), 0);
	CU_ASSERT_EQUAL_FATAL(vcpu_create(&vm, 1, &ap), 0);
	CU_ASSERT_EQUAL_FATAL(vcpu_boot_setup(bsp, &bi), 0);

	CU_ASSERT_EQUAL(ioctl(bsp->fd, KVM_GET_SREGS, &s), 0);
	check_sregs(&s);
	CU_ASSERT_EQUAL(ioctl(bsp->fd, KVM_GET_REGS, &r), 0);
	CU_ASSERT_EQUAL(r.rip, 0x100200);
	CU_ASSERT_EQUAL(r.rsi, PV_BOOT_PARAMS_ADDR);
	CU_ASSERT_EQUAL(r.rflags & (1 << 9), 0);

	/* the AP waits for INIT/SIPI, like hardware */
	CU_ASSERT_EQUAL(ioctl(ap->fd, KVM_GET_MP_STATE, &mp), 0);
	CU_ASSERT_EQUAL(mp.mp_state, KVM_MP_STATE_UNINITIALIZED);
	CU_ASSERT_EQUAL(ioctl(bsp->fd, KVM_GET_MP_STATE, &mp), 0);
	CU_ASSERT_EQUAL(mp.mp_state, KVM_MP_STATE_RUNNABLE);

	vcpu_destroy(ap);
	vcpu_destroy(bsp);
	vm_destroy(&vm);
}

static CU_TestInfo cpu_tests[] = {
	{ "identity page tables", test_page_tables },
	{ "GDT __BOOT_CS/__BOOT_DS", test_gdt },
	{ "registers and segments", test_regs_sregs },
	{ "state as KVM holds it", test_kvm_state },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "bootcpu", NULL, NULL, NULL, NULL, cpu_tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
