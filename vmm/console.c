// SPDX-License-Identifier: GPL-2.0
/*
 * The serial console on a unix socket (--console-socket PATH, "@NAME" for
 * an abstract name), as QEMU's -serial unix:PATH,server,nowait, with
 * virsh console's rule of one session at a time:
 *
 * - One client. Another is sent a line (PV_CONSOLE_REFUSED "...busy")
 *   and closed; the first keeps its session.
 * - Access by the client's credentials (SO_PEERCRED), judged as the
 *   status service judges its clients (pv_peer_permitted(): root, the
 *   VMM's user, members of --ipc-group): a refused client gets a line
 *   saying so. An abstract name has no file mode to rely on, and a
 *   path's mode could not say "that group" without a chown.
 * - Output: each byte the guest sends is kept in a ring of the last
 *   CONSOLE_BACKLOG bytes (under vm->lock, from the vCPU thread) and the
 *   main loop is woken to send it; a vCPU never writes to the client. A
 *   client that attaches gets the ring first (the guest's recent
 *   output). A client that does not read falls behind; once more than
 *   the ring behind, what it missed is skipped and counted: the guest
 *   never waits for a client. The serial's own output (log or
 *   --console FILE) gets every byte as before.
 * - Input: read only as much as the UART's RX FIFO has room for (the
 *   sink); with it full the client is left unread until the guest
 *   takes a byte, as stdin is. A client's EOF on its writing side
 *   (shutdown) ends its input only; its output goes on. A client that
 *   hangs up (or resets, leaving output unread) has what it sent before
 *   read first: the session ends with its input, never drops it.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <qb/qblog.h>

#include "console.h"
#include "ipcs_loop.h"
#include "vm.h"

#define CONSOLE_CHUNK	4096
#define CONSOLE_HUP_MS	2000	/* a gone client's input, at most this */

struct console {
	struct vm *vm;
	struct console_sink sink;
	struct sockaddr_un addr;
	socklen_t addr_len;
	int listen_fd;
	bool bound;		/* a path of ours: unlink it at the end */
	int wake_efd;		/* vCPU -> main loop: output to send */

	/* under vm->lock */
	uint8_t ring[CONSOLE_BACKLOG];
	uint64_t head;		/* bytes the guest ever sent */
	bool attached;
	bool flush_queued;	/* woken, or waiting for POLLOUT */

	/* main loop only */
	int client_fd;		/* -1: none */
	uint64_t sent;		/* of head, what the client got */
	bool polled;		/* in the main loop */
	bool in_paused;		/* left unread until the sink has room */
	bool in_eof;
	bool out_blocked;	/* its socket is full: wait for POLLOUT */
	bool hup;		/* it hung up: its input is drained, no output */
	bool hup_timer;		/* ... within CONSOLE_HUP_MS, then dropped */
	qb_loop_timer_handle hup_deadline;
	uint64_t clients, refused, dropped;
};

static int console_client_ready(int32_t fd, int32_t revents, void *data);

static int console_client_events(const struct console *c)
{
	return (c->in_paused || c->in_eof ? 0 : POLLIN) |
	       (c->out_blocked && !c->hup ? POLLOUT : 0);
}

static void console_detach(struct console *c, const char *why)
{
	if (c->hup_timer)
		qb_loop_timer_del(c->vm->loop, c->hup_deadline);
	c->hup_timer = false;
	if (c->polled)
		qb_loop_poll_del(c->vm->loop, c->client_fd);
	c->polled = false;
	close(c->client_fd);
	c->client_fd = -1;
	pthread_mutex_lock(&c->vm->lock);
	c->attached = false;
	c->flush_queued = false;
	pthread_mutex_unlock(&c->vm->lock);
	qb_log(LOG_NOTICE, "console: client detached (%s)", why);
}

/*
 * A client that hung up with input the guest has not taken: it goes,
 * with what is left of its input, so the console is free again even
 * when the guest never reads.
 */
static void console_hup_expired(void *data)
{
	struct console *c = data;

	c->hup_timer = false;
	if (c->client_fd >= 0 && c->hup)
		console_detach(c, "hung up; the input the guest did not take is dropped");
}

/*
 * Poll the client for what it needs now: false when it left the loop
 * (detached, or hung up with input that waits for room: a hung-up socket
 * would wake the loop without end).
 */
static bool console_client_poll(struct console *c)
{
	int ev = console_client_events(c);

	if (c->hup && c->in_eof) {
		console_detach(c, "hung up");
		return false;
	}
	if (c->hup && !c->hup_timer &&
	    qb_loop_timer_add(c->vm->loop, QB_LOOP_MED,
			      CONSOLE_HUP_MS * 1000000ULL, c,
			      console_hup_expired, &c->hup_deadline) == 0)
		c->hup_timer = true;
	if (c->hup && !ev) {
		if (c->polled)
			qb_loop_poll_del(c->vm->loop, c->client_fd);
		c->polled = false;
		return false;
	}
	if (c->polled)
		qb_loop_poll_mod(c->vm->loop, QB_LOOP_MED, c->client_fd, ev,
				 c, console_client_ready);
	else if (qb_loop_poll_add(c->vm->loop, QB_LOOP_MED, c->client_fd,
				  ev, c, console_client_ready) == 0)
		c->polled = true;
	else
		console_detach(c, "the VMM cannot poll it");
	return c->polled;
}

/*
 * The next piece of output for the client into @buf: how many bytes (0:
 * none, the client is up to date and a vCPU wakes us for more). What the
 * ring no longer holds is skipped and counted.
 */
static size_t console_out_take(struct console *c, uint8_t *buf)
{
	size_t n, off;

	pthread_mutex_lock(&c->vm->lock);
	if (c->head - c->sent > CONSOLE_BACKLOG) {
		c->dropped += c->head - c->sent - CONSOLE_BACKLOG;
		c->sent = c->head - CONSOLE_BACKLOG;
	}
	off = c->sent % CONSOLE_BACKLOG;
	n = c->head - c->sent;
	if (n > CONSOLE_BACKLOG - off)
		n = CONSOLE_BACKLOG - off;
	if (n > CONSOLE_CHUNK)
		n = CONSOLE_CHUNK;
	memcpy(buf, c->ring + off, n);
	if (!n)
		c->flush_queued = false;
	pthread_mutex_unlock(&c->vm->lock);
	return n;
}

/*
 * Send the client what it has not had, without waiting: 0, or -errno on
 * an error (detach it). A full socket leaves the rest for POLLOUT
 * (out_blocked), a client gone is hung up (its input still read): the
 * caller polls for what it needs then.
 */
static int console_flush(struct console *c)
{
	bool blocked = false;
	uint8_t buf[CONSOLE_CHUNK];
	size_t n;
	ssize_t w;

	while (!blocked && (n = console_out_take(c, buf))) {
		w = send(c->client_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			c->hup = true;
			break;
		}
		if (w < 0 && errno != EAGAIN)
			return -errno;
		blocked = w < (ssize_t)n;
		if (w > 0)
			c->sent += w;
	}
	c->out_blocked = blocked;
	return 0;
}

/* Client input into the sink, as much as it has room for. */
static int console_input(struct console *c)
{
	uint8_t buf[64];
	size_t room;
	ssize_t n;

	pthread_mutex_lock(&c->vm->lock);
	room = c->sink.room(c->sink.opaque);
	pthread_mutex_unlock(&c->vm->lock);
	if (!room) {
		c->in_paused = true;
		return 0;
	}
	n = recv(c->client_fd, buf, room < sizeof(buf) ? room : sizeof(buf),
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n < 0 && !c->hup)
		return -errno;
	if (n <= 0) {
		c->in_eof = true;
		return 0;
	}
	pthread_mutex_lock(&c->vm->lock);
	c->sink.put(c->sink.opaque, buf, n);
	pthread_mutex_unlock(&c->vm->lock);
	return 0;
}

static int console_client_ready(int32_t fd, int32_t revents, void *data)
{
	struct console *c = data;
	int err = 0;

	(void)fd;
	/* gone; a client that left output unread resets (POLLERR): what
	 * it sent before is read all the same, then its error */
	if (revents & (POLLHUP | POLLERR))
		c->hup = true;
	if (!err && (revents & POLLIN) && !c->in_paused && !c->in_eof)
		err = console_input(c);
	if (!err && (revents & POLLOUT) && !c->hup)
		err = console_flush(c);
	if (err)
		console_detach(c, strerror(-err));
	/* libqb drops the entry on -1: it left the loop */
	return !err && console_client_poll(c) ? 0 : -1;
}

/* Output is waiting (a vCPU's wake-up). */
static int console_wake(int32_t fd, int32_t revents, void *data)
{
	struct console *c = data;
	eventfd_t v;
	int err;

	(void)revents;
	if (eventfd_read(fd, &v) < 0 || c->client_fd < 0 || c->out_blocked ||
	    c->hup)
		return 0;
	err = console_flush(c);
	if (err)
		console_detach(c, strerror(-err));
	else
		console_client_poll(c);
	return 0;
}

void console_input_resume(struct console *c)
{
	if (!c || c->client_fd < 0 || !c->in_paused)
		return;
	c->in_paused = false;
	console_client_poll(c);
}

static void console_refuse(struct console *c, int fd,
			   const struct ucred *cr, const char *why)
{
	char line[160];
	int n;

	qb_log(LOG_INFO, "console: client (pid %d, uid %u) refused: %s",
	       cr ? (int)cr->pid : 0, cr ? (unsigned int)cr->uid : 0, why);

	n = snprintf(line, sizeof(line), PV_CONSOLE_REFUSED "%s\r\n", why);
	if (send(fd, line, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		qb_log(LOG_DEBUG, "console: refusal not sent: %s",
		       strerror(errno));
	close(fd);
	c->refused++;
}

static void console_attach(struct console *c, int fd, const struct ucred *cr)
{
	int err;

	c->client_fd = fd;
	c->polled = c->in_paused = c->in_eof = false;
	c->out_blocked = c->hup = false;
	c->clients++;
	pthread_mutex_lock(&c->vm->lock);
	c->attached = true;
	c->flush_queued = true;
	c->sent = c->head > CONSOLE_BACKLOG ? c->head - CONSOLE_BACKLOG : 0;
	pthread_mutex_unlock(&c->vm->lock);
	qb_log(LOG_NOTICE, "console: client attached (pid %d, uid %u)",
	       (int)cr->pid, (unsigned int)cr->uid);
	/* the backlog first */
	err = console_flush(c);
	if (err)
		console_detach(c, strerror(-err));
	else
		console_client_poll(c);
}

static int console_accept(int32_t lfd, int32_t revents, void *data)
{
	const struct vm_config *cfg;
	struct console *c = data;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd;

	(void)revents;
	cfg = c->vm->cfg;
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		console_refuse(c, fd, NULL, "no credentials");
	else if (!pv_peer_permitted(cr.pid, cr.uid, cr.gid,
				    cfg->has_ipc_group ? (long)cfg->ipc_gid : -1))
		console_refuse(c, fd, &cr, "permission denied (root, the VMM's user or its --ipc-group only)");
	else if (c->client_fd >= 0)
		console_refuse(c, fd, &cr, "busy: another session is attached");
	else
		console_attach(c, fd, &cr);
	return 0;
}

/* @path, or "@NAME" for an abstract one, as a socket address. */
static int console_addr(struct console *c, const char *path)
{
	size_t n = strlen(path);

	c->addr.sun_family = AF_UNIX;
	if (n < 2 || n >= sizeof(c->addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(c->addr.sun_path, path, n);
	if (path[0] == '@')
		c->addr.sun_path[0] = '\0';
	else
		n++;	/* a path's address counts its NUL */
	c->addr_len = offsetof(struct sockaddr_un, sun_path) + n;
	return 0;
}

/* A socket file left by a VMM that ended may go; a live one may not. */
static int console_unlink_stale(struct console *c)
{
	struct stat st;
	int fd, err = 0;

	if (!c->addr.sun_path[0] || stat(c->addr.sun_path, &st) ||
	    !S_ISSOCK(st.st_mode))
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (!connect(fd, (struct sockaddr *)&c->addr, c->addr_len))
		err = -EADDRINUSE;
	else if (errno == ECONNREFUSED)
		unlink(c->addr.sun_path);
	close(fd);
	return err;
}

static int console_listen(struct console *c)
{
	int err = console_unlink_stale(c);

	if (err)
		return err;
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
			      SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0)
		return -errno;
	if (bind(c->listen_fd, (struct sockaddr *)&c->addr, c->addr_len))
		return -errno;
	c->bound = c->addr.sun_path[0];
	if (listen(c->listen_fd, 4))
		return -errno;
	/* who may connect is judged by credentials: see the top */
	if (c->addr.sun_path[0] && chmod(c->addr.sun_path, 0666))
		return -errno;
	c->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_efd < 0)
		return -errno;
	err = qb_loop_poll_add(c->vm->loop, QB_LOOP_MED, c->wake_efd, POLLIN,
			       c, console_wake);
	if (!err)
		err = qb_loop_poll_add(c->vm->loop, QB_LOOP_MED, c->listen_fd,
				       POLLIN, c, console_accept);
	return err;
}

int console_open(struct vm *vm, const char *path,
		 const struct console_sink *sink, struct console **out)
{
	struct console *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->vm = vm;
	c->sink = *sink;
	c->listen_fd = c->wake_efd = c->client_fd = -1;
	err = console_addr(c, path);
	if (!err)
		err = console_listen(c);
	if (err) {
		qb_log(LOG_ERR, "--console-socket %s: %s", path,
		       err == -EADDRINUSE ? "served by another process" :
		       strerror(-err));
		console_close(c);
		return err;
	}
	qb_log(LOG_INFO, "console: offered on %s", path);
	*out = c;
	return 0;
}

void console_close(struct console *c)
{
	if (!c)
		return;
	if (c->client_fd >= 0)
		console_detach(c, "the VMM ends");
	if (c->listen_fd >= 0) {
		qb_loop_poll_del(c->vm->loop, c->listen_fd);
		close(c->listen_fd);
	}
	if (c->bound)
		unlink(c->addr.sun_path);
	if (c->wake_efd >= 0) {
		qb_loop_poll_del(c->vm->loop, c->wake_efd);
		close(c->wake_efd);
	}
	if (c->clients || c->refused)
		qb_log(LOG_INFO, "console: %llu sessions, %llu refused, %llu output bytes a client missed",
		       (unsigned long long)c->clients,
		       (unsigned long long)c->refused,
		       (unsigned long long)c->dropped);
	free(c);
}

void console_output(struct console *c, uint8_t byte)
{
	c->ring[c->head++ % CONSOLE_BACKLOG] = byte;
	if (!c->attached || c->flush_queued)
		return;
	c->flush_queued = true;
	if (eventfd_write(c->wake_efd, 1) < 0)
		qb_log(LOG_ERR, "console: wake eventfd: %s", strerror(errno));
}
