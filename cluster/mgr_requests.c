// SPDX-License-Identifier: GPL-2.0
/*
 * The manager's requests (mgr_host.h): the active host sequences them
 * into its router; an answer waits for the spare's Ack of the input (or
 * for the peer to be out) and for the state on disk; the other host
 * forwards its clients' requests over CPG.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qb/qblog.h>

#include "mgr_host_priv.h"
#include "mgr_replica.h"

#define MGR_CPG_MAX	(512 * 1024)

int mgr_send_cpg(struct pv_mgr_host *h, const Pvcl__CpgMessage *m)
{
	size_t len = pvcl__cpg_message__get_packed_size(m);
	uint8_t *buf;
	int err;

	if (len > MGR_CPG_MAX)
		return -EMSGSIZE;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	pvcl__cpg_message__pack(m, buf);
	err = pv_memb_send(h->env.memb, buf, len);
	free(buf);
	return err;
}

struct mgr_pending *mgr_slot(struct pv_mgr_host *h)
{
	for (int i = 0; i < MGR_PENDING_MAX; i++)
		if (!h->pend[i].used) {
			memset(&h->pend[i], 0, sizeof(h->pend[i]));
			h->pend[i].used = true;
			h->pend[i].t_ns = pv_router_now_ns();
			return &h->pend[i];
		}
	return NULL;
}

/* The guests of a manager state as VmInfo, and what they point to. */
struct mgr_list_buf {
	Pvcl__VmInfo info[MGR_VMS_MAX];
	Pvcl__VmInfo *infop[MGR_VMS_MAX];
	Pvcl__VmDef def[MGR_VMS_MAX];
	Pvcl__DiskDef disks[MGR_VMS_MAX][MGR_DISKS_MAX];
	Pvcl__DiskDef *diskp[MGR_VMS_MAX][MGR_DISKS_MAX];
};

void *pv_mgr_list(const struct mgr_state *s, Pvcl__VmInfo ***vms, size_t *n)
{
	struct mgr_list_buf *b = s ? malloc(sizeof(*b)) : NULL;
	size_t k = 0;

	*vms = NULL;
	*n = 0;
	if (!b)
		return NULL;
	for (int i = 0; i < MGR_VMS_MAX; i++) {
		if (!s->vms[i].name[0])
			continue;
		pv_mgr_vm_info(s, &s->vms[i], &b->info[k], &b->def[k],
			       b->disks[k], b->diskp[k]);
		b->infop[k] = &b->info[k];
		k++;
	}
	*vms = b->infop;
	*n = k;
	return b;
}

/* Answer @p: to the local client, or to the host that forwarded it. */
void mgr_answer(struct pv_mgr_host *h, struct mgr_pending *p,
		       int err, const char *msg, bool with_list)
{
	Pvcl__Reply r = PVCL__REPLY__INIT;
	void *b = NULL;

	r.error = err;
	r.message = (char *)msg;
	if (with_list && !err)
		b = pv_mgr_list(mgr_state_of(h), &r.vms, &r.n_vms);
	if (p->from_node) {
		Pvcl__ForwardReply fr = PVCL__FORWARD_REPLY__INIT;
		Pvcl__ManagerReply mr = PVCL__MANAGER_REPLY__INIT;
		Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;

		mr.error = err;
		mr.message = (char *)msg;
		fr.nodeid = p->from_node;
		fr.token = p->from_token;
		fr.reply = &mr;
		fr.n_vms = r.n_vms;
		fr.vms = r.vms;
		m.msg_case = PVCL__CPG_MESSAGE__MSG_FORWARD_REPLY;
		m.forward_reply = &fr;
		if (mgr_send_cpg(h, &m))
			qb_log(LOG_WARNING, "manager: the answer to host node %u was not sent",
			       p->from_node);
	} else if (p->answer) {
		p->answer(p->arg, &r);
	}
	free(b);
	p->used = false;
}

void mgr_answer_now(struct pv_mgr_host *h, pv_mgr_answer_fn *answer,
			   void *arg, uint32_t from_node, uint64_t from_token,
			   int err, const char *msg, bool list)
{
	struct mgr_pending p = { .used = true, .answer = answer, .arg = arg,
				 .from_node = from_node,
				 .from_token = from_token };

	mgr_answer(h, &p, err, msg, list);
}

/* No changes without quorum: refused (true), or false to go on. */
bool mgr_refuse_unquorate(struct pv_mgr_host *h,
				 pv_mgr_answer_fn *answer, void *arg,
				 uint32_t from_node, uint64_t from_token)
{
	char why[160];

	if (mgr_quorate(h))
		return false;
	snprintf(why, sizeof(why), "host %s is not quorate: the cluster takes no changes here",
		 h->env.cfg->host);
	mgr_answer_now(h, answer, arg, from_node, from_token, -EAGAIN, why,
		       false);
	return true;
}

/* The answer may go: the spare has the input (or there is none to
 * wait for), and the state that includes it is on disk. */
static void mgr_release(struct pv_mgr_host *h, struct mgr_pending *p)
{
	int err;

	if (!p->used || !p->replied)
		return;
	if (h->spare_applied < p->seq && !h->peer_out)
		return;
	qb_log(LOG_DEBUG, "manager: answering input %llu (%s): the spare applied %llu%s",
	       (unsigned long long)p->seq, p->msg,
	       (unsigned long long)h->spare_applied,
	       h->peer_out ? ", the peer is out" : "");
	if (h->saved_seq < p->seq) {
		err = mgr_save(h);
		if (err) {
			mgr_answer(h, p, -EIO, "the manager's state could not be saved: the request may not survive a restart",
				   false);
			return;
		}
	}
	mgr_answer(h, p, p->err, p->msg, false);
}

void mgr_release_all(struct pv_mgr_host *h)
{
	for (int i = 0; i < MGR_PENDING_MAX; i++)
		mgr_release(h, &h->pend[i]);
	mgr_handover_try(h);
}

uint64_t mgr_held(const struct pv_mgr_host *h)
{
	uint64_t n = 0;

	for (int i = 0; i < MGR_PENDING_MAX; i++)
		n += h->pend[i].used && h->pend[i].replied;
	return n;
}

uint64_t mgr_waiting(const struct pv_mgr_host *h)
{
	uint64_t n = 0;

	for (int i = 0; i < MGR_PENDING_MAX; i++)
		n += h->pend[i].used;
	return n;
}

/* The active replica's answer to input @o->id->seq. */
void mgr_on_reply(struct pv_mgr_host *h, const Pv__Output *o)
{
	Pvcl__ManagerReply *r = NULL;

	if (o->kind == MGR_OUT_REPLY)
		r = pvcl__manager_reply__unpack(NULL, o->data.len,
						o->data.data);
	for (int i = 0; i < MGR_PENDING_MAX; i++) {
		struct mgr_pending *p = &h->pend[i];

		if (!p->used || p->seq != o->id->seq || p->replied)
			continue;
		p->replied = true;
		p->err = r ? r->error : -EPROTO;
		snprintf(p->msg, sizeof(p->msg), "%s",
			 r ? r->message : "the manager's answer did not decode");
		mgr_release(h, p);
		break;
	}
	if (r)
		pvcl__manager_reply__free_unpacked(r, NULL);
}

void mgr_submit(struct pv_mgr_host *h, const Pvcl__ManagerInput *in,
		uint32_t from_node, uint64_t from_token,
		pv_mgr_answer_fn *answer, void *arg)
{
	uint8_t buf[PV_DATA_MAX];
	Pv__Input pin = PV__INPUT__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	struct mgr_pending *p;
	size_t len = pvcl__manager_input__get_packed_size(in);

	if (mgr_refuse_unquorate(h, answer, arg, from_node, from_token))
		return;
	if (mgr_handover_refuses(h, in, answer, arg, from_node, from_token))
		return;
	if (len > sizeof(buf)) {
		mgr_answer_now(h, answer, arg, from_node, from_token, -E2BIG,
			       "the request is too large", false);
		return;
	}
	p = mgr_slot(h);
	if (!p) {
		mgr_answer_now(h, answer, arg, from_node, from_token, -EBUSY,
			       "too many requests waiting: try again", false);
		return;
	}
	p->answer = answer;
	p->arg = arg;
	p->from_node = from_node;
	p->from_token = from_token;
	p->seq = pv_router_next_seq(h->rt);
	pin.seq = p->seq;
	pin.kind = MGR_IN_REQUEST;
	pin.data.len = pvcl__manager_input__pack(in, buf);
	pin.data.data = buf;
	env.msg_case = PV__ENVELOPE__MSG_INPUT;
	env.input = &pin;
	h->requests++;
	if (pv_router_input(h->rt, &env))
		mgr_answer(h, p, -EIO, "the manager could not take the request",
			   false);
}

/* Send @f to the active host (its token set here); answered by its
 * ForwardReply. */
void mgr_forward(struct pv_mgr_host *h, Pvcl__Forward *f,
		 pv_mgr_answer_fn *answer, void *arg)
{
	Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;
	struct mgr_pending *p;

	if (mgr_refuse_unquorate(h, answer, arg, 0, 0))
		return;
	if (!h->peer.known || h->peer.role != MGR_ROLE_ACTIVE) {
		char why[400];

		snprintf(why, sizeof(why), "no active manager reachable from host %s: %s",
			 h->env.cfg->host,
			 h->why[0] ? h->why : "none was chosen yet");
		mgr_answer_now(h, answer, arg, 0, 0, -EAGAIN, why, false);
		return;
	}
	p = mgr_slot(h);
	if (!p) {
		mgr_answer_now(h, answer, arg, 0, 0, -EBUSY,
			       "too many requests waiting: try again", false);
		return;
	}
	p->answer = answer;
	p->arg = arg;
	p->token = ++h->next_token;
	f->token = p->token;
	m.msg_case = PVCL__CPG_MESSAGE__MSG_FORWARD;
	m.forward = f;
	h->forwarded++;
	if (mgr_send_cpg(h, &m))
		mgr_answer(h, p, -EIO, "the request could not be sent to the active host",
			   false);
}

void pv_mgr_host_request(struct pv_mgr_host *h, const Pvcl__ManagerInput *in,
			 pv_mgr_answer_fn *answer, void *arg)
{
	Pvcl__Forward f = PVCL__FORWARD__INIT;

	f.manager = (Pvcl__ManagerInput *)in;
	if (h->role == MGR_ROLE_ACTIVE)
		mgr_submit(h, in, 0, 0, answer, arg);
	else
		mgr_forward(h, &f, answer, arg);
}

void pv_mgr_host_list(struct pv_mgr_host *h, pv_mgr_answer_fn *answer,
		      void *arg)
{
	Pvcl__Forward f = PVCL__FORWARD__INIT;

	f.vm_list = true;
	if (h->role == MGR_ROLE_ACTIVE)
		mgr_answer_now(h, answer, arg, 0, 0, 0, "", true);
	else
		mgr_forward(h, &f, answer, arg);
}

static void mgr_on_forward(struct pv_mgr_host *h, uint32_t nodeid,
			   const Pvcl__Forward *f)
{
	if (h->role != MGR_ROLE_ACTIVE)
		return;		/* the active host answers */
	if (f->vm_list)
		mgr_answer_now(h, NULL, NULL, nodeid, f->token, 0, "", true);
	else if (f->switchover)
		mgr_handover_start(h, nodeid, f->token, NULL, NULL);
	else if (f->manager)
		mgr_submit(h, f->manager, nodeid, f->token, NULL, NULL);
}

static void mgr_on_forward_reply(struct pv_mgr_host *h,
				 const Pvcl__ForwardReply *fr)
{
	if (fr->nodeid != pv_memb_local_nodeid(h->env.memb) || !fr->reply)
		return;
	for (int i = 0; i < MGR_PENDING_MAX; i++) {
		struct mgr_pending *p = &h->pend[i];
		Pvcl__Reply r = PVCL__REPLY__INIT;

		if (!p->used || !p->token || p->token != fr->token)
			continue;
		r.error = fr->reply->error;
		r.message = fr->reply->message;
		r.n_vms = fr->n_vms;
		r.vms = fr->vms;
		if (p->answer)
			p->answer(p->arg, &r);
		p->used = false;
		return;
	}
}

void pv_mgr_host_deliver(struct pv_mgr_host *h, uint32_t nodeid,
			 const Pvcl__CpgMessage *m)
{
	if (nodeid == pv_memb_local_nodeid(h->env.memb) &&
	    m->msg_case == PVCL__CPG_MESSAGE__MSG_FORWARD)
		return;		/* ours, looped back */
	if (m->msg_case == PVCL__CPG_MESSAGE__MSG_FORWARD)
		mgr_on_forward(h, nodeid, m->forward);
	else if (m->msg_case == PVCL__CPG_MESSAGE__MSG_FORWARD_REPLY)
		mgr_on_forward_reply(h, m->forward_reply);
	else if (m->msg_case == PVCL__CPG_MESSAGE__MSG_HANDOVER)
		mgr_on_handover(h, nodeid, m->handover);
	else if (m->msg_case == PVCL__CPG_MESSAGE__MSG_HANDOVER_REFUSED)
		mgr_on_handover_refused(h, nodeid, m->handover_refused);
}

void mgr_fail_all(struct pv_mgr_host *h, int err, const char *msg)
{
	for (int i = 0; i < MGR_PENDING_MAX; i++)
		if (h->pend[i].used)
			mgr_answer(h, &h->pend[i], err, msg, false);
}

/* Requests that waited too long: their outcome is not known. */
static void mgr_sweep(void *data)
{
	struct pv_mgr_host *h = data;
	uint64_t now = pv_router_now_ns();

	for (int i = 0; i < MGR_PENDING_MAX; i++) {
		struct mgr_pending *p = &h->pend[i];

		if (p->used &&
		    now - p->t_ns > MGR_ANSWER_TIMEOUT_MS * 1000000ULL)
			mgr_answer(h, p, -ETIMEDOUT,
				   "no answer in time: the request may or may not have been applied",
				   false);
	}
	mgr_sweep_start(h);
}

void mgr_sweep_start(struct pv_mgr_host *h)
{
	qb_loop_timer_add(h->env.loop, QB_LOOP_LOW, MGR_SWEEP_MS * 1000000ULL,
			  h, mgr_sweep, &h->sweep_timer);
}
