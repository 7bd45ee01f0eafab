/* sign: Standard Webhooks signatures against the specification's published example. */
#include <string.h>

#include "dualreg/sign.h"
#include "suites.h"

START_TEST(test_reference_vector)
{
	/* The example from the Standard Webhooks specification's reference libraries. */
	char sig[SIGN_SIG_MAX];
	const char body[] = "{\"test\": 2432232314}";
	ck_assert_int_eq(sign_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
				      "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
				      strlen(body), sig),
			 0);
	ck_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* Any change to id, timestamp or body changes the signature. */
	char other[SIGN_SIG_MAX];
	ck_assert_int_eq(sign_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
				      "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body,
				      strlen(body), other),
			 0);
	ck_assert_str_ne(sig, other);
}
END_TEST

START_TEST(test_bad_secrets)
{
	char sig[SIGN_SIG_MAX];
	ck_assert_int_eq(sign_webhook("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, "", 0, sig), -1);
	ck_assert_int_eq(sign_webhook("whsec_", "m", 1, "", 0, sig), -1);
	ck_assert_int_eq(sign_webhook("whsec_abc", "m", 1, "", 0, sig), -1);
}
END_TEST

START_TEST(test_new_secret)
{
	char a[SIGN_SECRET_MAX], b[SIGN_SECRET_MAX], sig[SIGN_SIG_MAX];
	ck_assert_int_eq(sign_secret_new(a), 0);
	ck_assert_int_eq(sign_secret_new(b), 0);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(strncmp(a, "whsec_", 6), 0);
	ck_assert_uint_eq(strlen(a), 6 + 44); /* base64 of 32 bytes */
	ck_assert_int_eq(sign_webhook(a, "evt_1", 1700000000, "{}", 2, sig), 0);
	ck_assert_uint_eq(strlen(sig), 3 + 44);
}
END_TEST

Suite *sign_suite(void)
{
	Suite *s = suite_create("sign");
	TCase *tc = tcase_create("standard-webhooks");
	tcase_add_test(tc, test_reference_vector);
	tcase_add_test(tc, test_bad_secrets);
	tcase_add_test(tc, test_new_secret);
	suite_add_tcase(s, tc);
	return s;
}
