// SPDX-License-Identifier: GPL-2.0
/*
 * A fence agent run through the fence-agents stdin protocol (fence.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qb/qblog.h>

#include "fence.h"
#include "job.h"

/* Where Debian's fence-agents live, for an agent named without a path. */
#define FENCE_PATH	"/usr/sbin:/sbin:/usr/bin:/bin"

struct pv_fence {
	qb_loop_t *loop;
	const struct pv_config *cfg;
	struct pv_job *job;		/* the running agent, NULL: none */
	const char *action;
	pv_fence_done_fn *done;
	void *arg;
	qb_loop_timer_handle monitor;
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

/*
 * The child: the action and parameters, one key=value per line, on the
 * agent's standard input (a few hundred bytes: the pipe holds them).
 */
static void fence_exec(void *carg)
{
	const struct pv_fence *f = carg;
	const struct pv_config *c = f->cfg;
	int in[2];
	FILE *w;

	if (pipe(in) || !(w = fdopen(in[1], "w")))
		_exit(126);
	fprintf(w, "action=%s\n", f->action);
	for (size_t i = 0; i < c->nr_params; i++)
		fprintf(w, "%s=%s\n", c->params[i].key, c->params[i].value);
	if (fclose(w))
		_exit(126);
	dup2(in[0], 0);
	close(in[0]);
	setenv("PATH", FENCE_PATH, 1);
	execlp(c->fence_agent, c->fence_agent, (char *)NULL);
	fprintf(stderr, "cannot run %s: %s\n", c->fence_agent, strerror(errno));
	_exit(127);
}

static void fence_finish(void *arg, int status, const char *out, size_t len)
{
	struct pv_fence *f = arg;
	pv_fence_done_fn *done = f->done;
	const char *action = f->action;
	char *o = (char *)out;

	f->job = NULL;
	/* its last line says most: the whole output goes to the log */
	while (len && o[len - 1] == '\n')
		o[--len] = '\0';
	if (status == -ETIMEDOUT)
		f->st.timeouts++;
	if (status)
		f->st.failures++;
	else if (!strcmp(action, "off"))
		f->st.fencings++;
	qb_log(status ? LOG_WARNING : LOG_INFO, "fence: %s %s: %s%s%s",
	       f->cfg->fence_agent, action,
	       status == -ETIMEDOUT ? "timed out" : status ? "failed" : "done",
	       len ? ": " : "", o);
	if (done)
		done(f->arg, action, status, o);
}

int pv_fence_run(struct pv_fence *f, const char *action,
		 pv_fence_done_fn *done, void *arg)
{
	int err;

	if (!f->cfg->fence_agent)
		return -ENOENT;
	if (f->job)
		return -EBUSY;
	f->action = action;
	f->done = done;
	f->arg = arg;
	f->st.runs++;
	err = pv_job_start(f->loop, fence_exec, f, f->cfg->fence_timeout_ms,
			   PV_FENCE_OUT_MAX - 1, fence_finish, f, &f->job);
	if (err) {
		f->st.failures++;
		qb_log(LOG_WARNING, "fence: %s %s: cannot run it: %s",
		       f->cfg->fence_agent, action, strerror(-err));
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

	if (!f->job)
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
	pv_job_cancel(f->job);
	free(f);
}

bool pv_fence_busy(const struct pv_fence *f)
{
	return f->job != NULL;
}

const struct pv_fence_stats *pv_fence_stats(const struct pv_fence *f)
{
	return &f->st;
}
