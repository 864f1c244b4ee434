// SPDX-License-Identifier: GPL-2.0
/*
 * smp workload: start every AP the MP table lists the hardware way (INIT,
 * SIPI through the xAPIC ICR, real-mode trampoline at TRAMP_ADDR), let each
 * CPU checksum its own memory range at CPL3, and check the results.
 * smp_start() runs any other CPL3 function on the APs the same way.
 */
#include "guest.h"

#define ICR_INIT	0x00004500	/* INIT, level assert */
#define ICR_SIPI	0x00004600	/* start-up */
#define ICR_BUSY	0x00001000	/* delivery status: send pending */
#define SVR_ENABLE	0x100

#define WORK_BYTES	65536
#define WORK_ROUNDS	64

volatile u32 ap_cpu;		/* read by ap_entry64: which CPU starts */
static void (*volatile ap_fn)(u32 cpu);	/* what the APs run */
static volatile u32 ap_alive[MAX_CPUS];
static volatile u32 ap_done[MAX_CPUS];
static volatile u32 ap_result[MAX_CPUS];
static u8 work_mem[MAX_CPUS][WORK_BYTES] __attribute__((aligned(4096)));

/* Fill this CPU's range with a xorshift stream and CRC it, WORK_ROUNDS times. */
static u32 smp_work(u32 cpu)
{
	u64 x = 0x9e3779b97f4a7c15ULL * (cpu + 1);
	u32 crc = 0, r, i;
	u64 *m = (u64 *)work_mem[cpu];

	for (r = 0; r < WORK_ROUNDS; r++) {
		for (i = 0; i < WORK_BYTES / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			m[i] = x;
		}
		crc = crc32(crc, m, WORK_BYTES);
		x ^= crc;
	}
	return crc;
}

static void smp_work_ap(u32 cpu)
{
	ap_result[cpu] = smp_work(cpu);
}

void smp_ap_main(u32 cpu)
{
	ap_alive[cpu] = 1;
	ap_fn(cpu);
	barrier();
	ap_done[cpu] = 1;
	for (;;)
		user_park();
}

static bool spin_until(volatile u32 *flag, unsigned long limit)
{
	unsigned long i;

	for (i = 0; i < limit; i++) {
		if (*flag)
			return true;
		cpu_relax();
	}
	return false;
}

static bool icr_send(u8 apic_id, u32 cmd)
{
	unsigned long i;

	lapic_write(LAPIC_ICR_HI, (u32)apic_id << 24);
	lapic_write(LAPIC_ICR_LO, cmd);
	for (i = 0; i < 1000000; i++) {
		if (!(lapic_read(LAPIC_ICR_LO) & ICR_BUSY))
			return true;
		cpu_relax();
	}
	return false;
}

static void spin_delay(unsigned long n)
{
	while (n--)
		cpu_relax();
}

/* INIT, SIPI, and a second SIPI if the AP has not shown up (as Linux does). */
static bool smp_boot_ap(u32 cpu, u8 apic_id)
{
	int tries;

	ap_cpu = cpu;
	ap_alive[cpu] = 0;
	ap_done[cpu] = 0;
	barrier();
	if (!icr_send(apic_id, ICR_INIT))
		return false;
	spin_delay(100000);
	for (tries = 0; tries < 2; tries++) {
		if (!icr_send(apic_id, ICR_SIPI | SIPI_VECTOR))
			return false;
		/* ~25 ms for the first SIPI, then the full bound */
		if (spin_until(&ap_alive[cpu], tries ? SPIN_LIMIT : 1000000))
			return true;
	}
	return false;
}

u32 smp_start(u32 max, void (*fn)(u32 cpu), const char **why)
{
	static char msg[64];
	u32 cpu, i;

	if (mp.error || !mp.ncpus) {
		*why = mp.error ? mp.error : "no CPUs in the MP table";
		return 0;
	}
	ap_fn = fn;
	lapic_write(LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
	memcpy((void *)TRAMP_ADDR, tramp_start, tramp_end - tramp_start);
	for (i = 0, cpu = 1; i < mp.ncpus && cpu < max; i++) {
		if (i == mp.bsp_index)
			continue;
		if (!smp_boot_ap(cpu, mp.apic_id[i])) {
			snprintf(msg, sizeof(msg), "cpu%u (apic %u) did not start",
				 cpu, mp.apic_id[i]);
			*why = msg;
			return 0;
		}
		cpu++;
	}
	return cpu;
}

bool smp_wait(u32 cpu)
{
	return spin_until(&ap_done[cpu], SPIN_LIMIT);
}

void smp_run(void)
{
	char line[200];
	const char *why;
	u32 cpu, n = mp.ncpus, len;

	if (!smp_start(MAX_CPUS, smp_work_ap, &why)) {
		result("smp", false, "cpus=%u %s", n, why);
		return;
	}
	ap_result[0] = smp_work(0);
	len = snprintf(line, sizeof(line), "cpus=%u cpu0=0x%08x", n,
		       ap_result[0]);
	for (cpu = 1; cpu < n; cpu++) {
		if (!smp_wait(cpu)) {
			result("smp", false, "cpus=%u cpu%u did not finish", n, cpu);
			return;
		}
		if (ap_result[cpu] != smp_work(cpu)) {
			result("smp", false, "cpus=%u cpu%u computed 0x%08x, expected 0x%08x",
			       n, cpu, ap_result[cpu], smp_work(cpu));
			return;
		}
		len += snprintf(line + len, sizeof(line) - len, " cpu%u=0x%08x",
				cpu, ap_result[cpu]);
		if (len >= sizeof(line))
			len = sizeof(line) - 1;
	}
	result("smp", true, "%s", line);
}
