// SPDX-License-Identifier: GPL-2.0
/*
 * pairvisor.conf, read with libconfig and checked against one table of
 * the settings pairvisord knows (config.h shows the file).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "config.h"
#include "transport.h"

enum cf_type {
	CF_NAME,	/* a host name: letters, digits, '.', '-', '_' */
	CF_URL,		/* a replication URL: tcp: or rdma: */
	CF_PATH,	/* an absolute path */
	CF_STRING,	/* any non-empty string */
	CF_MS,		/* milliseconds, 1 to 3600000 */
	CF_GROUP,	/* a group of the settings in sub */
	CF_PARAMS,	/* the fence agent's key = "value" pairs */
};

struct cf_key {
	const char *name;
	enum cf_type type;
	size_t off;		/* in struct pv_config */
	bool required;
	const struct cf_key *sub;	/* CF_GROUP: ended by { NULL } */
};

#define CF(n, t, field, req)	{ n, t, offsetof(struct pv_config, field), req, NULL }
#define CF_SUB(n, s, req)	{ n, CF_GROUP, 0, req, s }

static const struct cf_key cf_peer[] = {
	CF("name", CF_NAME, peer, true),
	CF("address", CF_URL, peer_address, true),
	{ NULL },
};

static const struct cf_key cf_heartbeat[] = {
	CF("period_ms", CF_MS, hb_period_ms, false),
	CF("limit_ms", CF_MS, hb_limit_ms, false),
	{ NULL },
};

static const struct cf_key cf_fence[] = {
	CF("agent", CF_STRING, fence_agent, true),
	CF("delay_ms", CF_MS, fence_delay_ms, false),
	CF("timeout_ms", CF_MS, fence_timeout_ms, false),
	{ "params", CF_PARAMS, 0, false, NULL },
	{ NULL },
};

static const struct cf_key cf_top[] = {
	CF("host", CF_NAME, host, true),
	CF("listen", CF_URL, listen, true),
	CF_SUB("peer", cf_peer, true),
	CF("cluster_key", CF_PATH, cluster_key, true),
	CF("state_dir", CF_PATH, state_dir, false),
	CF("ipc_group", CF_NAME, ipc_group, false),
	CF_SUB("heartbeat", cf_heartbeat, false),
	CF("link_timeout_ms", CF_MS, link_timeout_ms, false),
	CF("shutdown_timeout_ms", CF_MS, shutdown_timeout_ms, false),
	CF_SUB("fence", cf_fence, false),
	{ NULL },
};

struct cf_ctx {
	struct pv_config *c;
	char *err;
	size_t errlen;
};

static int cf_fail(struct cf_ctx *x, const config_setting_t *s,
		   const char *fmt, ...)
{
	int line = s ? config_setting_source_line(s) : 0;
	size_t n;
	va_list ap;

	if (line > 0)
		n = snprintf(x->err, x->errlen, "%s:%d: ", x->c->path, line);
	else
		n = snprintf(x->err, x->errlen, "%s: ", x->c->path);
	if (n < x->errlen) {
		va_start(ap, fmt);
		vsnprintf(x->err + n, x->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool cf_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > PV_CONF_NAME_MAX)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789.-_") == n;
}

static int cf_string(struct cf_ctx *x, const config_setting_t *s,
		     enum cf_type t, char **dst)
{
	const char *v = config_setting_get_string(s);
	const char *name = config_setting_name(s);

	if (!v)
		return cf_fail(x, s, "%s: expected a string in quotes", name);
	if (!*v)
		return cf_fail(x, s, "%s: empty", name);
	if (t == CF_NAME && !cf_name_ok(v))
		return cf_fail(x, s, "%s: \"%s\" is not a name (1 to %d letters, digits, '.', '-' or '_')",
			       name, v, PV_CONF_NAME_MAX);
	if (t == CF_PATH && v[0] != '/')
		return cf_fail(x, s, "%s: \"%s\" is not an absolute path",
			       name, v);
	if (t == CF_URL && (strncmp(v, "tcp:", 4) && strncmp(v, "rdma:", 5)))
		return cf_fail(x, s, "%s: \"%s\" is not a tcp:HOST:PORT or rdma:HOST:PORT address",
			       name, v);
	if (t == CF_URL && pv_url_check(v))
		return cf_fail(x, s, "%s: \"%s\": %s", name, v,
			       "bad address (HOST:PORT, [IPv6]:PORT)");
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

static int cf_ms(struct cf_ctx *x, const config_setting_t *s, uint32_t *dst)
{
	long long v;

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64)
		return cf_fail(x, s, "%s: expected a number of milliseconds",
			       config_setting_name(s));
	v = config_setting_get_int64(s);
	if (v < 1 || v > 3600000)
		return cf_fail(x, s, "%s: %lld is out of range (1 to 3600000 ms)",
			       config_setting_name(s), v);
	*dst = (uint32_t)v;
	return 0;
}

/* fence.params: key = "value" (or a number), for the agent's stdin. */
static int cf_params(struct cf_ctx *x, const config_setting_t *g)
{
	struct pv_config *c = x->c;
	int n = config_setting_length(g);

	if (!config_setting_is_group(g))
		return cf_fail(x, g, "params: expected a group { key = \"value\"; ... }");
	if (n > PV_CONF_PARAMS_MAX)
		return cf_fail(x, g, "params: more than %d", PV_CONF_PARAMS_MAX);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, i);
		struct pv_fence_param *p = &c->params[c->nr_params];
		const char *name = config_setting_name(s);
		char num[32];
		const char *v = config_setting_get_string(s);

		if (!strcmp(name, "action"))
			return cf_fail(x, s, "params: action is pairvisord's to give");
		if (!v && (config_setting_type(s) == CONFIG_TYPE_INT ||
			   config_setting_type(s) == CONFIG_TYPE_INT64)) {
			snprintf(num, sizeof(num), "%lld",
				 config_setting_get_int64(s));
			v = num;
		}
		if (!v || strchr(v, '\n'))
			return cf_fail(x, s, "params: %s: expected a string on one line",
				       name);
		p->key = strdup(name);
		p->value = strdup(v);
		c->nr_params++;
		if (!p->key || !p->value)
			return -ENOMEM;
	}
	return 0;
}

static int cf_group(struct cf_ctx *x, const config_setting_t *g,
		    const struct cf_key *keys);

static int cf_one(struct cf_ctx *x, const config_setting_t *s,
		  const struct cf_key *k)
{
	void *dst = (char *)x->c + k->off;

	switch (k->type) {
	case CF_GROUP:
		if (!config_setting_is_group(s))
			return cf_fail(x, s, "%s: expected a group { ... }",
				       k->name);
		return cf_group(x, s, k->sub);
	case CF_PARAMS:
		return cf_params(x, s);
	case CF_MS:
		return cf_ms(x, s, dst);
	default:
		return cf_string(x, s, k->type, dst);
	}
}

static const struct cf_key *cf_find(const struct cf_key *keys,
				    const char *name)
{
	for (; keys->name; keys++)
		if (!strcmp(keys->name, name))
			return keys;
	return NULL;
}

static int cf_group(struct cf_ctx *x, const config_setting_t *g,
		    const struct cf_key *keys)
{
	int n = config_setting_length(g);
	int err;

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, i);
		const struct cf_key *k = cf_find(keys, config_setting_name(s));

		if (!k)
			return cf_fail(x, s, "unknown setting '%s'",
				       config_setting_name(s));
		err = cf_one(x, s, k);
		if (err)
			return err;
	}
	for (; keys->name; keys++)
		if (keys->required && !config_setting_get_member(g, keys->name))
			return cf_fail(x, config_setting_is_root(g) ? NULL : g,
				       "missing setting '%s'%s%s", keys->name,
				       config_setting_is_root(g) ? "" : " in ",
				       config_setting_is_root(g) ? "" :
				       config_setting_name(g));
	return 0;
}

/* What the settings say together, and the defaults. */
static int cf_finish(struct cf_ctx *x)
{
	struct pv_config *c = x->c;

	if (!strcmp(c->host, c->peer))
		return cf_fail(x, NULL, "peer.name: \"%s\" is this host's own name",
			       c->peer);
	if (!c->state_dir && !(c->state_dir = strdup(PV_CONF_STATE_DIR)))
		return -ENOMEM;
	if (!c->hb_period_ms)
		c->hb_period_ms = 200;
	if (!c->hb_limit_ms)
		c->hb_limit_ms = 1000;
	if (c->hb_limit_ms <= c->hb_period_ms)
		return cf_fail(x, NULL, "heartbeat: limit_ms (%u) must exceed period_ms (%u)",
			       c->hb_limit_ms, c->hb_period_ms);
	if (!c->link_timeout_ms)
		c->link_timeout_ms = 2000;
	if (!c->shutdown_timeout_ms)
		c->shutdown_timeout_ms = PV_CONF_SHUTDOWN_MS;
	if (c->fence_agent && !c->fence_timeout_ms)
		c->fence_timeout_ms = 60000;
	return 0;
}

int pv_config_load(const char *path, struct pv_config *c, char *err,
		   size_t errlen)
{
	struct cf_ctx x = { c, err, errlen };
	config_t cf;
	FILE *f;
	int ret;

	memset(c, 0, sizeof(*c));
	c->path = strdup(path);
	if (!c->path)
		return -ENOMEM;
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		cf_fail(&x, NULL, "cannot read it: %s", strerror(-ret));
		pv_config_free(c);
		return ret;
	}
	config_init(&cf);
	ret = config_read(&cf, f) ? 0 : -EINVAL;
	fclose(f);
	if (ret) {
		snprintf(err, errlen, "%s:%d: %s", path,
			 config_error_line(&cf), config_error_text(&cf));
		goto out;
	}
	ret = cf_group(&x, config_root_setting(&cf), cf_top);
	if (!ret)
		ret = cf_finish(&x);
out:
	config_destroy(&cf);
	if (ret)
		pv_config_free(c);
	return ret;
}

void pv_config_free(struct pv_config *c)
{
	free(c->path);
	free(c->host);
	free(c->listen);
	free(c->peer);
	free(c->peer_address);
	free(c->cluster_key);
	free(c->state_dir);
	free(c->ipc_group);
	free(c->fence_agent);
	for (size_t i = 0; i < c->nr_params; i++) {
		free(c->params[i].key);
		free(c->params[i].value);
	}
	memset(c, 0, sizeof(*c));
}
