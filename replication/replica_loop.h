/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A replica hosted in a process of its owner's, on the owner's libqb
 * loop (the cluster manager's replicas in pairvisord), instead of its
 * own process's replica_run(): its channel watched for what
 * replica_events() asks, replica_step() and replica_flush() on each
 * wake-up, a tick while the channel is not ready. When the replica ends
 * (its router hung up, or an error), @ended is called from the loop and
 * the replica is left to the owner to destroy.
 */
#ifndef PV_REPLICA_LOOP_H
#define PV_REPLICA_LOOP_H

#include <qb/qbloop.h>

#include "replica.h"

struct replica_loop;

/* @err: 0 when the router hung up, else why it stopped (-errno). */
typedef void replica_ended_fn(void *arg, int err);

int replica_loop_attach(struct replica *r, qb_loop_t *loop,
			replica_ended_fn *ended, void *arg,
			struct replica_loop **out);
/* Stop watching (the replica is the caller's to destroy). */
void replica_loop_detach(struct replica_loop *rl);

#endif
