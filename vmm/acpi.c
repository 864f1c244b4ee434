// SPDX-License-Identifier: GPL-2.0
/*
 * The ACPI tables, built once at boot into the BIOS area (acpi.h). An OS
 * finds the RSDP there by its signature on a 16-byte boundary (Linux's
 * acpi_find_root_pointer() scans 0xe0000-0xfffff), or through
 * boot_params.acpi_rsdp_addr (bzimage.c). Everything the guest needs to
 * power off by itself is here: the FADT names the PM1 block and SCI, the
 * DSDT holds \_S5, whose SLP_TYP the guest writes with SLP_EN.
 */
#include <errno.h>
#include <string.h>

#include "acpi.h"
#include "fwtable.h"
#include "layout.h"

#define ACPI_ALIGN(x, a)	(((x) + (a) - 1) & ~(size_t)((a) - 1))
#define ACPI_NR_TABLES		2	/* the FADT and the MADT */

_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");
_Static_assert(sizeof(struct acpi_fadt) == 244, "FADT revision 3");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS");

/*
 * The DSDT's AML, hand-assembled (ACPI 6.5 chapter 20):
 *
 *	Name (\_S5, Package (4) { 5, 5, Zero, Zero })
 *	Scope (\_SB) { Device (PCI0) { Name (_HID, EisaId ("PNP0A03")) } }
 *
 * The PCI host bridge is there because Linux, once it has ACPI, scans
 * PCI bus 0 only below an ACPI host bridge (pci_acpi_init() takes the
 * place of pci_legacy_init()): without it a guest would lose virtio-pci.
 * No _CRS: Linux then gives the root bus all of I/O and memory space,
 * as without ACPI; no _PRT: our PCI functions use MSI-X, as the MP table,
 * which has no PCI interrupt entries either, already says.
 */
static const uint8_t dsdt_aml[] = {
	0x08, '\\', '_', 'S', '5', '_',	/* NameOp, \_S5_ */
	0x12, 0x08, 0x04,		/* PackageOp, PkgLength 8, 4 elements */
	0x0a, ACPI_S5_SLP_TYP,		/* BytePrefix: SLP_TYPa */
	0x0a, ACPI_S5_SLP_TYP,		/* BytePrefix: SLP_TYPb */
	0x00, 0x00,			/* ZeroOp, ZeroOp: reserved */
	0x10, 0x18,			/* ScopeOp, PkgLength 24 */
	'\\', '_', 'S', 'B', '_',
	0x5b, 0x82, 0x10,		/* DeviceOp, PkgLength 16 */
	'P', 'C', 'I', '0',
	0x08, '_', 'H', 'I', 'D',	/* NameOp, _HID */
	0x0c, 0x41, 0xd0, 0x0a, 0x03,	/* DWordPrefix, EisaId ("PNP0A03") */
};

static size_t acpi_madt_size(int nr_cpus)
{
	return sizeof(struct acpi_madt) +
	       nr_cpus * sizeof(struct acpi_madt_lapic) +
	       sizeof(struct acpi_madt_ioapic) +
	       sizeof(struct acpi_madt_override) +
	       sizeof(struct acpi_madt_lapic_nmi);
}

/* Offsets of each table from the RSDP; the total size. */
static size_t acpi_place(int nr_cpus, struct acpi_layout *l, uint64_t gpa)
{
	size_t off = ACPI_ALIGN(sizeof(struct acpi_rsdp), 64);

	l->rsdp = gpa;
	l->facs = gpa + off;		/* 64-byte aligned */
	off += sizeof(struct acpi_facs);
	l->rsdt = gpa + off;
	off = ACPI_ALIGN(off + sizeof(struct acpi_header) +
			 ACPI_NR_TABLES * sizeof(uint32_t), 8);
	l->xsdt = gpa + off;
	off = ACPI_ALIGN(off + sizeof(struct acpi_header) +
			 ACPI_NR_TABLES * sizeof(uint64_t), 8);
	l->fadt = gpa + off;
	off = ACPI_ALIGN(off + sizeof(struct acpi_fadt), 8);
	l->madt = gpa + off;
	off = ACPI_ALIGN(off + acpi_madt_size(nr_cpus), 8);
	l->dsdt = gpa + off;
	off += sizeof(struct acpi_header) + sizeof(dsdt_aml);
	l->size = off;
	return off;
}

size_t acpi_size(int nr_cpus)
{
	struct acpi_layout l;

	return acpi_place(nr_cpus, &l, 0);
}

static void acpi_header(struct acpi_header *h, const char *sig,
			uint32_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "PVMM", 4);
	h->creator_revision = 1;
}

/* Finish a table: header (@len bytes in all) and checksum. */
static void acpi_seal(void *t, const char *sig, uint32_t len, uint8_t rev)
{
	struct acpi_header *h = t;

	acpi_header(h, sig, len, rev);
	h->checksum = fw_checksum(t, len);
}

static struct acpi_gas acpi_io(uint16_t port, uint8_t len)
{
	return (struct acpi_gas){ .space_id = ACPI_GAS_IO, .bit_width = len * 8,
				  .access_width = ACPI_GAS_WORD, .address = port };
}

static void acpi_fadt(struct acpi_fadt *f, const struct acpi_layout *l)
{
	f->facs = (uint32_t)l->facs;
	f->dsdt = (uint32_t)l->dsdt;
	f->x_facs = l->facs;
	f->x_dsdt = l->dsdt;
	f->sci_interrupt = ACPI_SCI_IRQ;
	f->smi_command = 0;		/* no SMM: in ACPI mode from the start */
	f->pm1a_event_block = PV_PORT_PM1_EVT;
	f->pm1a_control_block = PV_PORT_PM1_CNT;
	f->pm1_event_length = ACPI_PM1_EVT_LEN;
	f->pm1_control_length = ACPI_PM1_CNT_LEN;
	f->x_pm1a_event_block = acpi_io(PV_PORT_PM1_EVT, ACPI_PM1_EVT_LEN);
	f->x_pm1a_control_block = acpi_io(PV_PORT_PM1_CNT, ACPI_PM1_CNT_LEN);
	f->c2_latency = 101;		/* > 100: no C2 */
	f->c3_latency = 1001;		/* > 1000: no C3 */
	f->boot_flags = ACPI_FADT_LEGACY_DEVICES | ACPI_FADT_8042 |
			ACPI_FADT_NO_VGA | ACPI_FADT_NO_CMOS_RTC;
	/* PWR_BUTTON clear: the fixed-feature power button is there */
	f->flags = ACPI_FADT_WBINVD | ACPI_FADT_C1_SUPPORTED |
		   ACPI_FADT_SLEEP_BUTTON;
	acpi_seal(f, "FACP", sizeof(*f), ACPI_FADT_REVISION);
}

static uint8_t *acpi_put(uint8_t *p, const void *e, size_t len)
{
	memcpy(p, e, len);
	return p + len;
}

/* The same CPUs and IOAPIC (id = nr_cpus) as the MP table (mptable.c). */
static void acpi_madt(uint8_t *buf, int nr_cpus)
{
	struct acpi_madt *m = (void *)buf;
	struct acpi_madt_ioapic io = { ACPI_MADT_IOAPIC, sizeof(io),
		.id = nr_cpus, .address = PV_IOAPIC_ADDR };
	struct acpi_madt_override sci = { ACPI_MADT_OVERRIDE, sizeof(sci),
		.source_irq = ACPI_SCI_IRQ, .gsi = ACPI_SCI_IRQ,
		.flags = ACPI_MADT_LEVEL_HIGH };
	struct acpi_madt_lapic_nmi nmi = { ACPI_MADT_LAPIC_NMI, sizeof(nmi),
		.processor_id = 0xff, .lint = 1 };
	uint8_t *p = buf + sizeof(*m);
	int i;

	m->lapic_address = PV_LAPIC_ADDR;
	m->flags = ACPI_MADT_PCAT_COMPAT;
	for (i = 0; i < nr_cpus; i++) {
		struct acpi_madt_lapic c = { ACPI_MADT_LAPIC, sizeof(c),
			.processor_id = i, .apic_id = i,
			.flags = ACPI_MADT_ENABLED };

		p = acpi_put(p, &c, sizeof(c));
	}
	p = acpi_put(p, &io, sizeof(io));
	p = acpi_put(p, &sci, sizeof(sci));
	p = acpi_put(p, &nmi, sizeof(nmi));
	acpi_seal(m, "APIC", p - buf, 1);
}

/* RSDT and XSDT: the FADT and the MADT. */
static void acpi_sdts(uint8_t *base, const struct acpi_layout *l)
{
	uint8_t *rsdt = base + (l->rsdt - l->rsdp);
	uint8_t *xsdt = base + (l->xsdt - l->rsdp);
	uint64_t t[ACPI_NR_TABLES] = { l->fadt, l->madt };
	int i;

	for (i = 0; i < ACPI_NR_TABLES; i++) {
		uint32_t t32 = (uint32_t)t[i];

		memcpy(rsdt + sizeof(struct acpi_header) + 4 * i, &t32, 4);
		memcpy(xsdt + sizeof(struct acpi_header) + 8 * i, &t[i], 8);
	}
	acpi_seal(rsdt, "RSDT", sizeof(struct acpi_header) + 4 * i, 1);
	acpi_seal(xsdt, "XSDT", sizeof(struct acpi_header) + 8 * i, 1);
}

static void acpi_rsdp(struct acpi_rsdp *r, const struct acpi_layout *l)
{
	memcpy(r->signature, ACPI_RSDP_SIG, 8);
	memcpy(r->oem_id, ACPI_OEM_ID, 6);
	r->revision = 2;
	r->rsdt_address = (uint32_t)l->rsdt;
	r->length = sizeof(*r);
	r->xsdt_address = l->xsdt;
	r->checksum = fw_checksum(r, 20);
	r->extended_checksum = fw_checksum(r, sizeof(*r));
}

int acpi_build(void *buf, size_t size, uint64_t gpa, int nr_cpus,
	       struct acpi_layout *out)
{
	struct acpi_layout l;
	struct acpi_facs *facs;
	uint8_t *b = buf;
	size_t total;

	if (nr_cpus < 1 || nr_cpus > 255 || gpa % 64 ||
	    gpa > UINT32_MAX - PV_ACPI_MAX)
		return -EINVAL;
	total = acpi_place(nr_cpus, &l, gpa);
	if (size < total)
		return -ENOSPC;
	memset(buf, 0, total);

	facs = (void *)(b + (l.facs - gpa));
	memcpy(facs->signature, "FACS", 4);
	facs->length = sizeof(*facs);
	facs->version = 2;
	acpi_fadt((void *)(b + (l.fadt - gpa)), &l);
	acpi_madt(b + (l.madt - gpa), nr_cpus);
	memcpy(b + (l.dsdt - gpa) + sizeof(struct acpi_header), dsdt_aml,
	       sizeof(dsdt_aml));
	acpi_seal(b + (l.dsdt - gpa), "DSDT",
		  sizeof(struct acpi_header) + sizeof(dsdt_aml), 2);
	acpi_sdts(b, &l);
	acpi_rsdp(buf, &l);
	if (out)
		*out = l;
	return (int)total;
}

int acpi_write(struct guest_mem *mem, int nr_cpus)
{
	void *p = guest_ptr(mem, PV_ACPI_ADDR, PV_ACPI_MAX);

	if (!p)
		return -ENOMEM;
	return acpi_build(p, PV_ACPI_MAX, PV_ACPI_ADDR, nr_cpus, NULL);
}
