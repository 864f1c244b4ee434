// SPDX-License-Identifier: GPL-2.0
/*
 * The device switch: routes one disk's guest requests to its driver
 * replica and executes what the driver answers (see devswitch.h and
 * proto/README.md for the conversation).
 *
 * Trust: the driver is a separate process that may be buggy or
 * compromised. Nothing it sends is used before pv_msg_decode() and the
 * checks here: the output's generation is the role table's, its id was
 * never executed and answers an input we sent, a command serves a request
 * still in flight, its image range lies inside the image and each guest
 * segment inside that request's own buffers (in for commands that write
 * guest memory, out for ones that read it). A violation is counted,
 * logged, answered with Error, and fails the request with IOERR.
 *
 * Exactly once: on one connection a replica applies inputs in order and
 * emits their outputs in id order, so the executed outputs are the ids up
 * to the last one executed. The id is recorded before the command runs;
 * an id at or below it is a duplicate and is never executed again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <qb/qblog.h>

#include "devswitch.h"
#include "image.h"
#include "replica.h"
#include "transport.h"
#include "virtio_blk.h"
#include "vm.h"
#include "wire.h"

#define DS_MAX_REQS	512		/* in flight + aborted, by seq */
#define DS_ACK_BATCH	64
#define DS_POLL_BATCH	256
#define DS_LOG_MAX	32		/* violation log lines per disk */
#define DS_SEND_WAIT_MS	1000
#define DS_CHILD_FD	3

enum ds_state {
	DS_INLINE,
	DS_STARTING,
	DS_RUNNING,
	DS_DEAD,
};

struct ds_req {
	uint64_t seq;		/* 0: free */
	bool aborted;		/* guest answered already: outputs dropped */
	struct blk_req r;
};

/* One driver replica: its process, link and progress. */
struct ds_replica {
	pid_t pid;
	struct pv_chan *ch;
	bool polled;
	uint64_t applied_seq;
	uint64_t ping_nonce;
	uint64_t last_pong_ns;
};

/* DESIGN.md's role table: one active, no spare yet, and the generation. */
struct ds_roles {
	uint32_t generation;
	struct ds_replica *active;
	struct ds_replica *spare;
};

struct devswitch {
	struct vm *vm;
	const struct vm_disk_config *dc;
	struct image *img;
	int index;
	ds_done_fn *done;
	void *owner;
	enum ds_state state;
	struct ds_roles roles;
	struct ds_replica replica;
	uint64_t next_seq;		/* next input sequence number */
	uint64_t exec_seq;		/* last executed output id */
	uint32_t exec_index;
	bool exec_any;
	uint64_t capacity;
	bool attached;
	qb_loop_timer_handle ping_timer;
	bool timer_armed;
	uint32_t nr_acks;
	Pv__OutputId acks[DS_ACK_BATCH];
	Pv__OutputId *ackp[DS_ACK_BATCH];
	Pv__Segment segs[BLK_SEG_MAX];
	Pv__Segment *segp[BLK_SEG_MAX];
	struct devswitch_stats stats;
	struct ds_req reqs[DS_MAX_REQS];
	uint8_t rdata[PV_DATA_MAX];
	uint8_t tx[PV_MSG_MAX];
	uint8_t rx[PV_MSG_MAX];
};

static void ds_driver_dead(struct devswitch *sw, const char *why);

/* ---- requests ---- */

static struct ds_req *ds_req_find(struct devswitch *sw, uint64_t seq)
{
	struct ds_req *q = &sw->reqs[seq % DS_MAX_REQS];

	return seq && q->seq == seq ? q : NULL;
}

static void ds_req_finish(struct devswitch *sw, struct ds_req *q,
			  uint8_t status, uint32_t written)
{
	if (!q->aborted)
		sw->done(sw->owner, q->r.head, status, written);
	q->seq = 0;
	q->aborted = false;
}

/* Answer the guest now; later outputs for the request are dropped. */
static void ds_req_abort(struct devswitch *sw, struct ds_req *q)
{
	if (q->aborted)
		return;
	sw->done(sw->owner, q->r.head, VIRTIO_BLK_S_IOERR, 0);
	q->aborted = true;
}

static void ds_fail_all(struct devswitch *sw)
{
	for (int i = 0; i < DS_MAX_REQS; i++) {
		struct ds_req *q = &sw->reqs[i];

		if (!q->seq)
			continue;
		if (!q->aborted)
			sw->stats.failed_dead++;
		ds_req_finish(sw, q, VIRTIO_BLK_S_IOERR, 0);
	}
}

void devswitch_cancel_all(struct devswitch *sw)
{
	for (int i = 0; i < DS_MAX_REQS; i++)
		if (sw->reqs[i].seq)
			sw->reqs[i].aborted = true;
}

/* ---- sending ---- */

static int ds_wait_writable(struct pv_chan *ch)
{
	struct pollfd p = { .fd = pv_chan_fd(ch), .events = POLLOUT };
	int n = poll(&p, 1, DS_SEND_WAIT_MS);

	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

/* Send @env to the active; a link that fails kills the driver. */
static int ds_send(struct devswitch *sw, const Pv__Envelope *env)
{
	struct ds_replica *rep = sw->roles.active;
	int len, ret;

	if (!rep || !rep->ch)
		return -ENOTCONN;
	len = pv_msg_encode(env, sw->tx, sizeof(sw->tx));
	if (len < 0) {
		qb_log(LOG_ERR, "disk%d: cannot encode %s: %s", sw->index,
		       pv_msg_name(env), strerror(-len));
		return len;
	}
	for (;;) {
		ret = pv_chan_send(rep->ch, sw->tx, len);
		if (ret != -EAGAIN)
			break;
		ret = ds_wait_writable(rep->ch);
		if (ret)
			break;
	}
	if (ret < 0) {
		ds_driver_dead(sw, ret == -ETIMEDOUT ?
			       "it stopped reading its channel" :
			       "its channel failed");
		return ret;
	}
	return 0;
}

static int ds_send_error(struct devswitch *sw, int code, const char *msg)
{
	Pv__Error e = PV__ERROR__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;

	e.code = code;
	e.message = (char *)msg;
	env.msg_case = PV__ENVELOPE__MSG_ERROR;
	env.error = &e;
	sw->stats.errors_sent++;
	return ds_send(sw, &env);
}

static void ds_flush_acks(struct devswitch *sw)
{
	Pv__Ack ack = PV__ACK__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;

	if (!sw->nr_acks || sw->state != DS_RUNNING)
		return;
	for (uint32_t i = 0; i < sw->nr_acks; i++)
		sw->ackp[i] = &sw->acks[i];
	ack.n_executed = sw->nr_acks;
	ack.executed = sw->ackp;
	env.msg_case = PV__ENVELOPE__MSG_ACK;
	env.ack = &ack;
	sw->nr_acks = 0;
	sw->stats.acks_sent++;
	ds_send(sw, &env);
}

static void ds_ack(struct devswitch *sw, const Pv__OutputId *id)
{
	Pv__OutputId *a = &sw->acks[sw->nr_acks++];

	pv__output_id__init(a);
	a->seq = id->seq;
	a->index = id->index;
	if (sw->nr_acks == DS_ACK_BATCH)
		ds_flush_acks(sw);
}

/* ---- violations ---- */

static void ds_log(struct devswitch *sw, const char *what, const char *why)
{
	uint64_t n = sw->stats.rejected + sw->stats.completions_rejected +
		     sw->stats.malformed + sw->stats.proto_errors;

	if (n <= DS_LOG_MAX)
		qb_log(LOG_WARNING, "disk%d: driver %s rejected: %s%s",
		       sw->index, what, why,
		       n == DS_LOG_MAX ? " (no more of these logged)" : "");
}

/* Reject an output: count, log, tell the driver, fail its request. */
static void ds_reject(struct devswitch *sw, const char *what, uint64_t *ctr,
		      struct ds_req *q, const char *why)
{
	(*ctr)++;
	ds_log(sw, what, why);
	if (q)
		ds_req_abort(sw, q);
	ds_send_error(sw, -EPERM, why);
}

/* ---- output ids and the role table ---- */

static int ds_id_cmp(const struct devswitch *sw, const Pv__OutputId *id)
{
	if (!sw->exec_any)
		return 1;
	if (id->seq != sw->exec_seq)
		return id->seq > sw->exec_seq ? 1 : -1;
	if (id->index != sw->exec_index)
		return id->index > sw->exec_index ? 1 : -1;
	return 0;
}

/*
 * The checks every output passes before anything is done for it. On
 * success the id is recorded as executed, before the caller executes it.
 */
static const char *ds_check_output(struct devswitch *sw,
				   const Pv__OutputId *id, uint32_t gen,
				   uint64_t **ctr)
{
	if (gen != sw->roles.generation) {
		*ctr = &sw->stats.stale_generation;
		return "generation does not match the role table";
	}
	if (!id->seq || id->seq >= sw->next_seq) {
		*ctr = &sw->stats.proto_errors;
		return "output of an input never sent";
	}
	if (ds_id_cmp(sw, id) <= 0) {
		*ctr = &sw->stats.duplicates;
		return "output id already executed";
	}
	sw->exec_seq = id->seq;
	sw->exec_index = id->index;
	sw->exec_any = true;
	return NULL;
}

/* ---- commands ---- */

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

static bool ds_op_writes(Pv__CommandOp op)
{
	return op == PV__COMMAND_OP__CMD_WRITE_FROM_GUEST ||
	       op == PV__COMMAND_OP__CMD_WRITE_DATA ||
	       op == PV__COMMAND_OP__CMD_WRITE_ZEROES;
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
	if (ds_op_writes(c->op) ?
	    !image_write_range_ok(sw->img, c->offset, len) :
	    !image_range_ok(sw->img, c->offset, len))
		return "image range outside the image";
	return NULL;
}

static const char *ds_check_after(struct devswitch *sw,
				  const Pv__DeviceCommand *c)
{
	for (size_t i = 0; i < c->n_after; i++)
		if (ds_id_cmp(sw, c->after[i]) >= 0)
			return "depends on an output not executed before it";
	return NULL;
}

static const char *ds_check_command(struct devswitch *sw,
				    const Pv__DeviceCommand *c,
				    const struct ds_req *q)
{
	const char *why;

	if ((unsigned int)c->op > PV__COMMAND_OP__CMD_FLUSH)
		return "unknown command";
	if (ds_op_writes(c->op) && sw->img->readonly)
		return "write to a read-only disk";
	why = ds_check_range(sw, c);
	if (!why)
		why = ds_check_segs(c, q);
	return why;
}

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

/* Run a validated command; *@rlen bytes of sw->rdata for the driver. */
static int ds_exec(struct devswitch *sw, const Pv__DeviceCommand *c,
		   size_t *rlen)
{
	*rlen = 0;
	switch (c->op) {
	case PV__COMMAND_OP__CMD_WRITE_DATA:
		return image_write(sw->img, c->offset, c->data.data,
				   c->data.len);
	case PV__COMMAND_OP__CMD_READ_FOR_DRIVER:
		*rlen = c->length;
		return image_read(sw->img, c->offset, sw->rdata, c->length);
	case PV__COMMAND_OP__CMD_WRITE_ZEROES:
		return image_write_zeroes(sw->img, c->offset, c->length);
	case PV__COMMAND_OP__CMD_FLUSH:
		return image_flush(sw->img);
	default:
		return ds_exec_segs(sw, c);
	}
}

/* A new input: what became of command @id. */
static void ds_send_completion(struct devswitch *sw, const Pv__OutputId *id,
			       int status, size_t rlen)
{
	Pv__DeviceCompletion dc = PV__DEVICE_COMPLETION__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	Pv__OutputId cid = PV__OUTPUT_ID__INIT;

	cid.seq = id->seq;
	cid.index = id->index;
	dc.seq = sw->next_seq++;
	dc.command = &cid;
	dc.status = status;
	if (!status && rlen) {
		dc.data.data = sw->rdata;
		dc.data.len = rlen;
	}
	env.msg_case = PV__ENVELOPE__MSG_DEVICE_COMPLETION;
	env.device_completion = &dc;
	sw->stats.inputs++;
	ds_send(sw, &env);
}

static void ds_on_command(struct devswitch *sw, const Pv__DeviceCommand *c)
{
	struct ds_req *q = NULL;
	const char *why;
	uint64_t *ctr = &sw->stats.rejected;
	size_t rlen;
	int status;

	sw->stats.commands++;
	if (c->request_seq) {
		q = ds_req_find(sw, c->request_seq);
		if (!q) {
			ds_reject(sw, "command", ctr, NULL,
				  "command for an unknown request");
			return;
		}
	}
	why = ds_check_output(sw, c->id, c->generation, &ctr);
	if (why) {
		ds_reject(sw, "command", ctr, q, why);
		if (ctr != &sw->stats.rejected)
			sw->stats.rejected++;
		return;
	}
	ds_ack(sw, c->id);
	if (q && q->aborted) {
		sw->stats.cancelled++;
		ds_send_completion(sw, c->id, -ECANCELED, 0);
		return;
	}
	why = ds_check_command(sw, c, q);
	if (!why)
		why = ds_check_after(sw, c);
	if (why) {
		ds_reject(sw, "command", &sw->stats.rejected, q, why);
		ds_send_completion(sw, c->id, -EPERM, 0);
		return;
	}
	status = ds_exec(sw, c, &rlen);
	sw->stats.executed++;
	if (status < 0) {
		sw->stats.exec_errors++;
		qb_log(LOG_WARNING, "disk%d: %s at %" PRIu64 ": %s", sw->index,
		       protobuf_c_enum_descriptor_get_value(
			       &pv__command_op__descriptor, c->op)->name,
		       c->offset, strerror(-status));
	}
	ds_send_completion(sw, c->id, status, rlen);
}

/* ---- guest completions, attach ---- */

static const char *ds_check_gc(const Pv__GuestCompletion *g,
			       const struct ds_req *q)
{
	if (g->status > VIRTIO_BLK_S_UNSUPP)
		return "unknown virtio status";
	if (g->written > q->r.in_len)
		return "more bytes written than the request's in buffers";
	return NULL;
}

static void ds_on_guest_completion(struct devswitch *sw,
				   const Pv__GuestCompletion *g)
{
	struct ds_req *q = ds_req_find(sw, g->request_seq);
	uint64_t *ctr = &sw->stats.completions_rejected;
	const char *why;

	if (!q) {
		ds_reject(sw, "completion", ctr, NULL,
			  "completion for an unknown request");
		return;
	}
	why = ds_check_output(sw, g->id, g->generation, &ctr);
	if (why) {
		ds_reject(sw, "completion", ctr, q, why);
		return;
	}
	ds_ack(sw, g->id);
	why = ds_check_gc(g, q);
	if (why) {
		ds_reject(sw, "completion", &sw->stats.completions_rejected,
			  q, why);
		ds_req_finish(sw, q, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	if (!q->aborted)
		sw->stats.completions++;
	ds_req_finish(sw, q, g->status, g->written);
}

/*
 * How far a qcow2 image may grow: every guest cluster allocated once plus
 * its metadata (an L2 entry is 8 bytes, a refcount 2, per cluster of at
 * least 512 bytes: under 1/32 of the data) and a table cluster's rounding.
 */
static uint64_t ds_qcow2_limit(uint64_t size, uint64_t virtual_size)
{
	return size + virtual_size + virtual_size / 16 + (8 << 20);
}

static void ds_on_attach(struct devswitch *sw, const Pv__Attach *a)
{
	uint64_t *ctr = &sw->stats.proto_errors;
	const char *why;

	why = ds_check_output(sw, a->id, a->generation, &ctr);
	if (!why && sw->attached)
		why = "second Attach";
	if (!why && (!a->virtual_size || a->virtual_size % BLK_SECTOR_SIZE))
		why = "Attach without a usable virtual size";
	if (!why && !strcmp(a->format, "raw") && a->virtual_size > sw->img->size)
		why = "raw virtual size larger than the image";
	if (why) {
		ds_reject(sw, "attach", ctr, NULL, why);
		if (sw->state == DS_STARTING)
			ds_driver_dead(sw, "it sent an unusable Attach");
		return;
	}
	ds_ack(sw, a->id);
	if (!strcmp(a->format, "qcow2"))
		image_allow_growth(sw->img, ds_qcow2_limit(sw->img->size,
							   a->virtual_size));
	sw->capacity = a->virtual_size;
	sw->attached = true;
	sw->state = DS_RUNNING;
	qb_log(LOG_INFO, "disk%d: %s attached by driver pid %d: %s, %" PRIu64
	       " bytes", sw->index, sw->dc->path, (int)sw->replica.pid,
	       a->format, a->virtual_size);
}

/* ---- receiving ---- */

/* Before Attach a driver may only read its metadata (qcow2 header...). */
static bool ds_metadata_read(const Pv__DeviceCommand *c)
{
	return c->op == PV__COMMAND_OP__CMD_READ_FOR_DRIVER &&
	       !c->request_seq;
}

static void ds_handle(struct devswitch *sw, const Pv__Envelope *env)
{
	struct ds_replica *rep = sw->roles.active;

	switch (env->msg_case) {
	case PV__ENVELOPE__MSG_ATTACH:
		ds_on_attach(sw, env->attach);
		break;
	case PV__ENVELOPE__MSG_DEVICE_COMMAND:
		if (sw->attached || ds_metadata_read(env->device_command))
			ds_on_command(sw, env->device_command);
		else
			ds_reject(sw, "command", &sw->stats.proto_errors, NULL,
				  "command before Attach");
		break;
	case PV__ENVELOPE__MSG_GUEST_COMPLETION:
		ds_on_guest_completion(sw, env->guest_completion);
		break;
	case PV__ENVELOPE__MSG_ACK:
		sw->stats.acks_received++;
		if (env->ack->applied_seq > rep->applied_seq &&
		    env->ack->applied_seq < sw->next_seq)
			rep->applied_seq = env->ack->applied_seq;
		sw->stats.applied_seq = rep->applied_seq;
		break;
	case PV__ENVELOPE__MSG_PONG:
		sw->stats.pongs++;
		rep->last_pong_ns = vm_clock_ns();
		break;
	case PV__ENVELOPE__MSG_ERROR:
		sw->stats.errors_received++;
		qb_log(LOG_WARNING, "disk%d: driver reports error %d: %s",
		       sw->index, env->error->code, env->error->message);
		if (sw->state == DS_STARTING)	/* it refused the Open */
			ds_driver_dead(sw, env->error->message);
		break;
	default:
		ds_reject(sw, pv_msg_name(env), &sw->stats.proto_errors, NULL,
			  "message a driver does not send");
	}
}

static void ds_receive(struct devswitch *sw, ssize_t n)
{
	const char *why = "undecodable";
	Pv__Envelope *env;

	env = pv_msg_decode(sw->rx, n, &why);
	if (!env) {
		ds_reject(sw, "message", &sw->stats.malformed, NULL, why);
		return;
	}
	ds_handle(sw, env);
	pv_msg_free(env);
}

void devswitch_poll(struct devswitch *sw)
{
	for (int i = 0; i < DS_POLL_BATCH; i++) {
		struct ds_replica *rep = sw->roles.active;
		ssize_t n;

		if (sw->state == DS_DEAD || sw->state == DS_INLINE || !rep)
			break;
		n = pv_chan_recv(rep->ch, sw->rx, sizeof(sw->rx));
		if (n == -EAGAIN || n == -EINTR)
			break;
		if (n == 0) {
			ds_driver_dead(sw, "it closed its channel");
			break;
		}
		if (n < 0 && n != -EMSGSIZE && n != -EPROTO) {
			ds_driver_dead(sw, "its channel failed");
			break;
		}
		if (n < 0)
			ds_reject(sw, "message", &sw->stats.malformed, NULL,
				  "oversized or truncated message");
		else
			ds_receive(sw, n);
	}
	ds_flush_acks(sw);
}

static int32_t ds_on_readable(int32_t fd, int32_t revents, void *data)
{
	struct devswitch *sw = data;

	(void)fd;
	(void)revents;
	pthread_mutex_lock(&sw->vm->lock);
	devswitch_poll(sw);
	pthread_mutex_unlock(&sw->vm->lock);
	return 0;
}

/* ---- the driver process ---- */

static void ds_log_exit(struct devswitch *sw, pid_t pid, int st,
			const char *why, bool killed)
{
	char how[64];

	if (WIFSIGNALED(st))
		snprintf(how, sizeof(how), "killed by signal %d%s",
			 WTERMSIG(st), killed ? " (by us)" : "");
	else
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(st));
	qb_log(sw->state == DS_DEAD ? LOG_ERR : LOG_INFO,
	       "disk%d: driver pid %d exited: %s (%s)", sw->index, (int)pid,
	       how, why);
}

/* Reap the driver; kill it when it does not go within ~200 ms. */
static void ds_reap(struct devswitch *sw, const char *why)
{
	pid_t pid = sw->replica.pid;
	bool killed = false;
	int st = 0;

	if (pid <= 0)
		return;
	for (int i = 0; i < 40; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			goto out;
		usleep(5000);
	}
	kill(pid, SIGKILL);
	killed = true;
	if (waitpid(pid, &st, 0) != pid)
		st = 0;
out:
	ds_log_exit(sw, pid, st, why, killed);
	sw->replica.pid = 0;
}

static void ds_unlink(struct devswitch *sw)
{
	struct ds_replica *rep = &sw->replica;

	if (sw->timer_armed)
		qb_loop_timer_del(sw->vm->loop, sw->ping_timer);
	sw->timer_armed = false;
	if (rep->polled)
		qb_loop_poll_del(sw->vm->loop, pv_chan_fd(rep->ch));
	rep->polled = false;
	pv_chan_close(rep->ch);
	rep->ch = NULL;
	sw->roles.active = NULL;
}

/* The active is gone: every in-flight and later request gets IOERR. */
static void ds_driver_dead(struct devswitch *sw, const char *why)
{
	if (sw->state == DS_DEAD || sw->state == DS_INLINE)
		return;
	sw->state = DS_DEAD;
	sw->stats.driver_deaths++;
	qb_log(LOG_ERR, "disk%d: lost the driver: %s; requests fail with I/O errors",
	       sw->index, why);
	ds_unlink(sw);
	ds_reap(sw, why);
	ds_fail_all(sw);
}

static void ds_ping(void *data)
{
	struct devswitch *sw = data;
	Pv__Ping ping = PV__PING__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	struct ds_replica *rep;

	pthread_mutex_lock(&sw->vm->lock);
	sw->timer_armed = false;
	rep = sw->roles.active;
	if (sw->state != DS_RUNNING || !rep)
		goto out;
	if (vm_clock_ns() - rep->last_pong_ns >
	    DS_PONG_TIMEOUT_MS * 1000000ULL) {
		ds_driver_dead(sw, "no pong within the heartbeat limit");
		goto out;
	}
	ping.nonce = ++rep->ping_nonce;
	env.msg_case = PV__ENVELOPE__MSG_PING;
	env.ping = &ping;
	sw->stats.pings++;
	if (ds_send(sw, &env) == 0 &&
	    !qb_loop_timer_add(sw->vm->loop, QB_LOOP_LOW,
			       DS_PING_INTERVAL_MS * 1000000ULL, sw, ds_ping,
			       &sw->ping_timer))
		sw->timer_armed = true;
out:
	pthread_mutex_unlock(&sw->vm->lock);
}

/* <directory of /proc/self/exe>/pairvisor-blkdrv */
static int ds_driver_path(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	if ((size_t)snprintf(buf, len, "%s/%s", exe, DS_DRIVER_NAME) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Between fork and exec: async-signal-safe calls only. */
static void ds_child(const char *path, int fd)
{
	static char arg_channel[] = "--channel";
	static char arg_url[] = "fd:3";
	char *argv[] = { (char *)DS_DRIVER_NAME, arg_channel, arg_url, NULL };
	sigset_t none;
	int null;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (fd == DS_CHILD_FD)
		fcntl(fd, F_SETFD, 0);
	else if (dup2(fd, DS_CHILD_FD) < 0)
		_exit(127);
	/* the console is the guest's: no stdin, no stdout; stderr for logs */
	null = open("/dev/null", O_RDWR);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
	    dup2(null, STDOUT_FILENO) < 0)
		_exit(127);
	/* nothing else: never the image, never guest RAM */
	close_range(DS_CHILD_FD + 1, ~0U, 0);
	execv(path, argv);
	_exit(127);
}

static int ds_spawn(int index, struct pv_chan **ch, pid_t *pid)
{
	char path[PATH_MAX];
	int child_fd, err;

	err = ds_driver_path(path, sizeof(path));
	if (!err && access(path, X_OK))
		err = -errno;
	if (err) {
		qb_log(LOG_ERR, "disk%d: driver %s: %s", index,
		       DS_DRIVER_NAME, strerror(-err));
		return err;
	}
	err = pv_chan_pair(ch, &child_fd);
	if (err) {
		qb_log(LOG_ERR, "disk%d: driver channel: %s", index,
		       strerror(-err));
		return err;
	}
	*pid = fork();
	if (*pid == 0)
		ds_child(path, child_fd);
	err = *pid < 0 ? -errno : 0;
	close(child_fd);
	if (err) {
		pv_chan_close(*ch);
		qb_log(LOG_ERR, "disk%d: fork: %s", index, strerror(-err));
	}
	return err;
}

/* ---- handshake ---- */

static int ds_hello(struct devswitch *sw)
{
	Pv__Hello hello = PV__HELLO__INIT;
	Pv__Open open = PV__OPEN__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	char disk_id[32];
	int err;

	hello.protocol = PV_PROTOCOL_VERSION;
	hello.generation = sw->roles.generation;
	hello.active = true;
	hello.build = (char *)pv_build_id();
	env.msg_case = PV__ENVELOPE__MSG_HELLO;
	env.hello = &hello;
	err = ds_send(sw, &env);
	if (err)
		return err;
	snprintf(disk_id, sizeof(disk_id), "disk%d", sw->index);
	open.seq = sw->next_seq++;
	open.disk_id = disk_id;
	open.format = (char *)(sw->dc->format ? sw->dc->format : "raw");
	open.image_size = sw->img->size;
	open.read_only = sw->img->readonly;
	env.msg_case = PV__ENVELOPE__MSG_OPEN;
	env.open = &open;
	sw->stats.inputs++;
	return ds_send(sw, &env);
}

static int ds_wait_attach(struct devswitch *sw)
{
	uint64_t deadline = vm_clock_ns() + DS_ATTACH_TIMEOUT_MS * 1000000ULL;

	while (!sw->attached && sw->state == DS_STARTING) {
		struct pollfd p = { .fd = pv_chan_fd(sw->replica.ch),
				    .events = POLLIN };
		uint64_t now = vm_clock_ns();

		if (now >= deadline) {
			ds_driver_dead(sw, "no Attach within 10 s");
			break;
		}
		if (poll(&p, 1, (deadline - now) / 1000000 + 1) < 0 &&
		    errno != EINTR)
			return -errno;
		devswitch_poll(sw);
	}
	if (sw->attached)
		return 0;
	qb_log(LOG_ERR, "disk %s: the driver did not attach the disk",
	       sw->dc->path);
	return -EIO;
}

static int ds_link(struct devswitch *sw, struct pv_chan *ch, pid_t pid)
{
	int err;

	sw->replica.ch = ch;
	sw->replica.pid = pid;
	sw->replica.last_pong_ns = vm_clock_ns();
	sw->roles.generation = 1;
	sw->roles.active = &sw->replica;
	sw->roles.spare = NULL;
	sw->state = DS_STARTING;
	err = ds_hello(sw);
	if (!err)
		err = ds_wait_attach(sw);
	if (err)
		return err;
	if (sw->vm->loop &&
	    !qb_loop_poll_add(sw->vm->loop, QB_LOOP_HIGH, pv_chan_fd(ch),
			      POLLIN, sw, ds_on_readable))
		sw->replica.polled = true;
	if (sw->vm->loop &&
	    !qb_loop_timer_add(sw->vm->loop, QB_LOOP_LOW,
			       DS_PING_INTERVAL_MS * 1000000ULL, sw, ds_ping,
			       &sw->ping_timer))
		sw->timer_armed = true;
	return 0;
}

/* ---- inline I/O (no driver) ---- */

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

static void ds_inline(struct devswitch *sw, const struct blk_req *r)
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

/* ---- requests to the driver ---- */

static void ds_segs(struct devswitch *sw, const struct blk_req *r,
		    unsigned int first, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		pv__segment__init(&sw->segs[first + i]);
		sw->segs[first + i].gpa = r->seg[first + i].gpa;
		sw->segs[first + i].len = r->seg[first + i].len;
		sw->segp[first + i] = &sw->segs[first + i];
	}
}

void devswitch_submit(struct devswitch *sw, const struct blk_req *r)
{
	Pv__IoRequest io = PV__IO_REQUEST__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	struct ds_req *q;

	if (sw->state == DS_INLINE) {
		ds_inline(sw, r);
		return;
	}
	q = &sw->reqs[sw->next_seq % DS_MAX_REQS];
	if (sw->state != DS_RUNNING || (q->seq && !q->aborted)) {
		sw->stats.failed_dead++;
		sw->done(sw->owner, r->head, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	q->seq = sw->next_seq++;
	q->aborted = false;
	q->r = *r;
	ds_segs(sw, r, 0, r->nr_out + r->nr_in);
	io.seq = q->seq;
	io.type = r->type;
	io.sector = r->sector;
	io.n_out = r->nr_out;
	io.out = sw->segp;
	io.n_in = r->nr_in;
	io.in = sw->segp + r->nr_out;
	env.msg_case = PV__ENVELOPE__MSG_IO_REQUEST;
	env.io_request = &io;
	sw->stats.inputs++;
	sw->stats.io_requests++;
	ds_send(sw, &env);	/* on failure the request already failed */
}

/* ---- life cycle ---- */

static struct devswitch *ds_alloc(struct vm *vm,
				  const struct devswitch_config *cfg)
{
	struct devswitch *sw = calloc(1, sizeof(*sw));

	if (!sw)
		return NULL;
	sw->vm = vm;
	sw->dc = cfg->disk;
	sw->img = cfg->img;
	sw->index = cfg->index;
	sw->done = cfg->done;
	sw->owner = cfg->owner;
	sw->next_seq = 1;
	return sw;
}

int devswitch_create_chan(struct vm *vm, const struct devswitch_config *cfg,
			  struct pv_chan *ch, pid_t pid,
			  struct devswitch **out)
{
	struct devswitch *sw = ds_alloc(vm, cfg);
	int err;

	if (!sw) {
		pv_chan_close(ch);
		if (pid > 0 && !kill(pid, SIGKILL))
			waitpid(pid, NULL, 0);
		return -ENOMEM;
	}
	err = ds_link(sw, ch, pid);
	if (err) {
		devswitch_destroy(sw);
		return err;
	}
	*out = sw;
	return 0;
}

int devswitch_create(struct vm *vm, const struct devswitch_config *cfg,
		     struct devswitch **out)
{
	struct devswitch *sw;
	struct pv_chan *ch;
	pid_t pid;
	int err;

	if (!cfg->disk->inline_io) {
		err = ds_spawn(cfg->index, &ch, &pid);
		if (err)
			return err;
		return devswitch_create_chan(vm, cfg, ch, pid, out);
	}
	sw = ds_alloc(vm, cfg);
	if (!sw)
		return -ENOMEM;
	sw->state = DS_INLINE;
	sw->capacity = sw->img->size / BLK_SECTOR_SIZE * BLK_SECTOR_SIZE;
	qb_log(LOG_INFO, "disk%d: %s served inline by the VMM (no driver)",
	       sw->index, sw->dc->path);
	*out = sw;
	return 0;
}

void devswitch_destroy(struct devswitch *sw)
{
	if (!sw)
		return;
	if (sw->state != DS_DEAD && sw->state != DS_INLINE) {
		ds_unlink(sw);		/* the driver sees EOF and exits */
		ds_reap(sw, "disk closed");
	}
	free(sw);
}

uint64_t devswitch_capacity(const struct devswitch *sw)
{
	return sw->capacity;
}

const struct devswitch_stats *devswitch_stats(const struct devswitch *sw)
{
	return &sw->stats;
}

pid_t devswitch_driver_pid(const struct devswitch *sw)
{
	return sw->replica.pid;
}

uint32_t devswitch_generation(const struct devswitch *sw)
{
	return sw->roles.generation;
}

void devswitch_stats_print(const struct devswitch *sw)
{
	const struct devswitch_stats *s = &sw->stats;

	qb_log(LOG_NOTICE, "stats: disk%d switch (%s): inputs=%llu io_requests=%llu "
	       "commands=%llu executed=%llu exec_errors=%llu rejected=%llu cancelled=%llu "
	       "completions=%llu completions_rejected=%llu stale_generation=%llu "
	       "duplicates=%llu malformed=%llu proto_errors=%llu errors_sent=%llu "
	       "errors_received=%llu acks_sent=%llu acks_received=%llu pings=%llu "
	       "pongs=%llu failed_dead=%llu driver_deaths=%llu applied_seq=%llu",
	       sw->index, sw->state == DS_INLINE ? "inline" : "driver",
	       (unsigned long long)s->inputs,
	       (unsigned long long)s->io_requests,
	       (unsigned long long)s->commands,
	       (unsigned long long)s->executed,
	       (unsigned long long)s->exec_errors,
	       (unsigned long long)s->rejected,
	       (unsigned long long)s->cancelled,
	       (unsigned long long)s->completions,
	       (unsigned long long)s->completions_rejected,
	       (unsigned long long)s->stale_generation,
	       (unsigned long long)s->duplicates,
	       (unsigned long long)s->malformed,
	       (unsigned long long)s->proto_errors,
	       (unsigned long long)s->errors_sent,
	       (unsigned long long)s->errors_received,
	       (unsigned long long)s->acks_sent,
	       (unsigned long long)s->acks_received,
	       (unsigned long long)s->pings, (unsigned long long)s->pongs,
	       (unsigned long long)s->failed_dead,
	       (unsigned long long)s->driver_deaths,
	       (unsigned long long)s->applied_seq);
}
