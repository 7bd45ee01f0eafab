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
/* Appends the access audit's metrics to text (malloc'd; reallocated and returned). */
char *audit_metrics_append(struct api_req *r, char *text);

/* webhooks (h_subscriptions.c, h_deliveries.c) */
void h_subscriptions_create(struct api_req *r);
void h_subscriptions_list(struct api_req *r);
void h_subscriptions_delete(struct api_req *r);
void h_subscriptions_rotate(struct api_req *r);
void h_deliveries_list(struct api_req *r);
void h_deliveries_retry(struct api_req *r);
/* the staff web app's set-up (h_web_setup.c), sign-in and session (h_web_session.c) */
void h_web_setup(struct api_req *r);
void h_web_setup_confirm(struct api_req *r);
void h_web_session_create(struct api_req *r);
void h_web_second_factor(struct api_req *r);
void h_web_session_get(struct api_req *r);
void h_web_session_delete(struct api_req *r);
/* platform (h_me.c) */
void h_me(struct api_req *r);
void h_attendance_codes(struct api_req *r); /* the attendance codes (h_codes.c) */
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
/* The envelope of a POST /v1/marks body (shape, JSON types, at most 1000 marks): the
 * marks array inside body, or NULL with the problem to answer (413 too-many-marks, 422
 * invalid-marks; the caller owns it) in *problem. */
cJSON *marks_envelope_check(cJSON *body, cJSON **problem);
/* reads: status, register, attendance, change feed (h_status.c, h_register.c,
 * h_attendance.c, h_changes.c) and the parameter checks they share (h_status.c). */
void h_pupil_status(struct api_req *r);
void h_school_register(struct api_req *r);
void h_pupil_attendance(struct api_req *r);
void h_changes(struct api_req *r);
void h_alerts(struct api_req *r); /* a day's same-day alerts (h_alerts.c) */
/* The change feed's long polls, for GET /metrics (h_changes.c). */
struct changes_stats {
	unsigned waits;                   /* in progress */
	unsigned long long waits_refused; /* refused: the key had [limits] max_waits */
	unsigned long long requeries;     /* queried again after a wake-up or re-check */
};
void changes_get_stats(struct changes_stats *out);
/* Validates a {upn} path segment; replies 422 invalid-upn and returns false if bad. */
bool reads_check_upn(struct api_req *r, const char *upn);
/* Query parameter into buf: 1 present, 0 absent, -1 longer than buflen allows. */
int reads_param(struct api_req *r, const char *name, char *buf, size_t buflen);
/* Date query parameter: 1 parsed, 0 absent, -1 replied 422 invalid-date. */
int reads_date_param(struct api_req *r, const char *name, char out[11]);
/* While the access audit cannot take more records (audit_full): replies 503
 * audit-unavailable with Retry-After, counts the refusal and returns true. Every read of
 * pupil data asks before it answers. */
bool reads_audit_refused(struct api_req *r);
/* Records a read, by the request's key, of every pupil the answer body names. */
void reads_audit_body(struct api_req *r, const cJSON *body);

/* the staff web app's files, served from memory at /app/ (h_web_static.c) */
#define WEB_MAX_FILES 128
#define WEB_MAX_TOTAL (4 * 1024 * 1024) /* bytes, all files together */
#define WEB_PATH_MAX 96                 /* a file's path relative to the web directory */
#define WEB_CSP                                                                            \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "     \
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
/* Reads the files of dir (NULL: $DUALREG_WEB_DIR, else the installed directory) into
 * memory, replacing any loaded before. A directory that does not exist is logged and
 * leaves none (every file answers 404); 0, or -1 with why in err (a file too large,
 * unreadable or not UTF-8 text, too many files). */
int web_static_load(const char *dir, char *err, size_t errlen);
void web_static_free(void);
size_t web_static_count(void);
/* True if an If-None-Match header value matches etag (weak comparison, or "*"). */
bool api_etag_matches(const char *header, const char *etag);
/* Content-Security-Policy and the other security headers of every /app answer. */
void web_security_headers(struct api_req *r);
void h_web_redirect(struct api_req *r); /* 302 to /app/ */
void h_web_index(struct api_req *r);
void h_web_page(struct api_req *r);
void h_web_script(struct api_req *r);
void h_web_style(struct api_req *r);

#endif
