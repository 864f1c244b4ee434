/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Loading a bzImage through the Linux x86 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst): check the setup header, copy the
 * protected-mode kernel to its load address, build boot_params (the "zero
 * page") with the e820 map, the command line and the initrd.
 */
#ifndef PV_BZIMAGE_H
#define PV_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <asm/bootparam.h>

#include "memory.h"

#define BZ_MIN_VERSION	0x020c	/* 2.12: xloadflags, XLF_KERNEL_64 */
#define BZ_ENTRY64_OFF	0x200	/* 64-bit entry: load address + 0x200 */
#define BZ_HDR_OFF	0x1f1

struct bzimage {
	struct setup_header hdr;	/* as found in the file */
	size_t hdr_len;			/* bytes of header present (from 0x1f1) */
	size_t setup_size;		/* boot sector + setup sectors */
	const uint8_t *kernel;		/* protected-mode kernel in the file */
	size_t kernel_size;
	uint64_t load_addr;
	uint64_t footprint;		/* max(init_size, kernel_size) */
};

struct boot_info {
	uint64_t entry;			/* 64-bit entry point */
	uint64_t boot_params;		/* guest address of the zero page */
	uint64_t load_addr;
	uint64_t initrd_addr;
	uint64_t initrd_size;
};

/*
 * Check a bzImage in memory. On error returns -errno and points @why at a
 * sentence saying what is wrong with the file.
 */
int bzimage_parse(const void *buf, size_t len, struct bzimage *bz,
		  const char **why);

/* Fill @table from the RAM layout; returns the number of entries. */
int e820_build(const struct guest_mem *mem, struct boot_e820_entry *table,
	       int max);

/*
 * Copy kernel, command line and initrd into fresh (all-zero) guest RAM and
 * build boot_params. -errno and @why on anything that does not fit.
 */
int bzimage_load(struct guest_mem *mem, const struct bzimage *bz,
		 const void *initrd, size_t initrd_size, const char *cmdline,
		 struct boot_info *info, const char **why);

/* Read a whole file (at most @max bytes) into a malloc'd buffer. */
int file_read_all(const char *path, size_t max, void **buf, size_t *len);

#endif
