/* SPDX-License-Identifier: GPL-2.0 */
/*
 * How pairctl reaches pairvisord: a libqb IPC service on this host, one
 * request id, a packed pvcl.Request in and a pvcl.Reply out
 * (proto/cluster.proto).
 */
#ifndef PV_PAIRVISORD_IPC_H
#define PV_PAIRVISORD_IPC_H

#define PVD_SERVICE		"pairvisord"
#define PVD_REQUEST		1
#define PVD_MSG_MAX		(256 * 1024)	/* request and reply */

#endif
