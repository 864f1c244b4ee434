// SPDX-License-Identifier: GPL-2.0
/*
 * pairctl manager switchover: the planned move of the active manager to
 * its spare on the other host, with no request lost and none applied
 * twice.
 *
 * The active refuses new client requests (EAGAIN: a client tries
 * again; its own reports of guests still go in), waits until every
 * request it took is answered and its live spare applied every input,
 * then sends the spare's host a Handover naming how many inputs its state
 * holds, and from then on refuses every input. That host's replica,
 * seeded and holding as many, becomes the active with a newer
 * generation, as in a failover; seeing its Announce, the old active
 * answers the switchover and steps down, and the new active's router
 * seeds a spare on the old host. A spare that cannot take over says why
 * (HandoverRefused) and the old active goes on.
 *
 * The move ends without moving when its spare goes, when the requests
 * in flight are not done within MGR_ANSWER_TIMEOUT_MS, or when no
 * answer comes within MGR_HANDOVER_WAIT_MS of the Handover: then the
 * outcome is unknown to the client, and the old active, which never
 * stepped down, takes requests again. That is safe: a late promotion of
 * the spare cannot lose an acknowledged request, because the old active
 * answers nothing its spare has not applied, and a promoted spare
 * applies nothing more from it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <qb/qblog.h>

#include "mgr_host_priv.h"

#define MGR_HANDOVER_TICK_MS	100
#define MGR_HANDOVER_WAIT_MS	5000

static void mgr_handover_tick(void *data);

static void mgr_handover_end(struct pv_mgr_host *h, int err, const char *msg)
{
	struct mgr_handover *ho = &h->ho;

	if (!ho->on)
		return;
	qb_loop_timer_del(h->env.loop, ho->timer);
	ho->on = false;
	qb_log(err ? LOG_WARNING : LOG_NOTICE, "manager: switchover: %s", msg);
	mgr_answer(h, &ho->who, err, msg, false);
}

void mgr_handover_start(struct pv_mgr_host *h, uint32_t from_node,
			uint64_t from_token, pv_mgr_answer_fn *answer,
			void *arg)
{
	struct mgr_handover *ho = &h->ho;
	char why[160];
	int err = 0;

	if (mgr_refuse_unquorate(h, answer, arg, from_node, from_token))
		return;
	if (ho->on) {
		err = -EBUSY;
		snprintf(why, sizeof(why), "a manager switchover is under way");
	} else if (pv_router_spare_state(h->rt) != PV_SPARE_LIVE ||
		   h->peer.role != MGR_ROLE_SPARE) {
		err = -EAGAIN;
		snprintf(why, sizeof(why), "host %s holds no seeded spare of the manager to take over",
			 h->env.cfg->peer);
	}
	if (err) {
		mgr_answer_now(h, answer, arg, from_node, from_token, err, why,
			       false);
		return;
	}
	memset(ho, 0, sizeof(*ho));
	ho->on = true;
	ho->t_ns = pv_router_now_ns();
	ho->who = (struct mgr_pending){ .used = true, .answer = answer,
		.arg = arg, .from_node = from_node, .from_token = from_token };
	qb_log(LOG_NOTICE, "manager: switchover to host %s: taking no new requests",
	       h->env.cfg->peer);
	qb_loop_timer_add(h->env.loop, QB_LOOP_MED,
			  MGR_HANDOVER_TICK_MS * 1000000ULL, h,
			  mgr_handover_tick, &ho->timer);
	mgr_handover_try(h);
}

/* The move cannot go on: its spare or its time is gone. */
static bool mgr_handover_lost(struct pv_mgr_host *h)
{
	struct mgr_handover *ho = &h->ho;
	uint64_t now = pv_router_now_ns();
	int err = -EAGAIN;
	char msg[200];

	msg[0] = '\0';
	if (h->role != MGR_ROLE_ACTIVE)
		snprintf(msg, sizeof(msg), "this host's manager is no longer the active");
	else if (h->peer_lost || h->peer_out ||
		 /* once it left, the spare drops its link as it takes over */
		 (!ho->sent && pv_router_spare_state(h->rt) != PV_SPARE_LIVE))
		snprintf(msg, sizeof(msg), "host %s's spare went during the switchover: the manager stays on host %s",
			 h->env.cfg->peer, h->env.cfg->host);
	else if (!ho->sent &&
		 now - ho->t_ns > MGR_ANSWER_TIMEOUT_MS * 1000000ULL)
		snprintf(msg, sizeof(msg), "the requests in flight did not finish in time: the manager stays on host %s",
			 h->env.cfg->host);
	else if (ho->sent &&
		 now - ho->sent_ns > MGR_HANDOVER_WAIT_MS * 1000000ULL) {
		err = -ETIMEDOUT;	/* it may yet take over */
		snprintf(msg, sizeof(msg), "host %s did not take over in time: the manager may have moved (see pairctl status)",
			 h->env.cfg->peer);
	}
	if (!msg[0])
		return false;
	mgr_handover_end(h, err, msg);
	return true;
}

void mgr_handover_try(struct pv_mgr_host *h)
{
	struct mgr_handover *ho = &h->ho;
	Pvcl__Handover m = PVCL__HANDOVER__INIT;
	Pvcl__CpgMessage cm = PVCL__CPG_MESSAGE__INIT;
	const struct mgr_state *s = mgr_state_of(h);

	if (!ho->on || mgr_handover_lost(h) || ho->sent || !s ||
	    mgr_waiting(h) || h->spare_applied + 1 < pv_router_next_seq(h->rt))
		return;
	m.host = (char *)h->env.cfg->peer;
	m.generation = h->stamp.generation;
	m.applied = s->applied;
	cm.msg_case = PVCL__CPG_MESSAGE__MSG_HANDOVER;
	cm.handover = &m;
	if (mgr_send_cpg(h, &cm)) {
		mgr_handover_end(h, -EIO, "the switchover could not be sent to the spare's host");
		return;
	}
	ho->sent = true;
	ho->sent_ns = pv_router_now_ns();
	qb_log(LOG_NOTICE, "manager: switchover: host %s takes over at %llu inputs applied",
	       h->env.cfg->peer, (unsigned long long)s->applied);
}

static void mgr_handover_tick(void *data)
{
	struct pv_mgr_host *h = data;

	mgr_handover_try(h);
	if (h->ho.on)
		qb_loop_timer_add(h->env.loop, QB_LOOP_MED,
				  MGR_HANDOVER_TICK_MS * 1000000ULL, h,
				  mgr_handover_tick, &h->ho.timer);
}

/* The daemon's own reports: in until the Handover leaves (they are
 * waited for), then refused like the rest (its reports are retried). */
static bool mgr_internal_input(const Pvcl__ManagerInput *in)
{
	return in->op_case == PVCL__MANAGER_INPUT__OP_HOSTS ||
	       in->op_case == PVCL__MANAGER_INPUT__OP_VM_REPORT ||
	       in->op_case == PVCL__MANAGER_INPUT__OP_HOST_LOST;
}

bool mgr_handover_refuses(struct pv_mgr_host *h, const Pvcl__ManagerInput *in,
			  pv_mgr_answer_fn *answer, void *arg,
			  uint32_t from_node, uint64_t from_token)
{
	if (!h->ho.on || (!h->ho.sent && mgr_internal_input(in)))
		return false;
	mgr_answer_now(h, answer, arg, from_node, from_token, -EAGAIN,
		       "the active manager is moving to the other host: try again",
		       false);
	return true;
}

static void mgr_handover_refuse(struct pv_mgr_host *h, const char *why)
{
	Pvcl__HandoverRefused m = PVCL__HANDOVER_REFUSED__INIT;
	Pvcl__CpgMessage cm = PVCL__CPG_MESSAGE__INIT;

	qb_log(LOG_WARNING, "manager: switchover refused: %s", why);
	m.host = (char *)h->env.cfg->peer;
	m.why = (char *)why;
	cm.msg_case = PVCL__CPG_MESSAGE__MSG_HANDOVER_REFUSED;
	cm.handover_refused = &m;
	if (mgr_send_cpg(h, &cm))
		qb_log(LOG_WARNING, "manager: the refusal was not sent");
}

void mgr_on_handover(struct pv_mgr_host *h, uint32_t nodeid,
		     const Pvcl__Handover *m)
{
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);
	const struct mgr_state *s = mgr_state_of(h);
	char why[160];

	if (nodeid != peer->nodeid || strcmp(m->host, h->env.cfg->host))
		return;
	if (h->role != MGR_ROLE_SPARE || !mgr_seeded(h) || !s) {
		mgr_handover_refuse(h, "this host's spare is not seeded");
	} else if (s->applied != m->applied) {
		snprintf(why, sizeof(why), "this host's spare applied %llu inputs, the active %llu",
			 (unsigned long long)s->applied,
			 (unsigned long long)m->applied);
		mgr_handover_refuse(h, why);
	} else if (!mgr_quorate(h)) {
		mgr_handover_refuse(h, "this host is not quorate");
	} else {
		h->handovers++;
		mgr_become_active(h, "a planned switchover");
	}
}

void mgr_on_handover_refused(struct pv_mgr_host *h, uint32_t nodeid,
			     const Pvcl__HandoverRefused *m)
{
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);
	char msg[300];

	if (nodeid != peer->nodeid || strcmp(m->host, h->env.cfg->host) ||
	    !h->ho.on || !h->ho.sent)
		return;
	snprintf(msg, sizeof(msg), "host %s did not take over (%.160s): the manager stays on host %s",
		 h->env.cfg->peer, m->why, h->env.cfg->host);
	mgr_handover_end(h, -EAGAIN, msg);
}

void mgr_handover_done(struct pv_mgr_host *h)
{
	char msg[160];

	if (!h->ho.on)
		return;
	h->handovers++;
	snprintf(msg, sizeof(msg), "the active manager moved to host %s (generation %llu); host %s becomes its spare",
		 h->env.cfg->peer,
		 (unsigned long long)h->peer.stamp.generation,
		 h->env.cfg->host);
	mgr_handover_end(h, 0, msg);
}

void mgr_handover_cancel(struct pv_mgr_host *h)
{
	mgr_handover_end(h, -ESHUTDOWN, "pairvisord is stopping");
}

void pv_mgr_host_switchover(struct pv_mgr_host *h, pv_mgr_answer_fn *answer,
			    void *arg)
{
	Pvcl__Forward f = PVCL__FORWARD__INIT;

	f.switchover = true;
	if (h->role == MGR_ROLE_ACTIVE)
		mgr_handover_start(h, 0, 0, answer, arg);
	else
		mgr_forward(h, &f, answer, arg);
}
