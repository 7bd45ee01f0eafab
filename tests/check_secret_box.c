/*
 * secret_box (unit): sealing and opening (round trip, a fresh nonce each time, older
 * keys, a key the keyring lacks, an altered value or tag, another row's value,
 * plaintext from before encryption) and key files (modes, malformed and repeated keys,
 * comments, no key).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dualreg/secret_box.h"
#include "harness.h"
#include "suites.h"

static unsigned char k1[SECRET_BOX_KEY_BYTES], k2[SECRET_BOX_KEY_BYTES];
static char line1[48], line2[48];

static void keys_setup(void)
{
	ck_assert_int_eq(secret_box_key_new(k1, line1), 0);
	ck_assert_int_eq(secret_box_key_new(k2, line2), 0);
}

/* A keyring of keys a (current) and then b (NULL: a alone). */
static struct secret_box *ring(const unsigned char *a, const unsigned char *b)
{
	unsigned char keys[2][SECRET_BOX_KEY_BYTES];
	memcpy(keys[0], a, SECRET_BOX_KEY_BYTES);
	if (b != NULL)
		memcpy(keys[1], b, SECRET_BOX_KEY_BYTES);
	struct secret_box *box = secret_box_from_keys((const unsigned char(*)[SECRET_BOX_KEY_BYTES])keys,
						      b != NULL ? 2 : 1);
	ck_assert_ptr_nonnull(box);
	return box;
}

START_TEST(test_round_trip)
{
	struct secret_box *box = ring(k1, k2);
	char id[SECRET_BOX_ID_LEN + 1], err[256] = "";
	secret_box_key_id_of(k1, id);
	ck_assert_str_eq(secret_box_key_id(box, 0), id);
	ck_assert_int_eq((int)strlen(id), SECRET_BOX_ID_LEN);
	const char *plain = "whsec_c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IQ==";
	char *a = secret_box_seal(box, plain, "subscription:1");
	char *b = secret_box_seal(box, plain, "subscription:1");
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_null(strstr(a, "whsec_"));
	char want[32];
	snprintf(want, sizeof want, "v1:%s:", id);
	ck_assert_int_eq(strncmp(a, want, strlen(want)), 0);
	char got_id[SECRET_BOX_ID_LEN + 1];
	ck_assert(secret_box_is_sealed(a, got_id));
	ck_assert_str_eq(got_id, id);
	ck_assert_str_ne(a, b); /* a fresh nonce each time */
	char *open = secret_box_open(box, a, "subscription:1", err, sizeof err);
	ck_assert_msg(open != NULL, "%s", err);
	ck_assert_str_eq(open, plain);
	secret_box_value_free(open);
	/* The empty value and a long one. */
	char *e = secret_box_seal(box, "", "school:100001");
	open = secret_box_open(box, e, "school:100001", err, sizeof err);
	ck_assert_str_eq(open, "");
	secret_box_value_free(open);
	char big[4001];
	memset(big, 'x', 4000);
	big[4000] = '\0';
	char *s = secret_box_seal(box, big, "school:100001");
	ck_assert_uint_le(strlen(s), 6000); /* fits schools.pull_token */
	open = secret_box_open(box, s, "school:100001", err, sizeof err);
	ck_assert_str_eq(open, big);
	secret_box_value_free(open);
	secret_box_value_free(s);
	secret_box_value_free(e);
	secret_box_value_free(a);
	secret_box_value_free(b);
	secret_box_free(box);
}
END_TEST

START_TEST(test_key_ids)
{
	/* A value sealed with k1 opens with a keyring that keeps k1 as an older key, not
	 * with one that lacks it, nor without a keyring. */
	struct secret_box *old = ring(k1, NULL), *rotated = ring(k2, k1), *other = ring(k2, NULL);
	char err[256] = "";
	char *v = secret_box_seal(old, "token-1", "school:100001");
	char *open = secret_box_open(rotated, v, "school:100001", err, sizeof err);
	ck_assert_msg(open != NULL, "%s", err);
	ck_assert_str_eq(open, "token-1");
	secret_box_value_free(open);
	ck_assert_ptr_null(secret_box_open(other, v, "school:100001", err, sizeof err));
	ck_assert_msg(strstr(err, secret_box_key_id(old, 0)) != NULL &&
			  strstr(err, "does not hold") != NULL,
		      "%s", err);
	ck_assert_ptr_null(secret_box_open(NULL, v, "school:100001", err, sizeof err));
	ck_assert_msg(strstr(err, "no [secrets] key_file") != NULL, "%s", err);
	ck_assert(secret_box_has_key(rotated, secret_box_key_id(old, 0)));
	ck_assert(!secret_box_has_key(other, secret_box_key_id(old, 0)));
	secret_box_value_free(v);
	secret_box_free(old);
	secret_box_free(rotated);
	secret_box_free(other);
}
END_TEST

/* v with byte i of its decoded nonce|ciphertext|tag flipped (i < 0: from the end). */
static char *tampered(const char *v, int i)
{
	const char *b64 = v + strlen("v1:") + SECRET_BOX_ID_LEN + 1;
	unsigned char raw[512];
	int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
	ck_assert_int_gt(n, 0);
	size_t pad = strlen(b64) - strcspn(b64, "=");
	n -= (int)pad;
	raw[i < 0 ? n + i : i] ^= 0x01;
	char *out = calloc(1, strlen(v) + 8);
	memcpy(out, v, (size_t)(b64 - v));
	EVP_EncodeBlock((unsigned char *)out + (b64 - v), raw, n);
	return out;
}

START_TEST(test_tampered_and_swapped)
{
	struct secret_box *box = ring(k1, NULL);
	char err[256] = "";
	char *v = secret_box_seal(box, "whsec_abc", "subscription:1");
	/* Another row's additional data: a value copied into another row does not open. */
	ck_assert_ptr_null(secret_box_open(box, v, "subscription:2", err, sizeof err));
	ck_assert_msg(strstr(err, "does not decrypt") != NULL, "%s", err);
	ck_assert_ptr_null(secret_box_open(box, v, "school:1", err, sizeof err));
	/* The tag, the ciphertext and the nonce are each checked. */
	int where[] = {-1, -16, 12, 0};
	for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
		char *t = tampered(v, where[i]);
		ck_assert_str_ne(t, v);
		err[0] = '\0';
		ck_assert_msg(secret_box_open(box, t, "subscription:1", err, sizeof err) == NULL,
			      "byte %d", where[i]);
		ck_assert_msg(strstr(err, "does not decrypt") != NULL, "%s", err);
		free(t);
	}
	/* Malformed sealed text: bad base64, too short. */
	char id[SECRET_BOX_ID_LEN + 1], bad[64];
	secret_box_key_id_of(k1, id);
	snprintf(bad, sizeof bad, "v1:%s:!!!!", id);
	ck_assert_ptr_null(secret_box_open(box, bad, "subscription:1", err, sizeof err));
	snprintf(bad, sizeof bad, "v1:%s:AAAA", id);
	ck_assert_ptr_null(secret_box_open(box, bad, "subscription:1", err, sizeof err));
	ck_assert_msg(strstr(err, "malformed") != NULL, "%s", err);
	secret_box_value_free(v);
	secret_box_free(box);
}
END_TEST

START_TEST(test_plaintext_and_no_keyring)
{
	struct secret_box *box = ring(k1, NULL);
	char err[256] = "";
	/* Stored before encryption was configured: opens as it is. */
	char *open = secret_box_open(box, "whsec_plain", "subscription:1", err, sizeof err);
	ck_assert_str_eq(open, "whsec_plain");
	secret_box_value_free(open);
	ck_assert(!secret_box_is_sealed("whsec_plain", NULL));
	ck_assert(!secret_box_is_sealed("v1:1234567:x", NULL));
	ck_assert(!secret_box_is_sealed("v1:1234567G:x", NULL));
	ck_assert(secret_box_is_sealed("v1:0123abcd:", NULL));
	/* Without a keyring nothing is sealed. */
	char *v = secret_box_seal(NULL, "token", "school:1");
	ck_assert_str_eq(v, "token");
	secret_box_value_free(v);
	secret_box_free(box);
}
END_TEST

static char kpath[512];

/* Writes text to a key file of this mode; its path is kpath. */
static void key_file(const char *text, mode_t mode)
{
	static int seq;
	snprintf(kpath, sizeof kpath, "%s/keys-%d-%d", th_env("DUALREG_TEST_TMP"), (int)getpid(),
		 seq++);
	FILE *f = fopen(kpath, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(kpath, mode), 0);
}

START_TEST(test_key_files)
{
	char text[512], err[600] = "";
	/* Comments, blank lines, CRLF and surrounding blanks; the first key is current. */
	snprintf(text, sizeof text, "# keys\n\n  %s \r\n# older\n%s\n", line2, line1);
	key_file(text, 0600);
	struct secret_box *box = secret_box_load(kpath, err, sizeof err);
	ck_assert_msg(box != NULL, "%s", err);
	ck_assert_uint_eq(secret_box_key_count(box), 2);
	char id1[SECRET_BOX_ID_LEN + 1], id2[SECRET_BOX_ID_LEN + 1];
	secret_box_key_id_of(k1, id1);
	secret_box_key_id_of(k2, id2);
	ck_assert_str_eq(secret_box_key_id(box, 0), id2);
	ck_assert_str_eq(secret_box_key_id(box, 1), id1);
	/* What it seals opens with a keyring built from the same keys. */
	struct secret_box *same = ring(k2, k1);
	char *v = secret_box_seal(box, "t", "school:1");
	char *open = secret_box_open(same, v, "school:1", err, sizeof err);
	ck_assert_str_eq(open, "t");
	secret_box_value_free(open);
	secret_box_value_free(v);
	secret_box_free(same);
	secret_box_free(box);

	/* Readable or writable by group or others: refused, with what to do. */
	mode_t modes[] = {0640, 0604, 0620, 0666};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		snprintf(text, sizeof text, "%s\n", line1);
		key_file(text, modes[i]);
		err[0] = '\0';
		ck_assert_ptr_null(secret_box_load(kpath, err, sizeof err));
		ck_assert_msg(strstr(err, "chmod 600") != NULL, "%s", err);
	}
	key_file(text, 0400);
	box = secret_box_load(kpath, err, sizeof err);
	ck_assert_msg(box != NULL, "%s", err);
	secret_box_free(box);

	/* Malformed keys, named by line. */
	char shorter[48], longer[64], notb64[48], noncanon[48];
	snprintf(shorter, sizeof shorter, "%.43s", line1);
	snprintf(longer, sizeof longer, "%sAAAA", line1);
	snprintf(notb64, sizeof notb64, "%s", line1);
	notb64[10] = '*';
	/* The last character before '=' carries 2 unused bits: set one. */
	snprintf(noncanon, sizeof noncanon, "%s", line1);
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	noncanon[42] = alphabet[(strchr(alphabet, noncanon[42]) - alphabet) ^ 1];
	const char *bad[] = {shorter, longer, notb64, noncanon, "secret"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, "# keys\n%s\n%s\n", line1, bad[i]);
		key_file(text, 0600);
		err[0] = '\0';
		ck_assert_msg(secret_box_load(kpath, err, sizeof err) == NULL, "case %zu", i);
		ck_assert_msg(strstr(err, ":3: not a key") != NULL, "case %zu: %s", i, err);
	}
	snprintf(text, sizeof text, "%s\n%s\n", line1, line1);
	key_file(text, 0600);
	ck_assert_ptr_null(secret_box_load(kpath, err, sizeof err));
	ck_assert_msg(strstr(err, "twice") != NULL, "%s", err);
	key_file("# nothing here\n\n", 0600);
	ck_assert_ptr_null(secret_box_load(kpath, err, sizeof err));
	ck_assert_msg(strstr(err, "no key") != NULL, "%s", err);
	ck_assert_ptr_null(secret_box_load("/nonexistent/keys", err, sizeof err));
	ck_assert_msg(strstr(err, "No such file") != NULL, "%s", err);
	ck_assert_ptr_null(secret_box_load(th_env("DUALREG_TEST_TMP"), err, sizeof err));
}
END_TEST

void secret_box_tests(Suite *s)
{
	TCase *tc = tcase_create("secret_box");
	tcase_add_checked_fixture(tc, keys_setup, NULL);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_key_ids);
	tcase_add_test(tc, test_tampered_and_swapped);
	tcase_add_test(tc, test_plaintext_and_no_keyring);
	tcase_add_test(tc, test_key_files);
	suite_add_tcase(s, tc);
}
