/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A libqb IPC service run on a libqb main loop: the VMM's status service
 * and pairvisord's. libqb's poll handlers for a service carry no context,
 * so the loop they add to is bound once per process: one loop may serve
 * IPC in a process.
 */
#ifndef PV_IPCS_LOOP_H
#define PV_IPCS_LOOP_H

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

#endif
