// SPDX-License-Identifier: GPL-2.0
/*
 * bootbench: boot-time and memory figures for pairvisor-vmm, and the same
 * Debian bzImage under QEMU for comparison. Prints medians; asserts nothing.
 *
 *  test guest:  VMM start (fork+exec) -> guest's first instruction (vCPU 0's
 *               first KVM_RUN, from --stats) and -> first serial line;
 *               VMM CPU time until the first instruction; peak RSS beyond
 *               guest RAM (VmHWM - guest RAM resident, from --stats).
 *  Debian:      start -> first console line ("KASLR disabled") and peak RSS
 *               (wait4's ru_maxrss) for pairvisor-vmm, QEMU -M microvm and
 *               QEMU -M pc, all -accel kvm, the same kernel and command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS	100
#define OUTBUF		(1 << 20)
#define LINUX_CMDLINE	"earlyprintk=serial,ttyS0 nokaslr console=ttyS0"
#define LINUX_LINE	"KASLR disabled: 'nokaslr' on cmdline.\r\n"	/* whole line */

struct bench_opts {
	int runs;
	int timeout_s;
	const char *vmm;
	const char *guest;
	const char *linux_kernel;
	const char *qemu;
	bool skip_qemu;
};

struct run {
	bool ok;		/* the line was seen in time */
	double line_ms;		/* start -> line */
	double maxrss_mib;	/* wait4 ru_maxrss */
	uint64_t t0_ns;		/* CLOCK_MONOTONIC just before fork */
	char *err;		/* stderr, for --stats */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static pid_t spawn(const char *const *argv, int *out, int *err)
{
	int po[2], pe[2];
	pid_t pid;

	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);

		dup2(in, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	*out = po[0];
	*err = pe[0];
	return pid;
}

static void buf_read(int fd, char *buf, size_t *len, bool *open)
{
	ssize_t n = read(fd, buf + *len, OUTBUF - 1 - *len);

	if (n <= 0) {
		*open = false;
		return;
	}
	*len += n;
	buf[*len] = '\0';
}

/*
 * Run @argv until its stdout contains @line (then SIGTERM it if @term) or
 * until it exits; at most @timeout_s.
 */
static void run_one(const char *const *argv, const char *line, bool term,
		    int timeout_s, struct run *r)
{
	static char out[OUTBUF], err[OUTBUF];
	size_t olen = 0, elen = 0;
	bool oopen = true, eopen = true;
	uint64_t t0 = now_ns(), deadline = t0 + timeout_s * 1000000000ULL;
	struct rusage ru;
	int ofd, efd, st;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->t0_ns = t0;
	out[0] = err[0] = '\0';
	pid = spawn(argv, &ofd, &efd);
	if (pid < 0)
		return;
	while ((oopen || eopen) && now_ns() < deadline) {
		struct pollfd p[2] = { { oopen ? ofd : -1, POLLIN, 0 },
				       { eopen ? efd : -1, POLLIN, 0 } };

		if (poll(p, 2, 100) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			buf_read(ofd, out, &olen, &oopen);
		if (p[1].revents)
			buf_read(efd, err, &elen, &eopen);
		if (!r->ok && strstr(out, line)) {
			r->ok = true;
			r->line_ms = (now_ns() - t0) / 1e6;
			if (term)
				kill(pid, SIGTERM);
		}
	}
	if (oopen || eopen)
		kill(pid, SIGKILL);	/* timed out */
	wait4(pid, &st, 0, &ru);
	close(ofd);
	close(efd);
	r->maxrss_mib = ru.ru_maxrss / 1024.0;
	r->err = strdup(err);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t stat_field(const char *err, const char *key)
{
	const char *p = strstr(err, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static void bench_guest(const struct bench_opts *o)
{
	const char *argv[] = { o->vmm, "--stats", "--memory", "256M",
			       "--vcpus", "1", "--kernel", o->guest,
			       "--cmdline", "pvtest=hello", NULL };
	double insn[MAX_RUNS], line[MAX_RUNS], cpu[MAX_RUNS], ovh[MAX_RUNS];
	int n = 0;

	for (int i = 0; i < o->runs; i++) {
		struct run r;
		uint64_t t_run;

		run_one(argv, "\n", false, o->timeout_s, &r);
		t_run = stat_field(r.err, "t_first_run_ns=");
		if (r.ok && t_run > r.t0_ns) {
			insn[n] = (t_run - r.t0_ns) / 1e6;
			line[n] = r.line_ms;
			cpu[n] = stat_field(r.err, "cpu_us_first_run=") / 1e3;
			ovh[n] = stat_field(r.err, "overhead_kib=") / 1024.0;
			n++;
		}
		free(r.err);
	}
	printf("test guest, pairvisor-vmm, %d of %d runs, medians:\n", n, o->runs);
	printf("  start -> first guest instruction   %8.2f ms\n", median(insn, n));
	printf("  start -> first serial line         %8.2f ms\n", median(line, n));
	printf("  VMM CPU time to first instruction  %8.2f ms\n", median(cpu, n));
	printf("  peak RSS beyond guest RAM          %8.2f MiB\n", median(ovh, n));
}

struct linux_fig {
	const char *name;
	int ok;
	double line_ms, rss_mib;
};

static void bench_linux_one(const struct bench_opts *o, const char *const *argv,
			    struct linux_fig *f)
{
	double line[MAX_RUNS], rss[MAX_RUNS];
	int n = 0;

	for (int i = 0; i < o->runs; i++) {
		struct run r;

		run_one(argv, LINUX_LINE, true, o->timeout_s, &r);
		free(r.err);
		if (!r.ok) {
			printf("  %-28s no first line within %d s (run %d)\n",
			       f->name, o->timeout_s, i + 1);
			break;	/* it will not get faster: skip the rest */
		}
		line[n] = r.line_ms;
		rss[n] = r.maxrss_mib;
		n++;
	}
	f->ok = n;
	f->line_ms = median(line, n);
	f->rss_mib = median(rss, n);
	if (n)
		printf("  %-28s %3d runs  first line %9.1f ms  peak RSS %7.1f MiB\n",
		       f->name, n, f->line_ms, f->rss_mib);
}

static void bench_linux(const struct bench_opts *o)
{
	const char *ours[] = { o->vmm, "--memory", "512M", "--kernel",
			       o->linux_kernel, "--cmdline", LINUX_CMDLINE, NULL };
	const char *microvm[] = { o->qemu, "-accel", "kvm", "-M", "microvm",
		"-m", "512M", "-nodefaults", "-no-user-config", "-nographic",
		"-serial", "stdio", "-kernel", o->linux_kernel,
		"-append", LINUX_CMDLINE, NULL };
	const char *pc[] = { o->qemu, "-accel", "kvm", "-M", "pc",
		"-m", "512M", "-nodefaults", "-no-user-config", "-nographic",
		"-serial", "stdio", "-kernel", o->linux_kernel,
		"-append", LINUX_CMDLINE, NULL };
	struct linux_fig f[3] = { { .name = "pairvisor-vmm" },
				  { .name = "qemu -accel kvm -M microvm" },
				  { .name = "qemu -accel kvm -M pc" } };

	printf("Debian kernel %s, to its first console line, medians:\n",
	       o->linux_kernel);
	bench_linux_one(o, ours, &f[0]);
	if (o->skip_qemu)
		return;
	bench_linux_one(o, microvm, &f[1]);
	bench_linux_one(o, pc, &f[2]);
	for (int i = 1; i < 3; i++) {
		if (!f[0].ok || !f[i].ok)
			continue;
		printf("  %-28s / pairvisor: time x%.1f, peak RSS x%.1f\n",
		       f[i].name, f[i].line_ms / f[0].line_ms,
		       f[i].rss_mib / f[0].rss_mib);
	}
}

static const char usage[] =
"Usage: bootbench --vmm PATH --guest PATH --linux BZIMAGE [--runs N]\n"
"                 [--timeout S] [--qemu PATH] [--skip-qemu]\n";

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vmm", required_argument, NULL, 'v' },
		{ "guest", required_argument, NULL, 'g' },
		{ "linux", required_argument, NULL, 'l' },
		{ "qemu", required_argument, NULL, 'q' },
		{ "runs", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "skip-qemu", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_opts o = { .runs = 10, .timeout_s = 120,
				.qemu = "qemu-system-x86_64" };
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'v': o.vmm = optarg; break;
		case 'g': o.guest = optarg; break;
		case 'l': o.linux_kernel = optarg; break;
		case 'q': o.qemu = optarg; break;
		case 'n': o.runs = atoi(optarg); break;
		case 't': o.timeout_s = atoi(optarg); break;
		case 's': o.skip_qemu = true; break;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (!o.vmm || !o.guest || !o.linux_kernel || o.runs < 1 ||
	    o.runs > MAX_RUNS || o.timeout_s < 1) {
		fputs(usage, stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	bench_guest(&o);
	bench_linux(&o);
	return 0;
}
