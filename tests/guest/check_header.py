#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check testguest.bzImage's setup header against boot.rst (protocol 2.15)."""
import struct
import sys


def main(path):
    img = open(path, "rb").read()
    u8 = lambda o: img[o]
    u16 = lambda o: struct.unpack_from("<H", img, o)[0]
    u32 = lambda o: struct.unpack_from("<I", img, o)[0]
    u64 = lambda o: struct.unpack_from("<Q", img, o)[0]
    setup_sects = u8(0x1f1)
    setup = (setup_sects + 1) * 512
    pm = len(img) - setup
    checks = [
        ("setup_sects >= 1", setup_sects >= 1),
        ("boot_flag 0xaa55", u16(0x1fe) == 0xAA55),
        ("jump at 0x200 ends at the header end 0x26c",
         u8(0x200) == 0xEB and 0x202 + u8(0x201) >= 0x26C),
        ("HdrS", img[0x202:0x206] == b"HdrS"),
        ("version 0x020f", u16(0x206) == 0x020F),
        ("loadflags LOADED_HIGH", u8(0x211) & 1),
        ("xloadflags XLF_KERNEL_64", u16(0x236) & 1),
        ("syssize", u32(0x1f4) == (pm + 15) // 16),
        ("code32_start 0x100000", u32(0x214) == 0x100000),
        ("initrd_addr_max 0x7fffffff", u32(0x22c) == 0x7FFFFFFF),
        ("kernel_alignment", u32(0x230) != 0 and 0x100000 % u32(0x230) == 0),
        ("relocatable_kernel 0", u8(0x234) == 0),
        ("cmdline_size", u32(0x238) > 0),
        ("pref_address 0x100000", u64(0x258) == 0x100000),
        ("init_size covers the image", u32(0x260) >= pm),
        ("kernel_info LToP",
         img[setup + u32(0x268):setup + u32(0x268) + 4] == b"LToP"),
        ("64-bit entry is code (not zero)", img[setup + 0x200] != 0),
    ]
    bad = [name for name, ok in checks if not ok]
    for name, ok in checks:
        print(("ok   " if ok else "FAIL ") + name)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
