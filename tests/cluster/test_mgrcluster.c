// SPDX-License-Identifier: GPL-2.0
/*
 * The manager replica on a local two-host cluster with fencing through
 * ipmi_sim and Debian's fence_ipmilan (scripts/cluster.sh up --fence
 * ipmi): one host active, the other's spare seeded; requests through
 * either host, their errors; the active's host killed (fenced, the
 * spare promoted), its daemon killed (promoted without fencing), both
 * daemons restarted (the newest saved state wins); and a history check
 * in the manner of Jepsen: concurrent clients create and delete guests
 * with unique names while the active's host is killed, and the final
 * list must hold every acknowledged create not acknowledged deleted,
 * once, and nothing never asked for.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "cltest.h"
#include "cunit_main.h"

#define VM_ARGS	"--memory 64M --vcpus 1 --kernel /boot/none"

/* The host whose manager is the active, "" if none; the other's spare
 * state in *@spare. */
static const char *active_host(const char **spare_state)
{
	static char host[8];
	static char spare[16];

	host[0] = spare[0] = '\0';
	for (const char *h = "a"; *h; h = *h == 'a' ? "b" : "") {
		struct json_object *st = cl_status(h);

		if (st && !strcmp(cl_str(st, "manager.local_role"), "active")) {
			snprintf(host, sizeof(host), "%s", h);
			snprintf(spare, sizeof(spare), "%s",
				 cl_str(st, "manager.spare_state"));
		}
		json_object_put(st);
	}
	if (spare_state)
		*spare_state = spare;
	return host;
}

static const char *other(const char *h)
{
	return !strcmp(h, "a") ? "b" : "a";
}

/* Until @host's manager is the active (at most @ms): the ms it took. */
static uint64_t wait_active(const char *host, int ms)
{
	uint64_t t0 = cl_now_ms();

	while (strcmp(active_host(NULL), host) &&
	       cl_now_ms() - t0 < (uint64_t)ms)
		usleep(50000);
	return cl_now_ms() - t0;
}

/*
 * Until one host is active with a live spare on the other (@ms): that
 * host's name (a constant), or NULL.
 */
static const char *wait_pair(int ms)
{
	uint64_t t0 = cl_now_ms();
	const char *spare, *a;

	do {
		a = active_host(&spare);
		if (*a && !strcmp(spare, "live"))
			return other(other(a));
		usleep(100000);
	} while (cl_now_ms() - t0 < (uint64_t)ms);
	return NULL;
}

/* The names in @host's vm list --json, as " n1 n2 ... " in @buf. */
static int list_names(const char *host, char *buf, size_t len)
{
	char *out;
	struct json_object *a;
	size_t n = 0;

	if (cl_ctl(host, &out, "vm list --json")) {
		free(out);
		return -1;
	}
	a = json_tokener_parse(out);
	free(out);
	if (!a)
		return -1;
	buf[n++] = ' ';
	for (size_t i = 0; i < json_object_array_length(a) && n < len - 64; i++)
		n += snprintf(buf + n, len - n, "%s ",
			      cl_str(json_object_array_get_idx(a, i), "def.name"));
	buf[n] = '\0';
	json_object_put(a);
	return 0;
}

static bool listed(const char *names, const char *name)
{
	char want[80];

	snprintf(want, sizeof(want), " %s ", name);
	return strstr(names, want) != NULL;
}

static void test_pair(void)
{
	const char *a = wait_pair(30000);
	struct json_object *st;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	st = cl_status(other(a));
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_STRING_EQUAL(cl_str(st, "manager.local_role"), "spare");
	CU_ASSERT_STRING_EQUAL(cl_str(st, "manager.active_host"), a);
	CU_ASSERT_STRING_EQUAL(cl_str(st, "fence.state"), "ok");
	json_object_put(st);
}

static void test_requests(void)
{
	const char *a = wait_pair(30000);
	char *out, names[4096];

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	/* through the active host, and through the spare's (forwarded) */
	CU_ASSERT_EQUAL(cl_ctl(a, &out, "vm create r1 " VM_ARGS), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "vm r1 defined"));
	free(out);
	CU_ASSERT_EQUAL(cl_ctl(other(a), &out, "vm create r2 " VM_ARGS
			    " --disk /var/lib/r2.img,format=qcow2 --host b"), 0);
	free(out);
	CU_ASSERT_EQUAL(cl_ctl(other(a), &out, "vm create r1 " VM_ARGS), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "vm r1 exists already"));
	free(out);
	CU_ASSERT_EQUAL(cl_ctl(a, &out, "vm create r3 " VM_ARGS " --host c"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no host c in this cluster"));
	free(out);
	CU_ASSERT_EQUAL(cl_ctl(a, &out, "vm delete nope"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no vm nope"));
	free(out);
	CU_ASSERT_EQUAL(cl_ctl(other(a), &out, "vm start r2"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "vm r2 starts on host b"));
	free(out);
	CU_ASSERT_EQUAL(cl_ctl(a, &out, "vm delete r2"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "shut it down or destroy it first"));
	free(out);
	/* both hosts list the same */
	CU_ASSERT_EQUAL_FATAL(list_names(a, names, sizeof(names)), 0);
	CU_ASSERT_STRING_EQUAL(names, " r1 r2 ");
	CU_ASSERT_EQUAL_FATAL(list_names(other(a), names, sizeof(names)), 0);
	CU_ASSERT_STRING_EQUAL(names, " r1 r2 ");
	/* r2 was started: its host tries (no such kernel: it may have
	 * ended already) */
	CU_ASSERT_EQUAL(cl_ctl(a, &out, "vm list"), 0);
	CU_ASSERT(strstr(out, "r2                   starting") ||
		  strstr(out, "r2                   exited"));
	free(out);
}

/* One planned move of the manager, asked on host @on: the ms it took. */
static uint64_t switchover(const char *on, const char *to)
{
	uint64_t t0 = cl_now_ms();
	char *out;

	CU_ASSERT_EQUAL(cl_ctl(on, &out, "manager switchover"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "the active manager moved to host"));
	free(out);
	t0 = cl_now_ms() - t0;
	CU_ASSERT_STRING_EQUAL(active_host(NULL), to);
	CU_ASSERT_STRING_EQUAL(wait_pair(30000), to);
	return t0;
}

/*
 * pairctl manager switchover, asked on the spare's host (forwarded),
 * then on the active's: the manager moves each time with its state, no
 * host is fenced; without a spare it is refused.
 */
static void test_switchover(void)
{
	const char *a = wait_pair(30000), *b;
	char *out, names[4096];
	struct json_object *st;
	uint64_t ms;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	b = other(a);
	ms = switchover(b, b);
	printf("(to %s in %llu ms, ", b, (unsigned long long)ms);
	CU_ASSERT_EQUAL(list_names(a, names, sizeof(names)), 0);
	CU_ASSERT_STRING_EQUAL(names, " r1 r2 ");
	CU_ASSERT_EQUAL(cl_ctl(a, &out, "vm create s1 " VM_ARGS), 0);
	free(out);
	ms = switchover(b, a);
	printf("back in %llu ms) ", (unsigned long long)ms);
	CU_ASSERT_EQUAL(cl_ctl(b, &out, "vm delete s1"), 0);
	free(out);
	CU_ASSERT_EQUAL(list_names(b, names, sizeof(names)), 0);
	CU_ASSERT_STRING_EQUAL(names, " r1 r2 ");
	st = cl_status(a);
	CU_ASSERT_EQUAL(cl_int(st, "fence.fencings"), 0);
	CU_ASSERT_EQUAL(cl_int(st, "manager.switchovers"), 2);
	CU_ASSERT_EQUAL(cl_int(st, "manager.failovers"), 0);
	json_object_put(st);
	/* no spare to move to: refused, the active stays */
	CU_ASSERT_EQUAL_FATAL(cl_run("stop %s pairvisord", b), 0);
	CU_ASSERT_EQUAL(cl_ctl(a, &out, "manager switchover"), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "holds no seeded spare"));
	free(out);
	CU_ASSERT_EQUAL_FATAL(cl_run("start %s pairvisord", b), 0);
	CU_ASSERT_STRING_EQUAL(wait_pair(30000), a);
}

/*
 * The active host's pairvisord killed (or, @how "stop", stopped as
 * systemctl stop would): the spare takes over, unfenced.
 */
static void daemon_gone(const char *how)
{
	const char *a = wait_pair(30000), *b;
	char names[4096];
	struct json_object *st;
	uint64_t t0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	b = other(a);
	CU_ASSERT_EQUAL_FATAL(cl_run("%s %s pairvisord", how, a), 0);
	t0 = wait_active(b, 10000);
	CU_ASSERT_STRING_EQUAL(active_host(NULL), b);
	printf("(promoted %llu ms after the %s) ", (unsigned long long)t0, how);
	st = cl_status(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(cl_int(st, "fence.fencings"), 0);
	CU_ASSERT(cl_int(st, "manager.failovers") >= 1);
	json_object_put(st);
	CU_ASSERT_EQUAL(list_names(b, names, sizeof(names)), 0);
	CU_ASSERT_STRING_EQUAL(names, " r1 r2 ");
	/* back, it becomes the spare of the new active */
	CU_ASSERT_EQUAL_FATAL(cl_run("start %s pairvisord", a), 0);
	CU_ASSERT_STRING_EQUAL(wait_pair(30000), b);
}

static void test_daemon_killed(void)
{
	daemon_gone("kill");
}

static void test_daemon_stopped(void)
{
	daemon_gone("stop");
}

/* Both daemons stopped and started: the state comes back from disk. */
static void test_both_restarted(void)
{
	char names[4096];
	const char *a;

	CU_ASSERT_PTR_NOT_NULL_FATAL(wait_pair(30000));
	CU_ASSERT_EQUAL_FATAL(cl_run("kill a pairvisord"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("kill b pairvisord"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("start a pairvisord"), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("start b pairvisord"), 0);
	a = wait_pair(30000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(list_names(a, names, sizeof(names)), 0);
	CU_ASSERT_STRING_EQUAL(names, " r1 r2 ");
}

/*
 * The spare's daemon killed (kill -9): the active goes on alone (the
 * peer's process is gone: nothing to wait for), and the daemon started
 * again is seeded with what was done meanwhile.
 */
static void test_spare_killed(void)
{
	const char *a = wait_pair(30000), *b;
	struct json_object *st;
	bool seeded = false;
	char *out, p[32];

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	b = other(a);
	CU_ASSERT_EQUAL_FATAL(cl_run("kill %s pairvisord", b), 0);
	CU_ASSERT_EQUAL(cl_ctl(a, &out, "vm create alone1 " VM_ARGS), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "vm alone1 defined"));
	free(out);
	CU_ASSERT_STRING_EQUAL(active_host(NULL), a);
	CU_ASSERT_EQUAL_FATAL(cl_run("start %s pairvisord", b), 0);
	CU_ASSERT_STRING_EQUAL(wait_pair(30000), a);
	/* b's own replica (its status), not the active's list */
	st = cl_status(b);
	for (int i = 0; st && i < 64 && !seeded; i++) {
		snprintf(p, sizeof(p), "vms.%d.def.name", i);
		seeded = !strcmp(cl_str(st, p), "alone1");
	}
	json_object_put(st);
	CU_ASSERT_TRUE(seeded);
	CU_ASSERT_EQUAL(cl_ctl(b, NULL, "vm delete alone1"), 0);
}

/*
 * The spare's daemon hangs (SIGSTOP): an answer waits until the spare
 * has the request, here a new spare seeded once it runs again.
 */
static void test_spare_hung(void)
{
	const char *a = wait_pair(30000);
	struct json_object *st;
	char cmd[256];
	long long pid;
	uint64_t t0;
	FILE *f;
	bool held = false;
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	st = cl_status(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	pid = cl_int(st, "hosts.1.daemon_pid");
	json_object_put(st);
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_EQUAL_FATAL(kill((pid_t)pid, SIGSTOP), 0);
	snprintf(cmd, sizeof(cmd), "PV_CLUSTER=%s PV_BUILD=%s %s/scripts/cluster.sh exec %s pairctl vm create held1 " VM_ARGS " 2>&1",
		 cl_id(), PV_BUILD_DIR, PV_SOURCE_DIR, a);
	f = popen(cmd, "r");
	CU_ASSERT_PTR_NOT_NULL(f);
	for (t0 = cl_now_ms(); !held && cl_now_ms() - t0 < 3000; usleep(100000)) {
		st = cl_status(a);
		held = st && cl_int(st, "manager.held") == 1;
		json_object_put(st);
	}
	CU_ASSERT_TRUE(held);
	usleep(500000);
	kill((pid_t)pid, SIGCONT);
	if (f) {
		char line[256] = "";

		if (!fgets(line, sizeof(line), f) || !strstr(line, "defined"))
			printf("\n  pairctl said: %s", line);
		rc = pclose(f);
	} else {
		rc = -1;
	}
	CU_ASSERT_EQUAL(rc, 0);
	printf("(answered %llu ms after the create) ",
	       (unsigned long long)(cl_now_ms() - t0));
	CU_ASSERT_PTR_NOT_NULL(wait_pair(30000));
}

/* The active's host loses power: fenced by the spare's host, promoted. */
static void test_host_killed(void)
{
	const char *a = wait_pair(30000), *b;
	char names[4096];
	struct json_object *st;
	uint64_t t0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	b = other(a);
	CU_ASSERT_EQUAL_FATAL(cl_run("kill %s", a), 0);
	t0 = wait_active(b, 20000);
	CU_ASSERT_STRING_EQUAL_FATAL(active_host(NULL), b);
	printf("(promoted %llu ms after the kill) ", (unsigned long long)t0);
	st = cl_status(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(cl_int(st, "fence.fencings"), 1);
	json_object_put(st);
	CU_ASSERT_EQUAL(list_names(b, names, sizeof(names)), 0);
	CU_ASSERT_STRING_EQUAL(names, " r1 r2 held1 ");
	/* alone, it still takes requests: the peer is fenced */
	CU_ASSERT_EQUAL(cl_ctl(b, NULL, "vm create alone " VM_ARGS), 0);
	CU_ASSERT_EQUAL_FATAL(cl_run("start %s", a), 0);
	CU_ASSERT_STRING_EQUAL(wait_pair(60000), b);
	CU_ASSERT_EQUAL(list_names(a, names, sizeof(names)), 0);
	CU_ASSERT_STRING_EQUAL(names, " r1 r2 held1 alone ");
}

/* Whether any process runs on @host (its power is on). */
static bool host_up(const char *host)
{
	return cl_shell("test -n \"$(ip netns pids %s-%s)\"", cl_id(),
			host) == 0;
}

/*
 * The link between the hosts is cut: both see the other lost and both
 * stay quorate (two_node). The active fences at once, the spare only
 * after the fence delay, so exactly one host survives, holding the
 * active manager; never two actives, never none.
 */
static void test_partition(void)
{
	const char *a = wait_pair(30000), *b;
	char names[4096];
	uint64_t t0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	b = other(a);
	CU_ASSERT_EQUAL_FATAL(cl_run("partition"), 0);
	t0 = cl_now_ms();
	while (host_up(b) && cl_now_ms() - t0 < 15000)
		usleep(50000);
	CU_ASSERT_FALSE(host_up(b));
	printf("(host %s fenced %llu ms after the cut) ", b,
	       (unsigned long long)(cl_now_ms() - t0));
	/* the fence delay passes: the active's host is still up, active */
	usleep(4000000);
	CU_ASSERT_TRUE(host_up(a));
	CU_ASSERT_FALSE(host_up(b));
	CU_ASSERT_STRING_EQUAL(active_host(NULL), a);
	CU_ASSERT_EQUAL(list_names(a, names, sizeof(names)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(names, " r1 r2 held1 "));
	CU_ASSERT_EQUAL(cl_run("heal"), 0);
	CU_ASSERT_EQUAL(cl_run("start %s", b), 0);
	CU_ASSERT_STRING_EQUAL(wait_pair(60000), a);
}

/* ---- the history check ---- */

#define CLIENTS		3
#define OPS_MAX		400

enum outcome { OK, FAIL, UNKNOWN };

struct op {
	bool create;
	char name[32];
	enum outcome out;
};

/* One client: creates and deletes its own names until @stop_ms. */
/*
 * Its names are "h<run>c<id>-<n>": unique over the runs of one program
 * (the guests of an earlier run are still defined).
 */
static int client(int run, int id, uint64_t stop_ms, const char *log)
{
	FILE *f = fopen(log, "w");
	int n = 0;

	if (!f)
		return 1;
	while (cl_now_ms() < stop_ms && n < OPS_MAX) {
		bool create = n % 3 != 2;	/* two creates, one delete */
		char name[32], *out;
		int st;

		snprintf(name, sizeof(name), "h%dc%d-%d", run, id,
			 create ? n : n - 1);
		st = cl_ctl(n % 2 ? "a" : "b", &out, create ?
			 "vm create %s " VM_ARGS : "vm delete %s", name);
		/*
		 * unknown: pairctl was killed with the host it ran on
		 * (137: SIGKILL) or never heard back
		 */
		fprintf(f, "%c %s %s %d %.*s\n", create ? 'c' : 'd', name,
			!st ? "ok" : st != 1 || strstr(out, "may or may not") ||
			strstr(out, "did not answer") ||
			strstr(out, "no pairvisord") ? "unknown" : "fail", st,
			(int)strcspn(out, "\n"), out);
		fflush(f);
		free(out);
		n++;
	}
	fclose(f);
	return 0;
}

static int read_history(const char *log, struct op *ops, int max)
{
	FILE *f = fopen(log, "r");
	char kind, name[32], out[16];
	int n = 0;

	while (f && n < max &&
	       fscanf(f, " %c %31s %15s%*[^\n]", &kind, name, out) == 3) {
		ops[n].create = kind == 'c';
		snprintf(ops[n].name, sizeof(ops[n].name), "%s", name);
		ops[n].out = !strcmp(out, "ok") ? OK :
			     !strcmp(out, "fail") ? FAIL : UNKNOWN;
		n++;
	}
	if (f)
		fclose(f);
	return n;
}

/* Check the final list against one client's history; counts in @c. */
static void check_history(const char *names, struct op *ops, int n,
			  int *acked, int *unknown)
{
	for (int i = 0; i < n; i++) {
		struct op *o = &ops[i];
		bool deleted_ok = false, delete_unknown = false;

		if (!o->create)
			continue;
		for (int j = i + 1; j < n; j++)
			if (!ops[j].create && !strcmp(ops[j].name, o->name)) {
				deleted_ok |= ops[j].out == OK;
				delete_unknown |= ops[j].out == UNKNOWN;
			}
		if (o->out == OK && !deleted_ok && !delete_unknown) {
			(*acked)++;
			if (!listed(names, o->name))
				printf("\n  lost: %s was acknowledged, never deleted, and is gone",
				       o->name);
			CU_ASSERT(listed(names, o->name));
		}
		if (deleted_ok && listed(names, o->name))
			printf("\n  %s was deleted (acknowledged) and is listed",
			       o->name);
		if (deleted_ok)
			CU_ASSERT(!listed(names, o->name));
		if (o->out == FAIL && listed(names, o->name))
			printf("\n  %s was refused and is listed", o->name);
		if (o->out == FAIL)
			CU_ASSERT(!listed(names, o->name));
		*unknown += o->out == UNKNOWN;
	}
}

/* Every listed name was asked for by some client. */
static void check_nothing_else(const char *names, int run,
			       struct op (*ops)[OPS_MAX],
			       const int *n)
{
	char copy[65536], prefix[16], *save, *tok;

	snprintf(copy, sizeof(copy), "%s", names);
	snprintf(prefix, sizeof(prefix), "h%dc", run);
	for (tok = strtok_r(copy, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		/* r1, r2, alone, an earlier run's: not this run's to judge */
		bool asked = strncmp(tok, prefix, strlen(prefix));

		for (int c = 0; c < CLIENTS && !asked; c++)
			for (int i = 0; i < n[c] && !asked; i++)
				asked = ops[c][i].create &&
					!strcmp(ops[c][i].name, tok);
		if (!asked)
			printf("\n  %s is listed but was never asked for", tok);
		CU_ASSERT(asked);
	}
}

/* Delete this run's guests: room for the next run (64 at most). */
static void forget_run(const char *host, const char *names, int run)
{
	char copy[65536], prefix[16], *save, *tok;

	snprintf(copy, sizeof(copy), "%s", names);
	snprintf(prefix, sizeof(prefix), "h%dc", run);
	for (tok = strtok_r(copy, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save))
		if (!strncmp(tok, prefix, strlen(prefix)))
			CU_ASSERT_EQUAL(cl_ctl(host, NULL, "vm delete %s", tok), 0);
}

/*
 * The history check with @fault done to the active manager's host a
 * random moment in: "kill" (power loss), "stop" (every process stopped
 * past the token, then fenced by the other), "partition" (the link
 * cut: the active fences the other) or "switchover" (the manager moved
 * to the other host and back, four times, under the clients' requests). Afterwards the survivor, holding
 * the active manager, must list every acknowledged create not
 * acknowledged deleted, and nothing never asked for.
 */
static void history(const char *fault)
{
	static int runs;
	int run = ++runs;
	static struct op ops[CLIENTS][OPS_MAX];
	static char names[65536];
	const char *a = wait_pair(60000), *survivor, *lost = NULL;
	char logs[CLIENTS][64];
	int n[CLIENTS], acked = 0, unknown = 0, seed;
	pid_t pids[CLIENTS];
	uint64_t stop;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	seed = getenv("PV_SEED") ? atoi(getenv("PV_SEED")) : (int)getpid();
	srand(seed);
	stop = cl_now_ms() + 9000;
	for (int c = 0; c < CLIENTS; c++) {
		snprintf(logs[c], sizeof(logs[c]), "/tmp/pvhist.%s.%d",
			 cl_id(), c);
		pids[c] = fork();
		if (!pids[c])
			_exit(client(run, c, stop, logs[c]));
	}
	usleep((1000 + rand() % 3000) * 1000);
	printf("(seed %d: %s of host %s) ", seed, fault, a);
	if (!strcmp(fault, "kill")) {
		CU_ASSERT_EQUAL(cl_run("kill %s", a), 0);
		survivor = other(a);
	} else if (!strcmp(fault, "stop")) {
		CU_ASSERT(cl_signal_host(a, SIGSTOP) > 0);
		survivor = other(a);
	} else if (!strcmp(fault, "switchover")) {
		survivor = a;
		for (int i = 0; i < 4; i++) {
			/* asked on either host: it moves from the active */
			CU_ASSERT_EQUAL(cl_ctl(i % 2 ? a : other(a), NULL,
					       "manager switchover"), 0);
			survivor = other(survivor);
			usleep(700000);
		}
	} else {
		CU_ASSERT_EQUAL(cl_run("partition"), 0);
		survivor = a;
		lost = other(a);
	}
	for (int c = 0; c < CLIENTS; c++)
		waitpid(pids[c], NULL, 0);
	CU_ASSERT_STRING_EQUAL_FATAL(active_host(NULL), survivor);
	CU_ASSERT_EQUAL_FATAL(list_names(survivor, names, sizeof(names)), 0);
	for (int c = 0; c < CLIENTS; c++) {
		n[c] = read_history(logs[c], ops[c], OPS_MAX);
		check_history(names, ops[c], n[c], &acked, &unknown);
		if (!getenv("PV_CLUSTER_KEEP"))
			unlink(logs[c]);
	}
	check_nothing_else(names, run, ops, n);
	printf("(%d creates acknowledged and kept, %d of unknown outcome) ",
	       acked, unknown);
	CU_ASSERT(acked > 10);
	forget_run(survivor, names, run);
	if (!strcmp(fault, "partition"))
		CU_ASSERT_EQUAL(cl_run("heal"), 0);
	if (!strcmp(fault, "switchover"))
		return;		/* no host was lost */
	if (!lost)
		lost = a;
	/* a fenced host is off (stopped processes, too): boot it */
	CU_ASSERT_EQUAL(cl_run("kill %s", lost), 0);
	CU_ASSERT_EQUAL(cl_run("start %s", lost), 0);
	CU_ASSERT_PTR_NOT_NULL(wait_pair(60000));
}

static void test_history(void)
{
	history(getenv("PV_HISTORY_FAULT") ? getenv("PV_HISTORY_FAULT") :
		"kill");
}

static void test_history_partition(void)
{
	history("partition");
}

static void test_history_switchover(void)
{
	history("switchover");
}

static int suite_init(void)
{
	return cl_up("--fence ipmi");
}

static int suite_clean(void)
{
	cl_down();
	return 0;
}

static CU_TestInfo tests[] = {
	{ "one active manager, its spare seeded on the peer", test_pair },
	{ "requests through either host, and their errors", test_requests },
	{ "a planned switchover of the manager, both ways", test_switchover },
	{ "the active's daemon killed: the spare takes over",
	  test_daemon_killed },
	{ "the active's daemon stopped: the spare takes over",
	  test_daemon_stopped },
	{ "both daemons restarted: the state comes back from disk",
	  test_both_restarted },
	{ "the spare's daemon killed: the active goes on, then seeds it",
	  test_spare_killed },
	{ "the spare hung: answers wait for it", test_spare_hung },
	{ "the active's host killed: fenced, the spare promoted",
	  test_host_killed },
	{ "a partition: one survivor, with the active manager",
	  test_partition },
	{ "concurrent clients, a host killed: no acknowledged request lost",
	  test_history },
	{ "concurrent clients, a partition: no acknowledged request lost",
	  test_history_partition },
	{ "concurrent clients, the manager moved back and forth: none lost",
	  test_history_switchover },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "manager", suite_init, suite_clean, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
