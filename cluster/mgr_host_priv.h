/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The manager host's insides, shared by its files:
 *
 *   mgr_host.c      roles: the local replica (active with its router,
 *                   or spare behind the listener), deciding who is
 *                   active, promotion with fencing or the quorum
 *                   device, stepping down, status
 *   mgr_requests.c  requests: sequenced by the active, answered once the
 *                   spare applied them and the state is on disk,
 *                   forwarded over CPG by the other host, timed out
 *   mgr_handover.c  the planned move of the active manager to its spare
 */
#ifndef PV_CLUSTER_MGR_HOST_PRIV_H
#define PV_CLUSTER_MGR_HOST_PRIV_H

#include "auth.h"
#include "manager.h"
#include "mgr_host.h"
#include "mgr_store.h"
#include "replica.h"
#include "replica_loop.h"
#include "router.h"
#include "transport.h"

#define MGR_SWEEP_MS		500
#define MGR_FENCE_RETRY_MS	5000
#define MGR_ACTIVE_LIMIT_MS	10000	/* the heartbeat of its own replica */

enum mgr_role {
	MGR_ROLE_NONE,
	MGR_ROLE_ACTIVE,
	MGR_ROLE_SPARE,
};

/* A request waiting for its answer. */
struct mgr_pending {
	bool used;
	bool replied;		/* the active replica answered it */
	uint64_t seq;		/* its input (active), 0: not sequenced */
	uint64_t token;		/* ours, when we forwarded it */
	uint32_t from_node;	/* the host that forwarded it to us, 0: local */
	uint64_t from_token;
	pv_mgr_answer_fn *answer;
	void *arg;
	int32_t err;
	char msg[MGR_MSG_MAX];
	uint64_t t_ns;		/* when it came */
};

/* A planned move of the active manager to its spare (mgr_handover.c). */
struct mgr_handover {
	bool on;
	bool sent;			/* its Handover sent, at sent_ns */
	uint64_t t_ns, sent_ns;
	struct mgr_pending who;		/* whom to answer */
	qb_loop_timer_handle timer;
};

struct mgr_peer {
	bool known;		/* its Announce came */
	enum mgr_role role;
	struct mgr_stamp stamp;
};

struct pv_mgr_host {
	struct pv_mgr_env env;
	struct pv_key key;
	enum mgr_role role;
	struct mgr_stamp stamp;		/* of the state held (saved) */
	struct mgr_state *disk;		/* loaded from disk, NULL: none */
	struct replica *rep;		/* the local replica */
	struct replica_loop *rl;
	struct pv_router *rt;		/* as the active */
	struct pv_router_stats rstats;
	uint64_t spare_applied;		/* the spare's Ack, router seqs */
	uint64_t saved_seq;		/* inputs on disk (router seqs) */
	struct pv_listener *lst;	/* spares are linked here */
	struct mgr_peer peer;
	bool peer_out;			/* fenced, gone or out-voted */
	bool peer_lost;			/* its host left the membership */
	bool peer_fenced;		/* ... and was fenced: its guests */
	bool fence_armed;		/* the fence delay runs */
	qb_loop_timer_handle fence_timer, sweep_timer;
	struct mgr_pending pend[MGR_PENDING_MAX];
	uint64_t next_token;
	struct mgr_handover ho;
	uint64_t requests, forwarded, failovers, handovers;
	char why[160];			/* no active manager: why */
};

/* mgr_host.c */
bool mgr_quorate(const struct pv_mgr_host *h);
void mgr_decide(struct pv_mgr_host *h);
const char *mgr_role_name(enum mgr_role r);
/* The local replica's manager state. */
const struct mgr_state *mgr_state_of(const struct pv_mgr_host *h);
int mgr_save(struct pv_mgr_host *h);

/* mgr_requests.c */
struct mgr_pending *mgr_slot(struct pv_mgr_host *h);
void mgr_answer(struct pv_mgr_host *h, struct mgr_pending *p, int err,
		const char *msg, bool with_list);
void mgr_answer_now(struct pv_mgr_host *h, pv_mgr_answer_fn *answer,
		    void *arg, uint32_t from_node, uint64_t from_token,
		    int err, const char *msg, bool list);
bool mgr_refuse_unquorate(struct pv_mgr_host *h, pv_mgr_answer_fn *answer,
			  void *arg, uint32_t from_node, uint64_t from_token);
void mgr_forward(struct pv_mgr_host *h, Pvcl__Forward *f,
		 pv_mgr_answer_fn *answer, void *arg);
/* Requests waiting for an answer. */
uint64_t mgr_waiting(const struct pv_mgr_host *h);
void mgr_submit(struct pv_mgr_host *h, const Pvcl__ManagerInput *in,
		uint32_t from_node, uint64_t from_token,
		pv_mgr_answer_fn *answer, void *arg);
void mgr_on_reply(struct pv_mgr_host *h, const Pv__Output *o);
void mgr_release_all(struct pv_mgr_host *h);
/* Every request waiting gets @err (the active went, or timed out). */
void mgr_fail_all(struct pv_mgr_host *h, int err, const char *msg);
void mgr_sweep_start(struct pv_mgr_host *h);
uint64_t mgr_held(const struct pv_mgr_host *h);
int mgr_send_cpg(struct pv_mgr_host *h, const Pvcl__CpgMessage *m);

/* mgr_handover.c */
void mgr_handover_start(struct pv_mgr_host *h, uint32_t from_node,
			uint64_t from_token, pv_mgr_answer_fn *answer,
			void *arg);
/*
 * Send the Handover once nothing waits and the spare has it all; end
 * the move when its spare or its time is gone.
 */
void mgr_handover_try(struct pv_mgr_host *h);
/* An input refused now because a move is under way (its answer sent). */
bool mgr_handover_refuses(struct pv_mgr_host *h, const Pvcl__ManagerInput *in,
			  pv_mgr_answer_fn *answer, void *arg,
			  uint32_t from_node, uint64_t from_token);
void mgr_on_handover(struct pv_mgr_host *h, uint32_t nodeid,
		     const Pvcl__Handover *m);
void mgr_on_handover_refused(struct pv_mgr_host *h, uint32_t nodeid,
			     const Pvcl__HandoverRefused *m);
/* The new active is seen: the handover's answer, before stepping down. */
void mgr_handover_done(struct pv_mgr_host *h);
void mgr_handover_cancel(struct pv_mgr_host *h);
/* mgr_host.c, for it */
void mgr_become_active(struct pv_mgr_host *h, const char *why);
bool mgr_seeded(const struct pv_mgr_host *h);

#endif
