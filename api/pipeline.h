/*
 * pipeline: what a routed request passes before its handler runs, as an ordered list
 * of stages (api/pipeline.c): authenticate (which first applies the limit on failed
 * authentications per client address), authorize, rate-limit (auth.c), then
 * idempotency (idempotency.c). Each stage applies to some routes and methods; a stage
 * that lets the request through calls next(r), one that refuses it replies itself.
 */
#ifndef DUALREG_API_PIPELINE_H
#define DUALREG_API_PIPELINE_H

#include <stddef.h>

#include "dualreg/api.h"

/* Runs the stages that apply to r's route and method, in order, then its handler. */
void pipeline_start(struct api_req *r);
/* Continues r with its next stage that applies, or its handler: the next(r) the
 * pipeline gives each stage. */
void pipeline_next(struct api_req *r);
/* The names of the stages that run for (route, method), in order, into names (at most
 * max); returns how many there are. */
size_t pipeline_stages(const struct router_route *route, unsigned method, const char **names,
		       size_t max);

#endif
