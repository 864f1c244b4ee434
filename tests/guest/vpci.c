// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-pci modern transport for the test guest's workloads (virtio.h):
 * the virtio 1.x way - capabilities, feature negotiation, one split
 * virtqueue, MSI-X. Runs at CPL3 (config space through the TSS I/O bitmap,
 * BARs through U pages).
 */
#include "virtio.h"

#define PCI_COMMAND		0x04
#define PCI_STATUS		0x06
#define PCI_CAP_PTR		0x34
#define PCI_STATUS_CAP_LIST	0x10
#define PCI_CMD_MEM		0x02
#define PCI_CMD_MASTER		0x04
#define PCI_CAP_VENDOR		0x09
#define PCI_CAP_MSIX		0x11
#define MSIX_ENABLE		0x8000
#define MSIX_MASKALL		0x4000

#define VIRTIO_CAP_COMMON	1
#define VIRTIO_CAP_NOTIFY	2
#define VIRTIO_CAP_ISR		3
#define VIRTIO_CAP_DEVICE	4

static const char *vpci_cap_addr(struct vdev *v, u8 cap, u64 *out)
{
	u8 bar = pci_read8(&v->pci, cap + 4);
	u32 off = pci_read32(&v->pci, cap + 8);
	u64 base = pci_bar(&v->pci, bar);

	if (!base)
		return "capability points at an unassigned or I/O BAR";
	if (base + off >= 0x100000000ULL)
		return "BAR above 4 GiB (the guest maps only 4 GiB)";
	*out = base + off;
	return NULL;
}

static const char *vpci_vendor_cap(struct vdev *v, u8 cap)
{
	u8 type = pci_read8(&v->pci, cap + 3);

	if (type == VIRTIO_CAP_COMMON && !v->common)
		return vpci_cap_addr(v, cap, &v->common);
	if (type == VIRTIO_CAP_NOTIFY && !v->notify_base) {
		v->notify_mult = pci_read32(&v->pci, cap + 16);
		return vpci_cap_addr(v, cap, &v->notify_base);
	}
	if (type == VIRTIO_CAP_ISR && !v->isr)
		return vpci_cap_addr(v, cap, &v->isr);
	if (type == VIRTIO_CAP_DEVICE && !v->device)
		return vpci_cap_addr(v, cap, &v->device);
	return NULL;
}

static const char *vpci_caps(struct vdev *v)
{
	const char *err = NULL;
	unsigned int guard;
	u8 cap;

	if (!(pci_read16(&v->pci, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return "no PCI capability list";
	cap = pci_read8(&v->pci, PCI_CAP_PTR) & 0xfc;
	for (guard = 0; cap && guard < 48 && !err; guard++) {
		switch (pci_read8(&v->pci, cap)) {
		case PCI_CAP_MSIX:
			if (!v->msix_cap)
				v->msix_cap = cap;
			break;
		case PCI_CAP_VENDOR:
			err = vpci_vendor_cap(v, cap);
			break;
		}
		cap = pci_read8(&v->pci, cap + 1) & 0xfc;
	}
	if (err)
		return err;
	if (!v->common || !v->notify_base || !v->isr)
		return "missing common/notify/ISR virtio capability";
	if (!v->msix_cap)
		return "no MSI-X capability";
	printk("PVGUEST virtio %02x:%02x.%u common=0x%lx notify=0x%lx mult=%u "
	       "isr=0x%lx device=0x%lx msix_cap=0x%02x\n", v->pci.bus,
	       v->pci.dev, v->pci.fn, (unsigned long)v->common,
	       (unsigned long)v->notify_base, v->notify_mult,
	       (unsigned long)v->isr, (unsigned long)v->device, v->msix_cap);
	return NULL;
}

u8 vpci_status(struct vdev *v)
{
	return mmio_read8(v->common + CC_STATUS);
}

void vpci_status_set(struct vdev *v, u8 bits)
{
	mmio_write8(v->common + CC_STATUS, vpci_status(v) | bits);
}

const char *vpci_reset(struct vdev *v)
{
	unsigned long i;

	mmio_write8(v->common + CC_STATUS, 0);
	for (i = 0; i < 1000000; i++)
		if (!vpci_status(v))
			return NULL;
	return "device status does not read 0 after reset";
}

static const char *vpci_features(struct vdev *v, u64 want)
{
	u32 lo, hi;

	vpci_status_set(v, ST_ACKNOWLEDGE);
	vpci_status_set(v, ST_DRIVER);
	mmio_write32(v->common + CC_DFSELECT, 0);
	lo = mmio_read32(v->common + CC_DF);
	mmio_write32(v->common + CC_DFSELECT, 1);
	hi = mmio_read32(v->common + CC_DF);
	v->offered = (u64)hi << 32 | lo;
	printk("PVGUEST virtio device features=0x%016lx\n",
	       (unsigned long)v->offered);
	if (!(v->offered & VIRTIO_F_VERSION_1))
		return "device does not offer VIRTIO_F_VERSION_1";
	v->features = (want & v->offered) | VIRTIO_F_VERSION_1;
	mmio_write32(v->common + CC_GFSELECT, 0);
	mmio_write32(v->common + CC_GF, (u32)v->features);
	mmio_write32(v->common + CC_GFSELECT, 1);
	mmio_write32(v->common + CC_GF, (u32)(v->features >> 32));
	vpci_status_set(v, ST_FEATURES_OK);
	if (!(vpci_status(v) & ST_FEATURES_OK))
		return "device refused FEATURES_OK";
	return NULL;
}

static void vpci_msix_entry(struct vdev *v, u32 entry, u32 apic, int irq)
{
	u64 e = v->msix_table + 16 * entry;

	mmio_write32(e + 0, 0xfee00000 | apic << 12);
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, VEC_IRQ_BASE + irq);
	mmio_write32(e + 12, 0);	/* unmask */
}

/* MSI-X entries 0 (queue) and 1 (config) -> this CPU's LAPIC; enable. */
static const char *vpci_msix(struct vdev *v, int irq_q, int irq_cfg)
{
	u32 tbl = pci_read32(&v->pci, v->msix_cap + 4);
	u16 ctrl = pci_read16(&v->pci, v->msix_cap + 2);
	u64 base = pci_bar(&v->pci, tbl & 7);
	u32 apic = lapic_read(LAPIC_ID) >> 24;

	if (!base || base >= 0x100000000ULL)
		return "MSI-X table BAR unassigned or above 4 GiB";
	if (irq_cfg >= 0 && (ctrl & 0x7ff) < 1)
		return "MSI-X table has a single entry, need two";
	v->msix_table = base + (tbl & ~7u);
	vpci_msix_entry(v, 0, apic, irq_q);
	if (irq_cfg >= 0)
		vpci_msix_entry(v, 1, apic, irq_cfg);
	ctrl = (ctrl | MSIX_ENABLE) & ~MSIX_MASKALL;
	pci_write16(&v->pci, v->msix_cap + 2, ctrl);
	printk("PVGUEST virtio msix table=0x%lx entries=%u apic=%u vector=0x%x\n",
	       (unsigned long)v->msix_table, (ctrl & 0x7ff) + 1, apic,
	       VEC_IRQ_BASE + irq_q);
	return NULL;
}

static const char *vpci_queue(struct vdev *v, bool cfg_vector)
{
	u16 max;

	mmio_write16(v->common + CC_MSIX_CONFIG, cfg_vector ? 1 : NO_VECTOR);
	if (cfg_vector && mmio_read16(v->common + CC_MSIX_CONFIG) != 1)
		return "device rejected MSI-X vector 1 for config changes";
	if (!mmio_read16(v->common + CC_NUM_QUEUES))
		return "device has no queues";
	mmio_write16(v->common + CC_Q_SELECT, 0);
	max = mmio_read16(v->common + CC_Q_SIZE);
	if (!max)
		return "queue 0 is not available";
	v->qsize = max < v->qmax ? max : v->qmax;
	mmio_write16(v->common + CC_Q_SIZE, v->qsize);
	mmio_write16(v->common + CC_Q_MSIX, 0);
	if (mmio_read16(v->common + CC_Q_MSIX) != 0)
		return "device rejected MSI-X vector 0 for queue 0";
	mmio_write64(v->common + CC_Q_DESC, v->desc);
	mmio_write64(v->common + CC_Q_AVAIL, v->avail);
	mmio_write64(v->common + CC_Q_USED, v->used);
	mmio_write16(v->common + CC_Q_ENABLE, 1);
	v->notify = v->notify_base +
		    (u64)mmio_read16(v->common + CC_Q_NOFF) * v->notify_mult;
	printk("PVGUEST virtio queue0 size=%u (max %u) notify=0x%lx\n",
	       v->qsize, max, (unsigned long)v->notify);
	return NULL;
}

const char *vpci_setup(struct vdev *v, u64 want, int irq_q, int irq_cfg)
{
	const char *err = NULL;
	u16 cmd;

	cmd = pci_read16(&v->pci, PCI_COMMAND);
	pci_write16(&v->pci, PCI_COMMAND, cmd | PCI_CMD_MEM | PCI_CMD_MASTER);
	if (!v->common)
		err = vpci_caps(v);
	if (!err)
		err = vpci_reset(v);
	if (!err)
		err = vpci_features(v, want);
	if (!err)
		err = vpci_msix(v, irq_q, irq_cfg);
	if (!err)
		err = vpci_queue(v, irq_cfg >= 0);
	if (err)
		return err;
	vpci_status_set(v, ST_DRIVER_OK);
	if (vpci_status(v) & (ST_NEEDS_RESET | ST_FAILED))
		return "device status shows NEEDS_RESET/FAILED after DRIVER_OK";
	return NULL;
}

u32 vpci_cfg32(struct vdev *v, u32 off)
{
	return mmio_read32(v->device + off);
}

u64 vpci_cfg64(struct vdev *v, u32 off)
{
	u32 lo, hi;
	u8 gen;
	int tries;

	for (tries = 0; tries < 100; tries++) {
		gen = mmio_read8(v->common + CC_CFG_GEN);
		lo = mmio_read32(v->device + off);
		hi = mmio_read32(v->device + off + 4);
		if (mmio_read8(v->common + CC_CFG_GEN) == gen)
			break;
	}
	return (u64)hi << 32 | lo;
}
