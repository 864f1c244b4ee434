// SPDX-License-Identifier: GPL-2.0
/*
 * The disk drivers of the cluster's running guests, for pairctl status,
 * and a disk's planned switchover from either host.
 *
 * Every PVD_DRV_POLL_MS this host asks each VMM it runs for its status
 * (vmmctl.h), in a job (cluster/job.h): a VMM that hangs costs the job
 * its timeout, never the daemon's loop. What they answered goes to the
 * group as a DriverReport when it changed, so each host can show every
 * guest's drivers: its own as answered, the peer's as last reported.
 *
 * pairctl switchover NAME --disk N goes to the host running the guest:
 * asked here, this host's job asks the VMM; asked on the other host, a
 * DriverAsk over CPG makes the guest's host do it and send the answer
 * back (DriverAnswer), or the asker gives up after PVD_DRV_ASK_MS.
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
#define PVD_DRV_SWITCH_MS	8000	/* under pairctl's 10 s */
#define PVD_DRV_ASK_MS		9000
#define PVD_DRV_ASKS		16
#define PVD_DRV_DISKS		8

/* A switchover asked of this host's VMM: for a client here, or a host. */
struct drv_switch {
	struct pvd_drivers *dr;
	struct pv_job *job;
	char vm[MGR_NAME_MAX + 1];
	uint32_t disk;
	uint32_t nodeid;		/* the asking host's, 0: a client here */
	uint64_t token;
	pv_mgr_answer_fn *answer;
	void *arg;
};

/* A switchover this host asked the peer for. */
struct drv_ask {
	uint64_t token;			/* 0: free */
	pv_mgr_answer_fn *answer;
	void *arg;
	qb_loop_timer_handle timer;
};

struct pvd_drivers {
	struct pvd *d;
	qb_loop_timer_handle tick;
	struct pv_job *poll;		/* the running query, NULL: none */
	char names[MGR_VMS_MAX][MGR_NAME_MAX + 1];	/* ... of these */
	size_t nr_names;
	Pvcl__DriverReport *local, *peer;	/* last answers, reports */
	uint64_t local_at, peer_at;
	uint8_t *sent;			/* the last report sent, packed */
	size_t sent_len;
	uint64_t sent_at;
	struct drv_ask asks[PVD_DRV_ASKS];
	struct drv_switch *switching[PVD_DRV_ASKS];	/* running here */
	uint64_t next_token;
	Pvcl__VmDrivers *all[2 * MGR_VMS_MAX];	/* for a status */
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
		   Pvcl__VmDrivers *v)
{
	Pvctl__VmStatus *st = NULL;
	Pvcl__DiskDrivers *disks;
	int err;

	pvcl__vm_drivers__init(v);
	v->vm = (char *)name;
	v->host = c->host;
	err = pv_vmm_status(name, PVD_DRV_QUERY_MS, &st);
	if (err) {
		v->error = (char *)strerror(-err);
		return;
	}
	v->pid = st->pid;
	v->state = st->state;
	v->n_disks = st->n_disks < PVD_DRV_DISKS ? st->n_disks : PVD_DRV_DISKS;
	v->disks = calloc(v->n_disks, sizeof(*v->disks));
	disks = calloc(v->n_disks, sizeof(*disks));
	if (!v->disks || !disks)
		_exit(ENOMEM);
	for (size_t i = 0; i < v->n_disks; i++) {
		drv_disk(c, st->disks[i], &disks[i]);
		v->disks[i] = &disks[i];
	}
	/* st stays: the strings point into it, the child ends soon */
}

/* The child: every VMM asked, the DriverReport on standard output. */
static void drv_poll_child(void *carg)
{
	struct pvd_drivers *dr = carg;
	Pvcl__DriverReport rep = PVCL__DRIVER_REPORT__INIT;
	Pvcl__VmDrivers *vms = calloc(dr->nr_names, sizeof(*vms));
	size_t len, off = 0;
	uint8_t *buf;
	ssize_t n;

	rep.host = dr->d->cfg.host;
	rep.vms = calloc(dr->nr_names, sizeof(*rep.vms));
	if (!vms || !rep.vms)
		_exit(ENOMEM);
	for (size_t i = 0; i < dr->nr_names; i++) {
		drv_vm(&dr->d->cfg, dr->names[i], &vms[i]);
		rep.vms[rep.n_vms++] = &vms[i];
	}
	len = pvcl__driver_report__get_packed_size(&rep);
	buf = malloc(len);
	if (!buf)
		_exit(ENOMEM);
	pvcl__driver_report__pack(&rep, buf);
	while (off < len && (n = write(1, buf + off, len - off)) > 0)
		off += n;
	_exit(off == len ? 0 : EIO);
}

/* Tell the group what this host's VMMs answered, when it changed. */
static void drv_publish(struct pvd_drivers *dr)
{
	Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;
	Pvcl__DriverReport empty = PVCL__DRIVER_REPORT__INIT;
	size_t len;
	uint8_t *buf;

	/* not before our Announce: the peer would drop it as a stranger's;
	 * and no news is no message */
	if (!dr->d->memb || !pv_memb_connected(dr->d->memb) ||
	    !dr->d->announced || (!dr->local && !dr->sent))
		return;
	empty.host = dr->d->cfg.host;
	m.msg_case = PVCL__CPG_MESSAGE__MSG_DRIVER_REPORT;
	m.driver_report = dr->local ? dr->local : &empty;
	len = pvcl__cpg_message__get_packed_size(&m);
	buf = malloc(len);
	if (!buf)
		return;
	pvcl__cpg_message__pack(&m, buf);
	if (len == dr->sent_len && !memcmp(buf, dr->sent, len) &&
	    drv_now_ms() - dr->sent_at < PVD_DRV_RESEND_MS) {
		free(buf);
		return;
	}
	if (pv_memb_send(dr->d->memb, buf, len)) {
		free(buf);
		return;
	}
	free(dr->sent);
	dr->sent = buf;
	dr->sent_len = len;
	dr->sent_at = drv_now_ms();
}

static void drv_polled(void *arg, int status, const char *out, size_t len)
{
	struct pvd_drivers *dr = arg;
	Pvcl__DriverReport *rep = NULL;

	dr->poll = NULL;
	if (!status)
		rep = pvcl__driver_report__unpack(NULL, len,
						  (const uint8_t *)out);
	if (!rep) {
		dr->failures++;
		qb_log(LOG_WARNING, "drivers: the VMMs' status was not read (%s)",
		       status == -ETIMEDOUT ? "timed out" : status < 0 ?
		       strerror(-status) : status ? strerror(status) :
		       "undecodable");
		return;
	}
	if (dr->local)
		pvcl__driver_report__free_unpacked(dr->local, NULL);
	dr->local = rep;
	dr->local_at = drv_now_ms();
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
	if (!dr->nr_names) {
		if (dr->local)
			pvcl__driver_report__free_unpacked(dr->local, NULL);
		dr->local = NULL;
		dr->local_at = drv_now_ms();
		drv_publish(dr);
		return;
	}
	dr->queries++;
	err = pv_job_start(dr->d->loop, drv_poll_child, dr, PVD_DRV_POLL_JOB_MS,
			   PVD_MSG_MAX / 2, drv_polled, dr, &dr->poll);
	if (err) {
		dr->failures++;
		qb_log(LOG_WARNING, "drivers: cannot ask the VMMs: %s",
		       strerror(-err));
	}
}

/* A report from the peer's pairvisord: kept, its strings too. */
static void drv_on_report(struct pvd_drivers *dr, uint32_t nodeid,
			  Pvcl__CpgMessage *m)
{
	Pvcl__DriverReport *rep = m->driver_report;
	struct pv_host *h = pv_hosts_by_node(&dr->d->hosts, nodeid);
	bool ok = h && !h->local && !strcmp(h->name, rep->host) &&
		  rep->n_vms <= MGR_VMS_MAX;

	for (size_t i = 0; ok && i < rep->n_vms; i++)
		ok = rep->vms[i]->n_disks <= PVD_DRV_DISKS;
	if (!ok) {
		dr->bad_reports++;
		return;
	}
	if (dr->peer)
		pvcl__driver_report__free_unpacked(dr->peer, NULL);
	dr->peer = rep;		/* taken from @m, not freed with it */
	dr->peer_at = drv_now_ms();
	m->driver_report = NULL;
	m->msg_case = PVCL__CPG_MESSAGE__MSG__NOT_SET;
}

/* Answer a switchover: to a client here, or over CPG to the asker. */
static void drv_answer(struct pvd_drivers *dr, uint32_t nodeid,
		       uint64_t token, pv_mgr_answer_fn *answer, void *arg,
		       int error, const char *msg)
{
	Pvcl__Reply r = PVCL__REPLY__INIT;
	Pvcl__DriverAnswer a = PVCL__DRIVER_ANSWER__INIT;
	Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;
	uint8_t buf[1024];

	if (!nodeid) {
		r.error = error;
		r.message = (char *)msg;
		answer(arg, &r);
		return;
	}
	a.nodeid = nodeid;
	a.token = token;
	a.error = error;
	a.message = (char *)msg;
	m.msg_case = PVCL__CPG_MESSAGE__MSG_DRIVER_ANSWER;
	m.driver_answer = &a;
	if (pvcl__cpg_message__get_packed_size(&m) > sizeof(buf) ||
	    pv_memb_send(dr->d->memb, buf, pvcl__cpg_message__pack(&m, buf)))
		qb_log(LOG_WARNING, "drivers: a switchover's answer was not sent");
}

static void drv_switch_child(void *carg)
{
	const struct drv_switch *sw = carg;
	int err = pv_vmm_switchover(sw->vm, sw->disk, PVD_DRV_SWITCH_MS - 1000);

	_exit(err < 0 ? -err : 0);
}

static void drv_switch_free(struct drv_switch *sw)
{
	for (int i = 0; i < PVD_DRV_ASKS; i++)
		if (sw->dr->switching[i] == sw)
			sw->dr->switching[i] = NULL;
	free(sw);
}

static void drv_switched(void *arg, int status, const char *out, size_t len)
{
	struct drv_switch *sw = arg;
	int err = status > 0 ? -status : status;
	char msg[256];

	(void)out;
	(void)len;
	if (err)
		snprintf(msg, sizeof(msg), "vm %s: disk%u: switchover refused: %s",
			 sw->vm, sw->disk, err == -ETIMEDOUT ?
			 "its VMM did not answer in time" :
			 pv_vmm_switchover_why(err));
	else
		snprintf(msg, sizeof(msg), "vm %s: disk%u: the spare took over (on host %s)",
			 sw->vm, sw->disk, sw->dr->d->cfg.host);
	qb_log(err ? LOG_WARNING : LOG_NOTICE, "drivers: %s", msg);
	drv_answer(sw->dr, sw->nodeid, sw->token, sw->answer, sw->arg, err,
		   msg);
	drv_switch_free(sw);
}

/* Switch a disk of a guest this host runs over to its spare. */
static void drv_switch_here(struct pvd_drivers *dr,
			    const Pvcl__DiskSwitchover *so, uint32_t nodeid,
			    uint64_t token, pv_mgr_answer_fn *answer, void *arg)
{
	struct drv_switch *sw = NULL;
	int slot = -1, err;

	for (int i = 0; i < PVD_DRV_ASKS && slot < 0; i++)
		if (!dr->switching[i])
			slot = i;
	if (slot >= 0)
		sw = calloc(1, sizeof(*sw));
	err = slot < 0 ? -EBUSY : sw ? 0 : -ENOMEM;
	if (sw) {
		*sw = (struct drv_switch){ .dr = dr, .disk = so->disk,
			.nodeid = nodeid, .token = token, .answer = answer,
			.arg = arg };
		snprintf(sw->vm, sizeof(sw->vm), "%s", so->vm);
		err = pv_job_start(dr->d->loop, drv_switch_child, sw,
				   PVD_DRV_SWITCH_MS, 0, drv_switched, sw,
				   &sw->job);
	}
	if (!err)
		dr->switching[slot] = sw;
	if (err) {
		free(sw);
		drv_answer(dr, nodeid, token, answer, arg, err,
			   err == -EBUSY ? "too many switchovers at once: try again" :
			   "cannot ask the guest's VMM");
	}
}

static void drv_ask_timeout(void *data)
{
	struct drv_ask *a = data;
	Pvcl__Reply r = PVCL__REPLY__INIT;

	r.error = -ETIMEDOUT;
	r.message = "the guest's host did not answer in time";
	a->token = 0;
	a->answer(a->arg, &r);
}

/* Ask the peer, which runs the guest, to do it. */
static int drv_switch_there(struct pvd_drivers *dr,
			    const Pvcl__DiskSwitchover *so,
			    pv_mgr_answer_fn *answer, void *arg)
{
	Pvcl__DriverAsk ask = PVCL__DRIVER_ASK__INIT;
	Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;
	struct drv_ask *a = NULL;
	uint8_t buf[512];

	for (int i = 0; i < PVD_DRV_ASKS && !a; i++)
		if (!dr->asks[i].token)
			a = &dr->asks[i];
	if (!a)
		return -EBUSY;
	ask.token = ++dr->next_token;
	ask.host = dr->d->cfg.peer;
	ask.switchover = (Pvcl__DiskSwitchover *)so;
	m.msg_case = PVCL__CPG_MESSAGE__MSG_DRIVER_ASK;
	m.driver_ask = &ask;
	if (pvcl__cpg_message__get_packed_size(&m) > sizeof(buf) ||
	    pv_memb_send(dr->d->memb, buf, pvcl__cpg_message__pack(&m, buf)))
		return -EHOSTUNREACH;
	*a = (struct drv_ask){ .token = ask.token, .answer = answer,
			       .arg = arg };
	qb_loop_timer_add(dr->d->loop, QB_LOOP_MED, PVD_DRV_ASK_MS * 1000000ULL,
			  a, drv_ask_timeout, &a->timer);
	return 0;
}

static void drv_on_answer(struct pvd_drivers *dr,
			  const Pvcl__DriverAnswer *da)
{
	Pvcl__Reply r = PVCL__REPLY__INIT;

	if (da->nodeid != pv_memb_local_nodeid(dr->d->memb))
		return;
	for (int i = 0; i < PVD_DRV_ASKS; i++) {
		struct drv_ask *a = &dr->asks[i];

		if (!a->token || a->token != da->token)
			continue;
		qb_loop_timer_del(dr->d->loop, a->timer);
		a->token = 0;
		r.error = da->error < 0 ? da->error : da->error ? -EPROTO : 0;
		r.message = da->message;
		a->answer(a->arg, &r);
		return;
	}
}

void pvd_drivers_switchover(struct pvd *d, const Pvcl__DiskSwitchover *so,
			    pv_mgr_answer_fn *answer, void *arg)
{
	struct pvd_drivers *dr = d->drivers;
	const struct mgr_state *s = pv_mgr_host_state(d->mgr);
	const struct mgr_vm *v = s ? pv_mgr_vm(s, so->vm) : NULL;
	Pvcl__Reply r = PVCL__REPLY__INIT;
	char msg[256];

	r.message = msg;
	if (!s) {
		r.error = -EAGAIN;
		snprintf(msg, sizeof(msg), "this host holds no manager state yet: try again");
	} else if (!v) {
		r.error = -ESRCH;
		snprintf(msg, sizeof(msg), "no vm %s in the cluster", so->vm);
	} else if (v->state != MGR_VM_RUNNING) {
		r.error = -EINVAL;
		snprintf(msg, sizeof(msg), "vm %s is %s, not running", so->vm,
			 pv_mgr_state_name(v->state));
	} else if (!strcmp(s->hosts[v->host].name, d->cfg.host)) {
		drv_switch_here(dr, so, 0, 0, answer, arg);
		return;
	} else {
		r.error = drv_switch_there(dr, so, answer, arg);
		if (!r.error)
			return;
		snprintf(msg, sizeof(msg), "cannot ask host %s, which runs vm %s: %s",
			 s->hosts[v->host].name, so->vm, strerror(-r.error));
	}
	answer(arg, &r);
}

bool pvd_drivers_deliver(struct pvd *d, uint32_t nodeid, Pvcl__CpgMessage *m)
{
	struct pvd_drivers *dr = d->drivers;
	bool mine = nodeid == pv_memb_local_nodeid(d->memb);

	switch (m->msg_case) {
	case PVCL__CPG_MESSAGE__MSG_DRIVER_REPORT:
		if (!mine)
			drv_on_report(dr, nodeid, m);
		return true;
	case PVCL__CPG_MESSAGE__MSG_DRIVER_ASK:
		if (!mine && m->driver_ask->switchover &&
		    !strcmp(m->driver_ask->host, d->cfg.host))
			drv_switch_here(dr, m->driver_ask->switchover, nodeid,
					m->driver_ask->token, NULL, NULL);
		return true;
	case PVCL__CPG_MESSAGE__MSG_DRIVER_ANSWER:
		drv_on_answer(dr, m->driver_answer);
		return true;
	default:
		return false;
	}
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

static size_t drv_add(Pvcl__VmDrivers **all, size_t n,
		      const Pvcl__DriverReport *rep, uint64_t at)
{
	uint64_t age = drv_now_ms() - at;

	for (size_t i = 0; rep && i < rep->n_vms; i++) {
		rep->vms[i]->age_ms = age > UINT32_MAX ? UINT32_MAX : age;
		all[n++] = rep->vms[i];
	}
	return n;
}

void pvd_drivers_status(struct pvd *d, Pvcl__ClusterStatus *st)
{
	struct pvd_drivers *dr = d->drivers;

	st->n_drivers = drv_add(dr->all, 0, dr->local, dr->local_at);
	st->n_drivers = drv_add(dr->all, st->n_drivers, dr->peer, dr->peer_at);
	st->drivers = dr->all;
	st->vmm_queries = dr->queries;
	st->vmm_query_failures = dr->failures;
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
	for (int i = 0; i < PVD_DRV_ASKS; i++) {
		if (dr->switching[i])
			pv_job_cancel(dr->switching[i]->job);
		free(dr->switching[i]);
		if (dr->asks[i].token)
			qb_loop_timer_del(d->loop, dr->asks[i].timer);
	}
	if (dr->local)
		pvcl__driver_report__free_unpacked(dr->local, NULL);
	if (dr->peer)
		pvcl__driver_report__free_unpacked(dr->peer, NULL);
	free(dr->sent);
	free(dr);
	d->drivers = NULL;
}
