/*
 * migrate: against real databases. Applying from scratch, re-running as a no-op for the
 * schema steps while the functions are installed again, refusing edited history, one
 * transaction for a whole run, two migrators at once, upgrading a database migrated
 * before the schema and the functions were split, and /readyz comparing the functions.
 */
#include <dirent.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <signal.h>
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
static struct th_daemon d;

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

/* The first value of a query's first row as text, into out. */
static void text(PGconn *c, const char *sql, char *out, size_t len)
{
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

static void exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(r));
	PQclear(r);
}

static void write_file(const char *dir, const char *name, const char *body)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(body, f);
	fclose(f);
}

/*
 * Writes a sql directory: the schema steps (name, text pairs) into DIR/schema and the
 * function files into DIR/functions (either list may be empty).
 */
static void write_dir(char *dir, size_t len, const char *const *schema,
		      const char *const *functions)
{
	snprintf(dir, len, "%s/mig-XXXXXX", th_env("DUALREG_TEST_TMP"));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char sub[600];
	snprintf(sub, sizeof sub, "%s/schema", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	for (size_t i = 0; schema != NULL && schema[i] != NULL; i += 2)
		write_file(sub, schema[i], schema[i + 1]);
	snprintf(sub, sizeof sub, "%s/functions", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	for (size_t i = 0; functions != NULL && functions[i] != NULL; i += 2)
		write_file(sub, functions[i], functions[i + 1]);
}

static void setup(void)
{
	th_db_create(url, sizeof url);
	d.pid = 0;
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

START_TEST(test_apply_project_migrations)
{
	struct migration_set set;
	ck_assert_msg(migrate_scan(th_env("DUALREG_SQL_DIR"), &set, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_uint_gt(set.n, 0);
	ck_assert_int_eq(set.items[set.n - 1].version, DUALREG_SCHEMA_VERSION);
	/* The build expects exactly these function files (Makefile and migrate agree). */
	ck_assert_uint_gt(set.nfunctions, 0);
	ck_assert_str_eq(set.functions_checksum, DUALREG_FUNCTIONS_CHECKSUM);
	PGconn *c = db();
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), 0);
	char installed[65];
	ck_assert_int_eq(migrate_installed_functions(c, installed, err, sizeof err), 0);
	int applied;
	ck_assert_msg(migrate_apply(c, &set, NULL, &applied, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(applied, (int)set.n);
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), DUALREG_SCHEMA_VERSION);
	ck_assert_int_eq(migrate_installed_functions(c, installed, err, sizeof err), 1);
	ck_assert_str_eq(installed, DUALREG_FUNCTIONS_CHECKSUM);
	/* The code table arrived with its withdrawn codes. */
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM attendance_codes WHERE valid_to IS NOT "
				   "NULL"),
			 4);
	/* Again: no schema step runs again, nothing changes. */
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), 0);
	ck_assert_int_eq(applied, 0);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM schema_migrations"), (long)set.n);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM schema_functions"), 1);
	PQfinish(c);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_edited_history_is_refused)
{
	char dir[512];
	const char *v1[] = {"001_a.sql", "CREATE TABLE a (x int);", NULL};
	write_dir(dir, sizeof dir, v1, NULL);
	struct migration_set set;
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	PGconn *c = db();
	int applied;
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), 0);
	migrate_set_free(&set);

	char sub[600];
	snprintf(sub, sizeof sub, "%s/schema", dir);
	write_file(sub, "001_a.sql", "CREATE TABLE a (x int, y int);");
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "001_a.sql was changed after it was applied") != NULL, "%s", err);
	PQfinish(c);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_failing_file_rolls_back_the_run)
{
	/* One run is one transaction: 001 is not kept when 002 fails. */
	char dir[512];
	const char *files[] = {"001_ok.sql", "CREATE TABLE ok1 (x int);",
			       "002_bad.sql", "CREATE TABLE half (x int); SELECT nosuchcolumn FROM ok1;",
			       "003_later.sql", "CREATE TABLE later (x int);", NULL};
	write_dir(dir, sizeof dir, files, NULL);
	struct migration_set set;
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	PGconn *c = db();
	int applied;
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), -1);
	ck_assert_int_eq(applied, 0);
	ck_assert_msg(strstr(err, "002_bad.sql") != NULL && strstr(err, "nosuchcolumn") != NULL,
		      "%s", err);
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), 0);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM pg_tables WHERE tablename IN ('ok1', "
				   "'half', 'later')"),
			 0);
	PQfinish(c);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_functions_follow_their_files)
{
	/* A step, and a function that needs its table; then the function changes (no new
	 * step) and is replaced; a retired one is dropped. */
	char dir[512];
	const char *schema[] = {"001_t.sql", "CREATE TABLE t (x int); INSERT INTO t VALUES (41);",
				NULL};
	const char *v1[] = {"10_t.sql",
			    "CREATE OR REPLACE FUNCTION t_next() RETURNS int LANGUAGE sql "
			    "AS $$ SELECT x + 1 FROM t $$;"
			    "CREATE OR REPLACE FUNCTION t_old() RETURNS int LANGUAGE sql "
			    "AS $$ SELECT 0 $$;",
			    NULL};
	write_dir(dir, sizeof dir, schema, v1);
	struct migration_set set;
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	char first[65];
	snprintf(first, sizeof first, "%s", set.functions_checksum);
	PGconn *c = db();
	int applied;
	ck_assert_msg(migrate_apply(c, &set, NULL, &applied, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(applied, 1);
	ck_assert_int_eq(scalar(c, "SELECT t_next()"), 42);
	migrate_set_free(&set);

	char sub[600];
	snprintf(sub, sizeof sub, "%s/functions", dir);
	write_file(sub, "10_t.sql",
		   "DROP FUNCTION IF EXISTS t_old();"
		   "CREATE OR REPLACE FUNCTION t_next() RETURNS int LANGUAGE sql "
		   "AS $$ SELECT x + 2 FROM t $$;");
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	ck_assert_str_ne(set.functions_checksum, first);
	ck_assert_msg(migrate_apply(c, &set, NULL, &applied, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(applied, 0);
	ck_assert_int_eq(scalar(c, "SELECT t_next()"), 43);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM pg_proc WHERE proname = 't_old'"), 0);
	char installed[65];
	ck_assert_int_eq(migrate_installed_functions(c, installed, err, sizeof err), 1);
	ck_assert_str_eq(installed, set.functions_checksum);
	ck_assert_int_eq(scalar(c, "SELECT x FROM t"), 41); /* the step did not run again */
	migrate_set_free(&set);

	/* A function file that fails takes the pending step of its run with it. */
	snprintf(sub, sizeof sub, "%s/schema", dir);
	write_file(sub, "002_u.sql", "CREATE TABLE u (y int);");
	snprintf(sub, sizeof sub, "%s/functions", dir);
	write_file(sub, "20_bad.sql",
		   "CREATE OR REPLACE FUNCTION bad() RETURNS int LANGUAGE sql "
		   "AS $$ SELECT nosuchcolumn FROM u $$;");
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "functions/20_bad.sql") != NULL, "%s", err);
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), 1);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'u'"), 0);
	ck_assert_int_eq(migrate_installed_functions(c, installed, err, sizeof err), 1);
	ck_assert_str_ne(installed, set.functions_checksum);
	PQfinish(c);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_layout_errors)
{
	char dir[512];
	const char *dup[] = {"001_a.sql", "SELECT 1;", "001_b.sql", "SELECT 2;", NULL};
	write_dir(dir, sizeof dir, dup, NULL);
	struct migration_set set;
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "two migrations numbered 001") != NULL, "%s", err);
	migrate_set_free(&set);

	/* A function file without its order number would silently not run: refused. */
	const char *schema[] = {"001_a.sql", "SELECT 1;", NULL};
	const char *unnumbered[] = {"marks.sql", "SELECT 1;", NULL};
	write_dir(dir, sizeof dir, schema, unnumbered);
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "functions/marks.sql") != NULL, "%s", err);
	migrate_set_free(&set);

	/* The layout before the split (files directly in DIR) is not read as empty. */
	snprintf(dir, sizeof dir, "%s/flat-XXXXXX", th_env("DUALREG_TEST_TMP"));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	write_file(dir, "001_a.sql", "SELECT 1;");
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "schema") != NULL, "%s", err);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_newer_database_is_refused)
{
	/* Installing these (older) functions over a newer release's would break it. */
	char dir[512];
	const char *v2[] = {"001_a.sql", "SELECT 1;", "002_b.sql", "SELECT 2;", NULL};
	write_dir(dir, sizeof dir, v2, NULL);
	struct migration_set set;
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	PGconn *c = db();
	int applied;
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), 0);
	migrate_set_free(&set);
	const char *v1[] = {"001_a.sql", "SELECT 1;", NULL};
	write_dir(dir, sizeof dir, v1, NULL);
	ck_assert_int_eq(migrate_scan(dir, &set, err, sizeof err), 0);
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "newer than these files") != NULL, "%s", err);
	PQfinish(c);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_concurrent_migrators)
{
	/* A slow first migration keeps the lock while the second migrator arrives. */
	char dir[512];
	const char *files[] = {"001_slow.sql", "SELECT pg_sleep(0.5); CREATE TABLE once (x int);",
			       "002_next.sql", "CREATE TABLE twice (x int);", NULL};
	const char *functions[] = {"10_f.sql",
				   "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql "
				   "AS $$ SELECT count(*)::int FROM twice $$;",
				   NULL};
	write_dir(dir, sizeof dir, files, functions);
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
	ck_assert_int_eq(scalar(c, "SELECT f()"), 0);
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
	ck_assert_msg(strstr(out, "functions: none installed") != NULL, "%s", out);

	char *const migrate[] = {ctl, "-c", "/dev/null", "migrate", NULL};
	ck_assert_int_eq(th_run(migrate, envp, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "applied 001_") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "installed the functions of") != NULL, "%s", out);
	ck_assert_int_eq(th_run(migrate, envp, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "(0 applied now)") != NULL, "%s", out);
	ck_assert_int_eq(th_run(status, envp, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "pending") == NULL, "%s", out);
	char same[64];
	snprintf(same, sizeof same, "functions: installed %.12s, the same as these files'",
		 DUALREG_FUNCTIONS_CHECKSUM);
	ck_assert_msg(strstr(out, same) != NULL, "%s", out);

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

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Migrates the database as dualregctl did before the schema and the functions were
 * split: every tests/fixtures/sql-legacy/NNN_*.sql (the files as released, 001-013) in
 * its own transaction, recorded in schema_migrations with the file's SHA-256.
 */
static void migrate_legacy(PGconn *c)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/tests/fixtures/sql-legacy", th_env("DUALREG_TEST_ROOT"));
	DIR *dh = opendir(dir);
	ck_assert_msg(dh != NULL, "%s", dir);
	char *names[64];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(dh)) != NULL)
		if (strlen(e->d_name) > 4 && strcmp(e->d_name + strlen(e->d_name) - 4, ".sql") == 0) {
			ck_assert_uint_lt(n, 64);
			names[n++] = strdup(e->d_name);
		}
	closedir(dh);
	ck_assert_uint_eq(n, 13);
	qsort(names, n, sizeof names[0], cmp_str);
	exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
		   " version integer PRIMARY KEY,"
		   " name text NOT NULL,"
		   " checksum text NOT NULL,"
		   " applied_at timestamptz NOT NULL DEFAULT now())");
	for (size_t i = 0; i < n; i++) {
		char path[700];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "rb");
		ck_assert_ptr_nonnull(f);
		static char sql[1 << 20];
		size_t len = fread(sql, 1, sizeof sql - 1, f);
		fclose(f);
		sql[len] = '\0';
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		EVP_Digest(sql, len, md, &mdlen, EVP_sha256(), NULL);
		char checksum[65], version[8];
		for (unsigned k = 0; k < 32; k++)
			snprintf(checksum + 2 * k, 3, "%02x", md[k]);
		snprintf(version, sizeof version, "%d", atoi(names[i]));
		exec_ok(c, "BEGIN");
		exec_ok(c, sql);
		const char *params[] = {version, names[i], checksum};
		PGresult *r = PQexecParams(c,
					   "INSERT INTO schema_migrations (version, name, checksum) "
					   "VALUES ($1::integer, $2, $3)",
					   3, NULL, params, NULL, NULL, 0);
		ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
		PQclear(r);
		exec_ok(c, "COMMIT");
		free(names[i]);
	}
}

/* What the database is made of, as one text: functions (with their definitions),
 * triggers, columns of tables and types, constraints, indexes and types. */
static const char catalog_sql[] =
    "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
    " SELECT 'function ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid))"
    "   FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'"
    "    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"
    " UNION ALL SELECT 'trigger ' || tgrelid::regclass || ' ' || pg_get_triggerdef(oid)"
    "   FROM pg_trigger WHERE NOT tgisinternal"
    " UNION ALL SELECT 'column ' || c.relname || '.' || a.attnum || ' ' || a.attname || ' ' ||"
    "        format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' ' ||"
    "        coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')"
    "   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    "   LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum"
    "  WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'c')"
    "    AND a.attnum > 0 AND NOT a.attisdropped"
    "    AND c.relname NOT IN ('schema_migrations', 'schema_functions')"
    " UNION ALL SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' ||"
    "        pg_get_constraintdef(oid)"
    "   FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
    "    AND conrelid::regclass::text NOT IN ('schema_migrations', 'schema_functions')"
    " UNION ALL SELECT 'index ' || pg_get_indexdef(i.indexrelid)"
    "   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    "  WHERE c.relnamespace = 'public'::regnamespace"
    "    AND c.relname NOT IN ('schema_migrations_pkey', 'schema_functions_pkey')"
    " UNION ALL SELECT 'rows ' || (SELECT count(*) FROM attendance_codes) || ' codes, ' ||"
    "        (SELECT string_agg(type, ',' ORDER BY type) FROM event_types)) s(x)";

START_TEST(test_upgrade_from_before_the_split)
{
	PGconn *c = db();
	migrate_legacy(c);
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), 13);
	/* Data written by the old code: a dual-registered pupil and a posted mark. */
	exec_ok(c, "SET dualreg.now = '2026-11-25 12:00+00';"
		   "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Home', 'mainstream'),"
		   " ('100002', 'PRU', 'pru');"
		   "INSERT INTO pupils VALUES ('B801200005001', 'Ann', 'Bell', '2012-01-01');"
		   "SELECT dualreg_registration_create(NULL, 'B801200005001', '100001', 'main',"
		   " '2026-09-01', NULL, NULL);"
		   "SELECT dualreg_registration_create(NULL, 'B801200005001', '100002', 'subsidiary',"
		   " '2026-11-02', NULL, 63);"
		   "SELECT dualreg_ingest_marks('[{\"upn\": \"B801200005001\", \"urn\": \"100002\","
		   " \"date\": \"2026-11-24\", \"session\": \"AM\", \"code\": \"/\"}]', NULL, 'old',"
		   " NULL, 'api')");
	long events_before = scalar(c, "SELECT count(*) FROM events");
	ck_assert_int_gt(events_before, 2);

	/* The new migrate: no "edited migration", the new steps only, the functions. */
	struct migration_set set;
	ck_assert_msg(migrate_scan(th_env("DUALREG_SQL_DIR"), &set, err, sizeof err) == 0, "%s",
		      err);
	int applied;
	/* Only the step exactly as the split left it stands for the step of before: an
	 * edited one is refused here as anywhere, and the refusal changes nothing. */
	ck_assert_str_eq(set.items[4].name, "005_marks.sql");
	char kept[65];
	memcpy(kept, set.items[4].checksum, sizeof kept);
	memset(set.items[4].checksum, 'e', 64);
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "005_marks.sql was changed after it was applied") != NULL, "%s",
		      err);
	memcpy(set.items[4].checksum, kept, sizeof kept);
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), 13);
	ck_assert_msg(migrate_apply(c, &set, NULL, &applied, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(applied, DUALREG_SCHEMA_VERSION - 13);
	ck_assert_int_eq(migrate_current_version(c, err, sizeof err), DUALREG_SCHEMA_VERSION);
	char installed[65];
	ck_assert_int_eq(migrate_installed_functions(c, installed, err, sizeof err), 1);
	ck_assert_str_eq(installed, DUALREG_FUNCTIONS_CHECKSUM);
	/* schema_migrations now says what a fresh database says: every step, by the
	 * checksum of its file as it is now. */
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM schema_migrations"), (long)set.n);
	for (size_t i = 0; i < set.n; i++) {
		char version[8];
		snprintf(version, sizeof version, "%d", set.items[i].version);
		const char *params[] = {version, set.items[i].name, set.items[i].checksum};
		PGresult *r = PQexecParams(c,
					   "SELECT 1 FROM schema_migrations WHERE version = $1::integer "
					   "AND name = $2 AND checksum = $3",
					   3, NULL, params, NULL, NULL, 0);
		ck_assert_msg(PQntuples(r) == 1, "%s is not recorded as applied", set.items[i].name);
		PQclear(r);
	}
	/* Nothing was lost, and the code is the new code: the compact read form has its
	 * own name, the rules engine its list. */
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM events"), events_before);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM pg_proc WHERE proname = "
				   "'dualreg_mark_json'"),
			 1);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM dualreg_mark_error_types()"), 25);
	/* Registrations made before consent existed are in force. */
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM registration_records "
				   "WHERE state = 'in_force'"),
			 2);
	ck_assert_int_eq(scalar(c, "SELECT count(*) FROM registrations"), 2);
	/* The functions work: a mark goes through the engine, amends with its reason. */
	char result[512];
	text(c,
	     "SELECT dualreg_ingest_marks('[{\"upn\": \"B801200005001\", \"urn\": \"100002\","
	     " \"date\": \"2026-11-24\", \"session\": \"AM\", \"code\": \"I\"},"
	     " {\"upn\": \"B801200005001\", \"urn\": \"100002\", \"date\": \"2026-11-24\","
	     " \"session\": \"AM\", \"code\": \"I\", \"reason\": \"phoned\"},"
	     " {\"upn\": \"B801200005001\", \"urn\": \"100002\", \"date\": \"2026-11-25\","
	     " \"session\": \"PM\", \"code\": \"/\"}]', NULL, 'new', NULL, 'api') -> 'counts'",
	     result, sizeof result);
	ck_assert_msg(strcmp(result, "{\"amended\": 1, \"created\": 1, \"rejected\": 1, "
				     "\"unchanged\": 0}") == 0,
		      "%s", result);
	text(c, "SELECT string_agg(code || '@' || urn, ',' ORDER BY urn) FROM marks"
		" WHERE date = '2026-11-25' AND session = 'PM'",
	     result, sizeof result);
	ck_assert_str_eq(result, "D@100001,/@100002"); /* the derived D followed */
	/* Migrating again applies no step. */
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), 0);
	ck_assert_int_eq(applied, 0);

	/* And the upgraded database is made of exactly what a fresh one is. */
	static char upgraded[1 << 17], fresh[1 << 17];
	text(c, catalog_sql, upgraded, sizeof upgraded);
	PQfinish(c);
	th_db_create(url, sizeof url);
	c = db();
	ck_assert_int_eq(migrate_apply(c, &set, NULL, &applied, err, sizeof err), 0);
	text(c, catalog_sql, fresh, sizeof fresh);
	ck_assert_uint_gt(strlen(fresh), 1000);
	ck_assert_msg(strcmp(upgraded, fresh) == 0, "upgraded:\n%s\n\nfresh:\n%s", upgraded, fresh);
	PQfinish(c);
	migrate_set_free(&set);
}
END_TEST

START_TEST(test_upgrade_with_dualregctl)
{
	/* The operator's view: status before, the run, a second run. */
	PGconn *c = db();
	migrate_legacy(c);
	PQfinish(c);
	char ctl[512], env_url[1100], out[4096];
	snprintf(ctl, sizeof ctl, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	char *const envp[] = {env_url, NULL};
	char *const status[] = {ctl, "-c", "/dev/null", "migrate", "--status", NULL};
	ck_assert_int_eq(th_run(status, envp, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "schema version 13,") != NULL && strstr(out, "(pending)"),
		      "%s", out);
	char *const migrate[] = {ctl, "-c", "/dev/null", "migrate", NULL};
	ck_assert_msg(th_run(migrate, envp, out, sizeof out) == 0, "%s", th_last_stderr());
	ck_assert_msg(strstr(out, "applied 014_") != NULL && strstr(out, "applied 013_") == NULL,
		      "%s", out);
	ck_assert_msg(strstr(out, "recorded 005_marks.sql under its new checksum") != NULL, "%s",
		      out);
	ck_assert_int_eq(th_run(migrate, envp, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "(0 applied now)") != NULL && strstr(out, "recorded") == NULL,
		      "%s", out);
}
END_TEST

START_TEST(test_readyz_reports_the_functions)
{
	th_db_create_migrated(url, sizeof url);
	th_daemon_start(&d, url, NULL, false);
	char u[256];
	snprintf(u, sizeof u, "%s/readyz", d.base);
	struct th_resp r;
	ck_assert_int_eq(th_http("GET", u, NULL, 0, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "functions_current")));
	th_resp_free(&r);
	/* Functions from another build (a rolling upgrade, or a forgotten migrate): still
	 * in service, but the answer says so and the log explains, once. */
	th_sql(url, "UPDATE schema_functions SET checksum = repeat('0', 64)");
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(th_http("GET", u, NULL, 0, NULL, &r), 0);
		ck_assert_int_eq(r.status, 200);
		ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "functions_current")));
		th_resp_free(&r);
	}
	ck_assert(th_daemon_log_contains(&d, "functions are not this build's"));
	/* A database migrated before the functions were recorded: migrate. */
	th_sql(url, "DROP TABLE schema_functions");
	ck_assert_int_eq(th_http("GET", u, NULL, 0, NULL, &r), 0);
	th_assert_problem(&r, 503);
	ck_assert_msg(strstr(r.body, "dualregctl migrate") != NULL, "%s", r.body);
	th_resp_free(&r);
	ck_assert_int_eq(th_daemon_stop(&d, SIGTERM), 0);
	d.pid = 0;
}
END_TEST

Suite *migrate_suite(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("apply");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_apply_project_migrations);
	tcase_add_test(tc, test_edited_history_is_refused);
	tcase_add_test(tc, test_failing_file_rolls_back_the_run);
	tcase_add_test(tc, test_functions_follow_their_files);
	tcase_add_test(tc, test_layout_errors);
	tcase_add_test(tc, test_newer_database_is_refused);
	tcase_add_test(tc, test_concurrent_migrators);
	tcase_add_test(tc, test_ctl_commands);
	tcase_add_test(tc, test_upgrade_from_before_the_split);
	tcase_add_test(tc, test_upgrade_with_dualregctl);
	tcase_add_test(tc, test_readyz_reports_the_functions);
	suite_add_tcase(s, tc);
	return s;
}
