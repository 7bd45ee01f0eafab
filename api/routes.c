/* routes: every path the API serves; api/openapi.yaml documents each (a test checks). */
#include "handlers.h"

const struct router_route api_routes[] = {
    {RM_GET, "/healthz", "healthz", (void (*)(void))h_healthz},
    {RM_GET, "/readyz", "readyz", (void (*)(void))h_readyz},
};
const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
