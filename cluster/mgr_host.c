// SPDX-License-Identifier: GPL-2.0
/*
 * The manager replica's roles on this host (mgr_host.h): active with the
 * router, or spare behind the listener; who is active, promotion and
 * fencing, stepping down.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <corosync/votequorum.h>
#include <qb/qblog.h>

#include "mgr_host_priv.h"
#include "mgr_replica.h"

static void mgr_become_spare_ready(struct pv_mgr_host *h);

const char *mgr_role_name(enum mgr_role r)
{
	return r == MGR_ROLE_ACTIVE ? "active" :
	       r == MGR_ROLE_SPARE ? "spare" : "none";
}

static enum mgr_role mgr_role_parse(const char *s)
{
	return !strcmp(s, "active") ? MGR_ROLE_ACTIVE :
	       !strcmp(s, "spare") ? MGR_ROLE_SPARE : MGR_ROLE_NONE;
}

bool mgr_quorate(const struct pv_mgr_host *h)
{
	struct pv_memb_quorum q;

	if (!pv_memb_connected(h->env.memb))
		return false;
	pv_memb_quorum(h->env.memb, &q);
	return q.quorate;
}

/*
 * The quorum device decided for this host without the peer: the quorum
 * notification since the peer was lost leaves it out and says quorate
 * with the device's vote (never what Corosync says while it re-forms).
 */
static bool mgr_qdevice_vote(const struct pv_mgr_host *h)
{
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);
	struct pv_memb_quorum q;

	pv_memb_quorum(h->env.memb, &q);
	return q.quorate && (q.flags & VOTEQUORUM_INFO_QDEVICE_REGISTERED) &&
	       (q.flags & VOTEQUORUM_INFO_QDEVICE_CAST_VOTE) &&
	       peer->nodeid && !pv_memb_quorum_member(h->env.memb, peer->nodeid);
}

const struct mgr_state *mgr_state_of(const struct pv_mgr_host *h)
{
	return h->rep ? replica_state(h->rep) : NULL;
}

bool mgr_seeded(const struct pv_mgr_host *h)
{
	return h->role == MGR_ROLE_SPARE && h->rep &&
	       replica_stats(h->rep)->seeds > 0;
}

/* This host holds a manager state: the active's, or a seeded spare's. */
static bool mgr_has_state(const struct pv_mgr_host *h)
{
	return h->role == MGR_ROLE_ACTIVE || mgr_seeded(h);
}

const struct mgr_state *pv_mgr_host_state(const struct pv_mgr_host *h)
{
	return mgr_has_state(h) ? mgr_state_of(h) : NULL;
}

static void mgr_why(struct pv_mgr_host *h, const char *why)
{
	if (!strcmp(h->why, why))
		return;
	snprintf(h->why, sizeof(h->why), "%s", why);
	if (*why)
		qb_log(LOG_WARNING, "manager: %s", why);
}

/* The state now on disk: the local replica's, stamped. */
int mgr_save(struct pv_mgr_host *h)
{
	const struct mgr_state *s = mgr_state_of(h);
	int err;

	if (!s)
		return -ENOENT;
	h->stamp.seq = s->applied;
	err = pv_mgr_store_save(h->env.cfg->state_dir, s, &h->stamp);
	if (err) {
		qb_log(LOG_ERR, "manager: cannot save its state in %s: %s",
		       h->env.cfg->state_dir, strerror(-err));
		return err;
	}
	/* what the copy holds: the inputs its replica applied (some sent
	 * may still wait on its channel), in the router's numbering */
	h->saved_seq = replica_applied_seq(h->rep);
	return 0;
}

static void mgr_drop_replica(struct pv_mgr_host *h)
{
	replica_loop_detach(h->rl);
	replica_destroy(h->rep);
	h->rl = NULL;
	h->rep = NULL;
}

static void mgr_replica_ended(void *arg, int err)
{
	struct pv_mgr_host *h = arg;

	qb_log(err ? LOG_WARNING : LOG_INFO, "manager: the %s replica's link ended%s%s",
	       mgr_role_name(h->role), err ? ": " : "",
	       err ? strerror(-err) : "");
	if (h->role == MGR_ROLE_SPARE) {
		/*
		 * Its state stays: what it applied is all the active could
		 * have acknowledged (an answer waits for the spare), so it
		 * is what this host takes over with if the active is gone;
		 * a new router's link replaces it.
		 */
		replica_loop_detach(h->rl);
		h->rl = NULL;
		mgr_decide(h);
	}
	/* an active's own replica: its router's heartbeat says (lost) */
}

/* ---- as the active: the router ---- */

static void mgr_rt_output(void *owner, const Pv__Envelope *env)
{
	struct pv_mgr_host *h = owner;

	if (env->msg_case != PV__ENVELOPE__MSG_OUTPUT) {
		pv_router_reject(h->rt, "not a manager's output");
		return;
	}
	pv_router_ack(h->rt, env->output->id);
	mgr_on_reply(h, env->output);
}

static void mgr_rt_rejected(void *owner, const Pv__Envelope *env,
			    const char *why)
{
	(void)owner;
	(void)env;
	qb_log(LOG_ERR, "manager: the active replica's message refused: %s",
	       why);
}

static int mgr_rt_spare(void *owner, bool active_remote, struct pv_chan **ch,
			pid_t *pid, uint64_t *token, bool *remote)
{
	struct pv_mgr_host *h = owner;
	const struct pv_config *c = h->env.cfg;
	struct pv_chan_opts o = { .key = &h->key,
				  .link_timeout_ms = c->link_timeout_ms,
				  .no_resume = true };
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);

	(void)active_remote;
	if (!peer->pid || !h->peer.known || h->peer.role == MGR_ROLE_ACTIVE)
		return -EAGAIN;		/* no daemon there to host it */
	*pid = 0;
	*token = 0;
	*remote = true;
	return pv_chan_open(c->peer_address, &o, ch);
}

static void mgr_step_down(struct pv_mgr_host *h, const char *why);

static void mgr_rt_lost(void *owner, const char *why, bool seeding)
{
	struct pv_mgr_host *h = owner;

	(void)seeding;
	qb_log(LOG_ERR, "manager: the active replica on this host failed: %s",
	       why);
	mgr_step_down(h, "its replica failed");
}

static void mgr_rt_acked(void *owner, bool spare, uint64_t applied)
{
	struct pv_mgr_host *h = owner;

	if (!spare || applied <= h->spare_applied)
		return;
	h->spare_applied = applied;
	mgr_release_all(h);
}

static const struct pv_router_ops mgr_rt_ops = {
	.output = mgr_rt_output,
	.rejected = mgr_rt_rejected,
	.spare = mgr_rt_spare,
	.lost = mgr_rt_lost,
	.acked = mgr_rt_acked,
};

/* The cluster's hosts, in name order, as the first input of a manager. */
static void mgr_bootstrap(struct pv_mgr_host *h)
{
	const struct pv_config *c = h->env.cfg;
	char *names[2];
	Pvcl__Hosts hs = PVCL__HOSTS__INIT;
	Pvcl__ManagerInput in = PVCL__MANAGER_INPUT__INIT;

	names[0] = strcmp(c->host, c->peer) < 0 ? c->host : c->peer;
	names[1] = names[0] == c->host ? c->peer : c->host;
	hs.n_names = 2;
	hs.names = names;
	in.op_case = PVCL__MANAGER_INPUT__OP_HOSTS;
	in.hosts = &hs;
	mgr_submit(h, &in, 0, 0, NULL, NULL);
}

/* The router and the active replica on a socketpair, from @state. */
static int mgr_start_router(struct pv_mgr_host *h,
			    const struct mgr_state *state)
{
	const struct pv_config *c = h->env.cfg;
	struct pv_router_config rc = {
		.name = "manager", .kind = "manager replica",
		.variant = MGR_VARIANT, .loop = h->env.loop,
		.spare_wanted = true, .spare_remote = true,
		/*
		 * its active is on this loop: a missed ping is pairvisord
		 * itself slow (a save under load), which the router must not
		 * take for the active's failure; nor promote the spare, which
		 * the cluster's rules do, on the other host
		 */
		.no_failover = true,
		.hb_period_ms = c->hb_period_ms,
		.hb_limit_ms = c->hb_limit_ms > MGR_ACTIVE_LIMIT_MS ?
			       c->hb_limit_ms : MGR_ACTIVE_LIMIT_MS,
		.link_timeout_ms = c->link_timeout_ms, .spare_lag = 1024,
		.stats = &h->rstats,
	};
	struct replica_config cfg = { .initial_state = state };
	struct pv_chan *rch, *ch;
	char url[32];
	int fd, err;

	err = pv_chan_pair(&rch, &fd);
	if (err)
		return err;
	snprintf(url, sizeof(url), "fd:%d", fd);
	err = pv_chan_connect(url, &ch);
	if (err) {
		close(fd);
		pv_chan_close(rch);
		return err;
	}
	err = replica_create(&pv_mgr_replica_ops, &cfg, ch, &h->rep);
	if (!err)
		err = replica_loop_attach(h->rep, h->env.loop,
					  mgr_replica_ended, h, &h->rl);
	if (!err)
		err = pv_router_create(&rc, &mgr_rt_ops, h, &h->rt);
	if (err) {
		pv_chan_close(rch);
		mgr_drop_replica(h);
		return err;
	}
	h->spare_applied = 0;
	h->saved_seq = 0;
	err = pv_router_start(h->rt, rch, 0, 0);
	if (!err)
		pv_router_running(h->rt);
	return err;
}

/* This host's replica becomes the active: promotion, or a start. */
void mgr_become_active(struct pv_mgr_host *h, const char *why)
{
	struct mgr_state *from = NULL;
	bool fresh = false;
	int err;

	if (mgr_seeded(h)) {
		from = malloc(sizeof(*from));
		if (from)
			memcpy(from, replica_state(h->rep), sizeof(*from));
	} else if (h->disk) {
		from = h->disk;
		h->disk = NULL;
	} else {
		fresh = true;
	}
	mgr_drop_replica(h);
	if (h->peer.stamp.generation > h->stamp.generation)
		h->stamp.generation = h->peer.stamp.generation;
	h->stamp.generation++;
	err = mgr_start_router(h, from);
	free(from);
	if (!err)
		err = mgr_save(h);
	if (err) {
		qb_log(LOG_ERR, "manager: cannot become the active: %s",
		       strerror(-err));
		pv_router_destroy(h->rt);
		h->rt = NULL;
		mgr_drop_replica(h);
		mgr_why(h, "the active replica could not start here");
		return;
	}
	h->role = MGR_ROLE_ACTIVE;
	mgr_why(h, "");
	qb_log(LOG_NOTICE, "manager: active on host %s, generation %llu (%s)",
	       h->env.cfg->host, (unsigned long long)h->stamp.generation, why);
	if (fresh)
		mgr_bootstrap(h);
	h->env.announce(h->env.arg);
}

static void mgr_step_down(struct pv_mgr_host *h, const char *why)
{
	qb_log(LOG_NOTICE, "manager: host %s steps down: %s", h->env.cfg->host,
	       why);
	mgr_fail_all(h, -ETIMEDOUT,
		     "the active manager moved: the request may or may not have been applied");
	pv_router_destroy(h->rt);
	h->rt = NULL;
	mgr_drop_replica(h);
	h->role = MGR_ROLE_NONE;
	h->env.announce(h->env.arg);
}

/* ---- as the spare: the listener ---- */

static int32_t mgr_on_accept(int32_t fd, int32_t revents, void *data)
{
	struct pv_mgr_host *h = data;
	struct pv_chan *ch;
	int err;

	(void)fd;
	(void)revents;
	while (pv_accept(h->lst, &ch) == 0) {
		if (h->role == MGR_ROLE_ACTIVE) {
			qb_log(LOG_WARNING, "manager: a spare link refused: this host's manager is the active");
			pv_chan_close(ch);
			continue;
		}
		mgr_drop_replica(h);	/* a new router: a new spare */
		err = replica_create(&pv_mgr_replica_ops, NULL, ch, &h->rep);
		if (!err)
			err = replica_loop_attach(h->rep, h->env.loop,
						  mgr_replica_ended, h, &h->rl);
		if (err) {
			qb_log(LOG_ERR, "manager: cannot host a spare: %s",
			       strerror(-err));
			mgr_drop_replica(h);
			continue;
		}
		mgr_become_spare_ready(h);
	}
	return 0;
}

static void mgr_become_spare_ready(struct pv_mgr_host *h)
{
	if (h->role != MGR_ROLE_SPARE)
		qb_log(LOG_NOTICE, "manager: spare on host %s", h->env.cfg->host);
	h->role = MGR_ROLE_SPARE;
	mgr_why(h, "");
	h->env.announce(h->env.arg);
}

static int mgr_listen(struct pv_mgr_host *h)
{
	const struct pv_config *c = h->env.cfg;
	struct pv_chan_opts o = { .key = &h->key,
				  .link_timeout_ms = c->link_timeout_ms,
				  .no_resume = true };
	int err = pv_listen(c->listen, &o, &h->lst);

	if (err) {
		qb_log(LOG_ERR, "manager: cannot listen on %s: %s", c->listen,
		       strerror(-err));
		return err;
	}
	return qb_loop_poll_add(h->env.loop, QB_LOOP_MED, pv_listener_fd(h->lst),
				POLLIN, h, mgr_on_accept);
}

/* ---- deciding ---- */

static void mgr_fence_done(void *arg, const char *action, int status,
			   const char *output);

/* Fence the peer now (the active) or after the delay (the spare). */
static void mgr_fence_peer(void *data)
{
	struct pv_mgr_host *h = data;
	int err;

	h->fence_armed = false;
	if (!h->peer_lost || h->peer_out || pv_fence_busy(h->env.fence))
		return;
	qb_log(LOG_NOTICE, "manager: fencing host %s", h->env.cfg->peer);
	err = pv_fence_run(h->env.fence, "off", mgr_fence_done, h);
	if (err)
		qb_log(LOG_ERR, "manager: cannot fence host %s: %s",
		       h->env.cfg->peer, strerror(-err));
}

static void mgr_fence_later(struct pv_mgr_host *h, uint32_t ms)
{
	if (h->fence_armed)
		return;
	h->fence_armed = true;
	qb_loop_timer_add(h->env.loop, QB_LOOP_MED, ms * 1000000ULL, h,
			  mgr_fence_peer, &h->fence_timer);
}

static void mgr_fence_done(void *arg, const char *action, int status,
			   const char *output)
{
	struct pv_mgr_host *h = arg;

	(void)action;
	if (status) {
		qb_log(LOG_ERR, "manager: fencing host %s failed (%s): retrying in %d ms",
		       h->env.cfg->peer, output, MGR_FENCE_RETRY_MS);
		mgr_fence_later(h, MGR_FENCE_RETRY_MS);
		return;
	}
	qb_log(LOG_NOTICE, "manager: host %s fenced", h->env.cfg->peer);
	h->peer_out = true;
	h->peer_fenced = true;
	mgr_decide(h);
}

/* The peer is gone: make sure it stays gone before acting alone. */
static void mgr_peer_gone(struct pv_mgr_host *h)
{
	if (h->peer_out)
		return;
	if (mgr_qdevice_vote(h)) {
		qb_log(LOG_NOTICE, "manager: host %s is out: the quorum device votes for this host",
		       h->env.cfg->peer);
		h->peer_out = true;
		return;
	}
	if (!h->env.cfg->fence_agent) {
		mgr_why(h, "the peer host is lost, and without a fence agent or a quorum device this host cannot tell it is down");
		return;
	}
	if (!pv_fence_busy(h->env.fence))
		mgr_fence_later(h, h->role == MGR_ROLE_ACTIVE ? 1 :
				h->env.cfg->fence_delay_ms);
}

static bool mgr_we_win(const struct pv_mgr_host *h)
{
	int c = pv_mgr_stamp_cmp(&h->stamp, &h->peer.stamp);
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);

	if (!h->disk && h->peer.stamp.seq)
		return false;		/* it has a state, we none */
	if (c)
		return c > 0;
	return pv_memb_local_nodeid(h->env.memb) < peer->nodeid;
}

static void mgr_decide_none(struct pv_mgr_host *h)
{
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);

	if (!peer->pid || !h->peer.known) {
		mgr_why(h, "waiting for the peer host's pairvisord to compare their saved states");
		return;
	}
	if (h->peer.role == MGR_ROLE_ACTIVE) {
		mgr_why(h, "");
		return;		/* its router links a spare here */
	}
	if (mgr_we_win(h))
		mgr_become_active(h, "its saved state is the newest");
}

static void mgr_lost_done(void *arg, const Pvcl__Reply *r)
{
	(void)arg;
	qb_log(r->error ? LOG_ERR : LOG_NOTICE, "manager: %s", r->message);
}

/* The fenced peer's guests: restarted here (shared=on) or lost. */
static void mgr_peer_guests(struct pv_mgr_host *h)
{
	Pvcl__ManagerInput in = PVCL__MANAGER_INPUT__INIT;

	h->peer_fenced = false;
	in.op_case = PVCL__MANAGER_INPUT__OP_HOST_LOST;
	in.host_lost = (char *)h->env.cfg->peer;
	mgr_submit(h, &in, 0, 0, mgr_lost_done, h);
}

void mgr_decide(struct pv_mgr_host *h)
{
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);

	if (!mgr_quorate(h))
		return;		/* no decision without quorum */
	if (h->peer_lost || (h->peer.known && !peer->pid))
		mgr_peer_gone(h);
	switch (h->role) {
	case MGR_ROLE_NONE:
		mgr_decide_none(h);
		break;
	case MGR_ROLE_ACTIVE:
		mgr_handover_try(h);	/* its spare may be gone */
		if (h->peer_fenced)
			mgr_peer_guests(h);
		if (h->peer.known && peer->pid &&
		    h->peer.role == MGR_ROLE_ACTIVE &&
		    h->peer.stamp.generation > h->stamp.generation) {
			mgr_handover_done(h);
			mgr_step_down(h, "the peer's manager is newer");
		}
		else if (h->peer_out)
			mgr_release_all(h);
		break;
	case MGR_ROLE_SPARE:
		if (h->peer_out && mgr_seeded(h)) {
			mgr_become_active(h, "the active host is gone");
			h->failovers += h->role == MGR_ROLE_ACTIVE;
			if (h->role == MGR_ROLE_ACTIVE && h->peer_fenced)
				mgr_peer_guests(h);
		} else if (h->peer_out) {
			mgr_why(h, "the active host is gone, but this host's spare was never seeded: it cannot take over");
		}
		break;
	}
}

void pv_mgr_host_changed(struct pv_mgr_host *h)
{
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);

	if (peer->nodeid && !pv_memb_node_up(h->env.memb, peer->nodeid) &&
	    pv_memb_connected(h->env.memb) && h->peer.known)
		h->peer_lost = true;
	mgr_decide(h);
}

void pv_mgr_host_left(struct pv_mgr_host *h, uint32_t nodeid, int reason)
{
	struct pv_host *peer = pv_hosts_peer(h->env.hosts);

	if (nodeid != peer->nodeid)
		return;
	if (reason == PV_MEMB_NODEDOWN) {
		h->peer_lost = true;
	} else if (!h->peer_out) {
		/* its daemon, and the manager replica in it, are gone
		 * (PROCDOWN; LEAVE: it stopped, pairvisord leaves only then) */
		qb_log(LOG_NOTICE, "manager: host %s's pairvisord is gone, its manager with it",
		       h->env.cfg->peer);
		h->peer_out = true;
	}
	mgr_decide(h);
}

void pv_mgr_host_peer(struct pv_mgr_host *h, const Pvcl__Announce *a)
{
	enum mgr_role was = h->peer.role;

	h->peer.known = true;
	h->peer.role = mgr_role_parse(a->mgr_role);
	h->peer.stamp.generation = a->mgr_generation;
	h->peer.stamp.seq = a->mgr_seq;
	/* it is back: nothing to fence, its spare to seed */
	h->peer_lost = false;
	h->peer_out = false;
	h->peer_fenced = false;
	if (h->fence_armed) {
		qb_loop_timer_del(h->env.loop, h->fence_timer);
		h->fence_armed = false;
	}
	if (was != h->peer.role)
		qb_log(LOG_INFO, "manager: host %s's manager is %s",
		       h->env.cfg->peer, mgr_role_name(h->peer.role));
	mgr_decide(h);
}

void pv_mgr_host_announce(const struct pv_mgr_host *h, Pvcl__Announce *a)
{
	const struct mgr_state *s = mgr_state_of(h);

	a->mgr_role = (char *)mgr_role_name(h->role);
	a->mgr_generation = h->stamp.generation;
	a->mgr_seq = s ? s->applied : h->stamp.seq;
	a->mgr_seeded = mgr_has_state(h);
}

void pv_mgr_host_status(struct pv_mgr_host *h, Pvcl__ManagerStatus *st)
{
	static const char *const spare_states[] = {
		"none", "hello", "snapshot", "live",
	};
	const struct mgr_state *s = mgr_state_of(h);
	const char *me = h->env.cfg->host, *peer = h->env.cfg->peer;

	pvcl__manager_status__init(st);
	st->local_role = (char *)mgr_role_name(h->role);
	st->generation = h->role == MGR_ROLE_ACTIVE ? h->stamp.generation :
			 h->peer.stamp.generation;
	st->seq = s ? s->applied : h->stamp.seq;
	st->requests = h->requests;
	st->forwarded = h->forwarded;
	st->failovers = h->failovers;
	st->switchovers = h->handovers;
	st->held = mgr_held(h);
	st->why = h->why;
	st->spare_state = "none";
	if (h->role == MGR_ROLE_ACTIVE) {
		st->active_host = (char *)me;
		st->spare_state = (char *)spare_states[pv_router_spare_state(h->rt) & 3];
		st->spare_host = pv_router_spare_state(h->rt) == PV_SPARE_LIVE ?
				 (char *)peer : "";
		st->mirrored = h->rstats.mirrored;
		st->accepting = mgr_quorate(h) && !h->ho.on &&
				(h->peer_out || pv_router_spare_state(h->rt) ==
						PV_SPARE_LIVE);
	} else {
		st->active_host = h->peer.known && h->peer.role == MGR_ROLE_ACTIVE &&
				  pv_hosts_peer(h->env.hosts)->pid ?
				  (char *)peer : "";
		st->spare_host = mgr_seeded(h) ? (char *)me : "";
		if (mgr_seeded(h))
			st->spare_state = "live";
	}
}

int pv_mgr_host_create(const struct pv_mgr_env *env, struct pv_mgr_host **out)
{
	struct pv_mgr_host *h = calloc(1, sizeof(*h));
	char why[512];
	int err;

	if (!h)
		return -ENOMEM;
	h->env = *env;
	err = pv_key_load(env->cfg->cluster_key, &h->key, why, sizeof(why));
	if (err) {
		qb_log(LOG_ERR, "cluster_key: %s", why);
		free(h);
		return err;
	}
	h->disk = malloc(sizeof(*h->disk));
	err = h->disk ? pv_mgr_store_load(env->cfg->state_dir, h->disk,
					  &h->stamp, why, sizeof(why)) :
			-ENOMEM;
	if (err == -ENOENT) {
		free(h->disk);
		h->disk = NULL;
		err = 0;
	} else if (!err) {
		qb_log(LOG_NOTICE, "manager: saved state of generation %llu, %llu requests applied",
		       (unsigned long long)h->stamp.generation,
		       (unsigned long long)h->stamp.seq);
	} else {
		qb_log(LOG_ERR, "manager: %s", why);
	}
	if (!err)
		err = mgr_listen(h);
	if (err) {
		pv_mgr_host_destroy(h);
		return err;
	}
	mgr_sweep_start(h);
	*out = h;
	return 0;
}

void pv_mgr_host_destroy(struct pv_mgr_host *h)
{
	if (!h)
		return;
	qb_loop_timer_del(h->env.loop, h->sweep_timer);
	qb_loop_timer_del(h->env.loop, h->fence_timer);
	mgr_handover_cancel(h);
	mgr_fail_all(h, -ESHUTDOWN, "pairvisord is stopping");
	pv_router_destroy(h->rt);
	mgr_drop_replica(h);
	if (h->lst) {
		qb_loop_poll_del(h->env.loop, pv_listener_fd(h->lst));
		pv_listener_close(h->lst);
	}
	free(h->disk);
	free(h);
}
