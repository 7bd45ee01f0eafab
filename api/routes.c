/* routes: every path the API serves; api/openapi.yaml documents each (a test checks). */
#include "handlers.h"

#define H(fn) ((void (*)(void))(fn))

const struct router_route api_routes[] = {
    {RM_GET, "/healthz", "healthz", ROUTE_PUBLIC, H(h_healthz)},
    {RM_GET, "/readyz", "readyz", ROUTE_PUBLIC, H(h_readyz)},
    /* platform: the caller's identity */
    {RM_GET, "/v1/me", "me", ROUTE_KEY, H(h_me)},
};
const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
