// SPDX-License-Identifier: GPL-2.0
/*
 * MP table in the reserved area at the top of base memory, where Linux's
 * smp_scan_config() looks ("the last KB of base memory").
 */
#include <errno.h>
#include <string.h>

#include "fwtable.h"
#include "layout.h"
#include "mptable.h"

#define MP_CPU_SIGNATURE	0x600		/* family 6 */
#define MP_CPU_FEATURES		0x201		/* FPU | APIC */
#define MP_BUS_ISA		0

size_t mptable_size(int nr_cpus)
{
	return sizeof(struct mp_float) + sizeof(struct mp_config) +
	       nr_cpus * sizeof(struct mp_cpu) + sizeof(struct mp_bus) +
	       sizeof(struct mp_ioapic) +
	       (MP_IRQ_PINS + 2) * sizeof(struct mp_intr);
}

static uint8_t *mp_add_cpus(uint8_t *p, int nr_cpus)
{
	int i;

	for (i = 0; i < nr_cpus; i++) {
		struct mp_cpu cpu = {
			.type = MP_PROCESSOR,
			.apic_id = i,
			.apic_ver = MP_APIC_VER,
			.flags = MP_CPU_EN | (i == 0 ? MP_CPU_BP : 0),
			.signature = MP_CPU_SIGNATURE,
			.features = MP_CPU_FEATURES,
		};

		memcpy(p, &cpu, sizeof(cpu));
		p += sizeof(cpu);
	}
	return p;
}

static uint8_t *mp_add_intr(uint8_t *p, uint8_t type, uint8_t irq_type,
			    uint8_t src_irq, uint8_t dst_apic, uint8_t dst_pin)
{
	struct mp_intr in = {
		.type = type,
		.irq_type = irq_type,
		.irq_flags = 0,		/* conforms to the bus */
		.src_bus = MP_BUS_ISA,
		.src_irq = src_irq,
		.dst_apic = dst_apic,
		.dst_pin = dst_pin,
	};

	memcpy(p, &in, sizeof(in));
	return p + sizeof(in);
}

static uint8_t *mp_add_platform(uint8_t *p, uint8_t ioapic_id)
{
	struct mp_bus bus = { .type = MP_BUS, .bus_id = MP_BUS_ISA };
	struct mp_ioapic io = {
		.type = MP_IOAPIC,
		.apic_id = ioapic_id,
		.apic_ver = MP_IOAPIC_VER,
		.flags = MP_CPU_EN,
		.addr = PV_IOAPIC_ADDR,
	};
	int i;

	memcpy(bus.bus_type, "ISA   ", 6);
	memcpy(p, &bus, sizeof(bus));
	p += sizeof(bus);
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	/* the same identity routing as the irqchip's GSI table (irq.c) */
	for (i = 0; i < MP_IRQ_PINS; i++)
		p = mp_add_intr(p, MP_IOINTR, MP_INT, i, ioapic_id, i);
	p = mp_add_intr(p, MP_LINTR, MP_EXTINT, 0, 0xff, 0);
	return mp_add_intr(p, MP_LINTR, MP_NMI, 0, 0xff, 1);
}

int mptable_build(void *buf, size_t size, uint32_t gpa, int nr_cpus)
{
	struct mp_float *mpf = buf;
	struct mp_config *mpc = (void *)(mpf + 1);
	uint8_t *p = (uint8_t *)(mpc + 1);
	size_t total = mptable_size(nr_cpus);

	if (nr_cpus < 1 || nr_cpus > MP_MAX_CPUS)
		return -EINVAL;
	if (size < total)
		return -ENOSPC;
	memset(buf, 0, total);

	p = mp_add_cpus(p, nr_cpus);
	p = mp_add_platform(p, nr_cpus);

	memcpy(mpc->signature, MP_SIG_CONFIG, 4);
	mpc->length = p - (uint8_t *)mpc;
	mpc->spec_rev = MP_SPEC_REV;
	memcpy(mpc->oem, "PAIRVISR", 8);
	memcpy(mpc->product, "PAIRVISOR   ", 12);
	mpc->count = nr_cpus + 2 + MP_IRQ_PINS + 2;
	mpc->lapic = PV_LAPIC_ADDR;
	mpc->checksum = fw_checksum(mpc, mpc->length);

	memcpy(mpf->signature, MP_SIG_FLOAT, 4);
	mpf->physptr = gpa + sizeof(*mpf);
	mpf->length = 1;
	mpf->spec_rev = MP_SPEC_REV;
	mpf->checksum = fw_checksum(mpf, sizeof(*mpf));
	return total;
}

int mptable_write(struct guest_mem *mem, int nr_cpus)
{
	size_t size = PV_BIOS_END - PV_MPTABLE_ADDR;
	void *p = guest_ptr(mem, PV_MPTABLE_ADDR, size);

	if (!p)
		return -ENOMEM;
	if (mptable_size(nr_cpus) > 1024)	/* must stay in the EBDA's KiB */
		return -E2BIG;
	return mptable_build(p, size, PV_MPTABLE_ADDR, nr_cpus);
}
