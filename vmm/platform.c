// SPDX-License-Identifier: GPL-2.0
/*
 * Small platform ports: the test exit device (the guest writes a status
 * byte v, the VMM exits with status v) and the POST diagnostic port 0x80,
 * which Linux writes for I/O delays and which must stay silent.
 */
#include <errno.h>

#include <qb/qblog.h>

#include "layout.h"
#include "vm.h"

static int testexit_access(void *opaque, uint64_t off, void *data,
			   uint32_t len, bool is_write)
{
	struct vm *vm = opaque;
	uint8_t v = *(uint8_t *)data;

	(void)off;
	(void)len;
	if (!is_write) {
		*(uint8_t *)data = 0;
		return 0;
	}
	qb_log(LOG_INFO, "guest wrote %u to the test exit port", v);
	vm_request_stop(vm, VM_STOP_TESTEXIT, v);
	return 0;
}

static int post_access(void *opaque, uint64_t off, void *data, uint32_t len,
		       bool is_write)
{
	(void)opaque;
	(void)off;
	if (!is_write) {
		for (uint32_t i = 0; i < len; i++)
			((uint8_t *)data)[i] = 0xff;
	}
	return 0;
}

static int platform_init(struct vm *vm, void **priv)
{
	int err;

	*priv = NULL;
	err = bus_register(&vm->pio, PV_PORT_TESTEXIT, 1, testexit_access, vm,
			   "testexit");
	if (err)
		return err;
	return bus_register(&vm->pio, PV_PORT_POST, 1, post_access, vm,
			    "post");
}

static void platform_exit(struct vm *vm, void *priv)
{
	(void)priv;
	bus_unregister(&vm->pio, PV_PORT_TESTEXIT);
	bus_unregister(&vm->pio, PV_PORT_POST);
}

VM_DEVICE(platform, .name = "platform", .level = VM_DEV_PLATFORM,
	  .init = platform_init, .exit = platform_exit);
