/* unit: the systemd service unit passes systemd-analyze verify (with the binary path
 * make install would write filled in). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "suites.h"

START_TEST(test_unit_verifies)
{
	char unit[512], cmd[2048], out[4096];
	snprintf(unit, sizeof unit, "%s/dualregd.service", th_env("DUALREG_TEST_TMP"));
	snprintf(cmd, sizeof cmd,
		 "sed 's|@SBINDIR@|%s|g' '%s/systemd/dualregd.service' > '%s' && "
		 "systemd-analyze verify --man=no '%s' 2>&1",
		 th_env("DUALREG_TEST_BIN"), th_env("DUALREG_TEST_ROOT"), unit, unit);
	char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
	int rc = th_run(argv, NULL, out, sizeof out);
	ck_assert_msg(rc == 0 && out[0] == '\0', "systemd-analyze verify (%d): %s", rc, out);
	unlink(unit);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("unit");
	TCase *tc = tcase_create("systemd");
	tcase_add_test(tc, test_unit_verifies);
	suite_add_tcase(s, tc);
	return s;
}
