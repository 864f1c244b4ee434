// SPDX-License-Identifier: GPL-2.0
/*
 * Child processes on the daemon's loop (job.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job.h"

struct pv_job {
	qb_loop_t *loop;
	pid_t pid;
	int pidfd, outfd;		/* -1: closed */
	bool timed_out;
	qb_loop_timer_handle timeout;
	pv_job_done_fn *done;
	void *arg;
	size_t len, max;
	char out[];			/* max + 1 */
};

static void job_close_output(struct pv_job *j)
{
	if (j->outfd < 0)
		return;
	qb_loop_poll_del(j->loop, j->outfd);
	close(j->outfd);
	j->outfd = -1;
}

/* The child and its session (before its setsid(), only the child). */
static void job_kill(struct pv_job *j)
{
	kill(-j->pid, SIGKILL);
	kill(j->pid, SIGKILL);
}

static void job_free(struct pv_job *j)
{
	if (j->timeout)
		qb_loop_timer_del(j->loop, j->timeout);
	job_close_output(j);
	if (j->pidfd >= 0) {
		qb_loop_poll_del(j->loop, j->pidfd);
		close(j->pidfd);
	}
	free(j);
}

/* Read what the child wrote: > 0 while more may come at once. */
static ssize_t job_read(struct pv_job *j)
{
	size_t room = j->max - j->len;
	char sink[512];
	ssize_t n;

	if (room)
		n = read(j->outfd, j->out + j->len, room);
	else
		n = read(j->outfd, sink, sizeof(sink));	/* dropped */
	if (n > 0 && room)
		j->len += n;
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0)
		job_close_output(j);
	return n;
}

static int32_t job_on_output(int32_t fd, int32_t revents, void *data)
{
	(void)fd;
	(void)revents;
	job_read(data);
	return 0;
}

static int32_t job_on_exit(int32_t fd, int32_t revents, void *data)
{
	struct pv_job *j = data;
	int st = 0, status;

	(void)fd;
	(void)revents;
	if (waitpid(j->pid, &st, WNOHANG) != j->pid)
		return 0;
	while (j->outfd >= 0 && job_read(j) > 0)
		;		/* what it wrote last */
	j->out[j->len] = '\0';
	status = j->timed_out ? -ETIMEDOUT :
		 WIFEXITED(st) ? WEXITSTATUS(st) : -EINTR;
	j->done(j->arg, status, j->out, j->len);
	job_free(j);
	return 0;
}

static void job_on_timeout(void *data)
{
	struct pv_job *j = data;

	j->timed_out = true;
	j->timeout = 0;
	job_kill(j);	/* its session: whatever it started too */
}

static void job_child(pv_job_child_fn *child, void *carg, int out)
{
	int in = open("/dev/null", O_RDONLY);

	dup2(in, 0);
	dup2(out, 1);
	dup2(out, 2);
	syscall(SYS_close_range, 3, ~0U, 0);	/* nothing of the daemon's */
	setsid();
	signal(SIGPIPE, SIG_DFL);
	child(carg);
	_exit(127);
}

static int job_spawn(struct pv_job *j, pv_job_child_fn *child, void *carg)
{
	int out[2];

	if (pipe2(out, O_CLOEXEC))
		return -errno;
	j->pid = fork();
	if (!j->pid)
		job_child(child, carg, out[1]);
	close(out[1]);
	if (j->pid < 0) {
		close(out[0]);
		return -errno;
	}
	j->outfd = out[0];
	fcntl(j->outfd, F_SETFL, O_NONBLOCK);
	return 0;
}

int pv_job_start(qb_loop_t *loop, pv_job_child_fn *child, void *carg,
		 unsigned int timeout_ms, size_t out_max, pv_job_done_fn *done,
		 void *arg, struct pv_job **out)
{
	struct pv_job *j = calloc(1, sizeof(*j) + out_max + 1);
	int err;

	if (!j)
		return -ENOMEM;
	j->loop = loop;
	j->pidfd = j->outfd = -1;
	j->done = done;
	j->arg = arg;
	j->max = out_max;
	err = job_spawn(j, child, carg);
	if (err)
		goto fail;
	j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
	err = j->pidfd < 0 ? -errno : 0;
	if (!err)
		err = qb_loop_poll_add(loop, QB_LOOP_MED, j->outfd, POLLIN, j,
				       job_on_output);
	if (!err)
		err = qb_loop_poll_add(loop, QB_LOOP_MED, j->pidfd, POLLIN, j,
				       job_on_exit);
	if (!err)
		err = qb_loop_timer_add(loop, QB_LOOP_MED,
					timeout_ms * 1000000ULL, j,
					job_on_timeout, &j->timeout);
	if (err)
		goto fail;
	if (out)
		*out = j;
	return 0;
fail:
	if (j->pid > 0) {
		job_kill(j);
		waitpid(j->pid, NULL, 0);
	}
	job_free(j);
	return err;
}

void pv_job_quiet(void)
{
	int fd = open("/dev/null", O_WRONLY);

	if (fd >= 0)
		dup2(fd, 2);
}

void pv_job_exit_errno(int err)
{
	_exit(err < 0 ? -err : 0);
}

int pv_job_errno(int status)
{
	return status > 0 ? -status : status;
}

void pv_job_cancel(struct pv_job *j)
{
	if (!j)
		return;
	job_kill(j);
	waitpid(j->pid, NULL, 0);
	job_free(j);
}
