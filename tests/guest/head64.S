/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CPL0 side of the test guest: 64-bit entry, AP trampoline, trap stubs and
 * the static descriptor tables. Every instruction here runs emulated (about
 * 1M/s), so the tables are built at link time wherever possible and the
 * guest drops to CPL3 at once.
 */
#include "guest.h"

#define PTE_P		0x001
#define PTE_W		0x002
#define PTE_U		0x004
#define PTE_PWT		0x008
#define PTE_PCD		0x010
#define PTE_PS		0x080
#define PTE_TABLE	(PTE_P | PTE_W | PTE_U)
#define PTE_2M		(PTE_P | PTE_W | PTE_U | PTE_PS)

#define CR0_AP		0x80010033	/* PG | WP | NE | ET | MP | PE */
#define CR4_PAE		0x20
#define MSR_EFER	0xc0000080
#define EFER_LME	0x100

/* flat kernel data segments; fs/gs null (clobbers %eax) */
.macro load_kernel_segments
	movl	$KERNEL_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs
.endm

	.section .head, "ax"
	.code32
	.globl	startup_32
startup_32:				/* 32-bit entry: unsupported */
	cli
1:	hlt
	jmp	1b

	.org	0x200
	.code64
	.globl	startup_64
startup_64:
	cli
	movq	%rsi, boot_params_ptr(%rip)
	lgdt	gdt_desc(%rip)
	leaq	pml4(%rip), %rax
	movq	%rax, %cr3
	load_kernel_segments
	leaq	kstacks + KSTACK_SIZE(%rip), %rsp
	pushq	$KERNEL_CS
	leaq	1f(%rip), %rax
	pushq	%rax
	lretq
1:	call	cpu_tables_init
	lidt	idt_desc(%rip)
	movl	$TSS_SEL0, %eax
	ltr	%ax
	movb	$0xff, %al		/* mask both 8259s */
	outb	%al, $0x21
	outb	%al, $0xa1
	xorl	%edi, %edi		/* CPU 0 */
	jmp	enter_user

	.text
/* %rdi = CPU index: iretq to user_start(cpu) on that CPU's user stack, IF=1 */
enter_user:
	movq	%rdi, %rax
	incq	%rax
	imulq	$USTACK_SIZE, %rax
	leaq	ustacks - 8(%rip), %rdx
	addq	%rdx, %rax
	pushq	$USER_DS
	pushq	%rax
	pushq	$0x202
	pushq	$USER_CS
	leaq	user_start(%rip), %rax
	pushq	%rax
	iretq

/* Long mode reached from the trampoline; ap_cpu says which CPU we are. */
ap_entry64:
	load_kernel_segments
	lidt	idt_desc(%rip)
	movl	ap_cpu(%rip), %edi
	movq	%rdi, %rax
	incq	%rax
	imulq	$KSTACK_SIZE, %rax
	leaq	kstacks(%rip), %rsp
	addq	%rax, %rsp
	movq	%rdi, %rax
	shlq	$4, %rax
	leaq	gdt + TSS_SEL0(%rip), %rdx
	addq	%rax, %rdx
	andb	$0xfd, 5(%rdx)		/* not busy: we may be re-INITed */
	addl	$TSS_SEL0, %eax
	ltr	%ax
	jmp	enter_user

/*
 * Real-mode trampoline, copied to TRAMP_ADDR and started by SIPI vector
 * SIPI_VECTOR: real -> protected -> long mode -> ap_entry64.
 */
	.balign	16
	.globl	tramp_start, tramp_end
	.code16
tramp_start:
	cli
	movw	%cs, %ax
	movw	%ax, %ds
	lgdtl	tramp_gdt_desc - tramp_start
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	ljmpl	$KERNEL_CS32, $(TRAMP_ADDR + tramp32 - tramp_start)
	.code32
tramp32:
	movl	$KERNEL_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	$CR0_AP, %eax
	movl	%eax, %cr0
	ljmpl	$KERNEL_CS, $ap_entry64
	.balign	8
tramp_gdt_desc:
	.word	GDT_ENTRIES * 8 - 1
	.long	gdt
tramp_end:
	.code64

/* Exception stubs, 16 bytes each: exc_stubs + 16 * vector. */
	.macro	EXC vec
	.balign	16
	.if	!(\vec == 8 || (\vec >= 10 && \vec <= 14) || \vec == 17 || \vec == 21 || \vec == 29 || \vec == 30)
	pushq	$0
	.endif
	pushq	$\vec
	jmp	exc_common
	.endm

	.balign	16
	.globl	exc_stubs
exc_stubs:
	.irp	v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	EXC	\v
	.endr

exc_common:
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, %rdi
	call	trap_handle		/* never returns */
1:	cli
	hlt
	jmp	1b

/*
 * MSI-X: vector VEC_IRQ_BASE + i counts in irq_counts[i], EOI, return.
 * Six emulated instructions; stubs are IRQ_STUB_SIZE apart.
 */
	.macro	IRQ i
	.org	irq_stubs + \i * IRQ_STUB_SIZE
	pushq	%rax
	incl	irq_counts + 4 * \i(%rip)
	movl	$LAPIC_EOI_ADDR, %eax
	movl	$0, (%rax)
	popq	%rax
	iretq
	.endm

	.balign	IRQ_STUB_SIZE
	.globl	irq_stubs, irq_spurious
irq_stubs:
	.irp	i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	IRQ	\i
	.endr

irq_spurious:
	iretq

	.globl	triple_fault
triple_fault:
	lidt	null_idt_desc(%rip)
	ud2

/* CPL3 entry points that the #UD handler recognises by their address. */
	.globl	user_park, user_triplefault
user_park:
	ud2
user_triplefault:
	ud2

	.section .rodata
	.balign	8
kernel_info:				/* boot.rst "kernel_info", protocol 2.15 */
	.ascii	"LToP"
	.long	kernel_info_end - kernel_info
	.long	kernel_info_end - kernel_info
	.long	0			/* setup_type_max: we read no setup_data */
kernel_info_end:
	.globl	kernel_info

	.data
	.balign	16
gdt_desc:
	.word	GDT_ENTRIES * 8 - 1
	.quad	gdt
idt_desc:
	.word	256 * 16 - 1
	.quad	idt
null_idt_desc:
	.word	0
	.quad	0

	.balign	64
	.globl	gdt
gdt:
	.quad	0
	.quad	0x00af9a000000ffff	/* KERNEL_CS: 64-bit code, DPL0 */
	.quad	0x00cf92000000ffff	/* KERNEL_DS */
	.quad	0x00cff2000000ffff	/* USER_DS: DPL3 */
	.quad	0x00affa000000ffff	/* USER_CS: 64-bit code, DPL3 */
	.quad	0x00cf9a000000ffff	/* KERNEL_CS32 */
	.fill	2 * MAX_CPUS, 8, 0	/* TSS descriptors: cpu_tables_init() */

/*
 * One 64-bit TSS per CPU, TSS_STRIDE apart, each with its own rsp0 and an
 * iomap_base pointing at the single shared I/O bitmap after them.
 */
	.balign	4096
	.globl	tss_area
tss_area:
	.irp	i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	.long	0
	.quad	kstacks + (\i + 1) * KSTACK_SIZE	/* rsp0 */
	.fill	0x66 - 12, 1, 0
	.word	(MAX_CPUS - \i) * TSS_STRIDE		/* iomap_base */
	.fill	TSS_STRIDE - 0x68, 1, 0
	.endr
	.if	. - tss_area != MAX_CPUS * TSS_STRIDE
	.error	"TSS count does not match MAX_CPUS"
	.endif

/* Ports CPL3 may use: the i8042 command port (reset), 0x2f0 (badport),
 * COM1, the exit port, the ACPI PM1 block, PCI config. */
io_bitmap:
	.fill	PORT_I8042_CMD / 8, 1, 0xff
	.byte	0xef			/* 0x64 */
	.fill	PORT_BAD / 8 - PORT_I8042_CMD / 8 - 1, 1, 0xff
	.byte	0xfe			/* 0x2f0 */
	.fill	0x3f8 / 8 - PORT_BAD / 8 - 1, 1, 0xff
	.byte	0x00			/* 0x3f8-0x3ff */
	.fill	0x500 / 8 - 0x3f8 / 8 - 1, 1, 0xff
	.byte	0xfd			/* 0x501 */
	.fill	PORT_PM1 / 8 - 0x500 / 8 - 1, 1, 0xff
	.byte	0x00			/* 0x600-0x607 */
	.fill	0xcf8 / 8 - PORT_PM1 / 8 - 1, 1, 0xff
	.byte	0x00			/* 0xcf8-0xcff */
	.fill	IOBITMAP_SIZE - 0xcf8 / 8 - 1, 1, 0xff
	.byte	0xff			/* required terminator */

/* Identity map of the first 4 GiB, 2 MiB pages, user-accessible. */
	.balign	4096
	.globl	pml4
pml4:
	.quad	pdpt + PTE_TABLE
	.fill	511, 8, 0
pdpt:
	.quad	pd + PTE_TABLE
	.quad	pd + 0x1000 + PTE_TABLE
	.quad	pd + 0x2000 + PTE_TABLE
	.quad	pd + 0x3000 + PTE_TABLE
	.fill	508, 8, 0
pd:
	.set	addr, 0
	.rept	1536
	.quad	addr + PTE_2M
	.set	addr, addr + 0x200000
	.endr
	.rept	512			/* 3-4 GiB: PCI window, IOAPIC, LAPIC */
	.quad	addr + PTE_2M + PTE_PCD + PTE_PWT
	.set	addr, addr + 0x200000
	.endr

	.bss
	.balign	4096
	.globl	idt, kstacks, ustacks
idt:
	.fill	256 * 16, 1, 0
kstacks:
	.fill	MAX_CPUS * KSTACK_SIZE, 1, 0
ustacks:
	.fill	MAX_CPUS * USTACK_SIZE, 1, 0
	.globl	boot_params_ptr
boot_params_ptr:
	.quad	0
