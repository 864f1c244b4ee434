/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ACPI tables (ACPI 6.5 chapter 5, layouts as Linux's actbl*.h): RSDP in
 * the BIOS area where an OS scans for it, RSDT and XSDT, a FADT naming the
 * PM1 block of pm.c (fixed-feature power button, SCI on IRQ 9, ACPI mode
 * already on), FACS, a DSDT holding \_S5 and the PCI host bridge, and a
 * MADT with the vCPUs' local APICs and the IOAPIC. The MP table stays.
 */
#ifndef PV_ACPI_H
#define PV_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "memory.h"

#define ACPI_RSDP_SIG		"RSD PTR "
#define ACPI_OEM_ID		"PAIRVS"
#define ACPI_OEM_TABLE_ID	"PAIRVISR"

/* The PM1 block (pm.c): ports, bits, and the S5 sleep type \_S5 names. */
#define ACPI_PM1_EVT_LEN	4	/* PM1a_STS (2 bytes), PM1a_EN (2) */
#define ACPI_PM1_CNT_LEN	2
#define ACPI_PM1_PWRBTN		0x0100	/* PWRBTN_STS / PWRBTN_EN, bit 8 */
#define ACPI_PM1_WAK		0x8000	/* WAK_STS, bit 15 */
#define ACPI_PM1_SCI_EN		0x0001	/* PM1_CNT bit 0 */
#define ACPI_PM1_SLP_TYP_SHIFT	10	/* PM1_CNT bits 10-12 */
#define ACPI_PM1_SLP_TYP_MASK	0x1c00
#define ACPI_PM1_SLP_EN		0x2000	/* PM1_CNT bit 13, write-only */
#define ACPI_S5_SLP_TYP		5	/* our choice; \_S5 says it */
#define ACPI_SCI_IRQ		9	/* ISA IRQ = GSI, level, active high */

/* FADT.flags and FADT.boot_flags (IAPC_BOOT_ARCH) bits */
#define ACPI_FADT_WBINVD	(1u << 0)
#define ACPI_FADT_C1_SUPPORTED	(1u << 2)
#define ACPI_FADT_POWER_BUTTON	(1u << 4)	/* set: no fixed power button */
#define ACPI_FADT_SLEEP_BUTTON	(1u << 5)	/* set: no fixed sleep button */
#define ACPI_FADT_LEGACY_DEVICES	(1u << 0)
#define ACPI_FADT_8042		(1u << 1)
#define ACPI_FADT_NO_VGA	(1u << 2)
#define ACPI_FADT_NO_CMOS_RTC	(1u << 5)

/* MADT entry types and flags */
#define ACPI_MADT_LAPIC		0
#define ACPI_MADT_IOAPIC	1
#define ACPI_MADT_OVERRIDE	2
#define ACPI_MADT_LAPIC_NMI	4
#define ACPI_MADT_PCAT_COMPAT	1	/* dual 8259s present */
#define ACPI_MADT_ENABLED	1
/* MPS INTI flags: polarity bits 0-1 (1 high), trigger bits 2-3 (3 level) */
#define ACPI_MADT_LEVEL_HIGH	0x000d

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum;		/* of the first 20 bytes */
	char oem_id[6];
	uint8_t revision;		/* 2: ACPI 2.0+, XSDT */
	uint32_t rsdt_address;
	uint32_t length;		/* 36 */
	uint64_t xsdt_address;
	uint8_t extended_checksum;	/* of all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

/* Generic Address Structure */
struct acpi_gas {
	uint8_t space_id;		/* 1: system I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_width;		/* 2: word */
	uint64_t address;
} __attribute__((packed));

#define ACPI_GAS_IO		1
#define ACPI_GAS_WORD		2

/* FADT revision 3 (ACPI 2.0 and later layout up to X_GPE1_BLK): 244 bytes */
struct acpi_fadt {
	struct acpi_header h;
	uint32_t facs;
	uint32_t dsdt;
	uint8_t model;
	uint8_t preferred_profile;
	uint16_t sci_interrupt;
	uint32_t smi_command;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4_bios_request;
	uint8_t pstate_control;
	uint32_t pm1a_event_block;
	uint32_t pm1b_event_block;
	uint32_t pm1a_control_block;
	uint32_t pm1b_control_block;
	uint32_t pm2_control_block;
	uint32_t pm_timer_block;
	uint32_t gpe0_block;
	uint32_t gpe1_block;
	uint8_t pm1_event_length;
	uint8_t pm1_control_length;
	uint8_t pm2_control_length;
	uint8_t pm_timer_length;
	uint8_t gpe0_block_length;
	uint8_t gpe1_block_length;
	uint8_t gpe1_base;
	uint8_t cst_control;
	uint16_t c2_latency;
	uint16_t c3_latency;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alarm;
	uint8_t month_alarm;
	uint8_t century;
	uint16_t boot_flags;
	uint8_t reserved;
	uint32_t flags;
	struct acpi_gas reset_register;
	uint8_t reset_value;
	uint8_t reserved2[3];
	uint64_t x_facs;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_event_block;
	struct acpi_gas x_pm1b_event_block;
	struct acpi_gas x_pm1a_control_block;
	struct acpi_gas x_pm1b_control_block;
	struct acpi_gas x_pm2_control_block;
	struct acpi_gas x_pm_timer_block;
	struct acpi_gas x_gpe0_block;
	struct acpi_gas x_gpe1_block;
} __attribute__((packed));

#define ACPI_FADT_REVISION	3

struct acpi_facs {
	char signature[4];
	uint32_t length;		/* 64 */
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;		/* 2 */
	uint8_t reserved[31];
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_address;
	uint32_t flags;
} __attribute__((packed));

struct acpi_madt_lapic {
	uint8_t type, length;
	uint8_t processor_id;
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));

struct acpi_madt_ioapic {
	uint8_t type, length;
	uint8_t id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct acpi_madt_override {
	uint8_t type, length;
	uint8_t bus;			/* 0: ISA */
	uint8_t source_irq;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct acpi_madt_lapic_nmi {
	uint8_t type, length;
	uint8_t processor_id;		/* 0xff: all */
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

/* Where each table lands, guest-physical; filled by acpi_build(). */
struct acpi_layout {
	uint64_t rsdp, facs, rsdt, xsdt, fadt, madt, dsdt;
	size_t size;			/* bytes from the RSDP to the end */
};

/* Bytes the tables take for @nr_cpus vCPUs. */
size_t acpi_size(int nr_cpus);

/*
 * Build the tables into @buf, which the guest sees at @gpa (16-byte
 * aligned, under 4 GiB). Returns the bytes written or -errno.
 */
int acpi_build(void *buf, size_t size, uint64_t gpa, int nr_cpus,
	       struct acpi_layout *out);

/* Build them at PV_ACPI_ADDR in guest RAM. */
int acpi_write(struct guest_mem *mem, int nr_cpus);

/* The PM1 block (pm.c): press the power button. vm->lock not held. */
struct vm;
int pm_power_button(struct vm *vm);

#endif
