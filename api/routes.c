/*
 * routes: every path the API serves; api/openapi.yaml documents each (a test checks).
 * A route's name ("resource.action", or one word for a resource with one route) labels
 * it in the access log, the metrics and the access audit. Its flags say what answering
 * it does besides the reply: a read of one pupil's data is audited, a write makes the
 * cached status bodies stale. tests/check_router.c fails if a GET under
 * /v1/pupils/{upn} is not audited or a write does not invalidate.
 */
#include "handlers.h"

#define H(fn) ((void (*)(void))(fn))

const struct router_route api_routes[] = {
    {RM_GET, "/healthz", "healthz", ROUTE_PUBLIC, 0, H(h_healthz)},
    {RM_GET, "/readyz", "readyz", ROUTE_PUBLIC, 0, H(h_readyz)},
    /* its own access check: an admin key or the [metrics] token */
    {RM_GET, "/metrics", "metrics", ROUTE_PUBLIC, 0, H(h_metrics)},
    /* webhooks */
    {RM_POST, "/v1/subscriptions", "subscriptions.create", ROUTE_KEY,
     ROUTE_INVALIDATES_STATUS, H(h_subscriptions_create)},
    {RM_GET, "/v1/subscriptions", "subscriptions.list", ROUTE_KEY, 0, H(h_subscriptions_list)},
    {RM_DELETE, "/v1/subscriptions/{id}", "subscriptions.delete", ROUTE_KEY,
     ROUTE_INVALIDATES_STATUS, H(h_subscriptions_delete)},
    {RM_POST, "/v1/subscriptions/{id}/rotate-secret", "subscriptions.rotate", ROUTE_KEY,
     ROUTE_INVALIDATES_STATUS, H(h_subscriptions_rotate)},
    {RM_GET, "/v1/deliveries", "deliveries.list", ROUTE_KEY, 0, H(h_deliveries_list)},
    {RM_POST, "/v1/deliveries/{id}/retry", "deliveries.retry", ROUTE_KEY,
     ROUTE_INVALIDATES_STATUS, H(h_deliveries_retry)},
    /* platform: the caller's identity */
    {RM_GET, "/v1/me", "me", ROUTE_KEY, 0, H(h_me)},
    {RM_GET, "/v1/attendance-codes", "codes", ROUTE_KEY, 0, H(h_attendance_codes)},
    {RM_GET, "/v1/audit", "audit", ROUTE_ADMIN, 0, H(h_audit)},
    /* registry */
    {RM_POST, "/v1/schools", "schools.create", ROUTE_ADMIN, ROUTE_INVALIDATES_STATUS,
     H(h_schools_create)},
    {RM_GET, "/v1/schools", "schools.list", ROUTE_ADMIN, 0, H(h_schools_list)},
    {RM_GET, "/v1/schools/{urn}", "schools.get", ROUTE_KEY, 0, H(h_school_get)},
    {RM_PATCH, "/v1/schools/{urn}", "schools.patch", ROUTE_ADMIN, ROUTE_INVALIDATES_STATUS,
     H(h_school_patch)},
    {RM_GET, "/v1/schools/{urn}/pull", "schools.pull", ROUTE_KEY, 0, H(h_school_pull)},
    {RM_GET, "/v1/schools/{urn}/sync", "schools.sync", ROUTE_KEY, 0, H(h_school_sync)},
    {RM_GET, "/v1/schools/{urn}/closures", "closures.get", ROUTE_KEY, 0, H(h_closures_get)},
    {RM_PUT, "/v1/schools/{urn}/closures", "closures.put", ROUTE_KEY, ROUTE_INVALIDATES_STATUS,
     H(h_closures_put)},
    {RM_POST, "/v1/pupils", "pupils.create", ROUTE_KEY, ROUTE_INVALIDATES_STATUS,
     H(h_pupils_create)},
    {RM_GET, "/v1/pupils/{upn}", "pupils.get", ROUTE_KEY, ROUTE_AUDIT_READ, H(h_pupil_get)},
    {RM_GET, "/v1/pupils/{upn}/registrations", "pupils.registrations", ROUTE_KEY,
     ROUTE_AUDIT_READ, H(h_pupil_registrations)},
    {RM_POST, "/v1/registrations", "registrations.create", ROUTE_KEY, ROUTE_INVALIDATES_STATUS,
     H(h_registrations_create)},
    {RM_PATCH, "/v1/registrations/{id}", "registrations.patch", ROUTE_KEY,
     ROUTE_INVALIDATES_STATUS, H(h_registration_patch)},
    {RM_GET, "/v1/registrations", "registrations.list", ROUTE_KEY, 0,
     H(h_registrations_list)},
    {RM_POST, "/v1/registrations/{id}/confirm", "registrations.confirm", ROUTE_KEY,
     ROUTE_INVALIDATES_STATUS, H(h_registration_confirm)},
    {RM_POST, "/v1/registrations/{id}/decline", "registrations.decline", ROUTE_KEY,
     ROUTE_INVALIDATES_STATUS, H(h_registration_decline)},
    {RM_POST, "/v1/registrations/{id}/withdraw", "registrations.withdraw", ROUTE_KEY,
     ROUTE_INVALIDATES_STATUS, H(h_registration_withdraw)},
    /* marks */
    {RM_POST, "/v1/marks", "marks.post", ROUTE_KEY, ROUTE_INVALIDATES_STATUS, H(h_marks_post)},
    {RM_GET, "/v1/pupils/{upn}/marks/{date}/{session}/history", "marks.history", ROUTE_KEY,
     ROUTE_AUDIT_READ, H(h_mark_history)},
    {RM_GET, "/v1/pupils/{upn}/status", "pupils.status", ROUTE_KEY, ROUTE_AUDIT_READ,
     H(h_pupil_status)},
    {RM_GET, "/v1/pupils/{upn}/attendance", "pupils.attendance", ROUTE_KEY, ROUTE_AUDIT_READ,
     H(h_pupil_attendance)},
    {RM_GET, "/v1/schools/{urn}/register", "schools.register", ROUTE_KEY, 0,
     H(h_school_register)},
    {RM_GET, "/v1/changes", "changes", ROUTE_KEY, 0, H(h_changes)},
    {RM_GET, "/v1/alerts", "alerts", ROUTE_KEY, 0, H(h_alerts)},
    /* the staff web app's set-up and sign-in (h_web_setup.c, h_web_session.c): public
     * routes that check their own credentials (a set-up token, a password, the session
     * cookie) */
    {RM_POST, "/app/api/setup", "staff.setup", ROUTE_PUBLIC, ROUTE_INVALIDATES_STATUS,
     H(h_web_setup)},
    {RM_POST, "/app/api/setup/confirm", "staff.confirm", ROUTE_PUBLIC, ROUTE_INVALIDATES_STATUS,
     H(h_web_setup_confirm)},
    {RM_POST, "/app/api/session", "staff.signin", ROUTE_PUBLIC, ROUTE_INVALIDATES_STATUS,
     H(h_web_session_create)},
    {RM_POST, "/app/api/session/second-factor", "staff.verify", ROUTE_PUBLIC,
     ROUTE_INVALIDATES_STATUS, H(h_web_second_factor)},
    {RM_GET, "/app/api/session", "staff.session", ROUTE_PUBLIC, 0, H(h_web_session_get)},
    {RM_DELETE, "/app/api/session", "staff.signout", ROUTE_PUBLIC, ROUTE_INVALIDATES_STATUS,
     H(h_web_session_delete)},
    /* the staff web app's files (h_web_static.c): one segment each, never a path under
     * /app/api/ */
    {RM_GET, "/", "web.root", ROUTE_PUBLIC, 0, H(h_web_redirect)},
    {RM_GET, "/app", "web.app", ROUTE_PUBLIC, 0, H(h_web_redirect)},
    {RM_GET, "/app/", "web.index", ROUTE_PUBLIC, 0, H(h_web_index)},
    {RM_GET, "/app/{page}", "web.page", ROUTE_PUBLIC, 0, H(h_web_page)},
    {RM_GET, "/app/js/{file}", "web.script", ROUTE_PUBLIC, 0, H(h_web_script)},
    {RM_GET, "/app/css/{file}", "web.style", ROUTE_PUBLIC, 0, H(h_web_style)},
};
const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
