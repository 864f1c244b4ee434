// SPDX-License-Identifier: GPL-2.0
/*
 * The device switch's router half (DESIGN.md section 3): the role table
 * (active, spare, generation), sequenced inputs sent to the active and
 * mirrored to a live spare, the input log a spare may still need, acks,
 * output ids executed exactly once, the comparison of the spare's outputs
 * with the active's, seeding a spare from a snapshot of the active's
 * arena, promotion with fencing, the restart of a fresh active, and the
 * heartbeat.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <qb/qblog.h>

#include "devswitch_priv.h"
#include "memfd.h"
#include "replica.h"
#include "transport.h"
#include "vm.h"

static void ds_restart_fail(struct devswitch *sw);

/* The gap between guest-visible completions around a failover. */
void ds_done_at(struct devswitch *sw)
{
	uint64_t now = vm_clock_ns();

	if (sw->fo_stall_pending) {
		sw->stats.last_stall_ns = now - sw->fo_before_ns;
		if (sw->stats.last_stall_ns > sw->stats.max_stall_ns)
			sw->stats.max_stall_ns = sw->stats.last_stall_ns;
		sw->fo_stall_pending = false;
		qb_log(LOG_NOTICE, "disk%d: guest I/O stalled %" PRIu64
		       " us around the failover (%" PRIu64 " us after it)",
		       sw->index, sw->stats.last_stall_ns / 1000,
		       (now - sw->fo_at_ns) / 1000);
	}
	sw->last_done_ns = now;
}

/*
 * The input log: every input sent, kept until each replica that may need
 * it again applied it (the active, for a re-send after an Error; a spare
 * being seeded or live), bounded in entries and bytes; a buffer is freed
 * as soon as no replica needs it.
 */

/* Inputs below this were applied by every replica that may need them. */
static uint64_t ds_ilog_keep(const struct devswitch *sw)
{
	const struct ds_replica *a = sw->roles.active, *sp = sw->roles.spare;
	uint64_t keep = a && !a->failed ? a->applied_seq + 1 : sw->next_seq;

	if (sp && sp->failed)
		return keep;
	if (sw->roles.spare_state == SP_SNAPSHOT && sw->snap_seq + 1 < keep)
		keep = sw->snap_seq + 1;
	if (sw->roles.spare_state == SP_LIVE && sp->applied_seq + 1 < keep)
		keep = sp->applied_seq + 1;
	return keep;
}

static void ds_ilog_drop_one(struct devswitch *sw, uint64_t seq)
{
	struct ds_input *in = &sw->ilog[seq % DS_ILOG_MAX];

	if (in->seq != seq)
		return;
	sw->stats.log_bytes -= in->len;
	free(in->buf);
	*in = (struct ds_input){ 0 };
}

/* Forget the inputs below @to. */
static void ds_ilog_drop(struct devswitch *sw, uint64_t to)
{
	if (to - sw->ilog_lo > DS_ILOG_MAX) {	/* all of it */
		for (int i = 0; i < DS_ILOG_MAX; i++)
			ds_ilog_drop_one(sw, sw->ilog[i].seq);
		sw->ilog_lo = to;
	}
	for (; sw->ilog_lo < to; sw->ilog_lo++)
		ds_ilog_drop_one(sw, sw->ilog_lo);
}

static void ds_ilog_trim(struct devswitch *sw)
{
	uint64_t keep = ds_ilog_keep(sw);

	if (keep > sw->ilog_lo)
		ds_ilog_drop(sw, keep);
}

static struct ds_input *ds_ilog_get(struct devswitch *sw, uint64_t seq)
{
	struct ds_input *in = &sw->ilog[seq % DS_ILOG_MAX];

	return seq >= sw->ilog_lo && in->seq == seq ? in : NULL;
}

/*
 * Keep input @seq. Past the bounds, the oldest go: a spare that still
 * needs them is dropped (and re-seeded later); an active that would need
 * them for a re-send fails if it ever asks.
 */
static void ds_ilog_add(struct devswitch *sw, uint64_t seq, const void *buf,
			size_t len)
{
	struct ds_replica *sp = sw->roles.spare;
	struct ds_input *in;

	ds_ilog_trim(sw);
	while (sw->ilog_lo < seq && (seq - sw->ilog_lo >= DS_ILOG_MAX ||
				     sw->stats.log_bytes + len > DS_ILOG_BYTES)) {
		if (sp && !sp->failed && sw->roles.spare_state >= SP_SNAPSHOT) {
			sw->stats.spare_lagging++;
			ds_rep_fail(sw, sp, "it lags too far behind");
			ds_ilog_trim(sw);
			continue;
		}
		ds_ilog_drop(sw, sw->ilog_lo + 1);
	}
	in = &sw->ilog[seq % DS_ILOG_MAX];
	in->buf = malloc(len);
	if (!in->buf)
		return;
	memcpy(in->buf, buf, len);
	in->len = len;
	in->seq = seq;
	sw->stats.log_bytes += len;
}

/* A new active from the image: no input before now matters any more. */
static void ds_ilog_reset(struct devswitch *sw)
{
	ds_ilog_drop(sw, sw->next_seq);
}

/* Send every kept input after @from to @rep. */
static int ds_replay(struct devswitch *sw, struct ds_replica *rep,
		     uint64_t from)
{
	for (uint64_t seq = from + 1; seq < sw->next_seq; seq++) {
		struct ds_input *in = ds_ilog_get(sw, seq);
		int err;

		if (!in) {
			ds_rep_fail(sw, rep, "an input it needs is gone");
			return -ENOENT;
		}
		err = ds_send_raw(sw, rep, in->buf, in->len);
		if (err)
			return err;
	}
	return 0;
}

/*
 * A sequenced input: kept for the spare, sent to the active and, in the
 * same order, mirrored to a live spare, which is dropped (and re-seeded
 * later) when it lags more than the bound.
 */
int ds_send_input(struct devswitch *sw, uint64_t seq,
		  const Pv__Envelope *env)
{
	struct ds_replica *sp = sw->roles.spare;
	int len = pv_msg_encode(env, sw->tx, sizeof(sw->tx));

	if (len < 0) {
		qb_log(LOG_ERR, "disk%d: cannot encode %s: %s", sw->index,
		       pv_msg_name(env), strerror(-len));
		return len;
	}
	sw->stats.inputs++;
	ds_ilog_add(sw, seq, sw->tx, len);
	ds_send_raw(sw, sw->roles.active, sw->tx, len);
	if (sw->roles.spare_state != SP_LIVE || sp->failed)
		return 0;
	if (!ds_send_raw(sw, sp, sw->tx, len))
		sw->stats.mirrored++;
	if (seq - sp->applied_seq > sw->spare_lag) {
		sw->stats.spare_lagging++;
		ds_rep_fail(sw, sp, "it lags more than the bound");
	}
	return 0;
}

static void ds_flush_rep_acks(struct devswitch *sw, struct ds_replica *rep)
{
	Pv__Ack ack = PV__ACK__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;

	if (!rep || !rep->nr_acks || sw->state != DS_RUNNING)
		return;
	for (uint32_t i = 0; i < rep->nr_acks; i++)
		rep->ackp[i] = &rep->acks[i];
	ack.n_executed = rep->nr_acks;
	ack.executed = rep->ackp;
	env.msg_case = PV__ENVELOPE__MSG_ACK;
	env.ack = &ack;
	rep->nr_acks = 0;
	sw->stats.acks_sent++;
	ds_send_to(sw, rep, &env);
}

void ds_flush_acks(struct devswitch *sw)
{
	ds_flush_rep_acks(sw, sw->roles.active);
	if (sw->roles.spare_state == SP_LIVE)
		ds_flush_rep_acks(sw, sw->roles.spare);
}

/* Executed (active) or matched (spare): @rep may trim it from its log. */
static void ds_rep_ack(struct devswitch *sw, struct ds_replica *rep,
		       const Pv__OutputId *id)
{
	Pv__OutputId *a = &rep->acks[rep->nr_acks++];

	pv__output_id__init(a);
	a->seq = id->seq;
	a->index = id->index;
	if (rep->nr_acks == DS_ACK_BATCH)
		ds_flush_rep_acks(sw, rep);
}

/*
 * The active's output was executed. A live spare holds the outputs of
 * inputs up to its snapshot unsent: they are the active's, so they are
 * acked to the spare too, without a comparison.
 */
void ds_ack(struct devswitch *sw, const Pv__OutputId *id)
{
	struct ds_replica *sp = sw->roles.spare;

	ds_rep_ack(sw, sw->roles.active, id);
	if (sw->roles.spare_state == SP_LIVE && id->seq <= sp->base_seq)
		ds_rep_ack(sw, sp, id);
}

int ds_id_cmp(const struct devswitch *sw, const Pv__OutputId *id)
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
const char *ds_check_output(struct devswitch *sw,
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

/* 64-bit hash of an output as encoded without its generation. */
uint64_t ds_out_hash(struct devswitch *sw, const Pv__Envelope *env,
		     uint32_t *gen)
{
	uint32_t saved = *gen;
	int len;

	*gen = 0;
	len = pv_msg_encode(env, sw->hbuf, sizeof(sw->hbuf));
	*gen = saved;
	return len < 0 ? 0 : pv_digest(sw->hbuf, len);
}

/*
 * Compare an output with the other replica's output of the same id. Both
 * emit outputs in id order, so the hashes of whichever replica is ahead
 * wait in one queue. A match is acked to the spare, which trims it; a
 * mismatch is a divergence: the spare is dropped and re-seeded.
 */
void ds_compare(struct devswitch *sw, bool from_spare,
		const Pv__OutputId *id, uint64_t hash)
{
	struct ds_replica *sp = sw->roles.spare;
	struct ds_cmp *c;

	if (!sw->cmp_n || sw->cmp[sw->cmp_head].spare == from_spare) {
		if (sw->cmp_n == DS_CMP_MAX) {
			sw->stats.spare_lagging++;
			ds_rep_fail(sw, sp, "too many outputs to compare");
			return;
		}
		c = &sw->cmp[(sw->cmp_head + sw->cmp_n++) % DS_CMP_MAX];
		*c = (struct ds_cmp){ .seq = id->seq, .index = id->index,
				      .spare = from_spare, .hash = hash };
		return;
	}
	c = &sw->cmp[sw->cmp_head];
	sw->cmp_head = (sw->cmp_head + 1) % DS_CMP_MAX;
	sw->cmp_n--;
	sw->stats.spare_compared++;
	if (c->seq == id->seq && c->index == id->index && c->hash == hash) {
		ds_rep_ack(sw, sp, id);
		return;
	}
	sw->stats.divergences++;
	qb_log(LOG_ERR, "disk%d: spare %s diverged: output (%" PRIu64
	       ", %u) vs (%" PRIu64 ", %u), hashes %016" PRIx64 " %016" PRIx64,
	       sw->index, ds_who(sp), c->seq, c->index, id->seq, id->index,
	       c->hash, hash);
	ds_rep_fail(sw, sp, "its outputs diverged from the active's");
}

void ds_on_ack(struct devswitch *sw, struct ds_replica *rep,
	       const Pv__Ack *ack)
{
	sw->stats.acks_received++;
	if (ack->applied_seq > rep->applied_seq &&
	    ack->applied_seq < sw->next_seq) {
		rep->applied_seq = ack->applied_seq;
		rep->resends = 0;	/* progress */
		ds_ilog_trim(sw);	/* its inputs' memory goes now */
	}
	if (rep == sw->roles.active)
		sw->stats.applied_seq = rep->applied_seq;
}

/*
 * An Error from the active. Inputs it did not apply (a gap, a full output
 * log: resend_from) go again from where it stands, after the acks that
 * let it trim its log, at most DS_RESEND_MAX times without progress. Any
 * other Error means its state can no longer be trusted: it fails, and
 * the spare takes over (or a restart, or I/O errors). Never a request
 * left waiting while the pings still succeed.
 */
void ds_active_error(struct devswitch *sw, struct ds_replica *rep,
		     const Pv__Error *e)
{
	sw->stats.errors_received++;
	qb_log(LOG_WARNING, "disk%d: driver %s: %s", sw->index,
	       ds_who(rep), e->message);
	if (!e->resend_from || e->resend_from > sw->next_seq ||
	    e->resend_from <= rep->applied_seq) {
		ds_rep_fail(sw, rep, "it reported an error");
		return;
	}
	sw->stats.resends++;
	if (rep->resends++ == DS_RESEND_MAX) {
		ds_rep_fail(sw, rep, "it keeps refusing its inputs");
		return;
	}
	sw->stats.resent++;
	ds_flush_rep_acks(sw, rep);
	ds_replay(sw, rep, e->resend_from - 1);
}

void ds_rep_fail(struct devswitch *sw, struct ds_replica *rep,
		 const char *why)
{
	(void)sw;
	if (rep && !rep->failed)
		rep->failed = why;
}

/*
 * No new spare for a while: twice as long after each failure with no
 * spare seeded in between (from a heartbeat period up to
 * DS_SPARE_BACKOFF_MAX_MS, DS_SPARE_BACKOFF_REMOTE_MS for the peer host,
 * where a link that comes back should soon get its spare again), so one
 * that keeps failing (refused for its version, diverging, unreachable)
 * is not retried at every tick.
 */
void ds_spare_backoff(struct devswitch *sw)
{
	uint32_t b = sw->spare_backoff_ms;
	uint32_t max = sw->spare_url ? DS_SPARE_BACKOFF_REMOTE_MS :
				       DS_SPARE_BACKOFF_MAX_MS;

	sw->spare_backoff_ms = !b ? sw->hb_period_ms :
			       b >= max / 2 ? max : 2 * b;
	sw->spare_retry_ns = vm_clock_ns() + sw->spare_backoff_ms * 1000000ULL;
}

void ds_spare_drop(struct devswitch *sw, const char *why)
{
	struct ds_replica *sp = sw->roles.spare;

	ds_spare_backoff(sw);
	qb_log(LOG_WARNING, "disk%d: dropped spare %s: %s", sw->index,
	       ds_who(sp), why);
	sw->stats.spare_drops++;
	sw->roles.spare = NULL;
	sw->roles.spare_state = SP_NONE;
	sw->cmp_n = 0;
	ds_rep_end(sw, sp, why, true);
}

/* No replica left: every in-flight and later request gets IOERR. */
static void ds_dead(struct devswitch *sw, const char *why)
{
	struct ds_replica *a = sw->roles.active;

	if (sw->state == DS_DEAD || sw->state == DS_INLINE)
		return;
	/* before Attach, ds_wait_attach() tells the user, in one line */
	if (sw->state == DS_STARTING && !sw->start_why[0])
		snprintf(sw->start_why, sizeof(sw->start_why),
			 "the driver failed before attaching it: %s", why);
	qb_log(sw->state == DS_STARTING ? LOG_INFO : LOG_ERR,
	       "disk%d: lost the driver: %s; requests fail with I/O errors",
	       sw->index, why);
	sw->state = DS_DEAD;
	sw->stats.driver_deaths++;
	if (sw->roles.spare)
		ds_spare_drop(sw, "no active left");
	ds_unlink(sw);
	if (a)
		ds_reap(sw, a, why, false);
	ds_hold_drop(sw);
	ds_fail_all(sw);
	ds_restart_fail(sw);
}

/*
 * When the guest started waiting: the last completion, or the oldest
 * request in flight if it came later; 0 when nothing is in flight.
 */
static uint64_t ds_wait_start(const struct devswitch *sw)
{
	uint64_t oldest = UINT64_MAX;

	for (int i = 0; i < DS_MAX_REQS; i++)
		if (sw->reqs[i].seq && !sw->reqs[i].aborted &&
		    sw->reqs[i].t_ns < oldest)
			oldest = sw->reqs[i].t_ns;
	if (oldest == UINT64_MAX)
		return 0;
	return oldest > sw->last_done_ns ? oldest : sw->last_done_ns;
}

/*
 * DESIGN.md section 3, promotion exactly once: fence the old active
 * (killed, its link closed: nothing it sent is read any more), bump the
 * generation, tell the spare which outputs were executed, and re-send it
 * every input it has not acknowledged as applied. It re-sends the rest of
 * its output log under the new generation; those ids were never
 * executed, so each runs once.
 */
static void ds_failover(struct devswitch *sw, const char *why)
{
	struct ds_replica *old = sw->roles.active, *sp = sw->roles.spare;
	Pv__Promote pr = PV__PROMOTE__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	Pv__OutputId ex = PV__OUTPUT_ID__INIT;
	uint64_t t0 = vm_clock_ns();

	qb_log(LOG_NOTICE, "disk%d: active %s failed: %s; promoting spare %s",
	       sw->index, ds_who(old), why, ds_who(sp));
	if (sw->fault == DSF_FENCE_GEN && !sw->fenced.ch)
		ds_fence_gen(sw, old);
	else
		ds_rep_end(sw, old, why, true);
	sw->fo_at_ns = t0;
	sw->fo_before_ns = ds_wait_start(sw);
	sw->fo_stall_pending = sw->fo_before_ns != 0;
	sp->old_gen = sw->roles.generation++;
	sw->roles.active = sp;
	sw->roles.spare = NULL;
	sw->roles.spare_state = SP_NONE;
	sw->cmp_n = 0;
	sp->nr_acks = 0;
	sp->base_seq = 0;
	sp->last_heard_ns = t0;
	sw->stats.failovers++;
	ex.seq = sw->exec_seq;
	ex.index = sw->exec_index;
	pr.generation = sw->roles.generation;
	pr.executed = sw->exec_any ? &ex : NULL;
	env.msg_case = PV__ENVELOPE__MSG_PROMOTE;
	env.promote = &pr;
	/*
	 * Nothing to re-send: a live spare was handed every input since its
	 * seed (sent, or queued behind the rest, or it would have failed);
	 * what it cannot take it asks for again (Error.resend_from).
	 */
	ds_send(sw, &env);
	qb_log(LOG_NOTICE, "disk%d: %s is the active, generation %u, from input %" PRIu64
	       " (%" PRIu64 " still to apply) in %" PRIu64 " us",
	       sw->index, ds_who(sp), sw->roles.generation, sp->applied_seq,
	       sw->next_seq - 1 - sp->applied_seq,
	       (vm_clock_ns() - t0) / 1000);
	/* no spare until the next is seeded: start it now, not next tick */
	if (sw->spare_wanted && sw->vm->loop && !sp->failed)
		ds_spare_start(sw);
}

static int ds_req_by_seq(const void *a, const void *b)
{
	const struct ds_req *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The requests in flight, in their order, for the restarted active. */
static void ds_restart_collect(struct devswitch *sw)
{
	sw->restart_n = 0;
	for (int i = 0; i < DS_MAX_REQS; i++) {
		struct ds_req *q = &sw->reqs[i];

		if (q->seq && !q->aborted)
			sw->restart_pend[sw->restart_n++] = *q;
		q->seq = 0;
		q->aborted = false;
	}
	qsort(sw->restart_pend, sw->restart_n, sizeof(*sw->restart_pend),
	      ds_req_by_seq);
}

/*
 * The active died while a spare was being seeded: that spare has no
 * state yet, so it is no spare. Rather than fail the disk, start a fresh
 * active from the image (Hello, Open, Attach under a new generation) and,
 * once it attached, submit the requests in flight to it again, in their
 * order, and then those the guest sent meanwhile (ds_restart_done()).
 * Nothing waits for it here: the loop delivers its Attach, the heartbeat
 * gives it DS_ATTACH_TIMEOUT_MS. Whatever the old active had the VMM run
 * for those requests runs again with new ids: the same guest data to the
 * same place, in the same order relative to every other request in
 * flight (for qcow2 an allocation cut short may leak a cluster, never
 * corrupt). More than DS_RESTARTS_MAX restarts within
 * DS_RESTART_WINDOW_MS fail the disk instead.
 */
static void ds_restart(struct devswitch *sw, const char *why)
{
	struct ds_replica *old = sw->roles.active;
	uint64_t t0 = vm_clock_ns(), *last, token;
	struct pv_chan *ch;
	int err = -ENOMEM;

	qb_log(LOG_NOTICE, "disk%d: active %s failed: %s; the spare is not seeded yet: restarting the driver",
	       sw->index, ds_who(old), why);
	ds_spare_drop(sw, "the active died before it was seeded");
	ds_hold_drop(sw);	/* its requests are submitted again */
	ds_rep_end(sw, old, why, true);
	sw->fo_at_ns = t0;
	sw->fo_before_ns = ds_wait_start(sw);
	sw->fo_stall_pending = sw->fo_before_ns != 0;
	last = &sw->restart_at[sw->stats.restarts % DS_RESTARTS_MAX];
	if (*last && t0 - *last < DS_RESTART_WINDOW_MS * 1000000ULL) {
		ds_dead(sw, "it keeps failing: restarting it does not help");
		return;
	}
	*last = t0;
	sw->restart_pend = malloc(sizeof(*sw->restart_pend) * DS_MAX_REQS);
	if (sw->restart_pend)
		ds_restart_collect(sw);
	sw->roles.generation++;
	sw->cmp_n = 0;
	ds_ilog_reset(sw);
	sw->attached = false;
	sw->stats.restarts++;
	sw->start_ns = t0;
	if (sw->restart_pend)
		err = ds_spawn(sw, &ch, &token);
	if (!err) {
		ds_rep_init(sw, &sw->rep[0], ch, 0);
		sw->rep[0].spawn_token = token;
		sw->roles.active = &sw->rep[0];
		sw->state = DS_STARTING;
		err = ds_hello(sw);
	}
	if (err)
		ds_dead(sw, "the driver could not be restarted");
}

/* A guest request while the active restarts: it waits behind the others. */
bool ds_restart_queue(struct devswitch *sw, const struct blk_req *r)
{
	if (!sw->restart_pend || sw->restart_n == DS_MAX_REQS)
		return false;
	sw->restart_pend[sw->restart_n].r = *r;
	sw->restart_pend[sw->restart_n++].t_ns = vm_clock_ns();
	return true;
}

/* The restarted active attached: it gets the requests that waited. */
void ds_restart_done(struct devswitch *sw)
{
	struct ds_req *pend = sw->restart_pend;
	int n = sw->restart_n;

	if (!pend)
		return;
	sw->restart_pend = NULL;
	sw->restart_n = 0;
	qb_log(LOG_NOTICE, "disk%d: pid %d is the active, generation %u (restarted in %" PRIu64
	       " us); %d requests submitted again", sw->index,
	       (int)sw->roles.active->pid, sw->roles.generation,
	       (vm_clock_ns() - sw->start_ns) / 1000, n);
	for (int i = 0; i < n; i++)
		devswitch_submit(sw, &pend[i].r);
	free(pend);
	if (sw->spare_wanted && sw->vm->loop && sw->state == DS_RUNNING &&
	    !sw->roles.spare)
		ds_spare_start(sw);
}

/* Requests waiting for a restarted active when there is none to come. */
static void ds_restart_fail(struct devswitch *sw)
{
	for (int i = 0; i < sw->restart_n; i++) {
		sw->stats.failed_dead++;
		sw->done(sw->owner, sw->restart_pend[i].r.head,
			 VIRTIO_BLK_S_IOERR, 0);
	}
	free(sw->restart_pend);
	sw->restart_pend = NULL;
	sw->restart_n = 0;
}

/* Act on failed replicas, outside of any message handling. */
void ds_settle(struct devswitch *sw)
{
	for (int i = 0; i < 3; i++) {
		struct ds_replica *a = sw->roles.active, *sp = sw->roles.spare;

		if (a && a->failed && sw->state == DS_RUNNING && sp &&
		    (sw->roles.spare_state == SP_HELLO ||
		     sw->roles.spare_state == SP_SNAPSHOT))
			ds_restart(sw, a->failed);
		else if (sp && sp->failed)
			ds_spare_drop(sw, sp->failed);
		else if (a && a->failed && sw->state == DS_RUNNING &&
			 sw->roles.spare_state == SP_LIVE)
			ds_failover(sw, a->failed);
		else if (a && a->failed)
			ds_dead(sw, a->failed);
		else
			return;
	}
}

/*
 * A planned switchover (pairctl switchover): the live spare becomes the
 * active by the same promotion as a failover, so it is exactly once and
 * the guest sees no error; the old active is fenced, and a new spare is
 * started on its side (the spare goes where the active is not). Moving
 * the active back is one more switchover.
 */
int devswitch_switchover(struct devswitch *sw)
{
	if (sw->state != DS_RUNNING || !sw->roles.active ||
	    sw->roles.active->failed)
		return -EBUSY;
	if (!sw->roles.spare || sw->roles.spare_state != SP_LIVE)
		return -EAGAIN;
	sw->stats.switchovers++;
	qb_log(LOG_NOTICE, "disk%d: switchover: spare %s takes over from active %s",
	       sw->index, ds_who(sw->roles.spare), ds_who(sw->roles.active));
	ds_rep_fail(sw, sw->roles.active, "planned switchover");
	ds_settle(sw);
	return 0;
}

void ds_driver_dead(struct devswitch *sw, const char *why)
{
	ds_rep_fail(sw, sw->roles.active, why);
	ds_settle(sw);
}

static int ds_snap_region(struct devswitch *sw)
{
	int fd;

	if (sw->snap_fd >= 0)
		return 0;
	/* sealed: the active it is shared with cannot shrink it under us */
	fd = pv_memfd_create("pairvisor-snapshot", DS_SNAP_MAX);
	if (fd < 0)
		return fd;
	sw->snap_map = mmap(NULL, DS_SNAP_MAX, PROT_READ, MAP_SHARED, fd, 0);
	if (sw->snap_map == MAP_FAILED)
		goto err;
	sw->snap_fd = fd;
	return 0;
err:
	sw->snap_map = NULL;
	close(fd);
	return -errno;
}

/*
 * How much of the snapshot region the active's link exposes: its arena,
 * as its HelloReply said, in pages (over rdma: what is registered is
 * pinned), else all of it.
 */
static size_t ds_snap_len(const struct ds_replica *a)
{
	uint64_t len = (a->arena_size + 4095) & ~4095ULL;

	return len && len <= DS_SNAP_MAX ? (size_t)len : DS_SNAP_MAX;
}

/* The spare's arena is registered: ask the active for a snapshot. */
void ds_snapshot_ask(struct devswitch *sw)
{
	struct ds_replica *a = sw->roles.active;
	Pv__Snapshot snap = PV__SNAPSHOT__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	size_t len = ds_snap_len(a);
	int err = ds_snap_region(sw);

	if (!err && a->snap_region != len) {
		err = pv_chan_region_register(a->ch, sw->snap_fd, len);
		a->snap_region = err ? 0 : len;
	}
	if (err) {
		qb_log(LOG_ERR, "disk%d: snapshot region: %s", sw->index,
		       strerror(-err));
		ds_rep_fail(sw, sw->roles.spare, "no snapshot region");
		return;
	}
	snap.nonce = ++sw->snap_nonce;
	env.msg_case = PV__ENVELOPE__MSG_SNAPSHOT;
	env.snapshot = &snap;
	sw->snap_seq = sw->next_seq - 1;
	sw->roles.spare_state = SP_SNAPSHOT;
	ds_send(sw, &env);
	ds_fault_hit(sw, DSF_SEEDING);
}

static const char *ds_check_snapshot(struct devswitch *sw,
				     const Pv__SnapshotReady *r)
{
	const char *why;

	if (r->status)
		return "the active could not copy its arena";
	if (r->seq != sw->snap_seq)
		return "the snapshot is not at the input it was asked at";
	why = ds_check_versions(sw, r);
	if (why)
		return why;
	if (!r->size || r->size > sw->roles.active->snap_region)
		return "the snapshot does not fit the region";
	if (pv_chan_bulk_write(sw->roles.spare->ch, 0, sw->snap_map, r->size))
		return "the snapshot does not fit its arena";
	return NULL;
}

/* Write the snapshot into the spare's arena, seed it, replay after S. */
void ds_on_snapshot_ready(struct devswitch *sw,
			  const Pv__SnapshotReady *r)
{
	struct ds_replica *sp = sw->roles.spare;
	Pv__Seed seed = PV__SEED__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	Pv__OutputId ex = PV__OUTPUT_ID__INIT;
	const char *why;

	if (sw->roles.spare_state != SP_SNAPSHOT || r->nonce != sw->snap_nonce)
		return;
	why = ds_check_snapshot(sw, r);
	if (why) {
		ds_rep_fail(sw, sp, why);
		return;
	}
	ex.seq = sw->exec_seq;
	ex.index = sw->exec_index;
	seed.seq = r->seq;
	seed.size = r->size;
	seed.machine_version = r->machine_version;
	seed.digest = pv_digest(sw->snap_map, r->size);
	seed.executed = sw->exec_any ? &ex : NULL;
	env.msg_case = PV__ENVELOPE__MSG_SEED;
	env.seed = &seed;
	if (ds_send_to(sw, sp, &env))
		return;
	sp->base_seq = sp->applied_seq = r->seq;
	sw->roles.spare_state = SP_LIVE;
	sw->spare_backoff_ms = 0;
	sw->stats.seeds++;
	sw->stats.seed_pause_ns = r->pause_ns;
	if (r->pause_ns > sw->stats.seed_pause_max_ns)
		sw->stats.seed_pause_max_ns = r->pause_ns;
	qb_log(LOG_NOTICE, "disk%d: spare %s seeded at input %" PRIu64
	       " (%" PRIu64 " bytes; the active paused %" PRIu64 " us)",
	       sw->index, ds_who(sp), r->seq, r->size, r->pause_ns / 1000);
	ds_replay(sw, sp, r->seq);
}

/* The answer to our latest ping gives the link's round trip. */
void ds_on_pong(struct devswitch *sw, struct ds_replica *rep,
		const Pv__Pong *pong)
{
	sw->stats.pongs++;
	if (rep->rtt_nonce && pong->nonce >= rep->rtt_nonce) {
		rep->rtt_ns = vm_clock_ns() - rep->ping_sent_ns;
		rep->rtt_nonce = 0;
	}
}

static int ds_ping_rep(struct devswitch *sw, struct ds_replica *rep)
{
	Pv__Ping ping = PV__PING__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;

	ping.nonce = ++rep->ping_nonce;
	/* time one ping at a time, the oldest unanswered: a slow link's
	 * round trip longer than the period is still measured */
	if (!rep->rtt_nonce && rep->greeted) {
		rep->rtt_nonce = ping.nonce;
		rep->ping_sent_ns = vm_clock_ns();
	}
	env.msg_case = PV__ENVELOPE__MSG_PING;
	env.ping = &ping;
	sw->stats.pings++;
	return ds_send_to(sw, rep, &env);
}

/*
 * Spawn a spare and greet it as one: its Pong says its arena is
 * registered, then the active is asked for a snapshot.
 */
static void ds_spare_link(struct devswitch *sw, struct pv_chan *ch, pid_t pid,
			  uint64_t token)
{
	struct ds_replica *rep = sw->roles.active == &sw->rep[0] ?
				 &sw->rep[1] : &sw->rep[0];
	Pv__Hello hello = PV__HELLO__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;

	ds_rep_init(sw, rep, ch, pid);
	rep->spawn_token = token;
	sw->roles.spare = rep;
	sw->roles.spare_state = SP_HELLO;
	sw->spare_t0 = vm_clock_ns();
	ds_hello_init(sw, false, &hello);
	env.msg_case = PV__ENVELOPE__MSG_HELLO;
	env.hello = &hello;
	if (!ds_send_to(sw, rep, &env))
		ds_ping_rep(sw, rep);
	qb_log(LOG_INFO, "disk%d: a spare started", sw->index);
}

/*
 * A spare goes to the other side of the active: to the peer host
 * (spare=tcp:) while the active runs here, next to the VMM once a remote
 * spare became the active.
 */
void ds_spare_start(struct devswitch *sw)
{
	struct pv_chan *ch;
	uint64_t token;

	if (sw->spare_url && !sw->roles.active->remote) {
		if (ds_connect(sw, &ch))
			return;
		sw->stats.connects++;
		ds_spare_link(sw, ch, 0, 0);
		sw->roles.spare->remote = true;
		return;
	}
	if (!ds_spawn(sw, &ch, &token))
		ds_spare_link(sw, ch, 0, token);
}

int devswitch_add_spare_chan(struct devswitch *sw, struct pv_chan *ch,
			     pid_t pid)
{
	if (sw->state != DS_RUNNING || sw->roles.spare) {
		pv_chan_close(ch);
		return -EBUSY;
	}
	ds_spare_link(sw, ch, pid, 0);
	ds_settle(sw);
	return 0;
}

/*
 * How long @rep may stay silent: the heartbeat limit for an active (a
 * hang), the link timeout for a spare on the peer host (a lost link).
 */
static uint64_t ds_silence_limit(const struct devswitch *sw,
				 const struct ds_replica *rep)
{
	uint32_t ms = rep == sw->roles.spare && rep->remote ?
		      sw->link_timeout_ms : sw->hb_limit_ms;

	/* a spare's Pong waits behind the snapshot we still send it: the
	 * seeding timeout bounds that */
	if (rep == sw->roles.spare && rep->ch &&
	    !pv_chan_bulk_idle(rep->ch) && ms < DS_SEED_TIMEOUT_MS)
		ms = DS_SEED_TIMEOUT_MS;
	return ms * 1000000ULL;
}

/*
 * Heartbeat both replicas; seed a spare where one is wanted. A replica
 * fails when a ping it was sent more than the limit ago is still
 * unanswered: any message answers (all come from its apply loop), and
 * what already waits on its channel is read first. So a VMM that was
 * itself too slow to ping or to read (a loaded host) never takes a
 * live replica for a hung one.
 */
static void ds_heartbeat(struct devswitch *sw)
{
	struct ds_replica *reps[2];
	uint64_t now;

	ds_poll_rep(sw, sw->roles.active);
	if (sw->roles.spare_state != SP_NONE)
		ds_poll_rep(sw, sw->roles.spare);
	now = vm_clock_ns();
	reps[0] = sw->roles.active;
	reps[1] = sw->roles.spare;
	for (int i = 0; i < 2; i++) {
		struct ds_replica *rep = reps[i];

		if (!rep || rep->failed)
			continue;
		if (rep->ping_wait_ns &&
		    now - rep->ping_wait_ns > ds_silence_limit(sw, rep)) {
			ds_rep_fail(sw, rep, rep == sw->roles.spare &&
				    rep->remote ?
				    "its link was silent past --link-timeout" :
				    "no answer to a ping within the heartbeat limit");
			continue;
		}
		if (!ds_ping_rep(sw, rep) && !rep->ping_wait_ns)
			rep->ping_wait_ns = now;
	}
	if (sw->roles.spare_state != SP_NONE &&
	    sw->roles.spare_state != SP_LIVE &&
	    now - sw->spare_t0 > DS_SEED_TIMEOUT_MS * 1000000ULL)
		ds_rep_fail(sw, sw->roles.spare, "seeding took too long");
	ds_settle(sw);
	if (sw->state == DS_RUNNING && sw->spare_wanted &&
	    sw->roles.spare_state == SP_NONE && now >= sw->spare_retry_ns) {
		ds_spare_start(sw);
		ds_settle(sw);
	}
}

/* A restarted active that has not attached in time: the disk fails. */
static void ds_attach_due(struct devswitch *sw)
{
	if (vm_clock_ns() - sw->start_ns > DS_ATTACH_TIMEOUT_MS * 1000000ULL)
		ds_driver_dead(sw, "the restarted driver did not attach");
}

void ds_ping(void *data)
{
	struct devswitch *sw = data;

	pthread_mutex_lock(&sw->vm->lock);
	sw->timer_armed = false;
	spawner_poll(&sw->vm->spawner);
	if (sw->nzombies)
		ds_reap_zombies(sw, false);
	if (sw->state == DS_RUNNING && sw->roles.active)
		ds_heartbeat(sw);
	else if (sw->state == DS_STARTING)
		ds_attach_due(sw);
	if ((sw->state == DS_RUNNING || sw->state == DS_STARTING) &&
	    !qb_loop_timer_add(sw->vm->loop, QB_LOOP_LOW,
			       sw->hb_period_ms * 1000000ULL, sw, ds_ping,
			       &sw->ping_timer))
		sw->timer_armed = true;
	pthread_mutex_unlock(&sw->vm->lock);
}
