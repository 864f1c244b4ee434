/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A libqb IPC service run on a libqb main loop: the VMM's status service
 * and pairvisord's. libqb's poll handlers for a service carry no context,
 * so the loop they add to is bound once per process: one loop may serve
 * IPC in a process.
 */
#ifndef PV_IPCS_LOOP_H
#define PV_IPCS_LOOP_H

#include <stdbool.h>
#include <sys/types.h>

#include <qb/qbipcs.h>
#include <qb/qbloop.h>

/*
 * Run @svc on @loop (qb_ipcs_run()). 0, -EBUSY when this process serves
 * IPC on another loop already, or qb_ipcs_run()'s error (it has then
 * dropped the service).
 */
int pv_ipcs_run(qb_ipcs_service_t *svc, qb_loop_t *loop);
/* The last service of the process stopped: the loop is unbound. */
void pv_ipcs_unbind(void);

/*
 * Who may use a pairvisor IPC service (pairvisord's, a VMM's): root,
 * the service's own user, and a client holding group @group (-1: none)
 * as its primary or a supplementary group, by its credentials as they
 * are (/proc/PID/status), as a file's group permission would judge.
 */
bool pv_ipcs_permitted(qb_ipcs_connection_t *c, uid_t uid, gid_t gid,
		       long group);
/* The same rule for a peer known by its credentials (SO_PEERCRED). */
bool pv_peer_permitted(pid_t pid, uid_t uid, gid_t gid, long group);

#endif
