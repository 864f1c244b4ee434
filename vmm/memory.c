// SPDX-License-Identifier: GPL-2.0
/*
 * Guest RAM in one memfd so another process (a driver replica, a migration
 * sender) can map the very same pages.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "layout.h"
#include "memory.h"

int guest_mem_create(struct guest_mem *mem, uint64_t size)
{
	int err;

	memset(mem, 0, sizeof(*mem));
	mem->fd = -1;
	if (size < PV_BIOS_END || size % 4096)
		return -EINVAL;

	mem->fd = memfd_create("pairvisor-guest-ram", MFD_CLOEXEC);
	if (mem->fd < 0)
		return -errno;
	if (ftruncate(mem->fd, size) < 0) {
		err = -errno;
		goto out_close;
	}
	mem->hva = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			mem->fd, 0);
	if (mem->hva == MAP_FAILED) {
		err = -errno;
		goto out_close;
	}
	madvise(mem->hva, size, MADV_MERGEABLE);
	mem->size = size;
	mem->low_size = size < PV_LOWMEM_END ? size : PV_LOWMEM_END;
	mem->high_size = size - mem->low_size;
	return 0;

out_close:
	close(mem->fd);
	mem->fd = -1;
	mem->hva = NULL;
	return err;
}

void guest_mem_destroy(struct guest_mem *mem)
{
	if (mem->hva)
		munmap(mem->hva, mem->size);
	if (mem->fd >= 0)
		close(mem->fd);
	mem->hva = NULL;
	mem->fd = -1;
}

static int guest_mem_slot(int vm_fd, uint32_t slot, uint64_t gpa,
			  uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region region = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return -errno;
	return 0;
}

int guest_mem_register(struct guest_mem *mem, int vm_fd)
{
	int err;

	err = guest_mem_slot(vm_fd, 0, 0, mem->low_size, mem->hva);
	if (err || !mem->high_size)
		return err;
	return guest_mem_slot(vm_fd, 1, PV_HIGHMEM_ADDR, mem->high_size,
			      mem->hva + mem->low_size);
}

void *guest_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t off;

	if (!mem->hva)
		return NULL;
	if (gpa < mem->low_size) {
		if (len > mem->low_size - gpa)
			return NULL;
		return mem->hva + gpa;
	}
	if (gpa < PV_HIGHMEM_ADDR)
		return NULL;
	off = gpa - PV_HIGHMEM_ADDR;
	if (off >= mem->high_size || len > mem->high_size - off)
		return NULL;
	return mem->hva + mem->low_size + off;
}

uint64_t guest_mem_end(const struct guest_mem *mem)
{
	if (mem->high_size)
		return PV_HIGHMEM_ADDR + mem->high_size;
	return mem->low_size;
}
