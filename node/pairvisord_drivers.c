// SPDX-License-Identifier: GPL-2.0
/*
 * The disk drivers of the cluster's running guests, for pairctl status.
 *
 * Every PVD_DRV_POLL_MS this host asks each VMM it runs for its status
 * (vmmctl.h), in a job (cluster/job.h): a VMM that hangs costs the job
 * its timeout, never the daemon's loop. The child writes one record per
 * VMM as soon as it answered (a 32-bit length and a packed VmDrivers),
 * in an order that turns each round, so one hung VMM leaves the others'
 * answers fresh; a guest whose VMM has not answered for a while shows
 * how old its last answer is. What they answered goes to the group as a
 * DriverReport when it changed (else every PVD_DRV_RESEND_MS), so each
 * host shows every guest's drivers: its own as answered, the peer's as
 * last reported, each with its age. A peer's report is bounded in size
 * and counts before it is kept.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qb/qblog.h>

#include "manager.h"
#include "pairvisord.h"
#include "router.h"
#include "vmmctl.h"

#define PVD_DRV_POLL_MS		2000
#define PVD_DRV_QUERY_MS	1000	/* one VMM's answer */
#define PVD_DRV_POLL_JOB_MS	8000
#define PVD_DRV_RESEND_MS	10000	/* a report unchanged, sent again */
#define PVD_DRV_DISKS		8
#define PVD_DRV_REPORT_MAX	(PVD_MSG_MAX / 4)	/* packed, each way */

/* The last answer of one of this host's VMMs. */
struct drv_answer {
	char name[MGR_NAME_MAX + 1];	/* "": free */
	Pvcl__VmDrivers *v;		/* unpacked, ours */
	uint64_t at;			/* ms */
};

struct pvd_drivers {
	struct pvd *d;
	qb_loop_timer_handle tick;
	struct pv_job *poll;		/* the running query, NULL: none */
	char names[MGR_VMS_MAX][MGR_NAME_MAX + 1];	/* ... of these */
	size_t nr_names, turn;
	struct drv_answer ans[MGR_VMS_MAX];
	Pvcl__DriverReport *peer;	/* its last report, and when */
	uint64_t peer_at;
	uint8_t *sent;			/* the last report sent, ages 0 */
	size_t sent_len;
	uint64_t sent_at;
	Pvcl__VmDrivers copy[2 * MGR_VMS_MAX];	/* for a report, a status */
	Pvcl__VmDrivers *copyp[2 * MGR_VMS_MAX];
	uint64_t queries, failures, bad_reports;
};

static uint64_t drv_now_ms(void)
{
	return pv_router_now_ns() / 1000000;
}

/* Where a driver runs, by host name: "local" or the peer's HOST:PORT. */
static const char *drv_host_of(const struct pv_config *c, const char *where)
{
	const char *colon = strrchr(where, ':');
	const char *peer = c->peer_address;
	size_t n = colon ? (size_t)(colon - where) : 0;

	if (!strcmp(where, "local"))
		return c->host;
	if (!strncmp(peer, "tcp:", 4) || !strncmp(peer, "rdma:", 5))
		peer = strchr(peer, ':') + 1;
	if (n && !strncmp(peer, where, n) && peer[n] == ':')
		return c->peer;
	return where;
}

static void drv_disk(const struct pv_config *c, const Pvctl__DiskStatus *s,
		     Pvcl__DiskDrivers *o)
{
	const Pvctl__LinkStatus *a = s->active_link, *sp = s->spare_link;

	pvcl__disk_drivers__init(o);
	o->index = s->index;
	o->path = s->path;
	o->format = s->format;
	o->generation = s->generation;
	o->active_host = (char *)(s->inline_io ? "inline" :
				  drv_host_of(c, a ? a->where : "local"));
	o->active_pid = a ? a->pid : s->active_pid;
	o->spare_host = (char *)(sp ? drv_host_of(c, sp->where) : "");
	o->spare_pid = sp ? sp->pid : 0;
	o->spare_state = !sp ? "none" : sp->state[0] ? sp->state :
			 sp->up ? "up" : "connecting";
	o->mirrored = s->mirrored;
	o->spare_outputs_dropped = s->spare_outputs_dropped;
	o->failovers = s->failovers;
	o->switchovers = s->switchovers;
	o->last_stall_us = s->last_stall_us;
	o->executed_twice = s->executed_twice;
	o->seeds = s->seeds;
}

/* In the child: one VMM's answer, or why there is none. */
static void drv_vm(const struct pv_config *c, const char *name,
		   Pvcl__VmDrivers *v, Pvctl__VmStatus **st)
{
	Pvcl__DiskDrivers *disks;
	int err;

	pvcl__vm_drivers__init(v);
	v->vm = (char *)name;
	v->host = c->host;
	err = pv_vmm_status(name, PVD_DRV_QUERY_MS, st);
	if (err) {
		v->error = (char *)strerror(-err);
		return;
	}
	v->pid = (*st)->pid;
	v->state = (*st)->state;
	v->n_disks = (*st)->n_disks < PVD_DRV_DISKS ? (*st)->n_disks :
		     PVD_DRV_DISKS;
	v->disks = calloc(v->n_disks + 1, sizeof(*v->disks));
	disks = calloc(v->n_disks + 1, sizeof(*disks));
	if (!v->disks || !disks)
		_exit(ENOMEM);
	for (size_t i = 0; i < v->n_disks; i++) {
		drv_disk(c, (*st)->disks[i], &disks[i]);
		v->disks[i] = &disks[i];
	}
	v->disks[v->n_disks] = disks;	/* for the free */
}

/* Write all of @len bytes at @p to standard output, or exit. */
static void drv_put(const void *p, size_t len)
{
	size_t off = 0;
	ssize_t n;

	while (off < len && (n = write(1, (const char *)p + off, len - off)) > 0)
		off += n;
	if (off != len)
		_exit(EIO);
}

/* The child: every VMM asked, one record each as soon as it answered. */
static void drv_poll_child(void *carg)
{
	struct pvd_drivers *dr = carg;
	uint8_t *buf = malloc(PVD_DRV_REPORT_MAX);

	pv_job_quiet();		/* libqb's log lines must not mix in */
	if (!buf)
		_exit(ENOMEM);
	for (size_t k = 0; k < dr->nr_names; k++) {
		const char *name = dr->names[(dr->turn + k) % dr->nr_names];
		Pvctl__VmStatus *st = NULL;
		Pvcl__VmDrivers v;
		uint32_t len;

		drv_vm(&dr->d->cfg, name, &v, &st);
		if (pvcl__vm_drivers__get_packed_size(&v) <= PVD_DRV_REPORT_MAX) {
			len = pvcl__vm_drivers__pack(&v, buf);
			drv_put(&len, sizeof(len));
			drv_put(buf, len);
		}
		if (v.disks)
			free(v.disks[v.n_disks]);
		free(v.disks);
		if (st)
			pvctl__vm_status__free_unpacked(st, NULL);
	}
	_exit(0);
}

/* The answer slot of VMM @name; with @add, a new one if it has none. */
static struct drv_answer *drv_answer_of(struct pvd_drivers *dr,
					const char *name, bool add)
{
	struct drv_answer *free_slot = NULL;

	for (int i = 0; i < MGR_VMS_MAX; i++) {
		if (dr->ans[i].name[0] && !strcmp(dr->ans[i].name, name))
			return &dr->ans[i];
		if (!dr->ans[i].name[0] && !free_slot)
			free_slot = &dr->ans[i];
	}
	if (!add || !free_slot)
		return NULL;
	snprintf(free_slot->name, sizeof(free_slot->name), "%s", name);
	return free_slot;
}

static void drv_answer_drop(struct drv_answer *a)
{
	if (a->v)
		pvcl__vm_drivers__free_unpacked(a->v, NULL);
	memset(a, 0, sizeof(*a));
}

/* Answers of VMMs this host no longer runs are dropped. */
static void drv_forget_gone(struct pvd_drivers *dr)
{
	for (int i = 0; i < MGR_VMS_MAX; i++) {
		bool runs = false;

		for (size_t k = 0; k < dr->nr_names && !runs; k++)
			runs = !strcmp(dr->names[k], dr->ans[i].name);
		if (dr->ans[i].name[0] && !runs)
			drv_answer_drop(&dr->ans[i]);
	}
}

/* This host's answers into dr->copy, ages 0 or as they are: how many. */
static size_t drv_local(struct pvd_drivers *dr, bool ages)
{
	uint64_t now = drv_now_ms();
	size_t n = 0;

	for (int i = 0; i < MGR_VMS_MAX; i++) {
		struct drv_answer *a = &dr->ans[i];
		uint64_t age = now - a->at;

		if (!a->name[0] || !a->v)
			continue;
		dr->copy[n] = *a->v;
		dr->copy[n].age_ms = !ages ? 0 : age > UINT32_MAX ?
				     UINT32_MAX : age;
		dr->copyp[n] = &dr->copy[n];
		n++;
	}
	return n;
}

/* Tell the group what this host's VMMs answered, when it changed. */
static void drv_publish(struct pvd_drivers *dr)
{
	Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;
	Pvcl__DriverReport rep = PVCL__DRIVER_REPORT__INIT;
	uint8_t *plain = NULL, *buf = NULL;
	size_t len, blen;

	/* not before our Announce: the peer would drop it as a stranger's;
	 * and no news is no message */
	if (!dr->d->memb || !pv_memb_connected(dr->d->memb) ||
	    !dr->d->announced)
		return;
	rep.host = dr->d->cfg.host;
	rep.vms = dr->copyp;
	rep.n_vms = drv_local(dr, false);
	if (!rep.n_vms && !dr->sent)
		return;
	m.msg_case = PVCL__CPG_MESSAGE__MSG_DRIVER_REPORT;
	m.driver_report = &rep;
	len = pvcl__cpg_message__get_packed_size(&m);
	plain = malloc(len);
	if (!plain)
		return;
	pvcl__cpg_message__pack(&m, plain);
	if (len == dr->sent_len && !memcmp(plain, dr->sent, len) &&
	    drv_now_ms() - dr->sent_at < PVD_DRV_RESEND_MS)
		goto out;
	drv_local(dr, true);	/* now with their ages */
	blen = pvcl__cpg_message__get_packed_size(&m);
	if (blen > PVD_DRV_REPORT_MAX)
		goto out;	/* the peer would refuse it */
	buf = malloc(blen);
	if (!buf || pv_memb_send(dr->d->memb, buf,
				 pvcl__cpg_message__pack(&m, buf)))
		goto out;
	free(dr->sent);
	dr->sent = plain;
	dr->sent_len = len;
	dr->sent_at = drv_now_ms();
	plain = NULL;
out:
	free(plain);
	free(buf);
}

/* The records the child wrote, whole ones only: each VMM's answer. */
static void drv_polled(void *arg, int status, const char *out, size_t len)
{
	struct pvd_drivers *dr = arg;
	size_t off = 0, got = 0;
	uint32_t n;

	dr->poll = NULL;
	while (len - off >= sizeof(n)) {
		Pvcl__VmDrivers *v;
		struct drv_answer *a;

		memcpy(&n, out + off, sizeof(n));
		if (n > len - off - sizeof(n))
			break;
		v = pvcl__vm_drivers__unpack(NULL, n, (const uint8_t *)out +
					     off + sizeof(n));
		off += sizeof(n) + n;
		a = v ? drv_answer_of(dr, v->vm, true) : NULL;
		if (!a) {
			if (v)
				pvcl__vm_drivers__free_unpacked(v, NULL);
			continue;
		}
		if (a->v)
			pvcl__vm_drivers__free_unpacked(a->v, NULL);
		a->v = v;
		a->at = drv_now_ms();
		got++;
	}
	if (status || got < dr->nr_names) {
		dr->failures++;
		qb_log(LOG_WARNING, "drivers: %zu of %zu VMMs answered (%s)",
		       got, dr->nr_names, status == -ETIMEDOUT ?
		       "the rest did not in time" : status ?
		       "the query failed" : "the rest sent nothing readable");
	}
	drv_publish(dr);
}

static void drv_tick(void *data)
{
	struct pvd_drivers *dr = data;
	int err;

	qb_loop_timer_add(dr->d->loop, QB_LOOP_LOW, PVD_DRV_POLL_MS * 1000000ULL,
			  dr, drv_tick, &dr->tick);
	if (dr->poll)
		return;
	dr->nr_names = pvd_guests_names(dr->d, dr->names, MGR_VMS_MAX);
	drv_forget_gone(dr);
	if (!dr->nr_names) {
		drv_publish(dr);
		return;
	}
	dr->turn++;
	dr->queries++;
	err = pv_job_start(dr->d->loop, drv_poll_child, dr, PVD_DRV_POLL_JOB_MS,
			   PVD_MSG_MAX, drv_polled, dr, &dr->poll);
	if (err) {
		dr->failures++;
		qb_log(LOG_WARNING, "drivers: cannot ask the VMMs: %s",
		       strerror(-err));
	}
}

/* A report from the peer's pairvisord, bounded: kept, its strings too. */
static void drv_on_report(struct pvd_drivers *dr, uint32_t nodeid,
			  Pvcl__CpgMessage *m)
{
	Pvcl__DriverReport *rep = m->driver_report;
	struct pv_host *h = pv_hosts_by_node(&dr->d->hosts, nodeid);
	bool ok = h && !h->local && !strcmp(h->name, rep->host) &&
		  rep->n_vms <= MGR_VMS_MAX &&
		  pvcl__driver_report__get_packed_size(rep) <= PVD_DRV_REPORT_MAX;

	for (size_t i = 0; ok && i < rep->n_vms; i++)
		ok = rep->vms[i]->n_disks <= PVD_DRV_DISKS;
	if (!ok) {
		dr->bad_reports++;
		qb_log(LOG_WARNING, "drivers: a report from node %u dropped: not its host's, or too large",
		       nodeid);
		return;
	}
	if (dr->peer)
		pvcl__driver_report__free_unpacked(dr->peer, NULL);
	dr->peer = rep;		/* taken from @m, not freed with it */
	dr->peer_at = drv_now_ms();
	m->driver_report = NULL;
	m->msg_case = PVCL__CPG_MESSAGE__MSG__NOT_SET;
}

bool pvd_drivers_deliver(struct pvd *d, uint32_t nodeid, Pvcl__CpgMessage *m)
{
	if (m->msg_case != PVCL__CPG_MESSAGE__MSG_DRIVER_REPORT)
		return false;
	if (nodeid != pv_memb_local_nodeid(d->memb))
		drv_on_report(d->drivers, nodeid, m);
	return true;
}

void pvd_drivers_left(struct pvd *d, uint32_t nodeid)
{
	struct pvd_drivers *dr = d->drivers;
	struct pv_host *h = pv_hosts_by_node(&d->hosts, nodeid);

	if (!h || h->local || !dr->peer)
		return;
	pvcl__driver_report__free_unpacked(dr->peer, NULL);
	dr->peer = NULL;
}

void pvd_drivers_status(struct pvd *d, Pvcl__ClusterStatus *st)
{
	struct pvd_drivers *dr = d->drivers;
	const Pvcl__DriverReport *peer = dr->peer;
	uint64_t since = drv_now_ms() - dr->peer_at;
	size_t n = drv_local(dr, true);

	for (size_t i = 0; peer && i < peer->n_vms; i++) {
		uint64_t age = peer->vms[i]->age_ms + since;

		dr->copy[n] = *peer->vms[i];
		dr->copy[n].age_ms = age > UINT32_MAX ? UINT32_MAX : age;
		dr->copyp[n] = &dr->copy[n];
		n++;
	}
	st->drivers = dr->copyp;
	st->n_drivers = n;
	st->vmm_queries = dr->queries;
	st->vmm_query_failures = dr->failures;
	st->cpg_bad_messages += dr->bad_reports;
}

int pvd_drivers_start(struct pvd *d)
{
	struct pvd_drivers *dr = calloc(1, sizeof(*dr));

	if (!dr)
		return -ENOMEM;
	dr->d = d;
	d->drivers = dr;
	drv_tick(dr);
	return 0;
}

void pvd_drivers_stop(struct pvd *d)
{
	struct pvd_drivers *dr = d->drivers;

	if (!dr)
		return;
	qb_loop_timer_del(d->loop, dr->tick);
	pv_job_cancel(dr->poll);
	for (int i = 0; i < MGR_VMS_MAX; i++)
		drv_answer_drop(&dr->ans[i]);
	if (dr->peer)
		pvcl__driver_report__free_unpacked(dr->peer, NULL);
	free(dr->sent);
	free(dr);
	d->drivers = NULL;
}
