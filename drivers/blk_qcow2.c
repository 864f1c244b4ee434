// SPDX-License-Identifier: GPL-2.0
/*
 * The qcow2 block driver (version 2 and 3 images without compression,
 * encryption, backing file, external data file, extended L2 entries or
 * internal snapshots).
 *
 * Open reads the header, then the L1 and refcount tables, with
 * CMD_READ_FOR_DRIVER, and attaches. A guest request is cut at cluster
 * boundaries; each piece needs its L2 table (and, to allocate, the refcount
 * block of the next free cluster) in the cache. When one is missing the
 * request is parked and loads are issued; the loads' completions are
 * inputs like any other, so the spare sees the same bytes.
 *
 * A write to a cluster without data allocates it (blk_qcow2_alloc.c)
 * and writes in a safe order, each command naming the ones it must
 * follow (`after`) or that must be on stable storage first (`durable`):
 * cluster counted (and zeroed) -> zeroes for a partial cluster -> guest
 * data -> L2 entry, the count durable first; a new L2 table: zeroed, then
 * the L1 entry. A crash or a power loss therefore never leaves a table
 * entry pointing at a cluster whose refcount is 0 or past the end of the
 * file; at worst a cluster is counted but unused (a leak).
 *
 * DISCARD and WRITE_ZEROES with unmap free whole clusters: L2 entry 0,
 * then, once durable, the refcount drops. Write zeroes without unmap
 * gives a whole cluster the zero flag (version 3) and zeroes part of one
 * in place.
 *
 * A command that failed fails what depends on it (the router sees to
 * that) and the request gets IOERR with its errno; the driver then reads
 * its metadata again (blk_qcow2_meta.c) rather than trust its cache.
 *
 * A request needing more commands than its table holds (a large request
 * over small clusters) waits, parked, for some of them to complete.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <linux/virtio_blk.h>

#include "blk_qcow2_priv.h"

int q2_emit(struct q2_state *st, Pv__Envelope *env,
	    struct replica_out *out, size_t cost)
{
	st->budget += cost;
	return replica_emit(out, env);
}

static int q2_guest_completion(struct q2_state *st, uint64_t req_seq,
			       uint32_t status, uint32_t written,
			       int32_t host_error, struct replica_out *out)
{
	st->stats.completed++;
	st->budget += 64;
	return blk_emit_completion(out, req_seq, status, written, host_error);
}

/*
 * Emit @cmd; its id goes to @id. With @req the request waits for its
 * completion (and fails if it failed); metadata commands carry no
 * request_seq, so the router never cancels them with a request.
 */
static int q2_command(struct q2_state *st, struct q2_req *req,
		      Pv__DeviceCommand *cmd, struct replica_out *out,
		      Pv__OutputId *id)
{
	Pv__Envelope env = PV__ENVELOPE__INIT;
	uint64_t seq;
	uint32_t index;
	int err;

	if (req && req->ncmds >= Q2_REQ_CMDS)
		return -E2BIG;
	replica_out_next_id(out, &seq, &index);
	env.msg_case = PV__ENVELOPE__MSG_DEVICE_COMMAND;
	env.device_command = cmd;
	err = q2_emit(st, &env, out, 64 + cmd->data.len +
		      16 * (cmd->n_segments + cmd->n_after +
			    cmd->n_durable));
	if (err)
		return err;
	if (id) {
		pv__output_id__init(id);
		id->seq = seq;
		id->index = index;
	}
	if (req) {
		req->cmds[req->ncmds].seq = seq;
		req->cmds[req->ncmds].index = index;
		req->cmds[req->ncmds].done = 0;
		req->ncmds++;
		req->pending++;
	}
	return 0;
}

int q2_read_for_driver(struct q2_state *st, uint64_t off,
		       uint64_t len, struct replica_out *out,
		       uint64_t *seq, uint32_t *index)
{
	Pv__DeviceCommand cmd = PV__DEVICE_COMMAND__INIT;
	Pv__OutputId id;
	int err;

	cmd.op = PV__COMMAND_OP__CMD_READ_FOR_DRIVER;
	cmd.offset = off;
	cmd.length = len;
	err = q2_command(st, NULL, &cmd, out, &id);
	*seq = id.seq;
	*index = id.index;
	return err;
}

/* CMD_WRITE_DATA of @len bytes at @off, following @d (may be NULL). */
int q2_write_data(struct q2_state *st, struct q2_req *req,
		  uint64_t off, const uint8_t *data, size_t len,
		  struct q2_deps *d, struct replica_out *out,
		  Pv__OutputId *id)
{
	Pv__DeviceCommand cmd = PV__DEVICE_COMMAND__INIT;

	cmd.op = PV__COMMAND_OP__CMD_WRITE_DATA;
	cmd.offset = off;
	cmd.data.data = (uint8_t *)data;
	cmd.data.len = len;
	q2_cmd_deps(&cmd, d);
	return q2_command(st, req, &cmd, out, id);
}

/*
 * A write into cached table @s (NULL: not cached): it follows @d and the
 * write in flight on @s, and is then the one on @s (q2_slot_pend()).
 */
int q2_table_write(struct q2_state *st, struct q2_req *req,
		   struct q2_slot *s, uint64_t off, const uint8_t *data,
		   size_t len, struct q2_deps *d, struct replica_out *out,
		   Pv__OutputId *id)
{
	int err;

	q2_dep_slot(d, s);
	err = q2_write_data(st, req, off, data, len, d, out, id);
	if (!err)
		q2_slot_pend(s, id);
	return err;
}

/* CMD_WRITE_ZEROES or CMD_DISCARD of [@off, +@len), following @d. */
int q2_range_cmd(struct q2_state *st, struct q2_req *req,
		 Pv__CommandOp op, uint64_t off, uint64_t len,
		 struct q2_deps *d, struct replica_out *out,
		 Pv__OutputId *id)
{
	Pv__DeviceCommand cmd = PV__DEVICE_COMMAND__INIT;

	cmd.op = op;
	cmd.offset = off;
	cmd.length = len;
	q2_cmd_deps(&cmd, d);
	return q2_command(st, req, &cmd, out, id);
}

int q2_write_zeroes(struct q2_state *st, struct q2_req *req,
		    uint64_t off, uint64_t len, struct q2_deps *d,
		    struct replica_out *out, Pv__OutputId *id)
{
	return q2_range_cmd(st, req, PV__COMMAND_OP__CMD_WRITE_ZEROES, off,
			    len, d, out, id);
}

static int q2_init(void *state)
{
	struct q2_state *st = state;

	st->stage = Q2_CLOSED;
	return 0;
}

static struct q2_req *q2_req_alloc(struct q2_state *st, uint64_t seq)
{
	if (st->inflight >= Q2_REQS)
		return NULL;
	for (uint32_t i = 0; i < Q2_REQS; i++) {
		struct q2_req *req = &st->reqs[(seq + i) % Q2_REQS];

		if (req->seq)
			continue;
		memset(req, 0, offsetof(struct q2_req, segs));
		req->seq = seq;
		st->inflight++;
		return req;
	}
	return NULL;
}

static void q2_req_free(struct q2_state *st, struct q2_req *req)
{
	memset(req, 0, offsetof(struct q2_req, segs));
	st->inflight--;
}

static void q2_queue_push(struct q2_state *st, struct q2_req *req)
{
	uint32_t idx = (uint32_t)(req - st->reqs) + 1;

	req->next = 0;
	if (st->qtail)
		st->reqs[st->qtail - 1].next = idx;
	else
		st->qhead = idx;
	st->qtail = idx;
}

struct q2_req *q2_queue_pop(struct q2_state *st)
{
	struct q2_req *req = &st->reqs[st->qhead - 1];

	st->qhead = req->next;
	if (!st->qhead)
		st->qtail = 0;
	req->next = 0;
	return req;
}

static struct blk_cmd_ref *q2_req_cmd(struct q2_req *req,
				      const Pv__OutputId *id)
{
	return blk_cmd_find(req->cmds, req->ncmds, id);
}

static struct q2_req *q2_req_by_cmd(struct q2_state *st,
				    const Pv__OutputId *id,
				    struct blk_cmd_ref **cmd)
{
	struct q2_req *req = &st->reqs[id->seq % Q2_REQS];

	*cmd = req->seq ? q2_req_cmd(req, id) : NULL;
	if (*cmd)
		return req;
	for (uint32_t i = 0; i < Q2_REQS; i++) {
		req = &st->reqs[i];
		*cmd = req->seq ? q2_req_cmd(req, id) : NULL;
		if (*cmd)
			return req;
	}
	return NULL;
}

/* Forget the request's completed commands: room for more. */
static uint32_t q2_req_compact(struct q2_req *req)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < req->ncmds; i++)
		if (!req->cmds[i].done)
			req->cmds[n++] = req->cmds[i];
	req->ncmds = n;
	return n + Q2_PIECE_CMDS <= Q2_REQ_CMDS;
}

/* Answer the guest when every command is made and completed. */
int q2_req_finish(struct q2_state *st, struct q2_req *req,
		  struct replica_out *out)
{
	uint32_t status;
	int err;

	if (!req->translated || req->pending)
		return 0;
	status = req->failed ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	err = q2_guest_completion(st, req->seq, status,
				  req->failed ? 0 : req->written,
				  req->failed ? req->host_error : 0, out);
	q2_req_free(st, req);
	return err;
}

/* @req failed: on the host (@host_error, -errno) or refused (0). */
void q2_req_fail(struct q2_req *req, int32_t host_error)
{
	if (!req->failed++)
		req->host_error = host_error;
}

/* The guest segments of bytes [from, from + len) of the request's data. */
static size_t q2_slice(const struct q2_req *req, uint64_t from, uint64_t len,
		       Pv__Segment *segs, Pv__Segment **ptrs)
{
	uint64_t pos = 0;
	size_t n = 0;

	for (uint32_t i = 0; i < req->nsegs && len; i++) {
		const struct q2_seg *s = &req->segs[i];
		uint64_t skip, take;

		if (pos + s->len <= from) {
			pos += s->len;
			continue;
		}
		skip = from > pos ? from - pos : 0;
		take = s->len - skip < len ? s->len - skip : len;
		pv__segment__init(&segs[n]);
		segs[n].gpa = s->gpa + skip;
		segs[n].len = (uint32_t)take;
		ptrs[n] = &segs[n];
		n++;
		from += take;
		len -= take;
		pos += s->len;
	}
	return n;
}

/* A guest command (read to / write from / zero the guest) for a piece. */
static int q2_guest_cmd(struct q2_state *st, struct q2_req *req,
			Pv__CommandOp op, uint64_t host, uint64_t len,
			struct q2_deps *d, struct replica_out *out,
			Pv__OutputId *id)
{
	Pv__DeviceCommand cmd = PV__DEVICE_COMMAND__INIT;
	Pv__Segment segs[Q2_REQ_SEGS];
	Pv__Segment *ptrs[Q2_REQ_SEGS];

	cmd.op = op;
	cmd.request_seq = req->seq;
	cmd.offset = op == PV__COMMAND_OP__CMD_ZERO_GUEST ? 0 : host;
	cmd.length = len;
	cmd.n_segments = q2_slice(req, req->done, len, segs, ptrs);
	cmd.segments = ptrs;
	q2_cmd_deps(&cmd, d);
	return q2_command(st, req, &cmd, out, id);
}

static void q2_piece_at(const struct q2_state *st, const struct q2_req *req,
			struct q2_piece *p)
{
	uint64_t v = req->sector * BLK_SECTOR + req->done;
	uint64_t cs = st->h.cluster_size, ci = v >> st->h.cluster_bits;

	p->in_off = v & (cs - 1);
	p->len = cs - p->in_off;
	if (p->len > req->len - req->done)
		p->len = req->len - req->done;
	p->l1i = (uint32_t)(ci >> st->h.l2_bits);
	p->l2i = (uint32_t)(ci & ((1ULL << st->h.l2_bits) - 1));
}

/*
 * The L2 entry of @p, or 0 with *@l2 NULL when there is no table; its
 * cached table's slot to *@slot when @slot.
 */
static uint64_t q2_l2_entry(struct q2_state *st, const struct q2_piece *p,
			    uint8_t **l2, struct q2_slot **slot)
{
	uint64_t off = st->l1[p->l1i] & Q2_OFF_MASK;
	struct q2_slot *s;

	*l2 = NULL;
	if (slot)
		*slot = NULL;
	if (!off)
		return 0;
	s = q2_slot_find(st, st->l2s, Q2_L2_SLOTS, off);
	if (!s || s->loading)
		return 0;
	*l2 = q2_l2_data(st, s);
	if (slot)
		*slot = s;
	return get64(*l2 + 8 * p->l2i);
}

/*
 * Make sure the metadata of the piece is cached: its L2 table and, for a
 * write, the refcount blocks of the next clusters to allocate, a freed
 * one's or those at the end. 0: ready; -EAGAIN: loads issued; else an
 * error for the piece.
 */
int q2_piece_ready(struct q2_state *st, const struct q2_piece *p,
		   bool write, struct replica_out *out)
{
	uint64_t l2off = st->l1[p->l1i] & Q2_OFF_MASK;
	int err = 0, ready = 1;

	if (l2off)
		ready &= q2_cached(st, true, l2off, out, &err);
	if (write && !err && q2_reuse_prepare(st, out, &err))
		ready = 0;
	for (uint64_t k = 0; write && k < 4 && !err; k++) {
		uint64_t c = (st->next_free >> st->h.cluster_bits) + k;
		uint64_t rbi = c >> st->h.rb_bits, rb;

		if (rbi >= st->h.rt_size)
			break;
		rb = st->rt[rbi] & Q2_OFF_MASK;
		if (rb)
			ready &= q2_cached(st, false, rb, out, &err);
	}
	if (err)
		return err;
	return ready ? 0 : -EAGAIN;
}

static int q2_piece_read(struct q2_state *st, struct q2_req *req,
			 const struct q2_piece *p, struct replica_out *out)
{
	uint8_t *l2;
	uint64_t e = q2_l2_entry(st, p, &l2, NULL), host = e & Q2_OFF_MASK;

	if (e & Q2_COMPRESSED)
		return -EOPNOTSUPP;
	if (!host || (e & Q2_ZERO)) {
		st->stats.zero_reads++;
		return q2_guest_cmd(st, req, PV__COMMAND_OP__CMD_ZERO_GUEST, 0,
				    p->len, NULL, out, NULL);
	}
	return q2_guest_cmd(st, req, PV__COMMAND_OP__CMD_READ_TO_GUEST,
			    host + p->in_off, p->len, NULL, out, NULL);
}

/*
 * A write to a cluster without data: allocate it (unless preallocated
 * with the zero flag), zero it when the piece does not cover it (a
 * cluster of a zeroed run, q2_alloc(), reads zeros already), write
 * the data, then the L2 entry after the refcount (durable), zeroes and
 * data. Zeroes and data follow the refcount: a cluster that could not be
 * allocated (maybe still someone else's) is never written.
 */
static int q2_piece_alloc(struct q2_state *st, struct q2_req *req,
			  const struct q2_piece *p, uint64_t e,
			  struct replica_out *out)
{
	struct q2_deps dz = { 0 }, dd = { 0 }, dl = { 0 };
	Pv__OutputId rid = PV__OUTPUT_ID__INIT, zid = PV__OUTPUT_ID__INIT;
	Pv__OutputId did, eid;
	uint64_t host = e & Q2_OFF_MASK, l2off;
	struct q2_slot *s;
	uint8_t *l2, ent[8];
	bool zeroed = false;
	int err = 0;

	if (!(st->l1[p->l1i] & Q2_OFF_MASK))
		err = q2_new_l2(st, req, p, out);
	if (!err && !host) {
		err = q2_alloc(st, req, out, &host, &rid, &zeroed);
		st->stats.clusters++;
	}
	q2_dep(&dz, &rid);
	if (!err && !zeroed && p->len < st->h.cluster_size)
		err = q2_write_zeroes(st, req, host, st->h.cluster_size, &dz,
				      out, &zid);
	if (err)
		return err;
	q2_dep(&dd, &rid);
	q2_dep(&dd, &zid);
	err = q2_guest_cmd(st, req, PV__COMMAND_OP__CMD_WRITE_FROM_GUEST,
			   host + p->in_off, p->len, &dd, out, &did);
	q2_l2_entry(st, p, &l2, &s);
	if (err || !l2)
		return err ? err : -EIO;
	q2_dep_durable(&dl, &rid);	/* the refcount before the reference */
	q2_dep(&dl, &zid);
	q2_dep(&dl, &did);
	l2off = st->l1[p->l1i] & Q2_OFF_MASK;
	put64(l2 + 8 * p->l2i, host | Q2_COPIED);
	memcpy(ent, l2 + 8 * p->l2i, 8);
	return q2_table_write(st, req, s, l2off + 8 * p->l2i, ent, 8, &dl,
			      out, &eid);
}

static int q2_piece_write(struct q2_state *st, struct q2_req *req,
			  const struct q2_piece *p, struct replica_out *out)
{
	struct q2_deps d = { 0 };
	struct q2_slot *s;
	uint8_t *l2;
	uint64_t e = q2_l2_entry(st, p, &l2, &s), host = e & Q2_OFF_MASK;

	if (e & Q2_COMPRESSED)
		return -EOPNOTSUPP;
	if (!host || (e & Q2_ZERO))
		return q2_piece_alloc(st, req, p, e, out);
	/* the mapping may still be in flight: if it fails, so does this */
	q2_dep_slot(&d, s);
	return q2_guest_cmd(st, req, PV__COMMAND_OP__CMD_WRITE_FROM_GUEST,
			    host + p->in_off, p->len, &d, out, NULL);
}

/* Rewrite the L2 entry of @p (cached) to @e; the command's id to @id. */
int q2_set_l2(struct q2_state *st, struct q2_req *req,
	      const struct q2_piece *p, uint64_t e,
	      struct replica_out *out, Pv__OutputId *id)
{
	uint64_t l2off = st->l1[p->l1i] & Q2_OFF_MASK;
	struct q2_deps d = { 0 };
	Pv__OutputId own;
	struct q2_slot *s;
	uint8_t *l2, ent[8];
	int err;

	q2_l2_entry(st, p, &l2, &s);
	if (!l2)
		return -EIO;
	put64(l2 + 8 * p->l2i, e);
	memcpy(ent, l2 + 8 * p->l2i, 8);
	err = q2_table_write(st, req, s, l2off + 8 * p->l2i, ent, 8, &d, out,
			     id ? id : &own);
	return err;
}

/*
 * DISCARD and WRITE_ZEROES of one piece. Whole clusters are deallocated
 * (discard, or write zeroes with unmap) or, in a version 3 image, keep
 * their cluster and get the zero flag. A partial piece of a cluster with
 * data is zeroed in place by write zeroes and left alone by discard
 * (virtio lets a discarded range read old bytes). Unallocated and
 * zero-flagged clusters already read as zeros.
 */
static int q2_piece_zero(struct q2_state *st, struct q2_req *req,
			 const struct q2_piece *p, struct replica_out *out)
{
	bool full = p->len == st->h.cluster_size;
	bool discard = req->type == VIRTIO_BLK_T_DISCARD;
	struct q2_deps d = { 0 };
	struct q2_slot *s;
	uint8_t *l2;
	uint64_t e = q2_l2_entry(st, p, &l2, &s), host = e & Q2_OFF_MASK;

	if (e & Q2_COMPRESSED)
		return -EOPNOTSUPP;
	if (!host)
		return 0;
	if (full && (discard || req->unmap))
		return q2_free(st, req, p, host, out);
	if (discard || (e & Q2_ZERO))
		return 0;
	if (full && st->h.version == 3) {
		st->stats.zero_flagged++;
		return q2_set_l2(st, req, p, host | Q2_COPIED | Q2_ZERO, out,
				 NULL);
	}
	st->stats.zeroed++;
	q2_dep_slot(&d, s);
	return q2_write_zeroes(st, req, host + p->in_off, p->len, &d, out,
			       NULL);
}

int q2_piece(struct q2_state *st, struct q2_req *req,
	     struct replica_out *out)
{
	bool write = req->type == VIRTIO_BLK_T_OUT;
	struct q2_piece p;
	int err;

	q2_piece_at(st, req, &p);
	err = q2_piece_ready(st, &p, write, out);
	if (err)
		return err;
	if (write)
		err = q2_piece_write(st, req, &p, out);
	else if (req->type == VIRTIO_BLK_T_IN)
		err = q2_piece_read(st, req, &p, out);
	else
		err = q2_piece_zero(st, req, &p, out);
	if (err)
		return err;
	req->done += p.len;
	return 0;
}

/*
 * Make the request's commands; -EAGAIN: parked (loads, output budget). A
 * request that failed already stops here and waits for what it sent.
 */
static int q2_translate(struct q2_state *st, struct q2_req *req,
			struct replica_out *out)
{
	Pv__DeviceCommand cmd = PV__DEVICE_COMMAND__INIT;
	int err;

	if (req->type == VIRTIO_BLK_T_FLUSH) {
		cmd.op = PV__COMMAND_OP__CMD_FLUSH;
		req->translated = 1;
		err = q2_unreserve(st, req, out);
		return err ? err : q2_command(st, req, &cmd, out, NULL);
	}
	while (req->done < req->len && !req->failed) {
		if (st->budget > Q2_BUDGET)
			return -EAGAIN;
		if (req->ncmds + Q2_PIECE_CMDS > Q2_REQ_CMDS &&
		    !q2_req_compact(req)) {
			st->stats.cmds_full++;
			return -EAGAIN;	/* until some complete */
		}
		err = q2_piece(st, req, out);
		if (err == -EAGAIN)
			return err;
		if (err)
			break;
	}
	if (req->done < req->len && !req->failed) {
		q2_req_fail(req, 0);
		st->stats.refused++;
	}
	req->translated = 1;
	return 0;
}

/*
 * Translate parked requests in order while no load is in flight (a
 * resync's reads count as loads). After a resync failed, a waiting
 * request starts another.
 */
static int q2_run_queue(struct q2_state *st, struct replica_out *out)
{
	int err = 0;

	if (st->qhead && st->resync == Q2_RS_FAILED)
		return q2_resync_start(st, out);
	while (st->qhead && !st->loads && !err) {
		struct q2_req *req = &st->reqs[st->qhead - 1];

		if (q2_translate(st, req, out) == -EAGAIN) {
			st->stats.parked++;
			return 0;
		}
		q2_queue_pop(st);
		err = q2_req_finish(st, req, out);
	}
	return err;
}

static int q2_reject(struct q2_state *st, const Pv__IoRequest *io,
		     uint32_t status, uint64_t *counter,
		     struct replica_out *out)
{
	(*counter)++;
	return q2_guest_completion(st, io->seq, status, 0, 0, out);
}

/* Data bytes of a read or write: the right direction only, in range. */
static int q2_rw_check(const struct q2_state *st, const Pv__IoRequest *io,
		       uint64_t *len)
{
	bool rd = io->type == VIRTIO_BLK_T_IN;
	size_t n = rd ? io->n_in : io->n_out;
	Pv__Segment **segs = rd ? io->in : io->out;
	uint64_t total = 0, off;

	if ((rd ? io->n_out : io->n_in) || !n || n > Q2_REQ_SEGS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		total += segs[i]->len;
	if (total % BLK_SECTOR || total > UINT32_MAX)
		return -EINVAL;
	if (io->sector > UINT64_MAX / BLK_SECTOR)
		return -ERANGE;
	off = io->sector * BLK_SECTOR;
	if (off > st->h.size || total > st->h.size - off)
		return -ERANGE;
	*len = total;
	return 0;
}

static void q2_req_fill(struct q2_req *req, const Pv__IoRequest *io,
			uint64_t len)
{
	bool rd = io->type == VIRTIO_BLK_T_IN;
	size_t n = rd ? io->n_in : io->n_out;
	Pv__Segment **segs = rd ? io->in : io->out;

	req->type = io->type;
	req->sector = io->sector;
	req->len = len;
	req->written = rd ? (uint32_t)len : 0;
	req->nsegs = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		req->segs[i].gpa = segs[i]->gpa;
		req->segs[i].len = segs[i]->len;
		req->segs[i].pad = 0;
	}
}

static bool q2_is_dwz(uint32_t type)
{
	return type == VIRTIO_BLK_T_DISCARD ||
	       type == VIRTIO_BLK_T_WRITE_ZEROES;
}

/* A DISCARD or WRITE_ZEROES request: 0, or the status to reject it with. */
static uint32_t q2_dwz_check(struct q2_state *st, const Pv__IoRequest *io,
			     struct blk_dwz *dwz, uint64_t **counter)
{
	uint32_t status = blk_dwz_check(io, st->h.size, dwz);

	*counter = status == VIRTIO_BLK_S_UNSUPP ? &st->stats.unsupported :
		   &st->stats.bad_requests;
	if (status)
		return status;
	if (io->type == VIRTIO_BLK_T_DISCARD)
		st->stats.discards++;
	else
		st->stats.write_zeroes++;
	return VIRTIO_BLK_S_OK;
}

static void q2_count(struct q2_state *st, uint32_t type)
{
	if (type == VIRTIO_BLK_T_IN)
		st->stats.reads++;
	else if (type == VIRTIO_BLK_T_OUT)
		st->stats.writes++;
	else if (type == VIRTIO_BLK_T_FLUSH)
		st->stats.flushes++;
}

static int q2_request(struct q2_state *st, const Pv__IoRequest *io,
		      struct replica_out *out)
{
	bool rw = io->type == VIRTIO_BLK_T_IN || io->type == VIRTIO_BLK_T_OUT;
	bool dwz = q2_is_dwz(io->type);
	struct blk_dwz z = { 0 };
	uint64_t len = 0, *counter = &st->stats.bad_requests;
	uint32_t status = VIRTIO_BLK_S_OK;
	struct q2_req *req;

	st->stats.requests++;
	if (!rw && !dwz && io->type != VIRTIO_BLK_T_FLUSH)
		return q2_reject(st, io, VIRTIO_BLK_S_UNSUPP,
				 &st->stats.unsupported, out);
	if (st->stage != Q2_READY)
		return q2_reject(st, io, VIRTIO_BLK_S_IOERR,
				 &st->stats.bad_requests, out);
	if ((io->type == VIRTIO_BLK_T_OUT || dwz) && st->read_only)
		return q2_reject(st, io, VIRTIO_BLK_S_IOERR,
				 &st->stats.read_only, out);
	if (rw && q2_rw_check(st, io, &len))
		status = VIRTIO_BLK_S_IOERR;
	if (dwz)
		status = q2_dwz_check(st, io, &z, &counter);
	if (status)
		return q2_reject(st, io, status, counter, out);
	req = q2_req_alloc(st, io->seq);
	if (!req)
		return q2_reject(st, io, VIRTIO_BLK_S_IOERR,
				 &st->stats.table_full, out);
	q2_req_fill(req, io, dwz ? z.length : len);
	if (dwz) {
		req->sector = z.offset / BLK_SECTOR;
		req->unmap = z.unmap;
	}
	q2_count(st, io->type);
	q2_queue_push(st, req);
	return q2_run_queue(st, out);
}

/*
 * A cache load failed (-errno @status) or was refused (0: short): the
 * request that waits for it (the head) fails.
 */
static int q2_load_failed(struct q2_state *st, int32_t status,
			  struct replica_out *out)
{
	struct q2_req *req;

	if (!st->qhead)
		return 0;
	req = q2_queue_pop(st);
	q2_req_fail(req, status);
	req->translated = 1;
	st->stats.refused++;
	return q2_req_finish(st, req, out);
}

static int q2_complete(struct q2_state *st, const Pv__DeviceCompletion *dc,
		       struct replica_out *out)
{
	struct blk_cmd_ref *cmd;
	struct q2_req *req;
	int err = 0, ret;

	if (st->stage != Q2_READY && q2_open_completion(st, dc, out, &err))
		return err;
	if (q2_resync_completion(st, dc, out, &err))
		return err ? err : q2_run_queue(st, out);
	ret = q2_load_completion(st, dc);
	if (ret < 0)
		err = q2_load_failed(st, dc->status, out);
	if (ret)
		return err ? err : q2_run_queue(st, out);
	req = q2_req_by_cmd(st, dc->command, &cmd);
	if (!req) {
		st->stats.unknown_completions++;
		replica_out_fail(out, "completion for no command in flight");
		return -ENOENT;
	}
	cmd->done = 1;
	req->pending--;
	if (dc->status) {
		q2_req_fail(req, dc->status);
		st->stats.failed_commands++;
		if (st->resync == Q2_RS_NONE)
			err = q2_resync_start(st, out);
	} else {
		q2_pend_done(st, dc->command);
	}
	if (!err)
		err = q2_req_finish(st, req, out);
	return err ? err : q2_run_queue(st, out);
}

static int q2_apply(void *state, const Pv__Envelope *in,
		    struct replica_out *out)
{
	struct q2_state *st = state;

	st->budget = 0;
	switch (in->msg_case) {
	case PV__ENVELOPE__MSG_OPEN:
		return q2_open(st, in->open, out);
	case PV__ENVELOPE__MSG_IO_REQUEST:
		return q2_request(st, in->io_request, out);
	case PV__ENVELOPE__MSG_DEVICE_COMPLETION:
		return q2_complete(st, in->device_completion, out);
	default:
		return -EINVAL;
	}
}

static const struct replica_variant q2_variants[] = {
	{ "qcow2", Q2_MACHINE_VERSION },
	{ NULL, 0 },
};

const struct replica_ops blk_qcow2_ops = {
	.name = "blk-qcow2",
	.layout_version = Q2_LAYOUT_VERSION,
	.variants = q2_variants,
	.state_size = sizeof(struct q2_state),
	.max_output_bytes = Q2_OUTPUT_MAX,
	.first_input = PV__ENVELOPE__MSG_OPEN,
	.init = q2_init,
	.apply = q2_apply,
};
