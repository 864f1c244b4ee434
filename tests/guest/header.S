/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Boot sector and setup header of testguest.bzImage, laid out as
 * Documentation/arch/x86/boot.rst describes (protocol 2.15). The 16-bit code
 * never runs: the VMM enters the protected-mode kernel at its 64-bit entry
 * (+0x200). _syssize, _init_size and _kernel_info_offset come from guest.ld.
 */
#include "guest.h"

#define LOADED_HIGH	0x01
#define XLF_KERNEL_64	0x0001

	.section .setup, "a"
	.code16
	.globl	bootsect
bootsect:
	cli
1:	hlt
	jmp	1b
bootmsg:
	.ascii	"pairvisor test guest: load me with a 64-bit boot protocol loader\r\n"

	.org	0x1f1
hdr:
setup_sects:		.byte	SETUP_SECTS
root_flags:		.word	0
syssize:		.long	_syssize	/* protected-mode size / 16 */
ram_size:		.word	0
vid_mode:		.word	0xffff		/* NORMAL_VGA */
root_dev:		.word	0
boot_flag:		.word	0xaa55

	/* 0x200: the jump's target marks the end of the header */
	.byte	0xeb, start_of_setup - 1f
1:
			.ascii	"HdrS"
version:		.word	0x020f
realmode_swtch:		.long	0
start_sys_seg:		.word	0x1000
kernel_version:		.word	version_str - 0x200
type_of_loader:		.byte	0
loadflags:		.byte	LOADED_HIGH
setup_move_size:	.word	0x8000
code32_start:		.long	KERNEL_BASE
ramdisk_image:		.long	0
ramdisk_size:		.long	0
bootsect_kludge:	.long	0
heap_end_ptr:		.word	0
ext_loader_ver:		.byte	0
ext_loader_type:	.byte	0
cmd_line_ptr:		.long	0
initrd_addr_max:	.long	0x7fffffff
kernel_alignment:	.long	KERNEL_BASE
relocatable_kernel:	.byte	0
min_alignment:		.byte	20		/* log2(kernel_alignment) */
xloadflags:		.word	XLF_KERNEL_64
cmdline_size:		.long	2047		/* like Linux: COMMAND_LINE_SIZE - 1 */
hardware_subarch:	.long	0
hardware_subarch_data:	.quad	0
payload_offset:		.long	0
payload_length:		.long	0
setup_data:		.quad	0
pref_address:		.quad	KERNEL_BASE
init_size:		.long	_init_size	/* image + bss + stacks */
handover_offset:	.long	0
kernel_info_offset:	.long	_kernel_info_offset

	.org	0x26c			/* errors out if the header grew */

start_of_setup:
	cli
1:	hlt
	jmp	1b

version_str:
	.asciz	"pairvisor-testguest 1.0"

	.org	(SETUP_SECTS + 1) * 512
