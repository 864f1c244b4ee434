/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Entry points of the transport backends, for transport.c's URL dispatch
 * only. Users include transport.h.
 */
#ifndef PV_TRANSPORT_BACKEND_H
#define PV_TRANSPORT_BACKEND_H

#include "transport.h"

int unix_chan_connect(const char *path, struct pv_chan **out);
int unix_chan_from_fd(int fd, const char *name, struct pv_chan **out);
int unix_chan_pair(struct pv_chan **a, int *child_fd);
int unix_listen(const char *path, struct pv_listener **out);
int unix_listener_fd(const struct pv_listener *l);
int unix_accept(struct pv_listener *l, struct pv_chan **out);
void unix_listener_close(struct pv_listener *l);

#endif
