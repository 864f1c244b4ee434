// SPDX-License-Identifier: GPL-2.0
/*
 * blkbench: 4 KiB requests on disk 0 from CPU 0 at a fixed queue depth,
 * sequential over the first `blocks=` blocks, each completion waited for
 * by interrupt. Latency is submit -> completion seen at CPL3, in TSC ticks
 * (the TSC is steady within one run; the host converts with its own rate).
 *
 *	pvtest=blkbench rw=read|write qd=N count=REQUESTS [blocks=N]
 *	PVTEST blkbench PASS rw=read qd=16 bs=4096 requests=N ticks=T
 *		median_ticks=M p99_ticks=P irqs=I
 */
#include "blk.h"

#define BENCH_MAX	200000

static u64 lat[BENCH_MAX];

static void sift_down(u64 *a, size_t i, size_t n)
{
	size_t c;
	u64 t;

	for (; (c = 2 * i + 1) < n; i = c) {
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (a[i] >= a[c])
			return;
		t = a[i];
		a[i] = a[c];
		a[c] = t;
	}
}

static void heapsort(u64 *a, size_t n)
{
	size_t i;
	u64 t;

	for (i = n / 2; i-- > 0;)
		sift_down(a, i, n);
	for (i = n; i-- > 1;) {
		t = a[0];
		a[0] = a[i];
		a[i] = t;
		sift_down(a, 0, i);
	}
}

struct bench {
	struct blk_disk *d;
	u32 type, qd, count, blocks;
};

/* Run the requests; NULL or why it stopped. */
static const char *bench_loop(struct bench *b, char *why, size_t len)
{
	struct blk_disk *d = b->d;
	u32 n, done = 0, s;

	for (n = 0; n < b->count + b->qd; n++) {
		s = n % b->qd;
		if (d->slot[s].busy) {
			if (!blk_wait(d, s, SPIN_LIMIT)) {
				snprintf(why, len, "request %u: no completion", done);
				return why;
			}
			lat[done++] = rdtsc() - d->slot[s].t0;
			d->slot[s].busy = 0;
			if (d->slot[s].status != VIRTIO_BLK_S_OK) {
				snprintf(why, len, "request %u: status=%s", done,
					 blk_status_name(d->slot[s].status));
				return why;
			}
		}
		if (n >= b->count)
			continue;
		blk_prepare(d, s, b->type, (u64)(n % b->blocks) * BLK_SECTORS,
			    BLK_BS);
		d->slot[s].t0 = rdtsc();
		blk_submit(d, s);
	}
	return NULL;
}

static const char *bench_args(struct bench *b)
{
	const char *rw = cmdline_param("rw");
	u64 cap = b->d->capacity / BLK_SECTORS;
	u64 qd = cmdline_u64("qd", 1), count = cmdline_u64("count", 10000);
	u64 blocks = cmdline_u64("blocks", cap < 8192 ? cap : 8192);

	b->type = VIRTIO_BLK_T_IN;
	if (rw && !strncmp(rw, "write", 5))
		b->type = VIRTIO_BLK_T_OUT;
	else if (rw && strncmp(rw, "read", 4))
		return "rw= must be read or write";
	if (!qd || qd > b->d->nslots)
		return "qd= out of range (1..slots)";
	if (!count || count > BENCH_MAX)
		return "count= out of range (1..200000)";
	if (!blocks || blocks > cap)
		return "blocks= out of range (1..capacity)";
	b->qd = qd;
	b->count = count;
	b->blocks = blocks;
	return NULL;
}

void blkbench_run(void)
{
	struct bench b = { .d = &blk_disks[0] };
	const char *err;
	char why[160];
	u64 t0, t1;

	if (!blk_probe(why, sizeof(why))) {
		result("blkbench", false, "%s", why);
		return;
	}
	err = bench_args(&b);
	if (!err && b.type == VIRTIO_BLK_T_OUT &&
	    (b.d->v.features & VIRTIO_BLK_F_RO))
		err = "disk=0 is read-only";
	t0 = rdtsc();
	if (!err)
		err = bench_loop(&b, why, sizeof(why));
	t1 = rdtsc();
	if (err) {
		result("blkbench", false, "%s", err);
		return;
	}
	heapsort(lat, b.count);
	result("blkbench", true, "rw=%s qd=%u bs=%u requests=%u ticks=%lu "
	       "median_ticks=%lu p99_ticks=%lu irqs=%u",
	       b.type == VIRTIO_BLK_T_IN ? "read" : "write", b.qd, BLK_BS,
	       b.count, (unsigned long)(t1 - t0),
	       (unsigned long)lat[b.count / 2],
	       (unsigned long)lat[(u64)b.count * 99 / 100], blk_irqs(b.d));
}
