/*
 * idempotency_unit: the parts of the Idempotency-Key module that need no server: which
 * requests take part, header validation, the request hash (against values computed
 * independently with Python's hashlib) and the decision table for a claim.
 */
#include <string.h>

#include "../api/idempotency.h"
#include "suites.h"

START_TEST(test_applies)
{
	ck_assert(idem_applies(RM_POST, ROUTE_KEY));
	ck_assert(idem_applies(RM_POST, ROUTE_ADMIN));
	ck_assert(!idem_applies(RM_POST, ROUTE_PUBLIC));
	ck_assert(!idem_applies(RM_GET, ROUTE_KEY));
	ck_assert(!idem_applies(RM_PATCH, ROUTE_ADMIN));
	ck_assert(!idem_applies(RM_PUT, ROUTE_KEY));
	ck_assert(!idem_applies(RM_DELETE, ROUTE_KEY));
}
END_TEST

START_TEST(test_key_valid)
{
	char max[IDEM_KEY_MAX + 2];
	memset(max, 'k', sizeof max);
	max[IDEM_KEY_MAX] = '\0';
	ck_assert(idem_key_valid(max));
	max[IDEM_KEY_MAX] = 'k';
	max[IDEM_KEY_MAX + 1] = '\0';
	ck_assert(!idem_key_valid(max)); /* 256 characters */
	ck_assert(idem_key_valid("a"));
	ck_assert(idem_key_valid("8e3b1c2a-5d4f-4e6a-9b7c-0d1e2f3a4b5c"));
	ck_assert(idem_key_valid("with space ~!"));
	ck_assert(!idem_key_valid(""));
	ck_assert(!idem_key_valid("tab\there"));
	ck_assert(!idem_key_valid("del\x7f"));
	ck_assert(!idem_key_valid("caf\xc3\xa9")); /* not ASCII */
	ck_assert(!idem_key_valid("nl\n"));
}
END_TEST

START_TEST(test_request_hash)
{
	char h[IDEM_HASH_HEX], h2[IDEM_HASH_HEX];
	const char *body = "{\"urn\":\"100001\"}";
	idem_request_hash("POST", "/v1/schools", body, strlen(body), h);
	ck_assert_str_eq(h, "77c1bfa9bb2acefe300fe3e776bee8b6a75ee733ffea2bea72aef98a597723fd");
	idem_request_hash("POST", "/v1/schools", NULL, 0, h);
	ck_assert_str_eq(h, "4e932e8121a826140106f9cb33c09e66c227deca590463b8d7c780fa1a9ca09f");
	/* Every part counts, and the parts cannot run into each other. */
	idem_request_hash("POST", "/v1/schools", body, strlen(body), h);
	idem_request_hash("POST", "/v1/schools?x=1", body, strlen(body), h2);
	ck_assert_str_ne(h, h2);
	idem_request_hash("PUT", "/v1/schools", body, strlen(body), h2);
	ck_assert_str_ne(h, h2);
	idem_request_hash("POST", "/v1/schools", body, strlen(body) - 1, h2);
	ck_assert_str_ne(h, h2);
	idem_request_hash("POST", "/a", "bc", 2, h);
	idem_request_hash("POST", "/ab", "c", 1, h2);
	ck_assert_str_ne(h, h2);
	ck_assert_uint_eq(strlen(h), 64);
}
END_TEST

START_TEST(test_decide)
{
	const char *ours = "aa", *other = "bb";
	ck_assert_int_eq(idem_decide(true, NULL, NULL, ours), IDEM_RUN);
	ck_assert_int_eq(idem_decide(false, NULL, NULL, ours), IDEM_IN_PROGRESS);
	ck_assert_int_eq(idem_decide(false, "running", ours, ours), IDEM_IN_PROGRESS);
	ck_assert_int_eq(idem_decide(false, "done", ours, ours), IDEM_REPLAY);
	ck_assert_int_eq(idem_decide(false, "done", other, ours), IDEM_REUSED);
	ck_assert_int_eq(idem_decide(false, "running", other, ours), IDEM_REUSED);
}
END_TEST

Suite *idempotency_unit_suite(void)
{
	Suite *s = suite_create("idempotency_unit");
	TCase *tc = tcase_create("pieces");
	tcase_add_test(tc, test_applies);
	tcase_add_test(tc, test_key_valid);
	tcase_add_test(tc, test_request_hash);
	tcase_add_test(tc, test_decide);
	suite_add_tcase(s, tc);
	return s;
}
