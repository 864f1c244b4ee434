// SPDX-License-Identifier: GPL-2.0
/*
 * The device switch: routes one disk's guest requests to its driver
 * replica and executes what the driver answers (see devswitch.h and
 * proto/README.md for the conversation). This file is the block device's
 * side of it: requests in flight, the handlers of the driver's Attach,
 * DeviceCommands and GuestCompletions, submit, life cycle and counters;
 * devswitch_priv.h says where the rest lives.
 *
 * Trust: the driver is a separate process that may be buggy or
 * compromised. Nothing it sends is used before pv_msg_decode() and the
 * checks: the output's generation is the role table's, its id was
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
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <qb/qblog.h>

#include "devswitch_priv.h"
#include "image.h"
#include "replica.h"
#include "transport.h"
#include "vm.h"

/*
 * Requests live at seq % DS_MAX_REQS or, when that slot is taken, the
 * next free one: a request can stay in flight for many inputs (one per
 * command completion), so a newer seq may land on its slot.
 */
struct ds_req *ds_req_find(struct devswitch *sw, uint64_t seq)
{
	for (int i = 0; seq && i < DS_MAX_REQS; i++) {
		struct ds_req *q = &sw->reqs[(seq + i) % DS_MAX_REQS];

		if (q->seq == seq)
			return q;
	}
	return NULL;
}

/* A slot for a new request: free, or holding one the guest got back. */
static struct ds_req *ds_req_slot(struct devswitch *sw, uint64_t seq)
{
	for (int i = 0; i < DS_MAX_REQS; i++) {
		struct ds_req *q = &sw->reqs[(seq + i) % DS_MAX_REQS];

		if (!q->seq || q->aborted)
			return q;
	}
	return NULL;
}

static void ds_req_finish(struct devswitch *sw, struct ds_req *q,
			  uint8_t status, uint32_t written)
{
	if (!q->aborted) {
		ds_done_at(sw);
		sw->done(sw->owner, q->r.head, status, written);
	}
	q->seq = 0;
	q->aborted = false;
}

/* Answer the guest now; later outputs for the request are dropped. */
void ds_req_abort(struct devswitch *sw, struct ds_req *q)
{
	if (q->aborted)
		return;
	sw->done(sw->owner, q->r.head, VIRTIO_BLK_S_IOERR, 0);
	q->aborted = true;
}

void ds_fail_all(struct devswitch *sw)
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

/*
 * An output whose request is gone (answered at a device reset, its slot
 * taken by a newer request): acked, so the driver trims it, and for a
 * command completed as cancelled, so the driver finishes that request.
 * Never matched to the newer request: sequence numbers are not reused.
 * One for a request never sent is a protocol error, acked the same way.
 */
static void ds_on_gone_request(struct devswitch *sw, uint64_t req,
			       const char *what)
{
	if (req < sw->next_seq) {
		sw->stats.gone_requests++;
		return;
	}
	/* counted, so that ds_log() stops logging them after a while */
	sw->stats.proto_errors++;
	ds_log(sw, what, "for a request never sent");
}

static void ds_on_command(struct devswitch *sw, const Pv__DeviceCommand *c)
{
	struct ds_req *q = NULL;
	const char *why;
	uint64_t *ctr = &sw->stats.rejected;

	sw->stats.commands++;
	if (c->request_seq)
		q = ds_req_find(sw, c->request_seq);
	why = ds_check_output(sw, c->id, c->generation, &ctr);
	if (why) {
		ds_reject(sw, "command", ctr, q, why);
		if (ctr != &sw->stats.rejected)
			sw->stats.rejected++;
		return;
	}
	ds_ack(sw, c->id);
	if (c->request_seq && !q)
		ds_on_gone_request(sw, c->request_seq, "command");
	if ((c->request_seq && !q) || (q && q->aborted)) {
		sw->stats.cancelled++;
		ds_complete(sw, c->id, -ECANCELED, 0);
		return;
	}
	why = ds_check_command(sw, c, q);
	if (!why)
		why = ds_check_after(sw, c);
	if (why) {
		ds_reject(sw, "command", &sw->stats.rejected, q, why);
		ds_complete(sw, c->id, -EPERM, 0);
		return;
	}
	ds_exec_command(sw, c, q);
}

/*
 * werror/rerror=ignore: a request that failed on a host I/O error is
 * answered OK, as QEMU does (the guest is not told; its data is lost).
 */
static uint8_t ds_policy_status(struct devswitch *sw,
				const Pv__GuestCompletion *g,
				const struct ds_req *q)
{
	bool write = q->r.type != VIRTIO_BLK_T_IN;

	if (g->status != VIRTIO_BLK_S_IOERR || !g->host_error ||
	    vm_err_policy_of(sw->dc, write) != VM_ERR_IGNORE)
		return g->status;
	if (!sw->stats.ignored++)
		qb_log(LOG_WARNING, "disk%d: %s error ignored (%s): the guest is told it succeeded",
		       sw->index, write ? "write" : "read",
		       strerror(-g->host_error));
	return VIRTIO_BLK_S_OK;
}

static void ds_on_guest_completion(struct devswitch *sw,
				   const Pv__GuestCompletion *g)
{
	struct ds_req *q = ds_req_find(sw, g->request_seq);
	uint64_t *ctr = &sw->stats.completions_rejected;
	const char *why;

	why = ds_check_output(sw, g->id, g->generation, &ctr);
	if (why) {
		ds_reject(sw, "completion", ctr, q, why);
		return;
	}
	ds_ack(sw, g->id);
	if (!q) {
		ds_on_gone_request(sw, g->request_seq, "completion");
		return;
	}
	why = ds_check_gc(g, q);
	if (why) {
		ds_reject(sw, "completion", &sw->stats.completions_rejected,
			  q, why);
		ds_req_finish(sw, q, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	if (!q->aborted)
		sw->stats.completions++;
	ds_req_finish(sw, q, ds_policy_status(sw, g, q), g->written);
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
	if (!why)
		why = ds_check_attach(sw, a);
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
	qb_log(LOG_INFO, "disk%d: %s attached by driver %s: %s, %" PRIu64
	       " bytes", sw->index, sw->dc->path, ds_who(sw->roles.active),
	       a->format, a->virtual_size);
	ds_restart_done(sw);
}

/*
 * The driver refused to attach the disk: its reason, without the input it
 * names ("input 2 (device_completion): "), becomes the one line the user
 * gets, from ds_wait_attach().
 */
static void ds_start_error(struct devswitch *sw, const Pv__Error *e)
{
	const char *why = e->message;
	int n = 0;

	qb_log(LOG_INFO, "disk%d: driver reports error %d: %s", sw->index,
	       e->code, e->message);
	sscanf(why, "input %*u (%*[^)]): %n", &n);
	snprintf(sw->start_why, sizeof(sw->start_why), "%s", why + n);
	ds_driver_dead(sw, e->message);
}

void ds_handle_active(struct devswitch *sw, struct ds_replica *rep,
		      const Pv__Envelope *env)
{
	struct ds_replica *sp = sw->roles.spare;
	uint32_t *gen = NULL;
	Pv__OutputId *id = pv_msg_output_id(env, &gen);

	/* sent before its promotion: Promote makes it send them again */
	if (gen && rep->old_gen && *gen == rep->old_gen) {
		sw->stats.stale_generation++;
		return;
	}
	/* test hook: the active dies with this completion made, unread */
	if (env->msg_case == PV__ENVELOPE__MSG_GUEST_COMPLETION &&
	    ds_fault_hit(sw, DSF_COMPLETION))
		return;
	if (gen && sw->roles.spare_state == SP_LIVE && id->seq > sp->base_seq)
		ds_compare(sw, false, id, ds_out_hash(sw, env, gen));
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
		ds_on_ack(sw, rep, env->ack);
		break;
	case PV__ENVELOPE__MSG_PONG:
		ds_on_pong(sw, rep, env->pong);
		break;
	case PV__ENVELOPE__MSG_SNAPSHOT_READY:
		ds_on_snapshot_ready(sw, env->snapshot_ready);
		break;
	case PV__ENVELOPE__MSG_HELLO_REPLY:
		ds_on_hello_reply(sw, rep, env->hello_reply);
		break;
	case PV__ENVELOPE__MSG_ERROR:
		if (sw->state == DS_STARTING) {	/* it refused the Open */
			sw->stats.errors_received++;
			ds_start_error(sw, env->error);
			break;
		}
		ds_active_error(sw, rep, env->error);
		break;
	default:
		ds_reject(sw, pv_msg_name(env), &sw->stats.proto_errors, NULL,
			  "message a driver does not send");
	}
}

/* The spare's outputs are compared, counted and dropped, never run. */
void ds_handle_spare(struct devswitch *sw, struct ds_replica *rep,
		     const Pv__Envelope *env)
{
	uint32_t *gen = NULL;
	Pv__OutputId *id = pv_msg_output_id(env, &gen);

	if (gen) {
		sw->stats.spare_dropped++;
		if (sw->roles.spare_state == SP_LIVE && id->seq > rep->base_seq)
			ds_compare(sw, true, id, ds_out_hash(sw, env, gen));
		return;
	}
	switch (env->msg_case) {
	case PV__ENVELOPE__MSG_ACK:
		ds_on_ack(sw, rep, env->ack);
		break;
	case PV__ENVELOPE__MSG_PONG:
		ds_on_pong(sw, rep, env->pong);
		if (sw->roles.spare_state == SP_HELLO)
			ds_snapshot_ask(sw);
		break;
	case PV__ENVELOPE__MSG_HELLO_REPLY:
		ds_on_hello_reply(sw, rep, env->hello_reply);
		break;
	case PV__ENVELOPE__MSG_ERROR:	/* it cannot mirror the active */
		sw->stats.errors_received++;
		qb_log(LOG_WARNING, "disk%d: spare %s: %s", sw->index,
		       ds_who(rep), env->error->message);
		ds_rep_fail(sw, rep, "it reported an error");
		break;
	default:
		sw->stats.proto_errors++;
		ds_rep_fail(sw, rep, "it sent what a spare does not send");
	}
}

void devswitch_poll(struct devswitch *sw)
{
	spawner_poll(&sw->vm->spawner);	/* the pids of drivers asked for */
	if (sw->nzombies)
		ds_reap_zombies(sw, false);
	if (sw->fenced.ch)
		ds_poll_fenced(sw);
	devswitch_batch_begin(sw);
	ds_poll_rep(sw, sw->roles.active);
	if (sw->roles.spare_state != SP_NONE)
		ds_poll_rep(sw, sw->roles.spare);
	ds_flush_acks(sw);
	devswitch_batch_end(sw);
	ds_settle(sw);
}

/*
 * What the switch sends to its replicas between these two leaves in one
 * write per replica where the transport can (a burst of guest requests,
 * the completions of a batch of commands).
 */
void devswitch_batch_begin(struct devswitch *sw)
{
	ds_rep_cork(sw->roles.active);
	ds_rep_cork(sw->roles.spare);
}

void devswitch_batch_end(struct devswitch *sw)
{
	ds_rep_uncork(sw, sw->roles.active);
	ds_rep_uncork(sw, sw->roles.spare);
}

int ds_hello(struct devswitch *sw)
{
	Pv__Hello hello = PV__HELLO__INIT;
	Pv__Open open = PV__OPEN__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	char disk_id[32];
	int err;

	ds_hello_init(sw, true, &hello);
	env.msg_case = PV__ENVELOPE__MSG_HELLO;
	env.hello = &hello;
	err = ds_send(sw, &env);
	if (err)
		return err;
	snprintf(disk_id, sizeof(disk_id), "disk%d", sw->index);
	open.seq = sw->next_seq++;
	open.disk_id = disk_id;
	open.format = (char *)ds_variant(sw);
	open.image_size = sw->img->size;
	open.read_only = sw->img->readonly;
	env.msg_case = PV__ENVELOPE__MSG_OPEN;
	env.open = &open;
	ds_send_input(sw, open.seq, &env);
	return sw->roles.active->failed ? -EPIPE : 0;
}

int ds_wait_attach(struct devswitch *sw)
{
	uint64_t deadline = vm_clock_ns() + DS_ATTACH_TIMEOUT_MS * 1000000ULL;

	while (!sw->attached && sw->state == DS_STARTING) {
		struct ds_replica *a = sw->roles.active;
		struct pollfd p = { .fd = pv_chan_fd(a->ch),
				    .events = pv_chan_events(a->ch) };
		uint64_t now = vm_clock_ns();

		if (now >= deadline) {
			ds_driver_dead(sw, "no Attach within 10 s");
			break;
		}
		if (poll(&p, 1, pv_chan_buffered(a->ch) ? 0 :
			 (int)((deadline - now) / 1000000 + 1)) < 0 &&
		    errno != EINTR)
			return -errno;
		if (pv_chan_pending(a->ch))
			ds_txq_flush(sw, a);
		devswitch_poll(sw);
	}
	if (sw->attached)
		return 0;
	qb_log(LOG_ERR, "disk %s: %s%s%s", sw->dc->path,
	       sw->stats.restarts ? "the restarted driver did not attach: " : "",
	       sw->start_why[0] ? sw->start_why :
	       "the driver did not attach the disk",
	       sw->stats.restarts ? "; requests fail with I/O errors" : "");
	return -EIO;
}

/* The first active: on @ch, driver @pid (or still to come as @token). */
static int ds_link(struct devswitch *sw, struct pv_chan *ch, pid_t pid,
		   uint64_t token)
{
	int err;

	ds_rep_init(sw, &sw->rep[0], ch, pid);
	sw->rep[0].spawn_token = token;
	sw->roles.generation = 1;
	sw->roles.active = &sw->rep[0];
	sw->roles.spare = NULL;
	sw->state = DS_STARTING;
	err = ds_hello(sw);
	if (err)
		qb_log(LOG_ERR, "disk %s: the driver process is gone: %s",
		       sw->dc->path, strerror(-err));
	else
		err = ds_wait_attach(sw);
	if (err)
		return err;
	if (sw->vm->loop &&
	    !qb_loop_timer_add(sw->vm->loop, QB_LOOP_LOW,
			       sw->hb_period_ms * 1000000ULL, sw, ds_ping,
			       &sw->ping_timer))
		sw->timer_armed = true;
	if (sw->spare_wanted && sw->vm->loop)
		ds_spare_start(sw);
	return 0;
}

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
	Pv__SectorRange range = PV__SECTOR_RANGE__INIT, *rangep = &range;
	struct ds_req *q;

	if (sw->state == DS_INLINE) {
		ds_inline(sw, r);
		return;
	}
	if (sw->state == DS_STARTING && ds_restart_queue(sw, r))
		return;
	q = ds_req_slot(sw, sw->next_seq);
	if (sw->state != DS_RUNNING || !q) {
		sw->stats.failed_dead++;
		sw->done(sw->owner, r->head, VIRTIO_BLK_S_IOERR, 0);
		return;
	}
	q->seq = sw->next_seq++;
	q->t_ns = vm_clock_ns();
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
	if (r->nr_ranges) {
		range.sector = r->range.sector;
		range.count = r->range.num_sectors;
		range.flags = r->range.flags;
		io.n_ranges = 1;
		io.ranges = &rangep;
	}
	env.msg_case = PV__ENVELOPE__MSG_IO_REQUEST;
	env.io_request = &io;
	sw->stats.io_requests++;
	ds_send_input(sw, q->seq, &env);
	ds_settle(sw);		/* no replica left: the request failed */
}

static void ds_failover_config(struct devswitch *sw,
			       const struct devswitch_config *cfg)
{
	const struct vm_config *vc = sw->vm->cfg;

	sw->spare_wanted = (cfg->disk->spare_local ||
			    cfg->disk->spare_url[0]) && !cfg->disk->inline_io;
	sw->spare_url = cfg->disk->spare_url[0] ? cfg->disk->spare_url : NULL;
	/* without a spare a hang is only worth declaring when sure */
	sw->hb_period_ms = sw->spare_wanted ? DS_HB_PERIOD_MS :
			   DS_HB_NOSPARE_PERIOD_MS;
	sw->hb_limit_ms = sw->spare_wanted ? DS_HB_LIMIT_MS :
			  DS_HB_NOSPARE_LIMIT_MS;
	if (vc && vc->hb_period_ms) {
		sw->hb_period_ms = vc->hb_period_ms;
		sw->hb_limit_ms = vc->hb_limit_ms;
	}
	sw->spare_lag = vc && vc->spare_lag ? vc->spare_lag : DS_SPARE_LAG;
	sw->link_timeout_ms = vc && vc->link_timeout_ms ? vc->link_timeout_ms :
			      PV_LINK_TIMEOUT_DEFAULT;
	if (sw->link_timeout_ms < sw->hb_limit_ms)
		sw->link_timeout_ms = sw->hb_limit_ms;
	if (sw->spare_lag > DS_ILOG_MAX / 2)
		sw->spare_lag = DS_ILOG_MAX / 2;
}

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
	sw->snap_fd = -1;
	sw->rep[0].sw = sw;
	sw->rep[1].sw = sw;
	sw->fenced.sw = sw;
	ds_failover_config(sw, cfg);
	ds_fault_parse(sw);
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
	err = ds_link(sw, ch, pid, 0);
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
	struct devswitch *sw = ds_alloc(vm, cfg);
	struct pv_chan *ch;
	uint64_t token;
	int err;

	if (!sw)
		return -ENOMEM;
	if (!cfg->disk->inline_io) {
		err = ds_spawn(sw, &ch, &token);
		if (!err)
			err = ds_link(sw, ch, 0, token);
		if (err) {
			devswitch_destroy(sw);
			return err;
		}
		*out = sw;
		return 0;
	}
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
	spawner_forget(&sw->vm->spawner, sw);
	ds_hold_drop(sw);
	if (sw->roles.spare) {	/* closing is no drop: nothing to say */
		struct ds_replica *sp = sw->roles.spare;

		sw->roles.spare = NULL;
		sw->roles.spare_state = SP_NONE;
		ds_rep_end(sw, sp, "disk closed", true);
	}
	if (sw->fenced.ch)
		ds_rep_end(sw, &sw->fenced, "disk closed", true);
	if (sw->state != DS_DEAD && sw->state != DS_INLINE) {
		ds_unlink(sw);		/* the driver sees EOF and exits */
		for (int i = 0; i < 2; i++)
			ds_reap(sw, &sw->rep[i], "disk closed", false);
	}
	ds_reap_zombies(sw, true);
	free(sw->restart_pend);
	for (int i = 0; i < DS_ILOG_MAX; i++)
		free(sw->ilog[i].buf);
	if (sw->snap_map)
		munmap(sw->snap_map, DS_SNAP_MAX);
	if (sw->snap_fd >= 0)
		close(sw->snap_fd);
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
	return sw->roles.active ? sw->roles.active->pid : 0;
}

pid_t devswitch_spare_pid(const struct devswitch *sw)
{
	return sw->roles.spare ? sw->roles.spare->pid : 0;
}

bool devswitch_spare_live(const struct devswitch *sw)
{
	return sw->roles.spare_state == SP_LIVE;
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
	ds_link_stats_print(sw);
	if (s->exec_errors || s->dep_failed || s->held || s->ignored ||
	    s->barrier_flushes)
		qb_log(LOG_NOTICE, "stats: disk%d errors: werror=%s rerror=%s exec_errors=%llu "
		       "dep_failed=%llu barrier_flushes=%llu held=%llu retried=%llu "
		       "hold_overflow=%llu stops=%llu ignored=%llu",
		       sw->index, vm_err_policy_name(vm_err_policy_of(sw->dc, true)),
		       vm_err_policy_name(vm_err_policy_of(sw->dc, false)),
		       (unsigned long long)s->exec_errors,
		       (unsigned long long)s->dep_failed,
		       (unsigned long long)s->barrier_flushes,
		       (unsigned long long)s->held,
		       (unsigned long long)s->retried,
		       (unsigned long long)s->hold_overflow,
		       (unsigned long long)s->stops,
		       (unsigned long long)s->ignored);
	if (!sw->spare_wanted && !s->failovers)
		return;
	qb_log(LOG_NOTICE, "stats: disk%d failover: active_pid=%d spare_pid=%d generation=%u "
	       "mirrored=%llu spare_compared=%llu spare_dropped=%llu divergences=%llu "
	       "spare_lagging=%llu spare_drops=%llu seeds=%llu seed_pause_us=%llu "
	       "seed_pause_max_us=%llu failovers=%llu stale_generation=%llu "
	       "fenced_rejected=%llu restarts=%llu "
	       "executed_twice=%llu last_stall_us=%llu max_stall_us=%llu "
	       "switchovers=%llu connects=%llu resends=%llu",
	       sw->index, (int)devswitch_driver_pid(sw),
	       (int)devswitch_spare_pid(sw), sw->roles.generation,
	       (unsigned long long)s->mirrored,
	       (unsigned long long)s->spare_compared,
	       (unsigned long long)s->spare_dropped,
	       (unsigned long long)s->divergences,
	       (unsigned long long)s->spare_lagging,
	       (unsigned long long)s->spare_drops,
	       (unsigned long long)s->seeds,
	       (unsigned long long)s->seed_pause_ns / 1000,
	       (unsigned long long)s->seed_pause_max_ns / 1000,
	       (unsigned long long)s->failovers,
	       (unsigned long long)s->stale_generation,
	       (unsigned long long)s->fenced_rejected,
	       (unsigned long long)s->restarts,
	       (unsigned long long)s->executed_twice,
	       (unsigned long long)s->last_stall_ns / 1000,
	       (unsigned long long)s->max_stall_ns / 1000,
	       (unsigned long long)s->switchovers,
	       (unsigned long long)s->connects,
	       (unsigned long long)s->resends);
}
