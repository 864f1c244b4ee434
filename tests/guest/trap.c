// SPDX-License-Identifier: GPL-2.0
/*
 * CPL0 C code: descriptor setup at boot and the exception report. Runs
 * emulated, so keep it short; everything else runs at CPL3.
 */
#include "guest.h"

#define GATE_INTR	0x8e	/* present, DPL0, 64-bit interrupt gate */
#define TSS_AVAIL	0x89	/* present, 64-bit TSS, not busy */

struct trap_frame {
	u64 r15, r14, r13, r12, r11, r10, r9, r8;
	u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vector, error;
	u64 rip, cs, rflags, rsp, ss;
};

volatile u32 irq_counts[NR_IRQ_VECS];

void trap_handle(struct trap_frame *f);

static void idt_set(unsigned int vec, void *handler)
{
	u64 h = (u64)handler;
	u64 *e = (u64 *)(idt + vec * 16);

	e[0] = (h & 0xffff) | ((u64)KERNEL_CS << 16) |
	       ((u64)GATE_INTR << 40) | ((h & 0xffff0000) << 32);
	e[1] = h >> 32;
}

static void tss_desc_set(unsigned int cpu)
{
	u64 base = (u64)tss_area + cpu * TSS_STRIDE;
	u64 limit = (MAX_CPUS - cpu) * TSS_STRIDE + IOBITMAP_SIZE;
	u64 *e = (u64 *)(gdt + TSS_SEL0 + cpu * 16);

	e[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
	       ((u64)TSS_AVAIL << 40) | ((limit & 0xf0000) << 32) |
	       ((base & 0xff000000) << 32);
	e[1] = base >> 32;
}

/* About 600 emulated instructions. */
void cpu_tables_init(void)
{
	unsigned int i;

	for (i = 0; i < NR_EXC_VECTORS; i++)
		idt_set(i, exc_stubs + 16 * i);
	for (i = 0; i < NR_IRQ_VECS; i++)
		idt_set(VEC_IRQ_BASE + i, irq_stubs + IRQ_STUB_SIZE * i);
	idt_set(VEC_SPURIOUS, irq_spurious);
	for (i = 0; i < MAX_CPUS; i++)
		tss_desc_set(i);
}

static void cpl0_park(void)
{
	for (;;)
		asm volatile("cli; hlt");
}

void trap_handle(struct trap_frame *f)
{
	u64 cr2;

	if (f->vector == 6 && f->rip == (u64)user_park)
		cpl0_park();
	if (f->vector == 6 && f->rip == (u64)user_triplefault)
		triple_fault();
	asm volatile("mov %%cr2, %0" : "=r"(cr2));
	printk("PVGUEST exception vector=%lu error=0x%lx rip=0x%lx cs=0x%lx "
	       "rsp=0x%lx cr2=0x%lx\n", (unsigned long)f->vector,
	       (unsigned long)f->error, (unsigned long)f->rip,
	       (unsigned long)f->cs, (unsigned long)f->rsp,
	       (unsigned long)cr2);
	outb(EXIT_CRASH, PORT_TESTEXIT);
	cpl0_park();
}
