// SPDX-License-Identifier: GPL-2.0
/*
 * Driver failover (issue 4, the patent's claims 1 and 2), end to end with
 * spare=local: the test guest's blkverify runs while the active driver is
 * killed (kill -9 at random moments, several times) or stopped (SIGSTOP:
 * the heartbeat finds it); the spare is promoted, the guest sees no
 * error, the image passes blkpattern verify and the VMM's count of
 * command ids executed twice is 0. Killing the spare leaves the active
 * alone and a new spare is seeded; killing both gives the guest I/O
 * errors, not a hang. The random seed is printed (PV_SEED=N repeats it).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cunit_main.h"
#include "vmmrun.h"

#define TIMEOUT_MS	90000
#define IMG_SIZE	(8 << 20)	/* 2048 blocks of 4 KiB, sparse */
#define DRIVER_NAME	"pairvisor-blkdrv"
#define SEED_WAIT_MS	10000
#define KILLS		3

struct args {
	const char *v[24];
	int n;
};

static void args_init(struct args *a, const char *cmdline)
{
	static const char *const base[] = {
		"pairvisor-vmm", "--memory", "128M", "--vcpus", "2",
		"--kernel", PV_GUEST_PATH, "--stats", "--cmdline",
	};

	memset(a, 0, sizeof(*a));
	for (a->n = 0; a->n < (int)(sizeof(base) / sizeof(base[0])); a->n++)
		a->v[a->n] = base[a->n];
	a->v[a->n++] = cmdline;
}

static void args_add(struct args *a, const char *opt, const char *val)
{
	a->v[a->n++] = opt;
	a->v[a->n++] = val;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static char *img_new(const char *name)
{
	char *path = tmpfile_write(name, "", 0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	CU_ASSERT_EQUAL_FATAL(truncate(path, IMG_SIZE), 0);
	return path;
}

/* FILE,spare=local (one disk per test at a time) */
static const char *spare_spec(const char *img)
{
	static char spec[512];

	snprintf(spec, sizeof(spec), "%s,spare=local", img);
	return spec;
}

static int pattern_verify(const char *img, int blocks, int pass)
{
	char cmd[512];
	int st;

	snprintf(cmd, sizeof(cmd), "%s verify %s --blocks %d --pass %d --rest-zero",
		 PV_BLKPATTERN_PATH, img, blocks, pass);
	printf("$ %s\n", cmd);
	fflush(stdout);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Occurrences of @what in the running VMM's log. */
static int log_count(const char *what)
{
	char path[256], *buf, *p;
	size_t len;
	int n = 0;

	snprintf(path, sizeof(path), "%s/vmm.err", tmpdir_path());
	buf = file_slurp(path, &len);
	for (p = buf; p && (p = strstr(p, what)); p += strlen(what))
		n++;
	free(buf);
	return n;
}

static int str_count(const char *s, const char *what)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* The number after "@key=" on the failover stats line, or -1. */
static long stat_num(const char *err, const char *key)
{
	const char *line = strstr(err, "disk0 failover:");
	char want[64];
	const char *p;

	if (!line)
		return -1;
	snprintf(want, sizeof(want), " %s=", key);
	p = strstr(line, want);
	return p ? strtol(p + strlen(want), NULL, 10) : -1;
}

/* ---- the driver processes: the active is the older child ---- */

/* Parent pid and start time (clock ticks) from /proc/@pid/stat. */
static int proc_stat(const char *pid, pid_t *ppid, unsigned long long *start)
{
	char path[300], buf[1024], *p;
	FILE *f;
	int field = 2;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	if (!p)
		return -1;
	for (p = strtok(p + 1, " "); p; p = strtok(NULL, " ")) {
		field++;
		if (field == 4)
			*ppid = strtol(p, NULL, 10);
		if (field == 22) {
			*start = strtoull(p, NULL, 10);
			return 0;
		}
	}
	return -1;
}

static bool proc_is_driver(const char *pid)
{
	char path[300], exe[512];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%s/exe", pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	return strstr(exe, DRIVER_NAME) && !strstr(exe, "(deleted)");
}

/* The drivers of @vmm, oldest (the active) first; how many. */
static int drivers(pid_t vmm, pid_t out[2])
{
	unsigned long long start[2] = { 0 }, st;
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t ppid;
	int n = 0;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
		    proc_stat(e->d_name, &ppid, &st) || ppid != vmm ||
		    !proc_is_driver(e->d_name) || n == 2)
			continue;
		out[n] = atoi(e->d_name);
		start[n++] = st;
	}
	if (d)
		closedir(d);
	if (n == 2 && (start[1] < start[0] ||
		       (start[1] == start[0] && out[1] < out[0]))) {
		pid_t t = out[0];

		out[0] = out[1];
		out[1] = t;
	}
	return n;
}

/* Wait until @n spares were seeded (the log says so) and both run. */
static bool wait_seeded(pid_t vmm, int n, pid_t pids[2])
{
	for (int t = 0; t < SEED_WAIT_MS / 20; t++) {
		if (log_count("seeded at input") >= n && drivers(vmm, pids) == 2)
			return true;
		sleep_ms(20);
	}
	return false;
}

static unsigned int seed_get(void)
{
	const char *env = getenv("PV_SEED");
	unsigned int seed = env ? (unsigned int)strtoul(env, NULL, 0) :
			    (unsigned int)time(NULL) ^ (unsigned int)getpid();

	printf("\nrandom seed %u (PV_SEED=%u repeats it)\n", seed, seed);
	srand(seed);
	return seed;
}

/* The guest ran every blkverify with no error and the image is right. */
static void check_clean(const struct vmm_result *r, const char *img,
			int runs)
{
	CU_ASSERT_FALSE(r->timed_out);
	CU_ASSERT_EQUAL(r->status, 0);
	CU_ASSERT_EQUAL(str_count(r->out, "PVTEST blkverify PASS blocks=2048"),
			runs);
	CU_ASSERT_PTR_NULL(strstr(r->out, "FAIL"));
	CU_ASSERT_PTR_NULL(strstr(r->out, "I/O error"));
	CU_ASSERT_PTR_NULL(strstr(r->err, "lost the driver"));
	CU_ASSERT_EQUAL(stat_num(r->err, "executed_twice"), 0);
	CU_ASSERT_EQUAL(stat_num(r->err, "divergences"), 0);
	CU_ASSERT_EQUAL(pattern_verify(img, 2048, 2), 0);
}

static void print_figures(const char *err)
{
	printf("failovers=%ld last_stall_us=%ld max_stall_us=%ld seed_pause_us=%ld seed_pause_max_us=%ld stale_generation=%ld\n",
	       stat_num(err, "failovers"), stat_num(err, "last_stall_us"),
	       stat_num(err, "max_stall_us"), stat_num(err, "seed_pause_us"),
	       stat_num(err, "seed_pause_max_us"),
	       stat_num(err, "stale_generation"));
}

#define RUNS_LONG	"pvtest=blkverify,blkverify,blkverify,blkverify," \
			"blkverify,blkverify,blkverify,blkverify,blkverify," \
			"blkverify,blkverify,blkverify count=2048"
#define RUNS_LONG_N	12

/* ---- kill -9 the active, several times ---- */

static void test_kill_active(void)
{
	char *img = img_new("kill9.img");
	struct vmm_result r;
	pid_t vmm, pids[2];
	struct args a;
	int kills = 0;

	seed_get();
	args_init(&a, RUNS_LONG);
	args_add(&a, "--disk", spare_spec(img));
	vmm = vmm_start(a.v, NULL);
	CU_ASSERT_FATAL(vmm > 0);
	CU_ASSERT(vmm_console_wait("PVTEST blkverify PASS", TIMEOUT_MS));
	for (int k = 0; k < KILLS; k++) {
		int delay = 50 + rand() % 400;

		if (!wait_seeded(vmm, k + 1, pids))
			break;
		sleep_ms(delay);
		if (drivers(vmm, pids) != 2)
			break;
		printf("kill -9 active %d (spare %d) after %d ms\n", pids[0],
		       pids[1], delay);
		CU_ASSERT_EQUAL(kill(pids[0], SIGKILL), 0);
		kills++;
	}
	CU_ASSERT_EQUAL(kills, KILLS);
	CU_ASSERT_EQUAL_FATAL(vmm_finish(&r, vmm, TIMEOUT_MS), 0);
	check_clean(&r, img, RUNS_LONG_N);
	CU_ASSERT_EQUAL(stat_num(r.err, "failovers"), kills);
	CU_ASSERT_EQUAL(stat_num(r.err, "generation"), kills + 1);
	print_figures(r.err);
	vmm_result_free(&r);
	free(img);
}

#define RUNS_SHORT	"pvtest=blkverify,blkverify,blkverify,blkverify," \
			"blkverify,blkverify count=2048"
#define RUNS_SHORT_N	6

/* Start a guest on a spare=local disk; wait for its first seeded spare. */
static pid_t start_pair(const char *img, const char *heartbeat,
			pid_t pids[2])
{
	struct args a;
	pid_t vmm;

	args_init(&a, RUNS_SHORT);
	args_add(&a, "--disk", spare_spec(img));
	if (heartbeat)
		args_add(&a, "--heartbeat", heartbeat);
	vmm = vmm_start(a.v, NULL);
	CU_ASSERT_FATAL(vmm > 0);
	CU_ASSERT(vmm_console_wait("PVTEST blkverify PASS", TIMEOUT_MS));
	CU_ASSERT(wait_seeded(vmm, 1, pids));
	sleep_ms(50 + rand() % 200);
	CU_ASSERT_EQUAL(drivers(vmm, pids), 2);
	return vmm;
}

/* ---- SIGSTOP the active: the heartbeat finds it hung ---- */

static void test_stop_active(void)
{
	char *img = img_new("stop.img");
	struct vmm_result r;
	pid_t vmm, pids[2];

	seed_get();
	vmm = start_pair(img, "100,500", pids);
	printf("SIGSTOP active %d (spare %d)\n", pids[0], pids[1]);
	CU_ASSERT_EQUAL(kill(pids[0], SIGSTOP), 0);
	CU_ASSERT_EQUAL_FATAL(vmm_finish(&r, vmm, TIMEOUT_MS), 0);
	check_clean(&r, img, RUNS_SHORT_N);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "no pong within the heartbeat limit; promoting"));
	CU_ASSERT_EQUAL(stat_num(r.err, "failovers"), 1);
	CU_ASSERT_EQUAL(stat_num(r.err, "generation"), 2);
	print_figures(r.err);
	vmm_result_free(&r);
	free(img);
}

/* ---- kill the spare: the active goes on, a new spare is seeded ---- */

static void test_kill_spare(void)
{
	char *img = img_new("spare.img");
	struct vmm_result r;
	pid_t vmm, pids[2];

	seed_get();
	vmm = start_pair(img, NULL, pids);
	printf("kill -9 spare %d (active %d)\n", pids[1], pids[0]);
	CU_ASSERT_EQUAL(kill(pids[1], SIGKILL), 0);
	CU_ASSERT(wait_seeded(vmm, 2, pids));
	CU_ASSERT_EQUAL_FATAL(vmm_finish(&r, vmm, TIMEOUT_MS), 0);
	check_clean(&r, img, RUNS_SHORT_N);
	CU_ASSERT_EQUAL(stat_num(r.err, "failovers"), 0);
	CU_ASSERT_EQUAL(stat_num(r.err, "generation"), 1);
	CU_ASSERT(stat_num(r.err, "seeds") >= 2);
	CU_ASSERT(stat_num(r.err, "spare_drops") >= 1);
	vmm_result_free(&r);
	free(img);
}

/* ---- kill both: I/O errors for the guest, not a hang ---- */

static void test_kill_both(void)
{
	char *img = img_new("both.img");
	struct vmm_result r;
	pid_t vmm, pids[2];

	seed_get();
	vmm = start_pair(img, NULL, pids);
	printf("kill -9 active %d and spare %d\n", pids[0], pids[1]);
	CU_ASSERT_EQUAL(kill(pids[0], SIGKILL), 0);
	CU_ASSERT_EQUAL(kill(pids[1], SIGKILL), 0);
	CU_ASSERT_EQUAL_FATAL(vmm_finish(&r, vmm, TIMEOUT_MS), 0);
	CU_ASSERT_FALSE(r.timed_out);
	CU_ASSERT_EQUAL(r.status, 1);	/* a workload failed */
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "I/O error status=1 (IOERR)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVGUEST done:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "lost the driver"));
	CU_ASSERT_EQUAL(stat_num(r.err, "executed_twice"), 0);
	vmm_result_free(&r);
	free(img);
}

static CU_TestInfo tests[] = {
	{ "kill -9 the active during blkverify, 3 times", test_kill_active },
	{ "SIGSTOP the active: heartbeat, promotion", test_stop_active },
	{ "kill -9 the spare: the active goes on, re-seeded",
	  test_kill_spare },
	{ "kill -9 active and spare: I/O errors, no hang", test_kill_both },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "failover", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
