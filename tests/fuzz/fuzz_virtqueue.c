// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the split-ring parser (vq_pop) and the virtio-blk
 * chain parser on rings the fuzzer writes.
 *
 * Input: byte 0 picks the queue size (1 << (b % 8)), byte 1 bit 0 allows
 * indirect descriptors, byte 2 is the avail index; then the descriptor
 * table, the avail ring and whatever is left lands in guest RAM at
 * FUZZ_DATA (indirect tables, request headers). Descriptors may point
 * anywhere, inside RAM or not. Every chain vq_pop() accepts must lie in
 * RAM, and every request blk_parse_chain() accepts must stay inside it.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio_blk.h"
#include "virtqueue.h"

#define FUZZ_RAM	(1 << 20)
#define FUZZ_DESC	0x1000ULL
#define FUZZ_AVAIL	0x3000ULL
#define FUZZ_USED	0x4000ULL
#define FUZZ_DATA	0x10000ULL
#define FUZZ_MAX_POPS	64

static struct guest_mem mem;
static struct virtqueue vq;
static struct vq_chain chain;
static struct blk_req req;

static void check_request(void)
{
	for (unsigned int i = 0; i < req.nr_out + req.nr_in; i++)
		if (!guest_ptr(&mem, req.seg[i].gpa, req.seg[i].len))
			abort();
	if (req.status < mem.hva || req.status >= mem.hva + mem.size)
		abort();
	if (req.nr_out + req.nr_in > BLK_SEG_MAX)
		abort();
}

static void check_chain(void)
{
	for (unsigned int i = 0; i < chain.nr; i++)
		if (!guest_ptr(&mem, chain.seg[i].gpa,
			       chain.seg[i].len ? chain.seg[i].len : 1))
			abort();
}

static size_t put(uint64_t gpa, const uint8_t *src, size_t len, size_t max)
{
	if (len > max)
		len = max;
	memcpy(mem.hva + gpa, src, len);
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint16_t qsz;
	size_t n;

	if (!mem.hva && guest_mem_create(&mem, FUZZ_RAM))
		abort();
	if (size < 3)
		return 0;
	memset(mem.hva, 0, FUZZ_DATA + 0x10000);
	qsz = 1u << (data[0] % 8);
	vq_reset(&vq);
	vq.indirect = data[1] & 1;
	if (vq_setup(&vq, &mem, qsz, FUZZ_DESC, FUZZ_AVAIL, FUZZ_USED))
		abort();
	vq.avail->idx = htole16(data[2]);
	data += 3;
	size -= 3;
	n = put(FUZZ_DESC, data, size, 16u * qsz);
	data += n;
	size -= n;
	n = put(FUZZ_AVAIL + 4, data, size, 2u * qsz);
	data += n;
	size -= n;
	put(FUZZ_DATA, data, size, 0x10000);

	for (int i = 0; i < FUZZ_MAX_POPS; i++) {
		const char *why;
		int ret = vq_pop(&vq, &chain);

		if (ret == 0)
			break;
		if (ret < 0)
			continue;
		check_chain();
		if (blk_parse_chain(&chain, &req, &why) == BLK_PARSE_OK)
			check_request();
		vq_push(&vq, chain.head, 1);
	}
	return 0;
}
