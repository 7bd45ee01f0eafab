/*
 * alerts: the periodic check behind attendance.missing. Every [alerts] check_interval
 * it asks PostgreSQL to raise an alert for each of today's sessions whose register
 * closed more than [alerts] missing_grace ago with no mark at the school expecting a
 * dual-registered pupil (dualreg_missing_alerts in sql/008_alerts.sql; each alert is
 * raised once however many daemons run the check). attendance.absent needs no timer:
 * a trigger raises it when the absence is recorded. The same tick ends registration
 * requests past their expiry (dualreg_expire_requests, sql/functions/35_consent.sql;
 * safe with several daemons).
 */
#ifndef DUALREG_ALERTS_H
#define DUALREG_ALERTS_H

struct event_base;
struct db_pool;
struct config;
struct alerts;

/* Starts the periodic check; cfg is read at every run (it may be reloaded). */
struct alerts *alerts_new(struct event_base *base, struct db_pool *db, const struct config *cfg);
/* Re-arms the timer after a reload changed the interval. */
void alerts_reschedule(struct alerts *a);
/* Stops the timer and a check in flight. Accepts NULL. */
void alerts_free(struct alerts *a);

#endif
