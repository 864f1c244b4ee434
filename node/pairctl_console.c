// SPDX-License-Identifier: GPL-2.0
/*
 * pairctl vm console NAME [--timeout S]: the guest's serial console, as
 * virsh console. This host's pairvisord says where NAME runs; here, the
 * VMM's console socket (@PV_CONSOLE_PREFIX NAME, vmm/console.h) is
 * relayed: standard input to the guest, the guest's output (first the
 * last 16 KiB of it) to standard output. With no pairvisord here, the
 * socket of a VMM started by hand is looked for all the same.
 *
 * On a terminal: raw mode (restored at the end), ^] detaches. Otherwise
 * (a script): standard input is sent until its end, then the output
 * printed until the console closes (the guest ended) or --timeout.
 * "Connected to domain NAME" and the escape line go to standard error,
 * so standard output holds the guest's bytes alone.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "console.h"
#include "pairctl.h"

#define PCTL_ESCAPE	0x1d	/* ^] */
#define PCTL_VERDICT_MS	500	/* how long a refusal is waited for */
#define PCTL_BUF	4096

struct pctl_console {
	const char *name;
	int fd;			/* the VMM's console socket */
	int sfd;		/* signalfd: SIGTERM, SIGHUP, SIGINT */
	bool tty;		/* stdin is a terminal: raw mode, ^] */
	bool in_eof;
	struct termios saved;
	uint8_t in[PCTL_BUF];	/* standard input not sent yet */
	size_t in_off, in_len;
	long timeout_ms;	/* -1: none */
};

/*
 * Where @name runs, as this host's pairvisord says: 0 here (or no
 * pairvisord runs here), else an exit status, the reason said.
 */
static int pctl_console_where(const char *name)
{
	Pvcl__Request req = PVCL__REQUEST__INIT;
	Pvcl__StatusRequest sr = PVCL__STATUS_REQUEST__INIT;
	const Pvcl__VmInfo *v = NULL;
	const Pvcl__ClusterStatus *st;
	Pvcl__Reply *r = NULL;
	int err, ret = 1;

	req.req_case = PVCL__REQUEST__REQ_STATUS;
	req.status = &sr;
	err = pctl_ask(&req, &r);
	if (err)
		return err == -ENOENT ? 0 : 1;
	st = r->status;
	for (size_t i = 0; st && i < st->n_vms && !v; i++)
		if (!strcmp(st->vms[i]->def->name, name))
			v = st->vms[i];
	if (!st)
		fprintf(stderr, "pairctl: pairvisord sent no status\n");
	else if (!v)
		fprintf(stderr, "pairctl: no vm %s in the cluster (pairctl vm list)\n",
			name);
	else if (strcmp(v->state, "running") && strcmp(v->state, "starting"))
		fprintf(stderr, "pairctl: vm %s is not running (%s)\n", name,
			v->state);
	else if (strcmp(v->host, st->local_host))
		fprintf(stderr, "pairctl: vm %s runs on host %s, not on this one (%s): run 'pairctl vm console %s' on %s\n",
			name, v->host, st->local_host, name, v->host);
	else
		ret = 0;
	pvcl__reply__free_unpacked(r, NULL);
	return ret;
}

/* The console socket of @name's VMM here: a fd, or -1 (said why). */
static int pctl_console_connect(const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t room = sizeof(a.sun_path) - 1;
	int n = snprintf(a.sun_path + 1, room, PV_CONSOLE_PREFIX "%s", name);
	socklen_t len = sizeof(struct ucred);
	struct ucred cr = { .uid = (uid_t)-1 };
	int fd;

	if (n < 0 || (size_t)n >= room) {
		fprintf(stderr, "pairctl: vm %s: name too long\n", name);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a,
			      offsetof(struct sockaddr_un, sun_path) + 1 + n)) {
		fprintf(stderr, "pairctl: vm %s offers no console on this host (%s): not running here, or started without --console-socket @%s%s\n",
			name, strerror(errno), PV_CONSOLE_PREFIX, name);
		goto err;
	}
	/* anyone may bind an abstract name: believe root's VMM or ours */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) ||
	    (cr.uid != 0 && cr.uid != geteuid())) {
		fprintf(stderr, "pairctl: vm %s: its console socket is served by uid %u, neither root nor you: not used\n",
			name, (unsigned int)cr.uid);
		goto err;
	}
	return fd;
err:
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * A refused client gets one line, then the close: wait a little for it.
 * 0 when attached, 1 (said) when refused.
 */
static int pctl_console_verdict(struct pctl_console *k)
{
	const size_t plen = strlen(PV_CONSOLE_REFUSED);
	struct pollfd p = { .fd = k->fd, .events = POLLIN };
	char line[256];
	ssize_t n;

	if (poll(&p, 1, PCTL_VERDICT_MS) <= 0)
		return 0;
	n = recv(k->fd, line, sizeof(line) - 1, MSG_PEEK);
	if (n < (ssize_t)plen || memcmp(line, PV_CONSOLE_REFUSED, plen))
		return 0;
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	fprintf(stderr, "pairctl: vm %s: console refused: %s\n", k->name,
		line + plen);
	return 1;
}

static int pctl_console_signals(struct pctl_console *k)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	/* a reader of our output gone is a write error: the terminal is
	 * restored on the way out, as for the signals above */
	signal(SIGPIPE, SIG_IGN);
	k->sfd = signalfd(-1, &set, SFD_CLOEXEC);
	return k->sfd < 0 ? -errno : 0;
}

/* A terminal on stdin goes raw, as the VMM's own console does. */
static void pctl_console_raw(struct pctl_console *k)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &k->saved))
		return;
	raw = k->saved;
	cfmakeraw(&raw);
	raw.c_oflag |= OPOST | ONLCR;
	k->tty = !tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static int pctl_write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		p += n;
		len -= n;
	}
	return 0;
}

/* Guest output to stdout: 1 while the console is open, 0 at its end. */
static int pctl_console_out(struct pctl_console *k)
{
	uint8_t buf[PCTL_BUF];
	ssize_t n = read(k->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n <= 0)
		return 0;
	return pctl_write_all(STDOUT_FILENO, buf, n) ? 0 : 1;
}

/* What is read from stdin and not sent yet, without waiting. */
static void pctl_console_send(struct pctl_console *k)
{
	ssize_t n = send(k->fd, k->in + k->in_off, k->in_len - k->in_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n > 0)
		k->in_off += n;
	else if (n < 0 && errno != EAGAIN && errno != EINTR)
		k->in_off = k->in_len;	/* the VMM is gone: its EOF ends us */
	if (k->in_off == k->in_len)
		k->in_off = k->in_len = 0;
	if (k->in_eof && !k->in_len)
		shutdown(k->fd, SHUT_WR);
}

/* Read stdin: false when ^] on a terminal asks to detach. */
static bool pctl_console_in(struct pctl_console *k)
{
	ssize_t n = read(STDIN_FILENO, k->in, sizeof(k->in));
	uint8_t *esc;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0) {
		k->in_eof = true;
		n = 0;
	}
	esc = k->tty ? memchr(k->in, PCTL_ESCAPE, n) : NULL;
	k->in_len = esc ? (size_t)(esc - k->in) : (size_t)n;
	pctl_console_send(k);
	return !esc;
}

static long pctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* Relay until the end: an exit status. */
static int pctl_console_relay(struct pctl_console *k)
{
	long end = k->timeout_ms < 0 ? -1 : pctl_now_ms() + k->timeout_ms;
	struct signalfd_siginfo si;
	struct pollfd p[3];
	long wait = -1;

	for (;;) {
		p[0] = (struct pollfd){ .fd = k->fd,
			.events = POLLIN | (k->in_len ? POLLOUT : 0) };
		p[1] = (struct pollfd){ .fd = k->in_eof || k->in_len ? -1 :
					STDIN_FILENO, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = k->sfd, .events = POLLIN };
		if (end >= 0 && (wait = end - pctl_now_ms()) < 0)
			return 0;
		if (poll(p, 3, (int)wait) < 0 && errno != EINTR)
			return 1;
		if (p[2].revents && read(k->sfd, &si, sizeof(si)) > 0)
			return 128 + (int)si.ssi_signo;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR) &&
		    !pctl_console_out(k))
			return 0;
		if (p[0].revents & POLLOUT)
			pctl_console_send(k);
		if (p[1].revents && !pctl_console_in(k))
			return 0;
	}
}

/* NAME [--timeout S] */
static int pctl_console_args(int argc, char **argv, struct pctl_console *k)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	if (argc < 4 || argv[3][0] == '-')
		return -EINVAL;
	k->name = argv[3];
	k->timeout_ms = -1;
	optind = 4;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 't')
			return -EINVAL;
		k->timeout_ms = strtol(optarg, &end, 10) * 1000;
		if (*end || end == optarg || k->timeout_ms <= 0 ||
		    k->timeout_ms > 86400000L)
			return -EINVAL;
	}
	return optind == argc ? 0 : -EINVAL;
}

int pctl_vm_console(int argc, char **argv)
{
	struct pctl_console k = { .fd = -1, .sfd = -1 };
	int st;

	if (pctl_console_args(argc, argv, &k)) {
		fprintf(stderr, "pairctl: vm console wants NAME [--timeout S] (S: 1 to 86400 seconds)\nTry 'pairctl --help'.\n");
		return 2;
	}
	st = pctl_console_where(k.name);
	if (st)
		return st;
	k.fd = pctl_console_connect(k.name);
	if (k.fd < 0)
		return 1;
	st = pctl_console_verdict(&k);
	if (!st && pctl_console_signals(&k)) {
		fprintf(stderr, "pairctl: signals: %s\n", strerror(errno));
		st = 1;
	}
	if (!st) {
		fprintf(stderr, "Connected to domain %s\nEscape character is ^]\n",
			k.name);
		pctl_console_raw(&k);
		st = pctl_console_relay(&k);
	}
	if (k.tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &k.saved);
		fputc('\n', stderr);
	}
	if (k.sfd >= 0)
		close(k.sfd);
	close(k.fd);
	return st;
}
