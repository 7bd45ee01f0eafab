/* routes: every path the API serves; api/openapi.yaml documents each (a test checks). */
#include "handlers.h"

#define H(fn) ((void (*)(void))(fn))

const struct router_route api_routes[] = {
    {RM_GET, "/healthz", "healthz", ROUTE_PUBLIC, H(h_healthz)},
    {RM_GET, "/readyz", "readyz", ROUTE_PUBLIC, H(h_readyz)},
    {RM_GET, "/v1/pupils/{upn}/status", "pupil_status", ROUTE_KEY, H(h_pupil_status)},
    {RM_GET, "/v1/pupils/{upn}/attendance", "pupil_attendance", ROUTE_KEY, H(h_pupil_attendance)},
    {RM_GET, "/v1/schools/{urn}/register", "school_register", ROUTE_KEY, H(h_school_register)},
    {RM_GET, "/v1/changes", "changes", ROUTE_KEY, H(h_changes)},
};
const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
