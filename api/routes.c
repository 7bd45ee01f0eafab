/* routes: every path the API serves; api/openapi.yaml documents each (a test checks). */
#include "handlers.h"

#define H(fn) ((void (*)(void))(fn))

const struct router_route api_routes[] = {
    {RM_GET, "/healthz", "healthz", ROUTE_PUBLIC, H(h_healthz)},
    {RM_GET, "/readyz", "readyz", ROUTE_PUBLIC, H(h_readyz)},
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
};
const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];
