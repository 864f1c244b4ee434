// SPDX-License-Identifier: GPL-2.0
/*
 * The manager as a replica (mgr_replica.h): the replica runtime hosts
 * its state machine; inputs are Input{kind MGR_IN_REQUEST, data: a packed
 * ManagerInput}, each answered by one Output{kind MGR_OUT_REPLY, data: a
 * packed ManagerReply}.
 */
#include <errno.h>
#include <string.h>

#include "manager.h"
#include "mgr_replica.h"

static int mgr_rep_init(void *state)
{
	pv_mgr_init(state);
	return 0;
}

static int mgr_rep_reply(struct replica_out *out, uint64_t request_id,
			 int err, char *msg)
{
	Pvcl__ManagerReply r = PVCL__MANAGER_REPLY__INIT;
	Pv__Output o = PV__OUTPUT__INIT;
	Pv__Envelope env = PV__ENVELOPE__INIT;
	uint8_t buf[MGR_MSG_MAX + 64];

	r.request_id = request_id;
	r.error = err;
	r.message = msg;
	o.kind = MGR_OUT_REPLY;
	o.data.len = pvcl__manager_reply__pack(&r, buf);
	o.data.data = buf;
	env.msg_case = PV__ENVELOPE__MSG_OUTPUT;
	env.output = &o;
	return replica_emit(out, &env);
}

static int mgr_rep_apply(void *state, const Pv__Envelope *in,
			 struct replica_out *out)
{
	const Pv__Input *i = in->input;
	Pvcl__ManagerInput *mi;
	char msg[MGR_MSG_MAX];
	uint64_t id;
	int err;

	if (in->msg_case != PV__ENVELOPE__MSG_INPUT || i->kind != MGR_IN_REQUEST) {
		replica_out_fail(out, "not a manager request");
		return -EPROTO;
	}
	mi = pvcl__manager_input__unpack(NULL, i->data.len, i->data.data);
	if (!mi) {
		/* still an input applied, as an unknown request: the same
		 * on both replicas */
		Pvcl__ManagerInput none = PVCL__MANAGER_INPUT__INIT;

		err = pv_mgr_apply(state, &none, msg, sizeof(msg));
		return mgr_rep_reply(out, 0, err, msg);
	}
	id = mi->request_id;
	err = pv_mgr_apply(state, mi, msg, sizeof(msg));
	pvcl__manager_input__free_unpacked(mi, NULL);
	return mgr_rep_reply(out, id, err, msg);
}

static const struct replica_variant mgr_variants[] = {
	{ MGR_VARIANT, MGR_MACHINE_VERSION },
	{ NULL, 0 },
};

const struct replica_ops pv_mgr_replica_ops = {
	.name = "pairvisor-manager",
	.layout_version = MGR_LAYOUT_VERSION,
	.variants = mgr_variants,
	.state_size = sizeof(struct mgr_state),
	.max_output_bytes = MGR_MSG_MAX + 256,
	.init = mgr_rep_init,
	.apply = mgr_rep_apply,
};
