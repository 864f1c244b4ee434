// SPDX-License-Identifier: GPL-2.0
/*
 * The manager with a quorum device instead of fencing (scripts/cluster.sh
 * up --qdevice: corosync-qnetd in a third namespace, TLS, ffsplit; no
 * fence agent): a partition leaves one side quorate, and exactly one
 * host is an active manager that takes changes, never two, never none;
 * the other side refuses changes. A host stopped past the token
 * (SIGSTOP of all its processes) finds, when it resumes, a newer active
 * and steps down before it acts.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "cltest.h"
#include "cunit_main.h"

#define VM_ARGS	"--memory 64M --vcpus 1 --kernel /boot/none"

/*
 * @host's manager role, whether it acknowledges changes (active,
 * quorate, its spare live or the peer out) and its spare's state.
 */
static void role_of(const char *host, char *role, bool *accepting,
		    char *spare)
{
	struct json_object *st = cl_status(host);

	strcpy(role, st ? cl_str(st, "manager.local_role") : "down");
	strcpy(spare, st ? cl_str(st, "manager.spare_state") : "none");
	*accepting = st && cl_bool(st, "manager.accepting");
	json_object_put(st);
}

/* Hosts whose manager acknowledges changes: never more than one. */
static int actives(const char **which)
{
	static const char *const hosts[] = { "a", "b" };
	char role[16], spare[16];
	bool q;
	int n = 0;

	for (int i = 0; i < 2; i++) {
		role_of(hosts[i], role, &q, spare);
		if (q) {
			n++;
			if (which)
				*which = hosts[i];
		}
	}
	return n;
}

/* Until one host is active with a live spare on the other. */
static const char *wait_pair(int ms)
{
	static const char *const hosts[] = { "a", "b" };
	uint64_t t0 = cl_now_ms();
	char role[16], spare[16];
	bool q;

	do {
		for (int i = 0; i < 2; i++) {
			role_of(hosts[i], role, &q, spare);
			if (!strcmp(role, "active") && q &&
			    !strcmp(spare, "live"))
				return hosts[i];
		}
		usleep(100000);
	} while (cl_now_ms() - t0 < (uint64_t)ms);
	return NULL;
}

static void test_pair(void)
{
	struct json_object *st;

	CU_ASSERT_PTR_NOT_NULL_FATAL(wait_pair(30000));
	st = cl_status("a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_TRUE(cl_bool(st, "quorum.qdevice"));
	CU_ASSERT_TRUE(cl_bool(st, "quorum.qdevice_vote"));
	CU_ASSERT_FALSE(cl_bool(st, "quorum.two_node"));
	CU_ASSERT_EQUAL(cl_int(st, "quorum.total_votes"), 3);
	CU_ASSERT_STRING_EQUAL(cl_str(st, "fence.agent"), "");
	json_object_put(st);
	CU_ASSERT_EQUAL(cl_ctl("a", NULL, "vm create q1 " VM_ARGS), 0);
}

/*
 * A partition: ffsplit gives the device's vote to one side (the lower
 * node id, a). Whichever host was active, afterwards exactly one is
 * active and quorate, and it is a; b refuses changes.
 */
static void test_partition(void)
{
	const char *who = NULL;
	uint64_t t0;
	char *out;
	int n = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(wait_pair(30000));
	CU_ASSERT_EQUAL_FATAL(cl_run("partition"), 0);
	/* never two: checked all along the way */
	for (t0 = cl_now_ms(); cl_now_ms() - t0 < 12000; usleep(100000)) {
		n = actives(&who);
		CU_ASSERT(n <= 1);
		if (n == 1 && !strcmp(who, "a") && cl_now_ms() - t0 > 6000)
			break;
	}
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_STRING_EQUAL(who ? who : "", "a");
	CU_ASSERT_EQUAL(cl_ctl("a", NULL, "vm create q2 " VM_ARGS), 0);
	CU_ASSERT_EQUAL(cl_ctl("b", &out, "vm create q3 " VM_ARGS), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "not quorate"));
	free(out);
	CU_ASSERT_EQUAL_FATAL(cl_run("heal"), 0);
	CU_ASSERT_STRING_EQUAL(wait_pair(60000), "a");
	CU_ASSERT_EQUAL(cl_ctl("b", &out, "vm list"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "q2"));
	CU_ASSERT_PTR_NULL(strstr(out, "q3"));
	free(out);
}

/*
 * The active host hangs (every process stopped) past the token: the
 * other takes over on the device's vote; resumed, the old active sees
 * the newer one and steps down, and never answers what it held.
 */
static void test_stopped_host(void)
{
	const char *a = wait_pair(30000), *b, *who = NULL;
	uint64_t t0;
	char *out;
	int n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	b = !strcmp(a, "a") ? "b" : "a";
	CU_ASSERT(cl_signal_host(a, SIGSTOP) > 0);
	for (t0 = cl_now_ms(); cl_now_ms() - t0 < 15000; usleep(100000)) {
		char role[16], spare[16];
		bool q;

		role_of(b, role, &q, spare);
		if (!strcmp(role, "active") && q)
			break;
	}
	printf("(host %s took over %llu ms after the stop) ", b,
	       (unsigned long long)(cl_now_ms() - t0));
	CU_ASSERT_EQUAL(cl_ctl(b, NULL, "vm create q4 " VM_ARGS), 0);
	CU_ASSERT(cl_signal_host(a, SIGCONT) > 0);
	/* never two that take changes, and the newer stays */
	for (t0 = cl_now_ms(); cl_now_ms() - t0 < 5000; usleep(100000)) {
		n = actives(&who);
		CU_ASSERT(n <= 1);
	}
	CU_ASSERT_STRING_EQUAL(wait_pair(60000), b);
	CU_ASSERT_EQUAL(cl_ctl(a, &out, "vm list"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "q4"));
	free(out);
}

static int suite_init(void)
{
	return cl_up("--qdevice");
}

static int suite_clean(void)
{
	cl_down();
	return 0;
}

static CU_TestInfo tests[] = {
	{ "the quorum device votes, no two_node", test_pair },
	{ "a partition: one active, on the side with the vote",
	  test_partition },
	{ "a stopped active resumes: it steps down", test_stopped_host },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "qdevice", suite_init, suite_clean, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
