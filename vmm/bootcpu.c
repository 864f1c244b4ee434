// SPDX-License-Identifier: GPL-2.0
/*
 * Initial state of the boot vCPU for the 64-bit boot protocol. Only the BSP
 * gets this: application processors stay in KVM's reset state and wait for
 * INIT/SIPI, as on real hardware.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "bootcpu.h"
#include "layout.h"

int bootcpu_write_tables(struct guest_mem *mem)
{
	uint64_t *gdt = guest_ptr(mem, PV_GDT_ADDR, BOOT_GDT_ENTRIES * 8);
	uint64_t *pml4 = guest_ptr(mem, PV_PML4_ADDR, 4096);
	uint64_t *pdpt = guest_ptr(mem, PV_PDPT_ADDR, 4096);
	uint64_t *pd = guest_ptr(mem, PV_PD_ADDR, PV_PD_PAGES * 4096);
	int i;

	if (!gdt || !pml4 || !pdpt || !pd)
		return -ENOMEM;

	memset(gdt, 0, BOOT_GDT_ENTRIES * 8);
	gdt[BOOT_CS / 8] = GDT_CODE64;
	gdt[BOOT_DS / 8] = GDT_DATA;
	gdt[BOOT_TSS / 8] = GDT_TSS64;	/* upper half (base 63:32) is 0 */

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = PV_PDPT_ADDR | PTE_P | PTE_RW;
	for (i = 0; i < PV_PD_PAGES; i++)
		pdpt[i] = (PV_PD_ADDR + i * 4096ULL) | PTE_P | PTE_RW;
	for (i = 0; i < PV_PD_PAGES * 512; i++)
		pd[i] = ((uint64_t)i << 21) | PTE_P | PTE_RW | PTE_PS;
	return 0;
}

void bootcpu_regs(struct kvm_regs *regs, uint64_t entry, uint64_t boot_params)
{
	memset(regs, 0, sizeof(*regs));
	regs->rflags = 0x2;		/* reserved bit; IF clear */
	regs->rip = entry;
	regs->rsi = boot_params;
	regs->rsp = PV_BOOT_STACK_ADDR;
}

static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type,
		     bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = 0;
	s->s = 1;
	s->g = 1;
	s->l = code;		/* 64-bit code segment */
	s->db = !code;
}

void bootcpu_sregs(struct kvm_sregs *sregs)
{
	seg_flat(&sregs->cs, BOOT_CS, 0xb, true);
	seg_flat(&sregs->ds, BOOT_DS, 0x3, false);
	sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;

	memset(&sregs->tr, 0, sizeof(sregs->tr));
	sregs->tr.selector = BOOT_TSS;
	sregs->tr.limit = 0x67;
	sregs->tr.type = 0xb;	/* busy 64-bit TSS */
	sregs->tr.present = 1;

	memset(&sregs->ldt, 0, sizeof(sregs->ldt));
	sregs->ldt.unusable = 1;
	sregs->ldt.type = 0x2;

	sregs->gdt.base = PV_GDT_ADDR;
	sregs->gdt.limit = BOOT_GDT_ENTRIES * 8 - 1;
	sregs->idt.base = 0;
	sregs->idt.limit = 0;

	sregs->cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE |
		     X86_CR0_PG;
	sregs->cr3 = PV_PML4_ADDR;
	sregs->cr4 = X86_CR4_PAE;
	sregs->efer = X86_EFER_LME | X86_EFER_LMA;
}
