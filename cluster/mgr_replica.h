/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The manager's state machine (manager.h) as the replica runtime hosts
 * it (replication/replica.h): its replica_ops, and the kinds of its
 * generic Input and Output messages.
 */
#ifndef PV_CLUSTER_MGR_REPLICA_H
#define PV_CLUSTER_MGR_REPLICA_H

#include "replica.h"

#define MGR_VARIANT	"manager"	/* what its Hello asks for */
#define MGR_IN_REQUEST	1		/* Input.data: a ManagerInput */
#define MGR_OUT_REPLY	1		/* Output.data: a ManagerReply */

extern const struct replica_ops pv_mgr_replica_ops;

#endif
