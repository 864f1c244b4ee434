// SPDX-License-Identifier: GPL-2.0
/*
 * The raw-image block driver: Open -> Attach; a read or write becomes one
 * command moving image bytes to or from the request's own guest segments;
 * a flush becomes CMD_FLUSH; a write-zeroes CMD_WRITE_ZEROES and a discard
 * CMD_DISCARD over the request's one range (none for an empty range);
 * when the commands of a request completed, the guest gets its completion. The request table and the completion
 * bookkeeping are format independent (qcow2 will add commands per request).
 */
#include <errno.h>
#include <string.h>

#include <linux/virtio_blk.h>

#include "blk.h"

/* one DeviceCommand with PV_SEGS_MAX segments, encoded, with slack */
#define BLK_OUTPUT_MAX	(PV_SEGS_MAX * 24 + 1024)

static int blk_init(void *state)
{
	struct blk_state *st = state;

	st->attached = 0;
	return 0;
}

static int blk_open(struct blk_state *st, const Pv__Open *o,
		    struct replica_out *out)
{
	Pv__Envelope env = PV__ENVELOPE__INIT;
	Pv__Attach at = PV__ATTACH__INIT;

	if (st->attached) {
		replica_out_fail(out, "the disk is already open");
		return -EALREADY;
	}
	if (strcmp(o->format, "raw")) {
		replica_out_fail(out, "format not supported by this driver");
		return -EPROTONOSUPPORT;
	}
	st->attached = 1;
	st->read_only = o->read_only;
	st->image_size = o->image_size;
	st->virtual_size = o->image_size & ~(uint64_t)(BLK_SECTOR - 1);
	strcpy(st->format, "raw");
	at.format = st->format;
	at.virtual_size = st->virtual_size;
	at.layout_version = BLK_LAYOUT_VERSION;
	env.msg_case = PV__ENVELOPE__MSG_ATTACH;
	env.attach = &at;
	return replica_emit(out, &env);
}

/* ---- requests in flight ---- */

static struct blk_req *req_alloc(struct blk_state *st, uint64_t seq)
{
	struct blk_req *req;

	if (st->inflight >= BLK_INFLIGHT_MAX)
		return NULL;
	for (uint32_t i = 0; i < BLK_INFLIGHT_MAX; i++) {
		req = &st->reqs[(seq + i) % BLK_INFLIGHT_MAX];
		if (req->seq)
			continue;
		memset(req, 0, sizeof(*req));
		req->seq = seq;
		st->inflight++;
		return req;
	}
	return NULL;
}

static void req_free(struct blk_state *st, struct blk_req *req)
{
	memset(req, 0, sizeof(*req));
	st->inflight--;
}

static struct blk_cmd_ref *req_cmd(struct blk_req *req,
				   const Pv__OutputId *id)
{
	return blk_cmd_find(req->cmds, req->ncmds, id);
}

/* Commands usually answer the input that made them: look there first. */
static struct blk_req *req_by_cmd(struct blk_state *st,
				  const Pv__OutputId *id,
				  struct blk_cmd_ref **cmd)
{
	struct blk_req *req = &st->reqs[id->seq % BLK_INFLIGHT_MAX];

	*cmd = req->seq ? req_cmd(req, id) : NULL;
	if (*cmd)
		return req;
	for (uint32_t i = 0; i < BLK_INFLIGHT_MAX; i++) {
		req = &st->reqs[i];
		*cmd = req->seq ? req_cmd(req, id) : NULL;
		if (*cmd)
			return req;
	}
	return NULL;
}

/* Issue one command for @req; it remembers the id to match completions. */
static int req_command(struct blk_req *req, Pv__DeviceCommand *cmd,
		       struct replica_out *out)
{
	Pv__Envelope env = PV__ENVELOPE__INIT;
	struct blk_cmd_ref *ref;
	int err;

	if (req->ncmds >= BLK_CMDS_MAX)
		return -E2BIG;
	ref = &req->cmds[req->ncmds];
	replica_out_next_id(out, &ref->seq, &ref->index);
	cmd->request_seq = req->seq;
	env.msg_case = PV__ENVELOPE__MSG_DEVICE_COMMAND;
	env.device_command = cmd;
	err = replica_emit(out, &env);
	if (err)
		return err;
	req->ncmds++;
	req->pending++;
	return 0;
}

/* ---- validation ---- */

/* Total bytes of the data segments: some, sector multiples, in a u32. */
static int data_len(size_t n, Pv__Segment **segs, uint64_t *len)
{
	uint64_t total = 0;

	if (!n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		total += segs[i]->len;
	if (total % BLK_SECTOR || total > UINT32_MAX)
		return -EINVAL;
	*len = total;
	return 0;
}

static int range_ok(const struct blk_state *st, uint64_t sector, uint64_t len)
{
	uint64_t off;

	if (sector > UINT64_MAX / BLK_SECTOR)
		return 0;
	off = sector * BLK_SECTOR;
	return off <= st->virtual_size && len <= st->virtual_size - off;
}

/*
 * A read (in segments, device-writable) or a write (out segments): the
 * wrong direction present or the right one missing is a bad request.
 */
static int rw_check(const struct blk_state *st, const Pv__IoRequest *io,
		    uint64_t *len)
{
	bool rd = io->type == VIRTIO_BLK_T_IN;
	size_t n = rd ? io->n_in : io->n_out;
	size_t other = rd ? io->n_out : io->n_in;

	if (other || data_len(n, rd ? io->in : io->out, len))
		return -EINVAL;
	return range_ok(st, io->sector, *len) ? 0 : -ERANGE;
}

/* ---- translation ---- */

static int raw_rw(struct blk_state *st, const Pv__IoRequest *io,
		  struct blk_req *req, uint64_t len, struct replica_out *out)
{
	Pv__DeviceCommand cmd = PV__DEVICE_COMMAND__INIT;
	bool rd = io->type == VIRTIO_BLK_T_IN;

	cmd.op = rd ? PV__COMMAND_OP__CMD_READ_TO_GUEST :
		      PV__COMMAND_OP__CMD_WRITE_FROM_GUEST;
	cmd.offset = io->sector * BLK_SECTOR;
	cmd.length = len;
	cmd.n_segments = rd ? io->n_in : io->n_out;
	cmd.segments = rd ? io->in : io->out;
	req->written = rd ? (uint32_t)len : 0;
	if (rd)
		st->stats.reads++;
	else
		st->stats.writes++;
	return req_command(req, &cmd, out);
}

static int raw_flush(struct blk_state *st, struct blk_req *req,
		     struct replica_out *out)
{
	Pv__DeviceCommand cmd = PV__DEVICE_COMMAND__INIT;

	cmd.op = PV__COMMAND_OP__CMD_FLUSH;
	st->stats.flushes++;
	return req_command(req, &cmd, out);
}

/* Image bytes are disk bytes: the range as it is, no guest segments. */
static int raw_dwz(const Pv__IoRequest *io, struct blk_req *req,
		   const struct blk_dwz *z, struct replica_out *out)
{
	Pv__DeviceCommand cmd = PV__DEVICE_COMMAND__INIT;

	cmd.op = io->type == VIRTIO_BLK_T_DISCARD ?
		 PV__COMMAND_OP__CMD_DISCARD : PV__COMMAND_OP__CMD_WRITE_ZEROES;
	cmd.offset = z->offset;
	cmd.length = z->length;
	return req_command(req, &cmd, out);
}

/* Answer at once (UNSUPP, IOERR, or OK with nothing to do). */
static int reject(struct blk_state *st, const Pv__IoRequest *io,
		  uint32_t status, uint64_t *counter, struct replica_out *out)
{
	if (counter)
		(*counter)++;
	st->stats.completed++;
	return blk_emit_completion(out, io->seq, status, 0, 0);
}

static bool type_dwz(uint32_t type)
{
	return type == VIRTIO_BLK_T_DISCARD ||
	       type == VIRTIO_BLK_T_WRITE_ZEROES;
}

/*
 * VIRTIO_BLK_S_OK when @io needs commands (*@len for a read or write, *@z
 * for a discard or write-zeroes), else the status to answer with at once
 * and in *@ctr the counter that counts it.
 */
static uint32_t req_check(struct blk_state *st, const Pv__IoRequest *io,
			  uint64_t *len, struct blk_dwz *z, uint64_t **ctr)
{
	bool rw = io->type == VIRTIO_BLK_T_IN || io->type == VIRTIO_BLK_T_OUT;
	uint32_t status;

	*ctr = &st->stats.unsupported;
	if (!rw && !type_dwz(io->type) && io->type != VIRTIO_BLK_T_FLUSH)
		return VIRTIO_BLK_S_UNSUPP;
	*ctr = &st->stats.bad_requests;
	if (!st->attached)
		return VIRTIO_BLK_S_IOERR;
	if ((io->type == VIRTIO_BLK_T_OUT || type_dwz(io->type)) &&
	    st->read_only) {
		*ctr = &st->stats.read_only;
		return VIRTIO_BLK_S_IOERR;
	}
	if (rw)
		return rw_check(st, io, len) ? VIRTIO_BLK_S_IOERR :
		       VIRTIO_BLK_S_OK;
	if (io->type == VIRTIO_BLK_T_FLUSH)
		return VIRTIO_BLK_S_OK;
	status = blk_dwz_check(io, st->virtual_size, z);
	if (status == VIRTIO_BLK_S_UNSUPP)
		*ctr = &st->stats.unsupported;
	return status;
}

static int blk_request(struct blk_state *st, const Pv__IoRequest *io,
		       struct replica_out *out)
{
	struct blk_dwz z = { 0 };
	struct blk_req *req;
	uint64_t len = 0, *ctr;
	uint32_t status;

	st->stats.requests++;
	status = req_check(st, io, &len, &z, &ctr);
	if (status != VIRTIO_BLK_S_OK)
		return reject(st, io, status, ctr, out);
	if (type_dwz(io->type) && !z.length)
		return reject(st, io, VIRTIO_BLK_S_OK, NULL, out);
	req = req_alloc(st, io->seq);
	if (!req)
		return reject(st, io, VIRTIO_BLK_S_IOERR,
			      &st->stats.table_full, out);
	req->type = io->type;
	if (type_dwz(io->type))
		return raw_dwz(io, req, &z, out);
	if (io->type == VIRTIO_BLK_T_FLUSH)
		return raw_flush(st, req, out);
	return raw_rw(st, io, req, len, out);
}

static int blk_complete(struct blk_state *st, const Pv__DeviceCompletion *dc,
			struct replica_out *out)
{
	struct blk_cmd_ref *cmd;
	struct blk_req *req;
	uint32_t status;
	int err;

	req = req_by_cmd(st, dc->command, &cmd);
	if (!req) {
		st->stats.unknown_completions++;
		replica_out_fail(out, "completion for no command in flight");
		return -ENOENT;
	}
	cmd->done = 1;
	req->pending--;
	if (dc->status) {
		if (!req->failed++)
			req->host_error = dc->status;
		st->stats.failed_commands++;
	}
	if (req->pending)
		return 0;
	status = req->failed ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	err = blk_emit_completion(out, req->seq, status,
			      req->failed ? 0 : req->written, req->host_error);
	st->stats.completed++;
	req_free(st, req);
	return err;
}

static int blk_apply(void *state, const Pv__Envelope *in,
		     struct replica_out *out)
{
	struct blk_state *st = state;

	switch (in->msg_case) {
	case PV__ENVELOPE__MSG_OPEN:
		return blk_open(st, in->open, out);
	case PV__ENVELOPE__MSG_IO_REQUEST:
		return blk_request(st, in->io_request, out);
	case PV__ENVELOPE__MSG_DEVICE_COMPLETION:
		return blk_complete(st, in->device_completion, out);
	default:
		return -EINVAL;
	}
}

static const struct replica_variant blk_raw_variants[] = {
	{ "raw", BLK_RAW_MACHINE_VERSION },
	{ NULL, 0 },
};

const struct replica_ops blk_raw_ops = {
	.name = "blk-raw",
	.layout_version = BLK_LAYOUT_VERSION,
	.variants = blk_raw_variants,
	.state_size = sizeof(struct blk_state),
	.max_output_bytes = BLK_OUTPUT_MAX,
	.first_input = PV__ENVELOPE__MSG_OPEN,
	.init = blk_init,
	.apply = blk_apply,
};
