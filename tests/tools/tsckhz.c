// SPDX-License-Identifier: GPL-2.0
/*
 * tsckhz: print the TSC rate in kHz, measured against CLOCK_MONOTONIC
 * over ~200 ms (median of 5). The test guest's blkbench reports TSC
 * ticks; KVM guests here see the host's TSC rate, so this converts them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

#define ROUNDS	5

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint64_t tsc_khz_once(void)
{
	struct timespec d = { 0, 40 * 1000 * 1000 };
	uint64_t t0 = now_ns(), c0 = __rdtsc(), t1, c1;

	nanosleep(&d, NULL);
	c1 = __rdtsc();
	t1 = now_ns();
	return (c1 - c0) * 1000000ULL / (t1 - t0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	uint64_t k[ROUNDS];

	for (int i = 0; i < ROUNDS; i++)
		k[i] = tsc_khz_once();
	qsort(k, ROUNDS, sizeof(k[0]), cmp_u64);
	printf("%llu\n", (unsigned long long)k[ROUNDS / 2]);
	return 0;
}
