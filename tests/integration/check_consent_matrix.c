/*
 * consent_matrix: who may see and change what of a dual-registered pupil, and when
 * (issue 10: registrations by consent, data by period, no oracles), against the real
 * daemon. One table, MATRIX below, holds every pupil-data route against every kind of
 * key in every phase of a placement request; each cell is the answer expected. Every
 * answer is also searched for what the key must not learn (the pupil's name, other
 * schools' URNs, registration dates outside its own period), and a 200 is checked for
 * shape: a register lists the pupil or not, a change feed carries the pupil's events or
 * not, a mark is accepted or refused as `pupil-not-on-roll`, a registration list shows
 * others' registrations only within the key's own period, and an attendance read holds
 * marks only of the key's own period.
 *
 * The fixture: pupil Ada Lovelace, main registration at FORMER (ended long ago), then
 * main at HOME (open); the PRU proposes a subsidiary [s0, s1] (both in the past, every
 * weekday session at the PRU), which HOME then confirms, declines, lets expire, or the
 * PRU withdraws. OTHER has nothing to do with the pupil.
 *
 * Named tests follow the matrix: the issue's reproduction (an unrelated school probing
 * with a back-dated main registration), identical answers for unknown pupils and
 * hidden ones, a request reaching the home school's webhook and changing nothing until
 * confirmed, expiry, pending changes of an in-force placement, and the home school
 * proposing (the PRU decides) with conflicts that name nothing of others.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../suites.h"
#include "../th_server.h"
#include "registry_fixture.h"

#define FORMER "400004" /* the pupil's main school until long ago */
#define GIVEN "Ada"
#define FAMILY "Lovelace"
#define DOB "2012-12-10"
#define IDENTITY "\"given_name\":\"" GIVEN "\",\"family_name\":\"" FAMILY "\",\"date_of_birth\":\"" DOB "\""
#define ALL_WEEK                                                                              \
	"{\"mon\":[\"AM\",\"PM\"],\"tue\":[\"AM\",\"PM\"],\"wed\":[\"AM\",\"PM\"],\"thu\":[\"AM\"," \
	"\"PM\"],\"fri\":[\"AM\",\"PM\"]}"

static char k_former[128];

/* ---- the fixture ---- */

/* The phases of the PRU's placement request. */
enum phase { BEFORE, PENDING, DECLINED, WITHDRAWN, EXPIRED, CONFIRMED, NPHASES };
static const char *const phase_names[] = {"before", "pending", "declined",
					  "withdrawn", "expired", "confirmed"};
/* The kinds of key: the table's columns. */
enum kind { ADMIN, MAIN, SUB, FORMER_K, UNRELATED, NKINDS };
static const char *const kind_names[] = {"admin", "main (HOME)", "subsidiary/proposer (PRU)",
					 "former (FORMER)", "unrelated (OTHER)"};

static struct {
	char upn[14];
	/* registrations: FORMER main [fr0, fr1], HOME main [hs, open), PRU [s0, s1] */
	char fr0[11], fr1[11], hs[11], s0[11], s1[11];
	/* days asked about: in FORMER's period, HOME only, the placement, after it */
	char f[11], b[11], d[11], a[11], t[11];
	long main_id, sub_id;
	enum phase phase;
} fx;

static const char *token_of(enum kind k)
{
	const char *t[] = {k_admin, k_home, k_pru, k_former, k_other};
	return t[k];
}

static const char *urn_of(enum kind k)
{
	const char *u[] = {HOME, HOME, PRU, FORMER, OTHER};
	return u[k];
}

static void copy_day(char out[11], const char *day)
{
	snprintf(out, 11, "%s", day);
}

/* The daemon with webhooks to loopback allowed (the sink is on 127.0.0.1). */
static void cm_setup(void)
{
	th_db_create_migrated(rg_url, sizeof rg_url);
	th_daemon_start(&rg_d, rg_url,
			"[outbound]\nallow_http = true\nallow_private = true\n"
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

static void cm_teardown(void)
{
	rg_teardown();
}

static const char *reg_action(long id, const char *action)
{
	static char p[96];
	if (action == NULL)
		snprintf(p, sizeof p, "/v1/registrations/%ld", id);
	else
		snprintf(p, sizeof p, "/v1/registrations/%ld/%s", id, action);
	return p;
}

/* The PRU proposes the placement [s0, s1]: pending, awaiting HOME. */
static long propose(void)
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

static const char *reg_status(long id)
{
	return q("SELECT state FROM registration_records WHERE id = %ld", id);
}

/*
 * Makes a pending request expire. The expiry is the daemon's periodic job
 * (dualreg_expire_requests on its alerts timer, every 200 ms here); the test moves
 * expires_at into the past with SQL and waits (bounded) for the daemon to record the
 * expiry, so that the path it exercises is the daemon's own.
 */
static void expire(long id)
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
static void enter(enum phase p)
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

/* ---- the matrix ---- */

/*
 * A row: the phases it holds in (a bit per phase), a request ("METHOD path", with an
 * optional JSON body), and the answer expected for each kind of key. Placeholders:
 * {upn}; {own} the key's school (HOME for admin); {main} HOME's main registration,
 * {sub} the PRU's placement (none before it is proposed); days {f} (FORMER's period),
 * {b} (HOME only), {d} (the placement), {a} (after it), {t} (today), {fr0} (FORMER's
 * start), {s0} {s1} (the placement's start and end).
 *
 * A cell: "-" not asked (the request would change the fixture); otherwise one or more
 * answers separated by "|", each a status, optionally followed by "+" (a 200 with the
 * pupil in it: on the register, in the feed, the mark accepted, the request listed;
 * for a pupil's registrations, another school's registration in force among them),
 * "-" (a 200 without: not on the register, not in the feed, the mark refused as
 * pupil-not-on-roll, the request not listed, only the key's own registrations and
 * requests), "!slug" (a mark refused with that error) or " slug" (a problem of that
 * type). Whatever the cell, every answer is searched for leaks (assert_no_leak).
 */
struct row {
	unsigned phases;
	const char *request, *body;
	const char *want[NKINDS];
};

#define P(x) (1u << (x))
#define ALL (P(BEFORE) | P(PENDING) | P(DECLINED) | P(WITHDRAWN) | P(EXPIRED) | P(CONFIRMED))
#define NOT_IN_FORCE (P(BEFORE) | P(PENDING) | P(DECLINED) | P(WITHDRAWN) | P(EXPIRED))
#define DONE (P(DECLINED) | P(WITHDRAWN) | P(EXPIRED))
#define MARK(day)                                                                          \
	"{\"marks\":[{\"upn\":\"{upn}\",\"urn\":\"{own}\",\"date\":\"" day "\",\"session\":" \
	"\"AM\",\"code\":\"/\"}]}"

/*
 * FSUB: the former school addressing a registration it shares no period with (the
 * PRU's placement, HOME's main registration). It may read the pupil (its own past
 * registration) but does not see those registrations (GET .../registrations leaves them
 * out), so changing or deciding on them is 404, as for a registration that does not
 * exist: a 403 or a 409 would tell it that the registration is the pupil's, and
 * whether a request is pending on it.
 */
#define FSUB "404"

/* clang-format off */
static const struct row MATRIX[] = {
/*  phases        request                                              body              admin     main      sub/proposer  former   unrelated */
    /* marks, first, so that the reads below have marks of every period to leave out:
     * one answer for every pupil not on the key's roll that day */
    {NOT_IN_FORCE, "POST /v1/marks", MARK("{d}"),                              {"200+", "200+", "200-", "200-", "200-"}},
    {P(CONFIRMED), "POST /v1/marks", MARK("{d}"),                              {"200+", "200+", "200+", "200-", "200-"}},
    {ALL,          "POST /v1/marks", MARK("{f}"),                              {"200!before-registration", "200-", "200-", "200+", "200-"}},
    {ALL,          "POST /v1/marks", MARK("{b}"),                              {"200+", "200+", "200-", "200-", "200-"}},
    {ALL,          "POST /v1/marks", MARK("{a}"),                              {"200+", "200+", "200-", "200-", "200-"}},
    /* identity: while a school has or had a registration in force */
    {NOT_IN_FORCE, "GET /v1/pupils/{upn}", NULL,                               {"200",  "200",  "404",  "200",  "404"}},
    {P(CONFIRMED), "GET /v1/pupils/{upn}", NULL,                               {"200",  "200",  "200",  "200",  "404"}},
    /* registrations: others' in force, within the overlap ("+": there is one, "-":
     * only the key's own); a proposer that cannot see the pupil (no registration in
     * force) gets 404 like anyone else */
    {NOT_IN_FORCE, "GET /v1/pupils/{upn}/registrations", NULL,                 {"200",  "200-", "404",  "200-", "404"}},
    {P(CONFIRMED), "GET /v1/pupils/{upn}/registrations", NULL,                 {"200",  "200+", "200+", "200-", "404"}},
    /* status, history: the dates of the key's registrations in force */
    {ALL,          "GET /v1/pupils/{upn}/status?date={f}", NULL,               {"200",  "404",  "404",  "200",  "404"}},
    {ALL,          "GET /v1/pupils/{upn}/status?date={b}", NULL,               {"200",  "200",  "404",  "404",  "404"}},
    {NOT_IN_FORCE, "GET /v1/pupils/{upn}/status?date={d}", NULL,               {"200",  "200",  "404",  "404",  "404"}},
    {P(CONFIRMED), "GET /v1/pupils/{upn}/status?date={d}", NULL,               {"200",  "200",  "200",  "404",  "404"}},
    {ALL,          "GET /v1/pupils/{upn}/status?date={a}", NULL,               {"200",  "200",  "404",  "404",  "404"}},
    {NOT_IN_FORCE, "GET /v1/pupils/{upn}/marks/{d}/AM/history", NULL,         {"200",  "200",  "404",  "404",  "404"}},
    {P(CONFIRMED), "GET /v1/pupils/{upn}/marks/{d}/AM/history", NULL,         {"200",  "200",  "200",  "404",  "404"}},
    {ALL,          "GET /v1/pupils/{upn}/marks/{a}/AM/history", NULL,         {"200",  "200",  "404",  "404",  "404"}},
    /* attendance over everything: only the key's own period comes back */
    {NOT_IN_FORCE, "GET /v1/pupils/{upn}/attendance?from={fr0}&to={t}", NULL,  {"200",  "200",  "404",  "200",  "404"}},
    {P(CONFIRMED), "GET /v1/pupils/{upn}/attendance?from={fr0}&to={t}", NULL,  {"200",  "200",  "200",  "200",  "404"}},
    /* registers: the pupil is on a school's register only while in force there */
    {NOT_IN_FORCE, "GET /v1/schools/{own}/register?date={d}&session=AM", NULL, {"200+", "200+", "200-", "200-", "200-"}},
    {P(CONFIRMED), "GET /v1/schools/{own}/register?date={d}&session=AM", NULL, {"200+", "200+", "200+", "200-", "200-"}},
    {ALL,          "GET /v1/schools/{own}/register?date={a}&session=AM", NULL, {"200+", "200+", "200-", "200-", "200-"}},
    /* the change feed: registration.requested to the home school only; declined to the
     * proposer, withdrawn to the home school, expired to both */
    {P(BEFORE) | P(PENDING) | P(WITHDRAWN), "GET /v1/changes?limit=1000", NULL, {"200+", "200+", "200-", "200+", "200-"}},
    {P(DECLINED) | P(EXPIRED) | P(CONFIRMED), "GET /v1/changes?limit=1000", NULL, {"200+", "200+", "200+", "200+", "200-"}},
    /* pending requests: to the counterpart (with the pupil) and the proposer */
    {P(PENDING),   "GET /v1/registrations?status=pending", NULL,               {"200+", "200+", "200+", "200-", "200-"}},
    {P(BEFORE) | DONE | P(CONFIRMED), "GET /v1/registrations?status=pending", NULL, {"200-", "200-", "200-", "200-", "200-"}},
    /* registrations: main only at one's own school, never back-dated beyond the limit,
     * and a pupil one cannot see only with matching details */
    {ALL, "POST /v1/registrations",
     "{\"upn\":\"{upn}\",\"urn\":\"{own}\",\"role\":\"main\",\"start_date\":\"1900-01-01\",\"end_date\":\"1900-01-01\"}",
                                                                                {"-",    "422 start-date-too-early", "422", "422 start-date-too-early", "422"}},
    {ALL, "POST /v1/registrations",
     "{\"upn\":\"{upn}\",\"urn\":\"" HOME "\",\"role\":\"main\",\"start_date\":\"{t}\"}",
                                                                                {"409",  "409",  "403",  "403",  "403"}},
    {NOT_IN_FORCE, "POST /v1/registrations",
     "{\"upn\":\"{upn}\",\"urn\":\"{own}\",\"role\":\"subsidiary\",\"start_date\":\"{t}\",\"schedule\":{\"mon\":[\"AM\"]}}",
                                                                                {"-",    "-",    "422 unknown-pupil", "-", "422 unknown-pupil"}},
    {P(CONFIRMED), "POST /v1/registrations",
     "{\"upn\":\"{upn}\",\"urn\":\"{own}\",\"role\":\"subsidiary\",\"start_date\":\"{t}\",\"schedule\":{\"mon\":[\"AM\"]}}",
                                                                                {"-",    "-",    "-",    "-",    "422 unknown-pupil"}},
    /* changing registrations: only those one sees, only one's own (or the placement) */
    {NOT_IN_FORCE, "PATCH /v1/registrations/{main}", "{\"end_date\":\"{t}\"}", {"-",    "-",    "404",  FSUB,   "404"}},
    {P(CONFIRMED), "PATCH /v1/registrations/{main}", "{\"end_date\":\"{t}\"}", {"-",    "-",    "403",  FSUB,   "404"}},
    {P(BEFORE),    "PATCH /v1/registrations/{sub}", "{\"end_date\":\"{s1}\"}", {"404",  "404",  "404",  "404",  "404"}},
    {P(PENDING) | DONE | P(CONFIRMED), "PATCH /v1/registrations/{sub}", "{\"end_date\":\"{s1}\"}",
                                                                                {"-",    "-",    "-",    FSUB,   "404"}},
    /* decisions: the counterpart or admin decides, the proposer withdraws */
    {P(BEFORE),    "POST /v1/registrations/{sub}/confirm", NULL,               {"404",  "404",  "404",  "404",  "404"}},
    {P(PENDING),   "POST /v1/registrations/{sub}/confirm", NULL,               {"-",    "-",    "403",  FSUB,   "404"}},
    {DONE | P(CONFIRMED), "POST /v1/registrations/{sub}/confirm", NULL,        {"409 nothing-pending", "409 nothing-pending", "403|409", FSUB, "404"}},
    {P(BEFORE),    "POST /v1/registrations/{sub}/decline", "{\"reason\":\"no\"}", {"404", "404",  "404",  "404",  "404"}},
    {P(PENDING),   "POST /v1/registrations/{sub}/decline", "{\"reason\":\"no\"}", {"-",   "-",    "403",  FSUB,   "404"}},
    {DONE | P(CONFIRMED), "POST /v1/registrations/{sub}/decline", "{\"reason\":\"no\"}",
                                                                                {"409 nothing-pending", "409 nothing-pending", "403|409", FSUB, "404"}},
    {P(BEFORE),    "POST /v1/registrations/{sub}/withdraw", NULL,              {"404",  "404",  "404",  "404",  "404"}},
    {P(PENDING),   "POST /v1/registrations/{sub}/withdraw", NULL,              {"-",    "403",  "-",    FSUB,   "404"}},
    {DONE | P(CONFIRMED), "POST /v1/registrations/{sub}/withdraw", NULL,       {"409 nothing-pending", "403|409", "409 nothing-pending", FSUB, "404"}},
};
/* clang-format on */
#define NROWS (sizeof MATRIX / sizeof MATRIX[0])

/* Expands the placeholders of a row for a kind of key. */
static void expand(const char *tmpl, enum kind k, char *out, size_t len)
{
	char main_id[24], sub_id[24];
	snprintf(main_id, sizeof main_id, "%ld", fx.main_id);
	snprintf(sub_id, sizeof sub_id, "%ld", fx.sub_id);
	const struct {
		const char *name, *value;
	} vars[] = {
	    {"{upn}", fx.upn}, {"{own}", urn_of(k)}, {"{main}", main_id}, {"{sub}", sub_id},
	    {"{f}", fx.f},     {"{b}", fx.b},        {"{d}", fx.d},       {"{a}", fx.a},
	    {"{t}", fx.t},     {"{fr0}", fx.fr0},    {"{s0}", fx.s0},     {"{s1}", fx.s1},
	};
	size_t n = 0;
	for (const char *p = tmpl; *p != '\0' && n + 1 < len;) {
		bool hit = false;
		for (size_t i = 0; i < sizeof vars / sizeof vars[0] && !hit; i++) {
			size_t l = strlen(vars[i].name);
			if (strncmp(p, vars[i].name, l) == 0) {
				n += (size_t)snprintf(out + n, len - n, "%s", vars[i].value);
				p += l;
				hit = true;
			}
		}
		if (!hit)
			out[n++] = *p++;
		if (n >= len)
			n = len - 1;
	}
	out[n] = '\0';
}

/* What a kind of key may learn in the current phase. */
static bool knows_identity(enum kind k)
{
	return k != UNRELATED && (k != SUB || fx.phase == CONFIRMED);
}

/* The key's own periods in force: [from, to] (to "" when open). */
static int own_periods(enum kind k, const char *from[2], const char *to[2])
{
	switch (k) {
	case MAIN:
		from[0] = fx.hs, to[0] = "";
		return 1;
	case SUB:
		if (fx.phase != CONFIRMED)
			return 0;
		from[0] = fx.s0, to[0] = fx.s1;
		return 1;
	case FORMER_K:
		from[0] = fx.fr0, to[0] = fx.fr1;
		return 1;
	default:
		return 0;
	}
}

static bool in_own_period(enum kind k, const char *from, const char *to)
{
	const char *pf[2], *pt[2];
	int n = own_periods(k, pf, pt);
	for (int i = 0; i < n; i++)
		if (strcmp(from, pf[i]) >= 0 &&
		    (pt[i][0] == '\0' || (to != NULL && to[0] != '\0' && strcmp(to, pt[i]) <= 0)))
			return true;
	return false;
}

/* The body must not hold what the key may not learn (unless the request said it). */
static void assert_no_leak(enum kind k, const char *what, const char *request)
{
	if (k == ADMIN || R.body == NULL)
		return;
	const char *names[] = {GIVEN, FAMILY, DOB};
	if (!knows_identity(k))
		for (size_t i = 0; i < 3; i++)
			ck_assert_msg(strstr(R.body, names[i]) == NULL, "%s: leaks %s: %s", what,
				      names[i], R.body);
	/* Schools the key shares no period in force with; dates of other registrations. */
	const char *urns[4] = {NULL}, *dates[10] = {NULL};
	int nu = 0, nd = 0;
	switch (k) {
	case MAIN:
		urns[nu++] = FORMER;
		if (fx.phase == BEFORE)
			urns[nu++] = PRU; /* from the request on, its event names the PRU */
		dates[nd++] = fx.fr0, dates[nd++] = fx.fr1, dates[nd++] = fx.f;
		break;
	case SUB:
		urns[nu++] = FORMER;
		dates[nd++] = fx.fr0, dates[nd++] = fx.fr1, dates[nd++] = fx.hs;
		dates[nd++] = fx.f, dates[nd++] = fx.b, dates[nd++] = fx.a;
		break;
	case FORMER_K:
		urns[nu++] = HOME, urns[nu++] = PRU;
		dates[nd++] = fx.hs, dates[nd++] = fx.s0, dates[nd++] = fx.s1;
		dates[nd++] = fx.b, dates[nd++] = fx.d, dates[nd++] = fx.a;
		break;
	case UNRELATED:
		urns[nu++] = HOME, urns[nu++] = PRU, urns[nu++] = FORMER;
		dates[nd++] = fx.fr0, dates[nd++] = fx.fr1, dates[nd++] = fx.hs;
		dates[nd++] = fx.s0, dates[nd++] = fx.s1, dates[nd++] = fx.f;
		dates[nd++] = fx.b, dates[nd++] = fx.d, dates[nd++] = fx.a;
		break;
	default:
		break;
	}
	for (int i = 0; i < nu; i++)
		if (strstr(request, urns[i]) == NULL)
			ck_assert_msg(strstr(R.body, urns[i]) == NULL, "%s: leaks school %s: %s",
				      what, urns[i], R.body);
	for (int i = 0; i < nd; i++)
		if (strstr(request, dates[i]) == NULL)
			ck_assert_msg(strstr(R.body, dates[i]) == NULL, "%s: leaks date %s: %s",
				      what, dates[i], R.body);
}

/* A 200's shape for the route asked: with the pupil ('+'), without ('-'), or a mark
 * refused with slug ('!'). */
static void assert_shape(enum kind k, const char *path, char mode, const char *slug,
			 const char *what)
{
	if (strncmp(path, "/v1/schools/", 12) == 0) { /* a register */
		bool listed = false;
		const cJSON *e;
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(R.json, "pupils"))
		{
			listed |= strcmp(jstr(e, "upn"), fx.upn) == 0;
			if (strcmp(jstr(e, "upn"), fx.upn) == 0 && fx.phase != CONFIRMED)
				ck_assert_msg(cJSON_IsNull(cJSON_GetObjectItem(e, "other_urn")),
					      "%s: another school not in force: %s", what, R.body);
		}
		ck_assert_msg(listed == (mode == '+'), "%s: pupil %slisted: %s", what,
			      listed ? "" : "not ", R.body);
	} else if (strncmp(path, "/v1/changes", 11) == 0) {
		bool has = strstr(R.body, fx.upn) != NULL;
		ck_assert_msg(has == (mode == '+'), "%s: the pupil's events %s: %s", what,
			      has ? "present" : "missing", R.body);
	} else if (strncmp(path, "/v1/marks", 9) == 0) {
		const cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(R.json, "results"), 0);
		const char *st = jstr(r0, "status");
		if (mode == '+') {
			ck_assert_msg(strcmp(st, "rejected") != 0, "%s: %s", what, R.body);
		} else {
			ck_assert_msg(strcmp(st, "rejected") == 0, "%s: %s", what, R.body);
			const char *want = mode == '!' ? slug : "pupil-not-on-roll";
			ck_assert_msg(strcmp(jstr(cJSON_GetObjectItem(r0, "error"), "type"), want) == 0,
				      "%s: want %s: %s", what, want, R.body);
		}
	} else if (strncmp(path, "/v1/registrations?", 18) == 0) { /* pending requests */
		bool has = false;
		const cJSON *e;
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(R.json, "registrations"))
		{
			if ((long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "id")) != fx.sub_id)
				continue;
			has = true;
			const cJSON *p = cJSON_GetObjectItem(e, "pupil");
			if (k == MAIN) { /* the counterpart decides knowing whom */
				ck_assert_msg(cJSON_IsObject(p), "%s: no pupil: %s", what, R.body);
				ck_assert_str_eq(jstr(p, "family_name"), FAMILY);
			}
		}
		ck_assert_msg(has == (mode == '+'), "%s: the request %s: %s", what,
			      has ? "present" : "missing", R.body);
	} else if (strstr(path, "/registrations") != NULL && k != ADMIN) {
		const cJSON *e;
		int others = 0;
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(R.json, "registrations"))
		{
			if (strcmp(jstr(e, "urn"), urn_of(k)) == 0)
				continue;
			/* A request it made, or one awaiting its decision, it knows of. */
			const char *by = jstr(e, "requested_by"), *awaits = jstr(e, "awaiting");
			if ((by != NULL && strcmp(by, urn_of(k)) == 0) ||
			    (awaits != NULL && strcmp(awaits, urn_of(k)) == 0))
				continue;
			others++;
			ck_assert_msg(strcmp(jstr(e, "status"), "in_force") == 0,
				      "%s: another school's %s registration: %s", what,
				      jstr(e, "status"), R.body);
			const char *end = jstr(e, "end_date");
			ck_assert_msg(in_own_period(k, jstr(e, "start_date"), end ? end : ""),
				      "%s: another school's dates outside the overlap: %s", what,
				      R.body);
		}
		ck_assert_msg((others > 0) == (mode == '+'), "%s: %d registrations of others: %s",
			      what, others, R.body);
	} else if (strstr(path, "/attendance") != NULL && k != ADMIN) {
		const cJSON *e;
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(R.json, "marks"))
		{
			const char *on = jstr(e, "date");
			ck_assert_msg(in_own_period(k, on, on), "%s: a mark of %s: %s", what, on,
				      R.body);
		}
	}
}

/* Checks one answer against a cell. */
static void check_cell(enum kind k, const char *cell, const char *path, const char *what,
		       const char *request)
{
	char alts[128];
	snprintf(alts, sizeof alts, "%s", cell);
	char *save = NULL;
	for (char *alt = strtok_r(alts, "|", &save); alt != NULL; alt = strtok_r(NULL, "|", &save)) {
		long status = strtol(alt, &alt, 10);
		if (R.status != status)
			continue;
		char mode = *alt;
		const char *slug = mode == '\0' ? NULL : alt + 1;
		if (status >= 400) {
			th_assert_problem(&R, status);
			if (mode == ' ') {
				char type[96];
				snprintf(type, sizeof type, "/problems/%s", slug);
				ck_assert_msg(strcmp(jstr(R.json, "type"), type) == 0, "%s: want %s: %s",
					      what, slug, R.body);
			}
		} else {
			assert_shape(k, path, mode, slug, what);
		}
		assert_no_leak(k, what, request);
		return;
	}
	ck_assert_msg(0, "%s: want %s, got %ld: %s", what, cell, R.status, R.body);
}

/* One phase of the matrix: every row that holds in it, for every kind of key. */
START_TEST(test_matrix)
{
	enter((enum phase)_i);
	for (size_t r = 0; r < NROWS; r++) {
		const struct row *row = &MATRIX[r];
		if (!(row->phases & P(fx.phase)))
			continue;
		for (int k = 0; k < NKINDS; k++) {
			if (strcmp(row->want[k], "-") == 0)
				continue;
			char request[512], body[1024], method[8], what[1800];
			expand(row->request, (enum kind)k, request, sizeof request);
			const char *path = strchr(request, ' ') + 1;
			snprintf(method, sizeof method, "%.*s", (int)(path - 1 - request), request);
			if (row->body != NULL)
				expand(row->body, (enum kind)k, body, sizeof body);
			snprintf(what, sizeof what, "[%s, %s] %s %s", phase_names[fx.phase],
				 kind_names[k], request, row->body ? body : "");
			if (row->body != NULL)
				call(method, path, token_of((enum kind)k), "%s", body);
			else
				call(method, path, token_of((enum kind)k), NULL);
			char asked[1600];
			snprintf(asked, sizeof asked, "%s %s", request, row->body ? body : "");
			check_cell((enum kind)k, row->want[k], path, what, asked);
		}
	}
}
END_TEST

/* ---- the issue's reproduction and the oracles ---- */

/* The answer to a request, with the UPN blanked, for comparing two answers. */
static void answer_without(const char *upn, char *out, size_t len)
{
	snprintf(out, len, "%ld ", R.status);
	size_t n = strlen(out);
	for (const char *p = R.body; p != NULL && *p != '\0' && n + 1 < len;) {
		if (strncmp(p, upn, 13) == 0) {
			n += (size_t)snprintf(out + n, len - n, "UPN");
			p += 13;
		} else {
			out[n++] = *p++;
		}
	}
	out[n < len ? n : len - 1] = '\0';
}

/*
 * Issue 10 as reported: school A, unrelated to a pupil on the roll of school B and the
 * PRU, put the pupil on its own roll with a main registration of one day in 1900 and
 * could then read the pupil's name and every registration. Now that request is refused,
 * and the pupil stays invisible to A.
 */
START_TEST(test_issue_backdated_main_registration_refused)
{
	enter(CONFIRMED);
	char upn_path[64], regs_path[96];
	snprintf(upn_path, sizeof upn_path, "/v1/pupils/%s", fx.upn);
	snprintf(regs_path, sizeof regs_path, "/v1/pupils/%s/registrations", fx.upn);
	call("GET", upn_path, k_other, NULL);
	expect_problem(404, "not-found");
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"main\",\"start_date\":\"1900-01-01\","
	     "\"end_date\":\"1900-01-01\"}",
	     fx.upn);
	ck_assert_msg(R.status == 422, "%ld %s", R.status, R.body);
	ck_assert_msg(strstr(R.body, "/problems/start-date-too-early") != NULL ||
			  strstr(R.body, "/problems/unknown-pupil") != NULL,
		      "%s", R.body);
	ck_assert_ptr_null(strstr(R.body, FAMILY));
	ck_assert_int_eq(qnum("SELECT count(*) FROM registrations WHERE urn = '" OTHER "'"), 0);
	call("GET", upn_path, k_other, NULL);
	expect_problem(404, "not-found");
	call("GET", regs_path, k_other, NULL);
	expect_problem(404, "not-found");
	/* Even with the pupil's details, a back-dated main registration is refused. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"main\",\"start_date\":\"1900-01-01\","
	     "\"end_date\":\"1900-01-01\"," IDENTITY "}",
	     fx.upn);
	expect_problem(422, "start-date-too-early");
	call("GET", regs_path, k_other, NULL);
	expect_problem(404, "not-found");
}
END_TEST

/*
 * No oracle: whether a UPN exists, exists with other details, or exists with the
 * right details but not for this key, every probe gets the same answer.
 */
START_TEST(test_no_oracle_for_unknown_pupils)
{
	enter(CONFIRMED);
	char unknown[14];
	make_upn(78, unknown);
	/* At OTHER, a subsidiary or a main registration: the existing pupil without details,
	 * with wrong or partial details, and a UPN nobody has: all one answer. */
	const char *roles[] = {"\"role\":\"subsidiary\",\"schedule\":{\"mon\":[\"AM\"]}",
			       "\"role\":\"main\""};
	const char *variants[] = {
	    "",
	    ",\"given_name\":\"Ada\",\"family_name\":\"Byron\",\"date_of_birth\":\"" DOB "\"",
	    ",\"given_name\":\"Ada\",\"family_name\":\"" FAMILY "\",\"date_of_birth\":\"2012-12-11\"",
	    ",\"given_name\":\"Ada\"",
	};
	enum { NV = sizeof variants / sizeof variants[0] };
	char first[2048] = "", got[2048];
	for (size_t i = 0; i < 2 * 2 * NV; i++) {
		const char *upn = i % 2 ? unknown : fx.upn;
		call("POST", "/v1/registrations", k_other,
		     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",%s,\"start_date\":\"%s\"%s}", upn,
		     roles[i / (2 * NV)], fx.t, variants[(i / 2) % NV]);
		expect_problem(422, "unknown-pupil");
		ck_assert_str_eq(jstr(R.json, "detail"), "no pupil with this UPN and these details");
		answer_without(upn, got, sizeof got);
		if (i == 0)
			snprintf(first, sizeof first, "%s", got);
		ck_assert_str_eq(got, first);
	}
	/* Marks: one error type for a pupil not on the roll, whether the UPN exists. */
	const char *upns[] = {fx.upn, unknown};
	for (int i = 0; i < 2; i++) {
		call("POST", "/v1/marks", k_other,
		     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"date\":\"%s\",\"session\":"
		     "\"AM\",\"code\":\"/\"}]}",
		     upns[i], fx.d);
		expect_status(200);
		const cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(R.json, "results"), 0);
		ck_assert_str_eq(jstr(r0, "status"), "rejected");
		ck_assert_str_eq(jstr(cJSON_GetObjectItem(r0, "error"), "type"), "pupil-not-on-roll");
		answer_without(upns[i], got, sizeof got);
		if (i == 0)
			snprintf(first, sizeof first, "%s", got);
		ck_assert_str_eq(got, first);
	}
	/* Reads: the same 404 for a pupil of others and for nobody. */
	for (int i = 0; i < 2; i++) {
		char path[96];
		snprintf(path, sizeof path, "/v1/pupils/%s/status?date=%s", upns[i], fx.d);
		call("GET", path, k_other, NULL);
		th_assert_problem(&R, 404);
		answer_without(upns[i], got, sizeof got);
		if (i == 0)
			snprintf(first, sizeof first, "%s", got);
		ck_assert_str_eq(got, first);
	}
	/* Admin keeps the precise errors. */
	call("POST", "/v1/marks", k_admin,
	     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"date\":\"%s\",\"session\":"
	     "\"AM\",\"code\":\"/\"}]}",
	     unknown, fx.d);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(
				  cJSON_GetObjectItem(R.json, "results"), 0), "error"), "type"),
			 "unknown-pupil");
	/* Nothing was written for OTHER. */
	ck_assert_int_eq(qnum("SELECT count(*) FROM registrations WHERE urn = '" OTHER "'"), 0);
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks WHERE urn = '" OTHER "'"), 0);
}
END_TEST

/* ---- a request reaches the home school's MIS and changes nothing until confirmed ---- */

static struct th_server sink;
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static char sink_bodies[16][4096];
static int sink_n;

static void sink_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	pthread_mutex_lock(&sink_mu);
	if (sink_n < 16) {
		size_t n = evbuffer_get_length(b);
		if (n >= sizeof sink_bodies[0])
			n = sizeof sink_bodies[0] - 1;
		evbuffer_copyout(b, sink_bodies[sink_n], n);
		sink_bodies[sink_n++][n] = '\0';
	}
	pthread_mutex_unlock(&sink_mu);
	evhttp_send_reply(req, 204, "No Content", NULL);
}

/* Waits (bounded) for a webhook of this type; returns its body (a copy) or fails. */
static cJSON *wait_webhook(const char *type)
{
	double deadline = th_now() + 15;
	for (;;) {
		pthread_mutex_lock(&sink_mu);
		for (int i = 0; i < sink_n; i++) {
			cJSON *j = cJSON_Parse(sink_bodies[i]);
			if (j != NULL && strcmp(jstr(j, "type"), type) == 0) {
				pthread_mutex_unlock(&sink_mu);
				return j;
			}
			cJSON_Delete(j);
		}
		pthread_mutex_unlock(&sink_mu);
		ck_assert_msg(th_now() < deadline, "no %s webhook", type);
		usleep(20000);
	}
}

static long derived_d(void)
{
	return atol(q("SELECT count(*) FROM marks WHERE upn = '%s' AND code = 'D' AND "
		      "source = 'derived'",
		      fx.upn));
}

/* Derived D marks at the home school: the sessions the pupil is expected at the PRU. */
static long derived_d_home(void)
{
	return atol(q("SELECT count(*) FROM marks WHERE upn = '%s' AND code = 'D' AND "
		      "source = 'derived' AND urn = '" HOME "'",
		      fx.upn));
}

START_TEST(test_request_reaches_home_webhook_and_waits_for_consent)
{
	sink_n = 0;
	sink.handler = sink_cb;
	th_server_start(&sink);
	call("POST", "/v1/subscriptions", k_home,
	     "{\"url\":\"http://127.0.0.1:%u/hook\",\"events\":[\"*\"]}", sink.port);
	expect_status(201);
	ck_assert_int_eq(derived_d(), 0);

	/* The PRU proposes, with the pupil's details in another case: pending. */
	call("POST", "/v1/registrations", k_pru,
	     "{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"schedule\":" ALL_WEEK ",\"given_name\":\"ADA\",\"family_name\":\"lovelace\","
	     "\"date_of_birth\":\"" DOB "\"}",
	     fx.upn, fx.s0);
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "pending");
	ck_assert_ptr_nonnull(jstr(R.json, "expires_at"));
	long id = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(R.json, "id"));
	cJSON *hook = wait_webhook("registration.requested");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(hook, "data"), "upn"), fx.upn);
	cJSON_Delete(hook);
	/* To the home school only. */
	ck_assert_str_eq(q("SELECT array_to_string(urns, ',') FROM events WHERE type = "
			   "'registration.requested'"),
			 HOME);

	/* Nothing changes until the home school agrees. */
	ck_assert_int_eq(derived_d(), 0);
	call("POST", "/v1/marks", k_pru,
	     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"date\":\"%s\",\"session\":\"AM\","
	     "\"code\":\"/\"}]}",
	     fx.upn, fx.d);
	expect_status(200);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(
				  cJSON_GetObjectItem(R.json, "results"), 0), "error"), "type"),
			 "pupil-not-on-roll");
	char status_path[96];
	snprintf(status_path, sizeof status_path, "/v1/pupils/%s/status?date=%s", fx.upn, fx.d);
	call("GET", status_path, k_pru, NULL);
	th_assert_problem(&R, 404);
	call("GET", status_path, k_home, NULL);
	expect_status(200);
	ck_assert_ptr_null(strstr(R.body, PRU));
	ck_assert_int_eq(qnum("SELECT count(*) FROM marks WHERE urn = '" PRU "'"), 0);

	/* The home school sees the request, with the pupil, and confirms it. */
	call("GET", "/v1/registrations?status=pending", k_home, NULL);
	expect_status(200);
	const cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(R.json, "registrations"), 0);
	ck_assert_int_eq((long)cJSON_GetNumberValue(cJSON_GetObjectItem(item, "id")), id);
	ck_assert_str_eq(jstr(item, "awaiting"), HOME);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(item, "pupil"), "given_name"), GIVEN);
	call("POST", reg_action(id, "confirm"), k_pru, NULL);
	expect_problem(403, "forbidden");
	call("POST", reg_action(id, "confirm"), k_home, NULL);
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");
	ck_assert_ptr_nonnull(jstr(R.json, "decided_at"));
	cJSON_Delete(wait_webhook("registration.created"));
	ck_assert_int_gt(derived_d(), 0);
	call("POST", "/v1/marks", k_pru,
	     "{\"marks\":[{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"date\":\"%s\",\"session\":\"AM\","
	     "\"code\":\"/\"}]}",
	     fx.upn, fx.d);
	expect_status(200);
	ck_assert_str_ne(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(R.json, "results"), 0),
			      "status"),
			 "rejected");
	call("GET", status_path, k_pru, NULL);
	expect_status(200);
	call("POST", reg_action(id, "confirm"), k_home, NULL);
	expect_problem(409, "nothing-pending");
	th_server_stop(&sink);
}
END_TEST

START_TEST(test_expiry)
{
	enter(PENDING);
	ck_assert_int_eq(derived_d(), 0);
	expire(fx.sub_id);
	/* Both schools are told. */
	ck_assert_str_eq(q("SELECT array_to_string(urns, ',') FROM events WHERE "
			   "type = 'registration.expired'"),
			 HOME "," PRU);
	call("POST", reg_action(fx.sub_id, "confirm"), k_home, NULL);
	expect_problem(409, "nothing-pending");
	ck_assert_int_eq(derived_d(), 0);
	/* A new request can be made. */
	long again = propose();
	ck_assert_int_ne(again, fx.sub_id);
}
END_TEST

/*
 * An in-force placement: widening the other school's exposure waits for it (202 and a
 * pending change); narrowing happens at once.
 */
START_TEST(test_pending_change)
{
	enter(CONFIRMED);
	/* The home school moves the PRU's sessions: the PRU must agree. */
	call("PATCH", reg_action(fx.sub_id, NULL), k_home,
	     "{\"schedule\":{\"mon\":[\"AM\"]},\"effective_from\":\"%s\"}", fx.d);
	expect_status(202);
	const cJSON *pc = cJSON_GetObjectItem(R.json, "pending_change");
	ck_assert(cJSON_IsObject(pc));
	ck_assert_str_eq(jstr(pc, "requested_by"), HOME);
	ck_assert_str_eq(jstr(pc, "awaiting"), PRU);
	long before = derived_d_home();
	call("POST", reg_action(fx.sub_id, "confirm"), k_home, NULL);
	th_assert_problem(&R, 403);
	call("POST", reg_action(fx.sub_id, "confirm"), k_pru, NULL);
	expect_status(200);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "pending_change")));
	ck_assert_int_lt(derived_d_home(), before);
	/* The PRU reopens its placement: widening the home school's exposure; declined. */
	call("PATCH", reg_action(fx.sub_id, NULL), k_pru, "{\"end_date\":null}");
	expect_status(202);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(R.json, "pending_change"), "awaiting"), HOME);
	call("POST", reg_action(fx.sub_id, "decline"), k_home, "{\"reason\":\"ends as agreed\"}");
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "end_date"), fx.s1);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(R.json, "pending_change")));
	/* Narrowing: at once. */
	call("PATCH", reg_action(fx.sub_id, NULL), k_pru, "{\"end_date\":\"%s\"}", fx.d);
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "end_date"), fx.d);
}
END_TEST

/*
 * The other direction: the home school proposes the placement at the PRU, which
 * decides. A school's own main registration is in force at once within the back-dating
 * limit. A conflict with another school's registration names nothing of it.
 */
START_TEST(test_home_proposes_and_conflicts_name_nothing)
{
	char upn2[14];
	make_upn(79, upn2);
	pupil(upn2);
	/* HOME's own main: at once, within [registrations] max_backdate (30 days). */
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"" HOME "\",\"role\":\"main\",\"start_date\":\"%s\"," IDENTITY
	     "}",
	     upn2, day(-31));
	expect_problem(422, "start-date-too-early");
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"" HOME "\",\"role\":\"main\",\"start_date\":\"%s\"," IDENTITY
	     "}",
	     upn2, day(-30));
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");
	/* HOME proposes the placement at the PRU: pending, awaiting the PRU. */
	call("POST", "/v1/registrations", k_home,
	     "{\"upn\":\"%s\",\"urn\":\"" PRU "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"schedule\":{\"tue\":[\"AM\"]}}",
	     upn2, day(-7));
	expect_status(201);
	ck_assert_str_eq(jstr(R.json, "status"), "pending");
	ck_assert_str_eq(jstr(R.json, "awaiting"), PRU);
	long id = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(R.json, "id"));
	ck_assert_str_eq(q("SELECT array_to_string(urns, ',') FROM events WHERE type = "
			   "'registration.requested' AND upn = '%s'",
			   upn2),
			 PRU);
	/* The PRU decides knowing whom; HOME, the proposer, cannot. */
	call("GET", "/v1/registrations?status=pending", k_pru, NULL);
	expect_status(200);
	const cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(R.json, "registrations"), 0);
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(item, "pupil"), "upn"), upn2);
	call("POST", reg_action(id, "decline"), k_home, "{}");
	expect_problem(403, "forbidden");
	call("POST", reg_action(id, "confirm"), k_pru, NULL);
	expect_status(200);
	ck_assert_str_eq(jstr(R.json, "status"), "in_force");

	/* OTHER, knowing the pupil, proposes an overlapping placement of its own: refused,
	 * naming neither the PRU nor its dates. */
	call("POST", "/v1/registrations", k_other,
	     "{\"upn\":\"%s\",\"urn\":\"" OTHER "\",\"role\":\"subsidiary\",\"start_date\":\"%s\","
	     "\"schedule\":{\"wed\":[\"AM\"]}," IDENTITY "}",
	     upn2, day(0));
	th_assert_problem(&R, 409);
	ck_assert_msg(strstr(R.body, PRU) == NULL && strstr(R.body, day(-7)) == NULL &&
			  strstr(R.body, HOME) == NULL,
		      "%s", R.body);
	ck_assert_int_eq(qnum("SELECT count(*) FROM registration_records WHERE urn = '" OTHER "'"),
			 0);
}
END_TEST

Suite *consent_matrix_suite(void)
{
	Suite *s = suite_create("consent_matrix");
	TCase *tc = tcase_create("matrix");
	tcase_add_checked_fixture(tc, cm_setup, cm_teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_loop_test(tc, test_matrix, 0, NPHASES);
	tcase_add_test(tc, test_issue_backdated_main_registration_refused);
	tcase_add_test(tc, test_no_oracle_for_unknown_pupils);
	tcase_add_test(tc, test_request_reaches_home_webhook_and_waits_for_consent);
	tcase_add_test(tc, test_expiry);
	tcase_add_test(tc, test_pending_change);
	tcase_add_test(tc, test_home_proposes_and_conflicts_name_nothing);
	suite_add_tcase(s, tc);
	return s;
}
