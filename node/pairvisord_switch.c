// SPDX-License-Identifier: GPL-2.0
/*
 * pairctl switchover NAME --disk N from either host: a disk's planned
 * switchover goes to the host running the guest. Asked here, this host's
 * job asks the VMM (a VMM may hang: cluster/job.h); asked on the other
 * host, a DriverAsk over CPG makes the guest's host do it and send the
 * answer back (DriverAnswer), or the asker gives up after PVD_SW_ASK_MS
 * or when that host leaves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <qb/qblog.h>

#include "pairvisord.h"
#include "vmmctl.h"

#define PVD_SW_JOB_MS		8000	/* under pairctl's 10 s */
#define PVD_SW_ASK_MS		9000
#define PVD_SW_MAX		16

/* A switchover asked of this host's VMM: for a client here, or a host. */
struct sw_here {
	struct pvd_switches *sw;
	struct pv_job *job;
	char vm[MGR_NAME_MAX + 1];
	uint32_t disk;
	uint32_t nodeid;		/* the asking host's, 0: a client here */
	uint64_t token;
	pv_mgr_answer_fn *answer;
	void *arg;
};

/* A switchover this host asked the peer for. */
struct sw_ask {
	struct pvd_switches *sw;
	uint64_t token;			/* 0: free */
	pv_mgr_answer_fn *answer;
	void *arg;
	qb_loop_timer_handle timer;
};

struct pvd_switches {
	struct pvd *d;
	struct sw_ask asks[PVD_SW_MAX];
	struct sw_here *here[PVD_SW_MAX];
	uint64_t next_token;		/* random at start: no late answer
					 * of an earlier run matches */
};

/* Answer a switchover: to a client here, or over CPG to the asker. */
static void sw_answer(struct pvd_switches *sw, uint32_t nodeid,
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
	    pv_memb_send(sw->d->memb, buf, pvcl__cpg_message__pack(&m, buf)))
		qb_log(LOG_WARNING, "switchover: an answer was not sent");
}

/* The child: the VMM's answer as its exit status (an errno, or 0). */
static void sw_child(void *carg)
{
	const struct sw_here *h = carg;
	int err;

	pv_job_quiet();
	err = pv_vmm_switchover(h->vm, h->disk, PVD_SW_JOB_MS - 1000);
	pv_job_exit_errno(err);
}

static void sw_here_free(struct sw_here *h)
{
	for (int i = 0; i < PVD_SW_MAX; i++)
		if (h->sw->here[i] == h)
			h->sw->here[i] = NULL;
	free(h);
}

static void sw_done(void *arg, int status, const char *out, size_t len)
{
	struct sw_here *h = arg;
	int err = pv_job_errno(status);
	const char *host = h->sw->d->cfg.host;
	char msg[256];

	(void)out;
	(void)len;
	if (err == -ETIMEDOUT)
		snprintf(msg, sizeof(msg), "vm %s: disk%u: its VMM on host %s did not answer in time: the switchover may or may not have happened (pairctl status)",
			 h->vm, h->disk, host);
	else if (err == -ESRCH)	/* not -ESRCH: pairctl reads that as "not the cluster's" */
		snprintf(msg, sizeof(msg), "vm %s: its VMM does not run on host %s",
			 h->vm, host);
	else if (err)
		snprintf(msg, sizeof(msg), "vm %s: disk%u: switchover refused: %s",
			 h->vm, h->disk, pv_vmm_switchover_why(err));
	else
		snprintf(msg, sizeof(msg), "vm %s: disk%u: the spare took over (on host %s)",
			 h->vm, h->disk, host);
	if (err == -ESRCH)
		err = -ENXIO;
	qb_log(err ? LOG_WARNING : LOG_NOTICE, "switchover: %s", msg);
	sw_answer(h->sw, h->nodeid, h->token, h->answer, h->arg, err, msg);
	sw_here_free(h);
}

/* Switch a disk of a guest this host runs over to its spare. */
static void sw_here(struct pvd_switches *sw, const Pvcl__DiskSwitchover *so,
		    uint32_t nodeid, uint64_t token, pv_mgr_answer_fn *answer,
		    void *arg)
{
	struct sw_here *h = NULL;
	int slot = -1, err;

	for (int i = 0; i < PVD_SW_MAX && slot < 0; i++)
		if (!sw->here[i])
			slot = i;
	if (slot >= 0)
		h = calloc(1, sizeof(*h));
	err = slot < 0 ? -EBUSY : h ? 0 : -ENOMEM;
	if (h) {
		*h = (struct sw_here){ .sw = sw, .disk = so->disk,
			.nodeid = nodeid, .token = token, .answer = answer,
			.arg = arg };
		snprintf(h->vm, sizeof(h->vm), "%s", so->vm);
		err = pv_job_start(sw->d->loop, sw_child, h, PVD_SW_JOB_MS, 0,
				   sw_done, h, &h->job);
	}
	if (!err) {
		sw->here[slot] = h;
		return;
	}
	free(h);
	sw_answer(sw, nodeid, token, answer, arg, err,
		  err == -EBUSY ? "too many switchovers at once: try again" :
		  "cannot ask the guest's VMM");
}

static void sw_ask_end(struct pvd_switches *sw, struct sw_ask *a, int error,
		       const char *msg)
{
	Pvcl__Reply r = PVCL__REPLY__INIT;

	qb_loop_timer_del(sw->d->loop, a->timer);
	a->token = 0;
	r.error = error;
	r.message = (char *)msg;
	a->answer(a->arg, &r);
}

static void sw_ask_timeout(void *data)
{
	struct sw_ask *a = data;

	sw_ask_end(a->sw, a, -ETIMEDOUT,
		   "the guest's host did not answer in time: the switchover may or may not have happened (pairctl status)");
}

/* Ask the peer, which runs the guest, to do it. */
static int sw_there(struct pvd_switches *sw, const Pvcl__DiskSwitchover *so,
		    pv_mgr_answer_fn *answer, void *arg)
{
	Pvcl__DriverAsk ask = PVCL__DRIVER_ASK__INIT;
	Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;
	struct sw_ask *a = NULL;
	uint8_t buf[512];

	for (int i = 0; i < PVD_SW_MAX && !a; i++)
		if (!sw->asks[i].token)
			a = &sw->asks[i];
	if (!a)
		return -EBUSY;
	ask.token = ++sw->next_token ?: ++sw->next_token;
	ask.host = sw->d->cfg.peer;
	ask.switchover = (Pvcl__DiskSwitchover *)so;
	m.msg_case = PVCL__CPG_MESSAGE__MSG_DRIVER_ASK;
	m.driver_ask = &ask;
	if (pvcl__cpg_message__get_packed_size(&m) > sizeof(buf) ||
	    pv_memb_send(sw->d->memb, buf, pvcl__cpg_message__pack(&m, buf)))
		return -EHOSTUNREACH;
	*a = (struct sw_ask){ .sw = sw, .token = ask.token, .answer = answer,
			      .arg = arg };
	qb_loop_timer_add(sw->d->loop, QB_LOOP_MED, PVD_SW_ASK_MS * 1000000ULL,
			  a, sw_ask_timeout, &a->timer);
	return 0;
}

static void sw_on_answer(struct pvd_switches *sw, const Pvcl__DriverAnswer *da)
{
	if (da->nodeid != pv_memb_local_nodeid(sw->d->memb))
		return;
	for (int i = 0; i < PVD_SW_MAX; i++) {
		struct sw_ask *a = &sw->asks[i];

		if (a->token && a->token == da->token) {
			sw_ask_end(sw, a, da->error < 0 ? da->error :
				   da->error ? -EPROTO : 0, da->message);
			return;
		}
	}
}

void pvd_switchover(struct pvd *d, const Pvcl__DiskSwitchover *so,
		    pv_mgr_answer_fn *answer, void *arg)
{
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
		sw_here(d->switches, so, 0, 0, answer, arg);
		return;
	} else {
		r.error = sw_there(d->switches, so, answer, arg);
		if (!r.error)
			return;
		snprintf(msg, sizeof(msg), "cannot ask host %s, which runs vm %s: %s",
			 s->hosts[v->host].name, so->vm, strerror(-r.error));
	}
	answer(arg, &r);
}

bool pvd_switch_deliver(struct pvd *d, uint32_t nodeid, Pvcl__CpgMessage *m)
{
	struct pvd_switches *sw = d->switches;
	const Pvcl__DriverAsk *ask = m->driver_ask;

	switch (m->msg_case) {
	case PVCL__CPG_MESSAGE__MSG_DRIVER_ASK:
		if (nodeid != pv_memb_local_nodeid(d->memb) &&
		    ask->switchover && !strcmp(ask->host, d->cfg.host))
			sw_here(sw, ask->switchover, nodeid, ask->token, NULL,
				NULL);
		return true;
	case PVCL__CPG_MESSAGE__MSG_DRIVER_ANSWER:
		sw_on_answer(sw, m->driver_answer);
		return true;
	default:
		return false;
	}
}

/* The peer left: what it was asked will not be answered. */
void pvd_switch_left(struct pvd *d)
{
	struct pvd_switches *sw = d->switches;

	for (int i = 0; i < PVD_SW_MAX; i++)
		if (sw->asks[i].token)
			sw_ask_end(sw, &sw->asks[i], -EHOSTDOWN,
				   "the guest's host left the cluster before it answered: the switchover may or may not have happened");
}

int pvd_switch_start(struct pvd *d)
{
	struct pvd_switches *sw = calloc(1, sizeof(*sw));

	if (!sw)
		return -ENOMEM;
	sw->d = d;
	if (getrandom(&sw->next_token, sizeof(sw->next_token), 0) !=
	    sizeof(sw->next_token))
		sw->next_token = (uint64_t)getpid() << 32;
	d->switches = sw;
	return 0;
}

void pvd_switch_stop(struct pvd *d)
{
	struct pvd_switches *sw = d->switches;

	if (!sw)
		return;
	for (int i = 0; i < PVD_SW_MAX; i++) {
		if (sw->here[i])
			pv_job_cancel(sw->here[i]->job);
		free(sw->here[i]);
		if (sw->asks[i].token)
			qb_loop_timer_del(d->loop, sw->asks[i].timer);
	}
	free(sw);
	d->switches = NULL;
}
