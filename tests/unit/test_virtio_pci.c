// SPDX-License-Identifier: GPL-2.0
/*
 * The virtio-pci modern transport, driven like a guest driver would: the
 * capability list against the virtio 1.x rules (4.1.4), MSI-X table/PBA
 * placement, feature negotiation including FEATURES_OK refusal, a queue
 * served by virtio-rng with MSI-X delivery and masking, DEVICE_NEEDS_RESET
 * on a bad chain, reset, ioeventfds following a BAR move.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include "cunit_main.h"
#include "layout.h"
#include "vm.h"

#define RAM		(16 << 20)
#define QSZ		16
#define DESC_GPA	0x100000
#define AVAIL_GPA	0x101000
#define USED_GPA	0x102000
#define BUF_GPA		0x110000

static struct vm vm;
static const struct vm_config cfg = {
	.mem_size = RAM,
	.no_vcpus = true,
};
static int slot = -1;

/* What the capability walk found. */
static struct {
	int common, notify, isr, device, pcicfg, msix;
	uint32_t common_off, notify_off, isr_off, mult;
} caps;

static uint32_t conf_rd(int reg, int len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc), v = 0;

	vm_pio(&vm, PV_PORT_PCI_CONF_ADDR, &a, 4, true);
	vm_pio(&vm, PV_PORT_PCI_CONF_DATA + (reg & 3), &v, len, false);
	return v;
}

static void conf_wr(int reg, int len, uint32_t v)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);

	vm_pio(&vm, PV_PORT_PCI_CONF_ADDR, &a, 4, true);
	vm_pio(&vm, PV_PORT_PCI_CONF_DATA + (reg & 3), &v, len, true);
}

static uint64_t bar0(void)
{
	return (conf_rd(PCI_BASE_ADDRESS_0, 4) & ~0xfULL) |
	       (uint64_t)conf_rd(PCI_BASE_ADDRESS_1, 4) << 32;
}

static uint32_t mrd(uint64_t off, int len)
{
	uint32_t v = 0;

	vm_mmio(&vm, bar0() + off, &v, len, false);
	return v;
}

static void mwr(uint64_t off, int len, uint32_t v)
{
	vm_mmio(&vm, bar0() + off, &v, len, true);
}

static uint32_t common_rd(int reg, int len)
{
	return mrd(caps.common_off + reg, len);
}

static void common_wr(int reg, int len, uint32_t v)
{
	mwr(caps.common_off + reg, len, v);
}

static uint8_t status(void)
{
	return common_rd(VIRTIO_PCI_COMMON_STATUS, 1);
}

static void walk_caps(void)
{
	int at = conf_rd(PCI_CAPABILITY_LIST, 1), n = 0;

	memset(&caps, 0, sizeof(caps));
	while (at && n++ < 48) {
		if (conf_rd(at, 1) == PCI_CAP_ID_MSIX)
			caps.msix = at;
		if (conf_rd(at, 1) == PCI_CAP_ID_VNDR) {
			switch (conf_rd(at + VIRTIO_PCI_CAP_CFG_TYPE, 1)) {
			case VIRTIO_PCI_CAP_COMMON_CFG:
				caps.common = at;
				caps.common_off = conf_rd(at + 8, 4);
				break;
			case VIRTIO_PCI_CAP_NOTIFY_CFG:
				caps.notify = at;
				caps.notify_off = conf_rd(at + 8, 4);
				caps.mult = conf_rd(at + 16, 4);
				break;
			case VIRTIO_PCI_CAP_ISR_CFG:
				caps.isr = at;
				caps.isr_off = conf_rd(at + 8, 4);
				break;
			case VIRTIO_PCI_CAP_DEVICE_CFG:
				caps.device = at;
				break;
			case VIRTIO_PCI_CAP_PCI_CFG:
				caps.pcicfg = at;
				break;
			}
		}
		at = conf_rd(at + 1, 1);
	}
}

static int setup(void)
{
	int fd = open("/dev/null", O_RDONLY);

	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
		return -1;
	close(fd);
	if (vm_create(&vm, &cfg) || vm_devices_init(&vm))
		return -1;
	for (int i = 1; i < 32 && slot < 0; i++) {
		slot = i;
		if (conf_rd(PCI_VENDOR_ID, 4) != 0x10441af4)
			slot = -1;
	}
	if (slot < 0)
		return -1;
	walk_caps();
	return 0;
}

static int teardown(void)
{
	vm_devices_exit(&vm);
	vm_destroy(&vm);
	return 0;
}

static void test_ids(void)
{
	CU_ASSERT_EQUAL(conf_rd(PCI_VENDOR_ID, 2), 0x1af4);
	CU_ASSERT_EQUAL(conf_rd(PCI_DEVICE_ID, 2), 0x1040 + 4);
	CU_ASSERT_EQUAL(conf_rd(PCI_REVISION_ID, 1), 1);
	CU_ASSERT_EQUAL(conf_rd(PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	CU_ASSERT_EQUAL(conf_rd(PCI_SUBSYSTEM_ID, 2), 4);
	CU_ASSERT_EQUAL(conf_rd(PCI_HEADER_TYPE, 1), 0);
	CU_ASSERT(conf_rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	CU_ASSERT(conf_rd(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	CU_ASSERT_EQUAL(conf_rd(PCI_INTERRUPT_PIN, 1), 0);	/* MSI-X only */
}

struct region {
	uint32_t off, len;
};

static bool overlap(struct region a, struct region b)
{
	return a.off < b.off + b.len && b.off < a.off + a.len;
}

static void test_cap_layout(void)
{
	struct region r[8];
	int nr = 0, n = 0, at;
	uint32_t barsize, lo = conf_rd(PCI_BASE_ADDRESS_0, 4);
	uint16_t nq = 0;

	conf_wr(PCI_COMMAND, 2, 0);
	conf_wr(PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	barsize = ~(conf_rd(PCI_BASE_ADDRESS_0, 4) & ~0xfu) + 1;
	conf_wr(PCI_BASE_ADDRESS_0, 4, lo);
	conf_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	CU_ASSERT_EQUAL(barsize, 0x8000);

	for (at = conf_rd(PCI_CAPABILITY_LIST, 1); at && n < 48;
	     at = conf_rd(at + 1, 1), n++) {
		uint32_t type, bar, off, len;

		CU_ASSERT(at >= 0x40 && at % 4 == 0);
		if (conf_rd(at, 1) != PCI_CAP_ID_VNDR)
			continue;
		CU_ASSERT(conf_rd(at + VIRTIO_PCI_CAP_LEN, 1) >= 16);
		type = conf_rd(at + VIRTIO_PCI_CAP_CFG_TYPE, 1);
		bar = conf_rd(at + VIRTIO_PCI_CAP_BAR, 1);
		off = conf_rd(at + VIRTIO_PCI_CAP_OFFSET, 4);
		len = conf_rd(at + VIRTIO_PCI_CAP_LENGTH, 4);
		if (type == VIRTIO_PCI_CAP_PCI_CFG) {
			CU_ASSERT(conf_rd(at + VIRTIO_PCI_CAP_LEN, 1) >= 20);
			continue;
		}
		CU_ASSERT_EQUAL(bar, 0);
		CU_ASSERT(len > 0 && off + len <= barsize);
		CU_ASSERT_EQUAL(off % 4096, 0);	/* one page each */
		if (type == VIRTIO_PCI_CAP_COMMON_CFG)
			CU_ASSERT(len >= 0x38);
		if (nr < 8)
			r[nr++] = (struct region){ off, len };
	}
	CU_ASSERT_EQUAL(at, 0);		/* the list ends */
	CU_ASSERT(caps.common && caps.notify && caps.isr && caps.pcicfg);
	CU_ASSERT_EQUAL(caps.device, 0);	/* virtio-rng has no config */

	/* notify: multiplier an even power of two (or 0), length covers q */
	nq = common_rd(VIRTIO_PCI_COMMON_NUMQ, 2);
	CU_ASSERT_EQUAL(nq, 1);
	CU_ASSERT(conf_rd(caps.notify + VIRTIO_PCI_CAP_LEN, 1) >= 20);
	CU_ASSERT(caps.mult == 0 ||
		  (!(caps.mult & (caps.mult - 1)) && caps.mult % 2 == 0));
	CU_ASSERT_EQUAL(caps.notify_off % 2, 0);
	for (uint16_t q = 0; q < nq; q++) {
		common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		CU_ASSERT(conf_rd(caps.notify + VIRTIO_PCI_CAP_LENGTH, 4) >=
			  common_rd(VIRTIO_PCI_COMMON_Q_NOFF, 2) * caps.mult + 2);
	}

	/* MSI-X: one vector per queue plus config, table and PBA in BAR 0 */
	CU_ASSERT_FATAL(caps.msix);
	uint32_t tbl = conf_rd(caps.msix + PCI_MSIX_TABLE, 4);
	uint32_t pba = conf_rd(caps.msix + PCI_MSIX_PBA, 4);
	uint32_t nvec = (conf_rd(caps.msix + PCI_MSIX_FLAGS, 2) &
			 PCI_MSIX_FLAGS_QSIZE) + 1;

	CU_ASSERT_EQUAL(nvec, nq + 1u);
	CU_ASSERT_EQUAL(tbl & PCI_MSIX_TABLE_BIR, 0);
	CU_ASSERT_EQUAL(pba & PCI_MSIX_PBA_BIR, 0);
	tbl &= PCI_MSIX_TABLE_OFFSET;
	pba &= PCI_MSIX_PBA_OFFSET;
	CU_ASSERT_EQUAL(tbl % 4096, 0);
	CU_ASSERT_EQUAL(pba % 4096, 0);
	CU_ASSERT(tbl + 16 * nvec <= barsize);
	CU_ASSERT(pba + 8 * ((nvec + 63) / 64) <= barsize);
	r[nr++] = (struct region){ tbl, 16 * nvec };
	r[nr++] = (struct region){ pba, 8 * ((nvec + 63) / 64) };
	for (int i = 0; i < nr; i++)
		for (int j = i + 1; j < nr; j++)
			CU_ASSERT_FALSE(overlap(r[i], r[j]));
	/* entries start masked; the control word's enable bits are RW */
	CU_ASSERT_EQUAL(mrd(tbl + 12, 4) & 1, 1);
	conf_wr(caps.msix + PCI_MSIX_FLAGS, 2, 0xffff);
	CU_ASSERT_EQUAL(conf_rd(caps.msix + PCI_MSIX_FLAGS, 2),
			PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL |
			(nvec - 1));
	conf_wr(caps.msix + PCI_MSIX_FLAGS, 2, 0);
}

static void test_pci_cfg_window(void)
{
	int at = caps.pcicfg;

	CU_ASSERT_FATAL(at);
	conf_wr(at + VIRTIO_PCI_CAP_BAR, 1, 0);
	conf_wr(at + VIRTIO_PCI_CAP_OFFSET, 4,
		caps.common_off + VIRTIO_PCI_COMMON_NUMQ);
	conf_wr(at + VIRTIO_PCI_CAP_LENGTH, 4, 2);
	CU_ASSERT_EQUAL(conf_rd(at + 16, 2), 1);	/* num_queues */
	/* a write through the window reaches the BAR */
	conf_wr(at + VIRTIO_PCI_CAP_OFFSET, 4,
		caps.common_off + VIRTIO_PCI_COMMON_DFSELECT);
	conf_wr(at + VIRTIO_PCI_CAP_LENGTH, 4, 4);
	conf_wr(at + 16, 4, 1);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_DFSELECT, 4), 1);
	CU_ASSERT_EQUAL(conf_rd(at + 16, 4), 1);
	common_wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
}

static void negotiate(uint32_t lo, uint32_t hi)
{
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE |
		  VIRTIO_CONFIG_S_DRIVER);
	common_wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	common_wr(VIRTIO_PCI_COMMON_GF, 4, lo);
	common_wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common_wr(VIRTIO_PCI_COMMON_GF, 4, hi);
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE |
		  VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
}

static void test_features(void)
{
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	CU_ASSERT_EQUAL(status(), 0);
	common_wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_DF, 4),
			1u << VIRTIO_RING_F_INDIRECT_DESC);
	common_wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_DF, 4),
			1u << (VIRTIO_F_VERSION_1 - 32));
	common_wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_DF, 4), 0);

	/* a subset with VERSION_1: accepted */
	negotiate(1u << VIRTIO_RING_F_INDIRECT_DESC, 1);
	CU_ASSERT(status() & VIRTIO_CONFIG_S_FEATURES_OK);
	/* features are frozen once FEATURES_OK is set */
	common_wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	common_wr(VIRTIO_PCI_COMMON_GF, 4, 0);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_GF, 4),
			1u << VIRTIO_RING_F_INDIRECT_DESC);

	/* an unknown feature: FEATURES_OK does not stick */
	negotiate(1u << 0, 1);
	CU_ASSERT_EQUAL(status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
	CU_ASSERT(status() & VIRTIO_CONFIG_S_DRIVER);
	negotiate(0, 1 | 1u << (VIRTIO_F_RING_PACKED - 32));
	CU_ASSERT_EQUAL(status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
	/* no VERSION_1 (a legacy driver): refused */
	negotiate(1u << VIRTIO_RING_F_INDIRECT_DESC, 0);
	CU_ASSERT_EQUAL(status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
	/* reset clears everything */
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	CU_ASSERT_EQUAL(status(), 0);
	common_wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_GF, 4), 0);
}

static uint64_t msix_table(void)
{
	return conf_rd(caps.msix + PCI_MSIX_TABLE, 4) & PCI_MSIX_TABLE_OFFSET;
}

static uint64_t msix_pba(void)
{
	return conf_rd(caps.msix + PCI_MSIX_PBA, 4) & PCI_MSIX_PBA_OFFSET;
}

static void msix_entry(int v, uint32_t data, bool masked)
{
	mwr(msix_table() + 16 * v, 4, 0xfee00000);
	mwr(msix_table() + 16 * v + 4, 4, 0);
	mwr(msix_table() + 16 * v + 8, 4, data);
	mwr(msix_table() + 16 * v + 12, 4, masked);
}

static void *gp(uint64_t gpa)
{
	return guest_ptr(&vm.mem, gpa, 1);
}

static struct vring_avail *avail(void)
{
	return gp(AVAIL_GPA);
}

static struct vring_used *used(void)
{
	return gp(USED_GPA);
}

/* Driver bring-up of queue 0 with vector 1, features VERSION_1. */
static void driver_up(void)
{
	memset(gp(DESC_GPA), 0, 0x3000);
	conf_wr(caps.msix + PCI_MSIX_FLAGS, 2,
		PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	msix_entry(0, 0x41, false);
	msix_entry(1, 0x42, false);
	conf_wr(caps.msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);

	negotiate(0, 1);
	CU_ASSERT_FATAL(status() & VIRTIO_CONFIG_S_FEATURES_OK);
	common_wr(VIRTIO_PCI_COMMON_MSIX, 2, 0);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_MSIX, 2), 0);
	common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	common_wr(VIRTIO_PCI_COMMON_Q_SIZE, 2, QSZ);
	common_wr(VIRTIO_PCI_COMMON_Q_MSIX, 2, 7);	/* no such vector */
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_MSIX, 2),
			VIRTIO_MSI_NO_VECTOR);
	common_wr(VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
	common_wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, DESC_GPA);
	common_wr(VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
	common_wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, AVAIL_GPA);
	common_wr(VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
	common_wr(VIRTIO_PCI_COMMON_Q_USEDLO, 4, USED_GPA);
	common_wr(VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
	common_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE |
		  VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
		  VIRTIO_CONFIG_S_DRIVER_OK);
	CU_ASSERT_EQUAL(status(), 0x0f);
}

static void post_buf(uint16_t d, uint64_t gpa, uint32_t len)
{
	struct vring_desc *desc = gp(DESC_GPA);
	uint16_t idx = le16toh(avail()->idx);

	desc[d].addr = htole64(gpa);
	desc[d].len = htole32(len);
	desc[d].flags = htole16(VRING_DESC_F_WRITE);
	desc[d].next = 0;
	avail()->ring[idx % QSZ] = htole16(d);
	avail()->idx = htole16(idx + 1);
}

static void notify(uint16_t q)
{
	/* a trapped 16-bit write, as when no ioeventfd catches it */
	mwr(caps.notify_off + q * caps.mult, 2, q);
}

/* A GSI routes MSI data @data (the vector's route exists). */
static bool msi_routed(uint32_t data)
{
	for (int i = 0; i < vm.nr_routes; i++)
		if (vm.routes[i].type == KVM_IRQ_ROUTING_MSI &&
		    vm.routes[i].u.msi.data == data &&
		    vm.routes[i].u.msi.address_lo == 0xfee00000)
			return true;
	return false;
}

static void test_rng_queue_msix(void)
{
	uint8_t zero[64] = { 0 };

	driver_up();
	memset(gp(BUF_GPA), 0, 64);
	post_buf(0, BUF_GPA, 64);
	notify(0);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 1);
	CU_ASSERT_EQUAL(le32toh(used()->ring[0].id), 0);
	CU_ASSERT_EQUAL(le32toh(used()->ring[0].len), 64);
	CU_ASSERT_NOT_EQUAL(memcmp(gp(BUF_GPA), zero, 64), 0);
	CU_ASSERT_EQUAL(mrd(caps.isr_off, 1) & 1, 1);	/* queue interrupt */
	CU_ASSERT_EQUAL(mrd(caps.isr_off, 1), 0);	/* read clears */
	/* vector 1 delivered through a GSI route, nothing pending */
	CU_ASSERT_TRUE(msi_routed(0x42));
	CU_ASSERT_EQUAL(mrd(msix_pba(), 4) & 2, 0);

	/* masked vector: pending bit, delivered on unmask */
	mwr(msix_table() + 16 + 12, 4, 1);
	post_buf(1, BUF_GPA + 64, 32);
	notify(0);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 2);
	CU_ASSERT_EQUAL(mrd(msix_pba(), 4) & 2, 2);
	mwr(msix_table() + 16 + 12, 4, 0);
	CU_ASSERT_EQUAL(mrd(msix_pba(), 4) & 2, 0);
	/* function mask works the same */
	conf_wr(caps.msix + PCI_MSIX_FLAGS, 2,
		PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	post_buf(2, BUF_GPA + 128, 16);
	notify(0);
	CU_ASSERT_EQUAL(mrd(msix_pba(), 4) & 2, 2);
	conf_wr(caps.msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	CU_ASSERT_EQUAL(mrd(msix_pba(), 4) & 2, 0);
	/* a new message for an unmasked vector updates its route */
	mwr(msix_table() + 16 + 8, 4, 0x43);
	CU_ASSERT_TRUE(msi_routed(0x43));
	CU_ASSERT_FALSE(msi_routed(0x42));
	mwr(msix_table() + 16 + 8, 4, 0x42);
	/* the PBA is read-only */
	mwr(msix_pba(), 4, 0xffffffff);
	CU_ASSERT_EQUAL(mrd(msix_pba(), 4), 0);

	/* a queue that does not exist */
	common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	common_wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	notify(5);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 3);
}

static void test_needs_reset_and_reset(void)
{
	uint8_t gen;

	driver_up();
	gen = common_rd(VIRTIO_PCI_COMMON_CFGGENERATION, 1);
	post_buf(0, RAM - 16, 64);	/* runs past the end of RAM */
	notify(0);
	CU_ASSERT(status() & VIRTIO_CONFIG_S_NEEDS_RESET);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 0);
	CU_ASSERT_NOT_EQUAL(common_rd(VIRTIO_PCI_COMMON_CFGGENERATION, 1), gen);
	CU_ASSERT(mrd(caps.isr_off, 1) & VIRTIO_PCI_ISR_CONFIG);
	/* the driver cannot clear it, nor make the device go on */
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0x0f);
	CU_ASSERT(status() & VIRTIO_CONFIG_S_NEEDS_RESET);
	post_buf(1, BUF_GPA, 16);
	notify(0);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 0);

	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	CU_ASSERT_EQUAL(status(), 0);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_MSIX, 2),
			VIRTIO_MSI_NO_VECTOR);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_MSIX, 2),
			VIRTIO_MSI_NO_VECTOR);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
	/* MSI-X table belongs to PCI, not to the virtio reset */
	CU_ASSERT_EQUAL(mrd(msix_table() + 8, 4), 0x41);
	/* and the device works again */
	driver_up();
	post_buf(0, BUF_GPA, 16);
	notify(0);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 1);
	CU_ASSERT_EQUAL(status(), 0x0f);

	/* a queue whose rings are outside RAM is refused at enable */
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	negotiate(0, 1);
	common_wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, RAM - 64);
	common_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	CU_ASSERT_EQUAL(common_rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	CU_ASSERT(status() & VIRTIO_CONFIG_S_NEEDS_RESET);
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
}

static void test_driver_ok_kick(void)
{
	/* buffers made available before DRIVER_OK, without a notify */
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	memset(gp(DESC_GPA), 0, 0x3000);
	negotiate(0, 1);
	common_wr(VIRTIO_PCI_COMMON_Q_SIZE, 2, QSZ);
	common_wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, DESC_GPA);
	common_wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, AVAIL_GPA);
	common_wr(VIRTIO_PCI_COMMON_Q_USEDLO, 4, USED_GPA);
	common_wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	post_buf(0, BUF_GPA, 8);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 0);
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0x0f);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 1);
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
}

/* KVM refuses a second ioeventfd on the same address and length. */
static bool ioeventfd_taken(uint64_t addr)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	int ret;

	ret = vm_ioeventfd(&vm, efd, addr, 2, false, true);
	if (!ret)
		vm_ioeventfd(&vm, efd, addr, 2, false, false);
	close(efd);
	return ret == -EEXIST;
}

static void test_ioeventfd_follows_bar(void)
{
	uint64_t old = bar0(), moved = old + 0x100000;
	uint64_t noff = caps.notify_off;

	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	CU_ASSERT_FALSE(ioeventfd_taken(old + noff));	/* queue disabled */
	driver_up();
	CU_ASSERT_TRUE(ioeventfd_taken(old + noff));

	conf_wr(PCI_BASE_ADDRESS_0, 4, (uint32_t)moved);
	CU_ASSERT_EQUAL(bar0(), moved);
	CU_ASSERT_TRUE(ioeventfd_taken(moved + noff));
	CU_ASSERT_FALSE(ioeventfd_taken(old + noff));
	/* memory decoding off: no notify address at all */
	conf_wr(PCI_COMMAND, 2, 0);
	CU_ASSERT_FALSE(ioeventfd_taken(moved + noff));
	conf_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	CU_ASSERT_TRUE(ioeventfd_taken(moved + noff));
	/* the trapped path works at the new place */
	post_buf(0, BUF_GPA, 16);
	notify(0);
	CU_ASSERT_EQUAL(le16toh(used()->idx), 1);
	/* reset takes the queue's ioeventfd away */
	common_wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
	CU_ASSERT_FALSE(ioeventfd_taken(moved + noff));
	conf_wr(PCI_BASE_ADDRESS_0, 4, (uint32_t)old);
}

static CU_TestInfo tests[] = {
	{ "ids and header", test_ids },
	{ "capability list layout", test_cap_layout },
	{ "VIRTIO_PCI_CAP_PCI_CFG window", test_pci_cfg_window },
	{ "feature negotiation, FEATURES_OK refusal", test_features },
	{ "rng queue, MSI-X delivery and masking", test_rng_queue_msix },
	{ "DEVICE_NEEDS_RESET and reset", test_needs_reset_and_reset },
	{ "DRIVER_OK picks up queued buffers", test_driver_ok_kick },
	{ "ioeventfd follows the BAR", test_ioeventfd_follows_bar },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "virtio-pci", setup, teardown, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
