/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The serial console offered on a unix socket (--console-socket PATH),
 * for `pairctl vm console NAME` (or socat): console.c.
 */
#ifndef PV_CONSOLE_H
#define PV_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

/*
 * pairvisord offers each guest's console as the abstract socket
 * "@" PV_CONSOLE_PREFIX NAME: per network namespace, as the libqb
 * services of pairvisord and the VMMs are, so per host.
 */
#define PV_CONSOLE_PREFIX	"pairvisor-console."
/* The first bytes of the line a refused client gets before the close. */
#define PV_CONSOLE_REFUSED	"pairvisor-vmm: console refused: "
/* What a client that attaches gets first: the guest's last output. */
#define CONSOLE_BACKLOG		(16 * 1024)

struct vm;
struct console;

/* Where a client's input goes: the UART's RX FIFO (serial.c). */
struct console_sink {
	void *opaque;
	/*
	 * Room for input now (vm->lock held). When it says 0 the sink
	 * calls console_input_resume() once there is room again.
	 */
	size_t (*room)(void *opaque);
	/* At most room() bytes (vm->lock held). */
	void (*put)(void *opaque, const uint8_t *buf, size_t len);
};

/*
 * Listen on @path ("@NAME": an abstract name) in @vm's main loop. 0 or
 * -errno, logged: a path that another live process serves is -EADDRINUSE.
 */
int console_open(struct vm *vm, const char *path,
		 const struct console_sink *sink, struct console **out);
/* Stop listening, drop the client, unlink the path; NULL is fine. */
void console_close(struct console *c);
/* A byte the guest sent (vCPU thread, vm->lock held): never waits. */
void console_output(struct console *c, uint8_t byte);
/* The sink has room again (main loop): read the client again. */
void console_input_resume(struct console *c);

#endif
