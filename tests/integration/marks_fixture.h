/*
 * marks_fixture: what the marks tests share. Fixtures are plain SQL. Dates are relative
 * to today and chosen to be weekdays: D1 is the last weekday before today. Pupil P1 is
 * dual registered (main at HOME, subsidiary at PRU, the placement ending on D1) and
 * expected at PRU on D1's weekday mornings and at HOME otherwise. The placement ends
 * before today so that the derive job the daemon runs at start-up leaves these tests
 * alone; the job's own set-up (mk_setup_job) reopens it. Also: an admin key and one key
 * per school, one-value SQL queries, and builders and readers of POST /v1/marks bodies.
 */
#ifndef DUALREG_TESTS_MARKS_FIXTURE_H
#define DUALREG_TESTS_MARKS_FIXTURE_H

#include <cJSON.h>
#include <stddef.h>

#include "../harness.h"

#define HOME "100001"
#define PRU "100002"
#define OTHER "100003"
#define P1 "B801200005001" /* dual registered: HOME main, PRU subsidiary */
#define P2 "Q801200005002" /* HOME only */
#define P3 "E801200005003" /* OTHER, registered from D1 + 1 */
#define P4 "U801200005004" /* HOME, registration ended D1 - 1 */
#define P5 "H801200005005" /* HOME since 2024-01-01 */

extern char mk_url[1024];
extern struct th_daemon mk_d;
extern char key_admin[64], key_home[64], key_pru[64];
extern char d1[16], d1_prev[16], saturday[16], future[16], mk_today[16];

/* A fresh database with the fixtures and keys; no daemon. */
void mk_fixtures(void);
/* The fixtures and a daemon with rate limits out of the way. */
void mk_setup(void);
/* P1's placement reopened, so that P1 is dual registered today, before the daemon
 * (and its start-up derive job) starts. */
void mk_setup_job(void);
void mk_teardown(void);

/* The first column of the first row of a query, as text ("" for NULL). */
void q1(const char *sql, char *out, size_t outlen);
/* The same for a printf-formatted query, as a number. */
long qn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One mark item as JSON; extra is more members ("" or ", \"reason\": \"x\""). */
const char *mark_item(char *buf, size_t len, const char *upn, const char *urn,
		      const char *date, const char *session, const char *code,
		      const char *extra);
/* POSTs {"marks":[one item]} and expects 200. */
void post1(const char *token, const char *upn, const char *urn, const char *date,
	   const char *session, const char *code, const char *extra, struct th_resp *r);
/* Result i of a POST /v1/marks answer; its status, error type, mark code; a count. */
const cJSON *result_at(const struct th_resp *r, int i);
const char *status_at(const struct th_resp *r, int i);
const char *error_at(const struct th_resp *r, int i);
const char *mark_code_at(const struct th_resp *r, int i);
int count_of(const struct th_resp *r, const char *name);

#endif
