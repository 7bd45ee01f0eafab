/* config: defaults, every value kind, errors naming file, line and key, env overrides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualreg/config.h"
#include "harness.h"
#include "suites.h"

static char err[600];

static void setup(void)
{
	unsetenv("DUALREG_DATABASE_URL");
	unsetenv("DUALREG_LISTEN");
	unsetenv("DUALREG_LOG_LEVEL");
	err[0] = '\0';
}

START_TEST(test_defaults)
{
	struct config c;
	ck_assert_int_eq(cfg_load_string(&c, "t.conf", "", err, sizeof err), 0);
	ck_assert_str_eq(c.listen_host, "127.0.0.1");
	ck_assert_uint_eq(c.listen_port, 8080);
	ck_assert_str_eq(c.database_url, "dbname=dualreg");
	ck_assert_uint_eq(c.pool_size, 4);
	ck_assert_uint_eq(c.max_body_size, 1u << 20);
	ck_assert_uint_eq(c.request_timeout_ms, 30000);
	ck_assert_int_eq(c.log_level, LOG_INFO);
	ck_assert_uint_eq(c.webhook_schedule_len, 10);
	ck_assert_uint_eq(c.webhook_schedule_ms[9], 86400000);
	ck_assert_uint_eq(c.derive_at_min, 5);
	ck_assert(c.log_access);
	ck_assert_ptr_null(c.outbound_ca_file);
	cfg_free(&c);
}
END_TEST

/* The example configuration says its values are the defaults: it and the key table
 * (the one place defaults are written) agree, key by key. */
START_TEST(test_example_is_the_defaults)
{
	char path[1024], names[600];
	snprintf(path, sizeof path, "%s/config/dualreg.conf.example", th_env("DUALREG_TEST_ROOT"));
	struct config example, defaults;
	ck_assert_msg(cfg_load(&example, path, err, sizeof err) == 0, "%s", err);
	cfg_defaults(&defaults);
	ck_assert_msg(cfg_differences(&example, &defaults, names, sizeof names) == 0,
		      "config/dualreg.conf.example differs from the defaults in: %s", names);
	/* and the comparison sees a difference when there is one */
	example.webhook_schedule_ms[3]++;
	example.log_access = !example.log_access;
	ck_assert_int_eq(cfg_differences(&example, &defaults, names, sizeof names), 2);
	ck_assert_str_eq(names, "[log] access, [webhooks] retry_schedule");
	cfg_free(&example);
	cfg_free(&defaults);
}
END_TEST

/* A reload keeps what only a restart can change, names it, and takes the rest. */
START_TEST(test_reload_keeps_restart_only)
{
	struct config running, next;
	char changed[256];
	ck_assert_int_eq(cfg_load_string(&running, "a.conf", "[database]\nurl = dbname=a\n", err,
					 sizeof err),
			 0);
	const char *url = running.database_url;
	ck_assert_int_eq(cfg_load_string(&next, "b.conf",
					 "[server]\nlisten = 127.0.0.1:9\nrequest_timeout = 5s\n"
					 "[database]\nurl = dbname=b\npool_size = 9\n",
					 err, sizeof err),
			 0);
	ck_assert_int_eq(cfg_keep_restart_only(&next, &running, changed, sizeof changed), 3);
	ck_assert_str_eq(changed, "[server] listen, [database] url, [database] pool_size");
	ck_assert_uint_eq(next.listen_port, 8080);
	ck_assert_ptr_eq(next.database_url, url); /* the running string itself */
	ck_assert_uint_eq(next.pool_size, 4);
	ck_assert_uint_eq(next.request_timeout_ms, 5000); /* reloadable: the new value */
	ck_assert_str_eq(running.database_url, "dbname=b"); /* freed with running */
	cfg_free(&running);
	ck_assert_int_eq(cfg_keep_restart_only(&next, &next, changed, sizeof changed), 0);
	ck_assert_str_eq(changed, "");
	cfg_free(&next);
}
END_TEST

START_TEST(test_values)
{
	struct config c;
	const char *ini = "[server]\n"
			  "listen = [::1]:9090\n"
			  "max_body_size = 64K\n"
			  "request_timeout = 1500ms\n"
			  "drain_timeout = 2m\n"
			  "[database]\n"
			  "url = host=/tmp dbname=x\n"
			  "pool_size = 8\n"
			  "[log]\n"
			  "level = debug\n";
	ck_assert_msg(cfg_load_string(&c, "t.conf", ini, err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(c.listen_host, "::1");
	ck_assert_uint_eq(c.listen_port, 9090);
	ck_assert_uint_eq(c.max_body_size, 65536);
	ck_assert_uint_eq(c.request_timeout_ms, 1500);
	ck_assert_uint_eq(c.drain_timeout_ms, 120000);
	ck_assert_str_eq(c.database_url, "host=/tmp dbname=x");
	ck_assert_uint_eq(c.pool_size, 8);
	ck_assert_int_eq(c.log_level, LOG_DEBUG);
	cfg_free(&c);
}
END_TEST

/* Each bad input must fail with this text in the message. */
static const struct {
	const char *ini;
	const char *want;
} bad[] = {
    {"[server]\nlisten = 127.0.0.1:8080\nbogus = 1\n", "t.conf:3: [server] bogus: unknown key"},
    {"[nosuch]\nlevel = info\n", "t.conf:2: [nosuch] level: unknown key"},
    {"level = info\n", "t.conf:1: level: key outside any [section]"},
    {"[server]\nlisten = localhost\n", "t.conf:2: [server] listen: expected host:port"},
    {"[server]\nlisten = 127.0.0.1:99999\n", "[server] listen: bad port"},
    {"[server]\nmax_body_size = lots\n", "t.conf:2: [server] max_body_size: expected a size"},
    {"[server]\nmax_body_size = 10\n", "[server] max_body_size: \"10\" is out of range"},
    {"[server]\nrequest_timeout = 5 days\n", "[server] request_timeout: unknown duration unit"},
    {"[registrations]\nrequest_ttl = 46d\n", "[registrations] request_ttl: \"46d\" is out of range"},
    {"[registrations]\nmax_backdate = 2w\n", "[registrations] max_backdate: unknown duration unit"},
    {"[database]\npool_size = 0\n", "t.conf:2: [database] pool_size: \"0\" is out of range"},
    {"[database]\npool_size = -3\n", "[database] pool_size: expected a whole number"},
    {"[database]\nurl =\n", "[database] url: must not be empty"},
    {"[log]\nlevel = chatty\n", "t.conf:2: [log] level: expected error, warn, info or debug"},
    {"[server\nlisten = 1\n", "t.conf:1: syntax error"},
    /* strtod reads these as numbers; none of them is a duration */
    {"[server]\ndrain_timeout = nan\n", "t.conf:2: [server] drain_timeout: expected a duration"},
    {"[server]\nrequest_timeout = -nan\n", "t.conf:2: [server] request_timeout: expected a"},
    {"[alerts]\nmissing_grace = NaNms\n", "t.conf:2: [alerts] missing_grace: expected a"},
    {"[server]\ndrain_timeout = inf\n", "t.conf:2: [server] drain_timeout: "},
    {"[server]\ndrain_timeout = 1e400\n", "t.conf:2: [server] drain_timeout: "},
    {"[webhooks]\nretry_schedule = 5s, nan, 2m\n", "t.conf:2: [webhooks] retry_schedule: expected"},
};

START_TEST(test_bad_input)
{
	struct config c;
	int rc = cfg_load_string(&c, "t.conf", bad[_i].ini, err, sizeof err);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strstr(err, bad[_i].want) != NULL, "case %d: got \"%s\", want \"%s\"", _i,
		      err, bad[_i].want);
}
END_TEST

START_TEST(test_env_overrides)
{
	struct config c;
	setenv("DUALREG_DATABASE_URL", "dbname=fromenv", 1);
	setenv("DUALREG_LISTEN", "0.0.0.0:7000", 1);
	setenv("DUALREG_LOG_LEVEL", "warn", 1);
	ck_assert_int_eq(cfg_load_string(&c, "t.conf",
					 "[database]\nurl = dbname=fromfile\n[server]\nlisten = "
					 "127.0.0.1:1\n",
					 err, sizeof err),
			 0);
	ck_assert_str_eq(c.database_url, "dbname=fromenv");
	ck_assert_str_eq(c.listen_host, "0.0.0.0");
	ck_assert_uint_eq(c.listen_port, 7000);
	ck_assert_int_eq(c.log_level, LOG_WARN);
	cfg_free(&c);

	setenv("DUALREG_LISTEN", "nonsense", 1);
	ck_assert_int_eq(cfg_load_string(&c, "t.conf", "", err, sizeof err), -1);
	ck_assert_msg(strstr(err, "environment DUALREG_LISTEN") != NULL, "%s", err);
}
END_TEST

START_TEST(test_files)
{
	struct config c;
	ck_assert_int_eq(cfg_load(&c, "/nonexistent/dualreg.conf", err, sizeof err), -1);
	ck_assert_msg(strstr(err, "/nonexistent/dualreg.conf: cannot open") != NULL, "%s", err);

	char path[] = "/tmp/dualreg-cfg-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char text[] = "; comment\n[server]\nlisten = 127.0.0.1:8181\n\n[log]\nlevel = warp\n";
	ck_assert_int_eq(write(fd, text, sizeof text - 1), (int)(sizeof text - 1));
	close(fd);
	ck_assert_int_eq(cfg_load(&c, path, err, sizeof err), -1);
	char want[128];
	snprintf(want, sizeof want, "%s:6: [log] level:", path);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	unlink(path);
}
END_TEST

START_TEST(test_example_config_is_valid)
{
	/* The shipped example documents every key; it must load as it is. */
	struct config c;
	char path[512];
	const char *root = getenv("DUALREG_TEST_ROOT");
	snprintf(path, sizeof path, "%s/config/dualreg.conf.example", root ? root : ".");
	ck_assert_msg(cfg_load(&c, path, err, sizeof err) == 0, "%s", err);
	cfg_free(&c);
}
END_TEST

START_TEST(test_long_line)
{
	/* A value longer than the parser's line buffer is refused, never cut in two. */
	char ini[1024];
	char url[600];
	memset(url, 'x', sizeof url - 1);
	url[sizeof url - 1] = '\0';
	snprintf(ini, sizeof ini, "[database]\nurl = host=%s\n", url);
	struct config c;
	ck_assert_int_eq(cfg_load_string(&c, "t.conf", ini, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "t.conf:2: line too long") != NULL, "%s", err);
}
END_TEST

START_TEST(test_parsers)
{
	unsigned ms;
	size_t sz;
	ck_assert_int_eq(cfg_parse_duration_ms("2", &ms, err, sizeof err), 0);
	ck_assert_uint_eq(ms, 2000);
	ck_assert_int_eq(cfg_parse_duration_ms("1h", &ms, err, sizeof err), 0);
	ck_assert_uint_eq(ms, 3600000);
	ck_assert_int_eq(cfg_parse_duration_ms("14d", &ms, err, sizeof err), 0);
	ck_assert_uint_eq(ms, 14u * 86400000u);
	ck_assert_int_eq(cfg_parse_duration_ms("46d", &ms, err, sizeof err), 0); /* < 4e9 */
	ck_assert_int_eq(cfg_parse_duration_ms("47d", &ms, err, sizeof err), -1);
	ck_assert_int_eq(cfg_parse_duration_ms("-1s", &ms, err, sizeof err), -1);
	/* Not finite: NaN would pass every range check and then convert undefined. */
	ck_assert_int_eq(cfg_parse_duration_ms("nan", &ms, err, sizeof err), -1);
	ck_assert_int_eq(cfg_parse_duration_ms("infinity", &ms, err, sizeof err), -1);
	ck_assert_int_eq(cfg_parse_duration_ms("1e999ms", &ms, err, sizeof err), -1);
	ck_assert_int_eq(cfg_parse_size("2G", &sz, err, sizeof err), 0);
	ck_assert_uint_eq(sz, 2ull << 30);
	ck_assert_int_eq(cfg_parse_size("9999999999999G", &sz, err, sizeof err), -1);
}
END_TEST

Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_example_is_the_defaults);
	tcase_add_test(tc, test_reload_keeps_restart_only);
	tcase_add_test(tc, test_values);
	tcase_add_loop_test(tc, test_bad_input, 0, (int)(sizeof bad / sizeof bad[0]));
	tcase_add_test(tc, test_env_overrides);
	tcase_add_test(tc, test_files);
	tcase_add_test(tc, test_example_config_is_valid);
	tcase_add_test(tc, test_parsers);
	tcase_add_test(tc, test_long_line);
	suite_add_tcase(s, tc);
	return s;
}
