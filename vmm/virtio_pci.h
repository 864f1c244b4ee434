/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Virtio devices and their PCI transport (virtio 1.x "modern" only).
 *
 * A device (virtio-rng, virtio-blk, ...) fills a struct virtio_dev_ops and
 * never sees PCI: it gets its queues in vdev->vqs, reads the negotiated
 * features in vdev->features and calls virtio_signal_vq(),
 * virtio_signal_config() and virtio_needs_reset() to talk back. The
 * transport (virtio_pci.c) implements those through vdev->trans.
 *
 * Everything runs with vm->lock held.
 */
#ifndef PV_VIRTIO_PCI_H
#define PV_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "virtqueue.h"

struct vm;
struct virtio_dev;

struct virtio_dev_ops {
	const char *name;
	uint16_t device_id;		/* VIRTIO_ID_* */
	uint16_t nr_queues;
	uint16_t queue_max_size;	/* power of two */
	uint64_t features;		/* device-specific bits offered */
	uint32_t config_size;		/* bytes of device config, may be 0 */
	/* Device config access; [off, off + len) is inside config_size. */
	void (*config_read)(struct virtio_dev *vdev, uint32_t off,
			    void *data, uint32_t len);
	void (*config_write)(struct virtio_dev *vdev, uint32_t off,
			     const void *data, uint32_t len);
	/* The driver notified queue @q (enabled, features accepted). */
	void (*queue_notify)(struct virtio_dev *vdev, uint16_t q);
	/* Device reset by the driver: drop in-flight state. */
	void (*reset)(struct virtio_dev *vdev);
};

/* What a device may ask of its transport. */
struct virtio_transport_ops {
	int (*signal_vq)(struct virtio_dev *vdev, uint16_t q);
	int (*signal_config)(struct virtio_dev *vdev);
	void (*needs_reset)(struct virtio_dev *vdev);
};

struct virtio_dev {
	struct vm *vm;
	const struct virtio_dev_ops *ops;
	const struct virtio_transport_ops *trans;
	void *priv;			/* the device's state */
	uint64_t features;		/* negotiated, valid once FEATURES_OK */
	uint8_t status;			/* VIRTIO_CONFIG_S_* */
	struct virtqueue *vqs;		/* ops->nr_queues of them */
};

/* Used buffers were pushed on queue @q: interrupt the driver if wanted. */
static inline int virtio_signal_vq(struct virtio_dev *vdev, uint16_t q)
{
	return vdev->trans->signal_vq(vdev, q);
}

/* Device config changed: bump the generation and interrupt. */
static inline int virtio_signal_config(struct virtio_dev *vdev)
{
	return vdev->trans->signal_config(vdev);
}

/* The device hit an error it cannot recover from without a reset. */
static inline void virtio_needs_reset(struct virtio_dev *vdev)
{
	vdev->trans->needs_reset(vdev);
}

/* ---- PCI transport ---- */

#define VIRTIO_PCI_VENDOR	0x1af4
#define VIRTIO_PCI_DEVICE_BASE	0x1040	/* + virtio device id */
#define VIRTIO_PCI_REVISION	1

/* Layout of BAR 0 (64-bit memory BAR), one page per structure. */
#define VPCI_BAR		0
#define VPCI_BAR_SIZE		0x8000
#define VPCI_COMMON_OFF		0x0000
#define VPCI_ISR_OFF		0x1000
#define VPCI_DEVCFG_OFF		0x2000
#define VPCI_NOTIFY_OFF		0x3000
#define VPCI_MSIX_TABLE_OFF	0x4000
#define VPCI_MSIX_PBA_OFF	0x5000
#define VPCI_REGION_SIZE	0x1000
#define VPCI_COMMON_SIZE	0x38	/* virtio 1.1 common cfg */
#define VPCI_NOTIFY_MULT	4

#define VPCI_MAX_QUEUES		64
#define VPCI_MAX_VECTORS	(VPCI_MAX_QUEUES + 1)

/*
 * Create a virtio-pci function for @ops/@priv on vm->pci; *@out is the
 * device-side handle. Call with vm->pci set (VM_DEV_PCI level).
 */
int virtio_pci_create(struct vm *vm, const struct virtio_dev_ops *ops,
		      void *priv, struct virtio_dev **out);
void virtio_pci_destroy(struct virtio_dev *vdev);

/* Set DEVICE_NEEDS_RESET and send a configuration-change interrupt. */
void virtio_pci_needs_reset(struct virtio_dev *vdev);

/* The PCI function behind @vdev (tests, diagnostics). */
struct pci_dev *virtio_pci_dev(struct virtio_dev *vdev);

#endif
