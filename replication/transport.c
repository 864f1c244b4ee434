// SPDX-License-Identifier: GPL-2.0
/*
 * Channel URLs: pick the backend by scheme. unix: and fd: are local
 * SOCK_SEQPACKET sockets (transport_unix.c); tcp: and rdma: come later.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "transport_backend.h"

static const char *url_rest(const char *url, const char *scheme)
{
	size_t n = strlen(scheme);

	if (strncmp(url, scheme, n))
		return NULL;
	return url + n;
}

static int parse_fd(const char *s, int *fd)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > INT_MAX)
		return -EINVAL;
	*fd = (int)v;
	return 0;
}

int pv_chan_connect(const char *url, struct pv_chan **out)
{
	const char *rest;
	int fd, err;

	rest = url_rest(url, "unix:");
	if (rest)
		return *rest ? unix_chan_connect(rest, out) : -EINVAL;
	rest = url_rest(url, "fd:");
	if (rest) {
		err = parse_fd(rest, &fd);
		if (err)
			return err;
		return unix_chan_from_fd(fd, url, out);
	}
	return -EPROTONOSUPPORT;
}

int pv_listen(const char *url, struct pv_listener **out)
{
	const char *rest = url_rest(url, "unix:");

	if (!rest)
		return -EPROTONOSUPPORT;
	return *rest ? unix_listen(rest, out) : -EINVAL;
}

int pv_listener_fd(const struct pv_listener *l)
{
	return unix_listener_fd(l);
}

int pv_accept(struct pv_listener *l, struct pv_chan **out)
{
	return unix_accept(l, out);
}

void pv_listener_close(struct pv_listener *l)
{
	if (l)
		unix_listener_close(l);
}

int pv_chan_pair(struct pv_chan **a, int *child_fd)
{
	return unix_chan_pair(a, child_fd);
}

void pv_chan_close(struct pv_chan *ch)
{
	if (ch)
		ch->ops->close(ch);
}
