// SPDX-License-Identifier: GPL-2.0
/*
 * The block driver the process runs: it learns the image format from
 * Open, so its state holds either driver's, and Open picks which one
 * applies every input from then on.
 */
#include <string.h>

#include <linux/virtio_blk.h>

#include "blk.h"
#include "blk_qcow2.h"

int blk_emit_completion(struct replica_out *out, uint64_t req_seq,
			uint32_t status, uint32_t written, int32_t host_error)
{
	Pv__Envelope env = PV__ENVELOPE__INIT;
	Pv__GuestCompletion gc = PV__GUEST_COMPLETION__INIT;

	gc.request_seq = req_seq;
	gc.status = status;
	gc.written = written;
	gc.host_error = host_error;
	env.msg_case = PV__ENVELOPE__MSG_GUEST_COMPLETION;
	env.guest_completion = &gc;
	return replica_emit(out, &env);
}

enum blk_kind {
	BLK_KIND_NONE,
	BLK_KIND_RAW,
	BLK_KIND_QCOW2,
};

/* The arena's layout: either state's, so a bump of either changes it. */
#define BLK_ANY_LAYOUT_VERSION	(BLK_LAYOUT_VERSION << 16 | Q2_LAYOUT_VERSION)

struct blk_any {
	uint32_t kind;
	uint32_t pad;
	union {
		struct blk_state raw;
		struct q2_state qcow2;
	} u;
};

static const struct replica_ops *blk_kind_ops(uint32_t kind)
{
	return kind == BLK_KIND_QCOW2 ? &blk_qcow2_ops : &blk_raw_ops;
}

static int blk_any_init(void *state)
{
	struct blk_any *b = state;

	b->kind = BLK_KIND_NONE;
	return blk_raw_ops.init(&b->u);
}

static int blk_any_apply(void *state, const Pv__Envelope *in,
			 struct replica_out *out)
{
	struct blk_any *b = state;
	int err;

	if (b->kind == BLK_KIND_NONE &&
	    in->msg_case == PV__ENVELOPE__MSG_OPEN) {
		b->kind = strcmp(in->open->format, "qcow2") ? BLK_KIND_RAW :
			  BLK_KIND_QCOW2;
		memset(&b->u, 0, sizeof(b->u));
		err = blk_kind_ops(b->kind)->init(&b->u);
		if (err)
			return err;
	}
	return blk_kind_ops(b->kind)->apply(&b->u, in, out);
}

/* Each format has its own state machine, so its own version. */
static const struct replica_variant blk_variants[] = {
	{ "raw", BLK_RAW_MACHINE_VERSION },
	{ "qcow2", Q2_MACHINE_VERSION },
	{ NULL, 0 },
};

const struct replica_ops blk_ops = {
	.name = "blk",
	.layout_version = BLK_ANY_LAYOUT_VERSION,
	.variants = blk_variants,
	.state_size = sizeof(struct blk_any),
	.max_output_bytes = 256 * 1024,
	.first_input = PV__ENVELOPE__MSG_OPEN,
	.init = blk_any_init,
	.apply = blk_any_apply,
};

struct blk_cmd_ref *blk_cmd_find(struct blk_cmd_ref *cmds, uint32_t n,
				 const Pv__OutputId *id)
{
	for (uint32_t i = 0; i < n; i++) {
		struct blk_cmd_ref *c = &cmds[i];

		if (!c->done && c->seq == id->seq && c->index == id->index)
			return c;
	}
	return NULL;
}

uint32_t blk_dwz_check(const Pv__IoRequest *io, uint64_t size,
		       struct blk_dwz *r)
{
	const Pv__SectorRange *s;
	bool discard = io->type == VIRTIO_BLK_T_DISCARD;

	if (io->n_ranges != 1 || io->n_in || io->n_out)
		return VIRTIO_BLK_S_IOERR;
	s = io->ranges[0];
	if (s->flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
		return VIRTIO_BLK_S_UNSUPP;
	if (discard && s->flags)
		return VIRTIO_BLK_S_UNSUPP;
	if (s->count > PV_DWZ_MAX_SECTORS || s->sector > size / BLK_SECTOR ||
	    s->count > size / BLK_SECTOR - s->sector)
		return VIRTIO_BLK_S_IOERR;
	r->offset = s->sector * BLK_SECTOR;
	r->length = (uint64_t)s->count * BLK_SECTOR;
	r->unmap = !discard && s->flags;
	return VIRTIO_BLK_S_OK;
}
