// SPDX-License-Identifier: GPL-2.0
/*
 * libqb IPC services on a qb_loop (ipcs_loop.h).
 */
#include <errno.h>

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
