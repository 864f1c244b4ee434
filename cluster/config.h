/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pairvisord's configuration: /etc/pairvisor/pairvisor.conf (or the path
 * given with --config), in libconfig's syntax (`name = value;`, groups in
 * braces, comments with #). Parsed by libconfig; checked here: every
 * setting known, of its type and range, required ones present. An error
 * names the file, the line and the reason.
 *
 *	host = "a";				# this host, as Corosync names it
 *	listen = "tcp:10.88.0.1:7400";		# replication links to this host
 *	peer = { name = "b"; address = "tcp:10.88.0.2:7400"; };
 *	cluster_key = "/etc/pairvisor/cluster.key";
 *	state_dir = "/var/lib/pairvisor";	# default
 *	ipc_group = "pairvisor";		# besides root; default: none
 *	heartbeat = { period_ms = 200; limit_ms = 1000; };
 *	link_timeout_ms = 2000;
 *	shutdown_timeout_ms = 60000;		# pairctl vm shutdown: how long
 *						# a guest may take to power off
 *						# before its VMM is stopped
 *	fence = {				# how this host fences its peer
 *		agent = "fence_ipmilan";	# in /usr/sbin, or a path
 *		delay_ms = 5000;		# the host without the active
 *						# manager waits this long first
 *		timeout_ms = 60000;
 *		params = { ip = "10.0.0.2"; username = "admin";
 *			   password = "secret"; lanplus = "1"; };
 *	};
 */
#ifndef PV_CLUSTER_CONFIG_H
#define PV_CLUSTER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define PV_CONF_PATH		"/etc/pairvisor/pairvisor.conf"
#define PV_CONF_STATE_DIR	"/var/lib/pairvisor"
#define PV_CONF_NAME_MAX	63	/* a host name's bytes */
#define PV_CONF_PARAMS_MAX	32	/* fence agent parameters */
#define PV_CONF_SHUTDOWN_MS	60000	/* shutdown_timeout_ms's default */

/* One key=value line the fence agent gets on its standard input. */
struct pv_fence_param {
	char *key;
	char *value;
};

struct pv_config {
	char *path;		/* the file it was read from */
	char *host;		/* this host's name */
	char *listen;		/* tcp:/rdma: URL replication links reach */
	char *peer;		/* the peer host's name */
	char *peer_address;	/* its replication URL */
	char *cluster_key;	/* the key file replication links prove */
	char *state_dir;
	char *ipc_group;	/* may use pairctl besides root; NULL: none */
	uint32_t hb_period_ms, hb_limit_ms;
	uint32_t link_timeout_ms;
	uint32_t shutdown_timeout_ms;	/* guest power-off, then SIGTERM */
	char *fence_agent;	/* NULL: no fencing */
	uint32_t fence_delay_ms;
	uint32_t fence_timeout_ms;
	struct pv_fence_param params[PV_CONF_PARAMS_MAX];
	size_t nr_params;
};

/*
 * Read and check @path into @c (zeroed first). 0, or a negative errno
 * with "PATH:LINE: reason" (or "PATH: reason") in @err.
 */
int pv_config_load(const char *path, struct pv_config *c, char *err,
		   size_t errlen);
void pv_config_free(struct pv_config *c);

#endif
