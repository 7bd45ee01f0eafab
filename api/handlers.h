/*
 * handlers: the route table (api/routes.c) and the handler functions it points at,
 * one h_<resource>.c file per resource.
 */
#ifndef DUALREG_API_HANDLERS_H
#define DUALREG_API_HANDLERS_H

#include <stddef.h>

#include "dualreg/api.h"

extern const struct router_route api_routes[];
extern const size_t api_nroutes;

void h_healthz(struct api_req *r);
void h_readyz(struct api_req *r);

/* webhooks (h_subscriptions.c, h_deliveries.c) */
void h_subscriptions_create(struct api_req *r);
void h_subscriptions_list(struct api_req *r);
void h_subscriptions_delete(struct api_req *r);
void h_subscriptions_rotate(struct api_req *r);
void h_deliveries_list(struct api_req *r);
void h_deliveries_retry(struct api_req *r);
/* platform (h_me.c) */
void h_me(struct api_req *r);

#endif
