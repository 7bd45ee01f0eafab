/* routes: every path the API serves; api/openapi.yaml documents each (a test checks). */
#include "handlers.h"

#define H(fn) ((void (*)(void))(fn))

const struct router_route api_routes[] = {
    {RM_GET, "/healthz", "healthz", ROUTE_PUBLIC, H(h_healthz)},
    {RM_GET, "/readyz", "readyz", ROUTE_PUBLIC, H(h_readyz)},
    /* its own access check: an admin key or the [metrics] token */
    {RM_GET, "/metrics", "metrics", ROUTE_PUBLIC, H(h_metrics)},
    /* webhooks */
    {RM_POST, "/v1/subscriptions", "subscriptions", ROUTE_KEY, H(h_subscriptions_create)},
    {RM_GET, "/v1/subscriptions", "subscriptions", ROUTE_KEY, H(h_subscriptions_list)},
    {RM_DELETE, "/v1/subscriptions/{id}", "subscription", ROUTE_KEY, H(h_subscriptions_delete)},
    {RM_POST, "/v1/subscriptions/{id}/rotate-secret", "subscription", ROUTE_KEY,
     H(h_subscriptions_rotate)},
    {RM_GET, "/v1/deliveries", "deliveries", ROUTE_KEY, H(h_deliveries_list)},
    {RM_POST, "/v1/deliveries/{id}/retry", "delivery", ROUTE_KEY, H(h_deliveries_retry)},
    /* platform: the caller's identity */
    {RM_GET, "/v1/me", "me", ROUTE_KEY, H(h_me)},
    {RM_GET, "/v1/audit", "audit", ROUTE_ADMIN, H(h_audit)},
    /* registry */
    {RM_POST, "/v1/schools", "schools.create", ROUTE_ADMIN, H(h_schools_create)},
    {RM_GET, "/v1/schools", "schools.list", ROUTE_ADMIN, H(h_schools_list)},
    {RM_GET, "/v1/schools/{urn}", "schools.get", ROUTE_KEY, H(h_school_get)},
    {RM_PATCH, "/v1/schools/{urn}", "schools.patch", ROUTE_ADMIN, H(h_school_patch)},
    {RM_GET, "/v1/schools/{urn}/pull", "schools.pull", ROUTE_KEY, H(h_school_pull)},
    {RM_GET, "/v1/schools/{urn}/sync", "schools.sync", ROUTE_KEY, H(h_school_sync)},
    {RM_GET, "/v1/schools/{urn}/closures", "closures.get", ROUTE_KEY, H(h_closures_get)},
    {RM_PUT, "/v1/schools/{urn}/closures", "closures.put", ROUTE_KEY, H(h_closures_put)},
    {RM_POST, "/v1/pupils", "pupils.create", ROUTE_KEY, H(h_pupils_create)},
    {RM_GET, "/v1/pupils/{upn}", "pupils.get", ROUTE_KEY, H(h_pupil_get)},
    {RM_GET, "/v1/pupils/{upn}/registrations", "registrations.list", ROUTE_KEY,
     H(h_pupil_registrations)},
    {RM_POST, "/v1/registrations", "registrations.create", ROUTE_KEY,
     H(h_registrations_create)},
    {RM_PATCH, "/v1/registrations/{id}", "registrations.patch", ROUTE_KEY,
     H(h_registration_patch)},
    /* marks */
    {RM_POST, "/v1/marks", "marks_post", ROUTE_KEY, H(h_marks_post)},
    {RM_GET, "/v1/pupils/{upn}/marks/{date}/{session}/history", "mark_history", ROUTE_KEY,
     H(h_mark_history)},
    {RM_GET, "/v1/pupils/{upn}/status", "pupil_status", ROUTE_KEY, H(h_pupil_status)},
    {RM_GET, "/v1/pupils/{upn}/attendance", "pupil_attendance", ROUTE_KEY, H(h_pupil_attendance)},
    {RM_GET, "/v1/schools/{urn}/register", "school_register", ROUTE_KEY, H(h_school_register)},
    {RM_GET, "/v1/changes", "changes", ROUTE_KEY, H(h_changes)},
};
const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
