/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The cluster tests' hold on one local cluster (scripts/cluster.sh),
 * made once per test program and always taken down: at exit, on SIGTERM
 * or SIGINT, and, for one a killed test program left, by the next run.
 */
#ifndef PV_CLTEST_H
#define PV_CLTEST_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

/* Bring the cluster up (cluster.sh up, extra @args); 0 or -1. */
int cl_up(const char *args);
void cl_down(void);
/* The cluster's name (PV_CLUSTER), e.g. for its namespaces. */
const char *cl_id(void);

/* Run cluster.sh with these arguments; its exit status. */
int cl_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A shell command of the test's own (on this machine): its exit status. */
int cl_shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same as cl_run, its standard output (and error, with @err) captured. */
char *cl_out(int *status, bool err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* pairctl ARGS on @host: its exit status, its output (and errors) in
 * *@out (to free) when @out is not NULL. */
int cl_ctl(const char *host, char **out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Send @sig to every process of @host (its corosync, pairvisord, VMMs,
 * clients): how many got it (one that ended meanwhile is no error).
 */
int cl_signal_host(const char *host, int sig);
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t cl_now_ms(void);
/* pairctl status --json on @host, parsed; NULL when it failed. */
struct json_object *cl_status(const char *host);
/* Member @path ("quorum.quorate", "hosts.1.daemon") of @o. */
struct json_object *cl_get(struct json_object *o, const char *path);
bool cl_bool(struct json_object *o, const char *path);
long long cl_int(struct json_object *o, const char *path);
const char *cl_str(struct json_object *o, const char *path);

/*
 * Run @fn in a child inside @host's network namespace (its libqb IPC
 * and Corosync are there); the child's exit status, -1 if it died.
 */
int cl_in_host(const char *host, int (*fn)(void *), void *arg);

#endif
