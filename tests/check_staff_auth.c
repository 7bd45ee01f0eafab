/*
 * staff_auth: the credentials of staff accounts (staff_auth.h) and the worker pool that
 * runs their blocking work off the event loop (workers.h). Password hashing round trip,
 * the password policy's refusals, TOTP against the RFC 6238 test vectors (SHA-1) with the
 * +-1 step window and replay refusal, the otpauth URI, the QR code's SVG, recovery codes
 * and tokens; the pool's jobs on other threads with completions on the loop's, its bound
 * and its shutdown.
 */
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualreg/staff_auth.h"
#include "dualreg/workers.h"
#include "suites.h"

START_TEST(test_password_round_trip)
{
	char h1[STAFF_HASH_MAX], h2[STAFF_HASH_MAX];
	ck_assert_int_eq(staff_password_hash("correct staple horse battery", h1), 0);
	ck_assert_int_eq(staff_password_hash("correct staple horse battery", h2), 0);
	ck_assert_msg(strncmp(h1, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0, "%s", h1);
	ck_assert_str_ne(h1, h2); /* a random salt each time */
	ck_assert(staff_password_verify(h1, "correct staple horse battery"));
	ck_assert(staff_password_verify(h2, "correct staple horse battery"));
	ck_assert(!staff_password_verify(h1, "correct staple horse batterY"));
	ck_assert(!staff_password_verify(h1, ""));
	ck_assert(!staff_password_verify(NULL, "x"));
	ck_assert(!staff_password_verify("plain text", "plain text"));
	ck_assert(!staff_password_verify("$argon2i$v=19$m=19456,t=2,p=1$AAAA$AAAA", "x"));
	ck_assert(!staff_password_needs_rehash(h1));
	ck_assert(staff_password_needs_rehash("$argon2id$v=19$m=4096,t=3,p=1$AAAA$AAAA"));
	/* The dummy hash has the same cost as a real one and matches nothing guessable. */
	ck_assert(!staff_password_needs_rehash(staff_password_dummy_hash()));
	ck_assert(!staff_password_verify(staff_password_dummy_hash(), "correct staple horse battery"));
	ck_assert(!staff_password_verify(staff_password_dummy_hash(), ""));
}
END_TEST

START_TEST(test_password_policy)
{
	const char *email = "jo.bloggs@example.org", *name = "Jo Bloggs";
	ck_assert_int_eq(staff_password_check("violet kettle drum parade", email, name), STAFF_PW_OK);
	ck_assert_int_eq(staff_password_check("short1!", email, name), STAFF_PW_TOO_SHORT);
	ck_assert_int_eq(staff_password_check("elevenchars", email, name), STAFF_PW_TOO_SHORT);
	ck_assert_int_eq(staff_password_check("twelve chars", email, name), STAFF_PW_OK);
	/* Characters, not bytes: 11 two-byte characters are too short. */
	ck_assert_int_eq(staff_password_check("ééééééééééé", email, name), STAFF_PW_TOO_SHORT);
	ck_assert_int_eq(staff_password_check("éééééééééééé", email, name), STAFF_PW_OK);
	char long_pw[300];
	memset(long_pw, 'q', 257);
	long_pw[257] = '\0';
	ck_assert_int_eq(staff_password_check(long_pw, email, name), STAFF_PW_TOO_LONG);
	long_pw[256] = '\0';
	long_pw[3] = 'x';
	ck_assert_int_eq(staff_password_check(long_pw, email, name), STAFF_PW_OK);
	/* Common passwords, in any case, and with digits or symbols around them. */
	ck_assert(staff_common_password_count() >= 1000);
	ck_assert(staff_password_is_common("password"));
	ck_assert(staff_password_is_common("PassWord"));
	ck_assert(!staff_password_is_common("violet kettle drum parade"));
	ck_assert_int_eq(staff_password_check("password1234", email, name), STAFF_PW_COMMON);
	ck_assert_int_eq(staff_password_check("qwertyuiop123", email, name), STAFF_PW_COMMON);
	ck_assert_int_eq(staff_password_check("123456789012", email, name), STAFF_PW_COMMON);
	ck_assert_int_eq(staff_password_check("Sunshine!2024", email, name), STAFF_PW_COMMON);
	ck_assert_int_eq(staff_password_check("2024-Liverpool!", email, name), STAFF_PW_COMMON);
	ck_assert_int_eq(staff_password_check("correcthorsebatterystaple", email, name),
			 STAFF_PW_COMMON);
	/* The account's own e-mail address and name. */
	ck_assert_int_eq(staff_password_check("jo.bloggs@example.org", email, name),
			 STAFF_PW_PERSONAL);
	ck_assert_int_eq(staff_password_check("my JO.BLOGGS pass", email, name), STAFF_PW_PERSONAL);
	ck_assert_int_eq(staff_password_check("i am jo bloggs!!", email, name), STAFF_PW_PERSONAL);
	ck_assert_int_eq(staff_password_check("i am jo bloggs!!", NULL, NULL), STAFF_PW_OK);
	/* Not text. */
	ck_assert_int_eq(staff_password_check("tab\there is bad", email, name), STAFF_PW_NOT_TEXT);
	ck_assert_int_eq(staff_password_check("bad \xff byte in it", email, name), STAFF_PW_NOT_TEXT);
	ck_assert_int_eq(staff_password_check(NULL, email, name), STAFF_PW_NOT_TEXT);
	ck_assert_str_eq(staff_password_problem_text(STAFF_PW_OK), "");
	ck_assert(strstr(staff_password_problem_text(STAFF_PW_TOO_SHORT), "12") != NULL);
	ck_assert(strstr(staff_password_problem_text(STAFF_PW_COMMON), "common") != NULL);
}
END_TEST

/* RFC 6238 appendix B, SHA-1: the secret "12345678901234567890" (base32 below), and the
 * 8-digit codes' last 6 digits (the same truncation, modulo 10^6). */
#define RFC_SECRET "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
static const struct {
	time_t t;
	const char *code;
} rfc_vectors[] = {
    {59, "287082"},         {1111111109, "081804"}, {1111111111, "050471"},
    {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"},
};

START_TEST(test_totp_rfc6238)
{
	for (size_t i = 0; i < sizeof rfc_vectors / sizeof rfc_vectors[0]; i++) {
		char code[STAFF_TOTP_DIGITS + 1];
		time_t t = rfc_vectors[i].t;
		ck_assert_int_eq(staff_totp_code(RFC_SECRET, t, code), 0);
		ck_assert_str_eq(code, rfc_vectors[i].code);
		int64_t step = -1;
		ck_assert_int_eq(staff_totp_verify(RFC_SECRET, rfc_vectors[i].code, t, -1, &step),
				 STAFF_TOTP_VALID);
		ck_assert_int_eq(step, t / 30);
		/* One step either side is accepted, two are not. */
		ck_assert_int_eq(staff_totp_verify(RFC_SECRET, rfc_vectors[i].code, t + 30, -1, &step),
				 STAFF_TOTP_VALID);
		ck_assert_int_eq(step, t / 30);
		ck_assert_int_eq(staff_totp_verify(RFC_SECRET, rfc_vectors[i].code, t - 30, -1, &step),
				 STAFF_TOTP_VALID);
		ck_assert_int_eq(step, t / 30);
		ck_assert_int_eq(staff_totp_verify(RFC_SECRET, rfc_vectors[i].code, t + 60, -1, &step),
				 STAFF_TOTP_WRONG);
		if (t >= 60)
			ck_assert_int_eq(
			    staff_totp_verify(RFC_SECRET, rfc_vectors[i].code, t - 60, -1, &step),
			    STAFF_TOTP_WRONG);
	}
	ck_assert_int_eq(staff_totp_step(1111111111), 37037037);
}
END_TEST

START_TEST(test_totp_replay_and_malformed)
{
	time_t t = 1111111111;
	int64_t step = -1;
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, "050471", t, -1, &step), STAFF_TOTP_VALID);
	/* The same code again (its step is the last used): refused. */
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, "050471", t, step, &step), STAFF_TOTP_REPLAYED);
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, "050471", t + 20, step, &step),
			 STAFF_TOTP_REPLAYED);
	/* The previous step's code after the current one was used: refused too. */
	char prev[STAFF_TOTP_DIGITS + 1], next[STAFF_TOTP_DIGITS + 1];
	ck_assert_int_eq(staff_totp_code(RFC_SECRET, t - 30, prev), 0);
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, prev, t, step, &step), STAFF_TOTP_REPLAYED);
	/* The next step's code is later: accepted once. */
	int64_t last = step;
	ck_assert_int_eq(staff_totp_code(RFC_SECRET, t + 30, next), 0);
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, next, t, last, &step), STAFF_TOTP_VALID);
	ck_assert_int_eq(step, last + 1);
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, next, t, step, &step), STAFF_TOTP_REPLAYED);

	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, "12345", t, -1, &step), STAFF_TOTP_MALFORMED);
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, "1234567", t, -1, &step), STAFF_TOTP_MALFORMED);
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, "05047a", t, -1, &step), STAFF_TOTP_MALFORMED);
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, NULL, t, -1, &step), STAFF_TOTP_MALFORMED);
	ck_assert_int_eq(staff_totp_verify("!!notbase32!!", "050471", t, -1, &step),
			 STAFF_TOTP_ERROR);
	ck_assert_int_eq(staff_totp_verify(RFC_SECRET, "000000", t, -1, &step), STAFF_TOTP_WRONG);

	/* A new secret: 32 base32 characters, different each time, and usable. */
	char s1[STAFF_TOTP_SECRET_MAX], s2[STAFF_TOTP_SECRET_MAX], code[STAFF_TOTP_DIGITS + 1];
	ck_assert_int_eq(staff_totp_secret_new(s1), 0);
	ck_assert_int_eq(staff_totp_secret_new(s2), 0);
	ck_assert_int_eq(strlen(s1), STAFF_TOTP_SECRET_LEN);
	ck_assert_int_eq(strspn(s1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), STAFF_TOTP_SECRET_LEN);
	ck_assert_str_ne(s1, s2);
	time_t now = time(NULL);
	ck_assert_int_eq(staff_totp_code(s1, now, code), 0);
	ck_assert_int_eq(staff_totp_verify(s1, code, now, -1, &step), STAFF_TOTP_VALID);
}
END_TEST

START_TEST(test_totp_uri_and_qr)
{
	char *uri = staff_totp_uri(RFC_SECRET, "jo+staff@example.org");
	ck_assert_ptr_nonnull(uri);
	ck_assert_str_eq(uri, "otpauth://totp/dualreg:jo%2Bstaff%40example.org?secret=" RFC_SECRET
			      "&issuer=dualreg&algorithm=SHA1&digits=6&period=30");
	char *svg = staff_qr_svg(uri);
	ck_assert_ptr_nonnull(svg);
	ck_assert_msg(strncmp(svg, "<svg ", 5) == 0, "%.80s", svg);
	ck_assert(strstr(svg, "</svg>") == svg + strlen(svg) - 6);
	ck_assert(strstr(svg, "<path fill=\"#000000\" d=\"M") != NULL);
	for (const char *bad = "<script\0style\0on\0href\0javascript\0"; *bad; bad += strlen(bad) + 1)
		ck_assert_msg(strstr(svg, bad) == NULL, "\"%s\" in the SVG", bad);
	free(svg);
	free(uri);
	/* Text no QR code holds. */
	char *huge = malloc(8000);
	memset(huge, 'x', 7999);
	huge[7999] = '\0';
	ck_assert_ptr_null(staff_qr_svg(huge));
	free(huge);
}
END_TEST

START_TEST(test_recovery_codes_and_tokens)
{
	char codes[STAFF_RECOVERY_CODES][STAFF_RECOVERY_LEN + 1];
	ck_assert_int_eq(staff_recovery_codes_new(codes), 0);
	for (int i = 0; i < STAFF_RECOVERY_CODES; i++) {
		ck_assert_int_eq(strlen(codes[i]), STAFF_RECOVERY_LEN);
		for (int k = 0; k < STAFF_RECOVERY_LEN; k++) {
			if (k == 4 || k == 9)
				ck_assert_int_eq(codes[i][k], '-');
			else
				ck_assert_msg(strchr(STAFF_RECOVERY_ALPHABET, codes[i][k]) != NULL,
					      "%s", codes[i]);
		}
		for (int j = 0; j < i; j++)
			ck_assert_str_ne(codes[i], codes[j]);
		/* Typed in capitals, without hyphens or with spaces: the same code. */
		char typed[40], normal[STAFF_RECOVERY_LEN + 1], h1[65], h2[65];
		snprintf(typed, sizeof typed, " %c%c%c%c %c%c%c%c%c%c%c%c ", codes[i][0] - 32 * (codes[i][0] >= 'a'),
			 codes[i][1], codes[i][2], codes[i][3], codes[i][5], codes[i][6],
			 codes[i][7], codes[i][8], codes[i][10], codes[i][11], codes[i][12],
			 codes[i][13]);
		ck_assert_int_eq(staff_recovery_normalise(typed, normal), 0);
		ck_assert_str_eq(normal, codes[i]);
		ck_assert_int_eq(staff_recovery_hash(codes[i], h1), 0);
		ck_assert_int_eq(staff_recovery_hash(typed, h2), 0);
		ck_assert_str_eq(h1, h2);
		ck_assert_int_eq(strlen(h1), 64);
	}
	char normal[STAFF_RECOVERY_LEN + 1], h[65];
	ck_assert_int_eq(staff_recovery_normalise("abcd-efgh-ijk", normal), -1);
	ck_assert_int_eq(staff_recovery_normalise("abcd-efgh-ijkmn", normal), -1);
	ck_assert_int_eq(staff_recovery_normalise("abcd-efgh-ijk0", normal), -1); /* no 0 */
	ck_assert_int_eq(staff_recovery_normalise("abcd-efgh-ijkl", normal), -1); /* no l */
	ck_assert_int_eq(staff_recovery_hash("123456", h), -1);

	char t1[STAFF_TOKEN_LEN + 1], t2[STAFF_TOKEN_LEN + 1], th[65];
	ck_assert_int_eq(staff_token_new(t1), 0);
	ck_assert_int_eq(staff_token_new(t2), 0);
	ck_assert_int_eq(strlen(t1), 43);
	ck_assert(staff_token_well_formed(t1));
	ck_assert_str_ne(t1, t2);
	ck_assert(!staff_token_well_formed("short"));
	ck_assert(!staff_token_well_formed("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa="));
	staff_token_hash("abc", th);
	ck_assert_str_eq(th, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

/* ---- workers ---- */

struct wjob {
	pthread_t ran_on, done_on;
	bool ran, done, cancelled;
	int order, *counter;
	atomic_bool *gate; /* when set, the job waits until it is true */
};

static void wjob_work(void *arg)
{
	struct wjob *j = arg;
	while (j->gate != NULL && !atomic_load(j->gate))
		usleep(1000);
	j->ran_on = pthread_self();
	j->ran = true;
}

static void wjob_done(void *arg, bool cancelled)
{
	struct wjob *j = arg;
	j->done_on = pthread_self();
	j->done = true;
	j->cancelled = cancelled;
	j->order = ++*j->counter;
}

/* Runs the loop until n jobs are done (or 10 s pass). */
static void loop_until(struct event_base *base, const int *counter, int n)
{
	for (int i = 0; i < 1000 && *counter < n; i++) {
		struct timeval tv = {0, 10000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

START_TEST(test_workers_run_off_the_loop)
{
	struct event_base *base = event_base_new();
	struct workers *w = workers_new(base, 2, 8);
	ck_assert_ptr_nonnull(w);
	struct wjob jobs[6] = {0};
	int counter = 0;
	for (int i = 0; i < 6; i++) {
		jobs[i].counter = &counter;
		ck_assert_int_eq(workers_submit(w, wjob_work, wjob_done, &jobs[i]), 0);
	}
	/* Nothing is delivered until the loop runs. */
	usleep(50000);
	ck_assert_int_eq(counter, 0);
	ck_assert_int_eq(workers_outstanding(w), 6);
	loop_until(base, &counter, 6);
	ck_assert_int_eq(counter, 6);
	for (int i = 0; i < 6; i++) {
		ck_assert(jobs[i].ran && jobs[i].done && !jobs[i].cancelled);
		ck_assert(!pthread_equal(jobs[i].ran_on, pthread_self()));
		ck_assert(pthread_equal(jobs[i].done_on, pthread_self()));
	}
	ck_assert_int_eq(workers_outstanding(w), 0);
	workers_free(w);
	event_base_free(base);
}
END_TEST

/* Opens the gate a moment later, once workers_free is stopping the pool. */
static void *open_gate_later(void *arg)
{
	usleep(100000);
	atomic_store((atomic_bool *)arg, true);
	return NULL;
}

START_TEST(test_workers_bound_and_shutdown)
{
	struct event_base *base = event_base_new();
	struct workers *w = workers_new(base, 1, 2);
	ck_assert_ptr_nonnull(w);
	atomic_bool gate = false;
	int counter = 0;
	struct wjob jobs[5] = {0};
	for (int i = 0; i < 5; i++) {
		jobs[i].counter = &counter;
		jobs[i].gate = &gate;
	}
	/* The one thread takes the first job and waits at the gate; two more wait for it. */
	ck_assert_int_eq(workers_submit(w, wjob_work, wjob_done, &jobs[0]), 0);
	for (int i = 0; i < 200 && workers_waiting(w) != 0; i++)
		usleep(5000);
	ck_assert_int_eq(workers_waiting(w), 0);
	ck_assert_int_eq(workers_submit(w, wjob_work, wjob_done, &jobs[1]), 0);
	ck_assert_int_eq(workers_submit(w, wjob_work, wjob_done, &jobs[2]), 0);
	ck_assert_int_eq(workers_waiting(w), 2);
	/* Full: refused, and its functions are never called. */
	ck_assert_int_eq(workers_submit(w, wjob_work, wjob_done, &jobs[3]), -1);
	ck_assert_int_eq(workers_outstanding(w), 3);
	/* Shut down while one runs and two wait: the running one finishes, the waiting ones
	 * are cancelled, every done is called once, on this thread. */
	pthread_t opener;
	ck_assert_int_eq(pthread_create(&opener, NULL, open_gate_later, &gate), 0);
	workers_free(w);
	pthread_join(opener, NULL);
	ck_assert(jobs[0].ran && jobs[0].done && !jobs[0].cancelled);
	for (int i = 1; i <= 2; i++) {
		ck_assert(jobs[i].done && jobs[i].cancelled);
		ck_assert(pthread_equal(jobs[i].done_on, pthread_self()));
	}
	ck_assert(!jobs[3].ran && !jobs[3].done);
	ck_assert_int_eq(counter, 3);
	/* A job submitted while the loop is not running is still delivered at free. */
	w = workers_new(base, 2, 4);
	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(workers_submit(w, wjob_work, wjob_done, &jobs[4]), 0);
	workers_free(w);
	ck_assert(jobs[4].done);
	ck_assert_ptr_null(workers_new(base, 0, 4));
	ck_assert_ptr_null(workers_new(base, 2, 0));
	workers_free(NULL);
	event_base_free(base);
}
END_TEST

struct hash_job {
	char hash[STAFF_HASH_MAX];
	int rc, *counter;
	pthread_t ran_on;
};

static void hash_work(void *arg)
{
	struct hash_job *j = arg;
	j->ran_on = pthread_self();
	j->rc = staff_password_hash("violet kettle drum parade", j->hash);
}

static void hash_done(void *arg, bool cancelled)
{
	struct hash_job *j = arg;
	ck_assert(!cancelled);
	++*j->counter;
}

START_TEST(test_workers_hash_passwords)
{
	struct event_base *base = event_base_new();
	struct workers *w = workers_new(base, WORKERS_DEFAULT_THREADS, WORKERS_DEFAULT_QUEUE);
	ck_assert_ptr_nonnull(w);
	int counter = 0;
	struct hash_job jobs[4];
	memset(jobs, 0, sizeof jobs);
	for (int i = 0; i < 4; i++) {
		jobs[i].counter = &counter;
		ck_assert_int_eq(workers_submit(w, hash_work, hash_done, &jobs[i]), 0);
	}
	loop_until(base, &counter, 4);
	ck_assert_int_eq(counter, 4);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(jobs[i].rc, 0);
		ck_assert(!pthread_equal(jobs[i].ran_on, pthread_self()));
		ck_assert(staff_password_verify(jobs[i].hash, "violet kettle drum parade"));
	}
	workers_free(w);
	event_base_free(base);
}
END_TEST

Suite *staff_auth_suite(void)
{
	Suite *s = suite_create("staff_auth");
	TCase *tc = tcase_create("credentials");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_password_round_trip);
	tcase_add_test(tc, test_password_policy);
	tcase_add_test(tc, test_totp_rfc6238);
	tcase_add_test(tc, test_totp_replay_and_malformed);
	tcase_add_test(tc, test_totp_uri_and_qr);
	tcase_add_test(tc, test_recovery_codes_and_tokens);
	suite_add_tcase(s, tc);
	TCase *tw = tcase_create("workers");
	tcase_set_timeout(tw, 60);
	tcase_add_test(tw, test_workers_run_off_the_loop);
	tcase_add_test(tw, test_workers_bound_and_shutdown);
	tcase_add_test(tw, test_workers_hash_passwords);
	suite_add_tcase(s, tw);
	return s;
}
