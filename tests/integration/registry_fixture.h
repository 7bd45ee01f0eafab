/*
 * registry_fixture: what the registry tests share. A fresh migrated database and a
 * running daemon per test with three schools (HOME, PRU, OTHER), an admin key and one
 * key per school; a one-line API caller keeping the last response in R; one-cell SQL
 * queries; problem assertions; and makers for valid UPNs, pupils and registrations.
 */
#ifndef DUALREG_TESTS_REGISTRY_FIXTURE_H
#define DUALREG_TESTS_REGISTRY_FIXTURE_H

#include <cJSON.h>
#include <stdbool.h>

#include "../harness.h"

#define HOME "100001"  /* mainstream home school */
#define PRU "200002"   /* pupil referral unit */
#define OTHER "300003" /* a school with nothing to do with the pupils */

extern char rg_url[1024];
extern struct th_daemon rg_d;
extern char k_admin[128], k_home[128], k_pru[128], k_other[128];
extern struct th_resp R; /* the last response; freed by the next call */

void rg_setup(void);
void rg_teardown(void);

/* One API call; the body is printf-formatted (fmt NULL: no body). Returns the status. */
long call(const char *method, const char *path, const char *token, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A cell of a one-row SQL query as text ("" for NULL); valid until 16 more calls. */
const char *q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long qnum(const char *sql);
/* A string member, or NULL. */
const char *jstr(const cJSON *o, const char *name);
/* Asserts the last response is a problem with this status and slug. */
void expect_problem(long status, const char *slug);
/* True if the last problem names this JSON pointer. */
bool has_pointer(const char *pointer);
void expect_status(long status);
/* A valid UPN with serial n. */
void make_upn(int n, char out[14]);
/* Creates a school, a pupil (Ada Lovelace), a registration (returns its id) as admin
 * or the given key, asserting success. */
void school(const char *urn, const char *kind);
void pupil(const char *upn);
long reg(const char *token, const char *upn, const char *urn, const char *role,
	 const char *start, const char *end, const char *schedule);
/* Confirms registration id's pending request as key (asserting 200). */
void confirm(long id, const char *token);
/* A date n days from the database's today (negative: before), as text (static ring). */
const char *day(int n);
/* The latest weekday in [today - a, today - b] (a - b >= 6). */
const char *weekday_between(int a, int b);

#endif
