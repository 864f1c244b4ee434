// SPDX-License-Identifier: GPL-2.0
/*
 * pairctl manager switchover: the planned move of the active manager to
 * its spare on the other host, with no request lost and none applied
 * twice.
 *
 * The active refuses new requests (EAGAIN: a client tries again), waits
 * until every request it took is answered and its live spare applied
 * every input, then sends the spare's host a Handover naming how many
 * inputs its state holds. That host's replica, seeded and holding as
 * many, becomes the active with a newer generation, as in a failover;
 * seeing its Announce, the old active answers the switchover and steps
 * down, and the new active's router seeds a spare on the old host.
 * Should the spare not take over, the switchover times out with the
 * other requests (MGR_ANSWER_TIMEOUT_MS) and the old active takes
 * requests again: it never stepped down.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <qb/qblog.h>

#include "mgr_host_priv.h"

void mgr_handover_start(struct pv_mgr_host *h, uint32_t from_node,
			uint64_t from_token, pv_mgr_answer_fn *answer,
			void *arg)
{
	struct mgr_pending *p;
	char why[160];
	int err = 0;

	if (mgr_refuse_unquorate(h, answer, arg, from_node, from_token))
		return;
	if (h->handover) {
		err = -EBUSY;
		snprintf(why, sizeof(why), "a manager switchover is under way");
	} else if (pv_router_spare_state(h->rt) != PV_SPARE_LIVE ||
		   h->peer.role != MGR_ROLE_SPARE) {
		err = -EAGAIN;
		snprintf(why, sizeof(why), "host %s holds no seeded spare of the manager to take over",
			 h->env.cfg->peer);
	} else if (!(p = mgr_slot(h))) {
		err = -EBUSY;
		snprintf(why, sizeof(why), "too many requests waiting: try again");
	}
	if (err) {
		mgr_answer_now(h, answer, arg, from_node, from_token, err, why,
			       false);
		return;
	}
	p->answer = answer;
	p->arg = arg;
	p->from_node = from_node;
	p->from_token = from_token;
	h->handover = p;
	h->handover_sent = false;
	qb_log(LOG_NOTICE, "manager: switchover to host %s: taking no new requests",
	       h->env.cfg->peer);
	mgr_handover_try(h);
}

void mgr_handover_try(struct pv_mgr_host *h)
{
	Pvcl__Handover ho = PVCL__HANDOVER__INIT;
	Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;
	const struct mgr_state *s = mgr_state_of(h);

	if (!h->handover || h->handover_sent || h->role != MGR_ROLE_ACTIVE ||
	    !s || mgr_waiting(h) ||
	    h->spare_applied + 1 < pv_router_next_seq(h->rt))
		return;
	ho.host = (char *)h->env.cfg->peer;
	ho.generation = h->stamp.generation;
	ho.applied = s->applied;
	m.msg_case = PVCL__CPG_MESSAGE__MSG_HANDOVER;
	m.handover = &ho;
	if (mgr_send_cpg(h, &m)) {
		mgr_answer(h, h->handover, -EIO, "the switchover could not be sent to the spare's host",
			   false);
		return;
	}
	h->handover_sent = true;
	qb_log(LOG_NOTICE, "manager: switchover: host %s takes over at %llu inputs applied",
	       h->env.cfg->peer, (unsigned long long)s->applied);
}

void mgr_on_handover(struct pv_mgr_host *h, uint32_t nodeid,
		     const Pvcl__Handover *m)
{
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);
	const struct mgr_state *s = mgr_state_of(h);

	if (nodeid != peer->nodeid || strcmp(m->host, h->env.cfg->host))
		return;
	if (h->role != MGR_ROLE_SPARE || !mgr_seeded(h) || !s ||
	    s->applied != m->applied || !mgr_quorate(h)) {
		qb_log(LOG_WARNING, "manager: switchover refused: this host's spare %s (%llu inputs applied, the active's %llu)",
		       h->role != MGR_ROLE_SPARE || !mgr_seeded(h) ?
		       "is not seeded" : !mgr_quorate(h) ? "is not quorate" :
		       "is behind", s ? (unsigned long long)s->applied : 0ULL,
		       (unsigned long long)m->applied);
		return;
	}
	h->handovers++;
	mgr_become_active(h, "a planned switchover");
}

void mgr_handover_done(struct pv_mgr_host *h)
{
	char msg[160];

	if (!h->handover)
		return;
	h->handovers++;
	snprintf(msg, sizeof(msg), "the active manager moved to host %s (generation %llu); host %s becomes its spare",
		 h->env.cfg->peer,
		 (unsigned long long)h->peer.stamp.generation,
		 h->env.cfg->host);
	mgr_answer(h, h->handover, 0, msg, false);
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
