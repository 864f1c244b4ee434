// SPDX-License-Identifier: GPL-2.0
/*
 * libqb IPC services on a qb_loop (ipcs_loop.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qb/qbdefs.h>

#include "ipcs_loop.h"

/* The loop IPC services of this process run on (see ipcs_loop.h). */
static qb_loop_t *ipcs_loop;

static int32_t ipcs_job_add(enum qb_loop_priority p, void *data,
			    qb_loop_job_dispatch_fn fn)
{
	return qb_loop_job_add(ipcs_loop, p, data, fn);
}

static int32_t ipcs_dispatch_add(enum qb_loop_priority p, int32_t fd,
				 int32_t evts, void *data,
				 qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_add(ipcs_loop, p, fd, evts, data, fn);
}

static int32_t ipcs_dispatch_mod(enum qb_loop_priority p, int32_t fd,
				 int32_t evts, void *data,
				 qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_mod(ipcs_loop, p, fd, evts, data, fn);
}

static int32_t ipcs_dispatch_del(int32_t fd)
{
	return qb_loop_poll_del(ipcs_loop, fd);
}

int pv_ipcs_run(qb_ipcs_service_t *svc, qb_loop_t *loop)
{
	static struct qb_ipcs_poll_handlers poll = {
		.job_add = ipcs_job_add,
		.dispatch_add = ipcs_dispatch_add,
		.dispatch_mod = ipcs_dispatch_mod,
		.dispatch_del = ipcs_dispatch_del,
	};
	int err;

	if (ipcs_loop && ipcs_loop != loop) {
		qb_ipcs_destroy(svc);
		return -EBUSY;
	}
	ipcs_loop = loop;
	qb_ipcs_poll_handlers_set(svc, &poll);
	err = qb_ipcs_run(svc);
	return err;
}

void pv_ipcs_unbind(void)
{
	ipcs_loop = NULL;
}

/* Does process @pid hold group @gid among its supplementary groups? */
static bool ipcs_holds_group(pid_t pid, gid_t gid)
{
	char path[64], line[1024];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	while (f && !found && fgets(line, sizeof(line), f)) {
		char *p = line + 7, *end;

		if (strncmp(line, "Groups:", 7))
			continue;
		for (;;) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if (g == gid)
				found = true;
			p = end;
		}
		break;
	}
	if (f)
		fclose(f);
	return found;
}

bool pv_peer_permitted(pid_t pid, uid_t uid, gid_t gid, long group)
{
	if (uid == 0 || uid == geteuid())
		return true;
	if (group < 0)
		return false;
	return gid == (gid_t)group || ipcs_holds_group(pid, (gid_t)group);
}

bool pv_ipcs_permitted(qb_ipcs_connection_t *c, uid_t uid, gid_t gid,
		       long group)
{
	struct qb_ipcs_connection_stats st;

	qb_ipcs_connection_stats_get(c, &st, QB_FALSE);
	return pv_peer_permitted(st.client_pid, uid, gid, group);
}
