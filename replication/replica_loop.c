// SPDX-License-Identifier: GPL-2.0
/*
 * A replica driven by a libqb loop (replica_loop.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>

#include "replica_loop.h"
#include "transport.h"

struct replica_loop {
	struct replica *r;
	qb_loop_t *loop;
	replica_ended_fn *ended;
	void *arg;
	int fd;			/* watched, -1: not */
	short events;
	bool ended_called;
	bool job_queued;	/* rl_again() waits in the loop */
	qb_loop_timer_handle tick;
};

static void rl_unwatch(struct replica_loop *rl)
{
	if (rl->fd >= 0)
		qb_loop_poll_del(rl->loop, rl->fd);
	rl->fd = -1;
	qb_loop_timer_del(rl->loop, rl->tick);
}

static void rl_end(struct replica_loop *rl, int err)
{
	rl_unwatch(rl);
	if (!rl->ended_called) {
		rl->ended_called = true;
		rl->ended(rl->arg, err);
	}
}

static void rl_tick(void *data);
static void rl_again(void *data);
static int32_t rl_on_fd(int32_t fd, int32_t revents, void *data);

/* Watch for what the replica wants now; a tick while not ready. */
static void rl_rewatch(struct replica_loop *rl)
{
	struct pv_chan *ch = replica_chan(rl->r);
	short ev = replica_events(rl->r);

	if (ev != rl->events) {
		qb_loop_poll_mod(rl->loop, QB_LOOP_MED, rl->fd, ev, rl,
				 rl_on_fd);
		rl->events = ev;
	}
	if (!pv_chan_ready(ch) && !qb_loop_timer_is_running(rl->loop, rl->tick))
		qb_loop_timer_add(rl->loop, QB_LOOP_MED,
				  REPLICA_TICK_MS * 1000000ULL, rl, rl_tick,
				  &rl->tick);
	if (replica_buffered(rl->r) && !rl->job_queued &&
	    !qb_loop_job_add(rl->loop, QB_LOOP_MED, rl, rl_again))
		rl->job_queued = true;
}

static void rl_run(struct replica_loop *rl, bool writable)
{
	int err;

	if (rl->fd < 0)
		return;
	if (writable || pv_chan_pending(replica_chan(rl->r)))
		replica_flush(rl->r);
	err = replica_step(rl->r);
	if (err) {
		rl_end(rl, err == REPLICA_HANGUP ? 0 : err);
		return;
	}
	rl_rewatch(rl);
}

static int32_t rl_on_fd(int32_t fd, int32_t revents, void *data)
{
	(void)fd;
	rl_run(data, revents & POLLOUT);
	return 0;
}

static void rl_tick(void *data)
{
	rl_run(data, false);
}

static void rl_again(void *data)
{
	struct replica_loop *rl = data;

	rl->job_queued = false;
	rl_run(rl, false);
}

int replica_loop_attach(struct replica *r, qb_loop_t *loop,
			replica_ended_fn *ended, void *arg,
			struct replica_loop **out)
{
	struct replica_loop *rl = calloc(1, sizeof(*rl));
	int err;

	if (!rl)
		return -ENOMEM;
	rl->r = r;
	rl->loop = loop;
	rl->ended = ended;
	rl->arg = arg;
	rl->fd = pv_chan_fd(replica_chan(r));
	rl->events = replica_events(r);
	err = qb_loop_poll_add(loop, QB_LOOP_MED, rl->fd, rl->events, rl,
			       rl_on_fd);
	if (err) {
		free(rl);
		return err;
	}
	rl_rewatch(rl);
	*out = rl;
	return 0;
}

void replica_loop_detach(struct replica_loop *rl)
{
	if (!rl)
		return;
	rl_unwatch(rl);
	if (rl->job_queued)
		qb_loop_job_del(rl->loop, QB_LOOP_MED, rl, rl_again);
	free(rl);
}
