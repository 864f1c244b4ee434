/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Run pairvisor-vmm as a child process for integration tests: capture its
 * console (stdout) and log (stderr), bound it in time, and always reap it.
 */
#ifndef PV_VMMRUN_H
#define PV_VMMRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmm_result {
	int status;		/* exit status, or 128 + signal */
	bool timed_out;		/* killed by the runner */
	bool matched;		/* @until was seen on the console */
	char *out;		/* console (stdout), NUL terminated */
	char *err;		/* log (stderr) */
};

/*
 * Run the VMM with @argv (argv[0] is ignored), at most @timeout_ms. When
 * @until is set, send SIGTERM as soon as the console contains it.
 */
int vmm_run(struct vmm_result *r, int timeout_ms, const char *until,
	    const char *const *argv);
/* The same with @input (at most 64 KiB) on the VMM's stdin, a pipe. */
int vmm_run_input(struct vmm_result *r, int timeout_ms, const char *until,
		  const char *const *argv, const void *input, size_t len);
void vmm_result_free(struct vmm_result *r);

/* CRC-32 (IEEE 802.3, as zlib's crc32()). */
uint32_t crc32_ieee(const void *buf, size_t len);

/* Write @len bytes to a fresh file in the test's temp dir; returns its path. */
char *tmpfile_write(const char *name, const void *buf, size_t len);
/* Read a whole file; NULL on error. */
void *file_slurp(const char *path, size_t *len);

#endif
