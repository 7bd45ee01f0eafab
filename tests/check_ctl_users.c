/*
 * ctl_users: `dualregctl user add|list|disable|reset` and the demo's staff accounts of
 * `seed --demo`, run as an operator runs them against a fresh database each test: the
 * set-up link (from [web] public_url, valid for [web] setup_ttl, only its token's SHA-256
 * stored), refusals and usage errors that change nothing, listings without hashes,
 * disabling that ends sessions, and resetting that clears every credential.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

static char url[1024];
static char out[65536];
static char conf_path[256];

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	snprintf(conf_path, sizeof conf_path, "%s/ctl-users-%d.conf", th_env("DUALREG_TEST_TMP"),
		 (int)getpid());
	FILE *f = fopen(conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("[web]\npublic_url = https://staff.example.org/\nsetup_ttl = 2h\n", f);
	fclose(f);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Hill School', "
		    "'mainstream'), ('100002', 'Vale PRU', 'pru')");
}

static void teardown(void)
{
	unlink(conf_path);
}

/* Runs dualregctl with the given arguments (NULL-terminated) against the test database. */
static int ctl(const char *first, ...)
{
	char bin[512], env_url[1100];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	char *argv[20] = {bin, "-c", conf_path};
	int n = 3;
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a != NULL && n < 19; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, sizeof out);
}

/* The one value of a query, as text (into buf). */
static const char *sql_text(const char *sql, const char *param, char *buf, size_t len)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	const char *p[] = {param};
	PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	snprintf(buf, len, "%s", PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return buf;
}

static long long sql_int(const char *sql, const char *param)
{
	char buf[64];
	return strtoll(sql_text(sql, param, buf, sizeof buf), NULL, 10);
}

/* The token of the set-up link in text (43 characters after "/app/setup#"). */
static void link_token(const char *text, char token[44])
{
	const char *l = strstr(text, "https://staff.example.org/app/setup#");
	ck_assert_msg(l != NULL, "no set-up link in: %s", text);
	l += strlen("https://staff.example.org/app/setup#");
	ck_assert_msg(strspn(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
			  43,
		      "%s", l);
	memcpy(token, l, 43);
	token[43] = '\0';
}

/* True if the account with this e-mail address has the token of the link. */
static bool has_token(const char *email, const char *token)
{
	char sql[512], buf[8];
	snprintf(sql, sizeof sql,
		 "SELECT setup_token_hash = encode(sha256(convert_to('%s', 'UTF8')), 'hex')"
		 "  FROM staff_users WHERE email = $1",
		 token);
	return strcmp(sql_text(sql, email, buf, sizeof buf), "t") == 0;
}

static void assert_out(const char *text)
{
	ck_assert_msg(strstr(out, text) != NULL, "expected \"%s\" in: %s", text, out);
}

static void assert_err(const char *text)
{
	ck_assert_msg(strstr(th_last_stderr(), text) != NULL, "expected \"%s\" on stderr: %s", text,
		      th_last_stderr());
}

START_TEST(test_user_add)
{
	ck_assert_int_eq(ctl("user", "add", "--school", "100001", "--email", "Jo.Bloggs@example.org",
			     "--name", "Jo Bloggs", NULL),
			 0);
	assert_out("added user ");
	assert_out("staff at school 100001");
	char token[44];
	link_token(out, token);
	ck_assert(has_token("Jo.Bloggs@example.org", token));
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users WHERE email = $1 AND role = "
				 "'staff' AND urn = '100001' AND name = 'Jo Bloggs' AND password_hash "
				 "IS NULL AND totp_secret IS NULL AND disabled_at IS NULL AND "
				 "setup_expires_at BETWEEN now() + interval '119 minutes' AND now() + "
				 "interval '121 minutes'",
				 "Jo.Bloggs@example.org"),
			 1);
	/* The token itself is nowhere in the database. */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users WHERE strpos(row(staff_users.*)"
				 "::text, $1) > 0",
				 token),
			 0);

	ck_assert_int_eq(ctl("user", "add", "--school", "100002", "--email", "lead@vale.example.org",
			     "--name", "Vale Lead", "--role", "lead", NULL),
			 0);
	ck_assert_int_eq(ctl("user", "add", "--admin", "--email", "ops@example.org", "--name",
			     "Operator", NULL),
			 0);
	assert_out("administrator");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users WHERE email = $1 AND role = "
				 "'admin' AND urn IS NULL",
				 "ops@example.org"),
			 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users WHERE email = $1 AND role = 'lead'",
				 "lead@vale.example.org"),
			 1);

	/* Refusals (exit 1) and usage errors (exit 2) change nothing. */
	ck_assert_int_eq(ctl("user", "add", "--school", "100002", "--email", "JO.BLOGGS@EXAMPLE.ORG",
			     "--name", "Other", NULL),
			 1);
	assert_err("a user with e-mail address JO.BLOGGS@EXAMPLE.ORG already exists");
	ck_assert_int_eq(ctl("user", "add", "--school", "999999", "--email", "x@example.org",
			     "--name", "X", NULL),
			 1);
	assert_err("no school with URN 999999");
	ck_assert_int_eq(ctl("user", "add", "--admin", "--school", "100001", "--email",
			     "y@example.org", "--name", "Y", NULL),
			 2);
	ck_assert_int_eq(ctl("user", "add", "--admin", "--role", "lead", "--email", "y@example.org",
			     "--name", "Y", NULL),
			 2);
	ck_assert_int_eq(ctl("user", "add", "--school", "100001", "--role", "admin", "--email",
			     "y@example.org", "--name", "Y", NULL),
			 2);
	assert_err("--role must be staff or lead");
	ck_assert_int_eq(ctl("user", "add", "--school", "100001", "--email", "not-an-address",
			     "--name", "Y", NULL),
			 2);
	assert_err("is not an e-mail address");
	ck_assert_int_eq(ctl("user", "add", "--school", "100001", "--email", "a b@example.org",
			     "--name", "Y", NULL),
			 2);
	ck_assert_int_eq(ctl("user", "add", "--school", "100001", "--email", "y@example.org",
			     "--name", "", NULL),
			 2);
	ck_assert_int_eq(ctl("user", "add", "--school", "1001", "--email", "y@example.org",
			     "--name", "Y", NULL),
			 2);
	ck_assert_int_eq(ctl("user", "add", "--email", "y@example.org", "--name", "Y", NULL), 2);
	ck_assert_int_eq(ctl("user", NULL), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users", NULL), 3);
}
END_TEST

START_TEST(test_user_list)
{
	ck_assert_int_eq(ctl("user", "list", NULL), 0);
	assert_out("EMAIL");
	ck_assert_int_eq(ctl("user", "add", "--school", "100001", "--email", "a@example.org",
			     "--name", "Ann", NULL),
			 0);
	ck_assert_int_eq(ctl("user", "add", "--admin", "--email", "b@example.org", "--name", "Bo",
			     NULL),
			 0);
	ck_assert_int_eq(ctl("user", "add", "--school", "100002", "--email", "c@example.org",
			     "--name", "Cy", NULL),
			 0);
	/* b is set up, c's link has expired. */
	th_sql(url, "UPDATE staff_users SET password_hash = '$argon2id$v=19$m=19456,t=2,p=1$x$y',"
		    " totp_secret = 'v1:secret', totp_confirmed_at = now(), setup_token_hash = NULL,"
		    " setup_expires_at = NULL WHERE email = 'b@example.org'");
	th_sql(url, "UPDATE staff_users SET setup_expires_at = now() - interval '1 minute'"
		    " WHERE email = 'c@example.org'");
	ck_assert_int_eq(ctl("user", "list", NULL), 0);
	assert_out("a@example.org");
	assert_out("set-up pending");
	assert_out("active");
	assert_out("set-up expired");
	ck_assert_msg(strstr(out, "argon2") == NULL && strstr(out, "v1:") == NULL, "%s", out);

	ck_assert_int_eq(ctl("user", "list", "--json", NULL), 0);
	ck_assert_msg(strstr(out, "argon2") == NULL && strstr(out, "v1:") == NULL &&
			  strstr(out, "hash") == NULL && strstr(out, "secret") == NULL,
		      "%s", out);
	cJSON *list = cJSON_Parse(out);
	ck_assert_msg(cJSON_IsArray(list) && cJSON_GetArraySize(list) == 3, "%s", out);
	cJSON *b = cJSON_GetArrayItem(list, 1);
	ck_assert_str_eq(cJSON_GetObjectItem(b, "email")->valuestring, "b@example.org");
	ck_assert_str_eq(cJSON_GetObjectItem(b, "role")->valuestring, "admin");
	ck_assert_str_eq(cJSON_GetObjectItem(b, "state")->valuestring, "active");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(b, "urn")));
	cJSON *a = cJSON_GetArrayItem(list, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(a, "urn")->valuestring, "100001");
	ck_assert_str_eq(cJSON_GetObjectItem(a, "state")->valuestring, "set-up pending");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 2), "state")->valuestring,
			 "set-up expired");
	cJSON_Delete(list);
	ck_assert_int_eq(ctl("user", "list", "--bogus", NULL), 2);
}
END_TEST

#define ADD_SESSION(email, tag)                                                           \
	th_sql(url, "INSERT INTO staff_sessions (token_hash, user_id, expires_at,"          \
		    " second_factor_done, csrf_token) SELECT '" tag "', id, now() + interval"  \
		    " '1 hour', true, 'csrf' FROM staff_users WHERE email = '" email "'")

START_TEST(test_user_disable)
{
	ck_assert_int_eq(ctl("user", "add", "--school", "100001", "--email", "a@example.org",
			     "--name", "Ann", NULL),
			 0);
	ck_assert_int_eq(ctl("user", "add", "--school", "100001", "--email", "b@example.org",
			     "--name", "Bo", NULL),
			 0);
	ADD_SESSION("a@example.org", "s1");
	ADD_SESSION("a@example.org", "s2");
	ADD_SESSION("b@example.org", "s3");
	ck_assert_int_eq(ctl("user", "disable", "A@EXAMPLE.ORG", NULL), 0);
	assert_out("disabled; 2 sessions ended");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users WHERE email = $1 AND disabled_at "
				 "IS NOT NULL AND setup_token_hash IS NULL",
				 "a@example.org"),
			 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_sessions", NULL), 1); /* b's stays */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users WHERE disabled_at IS NULL", NULL),
			 1);
	/* Again: nothing more to do. */
	ck_assert_int_eq(ctl("user", "disable", "a@example.org", NULL), 0);
	assert_out("was already disabled; 0 sessions ended");
	/* By id. */
	char id[32];
	sql_text("SELECT id FROM staff_users WHERE email = $1", "b@example.org", id, sizeof id);
	ck_assert_int_eq(ctl("user", "disable", id, NULL), 0);
	assert_out("b@example.org");
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_sessions", NULL), 0);
	ck_assert_int_eq(ctl("user", "disable", "nobody@example.org", NULL), 1);
	assert_err("no user nobody@example.org");
	ck_assert_int_eq(ctl("user", "disable", "999999", NULL), 1);
	ck_assert_int_eq(ctl("user", "disable", NULL), 2);
	ck_assert_int_eq(ctl("user", "disable", "a@example.org", "b@example.org", NULL), 2);
}
END_TEST

START_TEST(test_user_reset)
{
	ck_assert_int_eq(ctl("user", "add", "--school", "100001", "--email", "a@example.org",
			     "--name", "Ann", NULL),
			 0);
	char first[44];
	link_token(out, first);
	/* Set up, with recovery codes and sessions, then disabled. */
	th_sql(url, "UPDATE staff_users SET password_hash = '$argon2id$v=19$m=19456,t=2,p=1$x$y',"
		    " totp_secret = 'v1:secret', totp_confirmed_at = now(), totp_last_step = 5,"
		    " setup_token_hash = NULL, setup_expires_at = NULL");
	th_sql(url, "INSERT INTO staff_recovery_codes (user_id, code_hash)"
		    " SELECT id, 'h' || g FROM staff_users, generate_series(1, 10) g");
	ADD_SESSION("a@example.org", "s1");
	ck_assert_int_eq(ctl("user", "disable", "a@example.org", NULL), 0);

	char id[32];
	sql_text("SELECT id FROM staff_users WHERE email = $1", "a@example.org", id, sizeof id);
	ck_assert_int_eq(ctl("user", "reset", id, NULL), 0);
	assert_out("reset");
	assert_out("enabled again");
	char second[44];
	link_token(out, second);
	ck_assert_str_ne(first, second);
	ck_assert(has_token("a@example.org", second));
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users WHERE password_hash IS NULL AND "
				 "totp_secret IS NULL AND totp_confirmed_at IS NULL AND "
				 "totp_last_step IS NULL AND disabled_at IS NULL AND setup_expires_at > "
				 "now() + interval '119 minutes'",
				 NULL),
			 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_recovery_codes", NULL), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_sessions", NULL), 0);

	/* By e-mail address, any case: the previous link stops working. */
	ADD_SESSION("a@example.org", "s2");
	ck_assert_int_eq(ctl("user", "reset", "A@Example.Org", NULL), 0);
	assert_out("1 session ended");
	char third[44];
	link_token(out, third);
	ck_assert(has_token("a@example.org", third));
	ck_assert(!has_token("a@example.org", second));
	ck_assert_int_eq(ctl("user", "reset", "nobody@example.org", NULL), 1);
	ck_assert(has_token("a@example.org", third));
	ck_assert_int_eq(ctl("user", "reset", NULL), 2);
}
END_TEST

START_TEST(test_seed_demo_users)
{
	ck_assert_int_eq(ctl("seed", "--demo", NULL), 0);
	assert_out("DEMO_PRU_USER='riverside.lead@example.org'");
	assert_out("DEMO_HOME_USER='northgate.lead@example.org'");
	assert_err("demo staff accounts");
	char pru[44], home[44];
	link_token(strstr(out, "DEMO_PRU_SETUP_URL="), pru);
	link_token(strstr(out, "DEMO_HOME_SETUP_URL="), home);
	ck_assert(has_token("riverside.lead@example.org", pru));
	ck_assert(has_token("northgate.lead@example.org", home));
	/* The links are on stderr too (what `make run` shows). */
	ck_assert(strstr(th_last_stderr(), pru) != NULL && strstr(th_last_stderr(), home) != NULL);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users WHERE role = 'lead' AND"
				 " ((email = 'riverside.lead@example.org' AND urn = '900101') OR"
				 "  (email = 'northgate.lead@example.org' AND urn = '900102'))",
				 NULL),
			 2);

	/* Once one is set up, a second run leaves it alone and gives the other a new link. */
	th_sql(url, "UPDATE staff_users SET password_hash = '$argon2id$v=19$m=19456,t=2,p=1$x$y',"
		    " totp_secret = 'v1:secret', totp_confirmed_at = now(), setup_token_hash = NULL,"
		    " setup_expires_at = NULL WHERE email = 'northgate.lead@example.org'");
	ck_assert_int_eq(ctl("seed", "--demo", NULL), 0);
	assert_out("DEMO_HOME_SETUP_URL=''");
	assert_err("northgate.lead@example.org: set up already; sign in at "
		   "https://staff.example.org/app/");
	char pru2[44];
	link_token(strstr(out, "DEMO_PRU_SETUP_URL="), pru2);
	ck_assert_str_ne(pru, pru2);
	ck_assert(has_token("riverside.lead@example.org", pru2));
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users", NULL), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM staff_users WHERE totp_confirmed_at IS NOT NULL",
				 NULL),
			 1);
}
END_TEST

Suite *ctl_users_suite(void)
{
	Suite *s = suite_create("ctl_users");
	TCase *tc = tcase_create("users");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_user_add);
	tcase_add_test(tc, test_user_list);
	tcase_add_test(tc, test_user_disable);
	tcase_add_test(tc, test_user_reset);
	tcase_add_test(tc, test_seed_demo_users);
	suite_add_tcase(s, tc);
	return s;
}
