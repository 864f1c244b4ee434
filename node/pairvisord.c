// SPDX-License-Identifier: GPL-2.0
/*
 * pairvisord: the cluster daemon, one per host (pairvisord.h). Reads
 * pairvisor.conf, follows Corosync's membership and quorum as a member
 * of the CPG group "pairvisor", and serves pairctl over libqb IPC. Runs
 * in the foreground (systemd's Type=simple), logs to standard error.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qb/qblog.h>

#include "cluster.pb-c.h"

#include "pairvisord.h"
#include "pvlog.h"
#include "replica.h"

static const char pvd_usage[] =
"Usage: pairvisord [--config FILE] [--log-level LEVEL] [--check-config]\n"
"The pairvisor cluster daemon, one per host: follows Corosync's\n"
"membership and quorum and serves pairctl.\n"
"  -c, --config FILE    default " PV_CONF_PATH "\n"
"  --log-level LEVEL    " PV_LOG_NAMES "\n"
"                       (default: $" PV_LOG_ENV ", else notice)\n"
"  --check-config       read and check the configuration, then exit:\n"
"                       0 when it is good, 1 with the line and reason\n"
"Exit status: 0 after SIGTERM or SIGINT, 1 on a start-up error, 2 on a\n"
"usage error.\n";

/* Tell the group who we are and what our manager holds. */
void pvd_announce(struct pvd *d)
{
	Pvcl__Announce a = PVCL__ANNOUNCE__INIT;
	Pvcl__CpgMessage m = PVCL__CPG_MESSAGE__INIT;
	uint8_t buf[1024];
	size_t n;

	if (!d->memb || !pv_memb_connected(d->memb))
		return;
	pv_hosts_announce(&d->hosts, &a);
	if (d->mgr)
		pv_mgr_host_announce(d->mgr, &a);
	m.msg_case = PVCL__CPG_MESSAGE__MSG_ANNOUNCE;
	m.announce = &a;
	n = pvcl__cpg_message__get_packed_size(&m);
	if (n > sizeof(buf) || pv_memb_send(d->memb, buf,
					    pvcl__cpg_message__pack(&m, buf)))
		qb_log(LOG_WARNING, "cpg: could not announce this host");
}

static void pvd_mgr_announce(void *arg)
{
	pvd_announce(arg);
}

static void pvd_changed(void *arg)
{
	struct pvd *d = arg;
	struct pv_memb_daemon ds[PV_MEMB_MAX];
	size_t n = pv_memb_daemons(d->memb, ds, PV_MEMB_MAX);

	pv_hosts_local(&d->hosts, pv_memb_local_nodeid(d->memb), getpid());
	if (!pv_memb_connected(d->memb)) {
		d->announced = 0;
		return;
	}
	if (n != d->announced) {
		d->announced = n;
		pvd_announce(d);
	}
	if (d->mgr)
		pv_mgr_host_changed(d->mgr);
}

static void pvd_left(void *arg, uint32_t nodeid, uint32_t pid, int reason)
{
	struct pvd *d = arg;
	struct pv_host *h = pv_hosts_by_node(&d->hosts, nodeid);

	if (h && !h->local && h->pid == pid)
		qb_log(LOG_WARNING, "host %s: its pairvisord is gone (%s)",
		       h->name, reason == PV_MEMB_NODEDOWN ?
		       "the host left the membership" : "the process went");
	if (h && !h->local && h->pid == pid) {
		pvd_drivers_left(d, nodeid);
		pvd_switch_left(d);
	}
	pv_hosts_left(&d->hosts, nodeid, pid);
	d->announced = 0;	/* re-announce at the next change */
	if (d->mgr)
		pv_mgr_host_left(d->mgr, nodeid, reason);
}

static void pvd_deliver(void *arg, uint32_t nodeid, uint32_t pid,
			const void *msg, size_t len)
{
	struct pvd *d = arg;
	Pvcl__CpgMessage *m;

	if (pv_hosts_deliver(&d->hosts, nodeid, pid, msg, len, &m))
		return;
	if (pvd_drivers_deliver(d, nodeid, m) ||
	    pvd_switch_deliver(d, nodeid, m))
		;
	else if (d->mgr && m->msg_case == PVCL__CPG_MESSAGE__MSG_ANNOUNCE &&
	    nodeid != pv_memb_local_nodeid(d->memb))
		pv_mgr_host_peer(d->mgr, m->announce);
	else if (d->mgr)
		pv_mgr_host_deliver(d->mgr, nodeid, m);
	pvcl__cpg_message__free_unpacked(m, NULL);
}

static const struct pv_memb_ops pvd_memb_ops = {
	.changed = pvd_changed,
	.left = pvd_left,
	.deliver = pvd_deliver,
};

static int32_t pvd_on_signal(int32_t sig, void *data)
{
	struct pvd *d = data;

	qb_log(LOG_NOTICE, "%s: stopping", strsignal(sig));
	qb_loop_stop(d->loop);
	return 0;
}

/* The state directory exists, ours only. */
static int pvd_state_dir(const struct pv_config *c)
{
	struct stat st;

	if (mkdir(c->state_dir, 0700) && errno != EEXIST)
		goto err;
	if (stat(c->state_dir, &st))
		goto err;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto err;
	}
	return 0;
err:
	qb_log(LOG_ERR, "state_dir %s: %s", c->state_dir, strerror(errno));
	return -errno;
}

static int pvd_ipc_group(struct pvd *d)
{
	struct group *g;

	if (!d->cfg.ipc_group)
		return 0;
	g = getgrnam(d->cfg.ipc_group);
	if (!g) {
		qb_log(LOG_ERR, "%s: ipc_group: no group %s on this host",
		       d->cfg.path, d->cfg.ipc_group);
		return -ENOENT;
	}
	d->has_group = true;
	d->ipc_gid = g->gr_gid;
	return 0;
}

static int pvd_start(struct pvd *d)
{
	struct pv_mgr_env env;
	qb_loop_signal_handle sh;
	int err;

	pv_hosts_init(&d->hosts, &d->cfg, pv_build_id());
	err = pvd_state_dir(&d->cfg);
	if (!err)
		err = pvd_ipc_group(d);
	if (err)
		return err;
	signal(SIGPIPE, SIG_IGN);	/* a peer gone is an error, not a signal */
	d->loop = qb_loop_create();
	if (!d->loop)
		return -ENOMEM;
	qb_loop_signal_add(d->loop, QB_LOOP_HIGH, SIGTERM, d, pvd_on_signal,
			   &sh);
	qb_loop_signal_add(d->loop, QB_LOOP_HIGH, SIGINT, d, pvd_on_signal,
			   &sh);
	err = pvd_ipc_start(d);
	if (!err)
		err = pv_fence_create(d->loop, &d->cfg, &d->fence);
	if (!err)
		err = pv_memb_create(d->loop, PVD_CPG_GROUP, &pvd_memb_ops, d,
				     &d->memb);
	if (err)
		return err;
	env.loop = d->loop;
	env.cfg = &d->cfg;
	env.memb = d->memb;
	env.hosts = &d->hosts;
	env.fence = d->fence;
	env.announce = pvd_mgr_announce;
	env.arg = d;
	err = pv_mgr_host_create(&env, &d->mgr);
	if (!err)
		err = pvd_guests_start(d);
	if (!err)
		err = pvd_drivers_start(d);
	if (!err)
		err = pvd_switch_start(d);
	if (err)
		return err;
	pvd_announce(d);
	pv_mgr_host_changed(d->mgr);
	return 0;
}

static void pvd_stop(struct pvd *d)
{
	pvd_switch_stop(d);
	pvd_drivers_stop(d);
	/* first: the answers it still owes may be the guests' */
	pv_mgr_host_destroy(d->mgr);
	d->mgr = NULL;
	pvd_guests_stop(d);
	pv_memb_destroy(d->memb);
	pv_fence_destroy(d->fence);
	pvd_ipc_stop(d);
	if (d->loop)
		qb_loop_destroy(d->loop);
	pv_config_free(&d->cfg);
}

struct pvd_opts {
	const char *config;
	int level;
	bool check;
};

static int pvd_parse(int argc, char **argv, struct pvd_opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "check-config", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->config = PV_CONF_PATH;
	o->level = pv_log_level_env();
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'l':
			o->level = pv_log_level_parse(optarg);
			if (o->level < 0) {
				fprintf(stderr, "pairvisord: --log-level %s: not one of %s\n",
					optarg, PV_LOG_NAMES);
				return 2;
			}
			break;
		case 't':
			o->check = true;
			break;
		case 'h':
			fputs(pvd_usage, stdout);
			exit(0);
		default:
			fputs(pvd_usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pairvisord: unexpected argument %s\n%s",
			argv[optind], pvd_usage);
		return 2;
	}
	if (o->level < 0) {
		fprintf(stderr, "pairvisord: %s is not one of %s\n",
			PV_LOG_ENV, PV_LOG_NAMES);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct pvd d = { 0 };
	struct pvd_opts o = { 0 };
	char why[512];
	int err;

	err = pvd_parse(argc, argv, &o);
	if (err)
		return err;
	if (pv_config_load(o.config, &d.cfg, why, sizeof(why))) {
		fprintf(stderr, "pairvisord: %s\n", why);
		return 1;
	}
	if (o.check) {
		printf("%s: good\n", o.config);
		pv_config_free(&d.cfg);
		return 0;
	}
	pv_log_setup("pairvisord", o.level);
	qb_log(LOG_NOTICE, "host %s, peer %s, build %s", d.cfg.host,
	       d.cfg.peer, pv_build_id());
	err = pvd_start(&d);
	if (!err)
		qb_loop_run(d.loop);
	pvd_stop(&d);
	qb_log_fini();
	return err ? 1 : 0;
}
