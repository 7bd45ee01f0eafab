/* consent_fixture: the placement the consent suites share (see consent_fixture.h). */
#include "consent_fixture.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

char k_former[128];


const char *const phase_names[] = {"before", "pending", "declined",
					  "withdrawn", "expired", "confirmed"};
const char *const kind_names[] = {"admin", "main (HOME)", "subsidiary/proposer (PRU)",
					 "former (FORMER)", "unrelated (OTHER)"};

struct consent_fx fx;

const char *token_of(enum kind k)
{
	const char *t[] = {k_admin, k_home, k_pru, k_former, k_other};
	return t[k];
}

const char *urn_of(enum kind k)
{
	const char *u[] = {HOME, HOME, PRU, FORMER, OTHER};
	return u[k];
}

static void copy_day(char out[11], const char *day)
{
	snprintf(out, 11, "%s", day);
}

/* The daemon with webhooks to loopback allowed (the sink is on 127.0.0.1). */
void cm_setup(void)
{
	th_db_create_migrated(rg_url, sizeof rg_url);
	th_daemon_start(&rg_d, rg_url,
			"[webhooks]\nallow_http = true\nallow_private = true\n[pull]\nallow_http = true\nallow_private = true\n"
			"[webhooks]\nretry_schedule = 100ms, 100ms\n"
			"[alerts]\ncheck_interval = 200ms\n",
			false);
	th_key_create(rg_url, NULL, k_admin, sizeof k_admin);
	school(HOME, "mainstream");
	school(PRU, "pru");
	school(OTHER, "mainstream");
	school(FORMER, "mainstream");
	th_key_create(rg_url, HOME, k_home, sizeof k_home);
	th_key_create(rg_url, PRU, k_pru, sizeof k_pru);
	th_key_create(rg_url, OTHER, k_other, sizeof k_other);
	th_key_create(rg_url, FORMER, k_former, sizeof k_former);

	make_upn(77, fx.upn);
	pupil(fx.upn);
	copy_day(fx.fr0, q("SELECT dualreg_today() - 330"));
	copy_day(fx.fr1, q("SELECT dualreg_today() - 201"));
	copy_day(fx.hs, q("SELECT dualreg_today() - 200"));
	copy_day(fx.f, weekday_between(300, 290));
	copy_day(fx.b, weekday_between(40, 33));
	copy_day(fx.s0, weekday_between(27, 21));
	copy_day(fx.d, weekday_between(20, 14));
	copy_day(fx.s1, weekday_between(13, 7));
	copy_day(fx.a, weekday_between(7, 1)); /* never today: timestamps hold today */
	copy_day(fx.t, q("SELECT dualreg_today()"));
	/* Admin registrations are in force at once. */
	reg(k_admin, fx.upn, FORMER, "main", fx.fr0, fx.fr1, NULL);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");
	fx.main_id = reg(k_admin, fx.upn, HOME, "main", fx.hs, NULL, NULL);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");
	fx.sub_id = 999999; /* no placement yet: a registration nobody sees */
	fx.phase = BEFORE;
}

void cm_teardown(void)
{
	rg_teardown();
}

const char *reg_action(long id, const char *action)
{
	static char p[96];
	if (action == NULL)
		snprintf(p, sizeof p, "/v1/registrations/%ld", id);
	else
		snprintf(p, sizeof p, "/v1/registrations/%ld/%s", id, action);
	return p;
}

/* The PRU proposes the placement [s0, s1]: pending, awaiting HOME. */
long propose(void)
{
	call("POST", "/v1/registrations", k_pru,
	     "{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"end_date\":\"%s\",\"schedule\":" ALL_WEEK "," IDENTITY "}",
	     fx.upn, fx.s0, fx.s1);
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "pending");
	ck_assert_str_eq(jstr(R.json, "requested_by"), PRU);
	ck_assert_str_eq(jstr(R.json, "awaiting"), HOME);
	ck_assert_ptr_nonnull(jstr(R.json, "expires_at"));
	return (long)cJSON_GetObjectItemCaseSensitive(R.json, "id")->valuedouble;
}

const char *reg_status(long id)
{
	return q("SELECT state FROM registration_records WHERE id = %ld", id);
}

/*
 * Makes a pending request expire. The expiry is the daemon's periodic job
 * (dualreg_expire_requests on its alerts timer, every 200 ms here); the test moves
 * expires_at into the past with SQL and waits (bounded) for the daemon to record the
 * expiry, so that the path it exercises is the daemon's own.
 */
void expire(long id)
{
	char sql[160];
	snprintf(sql, sizeof sql,
		 "UPDATE registration_records SET expires_at = now() - interval '1 minute' "
		 "WHERE id = %ld AND state = 'pending'",
		 id);
	th_sql(rg_url, sql);
	double deadline = th_now() + 20;
	while (strcmp(reg_status(id), "expired") != 0 && th_now() < deadline)
		usleep(200000);
	ck_assert_str_eq(reg_status(id), "expired");
}

/* Brings the fixture to a phase. */
void enter(enum phase p)
{
	fx.phase = p;
	if (p == BEFORE)
		return;
	fx.sub_id = propose();
	switch (p) {
	case DECLINED:
		call("POST", reg_action(fx.sub_id, "decline"), k_home, "{\"reason\":\"not agreed\"}");
		expect_status(200);
		ck_assert_str_eq(jstr(R.json, "status"), "declined");
		break;
	case WITHDRAWN:
		call("POST", reg_action(fx.sub_id, "withdraw"), k_pru, NULL);
		expect_status(200);
		ck_assert_str_eq(jstr(R.json, "status"), "withdrawn");
		break;
	case EXPIRED:
		expire(fx.sub_id);
		break;
	case CONFIRMED:
		call("POST", reg_action(fx.sub_id, "confirm"), k_home, NULL);
		expect_status(200);
		ck_assert_str_eq(jstr(R.json, "status"), "in_force");
		break;
	default:
		break;
	}
}
