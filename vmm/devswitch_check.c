// SPDX-License-Identifier: GPL-2.0
/*
 * Validation of a driver's outputs before anything is done for them: a
 * command serves a request still in flight, its image range lies inside
 * the image, each guest segment inside that request's own buffers (in for
 * commands that write guest memory, out for ones that read it), what it
 * depends on ran before it; a guest completion's status and length. A
 * violation is counted, logged (rate-limited), answered with Error and
 * fails the request with IOERR (ds_reject()). The generation and id
 * checks are the router's (replication/router.h), which hands what fails
 * them to ds_rejected().
 */
#include <errno.h>
#include <string.h>

#include <linux/virtio_blk.h>
#include <qb/qblog.h>

#include "devswitch_priv.h"
#include "image.h"

void ds_log(struct devswitch *sw, const char *what, const char *why)
{
	uint64_t n = sw->stats.rejected + sw->stats.completions_rejected +
		     sw->stats.malformed + sw->stats.proto_errors;

	if (n <= DS_LOG_MAX)
		qb_log(LOG_WARNING, "disk%d: driver %s rejected: %s%s",
		       sw->index, what, why,
		       n == DS_LOG_MAX ? " (no more of these logged)" : "");
}

/* Log, tell the driver, fail the request. */
static void ds_refuse(struct devswitch *sw, const char *what,
		      struct ds_req *q, const char *why)
{
	ds_log(sw, what, why);
	if (q)
		ds_req_abort(sw, q);
	pv_router_reject(sw->rt, why);
}

/* Reject an output: count, log, tell the driver, fail its request. */
void ds_reject(struct devswitch *sw, const char *what, uint64_t *ctr,
	       struct ds_req *q, const char *why)
{
	(*ctr)++;
	ds_refuse(sw, what, q, why);
}

/*
 * The router's ops->rejected: a message of the active the router refused
 * (counted there): an output that failed its generation or id checks,
 * one a driver does not send, one that did not decode (@env NULL).
 */
void ds_rejected(void *owner, const Pv__Envelope *env, const char *why)
{
	struct devswitch *sw = owner;
	Pv__Envelope__MsgCase type = env ? env->msg_case :
				     PV__ENVELOPE__MSG__NOT_SET;
	struct ds_req *q = NULL;

	switch (type) {
	case PV__ENVELOPE__MSG_DEVICE_COMMAND:
		sw->stats.commands++;
		if (env->device_command->request_seq)
			q = ds_req_find(sw, env->device_command->request_seq);
		ds_refuse(sw, "command", q, why);
		sw->stats.rejected++;
		break;
	case PV__ENVELOPE__MSG_GUEST_COMPLETION:
		q = ds_req_find(sw, env->guest_completion->request_seq);
		ds_refuse(sw, "completion", q, why);
		break;
	case PV__ENVELOPE__MSG_ATTACH:
		ds_refuse(sw, "attach", NULL, why);
		if (sw->state == DS_STARTING)
			ds_driver_dead(sw, "it sent an unusable Attach");
		break;
	default:
		ds_refuse(sw, env ? pv_msg_name(env) : "message", NULL, why);
	}
}

static bool ds_seg_inside(const struct blk_req *r, bool in,
			  const Pv__Segment *s)
{
	unsigned int first = in ? r->nr_out : 0;
	unsigned int n = in ? r->nr_in : r->nr_out;

	for (unsigned int i = first; i < first + n; i++) {
		const struct blk_seg *g = &r->seg[i];

		if (s->gpa >= g->gpa && s->len <= g->len &&
		    s->gpa - g->gpa <= g->len - s->len)
			return true;
	}
	return false;
}

static bool ds_op_guest(Pv__CommandOp op)
{
	return op == PV__COMMAND_OP__CMD_READ_TO_GUEST ||
	       op == PV__COMMAND_OP__CMD_WRITE_FROM_GUEST ||
	       op == PV__COMMAND_OP__CMD_ZERO_GUEST;
}

/* Writes may extend the image up to its limit; a discard stays inside. */
static bool ds_op_grows(Pv__CommandOp op)
{
	return op == PV__COMMAND_OP__CMD_WRITE_FROM_GUEST ||
	       op == PV__COMMAND_OP__CMD_WRITE_DATA ||
	       op == PV__COMMAND_OP__CMD_WRITE_ZEROES;
}

bool ds_op_writes(Pv__CommandOp op)
{
	return ds_op_grows(op) || op == PV__COMMAND_OP__CMD_DISCARD;
}

static const char *ds_check_segs(const Pv__DeviceCommand *c,
				 const struct ds_req *q)
{
	bool in = c->op != PV__COMMAND_OP__CMD_WRITE_FROM_GUEST;
	uint64_t total = 0;

	if (!ds_op_guest(c->op))
		return c->n_segments ? "guest segments on a non-guest command" :
		       NULL;
	if (!q)
		return "guest command without a request";
	if (!c->n_segments)
		return "guest command without segments";
	for (size_t i = 0; i < c->n_segments; i++) {
		if (!ds_seg_inside(&q->r, in, c->segments[i]))
			return in ? "guest segment outside the request's in buffers" :
			       "guest segment outside the request's out buffers";
		total += c->segments[i]->len;
	}
	if (c->op != PV__COMMAND_OP__CMD_ZERO_GUEST && total != c->length)
		return "segment lengths do not add up to the command length";
	return NULL;
}

static const char *ds_check_range(struct devswitch *sw,
				  const Pv__DeviceCommand *c)
{
	uint64_t len = c->length;

	switch (c->op) {
	case PV__COMMAND_OP__CMD_ZERO_GUEST:
	case PV__COMMAND_OP__CMD_FLUSH:
		return NULL;
	case PV__COMMAND_OP__CMD_WRITE_DATA:
		len = c->data.len;
		break;
	case PV__COMMAND_OP__CMD_READ_FOR_DRIVER:
		if (len > PV_DATA_MAX)
			return "read for the driver larger than a message";
		break;
	default:
		break;
	}
	if (ds_op_grows(c->op) ?
	    !image_write_range_ok(sw->img, c->offset, len) :
	    !image_range_ok(sw->img, c->offset, len))
		return "image range outside the image";
	return NULL;
}

const char *ds_check_after(struct devswitch *sw,
			   const Pv__DeviceCommand *c)
{
	for (size_t i = 0; i < c->n_after; i++)
		if (pv_router_id_cmp(sw->rt, c->after[i]) >= 0)
			return "depends on an output not executed before it";
	for (size_t i = 0; i < c->n_durable; i++)
		if (pv_router_id_cmp(sw->rt, c->durable[i]) >= 0)
			return "depends on an output not executed before it";
	return NULL;
}

const char *ds_check_command(struct devswitch *sw,
			     const Pv__DeviceCommand *c,
			     const struct ds_req *q)
{
	const char *why;

	if ((unsigned int)c->op > PV_CMD_OP_LAST)
		return "unknown command";
	if (ds_op_writes(c->op) && sw->img->readonly)
		return "write to a read-only disk";
	why = ds_check_range(sw, c);
	if (!why)
		why = ds_check_segs(c, q);
	return why;
}

const char *ds_check_gc(const Pv__GuestCompletion *g,
			const struct ds_req *q)
{
	if (g->status > VIRTIO_BLK_S_UNSUPP)
		return "unknown virtio status";
	if (g->written > q->r.in_len)
		return "more bytes written than the request's in buffers";
	return NULL;
}

/* Before Attach a driver may only read its metadata (qcow2 header...). */
bool ds_metadata_read(const Pv__DeviceCommand *c)
{
	return c->op == PV__COMMAND_OP__CMD_READ_FOR_DRIVER &&
	       !c->request_seq;
}

const char *ds_check_attach(const struct devswitch *sw, const Pv__Attach *a)
{
	if (sw->attached)
		return "second Attach";
	if (!a->virtual_size || a->virtual_size % BLK_SECTOR_SIZE)
		return "Attach without a usable virtual size";
	if (!strcmp(a->format, "raw") && a->virtual_size > sw->img->size)
		return "raw virtual size larger than the image";
	return NULL;
}
