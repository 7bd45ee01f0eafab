/*
 * problem: RFC 9457 problem details. Owns the shape of every error body dualreg sends:
 * {type, title, status, detail, errors[]}, where type is a relative reference
 * "/problems/<slug>" documented in api/openapi.yaml, title is the HTTP reason phrase
 * unless given, and errors[] lists JSON pointers to the offending input fields.
 * Texts (title, detail, pointers) are stored as well-formed UTF-8 whatever they hold:
 * bytes that are not are replaced with U+FFFD, so a body is always valid JSON.
 */
#ifndef DUALREG_PROBLEM_H
#define DUALREG_PROBLEM_H

#include <cJSON.h>

#define PROBLEM_CONTENT_TYPE "application/problem+json"

/* A new problem object; title NULL means the status's reason phrase. Caller owns it. */
cJSON *problem_new(int status, const char *slug, const char *title, const char *detail);
/* Appends {pointer, detail} to errors[]. */
void problem_add_error(cJSON *problem, const char *pointer, const char *detail);
/* The standard reason phrase of an HTTP status ("Not Found"), or "Error". */
const char *http_reason(int status);
/* The default problem slug for a status ("not-found"). */
const char *problem_default_slug(int status);

#endif
