/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest RAM: one memfd (another process can map it), mapped here and
 * registered with KVM as one slot below PV_LOWMEM_END and one above 4 GiB.
 */
#ifndef PV_MEMORY_H
#define PV_MEMORY_H

#include <stddef.h>
#include <stdint.h>

struct guest_mem {
	int fd;			/* memfd holding all of guest RAM */
	uint8_t *hva;		/* mapping of the whole memfd */
	uint64_t size;		/* bytes of RAM */
	uint64_t low_size;	/* RAM at [0, low_size) */
	uint64_t high_size;	/* RAM at [PV_HIGHMEM_ADDR, +high_size) */
};

int guest_mem_create(struct guest_mem *mem, uint64_t size);
void guest_mem_destroy(struct guest_mem *mem);
int guest_mem_register(struct guest_mem *mem, int vm_fd);

/*
 * Host pointer for [gpa, gpa + len), or NULL when any byte of it is not
 * guest RAM. Every device access to guest memory goes through this.
 */
void *guest_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Highest guest-physical address + 1 that is RAM. */
uint64_t guest_mem_end(const struct guest_mem *mem);

#endif
