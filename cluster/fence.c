// SPDX-License-Identifier: GPL-2.0
/*
 * A fence agent run through the fence-agents stdin protocol (fence.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <qb/qblog.h>

#include "fence.h"

/* Where Debian's fence-agents live, for an agent named without a path. */
#define FENCE_PATH	"/usr/sbin:/sbin:/usr/bin:/bin"

struct pv_fence {
	qb_loop_t *loop;
	const struct pv_config *cfg;
	pid_t pid;			/* the running agent, 0: none */
	int pidfd, outfd;		/* -1: none */
	const char *action;
	pv_fence_done_fn *done;
	void *arg;
	char out[PV_FENCE_OUT_MAX];
	size_t outlen;
	bool timed_out;
	qb_loop_timer_handle timeout, monitor;
	struct pv_fence_stats st;
};

static void fence_monitor(void *data);

const char *pv_fence_state_name(enum pv_fence_state s)
{
	static const char *const names[] = {
		[PV_FENCE_NONE] = "none",
		[PV_FENCE_UNCHECKED] = "unchecked",
		[PV_FENCE_OK] = "ok",
		[PV_FENCE_FAILED] = "failed",
	};

	return s <= PV_FENCE_FAILED ? names[s] : "?";
}

/* The child: stdin from @in, stdout and stderr to @out, the agent. */
static void fence_exec(const struct pv_config *c, int in, int out)
{
	dup2(in, 0);
	dup2(out, 1);
	dup2(out, 2);
	syscall(SYS_close_range, 3, ~0U, 0);	/* nothing of the daemon's */
	setsid();
	signal(SIGPIPE, SIG_DFL);
	setenv("PATH", FENCE_PATH, 1);
	execlp(c->fence_agent, c->fence_agent, (char *)NULL);
	fprintf(stderr, "cannot run %s: %s\n", c->fence_agent, strerror(errno));
	_exit(127);
}

/* The action and parameters, one key=value per line. */
static int fence_input(const struct pv_fence *f, const char *action, int fd)
{
	const struct pv_config *c = f->cfg;
	FILE *w = fdopen(fd, "w");

	if (!w) {
		close(fd);
		return -errno;
	}
	fprintf(w, "action=%s\n", action);
	for (size_t i = 0; i < c->nr_params; i++)
		fprintf(w, "%s=%s\n", c->params[i].key, c->params[i].value);
	return fclose(w) ? -errno : 0;
}

static void fence_finish(struct pv_fence *f, int status)
{
	pv_fence_done_fn *done = f->done;
	const char *action = f->action;

	qb_loop_timer_del(f->loop, f->timeout);
	if (f->outfd >= 0) {
		qb_loop_poll_del(f->loop, f->outfd);
		close(f->outfd);
	}
	if (f->pidfd >= 0) {
		qb_loop_poll_del(f->loop, f->pidfd);
		close(f->pidfd);
	}
	f->outfd = f->pidfd = -1;
	f->pid = 0;
	f->out[f->outlen] = '\0';
	/* its last line says most: the whole output goes to the log */
	while (f->outlen && f->out[f->outlen - 1] == '\n')
		f->out[--f->outlen] = '\0';
	if (status)
		f->st.failures++;
	else if (!strcmp(action, "off"))
		f->st.fencings++;
	qb_log(status ? LOG_WARNING : LOG_INFO, "fence: %s %s: %s%s%s",
	       f->cfg->fence_agent, action,
	       status == -ETIMEDOUT ? "timed out" : status ? "failed" : "done",
	       f->outlen ? ": " : "", f->out);
	if (done)
		done(f->arg, action, status, f->out);
}

/* Read what the agent wrote: > 0 while more may come at once. */
static ssize_t fence_read(struct pv_fence *f)
{
	size_t room = sizeof(f->out) - 1 - f->outlen;
	char sink[512];
	ssize_t n;

	if (room)
		n = read(f->outfd, f->out + f->outlen, room);
	else
		n = read(f->outfd, sink, sizeof(sink));	/* dropped */
	if (n > 0 && room)
		f->outlen += n;
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0) {
		qb_loop_poll_del(f->loop, f->outfd);
		close(f->outfd);
		f->outfd = -1;
	}
	return n;
}

static int32_t fence_on_output(int32_t fd, int32_t revents, void *data)
{
	(void)fd;
	(void)revents;
	fence_read(data);
	return 0;
}

static int32_t fence_on_exit(int32_t fd, int32_t revents, void *data)
{
	struct pv_fence *f = data;
	int st = 0;

	(void)fd;
	(void)revents;
	if (waitpid(f->pid, &st, WNOHANG) != f->pid)
		return 0;
	while (f->outfd >= 0 && fence_read(f) > 0)
		;		/* what it wrote last */
	fence_finish(f, f->timed_out ? -ETIMEDOUT :
		     WIFEXITED(st) ? WEXITSTATUS(st) : -EINTR);
	return 0;
}

static void fence_on_timeout(void *data)
{
	struct pv_fence *f = data;

	f->timed_out = true;
	f->st.timeouts++;
	kill(-f->pid, SIGKILL);	/* its session: whatever it started too */
}

static int fence_spawn(struct pv_fence *f, const char *action)
{
	int in[2], out[2];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC))
		return -errno;
	if (pipe2(out, O_CLOEXEC)) {
		close(in[0]);
		close(in[1]);
		return -errno;
	}
	pid = fork();
	if (!pid)
		fence_exec(f->cfg, in[0], out[1]);
	close(in[0]);
	close(out[1]);
	if (pid < 0) {
		close(in[1]);
		close(out[0]);
		return -errno;
	}
	f->pid = pid;
	f->outfd = out[0];
	fcntl(f->outfd, F_SETFL, O_NONBLOCK);
	/* a few hundred bytes: the pipe takes them without blocking */
	return fence_input(f, action, in[1]);
}

int pv_fence_run(struct pv_fence *f, const char *action,
		 pv_fence_done_fn *done, void *arg)
{
	int err;

	if (!f->cfg->fence_agent)
		return -ENOENT;
	if (f->pid)
		return -EBUSY;
	f->action = action;
	f->done = done;
	f->arg = arg;
	f->outlen = 0;
	f->timed_out = false;
	f->st.runs++;
	err = fence_spawn(f, action);
	if (!err) {
		f->pidfd = (int)syscall(SYS_pidfd_open, f->pid, 0);
		if (f->pidfd < 0)
			err = -errno;
	}
	if (!err)
		err = qb_loop_poll_add(f->loop, QB_LOOP_MED, f->outfd, POLLIN,
				       f, fence_on_output);
	if (!err)
		err = qb_loop_poll_add(f->loop, QB_LOOP_MED, f->pidfd, POLLIN,
				       f, fence_on_exit);
	if (!err)
		err = qb_loop_timer_add(f->loop, QB_LOOP_MED,
					f->cfg->fence_timeout_ms * 1000000ULL,
					f, fence_on_timeout, &f->timeout);
	if (err && f->pid) {
		kill(-f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
		f->done = NULL;
		fence_finish(f, err);
	}
	return err;
}

/* An agent's last line says why (Python agents warn first). */
static const char *fence_last_line(const char *out)
{
	const char *nl = strrchr(out, '\n');

	return nl ? nl + 1 : out;
}

static void fence_monitored(void *arg, const char *action, int status,
			    const char *output)
{
	struct pv_fence *f = arg;

	(void)action;
	output = fence_last_line(output);
	f->st.checked_at = time(NULL);
	if (status && f->st.state != PV_FENCE_FAILED)
		qb_log(LOG_ERR, "fence: %s cannot fence host %s: its monitor failed (%s)",
		       f->cfg->fence_agent, f->cfg->peer, output);
	else if (!status && f->st.state == PV_FENCE_FAILED)
		qb_log(LOG_NOTICE, "fence: %s works again", f->cfg->fence_agent);
	f->st.state = status ? PV_FENCE_FAILED : PV_FENCE_OK;
	snprintf(f->st.detail, sizeof(f->st.detail), "%s",
		 status ? output : "");
}

static void fence_monitor(void *data)
{
	struct pv_fence *f = data;

	if (!f->pid)
		pv_fence_run(f, "monitor", fence_monitored, f);
	qb_loop_timer_add(f->loop, QB_LOOP_LOW,
			  PV_FENCE_MONITOR_MS * 1000000ULL, f, fence_monitor,
			  &f->monitor);
}

int pv_fence_create(qb_loop_t *loop, const struct pv_config *c,
		    struct pv_fence **out)
{
	struct pv_fence *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->loop = loop;
	f->cfg = c;
	f->pidfd = f->outfd = -1;
	f->st.state = c->fence_agent ? PV_FENCE_UNCHECKED : PV_FENCE_NONE;
	*out = f;
	if (c->fence_agent)
		fence_monitor(f);
	return 0;
}

void pv_fence_destroy(struct pv_fence *f)
{
	if (!f)
		return;
	qb_loop_timer_del(f->loop, f->monitor);
	if (f->pid) {
		kill(-f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
		f->done = NULL;
		fence_finish(f, -ECANCELED);
	}
	free(f);
}

bool pv_fence_busy(const struct pv_fence *f)
{
	return f->pid != 0;
}

const struct pv_fence_stats *pv_fence_stats(const struct pv_fence *f)
{
	return &f->st;
}
