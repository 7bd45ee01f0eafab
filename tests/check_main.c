/*
 * check_dualreg: runs every suite and prints Check's summary line. Run it through
 * `make check`, which provides the throw-away database. CK_RUN_SUITE / CK_RUN_CASE pick
 * tests; CK_FORK=no runs in-process for a debugger.
 */
#include <curl/curl.h>
#include <stdlib.h>

#include "suites.h"

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	SRunner *sr = srunner_create(config_suite());
	srunner_add_suite(sr, router_suite());
	srunner_add_suite(sr, problem_suite());
	srunner_add_suite(sr, domain_suite());
	srunner_add_suite(sr, openapi_suite());
	srunner_add_suite(sr, sign_suite());
	srunner_add_suite(sr, httpc_suite());
	srunner_add_suite(sr, outbox_suite());
	srunner_add_suite(sr, webhooks_suite());
	srunner_add_suite(sr, outbound_suite());
	srunner_add_suite(sr, alerts_suite());
	srunner_add_suite(sr, pull_suite());
	srunner_add_suite(sr, tls_suite());
	srunner_add_suite(sr, unit_suite());
	srunner_add_suite(sr, metrics_suite());
	srunner_add_suite(sr, failover_suite());
	srunner_add_suite(sr, ctl_sync_suite());
	srunner_add_suite(sr, sync_health_suite());
	srunner_add_suite(sr, migrate_suite());
	srunner_add_suite(sr, pool_suite());
	srunner_add_suite(sr, daemon_suite());
	/* platform */
	srunner_add_suite(sr, auth_suite());
	srunner_add_suite(sr, auth_abuse_suite());
	srunner_add_suite(sr, web_session_suite());
	srunner_add_suite(sr, idempotency_unit_suite());
	srunner_add_suite(sr, ctl_suite());
	srunner_add_suite(sr, ctl_ops_suite());
	srunner_add_suite(sr, ctl_help_suite());
	srunner_add_suite(sr, registry_suite());
	srunner_add_suite(sr, idempotency_suite());
	/* marks and the derive job */
	srunner_add_suite(sr, marks_suite());
	srunner_add_suite(sr, marks_rules_suite());
	srunner_add_suite(sr, jobs_suite());
	srunner_add_suite(sr, listen_suite());
	srunner_add_suite(sr, reads_suite());
	srunner_add_suite(sr, changes_suite());
	srunner_add_suite(sr, alerts_read_suite());
	srunner_add_suite(sr, integrity_suite());
	srunner_add_suite(sr, longpoll_suite());
	srunner_add_suite(sr, fuzz_regressions_suite());
	srunner_add_suite(sr, fuzz_corpus_suite());
	srunner_add_suite(sr, consent_matrix_suite());
	srunner_add_suite(sr, consent_scenarios_suite());
	srunner_add_suite(sr, consent_core_suite());
	srunner_add_suite(sr, slow_clients_suite());
	srunner_add_suite(sr, secrets_suite());
	srunner_add_suite(sr, log_suite());
	srunner_add_suite(sr, audit_suite());
	srunner_add_suite(sr, staff_auth_suite());
	srunner_add_suite(sr, ctl_users_suite());
	srunner_add_suite(sr, browser_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
