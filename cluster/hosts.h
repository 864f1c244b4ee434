/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two hosts of the cluster as this daemon knows them: their names
 * come from the configuration, their Corosync node ids and daemon
 * processes from the Announce each pairvisord multicasts to the CPG
 * group (proto/cluster.proto) when it joins and when the group changes.
 * A message that does not decode, or names a host that is not in the
 * configuration, is dropped and counted.
 */
#ifndef PV_CLUSTER_HOSTS_H
#define PV_CLUSTER_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.pb-c.h"
#include "config.h"

#define PV_HOSTS		2	/* this host and its peer */
#define PV_HOST_BUILD_MAX	64
#define PV_HOST_ADDR_MAX	128

struct pv_host {
	char name[PV_CONF_NAME_MAX + 1];
	bool local;
	uint32_t nodeid;	/* 0: not known yet */
	uint32_t pid;		/* its pairvisord in the group, 0: none */
	char build[PV_HOST_BUILD_MAX];
	char address[PV_HOST_ADDR_MAX];
};

struct pv_hosts {
	struct pv_host h[PV_HOSTS];	/* [0] is this host */
	uint64_t bad_messages;		/* undecodable or unknown sender */
	uint64_t conflicts;		/* a name claimed by two nodes */
};

void pv_hosts_init(struct pv_hosts *hs, const struct pv_config *c,
		   const char *build);
/* Corosync told us our node id (0: disconnected). */
void pv_hosts_local(struct pv_hosts *hs, uint32_t nodeid, uint32_t pid);
/*
 * A CPG message from daemon @pid of node @nodeid, decoded into *@out
 * (the caller frees it: pvcl__cpg_message__free_unpacked) for what else
 * it carries; an Announce updates its host. 0, or -EBADMSG (counted):
 * undecodable, unknown, from an unknown host or a daemon that never
 * announced itself.
 */
int pv_hosts_deliver(struct pv_hosts *hs, uint32_t nodeid, uint32_t pid,
		     const void *msg, size_t len, Pvcl__CpgMessage **out);
/* Daemon @pid of node @nodeid left the group. */
void pv_hosts_left(struct pv_hosts *hs, uint32_t nodeid, uint32_t pid);
/* This host's part of our Announce. */
void pv_hosts_announce(const struct pv_hosts *hs, Pvcl__Announce *a);
struct pv_host *pv_hosts_by_name(struct pv_hosts *hs, const char *name);
struct pv_host *pv_hosts_by_node(struct pv_hosts *hs, uint32_t nodeid);
struct pv_host *pv_hosts_peer(struct pv_hosts *hs);

#endif
