/*
 * reads_fixture: what the reads and changes tests share. A fresh migrated database per
 * test, written with SQL (schools, pupils, a dual registration with a schedule, derived
 * D and real marks at both schools, events through dualreg_emit), dated in the previous
 * school week so that every weekday is in the past:
 *
 *   pupil B801200005001 "Ann Able": main 100001, subsidiary 100002 (the PRU), expected
 *   at the PRU Mon AM/PM, Tue AM/PM and Thu PM (mask 143), at 100001 otherwise;
 *   100001 is closed on Friday.
 *            AM                         PM
 *   Mon  PRU /    (100001 D)        PRU V  + 100001 /  (conflict)
 *   Tue  PRU I    (100001 D)        PRU N   (100001 D)
 *   Wed  none     (PRU D)           100001 L 10 min (PRU D)
 *   Thu  100001 G (PRU D)           PRU /   (100001 D)
 *   Fri  closed   (PRU D)           closed  (PRU D)
 *   pupil Q801200005002 "Ben Aardvark": main 100001 only, no marks.
 *   pupil E801200005003 "Cat Other": main 100003 only.
 *
 * Also an admin key and one key per school, the daemon, and small JSON and problem
 * assertions.
 */
#ifndef DUALREG_TESTS_READS_FIXTURE_H
#define DUALREG_TESTS_READS_FIXTURE_H

#include <cJSON.h>
#include <stddef.h>

#include "../harness.h"

#define P1 "B801200005001"
#define P2 "Q801200005002"
#define P3 "E801200005003"

extern char rd_url[1024];
extern struct th_daemon rd_d;
extern char admin[64], k1[64], k2[64], k3[64];
/* mon..sat of the previous week, the registrations' start, a day before it */
extern char mon[11], tue[11], wed[11], thu[11], fri[11], sat[11], start[11], before[11];
extern char today[11];

/* A fresh database with the fixtures and keys; the daemon is not started. */
void rd_setup(void);
void rd_teardown(void);
/* A short request_timeout proves that long polls extend their own deadline. */
void start_daemon(void);
void get(const char *token, const char *path, struct th_resp *r);
/* A member that must be there; a string member; a number member. */
cJSON *item(const cJSON *o, const char *k);
const char *str(const cJSON *o, const char *k);
double num(const cJSON *o, const char *k);
/* Asserts a problem with this status and slug, naming pointer if not NULL. */
void assert_slug(const struct th_resp *r, long status, const char *slug,
		 const char *pointer);
/* The first value of a one-row query, as an integer. */
int count_sql(const char *sql);

#endif
