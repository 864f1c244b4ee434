// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-blk: the strict chain parser on hand-made chains, then the device
 * on a real VM (inline disks: no driver process) with rings the test
 * writes like a guest: good requests, malformed chains answered with
 * IOERR, chains without a usable status byte giving DEVICE_NEEDS_RESET,
 * GET_ID, read-only disks and the config space.
 */
#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_config.h>

#include "cunit_main.h"
#include "virtio_blk.h"
#include "virtio_pci.h"
#include "vm.h"

/* ---- parser ---- */

static uint8_t pmem[8192];
static struct vq_chain chain;
static struct blk_req req;

static void seg(unsigned int i, uint32_t off, uint32_t len, bool write)
{
	chain.seg[i] = (struct vq_seg){ .gpa = 0x1000 + off, .ptr = pmem + off,
					.len = len, .write = write };
	chain.nr = i + 1;
	chain.head = 0;
}

static void hdr(uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = htole32(type),
				       .sector = htole64(sector) };

	memcpy(pmem, &h, sizeof(h));
}

static enum blk_parse parse(void)
{
	const char *why;

	return blk_parse_chain(&chain, &req, &why);
}

static void test_parse_good(void)
{
	hdr(VIRTIO_BLK_T_IN, 8);
	seg(0, 0, 16, false);
	seg(1, 512, 1024, true);
	seg(2, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_OK);
	CU_ASSERT_EQUAL(req.type, VIRTIO_BLK_T_IN);
	CU_ASSERT_EQUAL(req.sector, 8);
	CU_ASSERT_EQUAL(req.nr_in, 1);
	CU_ASSERT_EQUAL(req.nr_out, 0);
	CU_ASSERT_EQUAL(req.in_len, 1024);
	CU_ASSERT_EQUAL(req.seg[0].gpa, 0x1000 + 512);
	CU_ASSERT_PTR_EQUAL(req.status, pmem + 2048);

	/* write; data and status sharing the last writable descriptor is
	 * only for reads: here two readable data segments */
	hdr(VIRTIO_BLK_T_OUT, 1);
	seg(0, 0, 16, false);
	seg(1, 512, 512, false);
	seg(2, 1024, 1024, false);
	seg(3, 4000, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_OK);
	CU_ASSERT_EQUAL(req.nr_out, 2);
	CU_ASSERT_EQUAL(req.out_len, 1536);

	/* header split over two descriptors, then header + data in one */
	hdr(VIRTIO_BLK_T_IN, 77);
	seg(0, 0, 10, false);
	seg(1, 10, 6, false);
	seg(2, 512, 513, true);		/* 512 data + status */
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_OK);
	CU_ASSERT_EQUAL(req.sector, 77);
	CU_ASSERT_EQUAL(req.in_len, 512);
	CU_ASSERT_PTR_EQUAL(req.status, pmem + 1024);
	hdr(VIRTIO_BLK_T_OUT, 3);
	seg(0, 0, 16 + 512, false);
	seg(1, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_OK);
	CU_ASSERT_EQUAL(req.nr_out, 1);
	CU_ASSERT_EQUAL(req.seg[0].gpa, 0x1000 + 16);
	CU_ASSERT_EQUAL(req.seg[0].len, 512);

	/* flush; unknown types go to the driver as they are */
	hdr(VIRTIO_BLK_T_FLUSH, 0);
	seg(0, 0, 16, false);
	seg(1, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_OK);
	hdr(0x1234, 0);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_OK);
	CU_ASSERT_EQUAL(req.type, 0x1234);
}

static void test_parse_bad(void)
{
	/* header too short */
	hdr(VIRTIO_BLK_T_IN, 0);
	seg(0, 0, 8, false);
	seg(1, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_IOERR);
	/* no header at all */
	seg(0, 512, 512, true);
	seg(1, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_IOERR);
	/* no status byte: last descriptor readable, or empty */
	seg(0, 0, 16, false);
	seg(1, 512, 512, false);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_RESET);
	seg(1, 512, 0, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_RESET);
	chain.nr = 0;
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_RESET);

	/* data direction */
	hdr(VIRTIO_BLK_T_IN, 0);
	seg(0, 0, 16, false);
	seg(1, 512, 512, false);
	seg(2, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_IOERR);
	CU_ASSERT_PTR_EQUAL(req.status, pmem + 2048);
	hdr(VIRTIO_BLK_T_OUT, 0);
	seg(1, 512, 512, true);
	seg(2, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_IOERR);
	hdr(VIRTIO_BLK_T_FLUSH, 0);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_IOERR);
	/* not a multiple of 512, empty data descriptor, too large */
	hdr(VIRTIO_BLK_T_IN, 0);
	seg(1, 512, 100, true);
	seg(2, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_IOERR);
	seg(1, 512, 0, true);
	seg(2, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_IOERR);
	chain.seg[1] = (struct vq_seg){ .gpa = 0x1000, .ptr = pmem,
					.len = BLK_SIZE_MAX + 512,
					.write = true };
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_IOERR);
	/* more than seg_max data segments */
	seg(0, 0, 16, false);
	for (unsigned int i = 1; i <= BLK_SEG_MAX + 1; i++)
		seg(i, 512, 512, true);
	seg(BLK_SEG_MAX + 2, 2048, 1, true);
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_IOERR);
	seg(BLK_SEG_MAX + 1, 2048, 1, true);	/* exactly seg_max: fine */
	CU_ASSERT_EQUAL(parse(), BLK_PARSE_OK);
	CU_ASSERT_EQUAL(req.nr_in, BLK_SEG_MAX);
}

/* ---- the device ---- */

#define RAM		(16 << 20)
#define QSZ		64
#define DESC		0x100000ULL
#define AVAIL		0x101000ULL
#define USED		0x102000ULL
#define HDR		0x103000ULL
#define STATUS		0x104000ULL
#define DATA		0x200000ULL

static char dir[] = "/tmp/pv-test-vblk-XXXXXX";
static char img_rw[256], img_ro[256];
static struct vm_config cfg = { .mem_size = RAM, .no_vcpus = true };
static struct vm vm;
static struct virtio_blk *blk[2];
static uint16_t avail_idx, used_seen;

static void *gp(uint64_t gpa)
{
	return guest_ptr(&vm.mem, gpa, 1);
}

static int make_image(char *path, size_t len, const char *name, uint64_t size)
{
	int fd;

	snprintf(path, len, "%s/%s", dir, name);
	fd = open(path, O_CREAT | O_RDWR, 0644);
	if (fd < 0 || ftruncate(fd, size))
		return -1;
	for (uint64_t s = 0; s < size / 512; s++) {
		uint64_t v[64];

		for (int i = 0; i < 64; i++)
			v[i] = s;
		if (pwrite(fd, v, sizeof(v), s * 512) != sizeof(v))
			return -1;
	}
	close(fd);
	return 0;
}

static int setup(void)
{
	const char *why;
	int fd = open("/dev/null", O_RDONLY);

	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0 || !mkdtemp(dir))
		return -1;
	close(fd);
	if (make_image(img_rw, sizeof(img_rw), "rw.img", 1 << 20) ||
	    make_image(img_ro, sizeof(img_ro), "ro.img", 64 << 10))
		return -1;
	snprintf(img_rw + strlen(img_rw), 64, ",driver=inline");
	snprintf(img_ro + strlen(img_ro), 64, ",driver=inline,readonly=on");
	if (virtio_blk_parse_disk(img_rw, &cfg, &why) ||
	    virtio_blk_parse_disk(img_ro, &cfg, &why))
		return -1;
	if (vm_create(&vm, &cfg) || vm_devices_init(&vm))
		return -1;
	blk[0] = virtio_blk_get(&vm, 0);
	blk[1] = virtio_blk_get(&vm, 1);
	return blk[0] && blk[1] && !virtio_blk_get(&vm, 2) ? 0 : -1;
}

static int teardown(void)
{
	char cmd[300];

	vm_devices_exit(&vm);
	vm_destroy(&vm);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) ? -1 : 0;
}

/* A guest driver bringing queue 0 of disk @d up (after a reset). */
static void queue_up(int d)
{
	struct virtio_dev *vdev = virtio_blk_vdev(blk[d]);

	vdev->ops->reset(vdev);
	vq_reset(&vdev->vqs[0]);
	memset(gp(DESC), 0, 0x5000);
	vdev->features = vdev->ops->features | (1ULL << VIRTIO_F_VERSION_1);
	vdev->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	CU_ASSERT_EQUAL(vq_setup(&vdev->vqs[0], &vm.mem, QSZ, DESC, AVAIL,
				 USED), 0);
	((struct vring_avail *)gp(AVAIL))->flags =
		htole16(VRING_AVAIL_F_NO_INTERRUPT);
	avail_idx = used_seen = 0;
}

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	struct vring_desc *d = gp(DESC + 16 * i);

	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

static void put_hdr(uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr *h = gp(HDR);

	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
	*(uint8_t *)gp(STATUS) = 0xee;
}

/* Make chain @head available and notify; returns the used length or -1. */
static int kick(int d, uint16_t head)
{
	struct virtio_dev *vdev = virtio_blk_vdev(blk[d]);
	struct vring_avail *a = gp(AVAIL);
	struct vring_used *u = gp(USED);

	a->ring[avail_idx % QSZ] = htole16(head);
	avail_idx++;
	a->idx = htole16(avail_idx);
	pthread_mutex_lock(&vm.lock);
	vdev->ops->queue_notify(vdev, 0);
	pthread_mutex_unlock(&vm.lock);
	if (le16toh(u->idx) == used_seen)
		return -1;
	CU_ASSERT_EQUAL(le32toh(u->ring[used_seen % QSZ].id), head);
	return le32toh(u->ring[used_seen++ % QSZ].len);
}

static uint8_t status_byte(void)
{
	return *(uint8_t *)gp(STATUS);
}

static bool needs_reset(int d)
{
	return virtio_blk_vdev(blk[d])->status & VIRTIO_CONFIG_S_NEEDS_RESET;
}

static void test_config(void)
{
	struct virtio_dev *vdev = virtio_blk_vdev(blk[0]);
	uint64_t cap;
	uint32_t v;

	vdev->ops->config_read(vdev, 0, &cap, 8);
	CU_ASSERT_EQUAL(le64toh(cap), (1 << 20) / 512);
	vdev->ops->config_read(vdev, 8, &v, 4);
	CU_ASSERT_EQUAL(le32toh(v), BLK_SIZE_MAX);
	vdev->ops->config_read(vdev, 12, &v, 4);
	CU_ASSERT_EQUAL(le32toh(v), BLK_SEG_MAX);
	vdev->ops->config_read(vdev, 20, &v, 4);
	CU_ASSERT_EQUAL(le32toh(v), 512);
	CU_ASSERT_EQUAL(vdev->ops->device_id, VIRTIO_ID_BLOCK);
	CU_ASSERT(vdev->ops->features & (1ULL << VIRTIO_BLK_F_FLUSH));
	CU_ASSERT(vdev->ops->features & (1ULL << VIRTIO_BLK_F_SEG_MAX));
	CU_ASSERT(vdev->ops->features & (1ULL << VIRTIO_BLK_F_SIZE_MAX));
	CU_ASSERT(vdev->ops->features & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
	CU_ASSERT_FALSE(vdev->ops->features & (1ULL << VIRTIO_BLK_F_RO));
	CU_ASSERT(virtio_blk_vdev(blk[1])->ops->features &
		  (1ULL << VIRTIO_BLK_F_RO));
	CU_ASSERT_EQUAL(virtio_blk_capacity(blk[1]), (64 << 10) / 512);
}

static void test_read_write(void)
{
	uint64_t *data = gp(DATA);

	queue_up(0);
	put_hdr(VIRTIO_BLK_T_IN, 5);
	desc(0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(1, DATA, 1024, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	desc(2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	CU_ASSERT_EQUAL(kick(0, 0), 1024 + 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_OK);
	CU_ASSERT_EQUAL(data[0], 5);
	CU_ASSERT_EQUAL(data[64], 6);

	for (int i = 0; i < 64; i++)
		data[i] = 0xabcd;
	put_hdr(VIRTIO_BLK_T_OUT, 9);
	desc(1, DATA, 512, VRING_DESC_F_NEXT, 2);
	CU_ASSERT_EQUAL(kick(0, 0), 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_OK);
	memset(data, 0, 512);
	put_hdr(VIRTIO_BLK_T_IN, 9);
	desc(1, DATA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	CU_ASSERT_EQUAL(kick(0, 0), 513);
	CU_ASSERT_EQUAL(data[63], 0xabcd);

	/* past the end of the disk: IOERR */
	put_hdr(VIRTIO_BLK_T_IN, (1 << 20) / 512 - 1);
	CU_ASSERT_EQUAL(kick(0, 0), 513);	/* the last sector */
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_OK);
	desc(1, DATA, 1024, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	CU_ASSERT_EQUAL(kick(0, 0), 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_IOERR);
	put_hdr(VIRTIO_BLK_T_IN, ~0ULL / 256);
	CU_ASSERT_EQUAL(kick(0, 0), 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_IOERR);

	/* flush; an unknown type */
	put_hdr(VIRTIO_BLK_T_FLUSH, 0);
	desc(0, HDR, 16, VRING_DESC_F_NEXT, 2);
	CU_ASSERT_EQUAL(kick(0, 0), 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_OK);
	put_hdr(0x99, 0);
	CU_ASSERT_EQUAL(kick(0, 0), 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_UNSUPP);
	CU_ASSERT_FALSE(needs_reset(0));
}

static void test_get_id(void)
{
	char *id = gp(DATA);

	queue_up(0);
	memset(id, 'x', 32);
	put_hdr(VIRTIO_BLK_T_GET_ID, 0);
	desc(0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(1, DATA, 32, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	desc(2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	CU_ASSERT_EQUAL(kick(0, 0), BLK_ID_BYTES + 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_OK);
	CU_ASSERT_EQUAL(strncmp(id, "rw.img", BLK_ID_BYTES), 0);
	CU_ASSERT_EQUAL(id[BLK_ID_BYTES], 'x');	/* 20 bytes, no more */
}

static void test_readonly(void)
{
	queue_up(1);
	put_hdr(VIRTIO_BLK_T_OUT, 0);
	desc(0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(1, DATA, 512, VRING_DESC_F_NEXT, 2);
	desc(2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	CU_ASSERT_EQUAL(kick(1, 0), 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_IOERR);
	put_hdr(VIRTIO_BLK_T_IN, 0);
	desc(1, DATA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	CU_ASSERT_EQUAL(kick(1, 0), 513);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_OK);
}

static void test_bad_chains(void)
{
	const struct blk_stats *st = virtio_blk_stats(blk[0]);
	uint64_t bad = st->bad_chains;

	/* data direction wrong: IOERR in the status byte */
	queue_up(0);
	put_hdr(VIRTIO_BLK_T_IN, 0);
	desc(0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(1, DATA, 512, VRING_DESC_F_NEXT, 2);
	desc(2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	CU_ASSERT_EQUAL(kick(0, 0), 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_IOERR);
	/* header too short */
	desc(0, HDR, 8, VRING_DESC_F_NEXT, 2);
	CU_ASSERT_EQUAL(kick(0, 0), 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_IOERR);
	/* a data buffer outside RAM, status fine: IOERR */
	desc(0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(1, RAM - 256, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	CU_ASSERT_EQUAL(kick(0, 0), 1);
	CU_ASSERT_EQUAL(status_byte(), VIRTIO_BLK_S_IOERR);
	CU_ASSERT_EQUAL(st->bad_chains, bad + 3);
	CU_ASSERT_FALSE(needs_reset(0));

	/* status descriptor outside RAM: NEEDS_RESET */
	desc(1, DATA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	desc(2, RAM + 4096, 1, VRING_DESC_F_WRITE, 0);
	CU_ASSERT_EQUAL(kick(0, 0), -1);
	CU_ASSERT(needs_reset(0));
	/* status missing (last descriptor device-readable) */
	queue_up(0);
	CU_ASSERT_FALSE(needs_reset(0));
	desc(2, STATUS, 1, 0, 0);
	CU_ASSERT_EQUAL(kick(0, 0), -1);
	CU_ASSERT(needs_reset(0));
	/* a looping chain */
	queue_up(0);
	desc(2, STATUS, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
	CU_ASSERT_EQUAL(kick(0, 0), -1);
	CU_ASSERT(needs_reset(0));
	/* a head beyond the queue */
	queue_up(0);
	CU_ASSERT_EQUAL(kick(0, QSZ + 3), -1);
	CU_ASSERT(needs_reset(0));
	CU_ASSERT(st->needs_reset >= 4);
	queue_up(0);
}

static CU_TestInfo parse_tests[] = {
	{ "good chains", test_parse_good },
	{ "malformed chains", test_parse_bad },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo dev_tests[] = {
	{ "config space and features", test_config },
	{ "read, write, flush, unknown type", test_read_write },
	{ "GET_ID", test_get_id },
	{ "read-only disk", test_readonly },
	{ "bad chains: IOERR or NEEDS_RESET", test_bad_chains },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "virtio-blk parser", NULL, NULL, NULL, NULL, parse_tests },
	{ "virtio-blk device", setup, teardown, NULL, NULL, dev_tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
