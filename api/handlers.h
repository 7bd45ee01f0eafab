/*
 * handlers: the route table (api/routes.c) and the handler functions it points at,
 * one h_<resource>.c file per resource.
 */
#ifndef DUALREG_API_HANDLERS_H
#define DUALREG_API_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

#include "dualreg/api.h"

extern const struct router_route api_routes[];
extern const size_t api_nroutes;

void h_healthz(struct api_req *r);
void h_readyz(struct api_req *r);
void h_metrics(struct api_req *r);
void h_audit(struct api_req *r);

/* webhooks (h_subscriptions.c, h_deliveries.c) */
void h_subscriptions_create(struct api_req *r);
void h_subscriptions_list(struct api_req *r);
void h_subscriptions_delete(struct api_req *r);
void h_subscriptions_rotate(struct api_req *r);
void h_deliveries_list(struct api_req *r);
void h_deliveries_retry(struct api_req *r);
/* platform (h_me.c) */
void h_me(struct api_req *r);
/* registry: schools, closures, pupils, registrations (h_schools.c, h_pupils.c,
 * h_registrations.c) */
void h_schools_create(struct api_req *r);
void h_schools_list(struct api_req *r);
void h_school_get(struct api_req *r);
void h_school_patch(struct api_req *r);
void h_school_pull(struct api_req *r);
void h_school_sync(struct api_req *r);
void h_closures_get(struct api_req *r);
void h_closures_put(struct api_req *r);
void h_pupils_create(struct api_req *r);
void h_pupil_get(struct api_req *r);
void h_pupil_registrations(struct api_req *r);
void h_registrations_create(struct api_req *r);
void h_registration_patch(struct api_req *r);
void h_registration_confirm(struct api_req *r);
void h_registration_decline(struct api_req *r);
void h_registration_withdraw(struct api_req *r);
void h_registrations_list(struct api_req *r);
/* marks (h_marks.c, h_history.c) */
void h_marks_post(struct api_req *r);
void h_mark_history(struct api_req *r);
/* reads: status, register, attendance, change feed (h_status.c, h_register.c,
 * h_attendance.c, h_changes.c) and the parameter checks they share (h_status.c). */
void h_pupil_status(struct api_req *r);
void h_school_register(struct api_req *r);
void h_pupil_attendance(struct api_req *r);
void h_changes(struct api_req *r);
/* Validates a {upn} path segment; replies 422 invalid-upn and returns false if bad. */
bool reads_check_upn(struct api_req *r, const char *upn);
/* Query parameter into buf: 1 present, 0 absent, -1 longer than buflen allows. */
int reads_param(struct api_req *r, const char *name, char *buf, size_t buflen);
/* Date query parameter: 1 parsed, 0 absent, -1 replied 422 invalid-date. */
int reads_date_param(struct api_req *r, const char *name, char out[11]);

#endif
