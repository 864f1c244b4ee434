/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Host-side harness: the VMM's device model without vCPUs. It creates a VM
 * (guest RAM, PCI, virtio devices, the disks' device switches and
 * drivers), runs the main loop in a thread, and plays the guest's
 * virtio-blk driver: it writes descriptors into guest RAM, notifies the
 * device through its notify path and polls the used ring. The benchmark
 * uses it; so will the transport tests where there is no guest.
 *
 * One harness per process at a time; calls from one thread.
 */
#ifndef PV_HARNESS_H
#define PV_HARNESS_H

#include <stdint.h>

#include "vm.h"

#define HARNESS_SLOTS	64		/* requests in flight per disk */
#define HARNESS_MAX_IO	(256 << 10)	/* bytes per request */

struct harness;

struct harness_done {
	int slot;
	uint8_t status;		/* VIRTIO_BLK_S_* */
	uint32_t used_len;	/* bytes written + 1 */
};

/*
 * Create the VM of @cfg (its disks; mem_size 0: what the harness needs;
 * no_vcpus is forced) and start its loop thread. -errno on failure (the
 * reason is logged), e.g. a disk that cannot be opened or attached.
 */
int harness_create(const struct vm_config *cfg, struct harness **out);
void harness_destroy(struct harness *h);

struct vm *harness_vm(struct harness *h);
/* Disk @disk's size in 512-byte sectors. */
uint64_t harness_capacity(struct harness *h, int disk);
/* Host pointer to the data buffer of @slot (HARNESS_MAX_IO bytes). */
void *harness_buf(struct harness *h, int disk, int slot);

/*
 * Queue request @type (VIRTIO_BLK_T_IN, _OUT, _FLUSH, _GET_ID) of @len
 * bytes at @sector using buffer @slot, and notify the device. -EBUSY when
 * the slot is in flight, -EINVAL for a bad argument.
 */
int harness_submit(struct harness *h, int disk, int slot, uint32_t type,
		   uint64_t sector, uint32_t len);
/* Wait up to @timeout_ms for the next completion on @disk: 0 or -ETIMEDOUT. */
int harness_wait(struct harness *h, int disk, struct harness_done *done,
		 int timeout_ms);

#endif
