// SPDX-License-Identifier: GPL-2.0
/*
 * The host table (hosts.h): configured names, bound to Corosync node ids
 * and daemon pids by the Announce messages of the CPG group.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <qb/qblog.h>

#include "cluster.pb-c.h"
#include "hosts.h"

#define HOSTS_MSG_MAX	(512 * 1024)	/* a ForwardReply with every guest */

static void host_set(struct pv_host *h, const char *name, const char *addr)
{
	snprintf(h->name, sizeof(h->name), "%s", name);
	snprintf(h->address, sizeof(h->address), "%s", addr ? addr : "");
}

void pv_hosts_init(struct pv_hosts *hs, const struct pv_config *c,
		   const char *build)
{
	memset(hs, 0, sizeof(*hs));
	host_set(&hs->h[0], c->host, c->listen);
	hs->h[0].local = true;
	snprintf(hs->h[0].build, sizeof(hs->h[0].build), "%s", build);
	host_set(&hs->h[1], c->peer, c->peer_address);
}

void pv_hosts_local(struct pv_hosts *hs, uint32_t nodeid, uint32_t pid)
{
	hs->h[0].nodeid = nodeid;
	hs->h[0].pid = nodeid ? pid : 0;
	if (!nodeid)
		hs->h[1].pid = 0;	/* nothing known without Corosync */
}

struct pv_host *pv_hosts_by_name(struct pv_hosts *hs, const char *name)
{
	for (int i = 0; i < PV_HOSTS; i++)
		if (!strcmp(hs->h[i].name, name))
			return &hs->h[i];
	return NULL;
}

struct pv_host *pv_hosts_by_node(struct pv_hosts *hs, uint32_t nodeid)
{
	for (int i = 0; nodeid && i < PV_HOSTS; i++)
		if (hs->h[i].nodeid == nodeid)
			return &hs->h[i];
	return NULL;
}

struct pv_host *pv_hosts_peer(struct pv_hosts *hs)
{
	return &hs->h[1];
}

static int hosts_bad(struct pv_hosts *hs, uint32_t nodeid, const char *why)
{
	hs->bad_messages++;
	qb_log(LOG_WARNING, "cpg: message from node %u dropped: %s", nodeid,
	       why);
	return -EBADMSG;
}

static int hosts_announce(struct pv_hosts *hs, uint32_t nodeid, uint32_t pid,
			  const Pvcl__Announce *a)
{
	struct pv_host *h = pv_hosts_by_name(hs, a->host);

	if (!h)
		return hosts_bad(hs, nodeid, "it announces a host not in pairvisor.conf");
	if (h->local) {
		if (nodeid == h->nodeid)
			return 0;	/* our own, looped back */
		hs->conflicts++;
		qb_log(LOG_ERR, "cpg: node %u claims to be this host (%s): check host= in both pairvisor.conf",
		       nodeid, a->host);
		return -EEXIST;
	}
	if (h->nodeid && h->nodeid != nodeid)
		qb_log(LOG_WARNING, "host %s moved from node %u to node %u",
		       h->name, h->nodeid, nodeid);
	if (h->pid != pid)
		qb_log(LOG_NOTICE, "host %s: pairvisord %u on node %u (build %s)",
		       h->name, pid, nodeid, a->build);
	h->nodeid = nodeid;
	h->pid = pid;
	snprintf(h->build, sizeof(h->build), "%s", a->build);
	return 0;
}

int pv_hosts_deliver(struct pv_hosts *hs, uint32_t nodeid, uint32_t pid,
		     const void *msg, size_t len, Pvcl__CpgMessage **out)
{
	struct pv_host *from = pv_hosts_by_node(hs, nodeid);
	Pvcl__CpgMessage *m;
	int err = 0;

	*out = NULL;
	if (len > HOSTS_MSG_MAX)
		return hosts_bad(hs, nodeid, "too long");
	m = pvcl__cpg_message__unpack(NULL, len, msg);
	if (!m)
		return hosts_bad(hs, nodeid, "it does not decode");
	switch (m->msg_case) {
	case PVCL__CPG_MESSAGE__MSG_ANNOUNCE:
		err = hosts_announce(hs, nodeid, pid, m->announce);
		break;
	case PVCL__CPG_MESSAGE__MSG_FORWARD:
	case PVCL__CPG_MESSAGE__MSG_FORWARD_REPLY:
	case PVCL__CPG_MESSAGE__MSG_DRIVER_REPORT:
	case PVCL__CPG_MESSAGE__MSG_DRIVER_ASK:
	case PVCL__CPG_MESSAGE__MSG_DRIVER_ANSWER:
	case PVCL__CPG_MESSAGE__MSG_HANDOVER:
	case PVCL__CPG_MESSAGE__MSG_HANDOVER_REFUSED:
		/* only from a daemon that announced itself a host of ours */
		if (!from || from->pid != pid)
			err = hosts_bad(hs, nodeid, "a request from a daemon that is no host of this cluster");
		break;
	default:
		err = hosts_bad(hs, nodeid, "unknown message");
	}
	if (err)
		pvcl__cpg_message__free_unpacked(m, NULL);
	else
		*out = m;
	return err;
}

void pv_hosts_left(struct pv_hosts *hs, uint32_t nodeid, uint32_t pid)
{
	struct pv_host *h = pv_hosts_by_node(hs, nodeid);

	if (h && !h->local && h->pid == pid)
		h->pid = 0;
}

void pv_hosts_announce(const struct pv_hosts *hs, Pvcl__Announce *a)
{
	a->host = (char *)hs->h[0].name;
	a->build = (char *)hs->h[0].build;
	a->address = (char *)hs->h[0].address;
}
