// SPDX-License-Identifier: GPL-2.0
/*
 * Intel MultiProcessor Specification 1.4 table: find the "_MP_" floating
 * pointer where Linux looks (EBDA / last KB of base memory, BIOS ROM), check
 * both checksums and collect the CPUs and the IOAPIC.
 */
#include "guest.h"

#define MP_PROCESSOR	0
#define MP_BUS		1
#define MP_IOAPIC	2
#define MP_INTSRC	3
#define MP_LINTSRC	4
#define MP_CPU_EN	0x01
#define MP_CPU_BP	0x02

struct mp_info mp;

static const u8 *mp_scan(u64 start, u64 len)
{
	u64 a;

	for (a = start; a + 16 <= start + len; a += 16) {
		const u8 *p = (const u8 *)a;

		if (!memcmp(p, "_MP_", 4) && p[8] == 1 && !sum8(p, 16))
			return p;
	}
	return NULL;
}

static const char *mp_entries(const u8 *e, const u8 *end, u32 count)
{
	u32 i;

	for (i = 0; i < count; i++) {
		if (e >= end)
			return "entries run past the base table";
		switch (e[0]) {
		case MP_PROCESSOR:
			if (e + 20 > end)
				return "truncated processor entry";
			if (e[3] & MP_CPU_EN) {
				if (mp.ncpus >= MAX_CPUS)
					return "more CPUs than the guest supports";
				if (e[3] & MP_CPU_BP)
					mp.bsp_index = (u8)mp.ncpus;
				mp.apic_id[mp.ncpus++] = e[1];
			}
			e += 20;
			break;
		case MP_IOAPIC:
			if (e[3] & MP_CPU_EN && !mp.ioapic)
				mp.ioapic = *(const u32 *)(e + 4);
			e += 8;
			break;
		case MP_BUS:
		case MP_INTSRC:
		case MP_LINTSRC:
			e += 8;
			break;
		default:
			return "unknown entry type";
		}
	}
	return e == end ? NULL : "base table length does not match its entries";
}

static const char *mp_parse(void)
{
	const u8 *fp, *ct;
	u16 len, ext_len;

	fp = mp_scan(0x9fc00, 0x400);
	if (!fp)
		fp = mp_scan(0xf0000, 0x10000);
	if (!fp)
		return "no _MP_ floating pointer with a valid checksum";
	mp.found = true;
	mp.addr = (u64)fp;
	if (fp[9] != 1 && fp[9] != 4)
		return "floating pointer spec revision is not 1.1/1.4";
	if (fp[11])
		return "default configuration instead of a table";
	ct = (const u8 *)(u64)*(const u32 *)(fp + 4);
	if (!ct || memcmp(ct, "PCMP", 4))
		return "no PCMP configuration table";
	len = *(const u16 *)(ct + 4);
	ext_len = *(const u16 *)(ct + 40);
	if (len < 44 || sum8(ct, len))
		return "configuration table checksum is wrong";
	if ((u8)(sum8(ct + len, ext_len) + ct[42]))
		return "extended table checksum is wrong";
	mp.lapic = *(const u32 *)(ct + 36);
	return mp_entries(ct + 44, ct + len, *(const u16 *)(ct + 34));
}

void mptable_read(void)
{
	mp.error = mp_parse();
	if (!mp.error && !mp.ncpus)
		mp.error = "no enabled processor";
	if (!mp.error && mp.apic_id[mp.bsp_index] != lapic_read(LAPIC_ID) >> 24)
		mp.error = "bootstrap processor's APIC id does not match";
	if (!mp.error && mp.lapic != LAPIC_BASE)
		mp.error = "local APIC address is not 0xfee00000";
	if (!mp.error && !mp.ioapic)
		mp.error = "no enabled IOAPIC";
}
