// SPDX-License-Identifier: GPL-2.0
/* Port and MMIO range lookup; callers hold vm->lock. */
#include <errno.h>
#include <string.h>

#include "bus.h"

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

static bool range_overlaps(const struct bus_range *r, uint64_t base,
			   uint64_t len)
{
	return base < r->base + r->len && r->base < base + len;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 bus_access_fn fn, void *opaque, const char *name)
{
	int i, pos;

	if (!len || base + len < base || !fn)
		return -EINVAL;
	if (bus->nr == BUS_MAX_RANGES)
		return -ENOSPC;
	for (i = 0; i < bus->nr; i++)
		if (range_overlaps(&bus->ranges[i], base, len))
			return -EBUSY;

	for (pos = 0; pos < bus->nr && bus->ranges[pos].base < base; pos++)
		;
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos],
		(bus->nr - pos) * sizeof(bus->ranges[0]));
	bus->ranges[pos] = (struct bus_range) {
		.base = base, .len = len, .fn = fn, .opaque = opaque,
		.name = name,
	};
	bus->nr++;
	return 0;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
	int i;

	for (i = 0; i < bus->nr; i++) {
		if (bus->ranges[i].base != base)
			continue;
		memmove(&bus->ranges[i], &bus->ranges[i + 1],
			(bus->nr - i - 1) * sizeof(bus->ranges[0]));
		bus->nr--;
		return 0;
	}
	return -ENOENT;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr,
				 uint32_t len)
{
	int lo = 0, hi = bus->nr - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		const struct bus_range *r = &bus->ranges[mid];

		if (addr < r->base) {
			hi = mid - 1;
		} else if (addr - r->base >= r->len) {
			lo = mid + 1;
		} else {
			/* the whole access must fall inside the range */
			if (len > r->len - (addr - r->base))
				return NULL;
			return r;
		}
	}
	return NULL;
}

int bus_dispatch(struct bus *bus, uint64_t addr, void *data, uint32_t len,
		 bool is_write)
{
	const struct bus_range *r = bus_find(bus, addr, len);

	if (!r)
		return -ENOENT;
	return r->fn(r->opaque, addr - r->base, data, len, is_write);
}
