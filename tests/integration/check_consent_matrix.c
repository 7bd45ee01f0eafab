/*
 * consent_matrix: who may see and change what of a dual-registered pupil, and when
 * (registrations by consent, data by period, no oracles), against the real daemon. One table, MATRIX below, holds every pupil-data route against every kind of
 * key in every phase of a placement request; each cell is the answer expected. Every
 * answer is also searched for what the key must not learn (the pupil's name, other
 * schools' URNs, registration dates outside its own period), and a 200 is checked for
 * shape: a register lists the pupil or not, a change feed carries the pupil's events or
 * not, a mark is accepted or refused as `pupil-not-on-roll`, a registration list shows
 * others' registrations only within the key's own period, and an attendance read holds
 * marks only of the key's own period.
 *
 * The named scenarios (the probe that once leaked, oracles, webhooks, expiry, pending
 * changes) are in check_consent_scenarios.c; the fixture in consent_fixture.c.
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
#include "consent_fixture.h"

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
    /* alerts: the fixture's marks are all present, so none names the pupil, for any key */
    {ALL,          "GET /v1/alerts?date={d}", NULL,                             {"200-", "200-", "200-", "200-", "200-"}},
    {ALL,          "GET /v1/alerts?date={f}", NULL,                             {"200-", "200-", "200-", "200-", "200-"}},
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

Suite *consent_matrix_suite(void)
{
	Suite *s = suite_create("consent_matrix");
	TCase *tc = tcase_create("matrix");
	tcase_add_checked_fixture(tc, cm_setup, cm_teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_loop_test(tc, test_matrix, 0, NPHASES);
	suite_add_tcase(s, tc);
	return s;
}
