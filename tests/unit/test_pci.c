// SPDX-License-Identifier: GPL-2.0
/*
 * PCI host bridge and configuration space, through the guest's view:
 * mechanism #1 port accesses dispatched by vm_pio(), BARs by vm_mmio().
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cunit_main.h"
#include "layout.h"
#include "pci.h"
#include "vm.h"

static struct vm vm;
static const struct vm_config cfg = {
	.mem_size = 16 << 20,
	.no_vcpus = true,
};

/* A test function with a 32-bit BAR 2 of 4 KiB. */
static struct pci_dev tdev;
static int tdev_hits;
static uint64_t tdev_last_off;
static int tdev_remaps;
static uint64_t tdev_remap_old;

static int tdev_bar(struct pci_dev *pdev, int bar, uint64_t off, void *data,
		    uint32_t len, bool is_write)
{
	(void)pdev;
	(void)is_write;
	if (bar != 2)
		return -EINVAL;
	tdev_hits++;
	tdev_last_off = off;
	if (!is_write)
		memset(data, 0xab, len);
	return 0;
}

static void tdev_remap(struct pci_dev *pdev, int bar, bool old_mapped,
		       uint64_t old_addr)
{
	(void)pdev;
	(void)bar;
	tdev_remaps++;
	tdev_remap_old = old_mapped ? old_addr : 0;
}

static const struct pci_dev_ops tdev_ops = {
	.bar_access = tdev_bar,
	.bar_remap = tdev_remap,
};

static int setup(void)
{
	int fd = open("/dev/null", O_RDONLY);

	/* keep the UART away from the terminal */
	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
		return -1;
	close(fd);
	if (vm_create(&vm, &cfg) || vm_devices_init(&vm) || !vm.pci)
		return -1;
	pci_dev_init(&tdev, 0x1234, 0x5678, 0x0b4000, 7, 0x1111, 0x2222);
	tdev.ops = &tdev_ops;
	if (pci_dev_add_bar(&tdev, 2, 0x1000, false))
		return -1;
	return pci_dev_register(vm.pci, &tdev) ? -1 : 0;
}

static int teardown(void)
{
	pci_dev_unregister(vm.pci, &tdev);
	vm_devices_exit(&vm);
	vm_destroy(&vm);
	return 0;
}

static uint32_t conf_addr(int bus, int slot, int fn, int reg)
{
	return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cfg_rd(int bus, int slot, int fn, int reg, int len)
{
	uint32_t a = conf_addr(bus, slot, fn, reg), v = 0;

	vm_pio(&vm, PV_PORT_PCI_CONF_ADDR, &a, 4, true);
	vm_pio(&vm, PV_PORT_PCI_CONF_DATA + (reg & 3), &v, len, false);
	return v;
}

static void cfg_wr(int bus, int slot, int fn, int reg, int len, uint32_t v)
{
	uint32_t a = conf_addr(bus, slot, fn, reg);

	vm_pio(&vm, PV_PORT_PCI_CONF_ADDR, &a, 4, true);
	vm_pio(&vm, PV_PORT_PCI_CONF_DATA + (reg & 3), &v, len, true);
}

static uint32_t rd(int slot, int reg, int len)
{
	return cfg_rd(0, slot, 0, reg, len);
}

static void wr(int slot, int reg, int len, uint32_t v)
{
	cfg_wr(0, slot, 0, reg, len, v);
}

static void test_host_bridge(void)
{
	CU_ASSERT_EQUAL(rd(0, PCI_VENDOR_ID, 2), 0x8086);
	CU_ASSERT_EQUAL(rd(0, PCI_DEVICE_ID, 2), 0x0d57);
	CU_ASSERT_EQUAL(rd(0, PCI_CLASS_REVISION, 4) >> 8, 0x060000);
	CU_ASSERT_EQUAL(rd(0, PCI_HEADER_TYPE, 1), 0);
	CU_ASSERT_EQUAL(rd(0, PCI_BASE_ADDRESS_0, 4), 0);
}

static void test_conf_addr_register(void)
{
	uint32_t a = 0x80000000u, v = 0;
	uint8_t b = 0x01;

	vm_pio(&vm, PV_PORT_PCI_CONF_ADDR, &a, 4, true);
	/* Linux's pci_check_type1 pokes 0xcfb first, then reads 0xcf8 back */
	vm_pio(&vm, PV_PORT_PCI_CONF_DATA + 3, &b, 1, true);
	vm_pio(&vm, PV_PORT_PCI_CONF_ADDR, &v, 4, false);
	CU_ASSERT_EQUAL(v, 0x80000000u);
	a = 0x80001803u;	/* low two bits are reserved */
	vm_pio(&vm, PV_PORT_PCI_CONF_ADDR, &a, 4, true);
	vm_pio(&vm, PV_PORT_PCI_CONF_ADDR, &v, 4, false);
	CU_ASSERT_EQUAL(v, 0x80001800u);
}

static void test_absent(void)
{
	uint32_t a = 0x00000000u, v = 0;

	CU_ASSERT_EQUAL(rd(31, 0, 4), 0xffffffffu);
	CU_ASSERT_EQUAL(rd(31, PCI_CLASS_REVISION, 2), 0xffff);
	CU_ASSERT_EQUAL(cfg_rd(1, 0, 0, 0, 4), 0xffffffffu);	/* bus 1 */
	CU_ASSERT_EQUAL(cfg_rd(0, 0, 1, 0, 4), 0xffffffffu);	/* fn 1 */
	CU_ASSERT_EQUAL(cfg_rd(0, tdev.slot, 3, 0, 2), 0xffff);
	/* enable bit clear: no configuration cycle */
	vm_pio(&vm, PV_PORT_PCI_CONF_ADDR, &a, 4, true);
	vm_pio(&vm, PV_PORT_PCI_CONF_DATA, &v, 4, false);
	CU_ASSERT_EQUAL(v, 0xffffffffu);
	/* writes to nothing are harmless */
	wr(31, PCI_COMMAND, 2, 0xffff);
	CU_ASSERT_EQUAL(rd(31, PCI_COMMAND, 2), 0xffff);
}

static void test_header_and_ro_bits(void)
{
	int s = tdev.slot;

	CU_ASSERT_EQUAL(rd(s, PCI_VENDOR_ID, 4), 0x56781234u);
	CU_ASSERT_EQUAL(rd(s, PCI_CLASS_REVISION, 4), 0x0b400007u);
	CU_ASSERT_EQUAL(rd(s, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x22221111u);
	wr(s, PCI_VENDOR_ID, 4, 0);
	wr(s, PCI_CLASS_REVISION, 4, 0x12345678);
	wr(s, PCI_HEADER_TYPE, 1, 0x80);
	wr(s, PCI_STATUS, 2, 0xffff);
	CU_ASSERT_EQUAL(rd(s, PCI_VENDOR_ID, 4), 0x56781234u);
	CU_ASSERT_EQUAL(rd(s, PCI_CLASS_REVISION, 4), 0x0b400007u);
	CU_ASSERT_EQUAL(rd(s, PCI_HEADER_TYPE, 1), 0);
	CU_ASSERT_EQUAL(rd(s, PCI_STATUS, 2), 0);
	/* command: memory, bus master and INTx disable only (no I/O BARs) */
	wr(s, PCI_COMMAND, 2, 0xffff);
	CU_ASSERT_EQUAL(rd(s, PCI_COMMAND, 2), PCI_COMMAND_MEMORY |
			PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	wr(s, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	/* writable scratch-like bytes */
	wr(s, PCI_INTERRUPT_LINE, 1, 0x0b);
	CU_ASSERT_EQUAL(rd(s, PCI_INTERRUPT_LINE, 1), 0x0b);
	CU_ASSERT_EQUAL(rd(s, PCI_INTERRUPT_PIN, 1), 0);
	/* no expansion ROM: sizing gives 0 */
	wr(s, PCI_ROM_ADDRESS, 4, 0xffffffff);
	CU_ASSERT_EQUAL(rd(s, PCI_ROM_ADDRESS, 4), 0);
}

static void test_sub_dword(void)
{
	int s = tdev.slot;

	/* 0xcfc + n reaches byte n of the dword the address selects */
	CU_ASSERT_EQUAL(cfg_rd(0, s, 0, PCI_VENDOR_ID + 1, 1), 0x12);
	CU_ASSERT_EQUAL(cfg_rd(0, s, 0, PCI_DEVICE_ID, 2), 0x5678);
	CU_ASSERT_EQUAL(cfg_rd(0, s, 0, PCI_DEVICE_ID + 1, 1), 0x56);
	CU_ASSERT_EQUAL(cfg_rd(0, s, 0, PCI_CLASS_DEVICE + 1, 1), 0x0b);
	CU_ASSERT_EQUAL(cfg_rd(0, s, 0, 1, 2), 0x7812);	/* unaligned word */
	/* a byte write changes that byte only */
	wr(s, PCI_CACHE_LINE_SIZE, 4, 0);
	wr(s, PCI_LATENCY_TIMER, 1, 0x40);
	CU_ASSERT_EQUAL(rd(s, PCI_CACHE_LINE_SIZE, 4), 0x00004000u);
	wr(s, PCI_CACHE_LINE_SIZE, 1, 0x10);
	CU_ASSERT_EQUAL(rd(s, PCI_CACHE_LINE_SIZE, 4), 0x00004010u);
}

static void test_bar32_sizing(void)
{
	int s = tdev.slot;
	uint32_t orig = rd(s, PCI_BASE_ADDRESS_2, 4);

	CU_ASSERT_EQUAL(orig & 0xf, 0);	/* memory, 32-bit, non-prefetch */
	CU_ASSERT_EQUAL(orig & 0xfff, 0);	/* naturally aligned */
	CU_ASSERT(orig >= PV_PCI_MMIO_ADDR &&
		  orig + 0x1000 <= PV_PCI_MMIO_ADDR + PV_PCI_MMIO_SIZE);
	wr(s, PCI_COMMAND, 2, 0);
	wr(s, PCI_BASE_ADDRESS_2, 4, 0xffffffff);
	CU_ASSERT_EQUAL(rd(s, PCI_BASE_ADDRESS_2, 4), 0xfffff000u);
	wr(s, PCI_BASE_ADDRESS_2, 4, orig);
	CU_ASSERT_EQUAL(rd(s, PCI_BASE_ADDRESS_2, 4), orig);
	/* unimplemented BARs read 0 even after all-ones */
	wr(s, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	CU_ASSERT_EQUAL(rd(s, PCI_BASE_ADDRESS_0, 4), 0);
	wr(s, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
}

static void test_bar64_sizing(void)
{
	/* the virtio-rng function: 64-bit BAR 0 of 32 KiB */
	int s = -1;

	for (int i = 1; i < 32; i++)
		if (rd(i, PCI_VENDOR_ID, 2) == 0x1af4)
			s = i;
	CU_ASSERT_FATAL(s > 0);
	uint32_t lo = rd(s, PCI_BASE_ADDRESS_0, 4);
	uint32_t hi = rd(s, PCI_BASE_ADDRESS_1, 4);

	CU_ASSERT_EQUAL(lo & 0xf, PCI_BASE_ADDRESS_MEM_TYPE_64);
	CU_ASSERT_EQUAL(lo & 0x7ff0, 0);
	CU_ASSERT_EQUAL(hi, 0);		/* placed below 4 GiB */
	wr(s, PCI_COMMAND, 2, 0);
	wr(s, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	wr(s, PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	CU_ASSERT_EQUAL(rd(s, PCI_BASE_ADDRESS_0, 4),
			0xffff8000u | PCI_BASE_ADDRESS_MEM_TYPE_64);
	CU_ASSERT_EQUAL(rd(s, PCI_BASE_ADDRESS_1, 4), 0xffffffffu);
	wr(s, PCI_BASE_ADDRESS_0, 4, lo);
	wr(s, PCI_BASE_ADDRESS_1, 4, hi);
	CU_ASSERT_EQUAL(rd(s, PCI_BASE_ADDRESS_0, 4), lo);
	CU_ASSERT_EQUAL(rd(s, PCI_BASE_ADDRESS_1, 4), hi);
	wr(s, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);

	/* sized with decoding on: never decoded up there, back afterwards */
	uint64_t before = vm.stats.mmio_unhandled;
	uint16_t nq = 0;

	wr(s, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	wr(s, PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	vm_mmio(&vm, 0xffffffffffff8000ULL + 0x12, &nq, 2, false);
	vm_mmio(&vm, (lo & ~0xfULL) + 0x12, &nq, 2, false);
	CU_ASSERT_EQUAL(vm.stats.mmio_unhandled, before + 2);
	wr(s, PCI_BASE_ADDRESS_0, 4, lo);
	wr(s, PCI_BASE_ADDRESS_1, 4, hi);
	vm_mmio(&vm, (lo & ~0xfULL) + 0x12, &nq, 2, false);
	CU_ASSERT_EQUAL(nq, 1);		/* virtio num_queues */
}

static bool tdev_reaches(uint64_t addr)
{
	uint32_t v = 0;
	int before = tdev_hits;

	vm_mmio(&vm, addr + 0x10, &v, 4, false);
	return tdev_hits == before + 1 && v == 0xabababab &&
	       tdev_last_off == 0x10;
}

static void test_bar_move_and_gating(void)
{
	int s = tdev.slot;
	uint64_t orig = rd(s, PCI_BASE_ADDRESS_2, 4);
	uint64_t moved = PV_PCI_MMIO_ADDR + 0x10000000;

	wr(s, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	CU_ASSERT_TRUE(tdev_reaches(orig));
	/* memory space off: not decoded */
	tdev_remaps = 0;
	wr(s, PCI_COMMAND, 2, 0);
	CU_ASSERT_FALSE(tdev_reaches(orig));
	CU_ASSERT_EQUAL(tdev_remaps, 1);
	CU_ASSERT_EQUAL(tdev_remap_old, orig);
	/* moved while off, then on: only the new address decodes */
	wr(s, PCI_BASE_ADDRESS_2, 4, moved);
	CU_ASSERT_FALSE(tdev_reaches(moved));
	wr(s, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	CU_ASSERT_TRUE(tdev_reaches(moved));
	CU_ASSERT_FALSE(tdev_reaches(orig));
	/* moved while on */
	tdev_remaps = 0;
	wr(s, PCI_BASE_ADDRESS_2, 4, orig);
	CU_ASSERT_EQUAL(tdev_remaps, 1);
	CU_ASSERT_EQUAL(tdev_remap_old, moved);
	CU_ASSERT_TRUE(tdev_reaches(orig));
	CU_ASSERT_FALSE(tdev_reaches(moved));
	CU_ASSERT_TRUE(tdev.bars[2].mapped);
	CU_ASSERT_EQUAL(tdev.bars[2].mapped_addr, orig);
}

static void test_capabilities(void)
{
	struct pci_dev d;
	int a, b;

	pci_dev_init(&d, 1, 2, 0, 0, 0, 0);
	CU_ASSERT_EQUAL(d.cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST, 0);
	a = pci_cap_add(&d, PCI_CAP_ID_VNDR, 10);
	b = pci_cap_add(&d, PCI_CAP_ID_MSIX, 12);
	CU_ASSERT(a >= 0x40 && a % 4 == 0);
	CU_ASSERT(b >= a + 10 && b % 4 == 0);
	CU_ASSERT_EQUAL(d.cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST,
			PCI_STATUS_CAP_LIST);
	CU_ASSERT_EQUAL(d.cfg[PCI_CAPABILITY_LIST], a);
	CU_ASSERT_EQUAL(d.cfg[a], PCI_CAP_ID_VNDR);
	CU_ASSERT_EQUAL(d.cfg[a + 1], b);
	CU_ASSERT_EQUAL(d.cfg[b], PCI_CAP_ID_MSIX);
	CU_ASSERT_EQUAL(d.cfg[b + 1], 0);
	CU_ASSERT_EQUAL(pci_cap_add(&d, 9, 200), -ENOSPC);
	/* the list is read-only to the guest */
	pci_cfg_write(&d, PCI_CAPABILITY_LIST, 1, 0);
	CU_ASSERT_EQUAL(pci_cfg_read(&d, PCI_CAPABILITY_LIST, 1), (uint32_t)a);
	/* BAR arguments */
	CU_ASSERT_EQUAL(pci_dev_add_bar(&d, 0, 0x3000, false), -EINVAL);
	CU_ASSERT_EQUAL(pci_dev_add_bar(&d, 5, 0x1000, true), -EINVAL);
	CU_ASSERT_EQUAL(pci_dev_add_bar(&d, 0, 0x1000, true), 0);
	CU_ASSERT_EQUAL(pci_dev_add_bar(&d, 1, 0x1000, false), -EBUSY);
}

static CU_TestInfo tests[] = {
	{ "host bridge 00:00.0", test_host_bridge },
	{ "CONFIG_ADDRESS register", test_conf_addr_register },
	{ "absent functions read all-ones", test_absent },
	{ "header, read-only bits", test_header_and_ro_bits },
	{ "byte/word access via 0xcfc+n", test_sub_dword },
	{ "32-bit BAR sizing", test_bar32_sizing },
	{ "64-bit BAR sizing", test_bar64_sizing },
	{ "BAR move, memory-space gating", test_bar_move_and_gating },
	{ "capability list builder", test_capabilities },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "pci", setup, teardown, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
