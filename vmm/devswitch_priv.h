/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The device switch's insides, shared by its files (never included
 * outside vmm/devswitch*.c):
 *
 *   devswitch.c         the block device's side: requests in flight, the
 *                       handlers of a driver's Attach, DeviceCommands and
 *                       GuestCompletions, submit, life cycle, counters
 *   devswitch_router.c  the router: role table, sequencing, input log,
 *                       acks, output ids (exactly once), output
 *                       comparison, seeding, promotion and fencing,
 *                       restart, heartbeat
 *   devswitch_link.c    the link to a replica process: spawn, send,
 *                       receive, close and reap
 *   devswitch_check.c   validation of a driver's outputs, and what a
 *                       violation gets
 *   devswitch_exec.c    the executor of device commands on the image
 *                       (and inline I/O, without a driver)
 *   devswitch_hooks.c   the test-only fault hooks (PAIRVISOR_FAULT)
 *   devswitch_compat.c  which replicas may mirror each other: the
 *                       versions in Hello, HelloReply and the snapshot
 *                       (never the build, which is logged and shown)
 *
 * Everything runs with vm->lock held, in the main loop thread.
 */
#ifndef PV_DEVSWITCH_PRIV_H
#define PV_DEVSWITCH_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <qb/qbloop.h>

#include "devswitch.h"
#include "virtio_blk.h"
#include "wire.h"

#define DS_MAX_REQS	512		/* in flight + aborted, by seq */
#define DS_ACK_BATCH	64
#define DS_POLL_BATCH	256
#define DS_AHEAD_ROUNDS	16	/* batches per wake-up, then a loop job */
#define DS_LOG_MAX	32		/* violation log lines per disk */
#define DS_EXIT_GRACE_MS	200	/* a closed driver's time to exit */
#define DS_ZOMBIES_MAX	8
#define DS_RESTARTS_MAX	3		/* restarts of the active ... */
#define DS_RESTART_WINDOW_MS	10000	/* ... within this, at most */
#define DS_ILOG_MAX	4096		/* inputs kept for a re-send */
#define DS_ILOG_BYTES	(32 << 20)	/* ... and their bytes */
#define DS_RESEND_MAX	8		/* re-sends without progress */
#define DS_SPARE_BACKOFF_MAX_MS	30000	/* between spares that fail */
#define DS_SPARE_BACKOFF_REMOTE_MS	4000	/* same, on the peer host */
#define DS_CMP_MAX	4096		/* output hashes to compare */
#define DS_AUDIT_BITS	12
#define DS_AUDIT_MAX	(1 << DS_AUDIT_BITS)	/* executed ids remembered */
#define DS_SNAP_MAX	(64ULL << 20)	/* snapshot region, sparse */
#define DS_SEED_TIMEOUT_MS	5000
#define DS_FAILED_MAX	1024		/* failed command ids remembered */
#define DS_HOLD_MAX	1024		/* commands held by an error stop */
#define DS_WRITTEN_BITS	12
#define DS_WRITTEN_MAX	(1 << DS_WRITTEN_BITS)	/* recent writes' epochs */
#define DS_BUILD_MAX		64	/* a driver's build id, as shown */

enum ds_state {
	DS_INLINE,
	DS_STARTING,
	DS_RUNNING,
	DS_DEAD,
};

struct ds_req {
	uint64_t seq;		/* 0: free */
	bool aborted;		/* guest answered already: outputs dropped */
	uint64_t t_ns;		/* submitted at */
	struct blk_req r;
};

/* A spare's way from spawned to mirrored (DESIGN.md section 3). */
enum ds_spare_state {
	SP_NONE,
	SP_HELLO,		/* spawned; its Pong: arena registered */
	SP_SNAPSHOT,		/* the active was asked for a snapshot */
	SP_LIVE,		/* seeded: gets every input, outputs compared */
};

/* One driver replica: its process, link and progress. */
struct ds_replica {
	struct devswitch *sw;
	pid_t pid;
	struct pv_chan *ch;
	bool remote;		/* on the peer host, over the network */
	uint32_t remote_pid;	/* its pid there (its HelloReply) */
	char who[96];		/* "pid N" or "tcp:HOST:PORT pid N", for logs */
	bool polled;
	short events;		/* what the loop watches it for */
	const char *failed;	/* why it must go, handled by ds_settle() */
	size_t snap_region;	/* bytes of the snapshot region registered
				 * on ch, 0 none */
	uint64_t arena_size;	/* HelloReply: its arena's bytes */
	uint64_t applied_seq;
	uint32_t resends;	/* re-sends since it last made progress */
	uint64_t ping_nonce;
	uint64_t ping_sent_ns;	/* of the ping with rtt_nonce */
	uint64_t rtt_ns;	/* the last ping's round trip */
	uint64_t rtt_nonce;	/* the ping being timed, 0: none */
	uint64_t bulk_seen;	/* its bulk bytes received, as last seen */
	uint64_t spawn_token;	/* its pid is still to come from the spawner */
	uint64_t last_heard_ns;	/* its last message: all come from its apply loop */
	uint64_t ping_wait_ns;	/* oldest ping sent since then, 0: none */
	uint64_t base_seq;	/* seeded at: outputs up to it not compared */
	uint32_t old_gen;	/* before promotion: late outputs dropped */
	/* its HelloReply: what it runs, and its build (logged, shown) */
	bool greeted;
	bool link_lost;		/* its session is being resumed (logged) */
	uint32_t layout_version;
	uint32_t machine_version;
	char build[DS_BUILD_MAX];
	uint32_t nr_acks;
	Pv__OutputId acks[DS_ACK_BATCH];
	Pv__OutputId *ackp[DS_ACK_BATCH];
};

/* A driver process that went, to be reaped from the loop. */
struct ds_zombie {
	pid_t pid;
	bool killed;		/* by us */
	const char *why;
	uint64_t t_ns;		/* let go at */
};

/* DESIGN.md's role table: the active, the spare, and the generation. */
struct ds_roles {
	uint32_t generation;
	struct ds_replica *active;
	struct ds_replica *spare;
	enum ds_spare_state spare_state;
};

/* A sequenced input as sent, kept until every replica applied it. */
struct ds_input {
	uint64_t seq;
	size_t len;
	uint8_t *buf;
};

/* An output hash waiting for the other replica's output of the same id. */
struct ds_cmp {
	uint64_t seq;
	uint32_t index;
	bool spare;
	uint64_t hash;
};

struct ds_audit {
	uint64_t seq;		/* 0: empty */
	uint32_t index;
};

/* A command that did not complete successfully, for those after it. */
struct ds_failed {
	uint64_t seq;
	uint32_t index;
	int status;		/* -errno */
};

/* A write that ran, under which flush epoch (durable once it passed). */
struct ds_written {
	uint64_t seq;
	uint32_t index;
	uint64_t epoch;
};

/* A command held by an error stop (werror/rerror=stop), packed. */
struct ds_held {
	uint8_t *buf;
	size_t len;
	uint64_t seq;		/* its output id, should it not unpack */
	uint32_t index;
};

/*
 * Test-only fault injection (vmm/README.md), off unless PAIRVISOR_FAULT
 * is set when the switch is created: at the Nth occurrence of an event
 * the active driver is SIGKILLed right there and treated as dead.
 */
enum ds_fault {
	DSF_NONE,
	DSF_COMMAND,		/* command executed, completion not sent */
	DSF_COMPLETION,		/* guest completion produced, not delivered */
	DSF_SEEDING,		/* snapshot asked, spare not seeded yet */
	DSF_GROW,		/* a write took the image into a new 8 MiB */
	DSF_FENCE_GEN,		/* promotion fences by generation only */
	DSF_ERROR,		/* a command of a kind fails, unrun, once */
};

#define DS_GROW_STEP	(8ULL << 20)	/* a refcount block, 4 KiB clusters */

struct devswitch {
	struct vm *vm;
	const struct vm_disk_config *dc;
	struct image *img;
	int index;
	ds_done_fn *done;
	void *owner;
	enum ds_state state;
	struct ds_roles roles;
	struct ds_replica rep[2];
	bool spare_wanted;	/* spare=local or spare=tcp: */
	const char *spare_url;	/* spare=tcp:...: where remote spares are */
	uint32_t hb_period_ms, hb_limit_ms, spare_lag;
	uint32_t link_timeout_ms;	/* a remote spare's silence limit */
	uint64_t spare_t0;		/* spawned at (seeding timeout) */
	uint64_t spare_retry_ns;	/* no new spare before */
	uint32_t spare_backoff_ms;
	uint64_t snap_nonce, snap_seq;	/* Snapshot asked after input */
	int snap_fd;			/* the snapshot region, -1: none */
	void *snap_map;
	uint64_t last_done_ns;		/* last completion to the guest */
	uint64_t fo_before_ns;		/* ... before the last failover */
	uint64_t fo_at_ns;		/* the last failover */
	bool fo_stall_pending;
	uint64_t ilog_lo;		/* inputs >= this are in ilog */
	struct ds_input ilog[DS_ILOG_MAX];
	uint32_t cmp_head, cmp_n;
	struct ds_cmp cmp[DS_CMP_MAX];
	struct ds_audit audit[DS_AUDIT_MAX];
	/* the executor: failed ids (a ring; ids up to the horizon evicted
	 * from it count as failed), unflushed writes, held commands */
	struct ds_failed failed[DS_FAILED_MAX];
	uint32_t failed_head, failed_n;
	struct ds_audit fail_horizon;	/* seq 0: nothing evicted */
	bool img_dirty;			/* written since the last flush */
	uint64_t flush_epoch;		/* flushes that succeeded */
	struct ds_written written[DS_WRITTEN_MAX];
	struct ds_held hold[DS_HOLD_MAX];
	uint32_t hold_head, hold_n;
	uint64_t next_seq;		/* next input sequence number */
	uint64_t exec_seq;		/* last executed output id */
	uint32_t exec_index;
	bool exec_any;
	uint64_t capacity;
	bool attached;
	char start_why[192];		/* why the driver did not attach */
	qb_loop_timer_handle ping_timer;
	bool timer_armed;
	Pv__Segment segs[BLK_SEG_MAX];
	Pv__Segment *segp[BLK_SEG_MAX];
	struct devswitch_stats stats;
	enum ds_fault fault;		/* test hook, DSF_NONE normally */
	uint64_t fault_n;
	int fault_op;			/* DSF_ERROR: CommandOp, -1: any */
	int fault_errno;
	struct ds_replica fenced;	/* DSF_FENCE_GEN: the old active */
	struct ds_zombie zombies[DS_ZOMBIES_MAX];
	int nzombies;
	uint64_t spawn_tokens;		/* drivers asked of the spawner */
	uint64_t start_ns;		/* the active started at (Attach due) */
	uint64_t restart_at[DS_RESTARTS_MAX];	/* the last restarts */
	struct ds_req *restart_pend;	/* restarting: requests to resubmit */
	int restart_n;
	struct ds_req reqs[DS_MAX_REQS];
	uint8_t rdata[PV_DATA_MAX];
	uint8_t tx[PV_MSG_MAX];
	uint8_t rx[PV_MSG_MAX];
	uint8_t hbuf[PV_MSG_MAX];
};

/* devswitch.c */
struct ds_req *ds_req_find(struct devswitch *sw, uint64_t seq);
void ds_req_abort(struct devswitch *sw, struct ds_req *q);
void ds_fail_all(struct devswitch *sw);
void ds_handle_active(struct devswitch *sw, struct ds_replica *rep,
		      const Pv__Envelope *env);
void ds_handle_spare(struct devswitch *sw, struct ds_replica *rep,
		     const Pv__Envelope *env);
int ds_hello(struct devswitch *sw);
int ds_wait_attach(struct devswitch *sw);

/* devswitch_router.c */
void ds_done_at(struct devswitch *sw);
int ds_send_input(struct devswitch *sw, uint64_t seq,
		  const Pv__Envelope *env);
void ds_flush_acks(struct devswitch *sw);
void ds_ack(struct devswitch *sw, const Pv__OutputId *id);
int ds_id_cmp(const struct devswitch *sw, const Pv__OutputId *id);
const char *ds_check_output(struct devswitch *sw,
			    const Pv__OutputId *id, uint32_t gen,
			    uint64_t **ctr);
uint64_t ds_out_hash(struct devswitch *sw, const Pv__Envelope *env,
		     uint32_t *gen);
void ds_compare(struct devswitch *sw, bool from_spare,
		const Pv__OutputId *id, uint64_t hash);
void ds_on_ack(struct devswitch *sw, struct ds_replica *rep,
	       const Pv__Ack *ack);
void ds_rep_fail(struct devswitch *sw, struct ds_replica *rep,
		 const char *why);
void ds_active_error(struct devswitch *sw, struct ds_replica *rep,
		     const Pv__Error *e);
void ds_spare_drop(struct devswitch *sw, const char *why);
void ds_settle(struct devswitch *sw);
void ds_driver_dead(struct devswitch *sw, const char *why);
bool ds_restart_queue(struct devswitch *sw, const struct blk_req *r);
void ds_restart_done(struct devswitch *sw);
void ds_snapshot_ask(struct devswitch *sw);
void ds_on_snapshot_ready(struct devswitch *sw,
			  const Pv__SnapshotReady *r);
void ds_spare_start(struct devswitch *sw);
void ds_ping(void *data);

/* devswitch_link.c */
int ds_send_raw(struct devswitch *sw, struct ds_replica *rep,
		const void *buf, size_t len);
int ds_send_to(struct devswitch *sw, struct ds_replica *rep,
	       const Pv__Envelope *env);
int ds_send(struct devswitch *sw, const Pv__Envelope *env);
int ds_send_error(struct devswitch *sw, int code, const char *msg);
void ds_poll_rep(struct devswitch *sw, struct ds_replica *rep);
void ds_reap(struct devswitch *sw, struct ds_replica *rep,
	     const char *why, bool fence);
void ds_reap_zombies(struct devswitch *sw, bool wait);
void ds_txq_flush(struct devswitch *sw, struct ds_replica *rep);
void ds_rep_move(struct devswitch *sw, struct ds_replica *rep,
		 struct ds_replica *to);
void ds_rep_end(struct devswitch *sw, struct ds_replica *rep,
		const char *why, bool fence);
void ds_unlink(struct devswitch *sw);
void ds_rep_init(struct devswitch *sw, struct ds_replica *rep,
		 struct pv_chan *ch, pid_t pid);
int ds_spawn(struct devswitch *sw, struct pv_chan **ch, uint64_t *token);
int ds_connect(struct devswitch *sw, struct pv_chan **ch);
void ds_spare_backoff(struct devswitch *sw);
void ds_rep_cork(struct ds_replica *rep);
void ds_rep_uncork(struct devswitch *sw, struct ds_replica *rep);
const char *ds_who(struct ds_replica *rep);
void ds_on_pong(struct devswitch *sw, struct ds_replica *rep,
		const Pv__Pong *pong);
void ds_link_stats_print(const struct devswitch *sw);

/* devswitch_check.c */
/* One log line about a driver's bad output (rate-limited per disk). */
void ds_log(struct devswitch *sw, const char *what, const char *why);
void ds_reject(struct devswitch *sw, const char *what, uint64_t *ctr,
	       struct ds_req *q, const char *why);
bool ds_op_writes(Pv__CommandOp op);
const char *ds_check_after(struct devswitch *sw,
			   const Pv__DeviceCommand *c);
const char *ds_check_command(struct devswitch *sw,
			     const Pv__DeviceCommand *c,
			     const struct ds_req *q);
const char *ds_check_gc(const Pv__GuestCompletion *g,
			const struct ds_req *q);
bool ds_metadata_read(const Pv__DeviceCommand *c);
const char *ds_check_attach(const struct devswitch *sw, const Pv__Attach *a);

/* devswitch_exec.c */
void ds_exec_command(struct devswitch *sw, const Pv__DeviceCommand *c,
		     struct ds_req *q);
void ds_complete(struct devswitch *sw, const Pv__OutputId *id, int status,
		 size_t rlen);
void ds_hold_drop(struct devswitch *sw);
void ds_inline(struct devswitch *sw, const struct blk_req *r);

/* devswitch_hooks.c */
void ds_fault_parse(struct devswitch *sw);
bool ds_fault_hit(struct devswitch *sw, enum ds_fault ev);
void ds_poll_fenced(struct devswitch *sw);
void ds_fence_gen(struct devswitch *sw, struct ds_replica *old);
void ds_fault_grow(struct devswitch *sw, const Pv__DeviceCommand *c,
		   uint64_t size_before);
int ds_fault_error(struct devswitch *sw, const Pv__DeviceCommand *c);

/* devswitch_compat.c */
/* The driver variant: the disk's format ("raw" when none is known). */
const char *ds_variant(const struct devswitch *sw);
void ds_hello_init(struct devswitch *sw, bool active, Pv__Hello *h);
void ds_on_hello_reply(struct devswitch *sw, struct ds_replica *rep,
		       const Pv__HelloReply *hr);
const char *ds_check_versions(struct devswitch *sw,
			      const Pv__SnapshotReady *r);

#endif
