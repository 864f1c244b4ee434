// SPDX-License-Identifier: GPL-2.0
/*
 * PCI configuration mechanism #1 (ports 0xcf8/0xcfc) on bus 0. Writes are
 * done as 32-bit read-modify-write so the narrowest device model works.
 */
#include "guest.h"

#define PCI_CONF_ADDR	0xcf8
#define PCI_CONF_DATA	0xcfc
#define PCI_HEADER_TYPE	0x0e
#define PCI_BAR0	0x10

static u32 pci_addr(const struct pci_dev *d, u8 off)
{
	return 0x80000000u | (u32)d->bus << 16 | (u32)d->dev << 11 |
	       (u32)d->fn << 8 | (off & 0xfc);
}

u32 pci_read32(const struct pci_dev *d, u8 off)
{
	outl(pci_addr(d, off), PCI_CONF_ADDR);
	return inl(PCI_CONF_DATA);
}

void pci_write32(const struct pci_dev *d, u8 off, u32 v)
{
	outl(pci_addr(d, off), PCI_CONF_ADDR);
	outl(v, PCI_CONF_DATA);
}

u8 pci_read8(const struct pci_dev *d, u8 off)
{
	return (u8)(pci_read32(d, off) >> (8 * (off & 3)));
}

u16 pci_read16(const struct pci_dev *d, u8 off)
{
	return (u16)(pci_read32(d, off) >> (8 * (off & 2)));
}

void pci_write16(const struct pci_dev *d, u8 off, u16 v)
{
	unsigned int sh = 8 * (off & 2);
	u32 old = pci_read32(d, off);

	pci_write32(d, off, (old & ~(0xffffu << sh)) | (u32)v << sh);
}

/* Address of a memory BAR (64-bit BARs span two slots); 0 if unusable. */
u64 pci_bar(const struct pci_dev *d, u8 bar)
{
	u32 lo, hi = 0;

	if (bar > 5)
		return 0;
	lo = pci_read32(d, PCI_BAR0 + 4 * bar);
	if (lo & 1)
		return 0;		/* I/O BAR */
	if ((lo & 6) == 4 && bar < 5)
		hi = pci_read32(d, PCI_BAR0 + 4 * (bar + 1));
	return ((u64)hi << 32) | (lo & ~0xfu);
}

/* Print every function on bus 0; remember up to @max we look for. */
u32 pci_find_all(u16 vendor, u16 device, struct pci_dev *out, u32 max)
{
	struct pci_dev d = { 0 };
	u32 id, nfn, found = 0;

	for (d.dev = 0; d.dev < 32; d.dev++) {
		nfn = 1;
		for (d.fn = 0; d.fn < nfn; d.fn++) {
			id = pci_read32(&d, 0);
			if ((id & 0xffff) == 0xffff || !id)
				continue;
			if (!d.fn && pci_read8(&d, PCI_HEADER_TYPE) & 0x80)
				nfn = 8;
			d.vendor = id & 0xffff;
			d.device = id >> 16;
			printk("PVGUEST pci %02x:%02x.%u %04x:%04x class=%06x\n",
			       d.bus, d.dev, d.fn, d.vendor, d.device,
			       pci_read32(&d, 8) >> 8);
			if (found < max && d.vendor == vendor &&
			    d.device == device)
				out[found++] = d;
		}
	}
	return found;
}

bool pci_find(u16 vendor, u16 device, struct pci_dev *out)
{
	return pci_find_all(vendor, device, out, 1) == 1;
}
