/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A job: work the daemon must not wait for (a fence agent, a question to
 * a VMM that may hang), run in a child process off the libqb loop. The
 * child writes its answer to standard output (a pipe the loop reads, up
 * to a bound); its end is seen through a pidfd; past its timeout it is
 * killed with its whole session. The loop is never blocked, and a child
 * that hangs costs one process until its timeout, never the daemon.
 */
#ifndef PV_CLUSTER_JOB_H
#define PV_CLUSTER_JOB_H

#include <stddef.h>
#include <sys/types.h>

#include <qb/qbloop.h>

struct pv_job;

/*
 * Runs in the child, in a session of its own: standard output and error
 * are the pipe, standard input /dev/null, no other descriptor of the
 * daemon is open. It must not return: exec, or _exit() with a status.
 */
typedef void pv_job_child_fn(void *carg);

/*
 * The job ended: @status is the child's exit status, -ETIMEDOUT (it was
 * killed at its timeout), -EINTR (a signal ended it) or -errno (it could
 * not be watched); @out its output, NUL-terminated, @len bytes (what came
 * past the bound is dropped).
 */
typedef void pv_job_done_fn(void *arg, int status, const char *out,
			    size_t len);

/*
 * In the child: standard error to /dev/null, for a child whose output is
 * data (a library's log line must not mix into it).
 */
void pv_job_quiet(void);
/* In the child: end with @err (0 or -errno) as its exit status. */
void pv_job_exit_errno(int err) __attribute__((noreturn));
/* A @status (pv_job_done_fn) of such a child as 0 or -errno. */
int pv_job_errno(int status);

/* Start @child; @done once, after which the job is freed. */
int pv_job_start(qb_loop_t *loop, pv_job_child_fn *child, void *carg,
		 unsigned int timeout_ms, size_t out_max, pv_job_done_fn *done,
		 void *arg, struct pv_job **out);
/* Kill and reap it now; @done is not called. */
void pv_job_cancel(struct pv_job *j);

#endif
