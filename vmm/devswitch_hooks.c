// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only fault hooks of the device switch (vmm/README.md), off unless
 * PAIRVISOR_FAULT is set when a disk's switch is created, and logged as
 * TEST HOOK: kill the active at the Nth occurrence of an event, or fence
 * the old active by generation only at promotion (the router does that:
 * pv_router_config.fence_by_generation).
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
	pid_t pid = pv_router_pid(sw->rt, false);

	if (sw->fault != ev || !sw->fault_n || --sw->fault_n ||
	    pv_router_state(sw->rt) == PV_ROUTER_IDLE ||
	    pv_router_state(sw->rt) == PV_ROUTER_DEAD)
		return false;
	qb_log(LOG_WARNING, "disk%d: TEST HOOK: killing active pid %d at event %d",
	       sw->index, (int)pid, (int)ev);
	if (pid > 0)
		kill(pid, SIGKILL);
	pv_router_fail(sw->rt, false, "killed by the test hook");
	return true;
}

/* The router's ops->peek: the active dies with this completion made. */
bool ds_fault_peek(void *owner, const Pv__Envelope *env)
{
	return env->msg_case != PV__ENVELOPE__MSG_GUEST_COMPLETION ||
	       !ds_fault_hit(owner, DSF_COMPLETION);
}

/* The router's ops->seeding: the active dies with the snapshot asked. */
void ds_fault_seeding(void *owner)
{
	ds_fault_hit(owner, DSF_SEEDING);
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
