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

/* marks (h_marks.c, h_history.c) */
void h_marks_post(struct api_req *r);
void h_mark_history(struct api_req *r);

#endif
