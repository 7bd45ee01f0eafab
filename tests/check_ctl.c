/*
 * ctl: dualregctl as an operator runs it, against a fresh database each test.
 * key create / list / revoke (output, --json, exit statuses 0/1/2) and seed --demo:
 * valid demo data, idempotent on a second run, fresh keys each run with the old ones
 * revoked, and keys that the real daemon accepts.
 */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dualreg/auth_token.h"
#include "dualreg/upn.h"
#include "harness.h"
#include "suites.h"

static char url[1024];
static struct th_daemon d;
static char out[16384];

static void setup(void)
{
	th_db_create_migrated(url, sizeof url);
	th_sql(url, "INSERT INTO schools (urn, name, kind) VALUES ('100001', 'Hill School', "
		    "'mainstream')");
}

static void teardown(void)
{
	if (d.pid > 0)
		th_daemon_stop(&d, SIGKILL);
}

/* Runs dualregctl with args (NULL-terminated) against the test database. */
static int ctl(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4)
{
	char bin[512], env_url[1100];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	snprintf(env_url, sizeof env_url, "DUALREG_DATABASE_URL=%s", url);
	char *argv[] = {bin, "-c", "/dev/null", (char *)a0, (char *)a1, (char *)a2, (char *)a3,
			(char *)a4, NULL};
	char *const envp[] = {env_url, NULL};
	return th_run(argv, envp, out, sizeof out);
}

/* The first column of the first row of a query, as a number. */
static long long sql_int(const char *sql)
{
	PGconn *c = PQconnectdb(url);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
		      PQresultErrorMessage(r));
	long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return v;
}

/* The token printed by the last command (the line starting with drk_). */
static void token_from_out(char *token)
{
	const char *t = strstr(out, "drk_");
	ck_assert_msg(t != NULL, "no token in: %s", out);
	size_t n = strcspn(t, "\n'");
	ck_assert_uint_eq(n, AUTH_TOKEN_LEN);
	memcpy(token, t, n);
	token[n] = '\0';
}

START_TEST(test_key_create)
{
	char token[AUTH_TOKEN_LEN + 1];
	ck_assert_int_eq(ctl("key", "create", "--admin", NULL, NULL), 0);
	token_from_out(token);
	ck_assert_int_eq(ctl("key", "create", "--school", "100001", "--name"), 2); /* no value */
	ck_assert_int_eq(ctl("key", "create", "--school", "100001", NULL), 0);
	ck_assert_int_eq(ctl("key", "create", "--admin", "--name", "MIS sync"), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys"), 3);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys WHERE role = 'school' AND urn = "
				 "'100001' AND name = 'school 100001'"),
			 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys WHERE name = 'MIS sync'"), 1);
	/* Only the hash is stored. */
	char hash[AUTH_HASH_HEX], sql[256];
	auth_token_hash(token, hash);
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM api_keys WHERE token_hash = '%s' AND prefix = '%.10s'", hash,
		 token);
	ck_assert_int_eq(sql_int(sql), 1);

	/* Failures: usage errors exit 2, refusals 1; nothing is created. */
	ck_assert_int_eq(ctl("key", "create", NULL, NULL, NULL), 2);
	ck_assert_int_eq(ctl("key", "create", "--admin", "--school", "100001"), 2);
	ck_assert_int_eq(ctl("key", "create", "--bogus", NULL, NULL), 2);
	ck_assert_int_eq(ctl("key", "create", "--school", "999999", NULL), 1);
	ck_assert_msg(strstr(th_last_stderr(), "no school with URN 999999") != NULL, "%s",
		      th_last_stderr());
	ck_assert_int_eq(ctl("key", "create", "--school", "12ab", NULL), 1);
	ck_assert_int_eq(ctl("key", "create", "--admin", "--name", ""), 2);
	ck_assert_int_eq(ctl("key", "frobnicate", NULL, NULL, NULL), 2);
	ck_assert_int_eq(ctl("key", NULL, NULL, NULL, NULL), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys"), 3);
}
END_TEST

START_TEST(test_key_list_and_revoke)
{
	ck_assert_int_eq(ctl("key", "create", "--admin", "--name", "ops"), 0);
	ck_assert_int_eq(ctl("key", "create", "--school", "100001", NULL), 0);
	long long id = sql_int("SELECT id FROM api_keys WHERE name = 'ops'");

	ck_assert_int_eq(ctl("key", "list", NULL, NULL, NULL), 0);
	ck_assert_msg(strstr(out, "ROLE") != NULL && strstr(out, "ops") != NULL &&
			  strstr(out, "school 100001") != NULL && strstr(out, "active") != NULL,
		      "%s", out);
	ck_assert_msg(strstr(out, "revoked") == NULL, "%s", out);

	char ids[32];
	snprintf(ids, sizeof ids, "%lld", id);
	ck_assert_int_eq(ctl("key", "revoke", ids, NULL, NULL), 0);
	ck_assert_msg(strstr(out, "revoked key") != NULL, "%s", out);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL"), 1);
	/* Revoking again succeeds and keeps the first revocation time. */
	th_sql(url, "UPDATE api_keys SET revoked_at = '2020-01-01' WHERE revoked_at IS NOT NULL");
	ck_assert_int_eq(ctl("key", "revoke", ids, NULL, NULL), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys WHERE revoked_at = '2020-01-01'"),
			 1);

	ck_assert_int_eq(ctl("key", "list", "--json", NULL, NULL), 0);
	cJSON *list = cJSON_Parse(out);
	ck_assert_msg(cJSON_IsArray(list), "%s", out);
	ck_assert_int_eq(cJSON_GetArraySize(list), 2);
	cJSON *first = cJSON_GetArrayItem(list, 0);
	ck_assert_int_eq((long long)cJSON_GetObjectItem(first, "id")->valuedouble, id);
	ck_assert_str_eq(cJSON_GetObjectItem(first, "name")->valuestring, "ops");
	ck_assert_str_eq(cJSON_GetObjectItem(first, "role")->valuestring, "admin");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(first, "urn")));
	ck_assert(cJSON_IsString(cJSON_GetObjectItem(first, "revoked_at")));
	ck_assert_int_eq(strlen(cJSON_GetObjectItem(first, "prefix")->valuestring), 10);
	cJSON *second = cJSON_GetArrayItem(list, 1);
	ck_assert_str_eq(cJSON_GetObjectItem(second, "urn")->valuestring, "100001");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(second, "revoked_at")));
	ck_assert_ptr_null(cJSON_GetObjectItem(first, "token_hash"));
	cJSON_Delete(list);

	ck_assert_int_eq(ctl("key", "revoke", "999999", NULL, NULL), 1);
	ck_assert_msg(strstr(th_last_stderr(), "no key with id 999999") != NULL, "%s",
		      th_last_stderr());
	ck_assert_int_eq(ctl("key", "revoke", "abc", NULL, NULL), 2);
	ck_assert_int_eq(ctl("key", "revoke", NULL, NULL, NULL), 2);
	ck_assert_int_eq(ctl("key", "list", "--yaml", NULL, NULL), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"), 1);
}
END_TEST

START_TEST(test_key_refused_without_database)
{
	char bin[512];
	snprintf(bin, sizeof bin, "%s/dualregctl", th_env("DUALREG_TEST_BIN"));
	char *argv[] = {bin, "-c", "/dev/null", "key", "list", NULL};
	char *const envp[] = {"DUALREG_DATABASE_URL=host=/nonexistent dbname=x", NULL};
	ck_assert_int_eq(th_run(argv, envp, out, sizeof out), 1);
	ck_assert_msg(strstr(th_last_stderr(), "cannot connect") != NULL, "%s", th_last_stderr());
}
END_TEST

/* The value of NAME='...' in the last output. */
static void assignment(const char *name, char *buf, size_t len)
{
	char pat[64];
	snprintf(pat, sizeof pat, "%s='", name);
	const char *p = strstr(out, pat);
	ck_assert_msg(p != NULL, "no %s in: %s", name, out);
	p += strlen(pat);
	size_t n = strcspn(p, "'");
	ck_assert_uint_lt(n, len);
	memcpy(buf, p, n);
	buf[n] = '\0';
}

static void counts(long long c[6])
{
	c[0] = sql_int("SELECT count(*) FROM schools");
	c[1] = sql_int("SELECT count(*) FROM pupils");
	c[2] = sql_int("SELECT count(*) FROM registrations");
	c[3] = sql_int("SELECT count(*) FROM registration_schedules");
	c[4] = sql_int("SELECT count(*) FROM marks");
	c[5] = sql_int("SELECT count(*) FROM mark_history");
}

START_TEST(test_seed_demo)
{
	ck_assert_int_eq(ctl("seed", NULL, NULL, NULL, NULL), 2);
	ck_assert_int_eq(ctl("seed", "--demo", "extra", NULL, NULL), 2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils"), 0);

	ck_assert_msg(ctl("seed", "--demo", NULL, NULL, NULL) == 0, "%s", th_last_stderr());
	char admin1[64], pru1[64], home1[64], pru_urn[16], home_urn[16], upn[16], base[128];
	assignment("DEMO_ADMIN_KEY", admin1, sizeof admin1);
	assignment("DEMO_PRU_KEY", pru1, sizeof pru1);
	assignment("DEMO_HOME_KEY", home1, sizeof home1);
	assignment("DEMO_PRU_URN", pru_urn, sizeof pru_urn);
	assignment("DEMO_HOME_URN", home_urn, sizeof home_urn);
	assignment("DEMO_UPN", upn, sizeof upn);
	assignment("DEMO_URL", base, sizeof base);
	ck_assert_str_eq(base, "http://127.0.0.1:8080"); /* from the (default) config */

	long long c1[6], c2[6];
	counts(c1);
	ck_assert_int_eq(c1[0], 4); /* the test's school + PRU + two home schools */
	ck_assert_int_eq(c1[1], 7); /* six dual-registered, one for the placement request */
	ck_assert_int_eq(c1[2], 13);
	ck_assert_int_eq(c1[3], 6);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM schools WHERE kind = 'pru'"), 1);
	/* Every pupil: one main registration at a home school, one subsidiary at the PRU
	 * that began on a Monday in the past and overlaps the main one, and a schedule. */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM pupils p"
				 " JOIN registrations m ON m.upn = p.upn AND m.role = 'main'"
				 " JOIN schools hs ON hs.urn = m.urn AND hs.kind = 'mainstream'"
				 " JOIN registrations s ON s.upn = p.upn AND s.role = 'subsidiary'"
				 " JOIN schools ps ON ps.urn = s.urn AND ps.kind = 'pru'"
				 " JOIN registration_schedules rs ON rs.registration_id = s.id"
				 "  AND rs.effective_from = s.start_date AND rs.mask > 0"
				 " WHERE s.start_date < dualreg_today() AND m.start_date < s.start_date"
				 "   AND extract(isodow FROM s.start_date) = 1"
				 "   AND m.end_date IS NULL AND s.end_date IS NULL"),
			 6);
	/* Varied schedules and start dates. */
	ck_assert_int_eq(sql_int("SELECT count(DISTINCT mask) FROM registration_schedules"), 6);
	ck_assert_int_ge(sql_int("SELECT count(DISTINCT start_date) FROM registrations"
				 " WHERE role = 'subsidiary'"),
			 2);
	/* Derived D marks exist for past school days (only D, only derived). */
	ck_assert_int_gt(c1[4], 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM marks WHERE code <> 'D' OR source <> "
				 "'derived'"),
			 0);
	/* Valid UPNs, checked with the project's own validator. */
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, "SELECT upn FROM pupils");
	ck_assert_int_eq(PQntuples(r), 7);
	for (int i = 0; i < PQntuples(r); i++) {
		char expected;
		ck_assert_msg(upn_validate(PQgetvalue(r, i, 0), &expected) == UPN_OK, "%s",
			      PQgetvalue(r, i, 0));
	}
	PQclear(r);
	PQfinish(c);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"), 3);
	/* Every seeded registration is in force. The request pupil: one main registration
	 * at the home school, nothing else. */
	ck_assert_int_eq(sql_int("SELECT count(*) FROM registration_records WHERE state <> "
				 "'in_force'"),
			 0);
	char req_upn[16], req_family[64], sql_req[512];
	assignment("DEMO_REQUEST_UPN", req_upn, sizeof req_upn);
	assignment("DEMO_REQUEST_FAMILY", req_family, sizeof req_family);
	snprintf(sql_req, sizeof sql_req,
		 "SELECT count(*) FROM registration_records r JOIN pupils p USING (upn)"
		 " WHERE upn = '%s' AND p.family_name = '%s'"
		 "   AND r.role = 'main' AND r.urn = '%s' AND r.start_date < dualreg_today()",
		 req_upn, req_family, home_urn);
	ck_assert_int_eq(sql_int(sql_req), 1);
	snprintf(sql_req, sizeof sql_req,
		 "SELECT count(*) FROM registration_records WHERE upn = '%s'", req_upn);
	ck_assert_int_eq(sql_int(sql_req), 1);

	/* The examples' day is the most recent weekday, and the example pupil, a pupil of the
	 * home school, is expected at the PRU that morning; on every weekday some pupil of the
	 * home school is, so the printed examples work whatever the day. */
	char day[16], q[512];
	assignment("DEMO_DAY", day, sizeof day);
	snprintf(q, sizeof q,
		 "SELECT count(*) FROM (SELECT '%s'::date d) x WHERE d <= dualreg_today()"
		 " AND d > dualreg_today() - 3 AND extract(isodow FROM d) <= 5"
		 " AND (extract(isodow FROM dualreg_today()) > 5 OR d = dualreg_today())",
		 day);
	ck_assert_msg(sql_int(q) == 1, "DEMO_DAY %s", day);
	snprintf(q, sizeof q,
		 "SELECT count(*) FROM registrations s"
		 "  JOIN registration_schedules rs ON rs.registration_id = s.id"
		 "  JOIN registrations m ON m.upn = s.upn AND m.role = 'main' AND m.urn = '%s'"
		 " WHERE s.upn = '%s' AND s.urn = '%s' AND s.role = 'subsidiary'"
		 "   AND rs.mask & (1 << (2 * (extract(isodow FROM '%s'::date)::int - 1))) <> 0",
		 home_urn, upn, pru_urn, day);
	ck_assert_msg(sql_int(q) == 1, "DEMO_UPN %s is not at the PRU on the morning of %s", upn,
		      day);
	snprintf(q, sizeof q,
		 "SELECT count(DISTINCT w) FROM generate_series(0, 4) w"
		 "  JOIN registrations m ON m.role = 'main' AND m.urn = '%s'"
		 "  JOIN registrations s ON s.upn = m.upn AND s.role = 'subsidiary'"
		 "  JOIN registration_schedules rs ON rs.registration_id = s.id"
		 " WHERE rs.mask & (1 << (2 * w)) <> 0",
		 home_urn);
	ck_assert_int_eq(sql_int(q), 5);

	/* Again: the same data, new keys, the previous demo keys revoked. */
	ck_assert_int_eq(ctl("seed", "--demo", NULL, NULL, NULL), 0);
	counts(c2);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(c1[i], c2[i]);
	char admin2[64], pru2[64];
	assignment("DEMO_ADMIN_KEY", admin2, sizeof admin2);
	assignment("DEMO_PRU_KEY", pru2, sizeof pru2);
	ck_assert_str_ne(admin1, admin2);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys"), 6);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"), 3);

	/* The daemon accepts the new keys for who they say, and refuses the old ones. */
	th_daemon_start(&d, url, NULL, false);
	struct th_resp resp;
	th_api(&d, "GET", "/v1/me", admin2, NULL, NULL, &resp);
	ck_assert_int_eq(resp.status, 200);
	cJSON *k = cJSON_GetObjectItem(resp.json, "key");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "role")->valuestring, "admin");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "name")->valuestring, "demo admin");
	th_resp_free(&resp);
	th_api(&d, "GET", "/v1/me", pru2, NULL, NULL, &resp);
	ck_assert_int_eq(resp.status, 200);
	k = cJSON_GetObjectItem(resp.json, "key");
	ck_assert_str_eq(cJSON_GetObjectItem(k, "urn")->valuestring, pru_urn);
	th_resp_free(&resp);
	th_api(&d, "GET", "/v1/me", admin1, NULL, NULL, &resp);
	th_assert_problem(&resp, 401);
	th_resp_free(&resp);
	th_api(&d, "GET", "/v1/me", home1, NULL, NULL, &resp);
	th_assert_problem(&resp, 401);
	th_resp_free(&resp);
	/* The UPN printed for the examples is a demo pupil at both schools. */
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT count(DISTINCT urn) FROM registrations WHERE upn = '%s' AND urn IN "
		 "('%s', '%s')",
		 upn, pru_urn, home_urn);
	ck_assert_int_eq(sql_int(sql), 2);

	/* The examples' placement request, made and confirmed, is set aside by the next seed
	 * so that the examples can make it again. */
	char day2[16], sql2[768];
	assignment("DEMO_DAY", day2, sizeof day2);
	snprintf(sql2, sizeof sql2,
		 "SELECT dualreg_registration_confirm('%s', (dualreg_registration_create('%s', '%s',"
		 " '%s', 'subsidiary', '%s', NULL, 1023, 'Priya', 'Shah', '2011-10-05',"
		 " interval '14 days', 30)->>'id')::bigint)->>'status'",
		 home_urn, pru_urn, req_upn, pru_urn, day2);
	th_sql(url, sql2);
	snprintf(sql2, sizeof sql2, "SELECT count(*) FROM registrations WHERE upn = '%s'", req_upn);
	ck_assert_int_eq(sql_int(sql2), 2);
	ck_assert_int_eq(ctl("seed", "--demo", NULL, NULL, NULL), 0);
	ck_assert_int_eq(sql_int(sql2), 1);
	snprintf(sql2, sizeof sql2,
		 "SELECT count(*) FROM marks WHERE upn = '%s' AND code = 'D'", req_upn);
	ck_assert_int_eq(sql_int(sql2), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM registrations"), 13);
}
END_TEST

Suite *ctl_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("dualregctl");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_key_create);
	tcase_add_test(tc, test_key_list_and_revoke);
	tcase_add_test(tc, test_key_refused_without_database);
	tcase_add_test(tc, test_seed_demo);
	suite_add_tcase(s, tc);
	return s;
}
