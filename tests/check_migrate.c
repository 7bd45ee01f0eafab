/*
 * migrate: against real databases. Applying from scratch, re-running as a no-op,
 * refusing edited history, rolling back a failing file, two migrators at once.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dualreg/migrate.h"
#include "dualreg/version.h"
#include "harness.h"
#include "suites.h"

static char url[1024];
static char err[1024];

static PGconn *db(void)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	return c;
}

static long scalar(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

/* Writes a migrations directory with the given files (name, text pairs). */
static void write_dir(char *dir, size_t len, const char *const *files)
{
	snprintf(dir, len, "%s/mig-XXXXXX", th_env("DUALREG_TEST_TMP"));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (size_t i = 0; files[i] != NULL; i += 2) {
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		FILE *f = fopen(path, "w");
		ck_assert_ptr_nonnull(f);
		fputs(files[i + 1], f);
		fclose(f);
	}
}

static void setup(void)
{
	th_db_create(url, sizeof url);
}

START_TEST(test_apply_project_migrations)
{
	struct migration_set set;
	ck_assert_msg(migrate_scan(th_env("DUALREG_SQL_DIR"), &set, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_uint_gt(set.n, 0);
	ck_assert_int_eq(set.items[set.n - 1].version, DUALREG_SCHEMA_VERSION);
	PGconn *c = db();
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), 0);
	int applied;
	ck_assert_msg(migrate_apply(c, &set, NULL, &applied, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(applied, (int)set.n);
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), DUALREG_SCHEMA_VERSION);
	/* The code table arrived with its withdrawn codes. */
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM attendance_codes WHERE valid_to IS NOT "
				   "NULL"),
			 4);
	/* Again: nothing to do, nothing changes. */
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), 0);
	ck_assert_int_eq(applied, 0);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM schema_migrations"), (long)set.n);
	PQfinish(c);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_edited_history_is_refused)
{
	char dir[512];
	const char *v1[] = {"001_a.sql", "CREATE TABLE a (x int);", NULL};
	write_dir(dir, sizeof dir, v1);
	struct migration_set set;
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	PGconn *c = db();
	int applied;
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), 0);
	migrate_set_free(&set);

	char path[1024];
	snprintf(path, sizeof path, "%s/001_a.sql", dir);
	FILE *f = fopen(path, "w");
	fputs("CREATE TABLE a (x int, y int);", f);
	fclose(f);
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "001_a.sql was changed after it was applied") != NULL, "%s", err);
	PQfinish(c);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_failing_file_rolls_back)
{
	char dir[512];
	const char *files[] = {"001_ok.sql", "CREATE TABLE ok1 (x int);",
			       "002_bad.sql", "CREATE TABLE half (x int); SELECT nosuchcolumn FROM ok1;",
			       "003_later.sql", "CREATE TABLE later (x int);", NULL};
	write_dir(dir, sizeof dir, files);
	struct migration_set set;
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	PGconn *c = db();
	int applied;
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), -1);
	ck_assert_int_eq(applied, 1);
	ck_assert_msg(strstr(err, "002_bad.sql") != NULL && strstr(err, "nosuchcolumn") != NULL,
		      "%s", err);
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), 1);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM pg_tables WHERE tablename IN ('half', "
				   "'later')"),
			 0);
	PQfinish(c);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_duplicate_numbers)
{
	char dir[512];
	const char *files[] = {"001_a.sql", "SELECT 1;", "001_b.sql", "SELECT 2;", NULL};
	write_dir(dir, sizeof dir, files);
	struct migration_set set;
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "two migrations numbered 001") != NULL, "%s", err);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_concurrent_migrators)
{
	/* A slow first migration keeps the lock while the second migrator arrives. */
	char dir[512];
	const char *files[] = {"001_slow.sql", "SELECT pg_sleep(0.5); CREATE TABLE once (x int);",
			       "002_next.sql", "CREATE TABLE twice (x int);", NULL};
	write_dir(dir, sizeof dir, files);
	char ctl[512], env_url[1100], env_dir[600];
	snprintf(ctl, sizeof ctl, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	snprintf(env_dir, sizeof env_dir, "DUALREG_SQL_DIR=%s", dir);
	pid_t kids[2];
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			char *const argv[] = {ctl, "-c", "/dev/null", "migrate", NULL};
			char *const envp[] = {env_url, env_dir, NULL};
			char out[2048];
			_exit(th_run(argv, envp, out, sizeof out));
		}
	}
	for (int i = 0; i < 2; i++) {
		int status;
		ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "migrator %d failed", i);
	}
	PGconn *c = db();
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM schema_migrations"), 2);
	PQfinish(c);
}
END_TEST

START_TEST(test_ctl_commands)
{
	char ctl[512], env_url[1100], out[4096];
	snprintf(ctl, sizeof ctl, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	char *const envp[] = {env_url, NULL};

	char *const version[] = {ctl, "version", NULL};
	ck_assert_int_eq(th_run(version, envp, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "dualregctl ") != NULL, "%s", out);

	char *const status[] = {ctl, "-c", "/dev/null", "migrate", "--status", NULL};
	ck_assert_int_eq(th_run(status, envp, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "schema version 0") != NULL && strstr(out, "pending"), "%s", out);

	char *const migrate[] = {ctl, "-c", "/dev/null", "migrate", NULL};
	ck_assert_int_eq(th_run(migrate, envp, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "applied 001_") != NULL, "%s", out);
	ck_assert_int_eq(th_run(migrate, envp, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "(0 applied now)") != NULL, "%s", out);

	char *const unknown[] = {ctl, "-c", "/dev/null", "frobnicate", NULL};
	ck_assert_int_eq(th_run(unknown, envp, out, sizeof out), 2);

	char *const badconf[] = {ctl, "-c", "/nonexistent.conf", "migrate", NULL};
	ck_assert_int_eq(th_run(badconf, envp, out, sizeof out), 2);
	ck_assert_msg(strstr(th_last_stderr(), "/nonexistent.conf: cannot open") != NULL, "%s",
		      th_last_stderr());

	char bad_url[] = "DUALREG_DATABASE_URL=host=/nonexistent-dir dbname=x";
	char *const envp_bad[] = {bad_url, NULL};
	ck_assert_int_eq(th_run(migrate, envp_bad, out, sizeof out), 1);
	ck_assert_msg(strstr(th_last_stderr(), "cannot connect") != NULL, "%s", th_last_stderr());
}
END_TEST

Suite *migrate_suite(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("apply");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_apply_project_migrations);
	tcase_add_test(tc, test_edited_history_is_refused);
	tcase_add_test(tc, test_failing_file_rolls_back);
	tcase_add_test(tc, test_duplicate_numbers);
	tcase_add_test(tc, test_concurrent_migrators);
	tcase_add_test(tc, test_ctl_commands);
	suite_add_tcase(s, tc);
	return s;
}
