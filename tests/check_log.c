/* log: values are logfmt-escaped wherever they come from, so none can forge a field or
 * a line; the line written to stderr is one line. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dualreg/log.h"
#include "suites.h"

#define FORGED "\" key=forged\n level=error"

START_TEST(test_quoted_value_is_escaped)
{
	char buf[256];
	log_fields_format(buf, sizeof buf, "err=\"%s\" n=%d", FORGED, 7);
	ck_assert_str_eq(buf, "err=\"\\\" key=forged\\n level=error\" n=7");
}
END_TEST

START_TEST(test_unquoted_value_is_quoted)
{
	char buf[256];
	log_fields_format(buf, sizeof buf, "upn=%s route=%s", FORGED, "pupils.get");
	ck_assert_str_eq(buf, "upn=\"\\\" key=forged\\n level=error\" route=pupils.get");
	/* empty, backslash, '=' and control characters */
	log_fields_format(buf, sizeof buf, "a=%s b=%s c=%s d=\"%s\"", "", "x\\y", "k=v",
			  "\t\r\x01");
	ck_assert_str_eq(buf, "a=\"\" b=\"x\\\\y\" c=\"k=v\" d=\"\\t\\r\\x01\"");
}
END_TEST

START_TEST(test_precision_and_numbers)
{
	char buf[256];
	log_fields_format(buf, sizeof buf,
			  "e=\"%.*s\" f=%.3s n=%lld u=%02u z=%zu x=%lx f=%.2f p=%%", 5, "ab\"cdef",
			  "abcdef", -5LL, 7u, (size_t)9, 255ul, 1.5);
	ck_assert_str_eq(buf, "e=\"ab\\\"cd\" f=abc n=-5 u=07 z=9 x=ff f=1.50 p=%");
}
END_TEST

START_TEST(test_bounded)
{
	char buf[16];
	size_t n = log_fields_format(buf, sizeof buf, "err=\"%s\"", "\n\n\n\n\n\n\n\n\n\n");
	ck_assert_uint_lt(n, sizeof buf);
	ck_assert_uint_eq(strlen(buf), n);
	/* an escape is never cut in half */
	ck_assert_str_eq(buf, "err=\"\\n\\n\\n\\n\\n");
}
END_TEST

/* The line written: one line, the forged text inside the err value. */
START_TEST(test_written_line)
{
	char path[] = "/tmp/dualreg-log-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	log_set_level(LOG_INFO);
	log_info("read \"refused\"", "err=\"%s\" upn=%s", FORGED, FORGED);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char line[1024] = "";
	ssize_t n = pread(fd, line, sizeof line - 1, 0);
	close(fd);
	unlink(path);
	ck_assert_int_gt(n, 0);
	line[n] = '\0';
	ck_assert_ptr_eq(strchr(line, '\n'), line + n - 1); /* exactly one line */
	ck_assert_ptr_nonnull(strstr(line, " level=info msg=\"read \\\"refused\\\"\" "
					   "err=\"\\\" key=forged\\n level=error\" "
					   "upn=\"\\\" key=forged\\n level=error\"\n"));
	ck_assert_ptr_null(strstr(line, " key=forged "));
}
END_TEST

Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("escaping");
	tcase_add_test(tc, test_quoted_value_is_escaped);
	tcase_add_test(tc, test_unquoted_value_is_quoted);
	tcase_add_test(tc, test_precision_and_numbers);
	tcase_add_test(tc, test_bounded);
	tcase_add_test(tc, test_written_line);
	suite_add_tcase(s, tc);
	return s;
}
