/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fencing through a fence agent (DESIGN.md section 7), by the standard
 * fence-agents protocol: the agent (e.g. Debian's fence_ipmilan) is run
 * with no arguments and reads key=value lines on its standard input:
 * action=off|on|status|monitor|reboot, then the parameters of
 * pairvisor.conf's fence.params (ip, username, password, plug, ...).
 * Exit status 0 means done (for off: the peer is fenced). The agent runs
 * in its own session, is killed when it outlives fence.timeout_ms, and
 * its output (bounded) is kept for the log and pairctl status.
 *
 * The daemon's loop is never blocked: one action runs at a time, its end
 * is seen through a pidfd and its output through a pipe on the loop.
 * `monitor` runs at start and then every PV_FENCE_MONITOR_MS.
 */
#ifndef PV_CLUSTER_FENCE_H
#define PV_CLUSTER_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#include <qb/qbloop.h>

#include "config.h"

#define PV_FENCE_MONITOR_MS	60000
#define PV_FENCE_OUT_MAX	1024	/* an agent's output kept */

struct pv_fence;

enum pv_fence_state {
	PV_FENCE_NONE,		/* no agent configured */
	PV_FENCE_UNCHECKED,	/* its monitor has not answered yet */
	PV_FENCE_OK,		/* the last monitor succeeded */
	PV_FENCE_FAILED,	/* ... failed */
};

/* An action ended: @status is the agent's exit status, or -errno. */
typedef void pv_fence_done_fn(void *arg, const char *action, int status,
			      const char *output);

struct pv_fence_stats {
	enum pv_fence_state state;
	char detail[PV_FENCE_OUT_MAX];	/* the failed monitor's words */
	int64_t checked_at;		/* unix seconds of the last monitor */
	uint64_t runs, fencings, failures, timeouts;
};

/* Monitors at once when an agent is configured. */
int pv_fence_create(qb_loop_t *loop, const struct pv_config *c,
		    struct pv_fence **out);
void pv_fence_destroy(struct pv_fence *f);
/*
 * Run @action (off, on, status, monitor) now; @done when it ended.
 * -EBUSY while another action runs, -ENOENT without an agent.
 */
int pv_fence_run(struct pv_fence *f, const char *action,
		 pv_fence_done_fn *done, void *arg);
bool pv_fence_busy(const struct pv_fence *f);
const struct pv_fence_stats *pv_fence_stats(const struct pv_fence *f);
const char *pv_fence_state_name(enum pv_fence_state s);

#endif
