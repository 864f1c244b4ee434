// SPDX-License-Identifier: GPL-2.0
/*
 * virtio workload: drive the virtio-pci modern entropy device (1af4:1044)
 * through vpci.c - one split virtqueue, MSI-X - and wait for each
 * completion's interrupt.
 */
#include "virtio.h"

#define VIRTIO_RNG_DEVICE	0x1044

#define QSIZE_MAX		16
#define ROUNDS			8
#define BUF_SIZE		64

struct vring_avail {
	u16 flags, idx;
	u16 ring[QSIZE_MAX];
};

struct vring_used {
	u16 flags, idx;
	struct vring_used_elem ring[QSIZE_MAX];
};

static struct vring_desc vq_desc[QSIZE_MAX] __attribute__((aligned(4096)));
static struct vring_avail vq_avail __attribute__((aligned(4096)));
static struct vring_used vq_used __attribute__((aligned(4096)));
static u8 vq_buf[ROUNDS][BUF_SIZE] __attribute__((aligned(64)));

static bool virtio_wait(u16 used_idx, u32 irqs)
{
	unsigned long i;

	for (i = 0; i < SPIN_LIMIT; i++) {
		if (*(volatile u16 *)&vq_used.idx == used_idx &&
		    irq_counts[IRQ_RNG] > irqs)
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
		irqs = irq_counts[IRQ_RNG];
		barrier();
		*(volatile u16 *)&vq_avail.idx = ++idx;
		vpci_notify(v);
		if (!virtio_wait(idx, irqs)) {
			snprintf(why, whylen, "request %u: used.idx=%u irqs=%u "
				 "(want %u, >%u)", r, vq_used.idx,
				 irq_counts[IRQ_RNG], idx, irqs);
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

void virtio_run(void)
{
	struct vdev v = {
		.desc = (u64)vq_desc, .avail = (u64)&vq_avail,
		.used = (u64)&vq_used, .qmax = QSIZE_MAX,
	};
	char why[128];
	const char *err;
	u32 bytes, irqs0 = irq_counts[IRQ_RNG];

	if (!pci_find(VIRTIO_VENDOR, VIRTIO_RNG_DEVICE, &v.pci)) {
		result("virtio", false, "no virtio-rng 1af4:1044 on PCI bus 0");
		return;
	}
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
	err = vpci_setup(&v, 0, IRQ_RNG, -1);
	if (!err)
		err = virtio_rounds(&v, &bytes, why, sizeof(why));
	if (!err && (vpci_status(&v) & ST_NEEDS_RESET))
		err = "device asks for a reset";
	if (!err && !buf_nonzero())
		err = "entropy buffers are all zero";
	if (!err && irq_counts[IRQ_RNG] == irqs0)
		err = "no MSI-X interrupt";
	if (err) {
		result("virtio", false, "%s (status=0x%02x irqs=%u)", err,
		       v.common ? vpci_status(&v) : 0,
		       irq_counts[IRQ_RNG] - irqs0);
		return;
	}
	mmio_write8(v.common + CC_STATUS, 0);
	result("virtio", true, "irqs=%u bytes=%u", irq_counts[IRQ_RNG] - irqs0,
	       bytes);
}
