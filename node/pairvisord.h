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
#include "job.h"
#include "manager.h"
#include "membership.h"
#include "mgr_host.h"
#include "pairvisord_ipc.h"

#define PVD_CPG_GROUP		"pairvisor"

struct pvd_ipc;
struct pvd_guests;
struct pvd_drivers;
struct pvd_switches;

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
	struct pvd_drivers *drivers;	/* ... and every guest's drivers */
	struct pvd_switches *switches;	/* disks' switchovers asked */
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

/* The names of the VMMs this host runs now, up to @max: how many. */
size_t pvd_guests_names(const struct pvd *d, char (*names)[MGR_NAME_MAX + 1],
			size_t max);

/* pairvisord_drivers.c */
int pvd_drivers_start(struct pvd *d);
void pvd_drivers_stop(struct pvd *d);
/* A CPG message of the drivers' (true: handled; it may take parts). */
bool pvd_drivers_deliver(struct pvd *d, uint32_t nodeid, Pvcl__CpgMessage *m);
void pvd_drivers_left(struct pvd *d, uint32_t nodeid);
/* Every running guest's drivers into @st, valid until the loop runs on. */
void pvd_drivers_status(struct pvd *d, Pvcl__ClusterStatus *st);

/* pairvisord_switch.c */
int pvd_switch_start(struct pvd *d);
void pvd_switch_stop(struct pvd *d);
/* pairctl switchover: answered now or later through @answer. */
void pvd_switchover(struct pvd *d, const Pvcl__DiskSwitchover *so,
		    pv_mgr_answer_fn *answer, void *arg);
/* DriverAsk and DriverAnswer (true: handled). */
bool pvd_switch_deliver(struct pvd *d, uint32_t nodeid, Pvcl__CpgMessage *m);
/* The peer's pairvisord left: its switchovers are not coming. */
void pvd_switch_left(struct pvd *d);

/* pairvisord_ipc.c */
int pvd_ipc_start(struct pvd *d);
void pvd_ipc_stop(struct pvd *d);

#endif
