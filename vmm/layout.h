/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest-physical memory map of a pairvisor guest. One place for every fixed
 * address so the loader, the MP table, the e820 map and the tests agree.
 */
#ifndef PV_LAYOUT_H
#define PV_LAYOUT_H

#define PV_GDT_ADDR		0x500ULL	/* boot GDT (boot.rst __BOOT_CS/DS) */
#define PV_BOOT_PARAMS_ADDR	0x7000ULL	/* struct boot_params, "zero page" */
#define PV_BOOT_STACK_ADDR	0x8ff0ULL	/* initial %rsp (unused by Linux) */
#define PV_PML4_ADDR		0x9000ULL
#define PV_PDPT_ADDR		0xa000ULL
#define PV_PD_ADDR		0xb000ULL	/* 4 pages: 4 GiB with 2 MiB pages */
#define PV_PD_PAGES		4
#define PV_CMDLINE_ADDR		0x20000ULL
#define PV_CMDLINE_MAX		4096ULL		/* including the NUL */

#define PV_EBDA_ADDR		0x9fc00ULL	/* MP floating pointer lives here */
#define PV_MPTABLE_ADDR		PV_EBDA_ADDR
#define PV_ACPI_ADDR		0xe0000ULL	/* RSDP, then the ACPI tables */
#define PV_ACPI_MAX		0x10000ULL	/* ... inside the BIOS area */
#define PV_BIOS_END		0x100000ULL	/* [EBDA, 1 MiB) is reserved */
#define PV_KERNEL_DEFAULT_ADDR	0x100000ULL	/* bzImage, no pref_address */

#define PV_LOWMEM_END		0xc0000000ULL	/* RAM below 4 GiB ends here */
#define PV_PCI_MMIO_ADDR	0xc0000000ULL	/* 32-bit BAR window */
#define PV_PCI_MMIO_SIZE	0x3ec00000ULL	/* up to the IOAPIC */
#define PV_IOAPIC_ADDR		0xfec00000ULL
#define PV_LAPIC_ADDR		0xfee00000ULL
#define PV_KVM_TSS_ADDR		0xfffbd000ULL
#define PV_HIGHMEM_ADDR		0x100000000ULL	/* RAM above PV_LOWMEM_END */

/* I/O ports */
#define PV_PORT_I8042_CMD	0x64
#define PV_PORT_POST		0x80
#define PV_PORT_TESTEXIT	0x501	/* write v: the VMM exits with status v */
#define PV_PORT_PM1_EVT		0x600	/* ACPI PM1a_STS, PM1a_EN (pm.c) */
#define PV_PORT_PM1_CNT		0x604	/* ACPI PM1a_CNT */
#define PV_PORT_PCI_CONF_ADDR	0xcf8
#define PV_PORT_PCI_CONF_DATA	0xcfc
#define PV_PORT_COM1		0x3f8
#define PV_IRQ_COM1		4

#endif
