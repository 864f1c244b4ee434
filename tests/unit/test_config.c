// SPDX-License-Identifier: GPL-2.0
/*
 * pairvisor.conf (cluster/config.c): a good file with its defaults, a
 * full one with fencing, and each kind of error with the line and the
 * reason it is reported with.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "config.h"
#include "cunit_main.h"

static char cf_path[64];

static const char cf_good[] =
	"# a comment\n"
	"host = \"a\";\n"
	"listen = \"tcp:10.88.0.1:7400\";\n"
	"peer = { name = \"b\"; address = \"tcp:10.88.0.2:7400\"; };\n"
	"cluster_key = \"/etc/pairvisor/cluster.key\";\n";

static void cf_write(const char *text)
{
	FILE *f;

	strcpy(cf_path, "/tmp/pvconf.XXXXXX");
	close(mkstemp(cf_path));
	f = fopen(cf_path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

/* Load @text: its error (NULL when it loads), into @c when it does. */
static const char *cf_load(const char *text, struct pv_config *c)
{
	static char err[512];
	struct pv_config tmp;
	int ret;

	cf_write(text);
	err[0] = '\0';
	ret = pv_config_load(cf_path, c ? c : &tmp, err, sizeof(err));
	unlink(cf_path);
	if (!ret && !c)
		pv_config_free(&tmp);
	CU_ASSERT_EQUAL(!ret, !err[0]);
	return ret ? err : NULL;
}

/* @text fails with "PATH:LINE: " and @reason in the message. */
static void cf_bad(const char *text, int line, const char *reason)
{
	const char *err = cf_load(text, NULL);
	char want[96];

	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	if (line)
		snprintf(want, sizeof(want), "%s:%d: ", cf_path, line);
	else
		snprintf(want, sizeof(want), "%s: ", cf_path);
	if (strncmp(err, want, strlen(want)) || !strstr(err, reason))
		printf("\n  got: %s\n  want: %s...%s\n", err, want, reason);
	CU_ASSERT_EQUAL(strncmp(err, want, strlen(want)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, reason));
}

static void test_good_defaults(void)
{
	struct pv_config c;

	CU_ASSERT_PTR_NULL_FATAL(cf_load(cf_good, &c));
	CU_ASSERT_STRING_EQUAL(c.host, "a");
	CU_ASSERT_STRING_EQUAL(c.listen, "tcp:10.88.0.1:7400");
	CU_ASSERT_STRING_EQUAL(c.peer, "b");
	CU_ASSERT_STRING_EQUAL(c.peer_address, "tcp:10.88.0.2:7400");
	CU_ASSERT_STRING_EQUAL(c.cluster_key, "/etc/pairvisor/cluster.key");
	CU_ASSERT_STRING_EQUAL(c.state_dir, PV_CONF_STATE_DIR);
	CU_ASSERT_PTR_NULL(c.ipc_group);
	CU_ASSERT_PTR_NULL(c.fence_agent);
	CU_ASSERT_EQUAL(c.hb_period_ms, 200);
	CU_ASSERT_EQUAL(c.hb_limit_ms, 1000);
	CU_ASSERT_EQUAL(c.link_timeout_ms, 2000);
	CU_ASSERT_EQUAL(c.shutdown_timeout_ms, 60000);
	pv_config_free(&c);
}

static void test_good_full(void)
{
	struct pv_config c;
	char text[1024];

	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "state_dir = \"/var/lib/pv\";\n"
		 "ipc_group = \"pairvisor\";\n"
		 "heartbeat = { period_ms = 100; limit_ms = 500; };\n"
		 "link_timeout_ms = 3000;\n"
		 "shutdown_timeout_ms = 5000;\n"
		 "fence = {\n"
		 "  agent = \"fence_ipmilan\";\n"
		 "  delay_ms = 5000;\n"
		 "  params = { ip = \"10.0.0.2\"; ipport = 6230; lanplus = \"1\"; };\n"
		 "};\n");
	CU_ASSERT_PTR_NULL_FATAL(cf_load(text, &c));
	CU_ASSERT_STRING_EQUAL(c.state_dir, "/var/lib/pv");
	CU_ASSERT_STRING_EQUAL(c.ipc_group, "pairvisor");
	CU_ASSERT_EQUAL(c.hb_period_ms, 100);
	CU_ASSERT_EQUAL(c.hb_limit_ms, 500);
	CU_ASSERT_EQUAL(c.link_timeout_ms, 3000);
	CU_ASSERT_EQUAL(c.shutdown_timeout_ms, 5000);
	CU_ASSERT_STRING_EQUAL(c.fence_agent, "fence_ipmilan");
	CU_ASSERT_EQUAL(c.fence_delay_ms, 5000);
	CU_ASSERT_EQUAL(c.fence_timeout_ms, 60000);
	CU_ASSERT_EQUAL_FATAL(c.nr_params, 3);
	CU_ASSERT_STRING_EQUAL(c.params[0].key, "ip");
	CU_ASSERT_STRING_EQUAL(c.params[0].value, "10.0.0.2");
	CU_ASSERT_STRING_EQUAL(c.params[1].key, "ipport");
	CU_ASSERT_STRING_EQUAL(c.params[1].value, "6230");
	CU_ASSERT_STRING_EQUAL(c.params[2].value, "1");
	pv_config_free(&c);
}

static void test_syntax(void)
{
	cf_bad("host = \"a\";\nlisten = \"tcp:1.2.3.4:5\"\npeer = {;\n", 3,
	       "syntax error");
}

static void test_unknown(void)
{
	char text[512];

	snprintf(text, sizeof(text), "%s%s", cf_good, "hots = \"x\";\n");
	cf_bad(text, 6, "unknown setting 'hots'");
	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "heartbeat = {\n  period = 5;\n};\n");
	cf_bad(text, 7, "unknown setting 'period'");
}

static void test_missing(void)
{
	cf_bad("host = \"a\";\n", 0, "missing setting 'listen'");
	cf_bad("host = \"a\";\nlisten = \"tcp:1.2.3.4:5\";\n"
	       "peer = { name = \"b\"; };\ncluster_key = \"/k\";\n", 3,
	       "missing setting 'address' in peer");
}

static void test_values(void)
{
	char text[512];

	cf_bad("host = \"a b\";\n", 1, "is not a name");
	cf_bad("host = 7;\n", 1, "expected a string");
	cf_bad("host = \"a\";\nlisten = \"udp:1.2.3.4:5\";\n", 2,
	       "is not a tcp:HOST:PORT or rdma:HOST:PORT address");
	cf_bad("host = \"a\";\nlisten = \"tcp:1.2.3.4\";\n", 2,
	       "bad address");
	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "link_timeout_ms = 0;\n");
	cf_bad(text, 6, "out of range");
	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "link_timeout_ms = \"2s\";\n");
	cf_bad(text, 6, "expected a number of milliseconds");
	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "state_dir = \"var/lib\";\n");
	cf_bad(text, 6, "is not an absolute path");
	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "heartbeat = 5;\n");
	cf_bad(text, 6, "expected a group");
	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "heartbeat = { period_ms = 500; limit_ms = 500; };\n");
	cf_bad(text, 0, "limit_ms (500) must exceed period_ms (500)");
}

static void test_together(void)
{
	cf_bad("host = \"a\";\nlisten = \"tcp:1.2.3.4:5\";\n"
	       "peer = { name = \"a\"; address = \"tcp:1.2.3.5:5\"; };\n"
	       "cluster_key = \"/k\";\n", 0, "is this host's own name");
}

static void test_fence(void)
{
	char text[512];

	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "fence = { delay_ms = 5; };\n");
	cf_bad(text, 6, "missing setting 'agent' in fence");
	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "fence = { agent = \"fence_dummy\";\n"
		 "  params = { action = \"off\"; }; };\n");
	cf_bad(text, 7, "action is pairvisord's to give");
	snprintf(text, sizeof(text), "%s%s", cf_good,
		 "fence = { agent = \"fence_dummy\";\n"
		 "  params = { ip = \"1\\n2\"; }; };\n");
	cf_bad(text, 7, "expected a string on one line");
}

static void test_no_file(void)
{
	struct pv_config c;
	char err[256];

	CU_ASSERT_EQUAL(pv_config_load("/nonexistent/pairvisor.conf", &c,
				       err, sizeof(err)), -ENOENT);
	CU_ASSERT_STRING_EQUAL(err, "/nonexistent/pairvisor.conf: cannot read it: No such file or directory");
}

static CU_TestInfo tests[] = {
	{ "a good file and its defaults", test_good_defaults },
	{ "every setting, fencing with its parameters", test_good_full },
	{ "a syntax error: its line", test_syntax },
	{ "an unknown setting: its line and name", test_unknown },
	{ "a missing setting", test_missing },
	{ "bad values: names, addresses, numbers, paths, types", test_values },
	{ "settings that contradict each other", test_together },
	{ "fencing: agent required, action refused, one-line values",
	  test_fence },
	{ "no such file", test_no_file },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "config", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)
