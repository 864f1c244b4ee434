// SPDX-License-Identifier: GPL-2.0
/*
 * What a lost driver means for the disk (the router's ops->lost and
 * ops->promoted, replication/router.h): the router promotes a live spare
 * by itself; when there is none, this file restarts a fresh active with
 * the requests in flight, or fails every request with an I/O error. And
 * the stall the guest sees around a failover.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <linux/virtio_blk.h>
#include <qb/qblog.h>

#include "devswitch_priv.h"
#include "vm.h"

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

/* A failover or a restart starts now: the guest's stall is measured. */
static void ds_stall_start(struct devswitch *sw)
{
	sw->fo_at_ns = vm_clock_ns();
	sw->fo_before_ns = ds_wait_start(sw);
	sw->fo_stall_pending = sw->fo_before_ns != 0;
}

void ds_promoted(void *owner)
{
	ds_stall_start(owner);
}

/* No replica left: every in-flight and later request gets IOERR. */
void ds_dead(struct devswitch *sw, const char *why)
{
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
	pv_router_dead(sw->rt, why);
	ds_hold_drop(sw);
	ds_fail_all(sw);
	ds_restart_fail(sw);
}

void ds_driver_dead(struct devswitch *sw, const char *why)
{
	pv_router_fail(sw->rt, false, why);
	pv_router_settle(sw->rt);
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
	uint64_t t0 = vm_clock_ns(), *last, token;
	struct pv_chan *ch;
	int err = -ENOMEM;

	qb_log(LOG_NOTICE, "disk%d: active %s failed: %s; the spare is not seeded yet: restarting the driver",
	       sw->index, pv_router_who(sw->rt, false), why);
	pv_router_drop_spare(sw->rt, "the active died before it was seeded");
	ds_hold_drop(sw);	/* its requests are submitted again */
	pv_router_end_active(sw->rt);
	ds_stall_start(sw);
	last = &sw->restart_at[sw->stats.restarts % DS_RESTARTS_MAX];
	if (*last && t0 - *last < DS_RESTART_WINDOW_MS * 1000000ULL) {
		ds_dead(sw, "it keeps failing: restarting it does not help");
		return;
	}
	*last = t0;
	sw->restart_pend = malloc(sizeof(*sw->restart_pend) * DS_MAX_REQS);
	if (sw->restart_pend)
		ds_restart_collect(sw);
	sw->attached = false;
	sw->stats.restarts++;
	sw->start_ns = t0;
	if (sw->restart_pend)
		err = ds_spawn(sw, &ch, &token);
	if (!err) {
		sw->state = DS_STARTING;
		err = pv_router_start(sw->rt, ch, 0, token);
	}
	if (!err)
		err = ds_open(sw);
	if (err)
		ds_dead(sw, "the driver could not be restarted");
}

/*
 * The router's ops->lost: the active failed and no seeded spare takes
 * over. A spare being seeded means a restart; without one, the disk
 * fails.
 */
void ds_lost(void *owner, const char *why, bool seeding)
{
	struct devswitch *sw = owner;

	if (seeding)
		ds_restart(sw, why);
	else
		ds_dead(sw, why);
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
	       (int)pv_router_pid(sw->rt, false),
	       pv_router_generation(sw->rt),
	       (vm_clock_ns() - sw->start_ns) / 1000, n);
	for (int i = 0; i < n; i++)
		devswitch_submit(sw, &pend[i].r);
	free(pend);
}

/* Requests waiting for a restarted active when there is none to come. */
void ds_restart_fail(struct devswitch *sw)
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

/* A restarted active that has not attached in time: the disk fails. */
void ds_attach_due(struct devswitch *sw)
{
	if (vm_clock_ns() - sw->start_ns > DS_ATTACH_TIMEOUT_MS * 1000000ULL)
		ds_driver_dead(sw, "the restarted driver did not attach");
}
