/* suites: every Check suite the test runner knows, one per module or behaviour. */
#ifndef DUALREG_TESTS_SUITES_H
#define DUALREG_TESTS_SUITES_H

#include <check.h>

Suite *config_suite(void);
Suite *router_suite(void);
Suite *problem_suite(void);
Suite *migrate_suite(void);
Suite *pool_suite(void);
Suite *daemon_suite(void);
Suite *openapi_suite(void);
Suite *reads_suite(void);
Suite *listen_suite(void);

#endif
