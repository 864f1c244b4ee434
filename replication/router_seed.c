// SPDX-License-Identifier: GPL-2.0
/*
 * A spare from start to live (DESIGN.md section 3, seeding), and which
 * replicas may mirror each other (proto/README.md): the same protocol,
 * and the same arena layout and state-machine version of the variant.
 * Never the build: a replica of another build with the same versions is
 * a spare like any other (rolling upgrades keep their spares); builds
 * are logged and shown.
 *
 * The active says what it runs in its HelloReply; a spare's Hello asks
 * for exactly that, and the spare refuses (Error naming both versions)
 * before it applies anything. Its Pong says its arena is registered: the
 * active is asked for a snapshot into a sealed region of ours, which must
 * carry the versions the spare announced; it is written into the
 * spare's arena, and the Seed carries the versions and the digest on so
 * the spare checks them again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <qb/qblog.h>

#include "memfd.h"
#include "replica.h"
#include "router_priv.h"

/* ---- Hello: versions, never the build ---- */

/*
 * Hello to a new active (no state to agree with: it starts afresh) or to
 * a spare, which must run what the active announced.
 */
void rt_hello(struct pv_router *rt, struct rt_rep *rep, bool active)
{
	const struct rt_rep *a = rt->roles.active;
	Pv__Hello h = PV__HELLO__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;

	h.protocol = PV_PROTOCOL_VERSION;
	h.generation = rt->roles.generation;
	h.active = active;
	h.build = (char *)pv_build_id();
	h.variant = (char *)rt->cfg.variant;
	if (!active && a && a->greeted) {
		h.layout_version = a->layout_version;
		h.machine_version = a->machine_version;
	}
	env.msg_case = PV__ENVELOPE__MSG_HELLO;
	env.hello = &h;
	if (!rt_send_to(rt, rep, &env) && !active)
		rt_ping(rt, rep);
}

static const char *rt_reply_check(const struct pv_router *rt,
				  const struct rt_rep *rep,
				  const Pv__HelloReply *hr)
{
	if (rep->greeted)
		return "a second HelloReply";
	if (hr->protocol != PV_PROTOCOL_VERSION)
		return "a HelloReply of another protocol";
	if (strcmp(hr->variant, rt->cfg.variant))
		return "a HelloReply for another format";
	if (!hr->machine_version || !hr->layout_version)
		return "a HelloReply without versions";
	return NULL;
}

/* A replica accepted its Hello: what it runs, and its build. */
void rt_on_hello_reply(struct pv_router *rt, struct rt_rep *rep,
		       const Pv__HelloReply *hr)
{
	const char *why = rt_reply_check(rt, rep, hr);

	if (why) {
		rt->stats->proto_errors++;
		qb_log(LOG_WARNING, "%s: %s %s sent %s", rt->cfg.name,
		       rt->cfg.kind, rt_who(rep), why);
		rt_rep_fail(rep, why);
		return;
	}
	rep->greeted = true;
	rep->remote_pid = hr->pid;
	rep->arena_size = hr->arena_size;
	rep->layout_version = hr->layout_version;
	rep->machine_version = hr->machine_version;
	snprintf(rep->build, sizeof(rep->build), "%s", hr->build);
	qb_log(LOG_INFO, "%s: %s %s runs %s state machine version %u, arena layout %u; build %s (ours %s)",
	       rt->cfg.name, rep == rt->roles.active ? rt->cfg.kind : "spare",
	       rt_who(rep), hr->variant, rep->machine_version,
	       rep->layout_version, rep->build, pv_build_id());
}

/* Can the spare take the active's snapshot? By versions, not builds. */
static const char *rt_check_versions(struct pv_router *rt,
				     const Pv__SnapshotReady *r)
{
	struct rt_rep *sp = rt->roles.spare;

	if (!sp->greeted)
		return "the spare did not say what it runs (no HelloReply)";
	if (r->layout_version != sp->layout_version ||
	    r->machine_version != sp->machine_version) {
		qb_log(LOG_WARNING, "%s: snapshot of arena layout %u, %s state machine version %u (build %s); spare %s has layout %u, version %u (build %s)",
		       rt->cfg.name, r->layout_version, rt->cfg.variant,
		       r->machine_version, r->build, rt_who(sp),
		       sp->layout_version, sp->machine_version, sp->build);
		return r->layout_version != sp->layout_version ?
		       "the snapshot is of another arena layout" :
		       "the snapshot is of another state-machine version";
	}
	if (strcmp(r->build, sp->build))
		qb_log(LOG_INFO, "%s: active build %s, spare build %s: same versions, seeding",
		       rt->cfg.name, r->build, sp->build);
	return NULL;
}

/* ---- the snapshot ---- */

static int rt_snap_region(struct pv_router *rt)
{
	int fd;

	if (rt->snap_fd >= 0)
		return 0;
	/* sealed: the active it is shared with cannot shrink it under us */
	fd = pv_memfd_create("pairvisor-snapshot", RT_SNAP_MAX);
	if (fd < 0)
		return fd;
	rt->snap_map = mmap(NULL, RT_SNAP_MAX, PROT_READ, MAP_SHARED, fd, 0);
	if (rt->snap_map == MAP_FAILED)
		goto err;
	rt->snap_fd = fd;
	return 0;
err:
	rt->snap_map = NULL;
	close(fd);
	return -errno;
}

void rt_snap_free(struct pv_router *rt)
{
	if (rt->snap_map)
		munmap(rt->snap_map, RT_SNAP_MAX);
	if (rt->snap_fd >= 0)
		close(rt->snap_fd);
}

/*
 * How much of the snapshot region the active's link exposes: its arena,
 * as its HelloReply said, in pages (over rdma: what is registered is
 * pinned), else all of it.
 */
static size_t rt_snap_len(const struct rt_rep *a)
{
	uint64_t len = (a->arena_size + 4095) & ~4095ULL;

	return len && len <= RT_SNAP_MAX ? (size_t)len : RT_SNAP_MAX;
}

/* The spare's arena is registered: ask the active for a snapshot. */
void rt_snapshot_ask(struct pv_router *rt)
{
	struct rt_rep *a = rt->roles.active;
	Pv__Snapshot snap = PV__SNAPSHOT__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	size_t len = rt_snap_len(a);
	int err = rt_snap_region(rt);

	if (!err && a->snap_region != len) {
		err = pv_chan_region_register(a->ch, rt->snap_fd, len);
		a->snap_region = err ? 0 : len;
	}
	if (err) {
		qb_log(LOG_ERR, "%s: snapshot region: %s", rt->cfg.name,
		       strerror(-err));
		rt_rep_fail(rt->roles.spare, "no snapshot region");
		return;
	}
	snap.nonce = ++rt->snap_nonce;
	env.msg_case = PV__ENVELOPE__MSG_SNAPSHOT;
	env.snapshot = &snap;
	rt->snap_seq = rt->next_seq - 1;
	rt->roles.spare_state = PV_SPARE_SNAPSHOT;
	pv_router_send(rt, &env);
	if (rt->ops->seeding)
		rt->ops->seeding(rt->owner);
}

static const char *rt_check_snapshot(struct pv_router *rt,
				     const Pv__SnapshotReady *r)
{
	const char *why;

	if (r->status)
		return "the active could not copy its arena";
	if (r->seq != rt->snap_seq)
		return "the snapshot is not at the input it was asked at";
	why = rt_check_versions(rt, r);
	if (why)
		return why;
	if (!r->size || r->size > rt->roles.active->snap_region)
		return "the snapshot does not fit the region";
	if (pv_chan_bulk_write(rt->roles.spare->ch, 0, rt->snap_map, r->size))
		return "the snapshot does not fit its arena";
	return NULL;
}

/* Write the snapshot into the spare's arena, seed it, replay after S. */
void rt_on_snapshot_ready(struct pv_router *rt, const Pv__SnapshotReady *r)
{
	struct rt_rep *sp = rt->roles.spare;
	Pv__Seed seed = PV__SEED__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	Pv__OutputId ex = PV__OUTPUT_ID__INIT;
	const char *why;

	if (rt->roles.spare_state != PV_SPARE_SNAPSHOT ||
	    r->nonce != rt->snap_nonce)
		return;
	why = rt_check_snapshot(rt, r);
	if (why) {
		rt_rep_fail(sp, why);
		return;
	}
	ex.seq = rt->exec_seq;
	ex.index = rt->exec_index;
	seed.seq = r->seq;
	seed.size = r->size;
	seed.machine_version = r->machine_version;
	seed.digest = pv_digest(rt->snap_map, r->size);
	seed.executed = rt->exec_any ? &ex : NULL;
	env.msg_case = PV__ENVELOPE__MSG_SEED;
	env.seed = &seed;
	if (rt_send_to(rt, sp, &env))
		return;
	sp->base_seq = sp->applied_seq = r->seq;
	rt->roles.spare_state = PV_SPARE_LIVE;
	rt->spare_backoff_ms = 0;
	rt->stats->seeds++;
	rt->stats->seed_pause_ns = r->pause_ns;
	if (r->pause_ns > rt->stats->seed_pause_max_ns)
		rt->stats->seed_pause_max_ns = r->pause_ns;
	qb_log(LOG_NOTICE, "%s: spare %s seeded at input %" PRIu64
	       " (%" PRIu64 " bytes; the active paused %" PRIu64 " us)",
	       rt->cfg.name, rt_who(sp), r->seq, r->size, r->pause_ns / 1000);
	rt_replay(rt, sp, r->seq);
}

/* ---- a spare comes ---- */

/*
 * Greet a new spare as one: its Pong says its arena is registered, then
 * the active is asked for a snapshot.
 */
void rt_spare_link(struct pv_router *rt, struct pv_chan *ch, pid_t pid,
		   uint64_t token)
{
	struct rt_rep *rep = rt->roles.active == &rt->rep[0] ?
			     &rt->rep[1] : &rt->rep[0];

	rt_rep_init(rt, rep, ch, pid, token);
	rt->roles.spare = rep;
	rt->roles.spare_state = PV_SPARE_HELLO;
	rt->spare_t0 = pv_router_now_ns();
	rt_hello(rt, rep, false);
	qb_log(LOG_INFO, "%s: a spare started", rt->cfg.name);
}

/*
 * A spare goes to the other side of the active (the owner knows where:
 * to the peer host while the active runs here, here once a remote spare
 * became the active).
 */
void rt_spare_start(struct pv_router *rt)
{
	struct pv_chan *ch;
	uint64_t token = 0;
	bool remote = false;
	pid_t pid = 0;

	if (!rt->ops->spare ||
	    rt->ops->spare(rt->owner, rt->roles.active->remote, &ch, &pid,
			   &token, &remote))
		return;
	if (remote)
		rt->stats->connects++;
	rt_spare_link(rt, ch, pid, token);
	rt->roles.spare->remote = remote;
}

int pv_router_add_spare(struct pv_router *rt, struct pv_chan *ch, pid_t pid)
{
	if (rt->state != PV_ROUTER_RUNNING || rt->roles.spare) {
		pv_chan_close(ch);
		return -EBUSY;
	}
	rt_spare_link(rt, ch, pid, 0);
	pv_router_settle(rt);
	return 0;
}
