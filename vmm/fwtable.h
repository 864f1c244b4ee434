/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the firmware tables the guest reads (mptable.c, acpi.c) share:
 * their byte checksum, the value that makes a table's bytes sum to 0.
 */
#ifndef PV_FWTABLE_H
#define PV_FWTABLE_H

#include <stddef.h>
#include <stdint.h>

static inline uint8_t fw_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

#endif
