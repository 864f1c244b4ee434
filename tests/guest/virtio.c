// SPDX-License-Identifier: GPL-2.0
/*
 * virtio workload: drive the virtio-pci modern entropy device (1af4:1044)
 * the virtio 1.x way - capabilities, feature negotiation, one split
 * virtqueue, MSI-X - and wait for each completion's interrupt.
 */
#include "guest.h"

#define VIRTIO_VENDOR		0x1af4
#define VIRTIO_RNG_DEVICE	0x1044

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

/* struct virtio_pci_common_cfg */
#define CC_DFSELECT		0x00
#define CC_DF			0x04
#define CC_GFSELECT		0x08
#define CC_GF			0x0c
#define CC_MSIX_CONFIG		0x10
#define CC_NUM_QUEUES		0x12
#define CC_STATUS		0x14
#define CC_Q_SELECT		0x16
#define CC_Q_SIZE		0x18
#define CC_Q_MSIX		0x1a
#define CC_Q_ENABLE		0x1c
#define CC_Q_NOFF		0x1e
#define CC_Q_DESC		0x20
#define CC_Q_AVAIL		0x28
#define CC_Q_USED		0x30

#define ST_ACKNOWLEDGE		0x01
#define ST_DRIVER		0x02
#define ST_DRIVER_OK		0x04
#define ST_FEATURES_OK		0x08
#define ST_NEEDS_RESET		0x40
#define ST_FAILED		0x80
#define NO_VECTOR		0xffff
#define VRING_DESC_F_WRITE	2

#define QSIZE_MAX		16
#define ROUNDS			8
#define BUF_SIZE		64

struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags, next;
};

struct vring_avail {
	u16 flags, idx;
	u16 ring[QSIZE_MAX];
};

struct vring_used {
	u16 flags, idx;
	struct {
		u32 id, len;
	} ring[QSIZE_MAX];
};

struct vdev {
	struct pci_dev pci;
	u64 common, notify_base, isr, device;
	u32 notify_mult;
	u8 msix_cap;
	u64 msix_table;
	u16 qsize;
	u64 notify;
};

static struct vring_desc vq_desc[QSIZE_MAX] __attribute__((aligned(4096)));
static struct vring_avail vq_avail __attribute__((aligned(4096)));
static struct vring_used vq_used __attribute__((aligned(4096)));
static u8 vq_buf[ROUNDS][BUF_SIZE] __attribute__((aligned(64)));

static const char *virtio_cap_addr(struct vdev *v, u8 cap, u64 *out)
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

static const char *virtio_caps(struct vdev *v)
{
	const char *err = NULL;
	unsigned int guard;
	u8 cap, type;

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
			type = pci_read8(&v->pci, cap + 3);
			if (type == VIRTIO_CAP_COMMON && !v->common)
				err = virtio_cap_addr(v, cap, &v->common);
			else if (type == VIRTIO_CAP_NOTIFY && !v->notify_base) {
				err = virtio_cap_addr(v, cap, &v->notify_base);
				v->notify_mult = pci_read32(&v->pci, cap + 16);
			} else if (type == VIRTIO_CAP_ISR && !v->isr)
				err = virtio_cap_addr(v, cap, &v->isr);
			else if (type == VIRTIO_CAP_DEVICE && !v->device)
				err = virtio_cap_addr(v, cap, &v->device);
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
	printk("PVGUEST virtio common=0x%lx notify=0x%lx mult=%u isr=0x%lx "
	       "device=0x%lx msix_cap=0x%02x\n", (unsigned long)v->common,
	       (unsigned long)v->notify_base, v->notify_mult,
	       (unsigned long)v->isr, (unsigned long)v->device, v->msix_cap);
	return NULL;
}

static u8 vstatus(struct vdev *v)
{
	return mmio_read8(v->common + CC_STATUS);
}

static void vstatus_set(struct vdev *v, u8 bits)
{
	mmio_write8(v->common + CC_STATUS, vstatus(v) | bits);
}

static const char *virtio_reset(struct vdev *v)
{
	unsigned long i;

	mmio_write8(v->common + CC_STATUS, 0);
	for (i = 0; i < 1000000; i++)
		if (!vstatus(v))
			return NULL;
	return "device status does not read 0 after reset";
}

static const char *virtio_features(struct vdev *v)
{
	u32 lo, hi;

	vstatus_set(v, ST_ACKNOWLEDGE);
	vstatus_set(v, ST_DRIVER);
	mmio_write32(v->common + CC_DFSELECT, 0);
	lo = mmio_read32(v->common + CC_DF);
	mmio_write32(v->common + CC_DFSELECT, 1);
	hi = mmio_read32(v->common + CC_DF);
	printk("PVGUEST virtio device features=0x%08x%08x\n", hi, lo);
	if (!(hi & 1))
		return "device does not offer VIRTIO_F_VERSION_1";
	mmio_write32(v->common + CC_GFSELECT, 0);
	mmio_write32(v->common + CC_GF, 0);
	mmio_write32(v->common + CC_GFSELECT, 1);
	mmio_write32(v->common + CC_GF, 1);	/* VERSION_1 only */
	vstatus_set(v, ST_FEATURES_OK);
	if (!(vstatus(v) & ST_FEATURES_OK))
		return "device refused FEATURES_OK";
	return NULL;
}

/* MSI-X table entry 0 -> this CPU's LAPIC, vector VEC_MSIX; enable. */
static const char *virtio_msix(struct vdev *v)
{
	u32 tbl = pci_read32(&v->pci, v->msix_cap + 4);
	u16 ctrl = pci_read16(&v->pci, v->msix_cap + 2);
	u64 base = pci_bar(&v->pci, tbl & 7);
	u32 apic = lapic_read(LAPIC_ID) >> 24;

	if (!base || base >= 0x100000000ULL)
		return "MSI-X table BAR unassigned or above 4 GiB";
	v->msix_table = base + (tbl & ~7u);
	mmio_write32(v->msix_table + 0, 0xfee00000 | apic << 12);
	mmio_write32(v->msix_table + 4, 0);
	mmio_write32(v->msix_table + 8, VEC_MSIX);
	mmio_write32(v->msix_table + 12, 0);	/* unmask */
	ctrl = (ctrl | MSIX_ENABLE) & ~MSIX_MASKALL;
	pci_write16(&v->pci, v->msix_cap + 2, ctrl);
	printk("PVGUEST virtio msix table=0x%lx entries=%u apic=%u vector=0x%x\n",
	       (unsigned long)v->msix_table, (ctrl & 0x7ff) + 1, apic, VEC_MSIX);
	return NULL;
}

static void mmio_write64(u64 addr, u64 val)
{
	mmio_write32(addr, (u32)val);
	mmio_write32(addr + 4, (u32)(val >> 32));
}

static const char *virtio_queue(struct vdev *v)
{
	u16 max;

	mmio_write16(v->common + CC_MSIX_CONFIG, NO_VECTOR);
	if (!mmio_read16(v->common + CC_NUM_QUEUES))
		return "device has no queues";
	mmio_write16(v->common + CC_Q_SELECT, 0);
	max = mmio_read16(v->common + CC_Q_SIZE);
	if (!max)
		return "queue 0 is not available";
	v->qsize = max < QSIZE_MAX ? max : QSIZE_MAX;
	mmio_write16(v->common + CC_Q_SIZE, v->qsize);
	mmio_write16(v->common + CC_Q_MSIX, 0);
	if (mmio_read16(v->common + CC_Q_MSIX) != 0)
		return "device rejected MSI-X vector 0 for queue 0";
	mmio_write64(v->common + CC_Q_DESC, (u64)vq_desc);
	mmio_write64(v->common + CC_Q_AVAIL, (u64)&vq_avail);
	mmio_write64(v->common + CC_Q_USED, (u64)&vq_used);
	mmio_write16(v->common + CC_Q_ENABLE, 1);
	v->notify = v->notify_base +
		    (u64)mmio_read16(v->common + CC_Q_NOFF) * v->notify_mult;
	printk("PVGUEST virtio queue0 size=%u (max %u) notify=0x%lx\n",
	       v->qsize, max, (unsigned long)v->notify);
	return NULL;
}

static bool virtio_wait(u16 used_idx, u32 irqs)
{
	unsigned long i;

	for (i = 0; i < SPIN_LIMIT; i++) {
		if (*(volatile u16 *)&vq_used.idx == used_idx && irq_count > irqs)
			return true;
		cpu_relax();
	}
	return false;
}

/* One 64-byte device-writable buffer per round; returns bytes or error. */
static const char *virtio_rounds(struct vdev *v, u32 *bytes, char *why,
				 size_t whylen)
{
	u16 idx = 0;
	u32 r, irqs;

	*bytes = 0;
	for (r = 0; r < ROUNDS; r++) {
		u16 d = r % v->qsize;

		vq_desc[d].addr = (u64)vq_buf[r];
		vq_desc[d].len = BUF_SIZE;
		vq_desc[d].flags = VRING_DESC_F_WRITE;
		vq_desc[d].next = 0;
		vq_avail.ring[idx % v->qsize] = d;
		irqs = irq_count;
		barrier();
		*(volatile u16 *)&vq_avail.idx = ++idx;
		asm volatile("mfence" ::: "memory");
		mmio_write16(v->notify, 0);
		if (!virtio_wait(idx, irqs)) {
			snprintf(why, whylen, "request %u: used.idx=%u irqs=%u "
				 "(want %u, >%u)", r, vq_used.idx, irq_count,
				 idx, irqs);
			return why;
		}
		*bytes += vq_used.ring[(idx - 1) % v->qsize].len;
	}
	return NULL;
}

static bool buf_nonzero(void)
{
	const u8 *p = &vq_buf[0][0];
	size_t i;

	for (i = 0; i < sizeof(vq_buf); i++)
		if (p[i])
			return true;
	return false;
}

static const char *virtio_setup(struct vdev *v)
{
	const char *err;
	u16 cmd;

	cmd = pci_read16(&v->pci, PCI_COMMAND);
	pci_write16(&v->pci, PCI_COMMAND, cmd | PCI_CMD_MEM | PCI_CMD_MASTER);
	err = virtio_caps(v);
	if (!err)
		err = virtio_reset(v);
	if (!err)
		err = virtio_features(v);
	if (!err)
		err = virtio_msix(v);
	if (!err)
		err = virtio_queue(v);
	if (err)
		return err;
	vstatus_set(v, ST_DRIVER_OK);
	if (vstatus(v) & (ST_NEEDS_RESET | ST_FAILED))
		return "device status shows NEEDS_RESET/FAILED after DRIVER_OK";
	return NULL;
}

void virtio_run(void)
{
	struct vdev v = { 0 };
	char why[128];
	const char *err;
	u32 bytes, irqs0 = irq_count;

	if (!pci_find(VIRTIO_VENDOR, VIRTIO_RNG_DEVICE, &v.pci)) {
		result("virtio", false, "no virtio-rng 1af4:1044 on PCI bus 0");
		return;
	}
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
	err = virtio_setup(&v);
	if (!err)
		err = virtio_rounds(&v, &bytes, why, sizeof(why));
	if (!err && (vstatus(&v) & ST_NEEDS_RESET))
		err = "device asks for a reset";
	if (!err && !buf_nonzero())
		err = "entropy buffers are all zero";
	if (!err && irq_count == irqs0)
		err = "no MSI-X interrupt";
	if (err) {
		result("virtio", false, "%s (status=0x%02x irqs=%u)", err,
		       v.common ? vstatus(&v) : 0, irq_count - irqs0);
		return;
	}
	mmio_write8(v.common + CC_STATUS, 0);
	result("virtio", true, "irqs=%u bytes=%u", irq_count - irqs0, bytes);
}
