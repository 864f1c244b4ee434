/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The test guest's virtio-pci modern transport (vpci.c), shared by the
 * entropy (virtio.c) and block (blk.c) workloads: capabilities, reset,
 * feature negotiation, MSI-X and one split virtqueue. CPL3 only.
 */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include "guest.h"

#define VIRTIO_VENDOR		0x1af4

/* struct virtio_pci_common_cfg */
#define CC_DFSELECT		0x00
#define CC_DF			0x04
#define CC_GFSELECT		0x08
#define CC_GF			0x0c
#define CC_MSIX_CONFIG		0x10
#define CC_NUM_QUEUES		0x12
#define CC_STATUS		0x14
#define CC_CFG_GEN		0x15
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

#define VIRTIO_F_VERSION_1	(1ULL << 32)

#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2

struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags, next;
};

struct vring_used_elem {
	u32 id, len;
};

struct vdev {
	struct pci_dev pci;
	u64 common, notify_base, isr, device;
	u32 notify_mult;
	u8 msix_cap;
	u64 msix_table;
	u64 offered, features;	/* device features; negotiated ones */
	/* queue 0: filled in by the caller before vpci_setup() */
	u64 desc, avail, used;	/* ring addresses */
	u16 qmax;		/* the caller's ring capacity */
	u16 qsize;		/* what vpci_setup() chose */
	u64 notify;		/* queue 0 notify address */
};

/*
 * Bring @v up to DRIVER_OK: memory/bus master on, capabilities, reset,
 * VERSION_1 plus the offered subset of @want, MSI-X entry 0 -> IDT vector
 * VEC_IRQ_BASE + @irq_q for queue 0, entry 1 -> VEC_IRQ_BASE + @irq_cfg for
 * config changes (@irq_cfg < 0: none). NULL or why it failed.
 */
const char *vpci_setup(struct vdev *v, u64 want, int irq_q, int irq_cfg);
/* Status register: set @bits on top of what it holds; read it. */
void vpci_status_set(struct vdev *v, u8 bits);
u8 vpci_status(struct vdev *v);
/* Write 0 to the status register and wait for it to read 0. */
const char *vpci_reset(struct vdev *v);
/* Device-specific config, read with the generation check. */
u32 vpci_cfg32(struct vdev *v, u32 off);
u64 vpci_cfg64(struct vdev *v, u32 off);

/* Notify queue 0 after the avail index store. */
static inline void vpci_notify(struct vdev *v)
{
	asm volatile("mfence" ::: "memory");
	mmio_write16(v->notify, 0);
}

#endif
