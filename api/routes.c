/* routes: every path the API serves; api/openapi.yaml documents each (a test checks). */
#include "handlers.h"

#define H(fn) ((void (*)(void))(fn))

const struct router_route api_routes[] = {
    {RM_GET, "/healthz", "healthz", ROUTE_PUBLIC, H(h_healthz)},
    {RM_GET, "/readyz", "readyz", ROUTE_PUBLIC, H(h_readyz)},
    /* marks */
    {RM_POST, "/v1/marks", "marks_post", ROUTE_KEY, H(h_marks_post)},
    {RM_GET, "/v1/pupils/{upn}/marks/{date}/{session}/history", "mark_history", ROUTE_KEY,
     H(h_mark_history)},
};
const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
