// SPDX-License-Identifier: GPL-2.0
/*
 * pairvisord on a local two-host cluster (scripts/cluster.sh): both
 * daemons see each other through Corosync, the quorum and what Corosync
 * reports when a host is killed, partitioned, or its Corosync restarted
 * under the daemon; pairctl's table, --json and errors; who may ask;
 * malformed IPC requests and hostile CPG messages, refused and counted.
 * One cluster for the whole program, always taken down.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <corosync/cpg.h>
#include <qb/qbipcc.h>

#include "cltest.h"
#include "cluster.pb-c.h"
#include "cunit_main.h"
#include "pairvisord_ipc.h"

/* Host @h's view: corosync up, quorate, both hosts' daemons in the group. */
static void check_both(const char *h)
{
	struct json_object *st = cl_status(h);
	const char *other = !strcmp(h, "a") ? "b" : "a";

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_STRING_EQUAL(cl_str(st, "local_host"), h);
	CU_ASSERT_TRUE(cl_bool(st, "corosync"));
	CU_ASSERT_TRUE(cl_bool(st, "quorum.quorate"));
	CU_ASSERT_TRUE(cl_bool(st, "quorum.two_node"));
	CU_ASSERT_EQUAL(cl_int(st, "quorum.total_votes"), 2);
	CU_ASSERT_FALSE(cl_bool(st, "quorum.qdevice"));
	CU_ASSERT_STRING_EQUAL(cl_str(st, "hosts.0.name"), h);
	CU_ASSERT_TRUE(cl_bool(st, "hosts.0.local"));
	CU_ASSERT_STRING_EQUAL(cl_str(st, "hosts.1.name"), other);
	CU_ASSERT_FALSE(cl_bool(st, "hosts.1.local"));
	for (int i = 0; i < 2; i++) {
		char p[32];

		snprintf(p, sizeof(p), "hosts.%d.member", i);
		CU_ASSERT_TRUE(cl_bool(st, p));
		snprintf(p, sizeof(p), "hosts.%d.daemon", i);
		CU_ASSERT_TRUE(cl_bool(st, p));
		snprintf(p, sizeof(p), "hosts.%d.daemon_pid", i);
		CU_ASSERT(cl_int(st, p) > 0);
		snprintf(p, sizeof(p), "hosts.%d.build", i);
		CU_ASSERT_PTR_NOT_NULL(strstr(cl_str(st, p), "pairvisor-"));
	}
	/* node ids as cluster.sh's corosync.conf gives them */
	CU_ASSERT_EQUAL(cl_int(st, "hosts.0.nodeid"), h[0] == 'a' ? 1 : 2);
	CU_ASSERT_EQUAL(cl_int(st, "hosts.1.nodeid"), h[0] == 'a' ? 2 : 1);
	json_object_put(st);
}

static void test_both(void)
{
	check_both("a");
	check_both("b");
}

static void test_pairctl(void)
{
	int st;
	char *out = cl_out(&st, false, "exec a pairctl status");

	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "answered by host a; corosync connected"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "quorum:   quorate, votes 2 of 2 expected"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "fencing:  none configured"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "(this host)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "tcp:10.88.0.2:7400"));
	free(out);
	out = cl_out(&st, true, "exec a pairctl status --json vm1");
	CU_ASSERT_EQUAL(st, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "status --json takes no NAME"));
	free(out);
	out = cl_out(&st, true, "exec a pairctl frobnicate");
	CU_ASSERT_EQUAL(st, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "unknown command: frobnicate"));
	free(out);
	/* vm and host commands: usage errors are found before asking */
	{
		static const char *const bad[] = {
			"vm create",
			"vm create vm1 --vcpus 1 --kernel /k",
			"vm create vm1 --memory 12Q --vcpus 1 --kernel /k",
			"vm create vm1 --memory 256M --vcpus 0 --kernel /k",
			"vm create vm1 --memory 256M --vcpus 1 --kernel /k --disk /d,format=vmdk",
			"vm create vm1 --memory 256M --vcpus 1 --kernel /k --disk /d,spare=far",
			"vm create vm1 --memory 256M --vcpus 1 --kernel /k extra",
			"vm start",
			"vm list --yaml",
			"vm frobnicate x",
			"host sleep a",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			out = cl_out(&st, true, "exec a pairctl %s", bad[i]);
			if (st != 2)
				printf("\n  pairctl %s: %d\n%s", bad[i], st, out);
			CU_ASSERT_EQUAL(st, 2);
			CU_ASSERT_PTR_NOT_NULL(strstr(out, "pairctl: "));
			free(out);
		}
	}
	/* outside the cluster's hosts no pairvisord answers */
	out = cl_out(&st, true, "exec a pairctl status no-such-vm");
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "vm no-such-vm: not running"));
	free(out);
}

/* nobody (not root, not in host a's ipc_group) is refused. */
static void test_permission(void)
{
	struct json_object *js;
	long long before;
	int st;
	char *out;

	js = cl_status("a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	before = cl_int(js, "ipc_refused");
	json_object_put(js);
	out = cl_out(&st, true, "exec a setpriv --reuid=nobody --regid=nogroup --clear-groups pairctl status --json");
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "pairvisord refused the connection"));
	free(out);
	js = cl_status("a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_EQUAL(cl_int(js, "ipc_refused"), before + 1);
	json_object_put(js);
}

/* A member of ipc_group may ask: host b's daemon, restarted with one. */
static void test_permission_group(void)
{
	char path[256], *out;
	FILE *f;
	int st;

	snprintf(path, sizeof(path), "/tmp/pairvisor-cluster-%s/b/pairvisor.conf",
		 cl_id());
	f = fopen(path, "a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("ipc_group = \"nogroup\";\n", f);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(cl_run("stop b pairvisord"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("start b pairvisord"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("wait b both 20"), 0);
	out = cl_out(&st, true, "exec b setpriv --reuid=nobody --regid=nogroup --clear-groups pairctl status");
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "answered by host b"));
	free(out);
	/* the group is nobody's primary one: without it, refused again */
	out = cl_out(&st, true, "exec b setpriv --reuid=nobody --regid=daemon --clear-groups pairctl status");
	CU_ASSERT_EQUAL(st, 1);
	free(out);
}

/* Raw requests to pairvisord: what each gets back. */
struct poke {
	int32_t id;		/* header id */
	int size_delta;		/* header size vs what is sent */
	const void *body;
	size_t len;
	int32_t want;		/* the reply header's error */
};

static int poke_one(void *arg)
{
	const struct poke *p = arg;
	uint8_t buf[4096], rbuf[PVD_MSG_MAX];
	struct qb_ipc_request_header *h = (void *)buf;
	struct qb_ipc_response_header *r = (void *)rbuf;
	qb_ipcc_connection_t *c = qb_ipcc_connect(PVD_SERVICE, PVD_MSG_MAX);
	ssize_t n;

	if (!c)
		return 10;
	h->id = p->id;
	h->size = (int32_t)(sizeof(*h) + p->len) + p->size_delta;
	if (p->len)
		memcpy(buf + sizeof(*h), p->body, p->len);
	n = qb_ipcc_send(c, buf, sizeof(*h) + p->len);
	if (n >= 0)
		n = qb_ipcc_recv(c, rbuf, sizeof(rbuf), 5000);
	qb_ipcc_disconnect(c);
	if (n < (ssize_t)sizeof(*r))
		return 11;
	return r->error == p->want ? 0 : 12;
}

/* A request larger than the daemon takes: refused, never decoded. */
static int poke_huge(void *arg)
{
	size_t len = 4 * PVD_MSG_MAX;
	uint8_t *buf = calloc(1, len);
	struct qb_ipc_request_header *h = (void *)buf;
	qb_ipcc_connection_t *c = qb_ipcc_connect(PVD_SERVICE, len);
	ssize_t n;

	(void)arg;
	if (!c || !buf)
		return 10;
	h->id = PVD_REQUEST;
	h->size = (int32_t)len;
	n = qb_ipcc_send(c, buf, len);
	if (n >= 0)
		n = qb_ipcc_recv(c, buf, len, 5000);
	qb_ipcc_disconnect(c);
	n = n < (ssize_t)sizeof(struct qb_ipc_response_header) ? 13 :
	    ((struct qb_ipc_response_header *)buf)->error == -EMSGSIZE ? 0 :
	    14;
	free(buf);
	return (int)n;
}

static void test_malformed_ipc(void)
{
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0x0f, 0x42 };
	/* a Request whose oneof has a field number this daemon never knew */
	static const uint8_t unknown[] = { 0xba, 0x06, 0x00 };	/* #103 */
	Pvcl__Request req = PVCL__REQUEST__INIT;
	Pvcl__StatusRequest sr = PVCL__STATUS_REQUEST__INIT;
	uint8_t good[16];
	struct poke pokes[] = {
		{ 77, 0, NULL, 0, -EBADMSG },		/* unknown header id */
		{ PVD_REQUEST, 0, garbage, sizeof(garbage), -EBADMSG },
		{ PVD_REQUEST, 0, unknown, sizeof(unknown), -EOPNOTSUPP },
		{ PVD_REQUEST, 0, NULL, 0, -EOPNOTSUPP },	/* empty */
		{ PVD_REQUEST, 3, good, 0, -EBADMSG },	/* size lies */
		{ PVD_REQUEST, 0, good, 0, 0 },		/* good: status */
	};
	struct json_object *js;
	long long before;

	req.req_case = PVCL__REQUEST__REQ_STATUS;
	req.status = &sr;
	pokes[4].len = pokes[5].len = pvcl__request__pack(&req, good);
	js = cl_status("a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	before = cl_int(js, "ipc_bad_requests");
	json_object_put(js);
	for (size_t i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
		int st = cl_in_host("a", poke_one, &pokes[i]);

		if (st)
			printf("\n  poke %zu: %d\n", i, st);
		CU_ASSERT_EQUAL(st, 0);
	}
	CU_ASSERT_EQUAL(cl_in_host("a", poke_huge, NULL), 0);
	js = cl_status("a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_EQUAL(cl_int(js, "ipc_bad_requests"), before + 6);
	CU_ASSERT_TRUE(cl_bool(js, "hosts.0.daemon"));
	json_object_put(js);
}

/* A CPG member that is not a pairvisord of this cluster speaks. */
static int cpg_hostile(void *arg)
{
	static const uint8_t garbage[] = { 0x0a, 0xff, 0x01 };
	Pvcl__Announce a = PVCL__ANNOUNCE__INIT;
	Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;
	struct cpg_name g = { .length = 9, .value = "pairvisor" };
	cpg_callbacks_t cb = { 0 };
	uint8_t buf[256];
	struct iovec iov[2] = { { (void *)garbage, sizeof(garbage) },
				{ buf, 0 } };
	cpg_handle_t h;
	int tries = 0;
	cs_error_t e;

	(void)arg;
	a.host = "mallory";
	a.build = "evil";
	m.msg_case = PVCL__CPG_MESSAGE__MSG_ANNOUNCE;
	m.announce = &a;
	iov[1].iov_len = pvcl__cpg_message__pack(&m, buf);
	if (cpg_initialize(&h, &cb) != CS_OK)
		return 20;
	while ((e = cpg_join(h, &g)) == CS_ERR_TRY_AGAIN && tries++ < 50)
		usleep(100000);
	if (e != CS_OK ||
	    cpg_mcast_joined(h, CPG_TYPE_AGREED, &iov[0], 1) != CS_OK ||
	    cpg_mcast_joined(h, CPG_TYPE_AGREED, &iov[1], 1) != CS_OK)
		return 21;
	usleep(300000);
	cpg_finalize(h);
	return 0;
}

static void test_hostile_cpg(void)
{
	struct json_object *js;
	uint64_t t0;
	bool ok = false;

	CU_ASSERT_EQUAL_FATAL(cl_in_host("b", cpg_hostile, NULL), 0);
	/* both daemons drop both messages, and carry on */
	for (t0 = cl_now_ms(); !ok && cl_now_ms() - t0 < 5000; usleep(100000)) {
		struct json_object *jb = cl_status("b");

		js = cl_status("a");
		ok = js && jb && cl_int(js, "cpg_bad_messages") == 2 &&
		     cl_int(jb, "cpg_bad_messages") == 2;
		json_object_put(js);
		json_object_put(jb);
	}
	CU_ASSERT_TRUE(ok);
	check_both("a");
	check_both("b");
}

/* Host b loses power: a sees it go, stays quorate (two_node), b returns. */
static void test_kill_host(void)
{
	struct json_object *js;
	uint64_t t0 = cl_now_ms();

	CU_ASSERT_EQUAL_FATAL(cl_run("kill b"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("wait a alone 10"), 0);
	printf("(host b lost after %llu ms) ", (unsigned long long)(cl_now_ms() - t0));
	js = cl_status("a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_TRUE(cl_bool(js, "quorum.quorate"));
	CU_ASSERT_EQUAL(cl_int(js, "quorum.total_votes"), 1);
	CU_ASSERT_FALSE(cl_bool(js, "hosts.1.member"));
	CU_ASSERT_FALSE(cl_bool(js, "hosts.1.daemon"));
	CU_ASSERT_EQUAL(cl_int(js, "hosts.1.nodeid"), 2);
	json_object_put(js);
	CU_ASSERT_EQUAL_FATAL(cl_run("start b"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("wait b both 30"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("wait a both 10"), 0);
	check_both("a");
	check_both("b");
}

/*
 * The link between the hosts is cut: each loses the other's daemon and,
 * under two_node, both stay quorate (the split brain fencing or a quorum
 * device must settle). Healed, they find each other again.
 */
static void test_partition(void)
{
	CU_ASSERT_EQUAL_FATAL(cl_run("partition"), 0);
	CU_ASSERT_EQUAL(cl_run("wait a alone 10"), 0);
	CU_ASSERT_EQUAL(cl_run("wait b alone 10"), 0);
	CU_ASSERT_EQUAL(cl_run("wait a quorate 1"), 0);
	CU_ASSERT_EQUAL(cl_run("wait b quorate 1"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("heal"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("wait a both 30"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("wait b both 10"), 0);
}

/* Corosync goes and comes back under a running pairvisord. */
static void test_corosync_restart(void)
{
	struct json_object *js = cl_status("a");
	long long connects;

	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	connects = cl_int(js, "corosync_connects");
	json_object_put(js);
	CU_ASSERT_EQUAL_FATAL(cl_run("kill a corosync"), 0);
	js = cl_status("a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);	/* the daemon still answers */
	CU_ASSERT_FALSE(cl_bool(js, "corosync"));
	CU_ASSERT_FALSE(cl_bool(js, "quorum.quorate"));
	json_object_put(js);
	CU_ASSERT_EQUAL_FATAL(cl_run("start a corosync"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("wait a both 30"), 0);
	js = cl_status("a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(js);
	CU_ASSERT_EQUAL(cl_int(js, "corosync_connects"), connects + 1);
	json_object_put(js);
	check_both("b");
}

static int suite_init(void)
{
	return cl_up(NULL);
}

static int suite_clean(void)
{
	cl_down();
	return 0;
}

static CU_TestInfo tests[] = {
	{ "both hosts see each other, quorate", test_both },
	{ "pairctl status: the table, usage errors", test_pairctl },
	{ "a user without permission is refused, counted", test_permission },
	{ "ipc_group members may ask", test_permission_group },
	{ "malformed and unknown IPC requests: refused, counted",
	  test_malformed_ipc },
	{ "hostile CPG messages: dropped, counted", test_hostile_cpg },
	{ "a host killed is lost to its peer, and rejoins", test_kill_host },
	{ "a partition, healed", test_partition },
	{ "Corosync restarted under pairvisord", test_corosync_restart },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "membership", suite_init, suite_clean, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
