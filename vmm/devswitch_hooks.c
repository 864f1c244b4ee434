// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only fault hooks of the device switch (vmm/README.md), off unless
 * PAIRVISOR_FAULT is set when a disk's switch is created, and logged as
 * TEST HOOK: kill the active at the Nth occurrence of an event, or fence
 * the old active by generation only at promotion.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <qb/qblog.h>

#include "devswitch_priv.h"
#include "image.h"
#include "transport.h"
#include "vm.h"

/*
 * eio:OP:N, enospc:OP:N: the Nth command of kind OP (the CommandOp name
 * without CMD_, any case, or "any") fails with EIO or ENOSPC, unrun.
 */
static bool ds_fault_parse_error(struct devswitch *sw, const char *v)
{
	const ProtobufCEnumDescriptor *d = &pv__command_op__descriptor;
	char op[32];
	unsigned long long n;
	int len;

	if (!strncmp(v, "eio:", 4))
		sw->fault_errno = EIO;
	else if (!strncmp(v, "enospc:", 7))
		sw->fault_errno = ENOSPC;
	else
		return false;
	v = strchr(v, ':') + 1;
	if (sscanf(v, "%31[a-z_]:%llu%n", op, &n, &len) != 2 || v[len] || !n)
		return false;
	sw->fault_op = -1;
	for (unsigned int i = 0; strcmp(op, "any") && i < d->n_values; i++)
		if (!strcasecmp(op, d->values[i].name + 4))
			sw->fault_op = d->values[i].value;
	if (sw->fault_op < 0 && strcmp(op, "any"))
		return false;
	sw->fault = DSF_ERROR;
	sw->fault_n = n;
	return true;
}

void ds_fault_parse(struct devswitch *sw)
{
	static const struct {
		const char *name;
		enum ds_fault f;
	} ev[] = {
		{ "command:", DSF_COMMAND },
		{ "completion:", DSF_COMPLETION },
		{ "seeding:", DSF_SEEDING },
		{ "grow:", DSF_GROW },
	};
	const char *v = getenv("PAIRVISOR_FAULT");

	if (!v || !*v)
		return;
	if (!strcmp(v, "fence:generation"))
		sw->fault = DSF_FENCE_GEN;
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++)
		if (!strncmp(v, ev[i].name, strlen(ev[i].name))) {
			sw->fault_n = strtoull(v + strlen(ev[i].name), NULL, 10);
			sw->fault = sw->fault_n ? ev[i].f : DSF_NONE;
		}
	ds_fault_parse_error(sw, v);
	qb_log(LOG_WARNING, "disk%d: TEST HOOK PAIRVISOR_FAULT=%s %s",
	       sw->index, v, sw->fault ? "armed" : "not understood, ignored");
}

/* DSF_ERROR: the chosen command fails here, unrun; 0 for the others. */
int ds_fault_error(struct devswitch *sw, const Pv__DeviceCommand *c)
{
	if (sw->fault != DSF_ERROR || !sw->fault_n ||
	    (sw->fault_op >= 0 && (int)c->op != sw->fault_op) ||
	    --sw->fault_n)
		return 0;
	qb_log(LOG_WARNING, "disk%d: TEST HOOK: command (%" PRIu64 ", %u) at %"
	       PRIu64 " fails with %s", sw->index, c->id->seq, c->id->index,
	       c->offset, strerror(sw->fault_errno));
	return -sw->fault_errno;
}

/* At the fault_n-th @ev, SIGKILL the active here; true if it was. */
bool ds_fault_hit(struct devswitch *sw, enum ds_fault ev)
{
	struct ds_replica *a = sw->roles.active;

	if (sw->fault != ev || !sw->fault_n || --sw->fault_n || !a)
		return false;
	qb_log(LOG_WARNING, "disk%d: TEST HOOK: killing active pid %d at event %d",
	       sw->index, (int)a->pid, (int)ev);
	if (a->pid > 0)
		kill(a->pid, SIGKILL);
	ds_rep_fail(sw, a, "killed by the test hook");
	return true;
}

/*
 * DSF_FENCE_GEN: the old active runs on, its channel still read; what it
 * sends is refused on its generation alone (counted, never executed, its
 * request not failed: the new active answers it).
 */
void ds_poll_fenced(struct devswitch *sw)
{
	struct ds_replica *f = &sw->fenced;

	for (int i = 0; f->ch && i < DS_POLL_BATCH; i++) {
		ssize_t n = pv_chan_recv(f->ch, sw->rx, sizeof(sw->rx));
		const char *why = NULL;
		Pv__OutputId *id = NULL;
		uint32_t *gen = NULL;
		Pv__Envelope *env;

		if (n == -EAGAIN || n == -EINTR)
			return;
		if (n <= 0) {
			ds_rep_end(sw, f, "fenced, it hung up", true);
			return;
		}
		env = pv_msg_decode(sw->rx, n, &why);
		if (env)
			id = pv_msg_output_id(env, &gen);
		if (gen && *gen != sw->roles.generation) {
			if (!sw->stats.fenced_rejected++)
				qb_log(LOG_WARNING, "disk%d: fenced pid %d: output (%" PRIu64
				       ", %u) of generation %u rejected", sw->index,
				       (int)f->pid, id->seq, id->index, *gen);
			sw->stats.stale_generation++;
		} else if (gen) {
			sw->stats.proto_errors++;
		}
		pv_msg_free(env);
	}
}

/* Test hook: keep the old active's process and channel, fenced by gen. */
void ds_fence_gen(struct devswitch *sw, struct ds_replica *old)
{
	qb_log(LOG_WARNING, "disk%d: TEST HOOK: pid %d fenced by generation only (not killed)",
	       sw->index, (int)old->pid);
	ds_rep_move(sw, old, &sw->fenced);
	sw->fenced.failed = NULL;
}

/* DSF_GROW: @c took the image into a new DS_GROW_STEP. */
void ds_fault_grow(struct devswitch *sw, const Pv__DeviceCommand *c,
		   uint64_t size_before)
{
	if (sw->fault != DSF_GROW || !ds_op_writes(c->op) ||
	    (sw->img->size - 1) / DS_GROW_STEP <=
	    (size_before - 1) / DS_GROW_STEP)
		return;
	qb_log(LOG_INFO, "disk%d: TEST HOOK: grow: write of %" PRIu64
	       " bytes at %" PRIu64, sw->index, c->op ==
	       PV__COMMAND_OP__CMD_WRITE_DATA ? (uint64_t)c->data.len :
	       c->length, c->offset);
	ds_fault_hit(sw, DSF_GROW);
}
