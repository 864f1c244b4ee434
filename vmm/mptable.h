/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Intel MultiProcessor Specification 1.4 table: the CPUs, one ISA bus, the
 * IOAPIC and the interrupt routing, so SMP Linux works without ACPI.
 */
#ifndef PV_MPTABLE_H
#define PV_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "memory.h"

#define MP_SIG_FLOAT	"_MP_"
#define MP_SIG_CONFIG	"PCMP"
#define MP_SPEC_REV	4		/* 1.4 */
#define MP_APIC_VER	0x14
#define MP_IOAPIC_VER	0x11
#define MP_IRQ_PINS	24
#define MP_MAX_CPUS	254

enum mp_entry_type {
	MP_PROCESSOR = 0,
	MP_BUS = 1,
	MP_IOAPIC = 2,
	MP_IOINTR = 3,
	MP_LINTR = 4,
};

#define MP_CPU_EN	0x01
#define MP_CPU_BP	0x02
#define MP_INT		0
#define MP_NMI		1
#define MP_EXTINT	3

struct mp_float {
	char signature[4];
	uint32_t physptr;
	uint8_t length;			/* in 16-byte units */
	uint8_t spec_rev;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mp_config {
	char signature[4];
	uint16_t length;
	uint8_t spec_rev;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oem_ptr;
	uint16_t oem_size;
	uint16_t count;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mp_cpu {
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_ver;
	uint8_t flags;
	uint32_t signature;
	uint32_t features;
	uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {
	uint8_t type;
	uint8_t bus_id;
	char bus_type[6];
} __attribute__((packed));

struct mp_ioapic {
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_ver;
	uint8_t flags;
	uint32_t addr;
} __attribute__((packed));

struct mp_intr {
	uint8_t type;			/* MP_IOINTR or MP_LINTR */
	uint8_t irq_type;
	uint16_t irq_flags;
	uint8_t src_bus;
	uint8_t src_irq;
	uint8_t dst_apic;
	uint8_t dst_pin;
} __attribute__((packed));

/* Size of the table (floating pointer + config table) for @nr_cpus. */
size_t mptable_size(int nr_cpus);

/*
 * Build the table into @buf, which the guest will see at @gpa.
 * Returns the bytes written or -errno.
 */
int mptable_build(void *buf, size_t size, uint32_t gpa, int nr_cpus);

/* Build it at PV_MPTABLE_ADDR in guest RAM. */
int mptable_write(struct guest_mem *mem, int nr_cpus);

#endif
