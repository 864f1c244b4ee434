// SPDX-License-Identifier: GPL-2.0
/*
 * mgrbench: the cluster manager's request rate and latency, as a client
 * of this host's pairvisord (run it inside a host of scripts/cluster.sh,
 * e.g. `cluster.sh exec a mgrbench 500`): N requests one after the
 * other, alternately vm create and vm delete of a name of its own, each
 * answered only once the spare applied it (or the peer is out). Prints
 * requests/s and the median and p99 latency.
 *
 * `mgrbench --watch`: poll this host's status every 2 ms until this
 * host's manager is the active (promoted), noting when the peer host was
 * lost to Corosync (detected; 0: it was not), then print both moments
 * (CLOCK_REALTIME, ns), for run-cluster.sh to set against the moment it
 * killed the peer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <qb/qbipcc.h>

#include "cluster.pb-c.h"
#include "pairvisord_ipc.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* One request on @c; its Reply's error, or -errno. */
static int ask(qb_ipcc_connection_t *c, const Pvcl__Request *req)
{
	static uint8_t buf[PVD_MSG_MAX];
	struct qb_ipc_request_header *h = (void *)buf;
	struct qb_ipc_response_header *res = (void *)buf;
	Pvcl__Reply *r;
	ssize_t n;
	int err;

	h->id = PVD_REQUEST;
	h->size = (int32_t)(sizeof(*h) + pvcl__request__get_packed_size(req));
	pvcl__request__pack(req, buf + sizeof(*h));
	n = qb_ipcc_send(c, buf, h->size);
	if (n >= 0)
		n = qb_ipcc_recv(c, buf, sizeof(buf), 10000);
	if (n < (ssize_t)sizeof(*res))
		return n < 0 ? (int)n : -EPROTO;
	if (res->error)
		return res->error;
	r = pvcl__reply__unpack(NULL, n - sizeof(*res), buf + sizeof(*res));
	if (!r)
		return -EPROTO;
	err = r->error;
	pvcl__reply__free_unpacked(r, NULL);
	return err;
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Poll status until the peer is lost and our manager active. */
static int watch(qb_ipcc_connection_t *c)
{
	static uint8_t buf[PVD_MSG_MAX];
	struct qb_ipc_request_header *h = (void *)buf;
	struct qb_ipc_response_header *res = (void *)buf;
	Pvcl__StatusRequest sr = PVCL__STATUS_REQUEST__INIT;
	Pvcl__Request req = PVCL__REQUEST__INIT;
	uint64_t detected = 0, promoted = 0, t0 = now_ns();

	req.req_case = PVCL__REQUEST__REQ_STATUS;
	req.status = &sr;
	printf("ready\n");
	fflush(stdout);
	while (!promoted && now_ns() - t0 < 60000000000ULL) {
		Pvcl__Reply *r;
		ssize_t n;

		h->id = PVD_REQUEST;
		h->size = (int32_t)(sizeof(*h) +
				    pvcl__request__get_packed_size(&req));
		pvcl__request__pack(&req, buf + sizeof(*h));
		n = qb_ipcc_send(c, buf, h->size);
		if (n >= 0)
			n = qb_ipcc_recv(c, buf, sizeof(buf), 5000);
		if (n < (ssize_t)sizeof(*res) || res->error)
			return 1;
		r = pvcl__reply__unpack(NULL, n - sizeof(*res),
					buf + sizeof(*res));
		if (!r || !r->status)
			return 1;
		if (!detected && r->status->n_hosts == 2 &&
		    !r->status->hosts[1]->member)
			detected = real_ns();
		if (!promoted && r->status->manager &&
		    !strcmp(r->status->manager->local_role, "active"))
			promoted = real_ns();
		pvcl__reply__free_unpacked(r, NULL);
		usleep(2000);
	}
	printf("detected %llu promoted %llu\n", (unsigned long long)detected,
	       (unsigned long long)promoted);
	return promoted ? 0 : 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	Pvcl__VmDef def = PVCL__VM_DEF__INIT;
	Pvcl__ManagerInput in = PVCL__MANAGER_INPUT__INIT;
	Pvcl__Request req = PVCL__REQUEST__INIT;
	qb_ipcc_connection_t *c;
	uint64_t *lat, t0, t;
	char name[32];

	if (argc > 1 && !strcmp(argv[1], "--watch"))
		n = 2;
	if (n < 2) {
		fprintf(stderr, "usage: mgrbench [REQUESTS] | --watch\n");
		return 2;
	}
	lat = calloc(n, sizeof(*lat));
	c = qb_ipcc_connect(PVD_SERVICE, PVD_MSG_MAX);
	if (!lat || !c) {
		fprintf(stderr, "mgrbench: no pairvisord here\n");
		return 1;
	}
	if (argc > 1 && !strcmp(argv[1], "--watch"))
		return watch(c);
	snprintf(name, sizeof(name), "bench%d", (int)getpid());
	def.name = name;
	def.memory = 64 << 20;
	def.vcpus = 1;
	def.kernel = "/boot/none";
	req.req_case = PVCL__REQUEST__REQ_MANAGER;
	req.manager = &in;
	t0 = now_ns();
	for (int i = 0; i < n; i++) {
		int err;

		in.request_id = ((uint64_t)getpid() << 32) | i;
		if (i % 2) {
			in.op_case = PVCL__MANAGER_INPUT__OP_VM_DELETE;
			in.vm_delete = name;
		} else {
			in.op_case = PVCL__MANAGER_INPUT__OP_VM_CREATE;
			in.vm_create = &def;
		}
		t = now_ns();
		err = ask(c, &req);
		lat[i] = now_ns() - t;
		if (err) {
			fprintf(stderr, "mgrbench: request %d: %s\n", i,
				strerror(-err));
			return 1;
		}
	}
	t = now_ns() - t0;
	qb_ipcc_disconnect(c);
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("requests %d, %.0f/s, latency median %.0f us, p99 %.0f us\n", n,
	       n * 1e9 / t, lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3);
	free(lat);
	return 0;
}
