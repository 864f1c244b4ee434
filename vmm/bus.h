/* SPDX-License-Identifier: GPL-2.0 */
/*
 * I/O port and MMIO buses: a device claims a range and gets every guest
 * access inside it, with the offset relative to the start of its range.
 */
#ifndef PV_BUS_H
#define PV_BUS_H

#include <stdbool.h>
#include <stdint.h>

/* Return 0 when handled; reads fill @data with @len bytes. */
typedef int (*bus_access_fn)(void *opaque, uint64_t offset, void *data,
			     uint32_t len, bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_access_fn fn;
	void *opaque;
	const char *name;
};

#define BUS_MAX_RANGES	64

struct bus {
	const char *name;		/* "pio" or "mmio", for log lines */
	int nr;
	struct bus_range ranges[BUS_MAX_RANGES];	/* sorted by base */
};

void bus_init(struct bus *bus, const char *name);
int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 bus_access_fn fn, void *opaque, const char *name);
int bus_unregister(struct bus *bus, uint64_t base);
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr,
				 uint32_t len);
/* -ENOENT when nothing claims [addr, addr + len). */
int bus_dispatch(struct bus *bus, uint64_t addr, void *data, uint32_t len,
		 bool is_write);

#endif
