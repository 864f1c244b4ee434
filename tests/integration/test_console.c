// SPDX-License-Identifier: GPL-2.0
/*
 * The serial console on a unix socket (--console-socket, vmm/console.c)
 * with the test guest's echo workload, which counts and checksums what
 * it reads until an EOT: a client that is not permitted is refused; the
 * first sends input and hangs up at once, its output (the backlog) left
 * unread, which resets the connection: its input must all reach the
 * guest all the same, while a second client is refused as busy; then
 * `pairctl vm console` (no pairvisord here: the socket of a VMM started
 * by hand) gets in, shows the backlog (the guest's banner), sends the
 * rest and prints the guest's verdict. The VMM's own output keeps
 * everything.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "console.h"
#include "cunit_main.h"
#include "vmmrun.h"

#define TIMEOUT_MS	60000
#define PART		4096
#define NOBODY		65534

static char name[32];

static int con_connect(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1,
			 PV_CONSOLE_PREFIX "%s", name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a,
			       offsetof(struct sockaddr_un, sun_path) + 1 + n)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Read from @fd until @what shows (or EOF, or 10 s): what came. */
static char *con_read_until(int fd, const char *what)
{
	struct timeval tv = { .tv_sec = 10 };
	size_t len = 0, cap = 65536;
	char *buf = calloc(1, cap);
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (buf && len < cap - 1 && !strstr(buf, what)) {
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += n;
		buf[len] = '\0';
	}
	return buf;
}

/* A client as user nobody: what the VMM tells it. */
static int con_as_nobody(void *unused)
{
	char *out;
	int fd;

	(void)unused;
	if (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
		return 3;
	fd = con_connect();
	if (fd < 0)
		return 4;
	out = con_read_until(fd, "\n");
	return out && strstr(out, PV_CONSOLE_REFUSED "permission denied") ? 0 : 5;
}

static int run_child(int (*fn)(void *))
{
	pid_t pid = fork();
	int st;

	if (!pid)
		_exit(fn(NULL));
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void fill(char *p, size_t len, int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = 'a' + (i * seed) % 26;
}

static void test_console_socket(void)
{
	char sock[64], args[160], want[80], input[2 * PART + 1], *out, *f;
	const char *argv[] = { "pairvisor-vmm", "--memory", "64M", "--kernel",
			       PV_GUEST_PATH, "--cmdline", "pvtest=echo",
			       "--name", name, "--console-socket", sock, NULL };
	struct vmm_result r;
	int fd, busy, st;
	pid_t vmm;

	snprintf(name, sizeof(name), "con%d", (int)getpid());
	snprintf(sock, sizeof(sock), "@" PV_CONSOLE_PREFIX "%s", name);
	fill(input, 2 * PART, 7);
	input[2 * PART] = 0x04;	/* EOT ends the workload */
	f = tmpfile_write("rest.in", input + PART, PART + 1);
	vmm = vmm_start(argv, NULL);
	CU_ASSERT_FATAL(vmm > 0);
	CU_ASSERT_FATAL(vmm_console_wait("PVGUEST initrd none", TIMEOUT_MS));

	CU_ASSERT_EQUAL(run_child(con_as_nobody), 0);
	fd = con_connect();
	CU_ASSERT_FATAL(fd >= 0);
	busy = con_connect();
	out = busy >= 0 ? con_read_until(busy, "\n") : NULL;
	CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, PV_CONSOLE_REFUSED "busy") : NULL);
	free(out);
	if (busy >= 0)
		close(busy);
	/* more than the FIFO holds, and gone before the guest read it,
	 * leaving the backlog unread */
	CU_ASSERT_EQUAL(send(fd, input, PART, MSG_NOSIGNAL), PART);
	close(fd);

	/* the session ends once that input is in: then pairctl's turn */
	snprintf(args, sizeof(args), "vm console %s --timeout 20 < %s", name, f);
	for (int t = 0; t < 100; t++) {
		out = pairctl_run(args, &st);
		if (st != 1 || !strstr(out, "busy"))
			break;
		free(out);
		sleep_ms(100);
	}
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "Connected to domain"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "PVGUEST pairvisor test guest"));
	snprintf(want, sizeof(want), "PVTEST echo PASS bytes=%d crc32=0x%08x",
		 2 * PART, crc32_ieee(input, 2 * PART));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	free(out);

	vmm_finish(&r, vmm, TIMEOUT_MS);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "PVGUEST pairvisor test guest"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, "console: 2 sessions, "));
	vmm_result_free(&r);
}

/* pairctl's answers when it cannot attach. */
static void test_console_errors(void)
{
	char *out;
	int st;

	out = pairctl_run("vm console", &st);
	CU_ASSERT_EQUAL(st, 2);
	free(out);
	out = pairctl_run("vm console x --timeout soon", &st);
	CU_ASSERT_EQUAL(st, 2);
	free(out);
	out = pairctl_run("vm console nosuchvm </dev/null", &st);
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "vm nosuchvm offers no console on this host"));
	free(out);
}

static CU_TestInfo tests[] = {
	{ "console socket: access, backlog, one session, input", test_console_socket },
	{ "pairctl vm console: usage and no such console", test_console_errors },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "console", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
