/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where the manager replica lives (DESIGN.md sections 3 and 7): inside
 * each host's pairvisord, on its loop. One host holds the active
 * replica, with the router that sequences every state-changing request;
 * the other holds the spare, seeded over the replication link (tcp: or
 * rdma:, the cluster key) and fed every input. An answer leaves only
 * once the spare applied the request (its Ack), or once the peer is
 * known to be out (fenced, its daemon gone, or the quorum device voted
 * for this host), and only after the state is on disk.
 *
 * Roles are decided on what Corosync and the peer's Announce say:
 *   - at start, the host whose saved state is newest ((generation, seq);
 *     a tie: the lower node id) becomes active, the other its spare;
 *   - the spare is promoted when the active's daemon is gone (CPG
 *     PROCDOWN), or its host is gone (NODEDOWN) and this host is
 *     quorate and fenced it (after the fence delay: the host without the
 *     active manager waits) or holds the quorum device's vote. Never
 *     without a seeded state;
 *   - an active that sees a newer active steps down and becomes a
 *     spare; an active that is not quorate refuses changes.
 * A host whose manager is not the active forwards requests to the active
 * host over CPG and answers when it has.
 */
#ifndef PV_CLUSTER_MGR_HOST_H
#define PV_CLUSTER_MGR_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include <qb/qbloop.h>

#include "cluster.pb-c.h"
#include "config.h"
#include "fence.h"
#include "hosts.h"
#include "manager.h"
#include "membership.h"

#define MGR_PENDING_MAX		256	/* requests waiting for answers */
#define MGR_ANSWER_TIMEOUT_MS	8000	/* then: may or may not apply */

struct pv_mgr_host;

/* What the manager host needs of its daemon. */
struct pv_mgr_env {
	qb_loop_t *loop;
	const struct pv_config *cfg;
	struct pv_membership *memb;
	struct pv_hosts *hosts;
	struct pv_fence *fence;
	/* its role or state changed: tell the group (Announce) */
	void (*announce)(void *arg);
	void *arg;
};

/*
 * An answer: @r holds error, message and, for a list, the guests; it
 * lives for the call only.
 */
typedef void pv_mgr_answer_fn(void *arg, const Pvcl__Reply *r);

int pv_mgr_host_create(const struct pv_mgr_env *env,
		       struct pv_mgr_host **out);
void pv_mgr_host_destroy(struct pv_mgr_host *h);

/* A state-changing request; @answer is called once, maybe later. */
void pv_mgr_host_request(struct pv_mgr_host *h,
			 const Pvcl__ManagerInput *in,
			 pv_mgr_answer_fn *answer, void *arg);
/* The guests, from the active manager. */
void pv_mgr_host_list(struct pv_mgr_host *h, pv_mgr_answer_fn *answer,
		      void *arg);

/*
 * pairctl manager switchover: the active manager moves to its seeded
 * spare on the other host (asked on either host).
 */
void pv_mgr_host_switchover(struct pv_mgr_host *h, pv_mgr_answer_fn *answer,
			    void *arg);

/* Corosync's view changed (membership, quorum, connection): decide. */
void pv_mgr_host_changed(struct pv_mgr_host *h);
/* The daemon of node @nodeid left the group (enum pv_memb_reason). */
void pv_mgr_host_left(struct pv_mgr_host *h, uint32_t nodeid, int reason);
/* The peer's Announce (its manager's role and state). */
void pv_mgr_host_peer(struct pv_mgr_host *h, const Pvcl__Announce *a);
/* Forward and ForwardReply messages of the CPG group. */
void pv_mgr_host_deliver(struct pv_mgr_host *h, uint32_t nodeid,
			 const Pvcl__CpgMessage *m);
/*
 * The manager's state as this host's replica holds it (the active's, or
 * the seeded spare's, a few inputs behind); NULL: none.
 */
const struct mgr_state *pv_mgr_host_state(const struct pv_mgr_host *h);
/*
 * The guests of @s as VmInfo (*@vms, *@n): the storage returned (free()
 * it) holds them and their strings point into @s.
 */
void *pv_mgr_list(const struct mgr_state *s, Pvcl__VmInfo ***vms, size_t *n);
/* Our manager's part of our Announce. */
void pv_mgr_host_announce(const struct pv_mgr_host *h, Pvcl__Announce *a);

/* Its part of pairctl status; strings live as long as @h. */
void pv_mgr_host_status(struct pv_mgr_host *h, Pvcl__ManagerStatus *st);

#endif
