/*
 * th_contract: api/openapi.yaml as a test oracle. Every answer the tests receive from
 * dualregd (th_http) and every webhook body a test sink receives (th_server) is sent to
 * the contract checker that scripts/check.sh runs (scripts/contract.mjs, on the Unix
 * socket named by DUALREG_TEST_CONTRACT); a violation fails the test that received it,
 * naming the operation, the status and what does not match.
 */
#ifndef DUALREG_TESTS_TH_CONTRACT_H
#define DUALREG_TESTS_TH_CONTRACT_H

#include <cJSON.h>
#include <stddef.h>

/* headers: an object of lower-case header names to values (borrowed). */
void th_contract_response(const char *method, const char *target, long status,
			  const cJSON *headers, const char *body, size_t body_len);
void th_contract_webhook(const cJSON *headers, const char *body, size_t body_len);

#endif
