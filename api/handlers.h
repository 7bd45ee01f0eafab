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
/* registry: schools, closures, pupils, registrations (h_schools.c, h_pupils.c,
 * h_registrations.c) */
void h_schools_create(struct api_req *r);
void h_schools_list(struct api_req *r);
void h_school_get(struct api_req *r);
void h_school_patch(struct api_req *r);
void h_school_pull(struct api_req *r);
void h_closures_get(struct api_req *r);
void h_closures_put(struct api_req *r);
void h_pupils_create(struct api_req *r);
void h_pupil_get(struct api_req *r);
void h_pupil_registrations(struct api_req *r);
void h_registrations_create(struct api_req *r);
void h_registration_patch(struct api_req *r);
/* marks (h_marks.c, h_history.c) */
void h_marks_post(struct api_req *r);
void h_mark_history(struct api_req *r);

#endif
