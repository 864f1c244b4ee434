// SPDX-License-Identifier: GPL-2.0
/*
 * One local cluster per test program (cltest.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cltest.h"

static char cl_name[16];
static bool cl_made;

const char *cl_id(void)
{
	return cl_name;
}

static void cl_vcmd(char *cmd, size_t len, const char *fmt, va_list ap)
{
	int n = snprintf(cmd, len, "PV_CLUSTER=%s PV_BUILD=%s %s/scripts/cluster.sh ",
			 cl_name, PV_BUILD_DIR, PV_SOURCE_DIR);

	vsnprintf(cmd + n, len - n, fmt, ap);
}

static int cl_system(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int cl_run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	cl_vcmd(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return cl_system(cmd);
}

int cl_shell(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return cl_system(cmd);
}

char *cl_out(int *status, bool err, const char *fmt, ...)
{
	char cmd[1100], *buf = NULL;
	size_t len = 0, n;
	va_list ap;
	FILE *f;
	int st;

	va_start(ap, fmt);
	cl_vcmd(cmd, sizeof(cmd) - 8, fmt, ap);
	va_end(ap);
	if (err)
		strcat(cmd, " 2>&1");
	f = popen(cmd, "r");
	if (!f)
		return NULL;
	buf = malloc(1 << 16);
	if (buf)
		while ((n = fread(buf + len, 1, (1 << 16) - 1 - len, f)) > 0)
			len += n;
	st = pclose(f);
	if (buf)
		buf[len] = '\0';
	if (status)
		*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return buf;
}

int cl_ctl(const char *host, char **out, const char *fmt, ...)
{
	char args[768];
	va_list ap;
	char *o;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	o = cl_out(&st, true, "exec %s pairctl %s", host, args);
	if (out)
		*out = o;
	else
		free(o);
	return st;
}

int cl_signal_host(const char *host, int sig)
{
	char cmd[128];
	FILE *f;
	int pid, n = 0;

	snprintf(cmd, sizeof(cmd), "ip netns pids %s-%s", cl_name, host);
	f = popen(cmd, "r");
	while (f && fscanf(f, "%d", &pid) == 1)
		n += kill(pid, sig) == 0;
	if (f)
		pclose(f);
	return n;
}

uint64_t cl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

struct json_object *cl_status(const char *host)
{
	int st;
	char *out = cl_out(&st, false, "exec %s pairctl status --json 2>/dev/null",
			   host);
	struct json_object *o = out && !st ? json_tokener_parse(out) : NULL;

	free(out);
	return o;
}

struct json_object *cl_get(struct json_object *o, const char *path)
{
	char key[64];
	const char *p = path;

	while (o && *p) {
		size_t n = strcspn(p, ".");

		snprintf(key, sizeof(key), "%.*s", (int)n, p);
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, atoi(key));
		else if (!json_object_object_get_ex(o, key, &o))
			o = NULL;
		p += n + (p[n] == '.');
	}
	return o;
}

bool cl_bool(struct json_object *o, const char *path)
{
	return json_object_get_boolean(cl_get(o, path));
}

long long cl_int(struct json_object *o, const char *path)
{
	return json_object_get_int64(cl_get(o, path));
}

const char *cl_str(struct json_object *o, const char *path)
{
	const char *s = json_object_get_string(cl_get(o, path));

	return s ? s : "";
}

int cl_in_host(const char *host, int (*fn)(void *), void *arg)
{
	char path[64];
	pid_t pid;
	int st;

	snprintf(path, sizeof(path), "/run/netns/%s-%s", cl_name, host);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || setns(fd, CLONE_NEWNET))
			_exit(99);
		_exit(fn(arg));
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Clusters of test programs that are gone (killed by a timeout). */
static void cl_sweep(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	DIR *d = opendir(tmp);
	struct dirent *e;
	char cmd[512];
	int pid;

	while (d && (e = readdir(d))) {
		if (sscanf(e->d_name, "pairvisor-cluster-pvt%d", &pid) != 1 ||
		    !kill(pid, 0) || errno != ESRCH)
			continue;
		snprintf(cmd, sizeof(cmd), "PV_CLUSTER=pvt%d %s/scripts/cluster.sh down",
			 pid, PV_SOURCE_DIR);
		if (system(cmd))
			fprintf(stderr, "cltest: could not remove cluster pvt%d\n",
				pid);
	}
	if (d)
		closedir(d);
}

void cl_down(void)
{
	if (!cl_made)
		return;
	cl_made = false;
	if (getenv("PV_CLUSTER_KEEP")) {	/* a developer's post-mortem */
		fprintf(stderr, "cltest: cluster %s left up (PV_CLUSTER_KEEP)\n",
			cl_name);
		return;
	}
	cl_run("down");
}

static void cl_on_signal(int sig)
{
	cl_down();
	signal(sig, SIG_DFL);
	raise(sig);
}

int cl_up(const char *args)
{
	snprintf(cl_name, sizeof(cl_name), "pvt%d", (int)getpid());
	cl_sweep();
	atexit(cl_down);
	signal(SIGTERM, cl_on_signal);
	signal(SIGINT, cl_on_signal);
	signal(SIGHUP, cl_on_signal);
	cl_made = true;
	return cl_run("up %s", args ? args : "") ? -1 : 0;
}
