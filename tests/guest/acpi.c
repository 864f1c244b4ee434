// SPDX-License-Identifier: GPL-2.0
/*
 * pvtest=acpi: power off the ACPI way, as an OS does on a power button
 * press. Find the RSDP as Linux does (16-byte steps over 0xe0000-0xfffff;
 * signature, both checksums; it must be where boot_params.acpi_rsdp_addr
 * says), walk XSDT -> FADT -> DSDT and MADT checking each checksum, read
 * \_S5's SLP_TYP from the DSDT's AML, check the MADT against the MP table,
 * route SCI (IOAPIC pin 9, edge here so one press is one interrupt), set
 * PWRBTN_EN, then wait for the press (the SCI's count, or PM1a_STS polled
 * now and then), clear PWRBTN_STS, and write SLP_TYP | SLP_EN.
 * Parameter `wait=S`: seconds to wait for the press (default 60, roughly:
 * counted in `pause`, never the TSC).
 */
#include "guest.h"

#define BP_ACPI_RSDP_ADDR	0x070
#define BP_VERSION		0x206

#define PM1_PWRBTN		0x0100
#define PM1_SCI_EN		0x0001
#define PM1_SLP_EN		0x2000
#define FADT_PWR_BUTTON		(1u << 4)
#define MADT_LAPIC		0
#define MADT_IOAPIC		1
#define MADT_OVERRIDE		2
#define SCI_LEVEL_HIGH		0x000d

#define IOAPIC_REGSEL		0x00
#define IOAPIC_WIN		0x10
#define IOAPIC_RTE(pin)		(0x10 + 2 * (pin))

#define POLL_EVERY		(1UL << 16)	/* pauses between port reads */
#define SPINS_PER_S		(SPIN_LIMIT / 8)

struct acpi_found {
	u64 rsdp, xsdt, fadt, dsdt, madt;
	u16 evt, cnt;
	u32 sci;
	u32 s5;
	u32 cpus;
	const char *error;
};

#define RD16(p, off)	(*(const u16 *)((const u8 *)(p) + (off)))
#define RD32(p, off)	(*(const u32 *)((const u8 *)(p) + (off)))
#define RD64(p, off)	(*(const u64 *)((const u8 *)(p) + (off)))

static u64 rsdp_scan(void)
{
	u64 a;

	for (a = 0xe0000; a < 0x100000; a += 16) {
		const u8 *p = (const u8 *)a;

		if (!memcmp(p, "RSD PTR ", 8) && !sum8(p, 20))
			return a;
	}
	return 0;
}

/* A table at @addr with signature @sig whose checksum holds, or NULL. */
static const u8 *acpi_table(u64 addr, const char *sig)
{
	const u8 *t = (const u8 *)addr;

	if (!addr || addr >= 0x100000000ULL || memcmp(t, sig, 4) ||
	    RD32(t, 4) < 36 || RD32(t, 4) > 0x10000 || sum8(t, RD32(t, 4)))
		return NULL;
	return t;
}

static const char *acpi_rsdp(struct acpi_found *f)
{
	const u8 *r;
	u64 bp_rsdp = *(const u64 *)(boot_params_ptr + BP_ACPI_RSDP_ADDR);
	u16 version = *(const u16 *)(boot_params_ptr + BP_VERSION);

	f->rsdp = rsdp_scan();
	if (!f->rsdp)
		return "no RSDP in 0xe0000-0xfffff";
	r = (const u8 *)f->rsdp;
	if (r[15] < 2 || RD32(r, 20) != 36 || sum8(r, 36))
		return "RSDP: not revision 2, or its extended checksum is wrong";
	if (version >= 0x020e && bp_rsdp != f->rsdp)
		return "boot_params.acpi_rsdp_addr is not where the RSDP is";
	f->xsdt = RD64(r, 24);
	return acpi_table(f->xsdt, "XSDT") ? NULL : "XSDT missing or bad checksum";
}

static const char *acpi_xsdt(struct acpi_found *f)
{
	const u8 *x = (const u8 *)f->xsdt;
	u32 i, n = (RD32(x, 4) - 36) / 8;

	for (i = 0; i < n; i++) {
		u64 t = RD64(x, 36 + 8 * i);

		if (acpi_table(t, "FACP"))
			f->fadt = t;
		else if (acpi_table(t, "APIC"))
			f->madt = t;
	}
	if (!f->fadt)
		return "no FADT in the XSDT (or its checksum is wrong)";
	return f->madt ? NULL : "no MADT in the XSDT (or its checksum is wrong)";
}

static const char *acpi_fadt(struct acpi_found *f)
{
	const u8 *t = (const u8 *)f->fadt;

	f->sci = RD16(t, 46);
	f->evt = (u16)RD32(t, 56);
	f->cnt = (u16)RD32(t, 64);
	if (RD32(t, 48))
		return "FADT: SMI_CMD set, ACPI would need enabling";
	if (t[88] != 4 || t[89] != 2 || !f->evt || !f->cnt)
		return "FADT: no PM1a block of 4 + 2 bytes";
	if (RD32(t, 112) & FADT_PWR_BUTTON)
		return "FADT: no fixed-feature power button";
	f->dsdt = RD32(t, 4) >= 148 && RD64(t, 140) ? RD64(t, 140) :
		  RD32(t, 40);
	return acpi_table(f->dsdt, "DSDT") ? NULL : "DSDT missing or bad checksum";
}

/* An AML integer at @p (ZeroOp, OneOp, BytePrefix); ~0 for others. */
static u32 aml_int(const u8 *p)
{
	switch (p[0]) {
	case 0x00:
		return 0;
	case 0x01:
		return 1;
	case 0x0a:
		return p[1];
	default:
		return ~0u;
	}
}

/* Name (_S5, Package () { SLP_TYPa, ... }): its first element. */
static const char *acpi_s5(struct acpi_found *f)
{
	const u8 *d = (const u8 *)f->dsdt;
	u32 len = RD32(d, 4), i;

	for (i = 36; i + 10 <= len; i++) {
		const u8 *p = d + i;

		if (memcmp(p, "_S5_", 4) || p[4] != 0x12)
			continue;
		/* PackageOp, one-byte PkgLength, NumElements */
		if (p[5] & 0xc0 || p[6] < 1)
			return "\\_S5: not a small package";
		f->s5 = aml_int(p + 7);
		return f->s5 > 7 ? "\\_S5: SLP_TYPa is not a byte constant 0-7" :
		       NULL;
	}
	return "no \\_S5 in the DSDT";
}

/* Enabled local APICs, the IOAPIC and SCI's override, as the MP table. */
static const char *acpi_madt(struct acpi_found *f)
{
	const u8 *m = (const u8 *)f->madt, *e = m + 44, *end = m + RD32(m, 4);
	bool ioapic = false, sci = false;

	for (; e + 2 <= end && e[1] >= 2 && e + e[1] <= end; e += e[1]) {
		if (e[0] == MADT_LAPIC && (RD32(e, 4) & 1))
			f->cpus++;
		else if (e[0] == MADT_IOAPIC)
			ioapic = RD32(e, 4) == mp.ioapic;
		else if (e[0] == MADT_OVERRIDE && e[3] == f->sci)
			sci = RD32(e, 4) == f->sci &&
			      RD16(e, 8) == SCI_LEVEL_HIGH;
	}
	if (f->cpus != mp.ncpus)
		return "MADT: not the MP table's CPUs";
	if (!ioapic)
		return "MADT: not the MP table's IOAPIC";
	return sci ? NULL : "MADT: no level, active-high override for SCI";
}

static const char *acpi_find(struct acpi_found *f)
{
	const char *(*const step[])(struct acpi_found *) = {
		acpi_rsdp, acpi_xsdt, acpi_fadt, acpi_s5, acpi_madt,
	};
	const char *err = NULL;

	for (u32 i = 0; i < ARRAY_SIZE(step) && !err; i++)
		err = step[i](f);
	return err;
}

/* SCI to this CPU: IOAPIC pin @pin, edge, active high, unmasked. */
static void sci_route(u32 pin)
{
	u64 io = mp.ioapic;
	u32 vec = VEC_IRQ_BASE + IRQ_SCI;

	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);	/* APIC on */
	mmio_write32(io + IOAPIC_REGSEL, IOAPIC_RTE(pin) + 1);
	mmio_write32(io + IOAPIC_WIN, (u32)mp.apic_id[mp.bsp_index] << 24);
	mmio_write32(io + IOAPIC_REGSEL, IOAPIC_RTE(pin));
	mmio_write32(io + IOAPIC_WIN, vec);
}

/* The press: SCI counted, or PWRBTN_STS seen; false at the bound. */
static bool acpi_wait(const struct acpi_found *f, u64 spins)
{
	u64 i;

	for (i = 0; i < spins; i++) {
		if (irq_counts[IRQ_SCI])
			return true;
		if (!(i % POLL_EVERY) && (inw(f->evt) & PM1_PWRBTN))
			return true;
		cpu_relax();
	}
	return false;
}

void acpi_run(void)
{
	struct acpi_found f = { 0 };
	const char *err = acpi_find(&f);
	u64 wait = cmdline_u64("wait", 60);
	u16 sts;

	if (err) {
		result("acpi", false, "%s", err);
		return;
	}
	if (!(inw(f.cnt) & PM1_SCI_EN)) {
		result("acpi", false, "SCI_EN reads 0: not in ACPI mode");
		return;
	}
	sci_route(f.sci);
	outw(PM1_PWRBTN, f.evt + 2);
	printk("PVGUEST acpi rsdp=0x%lx pm1_evt=0x%x pm1_cnt=0x%x sci=%u s5=%u cpus=%u: waiting for the power button\n",
	       (unsigned long)f.rsdp, f.evt, f.cnt, f.sci, f.s5, f.cpus);
	if (wait == ~0ULL || !acpi_wait(&f, wait * SPINS_PER_S)) {
		result("acpi", false, "no power button press");
		return;
	}
	sts = inw(f.evt);
	outw(PM1_PWRBTN, f.evt);	/* write 1 to clear */
	if (!(sts & PM1_PWRBTN) || (inw(f.evt) & PM1_PWRBTN)) {
		result("acpi", false, "PWRBTN_STS 0x%04x, not cleared by writing 1",
		       sts);
		return;
	}
	result("acpi", true, "rsdp=0x%lx s5=%u cpus=%u sci_irqs=%u: powering off",
	       (unsigned long)f.rsdp, f.s5, f.cpus, irq_counts[IRQ_SCI]);
	outw((u16)(f.s5 << 10 | PM1_SLP_EN), f.cnt);
	result("acpi", false, "still running after SLP_TYP %u | SLP_EN", f.s5);
}
