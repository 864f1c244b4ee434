/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pairvisord, one per host: the cluster daemon. Its parts, wired here:
 * the configuration (cluster/config.h), Corosync membership and quorum
 * (cluster/membership.h), the host table (cluster/hosts.h) and the IPC
 * service pairctl talks to (pairvisord_ipc.c). Single-threaded, on one
 * libqb main loop.
 */
#ifndef PV_PAIRVISORD_H
#define PV_PAIRVISORD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <qb/qbloop.h>

#include "config.h"
#include "fence.h"
#include "hosts.h"
#include "membership.h"
#include "mgr_host.h"
#include "pairvisord_ipc.h"

#define PVD_CPG_GROUP		"pairvisor"

struct pvd_ipc;
struct pvd_guests;

struct pvd_stats {
	uint64_t ipc_requests;
	uint64_t ipc_bad;		/* malformed or unknown requests */
	uint64_t ipc_refused;		/* clients without permission */
};

struct pvd {
	struct pv_config cfg;
	qb_loop_t *loop;
	struct pv_membership *memb;
	struct pv_fence *fence;
	struct pv_mgr_host *mgr;	/* the manager replica's home */
	struct pvd_guests *guests;	/* the VMMs this host runs */
	struct pv_hosts hosts;
	struct pvd_ipc *ipc;
	bool has_group;
	gid_t ipc_gid;			/* cfg.ipc_group's */
	uint32_t announced;		/* daemons in the group when we last
					 * announced ourselves */
	struct pvd_stats stats;
};

/* pairvisord.c: tell the group who we are (our Announce) */
void pvd_announce(struct pvd *d);

/* pairvisord_guests.c */
int pvd_guests_start(struct pvd *d);
void pvd_guests_stop(struct pvd *d);
void pvd_guests_counts(const struct pvd *d, uint64_t *spawned,
		       uint64_t *adopted, uint64_t *exits);

/* pairvisord_ipc.c */
int pvd_ipc_start(struct pvd *d);
void pvd_ipc_stop(struct pvd *d);

#endif
