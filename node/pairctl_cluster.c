// SPDX-License-Identifier: GPL-2.0
/*
 * pairctl's cluster commands, answered by this host's pairvisord over
 * libqb IPC (proto/cluster.proto): a table for people, --json for
 * scripts (the Reply's fields by their .proto names, pbjson.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qb/qbipcc.h>

#include "cluster.pb-c.h"
#include "pairctl.h"
#include "pairvisord_ipc.h"
#include "pbjson.h"

#define PCTL_TIMEOUT_MS		10000

int pctl_ask(const Pvcl__Request *req, Pvcl__Reply **out)
{
	static uint8_t buf[PVD_MSG_MAX];
	struct qb_ipc_request_header *h = (void *)buf;
	struct qb_ipc_response_header *res = (void *)buf;
	size_t len = pvcl__request__get_packed_size(req);
	qb_ipcc_connection_t *c;
	ssize_t n;

	if (sizeof(*h) + len > sizeof(buf))
		return -EMSGSIZE;
	c = qb_ipcc_connect(PVD_SERVICE, PVD_MSG_MAX);
	if (!c && (errno == EACCES || errno == EPERM)) {
		fprintf(stderr, "pairctl: pairvisord refused the connection: root or the group in pairvisor.conf's ipc_group only\n");
		return -EACCES;
	}
	if (!c)
		return -ENOENT;
	h->id = PVD_REQUEST;
	h->size = (int32_t)(sizeof(*h) + len);
	pvcl__request__pack(req, buf + sizeof(*h));
	n = qb_ipcc_send(c, buf, h->size);
	if (n >= 0)
		n = qb_ipcc_recv(c, buf, sizeof(buf), PCTL_TIMEOUT_MS);
	qb_ipcc_disconnect(c);
	if (n < 0) {
		fprintf(stderr, "pairctl: pairvisord did not answer: %s\n",
			strerror((int)-n));
		return (int)n;
	}
	if (n < (ssize_t)sizeof(*res) || res->size != n) {
		fprintf(stderr, "pairctl: pairvisord: bad reply (%zd bytes)\n", n);
		return -EPROTO;
	}
	if (res->error) {
		fprintf(stderr, "pairctl: pairvisord refused the request: %s\n",
			strerror(-res->error));
		return res->error;
	}
	*out = pvcl__reply__unpack(NULL, n - sizeof(*res), buf + sizeof(*res));
	if (!*out) {
		fprintf(stderr, "pairctl: pairvisord: undecodable reply\n");
		return -EPROTO;
	}
	return 0;
}

static void pctl_print_quorum(const Pvcl__QuorumStatus *q)
{
	printf("quorum:   %s, votes %u of %u expected, %u needed%s%s\n",
	       q->quorate ? "quorate" : "NOT QUORATE", q->total_votes,
	       q->expected_votes, q->quorum, q->two_node ? ", two_node" : "",
	       q->wait_for_all ? ", wait_for_all" : "");
	if (q->qdevice)
		printf("          quorum device %s: %s, %s\n",
		       *q->qdevice_name ? q->qdevice_name : "(unnamed)",
		       q->qdevice_alive ? "alive" : "NOT ALIVE",
		       q->qdevice_vote ? "votes for this host" :
		       "does not vote for this host");
	else
		printf("          no quorum device\n");
}

static void pctl_print_fence(const Pvcl__FenceStatus *f)
{
	if (!*f->agent) {
		printf("fencing:  none configured\n");
		return;
	}
	printf("fencing:  %s, %s%s%s, delay %u ms, peers fenced %llu\n",
	       f->agent, f->state, *f->detail ? ": " : "", f->detail,
	       f->delay_ms, (unsigned long long)f->fencings);
}

static void pctl_print_hosts(const Pvcl__ClusterStatus *st)
{
	printf("hosts:\n  %-12s %-6s %-10s %-18s %s\n", "NAME", "NODE",
	       "COROSYNC", "PAIRVISORD", "ADDRESS / BUILD");
	for (size_t i = 0; i < st->n_hosts; i++) {
		const Pvcl__HostStatus *h = st->hosts[i];
		char node[16], daemon[32];

		snprintf(node, sizeof(node), h->nodeid ? "%u" : "-", h->nodeid);
		if (h->daemon)
			snprintf(daemon, sizeof(daemon), "up, pid %d",
				 h->daemon_pid);
		else
			snprintf(daemon, sizeof(daemon), "down");
		printf("  %-12s %-6s %-10s %-18s %s\n", h->name, node,
		       h->member ? "member" : h->nodeid ? "LOST" : "unknown",
		       daemon, h->address);
		printf("  %-12s %-6s %-10s %-18s %s\n",
		       h->local ? "(this host)" : "", "", "", "",
		       *h->build ? h->build : "-");
	}
}

static void pctl_print_manager(const Pvcl__ClusterStatus *st)
{
	const Pvcl__ManagerStatus *m = st->manager;

	if (!m)
		return;
	printf("manager:  active on %s, spare on %s (%s), generation %llu, %llu requests applied\n",
	       *m->active_host ? m->active_host : "NO HOST",
	       *m->spare_host ? m->spare_host : "no host",
	       m->spare_state, (unsigned long long)m->generation,
	       (unsigned long long)m->seq);
	printf("          this host: %s%s; answered %llu, forwarded %llu, mirrored %llu, failovers %llu, switchovers %llu, held now %llu\n",
	       m->local_role, m->accepting ? ", takes changes" : "",
	       (unsigned long long)m->requests,
	       (unsigned long long)m->forwarded,
	       (unsigned long long)m->mirrored,
	       (unsigned long long)m->failovers,
	       (unsigned long long)m->switchovers,
	       (unsigned long long)m->held);
	if (*m->why)
		printf("          %s\n", m->why);
}

static void pctl_print_vms(const Pvcl__ClusterStatus *st)
{
	printf("guests:   %zu defined; this host started %llu VMMs, adopted %llu, saw %llu end\n",
	       st->n_vms, (unsigned long long)st->vmms_started,
	       (unsigned long long)st->vmms_adopted,
	       (unsigned long long)st->vmm_exits);
	for (size_t i = 0; i < st->n_vms; i++) {
		const Pvcl__VmInfo *v = st->vms[i];

		printf("  %-20s %-9s on %-8s pid %-8d want %s\n", v->def->name,
		       v->state, *v->host ? v->host : "-", v->pid, v->want);
	}
}

static void pctl_print_disk(const Pvcl__VmDrivers *v,
			    const Pvcl__DiskDrivers *k)
{
	char name[80], active[48], spare[64];

	snprintf(name, sizeof(name), "%s/disk%u", v->vm, k->index);
	snprintf(active, sizeof(active), "%s pid %d", k->active_host,
		 k->active_pid);
	if (*k->spare_host)
		snprintf(spare, sizeof(spare), "%s pid %d %s", k->spare_host,
			 k->spare_pid, k->spare_state);
	else
		snprintf(spare, sizeof(spare), "no spare");
	printf("  %-20s %-4u %-16s %-22s %-10llu %-10llu %llu (%llu planned), %llu us\n",
	       name, k->generation, active, spare,
	       (unsigned long long)k->mirrored,
	       (unsigned long long)k->spare_outputs_dropped,
	       (unsigned long long)k->failovers,
	       (unsigned long long)k->switchovers,
	       (unsigned long long)k->last_stall_us);
	if (k->executed_twice)
		printf("  %-20s EXECUTED TWICE: %llu\n", "",
		       (unsigned long long)k->executed_twice);
}

static void pctl_print_drivers(const Pvcl__ClusterStatus *st)
{
	printf("drivers:  every running guest's disks, as the VMM on its host answered\n"
	       "          (pairctl status NAME there: every counter)\n");
	printf("  %-20s %-4s %-16s %-22s %-10s %-10s %s\n", "VM/DISK", "GEN",
	       "ACTIVE", "SPARE", "MIRRORED", "DROPPED",
	       "FAILOVERS, LAST STALL");
	for (size_t i = 0; i < st->n_drivers; i++) {
		const Pvcl__VmDrivers *v = st->drivers[i];

		if (*v->error)
			printf("  %-20s on %s: its VMM did not answer: %s\n",
			       v->vm, v->host, v->error);
		else if (v->age_ms >= 10000)
			printf("  %-20s on %s, pid %d, %s (as of %u s ago)\n",
			       v->vm, v->host, v->pid, v->state,
			       v->age_ms / 1000);
		for (size_t j = 0; j < v->n_disks; j++)
			pctl_print_disk(v, v->disks[j]);
	}
	if (st->drivers_omitted)
		printf("  (too many to show here: pairctl status NAME on each guest's host)\n");
	else if (!st->n_drivers)
		printf("  (no guest running)\n");
}

static void pctl_print_status(const Pvcl__ClusterStatus *st)
{
	printf("cluster:  answered by host %s; corosync %s\n", st->local_host,
	       st->corosync ? "connected" : "NOT CONNECTED (retrying)");
	pctl_print_quorum(st->quorum);
	pctl_print_fence(st->fence);
	pctl_print_hosts(st);
	pctl_print_manager(st);
	pctl_print_vms(st);
	pctl_print_drivers(st);
	printf("counters: ipc requests %llu, refused %llu (no permission), malformed %llu;\n"
	       "          cpg messages dropped %llu; corosync connections %llu;\n"
	       "          questions to this host's VMMs %llu, unanswered %llu\n",
	       (unsigned long long)st->ipc_requests,
	       (unsigned long long)st->ipc_refused,
	       (unsigned long long)st->ipc_bad_requests,
	       (unsigned long long)st->cpg_bad_messages,
	       (unsigned long long)st->corosync_connects,
	       (unsigned long long)st->vmm_queries,
	       (unsigned long long)st->vmm_query_failures);
}

int pctl_cluster_status(bool json)
{
	Pvcl__Request req = PVCL__REQUEST__INIT;
	Pvcl__StatusRequest sr = PVCL__STATUS_REQUEST__INIT;
	Pvcl__Reply *r = NULL;
	int err;

	req.req_case = PVCL__REQUEST__REQ_STATUS;
	req.status = &sr;
	err = pctl_ask(&req, &r);
	if (err)
		return err;
	if (!r->status) {
		fprintf(stderr, "pairctl: pairvisord sent no status\n");
		err = -EPROTO;
	} else if (json) {
		struct json_object *o = pv_pb_to_json(&r->status->base);

		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		pctl_print_status(r->status);
	}
	pvcl__reply__free_unpacked(r, NULL);
	return err;
}
