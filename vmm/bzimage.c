// SPDX-License-Identifier: GPL-2.0
/*
 * bzImage loader, following Documentation/arch/x86/boot.rst ("64-bit BOOT
 * PROTOCOL"). Every field read from the file is checked before use: the file
 * is untrusted input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asm/e820.h>

#include "bzimage.h"
#include "layout.h"

#define BZ_BOOT_FLAG	0xaa55
#define BZ_MAGIC	0x53726448	/* "HdrS" */
#define BZ_TYPE_LOADER	0xff		/* undefined boot loader */
#define BZ_ACPI_RSDP_VERSION	0x020e	/* boot_params.acpi_rsdp_addr */
#define BZ_MIN_SIZE	1024		/* boot sector + one setup sector */

static int bz_fail(const char **why, const char *msg, int err)
{
	*why = msg;
	return err;
}

static int bz_check_header(const struct setup_header *hdr, const char **why)
{
	if (hdr->boot_flag != BZ_BOOT_FLAG)
		return bz_fail(why, "no boot sector signature 0xAA55: not a kernel image", -ENOEXEC);
	if (hdr->header != BZ_MAGIC)
		return bz_fail(why, "no setup header (\"HdrS\" magic): not a bzImage", -ENOEXEC);
	if (hdr->version < BZ_MIN_VERSION)
		return bz_fail(why, "boot protocol too old: the 64-bit entry needs 2.12 or later", -ENOTSUP);
	if (!(hdr->loadflags & LOADED_HIGH))
		return bz_fail(why, "zImage (not loaded high): only bzImage is supported", -ENOTSUP);
	if (!(hdr->xloadflags & XLF_KERNEL_64))
		return bz_fail(why, "kernel has no 64-bit entry point (XLF_KERNEL_64 clear)", -ENOTSUP);
	return 0;
}

static uint64_t bz_load_addr(const struct setup_header *hdr)
{
	/* 2.10+: a non-relocatable kernel moves itself to pref_address anyway */
	if (hdr->pref_address)
		return hdr->pref_address;
	return PV_KERNEL_DEFAULT_ADDR;
}

int bzimage_parse(const void *buf, size_t len, struct bzimage *bz,
		  const char **why)
{
	const uint8_t *p = buf;
	struct setup_header *hdr = &bz->hdr;
	unsigned int setup_sects;
	size_t hdr_end;
	int err;

	memset(bz, 0, sizeof(*bz));
	if (len < BZ_MIN_SIZE)
		return bz_fail(why, "file too small to be a bzImage", -ENOEXEC);

	memcpy(hdr, p + BZ_HDR_OFF, sizeof(*hdr));
	err = bz_check_header(hdr, why);
	if (err)
		return err;

	/* the header ends where the jump at 0x200 lands */
	hdr_end = 0x202 + p[0x201];
	if (hdr_end > BZ_HDR_OFF + sizeof(*hdr))
		hdr_end = BZ_HDR_OFF + sizeof(*hdr);
	if (hdr_end < BZ_HDR_OFF + offsetof(struct setup_header, cmdline_size) + 4)
		return bz_fail(why, "setup header shorter than its version claims", -ENOEXEC);

	setup_sects = hdr->setup_sects ? hdr->setup_sects : 4;
	bz->setup_size = (setup_sects + 1) * 512;
	if (bz->setup_size >= len)
		return bz_fail(why, "truncated: file ends inside the setup sectors", -ENOEXEC);
	if (hdr_end > bz->setup_size)
		return bz_fail(why, "setup header extends past the setup sectors", -ENOEXEC);
	bz->hdr_len = hdr_end - BZ_HDR_OFF;
	/* fields past the header's end are not in the file: zero them */
	memset((uint8_t *)hdr + bz->hdr_len, 0, sizeof(*hdr) - bz->hdr_len);

	bz->kernel = p + bz->setup_size;
	bz->kernel_size = len - bz->setup_size;
	if (!hdr->syssize)
		return bz_fail(why, "setup header gives no kernel size (syssize 0)", -ENOEXEC);
	if ((uint64_t)hdr->syssize * 16 > bz->kernel_size)
		return bz_fail(why, "truncated: the file is shorter than syssize says", -ENOEXEC);

	bz->load_addr = bz_load_addr(hdr);
	if (bz->load_addr < PV_KERNEL_DEFAULT_ADDR || bz->load_addr >= PV_LOWMEM_END ||
	    (hdr->relocatable_kernel && hdr->kernel_alignment &&
	     bz->load_addr % hdr->kernel_alignment))
		return bz_fail(why, "unusable load address (pref_address)", -ENOEXEC);
	bz->footprint = hdr->init_size > bz->kernel_size ? hdr->init_size :
			bz->kernel_size;
	return 0;
}

int e820_build(const struct guest_mem *mem, struct boot_e820_entry *table,
	       int max)
{
	struct boot_e820_entry ents[] = {
		{ 0, PV_EBDA_ADDR, E820_RAM },
		{ PV_EBDA_ADDR, PV_BIOS_END - PV_EBDA_ADDR, E820_RESERVED },
		{ PV_BIOS_END, mem->low_size - PV_BIOS_END, E820_RAM },
		{ PV_HIGHMEM_ADDR, mem->high_size, E820_RAM },
	};
	int i, n = 0;

	for (i = 0; i < (int)(sizeof(ents) / sizeof(ents[0])) && n < max; i++)
		if (ents[i].size)
			table[n++] = ents[i];
	return n;
}

static int bz_place_initrd(const struct guest_mem *mem,
			   const struct bzimage *bz, size_t size,
			   uint64_t *addr, const char **why)
{
	uint64_t top = mem->low_size;
	uint64_t lowest = bz->load_addr + bz->footprint;

	if ((uint64_t)bz->hdr.initrd_addr_max + 1 < top)
		top = (uint64_t)bz->hdr.initrd_addr_max + 1;
	if (size > top || ((top - size) & ~0xfffULL) < lowest)
		return bz_fail(why, "initrd does not fit between the kernel and initrd_addr_max / end of RAM",
			       -E2BIG);
	*addr = (top - size) & ~0xfffULL;
	return 0;
}

static void bz_fill_params(struct boot_params *bp, const struct bzimage *bz,
			   const struct guest_mem *mem,
			   const struct boot_info *info)
{
	memset(bp, 0, sizeof(*bp));
	memcpy(&bp->hdr, &bz->hdr, bz->hdr_len);
	bp->hdr.type_of_loader = BZ_TYPE_LOADER;
	bp->hdr.vid_mode = 0xffff;		/* "normal" */
	bp->hdr.code32_start = (uint32_t)bz->load_addr;
	bp->hdr.cmd_line_ptr = (uint32_t)PV_CMDLINE_ADDR;
	bp->ext_cmd_line_ptr = (uint32_t)(PV_CMDLINE_ADDR >> 32);
	bp->hdr.ramdisk_image = (uint32_t)info->initrd_addr;
	bp->ext_ramdisk_image = (uint32_t)(info->initrd_addr >> 32);
	bp->hdr.ramdisk_size = (uint32_t)info->initrd_size;
	bp->ext_ramdisk_size = (uint32_t)(info->initrd_size >> 32);
	bp->hdr.setup_data = 0;			/* we pass no setup_data */
	bp->e820_entries = e820_build(mem, bp->e820_table,
				      E820_MAX_ENTRIES_ZEROPAGE);
	/* where the ACPI tables are (acpi.c), for boot protocol 2.14+;
	 * older kernels find the RSDP by scanning the BIOS area */
	if (bz->hdr.version >= BZ_ACPI_RSDP_VERSION)
		bp->acpi_rsdp_addr = PV_ACPI_ADDR;
}

int bzimage_load(struct guest_mem *mem, const struct bzimage *bz,
		 const void *initrd, size_t initrd_size, const char *cmdline,
		 struct boot_info *info, const char **why)
{
	size_t cmdlen = strlen(cmdline);
	uint64_t cmdmax = bz->hdr.cmdline_size;
	void *kdst, *bp;
	int err;

	memset(info, 0, sizeof(*info));
	kdst = guest_ptr(mem, bz->load_addr, bz->footprint);
	if (!kdst || bz->load_addr + bz->footprint > mem->low_size)
		return bz_fail(why, "--memory too small for the kernel (load address + init_size)", -ENOMEM);
	if (cmdmax > PV_CMDLINE_MAX - 1)
		cmdmax = PV_CMDLINE_MAX - 1;
	if (cmdlen > cmdmax)
		return bz_fail(why, "command line longer than the kernel accepts (cmdline_size)", -E2BIG);
	if (initrd_size) {
		err = bz_place_initrd(mem, bz, initrd_size, &info->initrd_addr, why);
		if (err)
			return err;
	}

	/* the rest of init_size is left alone: fresh guest RAM reads as zero,
	 * and touching it would make it resident for nothing */
	memcpy(kdst, bz->kernel, bz->kernel_size);
	memcpy(guest_ptr(mem, PV_CMDLINE_ADDR, cmdlen + 1), cmdline, cmdlen + 1);
	if (initrd_size)
		memcpy(guest_ptr(mem, info->initrd_addr, initrd_size), initrd,
		       initrd_size);

	info->initrd_size = initrd_size;
	info->load_addr = bz->load_addr;
	info->entry = bz->load_addr + BZ_ENTRY64_OFF;
	info->boot_params = PV_BOOT_PARAMS_ADDR;
	bp = guest_ptr(mem, PV_BOOT_PARAMS_ADDR, sizeof(struct boot_params));
	bz_fill_params(bp, bz, mem, info);
	return 0;
}

int file_read_all(const char *path, size_t max, void **buf, size_t *len)
{
	struct stat st;
	size_t done = 0;
	uint8_t *p;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out_close;
	}
	err = -EINVAL;
	if (!S_ISREG(st.st_mode))
		goto out_close;
	err = -EFBIG;
	if ((uint64_t)st.st_size > max)
		goto out_close;
	err = -ENOMEM;
	p = malloc(st.st_size ? st.st_size : 1);
	if (!p)
		goto out_close;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, p + done, st.st_size - done);

		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			free(p);
			goto out_close;
		}
		done += n;
	}
	*buf = p;
	*len = done;
	err = 0;
out_close:
	close(fd);
	return err;
}
