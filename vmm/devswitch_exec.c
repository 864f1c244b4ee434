// SPDX-License-Identifier: GPL-2.0
/*
 * The executor: runs a validated DeviceCommand on the image and guest RAM
 * (the VMM is the only process that touches either) and sends what
 * became of it back as a DeviceCompletion. driver=inline: whole requests
 * done here, without a driver.
 *
 * `after` means completed successfully: a command that depends on one
 * that failed (or was cancelled, refused, or is too old to be
 * remembered) fails with that status without running, and so on down the
 * chain. What a command names in `durable` must also be on stable
 * storage: the image is flushed first unless a flush already covered
 * each of those writes. The order of dependent writes then holds across
 * a power loss, not only a process crash, with no flush where none is
 * needed (a driver that counts clusters in batches pays one per batch).
 *
 * A failed command whose disk's policy says stop (werror=stop|enospc,
 * rerror=stop, as QEMU) is held, packed, and the vCPUs pause; every
 * command after it is held too, in order, so nothing runs before what it
 * may depend on. `pairctl resume` runs them again under the same ids: a
 * command counts as executed once it completes, retries are counted on
 * their own, and the audit that counts an id run twice sees each once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>
#include <qb/qblog.h>

#include "devswitch_priv.h"
#include "image.h"
#include "vm.h"

/*
 * An audit independent of the id check before it: remember the ids of
 * recently completed commands and count any that comes to run again.
 */
/* A slot of a table of 2^@bits entries for output id @id. */
static uint32_t ds_id_hash(const Pv__OutputId *id, unsigned int bits)
{
	uint64_t h = ((id->seq << 24) ^ id->index) * 0x9e3779b97f4a7c15ULL;

	return h >> (64 - bits);
}

static void ds_audit(struct devswitch *sw, const Pv__OutputId *id)
{
	struct ds_audit *a = &sw->audit[ds_id_hash(id, DS_AUDIT_BITS)];

	if (a->seq == id->seq && a->index == id->index) {
		sw->stats.executed_twice++;
		qb_log(LOG_CRIT, "disk%d: command (%" PRIu64 ", %u) executed twice",
		       sw->index, id->seq, id->index);
	}
	a->seq = id->seq;
	a->index = id->index;
}

static bool ds_id_le(uint64_t seq, uint32_t index, const struct ds_audit *b)
{
	return seq < b->seq || (seq == b->seq && index <= b->index);
}

/* ---- what failed, for what depends on it ---- */

static void ds_note_failed(struct devswitch *sw, const Pv__OutputId *id,
			   int status)
{
	struct ds_failed *f;

	if (sw->failed_n == DS_FAILED_MAX) {	/* forget the oldest */
		f = &sw->failed[sw->failed_head];
		sw->fail_horizon = (struct ds_audit){ f->seq, f->index };
		sw->failed_head = (sw->failed_head + 1) % DS_FAILED_MAX;
		sw->failed_n--;
	}
	f = &sw->failed[(sw->failed_head + sw->failed_n++) % DS_FAILED_MAX];
	*f = (struct ds_failed){ id->seq, id->index, status };
}

/* The status of @a if it did not complete successfully, else 0. */
static int ds_failed_status(const struct devswitch *sw, const Pv__OutputId *a)
{
	for (uint32_t k = 0; k < sw->failed_n; k++) {
		const struct ds_failed *f =
			&sw->failed[(sw->failed_head + k) % DS_FAILED_MAX];

		if (f->seq == a->seq && f->index == a->index)
			return f->status;
	}
	/* too old to know whether it failed: assume it did */
	if (sw->fail_horizon.seq && ds_id_le(a->seq, a->index, &sw->fail_horizon))
		return -EIO;
	return 0;
}

/* 0 when everything @c depends on completed successfully. */
static int ds_after_status(const struct devswitch *sw,
			   const Pv__DeviceCommand *c)
{
	int st = 0;

	for (size_t i = 0; i < c->n_after && !st; i++)
		st = ds_failed_status(sw, c->after[i]);
	for (size_t i = 0; i < c->n_durable && !st; i++)
		st = ds_failed_status(sw, c->durable[i]);
	return st;
}

static struct ds_written *ds_written_slot(struct devswitch *sw,
					   const Pv__OutputId *id)
{
	return &sw->written[ds_id_hash(id, DS_WRITTEN_BITS)];
}

/* Write @id ran under the current flush epoch. */
static void ds_note_written(struct devswitch *sw, const Pv__OutputId *id)
{
	struct ds_written *w = ds_written_slot(sw, id);

	*w = (struct ds_written){ id->seq, id->index, sw->flush_epoch };
}

/* Is @id on stable storage? Not knowing it: only if nothing is pending. */
static bool ds_durable(struct devswitch *sw, const Pv__OutputId *id)
{
	const struct ds_written *w = ds_written_slot(sw, id);

	if (w->seq == id->seq && w->index == id->index)
		return w->epoch < sw->flush_epoch;
	return !sw->img_dirty;
}

/* A new input: what became of command @id. */
void ds_complete(struct devswitch *sw, const Pv__OutputId *id, int status,
		 size_t rlen)
{
	Pv__DeviceCompletion dc = PV__DEVICE_COMPLETION__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	Pv__OutputId cid = PV__OUTPUT_ID__INIT;

	if (status < 0)
		ds_note_failed(sw, id, status);
	cid.seq = id->seq;
	cid.index = id->index;
	dc.seq = pv_router_next_seq(sw->rt);
	dc.command = &cid;
	dc.status = status;
	if (!status && rlen) {
		dc.data.data = sw->rdata;
		dc.data.len = rlen;
	}
	env.msg_case = PV__ENVELOPE__MSG_DEVICE_COMPLETION;
	env.device_completion = &dc;
	pv_router_input(sw->rt, &env);
}

/* ---- running one command ---- */

static int ds_exec_segs(struct devswitch *sw, const Pv__DeviceCommand *c)
{
	uint64_t off = c->offset;
	int err = 0;

	for (size_t i = 0; i < c->n_segments && !err; i++) {
		const Pv__Segment *s = c->segments[i];

		switch (c->op) {
		case PV__COMMAND_OP__CMD_READ_TO_GUEST:
			err = image_read_to_guest(sw->img, &sw->vm->mem, off,
						  s->gpa, s->len);
			break;
		case PV__COMMAND_OP__CMD_WRITE_FROM_GUEST:
			err = image_write_from_guest(sw->img, &sw->vm->mem,
						     off, s->gpa, s->len);
			break;
		default:
			err = image_zero_guest(&sw->vm->mem, s->gpa, s->len);
		}
		off += s->len;
	}
	return err;
}

static int ds_flush(struct devswitch *sw)
{
	int err = image_flush(sw->img);

	if (!err) {
		sw->img_dirty = false;
		sw->flush_epoch++;	/* every write before is durable */
	}
	return err;
}

/* Run @c on the image; *@rlen bytes of sw->rdata for the driver. */
static int ds_exec(struct devswitch *sw, const Pv__DeviceCommand *c,
		   size_t *rlen)
{
	*rlen = 0;
	if (ds_op_writes(c->op))
		sw->img_dirty = true;
	switch (c->op) {
	case PV__COMMAND_OP__CMD_WRITE_DATA:
		return image_write(sw->img, c->offset, c->data.data,
				   c->data.len);
	case PV__COMMAND_OP__CMD_READ_FOR_DRIVER:
		*rlen = c->length;
		return image_read(sw->img, c->offset, sw->rdata, c->length);
	case PV__COMMAND_OP__CMD_WRITE_ZEROES:
		return image_write_zeroes(sw->img, c->offset, c->length);
	case PV__COMMAND_OP__CMD_DISCARD:
		return image_discard(sw->img, c->offset, c->length);
	case PV__COMMAND_OP__CMD_FLUSH:
		return ds_flush(sw);
	default:
		return ds_exec_segs(sw, c);
	}
}

/* What @c names in durable reaches stable storage first. */
static int ds_barrier(struct devswitch *sw, const Pv__DeviceCommand *c)
{
	for (size_t i = 0; i < c->n_durable; i++) {
		if (ds_durable(sw, c->durable[i]))
			continue;
		sw->stats.barrier_flushes++;
		return ds_flush(sw);
	}
	return 0;
}

/* Does the disk's policy stop the guest for @c failing with @status? */
static bool ds_policy_stops(const struct devswitch *sw,
			    const Pv__DeviceCommand *c, const struct ds_req *q,
			    int status)
{
	bool write = q ? q->r.type != VIRTIO_BLK_T_IN :
		     c->op != PV__COMMAND_OP__CMD_READ_FOR_DRIVER &&
		     c->op != PV__COMMAND_OP__CMD_READ_TO_GUEST;

	/* not attached (start-up, restart): the driver fails its open */
	if (sw->state != DS_RUNNING)
		return false;
	switch (vm_err_policy_of(sw->dc, write)) {
	case VM_ERR_STOP:
		return true;
	case VM_ERR_ENOSPC:
		return status == -ENOSPC;
	default:
		return false;
	}
}

static const char *ds_op_name(Pv__CommandOp op)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&pv__command_op__descriptor,
						     op);

	return v ? v->name : "CMD_?";
}

static void ds_stop(struct devswitch *sw, const Pv__DeviceCommand *c,
		    int status)
{
	char why[256];

	sw->stats.stops++;
	/* the reason pairctl shows, cut to fit (a long path) */
	if (snprintf(why, sizeof(why), "disk%d: %s at offset %" PRIu64 ": %s (%s)",
		     sw->index, ds_op_name(c->op), c->offset, strerror(-status),
		     sw->dc->path) >= (int)sizeof(why))
		strcpy(why + sizeof(why) - 5, "...)");
	vm_io_pause(sw->vm, why);
}

static int ds_hold_add(struct devswitch *sw, const Pv__DeviceCommand *c)
{
	struct ds_held *h;
	size_t len;

	if (sw->hold_n == DS_HOLD_MAX)
		return -ENOBUFS;
	h = &sw->hold[(sw->hold_head + sw->hold_n) % DS_HOLD_MAX];
	len = pv__device_command__get_packed_size(c);
	h->buf = malloc(len);
	if (!h->buf)
		return -ENOMEM;
	h->len = pv__device_command__pack(c, h->buf);
	h->seq = c->id->seq;
	h->index = c->id->index;
	sw->hold_n++;
	sw->stats.held++;
	return 0;
}

static void ds_hold_pop(struct devswitch *sw)
{
	free(sw->hold[sw->hold_head].buf);
	sw->hold[sw->hold_head].buf = NULL;
	sw->hold_head = (sw->hold_head + 1) % DS_HOLD_MAX;
	sw->hold_n--;
}

/* The driver these were for is gone (restart, death, close). */
void ds_hold_drop(struct devswitch *sw)
{
	while (sw->hold_n)
		ds_hold_pop(sw);
}

/*
 * Run @c unless what it depends on failed; complete it, or, when it
 * fails and the policy stops the guest, hold it (@retry: it is held
 * already, at the head) and return false.
 */
static bool ds_exec_try(struct devswitch *sw, const Pv__DeviceCommand *c,
			struct ds_req *q, bool retry)
{
	uint64_t grown = sw->img->size;
	size_t rlen = 0;
	int status;

	status = ds_after_status(sw, c);
	if (status) {
		/* a consequence, not a host error: no policy stops for it */
		sw->stats.dep_failed++;
		ds_complete(sw, c->id, status, 0);
		return true;
	}
	status = ds_barrier(sw, c);
	if (!status)
		status = ds_fault_error(sw, c);
	if (!status)
		status = ds_exec(sw, c, &rlen);
	if (!status && ds_op_writes(c->op))
		ds_note_written(sw, c->id);
	if (retry)
		sw->stats.retried++;
	if (status < 0 && ds_policy_stops(sw, c, q, status) &&
	    (retry || !ds_hold_add(sw, c))) {
		ds_stop(sw, c, status);
		return false;
	}
	ds_audit(sw, c->id);
	sw->stats.executed++;
	ds_fault_grow(sw, c, grown);
	ds_fault_hit(sw, DSF_COMMAND);
	if (status < 0) {
		sw->stats.exec_errors++;
		qb_log(LOG_WARNING, "disk%d: %s at %" PRIu64 ": %s", sw->index,
		       ds_op_name(c->op), c->offset, strerror(-status));
	}
	ds_complete(sw, c->id, status, rlen);
	return true;
}

/* A validated command of the active: run it, or hold it behind others. */
void ds_exec_command(struct devswitch *sw, const Pv__DeviceCommand *c,
		     struct ds_req *q)
{
	int err;

	if (!sw->hold_n) {
		ds_exec_try(sw, c, q, false);
		return;
	}
	err = ds_hold_add(sw, c);
	if (!err)
		return;
	sw->stats.hold_overflow++;
	ds_complete(sw, c->id, err, 0);
}

/* Complete the held command @h with @status without unpacking it. */
static void ds_held_fail(struct devswitch *sw, const struct ds_held *h,
			 int status)
{
	Pv__OutputId id = PV__OUTPUT_ID__INIT;

	id.seq = h->seq;
	id.index = h->index;
	ds_complete(sw, &id, status, 0);
}

void devswitch_resume(struct devswitch *sw)
{
	while (sw->hold_n) {
		struct ds_held *h = &sw->hold[sw->hold_head];
		Pv__DeviceCommand *c;
		struct ds_req *q = NULL;
		bool done = true;

		c = pv__device_command__unpack(NULL, h->len, h->buf);
		if (c && c->request_seq)
			q = ds_req_find(sw, c->request_seq);
		if (!c)		/* no memory: it fails, it is not lost */
			ds_held_fail(sw, h, -ENOMEM);
		else if (c->request_seq && (!q || q->aborted))
			ds_complete(sw, c->id, -ECANCELED, 0);	/* reset meanwhile */
		else
			done = ds_exec_try(sw, c, q, true);
		pv__device_command__free_unpacked(c, NULL);
		if (!done)
			return;
		ds_hold_pop(sw);
	}
	pv_router_flush_acks(sw->rt);
	pv_router_settle(sw->rt);
}

uint32_t devswitch_held(const struct devswitch *sw)
{
	return sw->hold_n;
}

static uint8_t ds_inline_rw(struct devswitch *sw, const struct blk_req *r,
			    uint32_t *written)
{
	bool in = r->type == VIRTIO_BLK_T_IN;
	uint64_t len = in ? r->in_len : r->out_len;
	uint64_t off = r->sector * BLK_SECTOR_SIZE;
	unsigned int first = in ? r->nr_out : 0;
	unsigned int n = in ? r->nr_in : r->nr_out;

	if (r->sector > sw->capacity / BLK_SECTOR_SIZE ||
	    len > sw->capacity - off || (!in && sw->img->readonly))
		return VIRTIO_BLK_S_IOERR;
	for (unsigned int i = first; i < first + n; i++) {
		const struct blk_seg *s = &r->seg[i];
		int err = in ?
			image_read_to_guest(sw->img, &sw->vm->mem, off,
					    s->gpa, s->len) :
			image_write_from_guest(sw->img, &sw->vm->mem, off,
					       s->gpa, s->len);

		if (err)
			return VIRTIO_BLK_S_IOERR;
		off += s->len;
	}
	*written = in ? len : 0;
	return VIRTIO_BLK_S_OK;
}

void ds_inline(struct devswitch *sw, const struct blk_req *r)
{
	uint32_t written = 0;
	uint8_t status;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		status = ds_inline_rw(sw, r, &written);
		break;
	case VIRTIO_BLK_T_FLUSH:
		status = image_flush(sw->img) ? VIRTIO_BLK_S_IOERR :
			 VIRTIO_BLK_S_OK;
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
	}
	sw->done(sw->owner, r->head, status, written);
}
