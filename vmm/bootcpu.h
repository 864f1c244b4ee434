/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boot CPU's state at the kernel's 64-bit entry, as boot.rst requires:
 * long mode, identity-mapped page tables, __BOOT_CS = 0x10 (64-bit code),
 * __BOOT_DS = 0x18, interrupts off, %rsi = boot_params.
 */
#ifndef PV_BOOTCPU_H
#define PV_BOOTCPU_H

#include <stdint.h>

#include <linux/kvm.h>

#include "memory.h"

#define BOOT_CS		0x10
#define BOOT_DS		0x18
#define BOOT_TSS	0x20
#define BOOT_GDT_ENTRIES 6	/* null, null, code, data, 16-byte TSS */

#define GDT_CODE64	0x00af9b000000ffffULL	/* P, DPL0, code RX, L, G */
#define GDT_DATA	0x00cf93000000ffffULL	/* P, DPL0, data RW, D/B, G */
#define GDT_TSS64	0x00008b0000000067ULL	/* P, busy 64-bit TSS, base 0 */

#define X86_CR0_PE	(1ULL << 0)
#define X86_CR0_MP	(1ULL << 1)
#define X86_CR0_ET	(1ULL << 4)
#define X86_CR0_NE	(1ULL << 5)
#define X86_CR0_PG	(1ULL << 31)
#define X86_CR4_PAE	(1ULL << 5)
#define X86_EFER_LME	(1ULL << 8)
#define X86_EFER_LMA	(1ULL << 10)

#define PTE_P		(1ULL << 0)
#define PTE_RW		(1ULL << 1)
#define PTE_PS		(1ULL << 7)

/* Write the boot GDT and the identity map of the first 4 GiB. */
int bootcpu_write_tables(struct guest_mem *mem);

/* Registers for the 64-bit entry; everything else is zero. */
void bootcpu_regs(struct kvm_regs *regs, uint64_t entry, uint64_t boot_params);

/* Adjust @sregs (from KVM_GET_SREGS) for the 64-bit entry. */
void bootcpu_sregs(struct kvm_sregs *sregs);

#endif
