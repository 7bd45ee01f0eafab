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
Suite *sign_suite(void);
Suite *httpc_suite(void);
Suite *outbox_suite(void);
Suite *webhooks_suite(void);
Suite *outbound_suite(void); /* where deliveries and feed pulls may connect */
Suite *alerts_suite(void);
Suite *pull_suite(void);
Suite *tls_suite(void);
Suite *unit_suite(void);
Suite *metrics_suite(void);
Suite *domain_suite(void);
Suite *failover_suite(void);
Suite *ctl_sync_suite(void);
Suite *sync_health_suite(void);
/* platform: authentication, Idempotency-Key, dualregctl */
Suite *auth_suite(void);
Suite *auth_abuse_suite(void); /* unknown tokens, failures per address, revocation */
Suite *web_session_suite(void); /* the web app's set-up, sign-in and cookie on /v1 */
Suite *idempotency_unit_suite(void);
Suite *idempotency_suite(void); /* needs POST /v1/schools; see check_idempotency.c */
Suite *ctl_suite(void);
Suite *ctl_ops_suite(void);
Suite *ctl_help_suite(void);
Suite *registry_suite(void);
/* the registry suite's registration tests (check_registry_registrations.c) */
void registry_registration_tests(TCase *tc);
/* marks and the derive job */
Suite *marks_suite(void);
/* the marks suite's history, concurrency and derive tests (check_marks_history.c) */
void marks_history_tests(TCase *tc);
void marks_derive_tests(Suite *s);
Suite *marks_rules_suite(void); /* the rule engine's rules in SQL; its lists vs the contract */
Suite *jobs_suite(void);
Suite *reads_suite(void);
Suite *changes_suite(void); /* the change feed, on the reads fixture */
Suite *alerts_read_suite(void); /* GET /v1/alerts, on the reads fixture */
Suite *integrity_suite(void);   /* references kept by foreign keys and statement triggers */
Suite *listen_suite(void);
Suite *longpoll_suite(void); /* the change feed's long polls under load, targeted wake-ups */
Suite *fuzz_regressions_suite(void); /* the defects of the fuzzing run of 2026-11-28 */
Suite *fuzz_corpus_suite(void); /* tests/fuzz/corpus replayed through the harnesses */
Suite *consent_matrix_suite(void); /* every key against every pupil-data route, by phase */
Suite *consent_scenarios_suite(void); /* the named cases on the same placement */
Suite *consent_core_suite(void); /* requests, decisions, expiry, no oracles */
Suite *slow_clients_suite(void); /* read deadline and connection cap of the listener */
/* secrets at rest: the integration tests, and secret_box's unit tests (check_secret_box.c) */
Suite *secrets_suite(void);
void secret_box_tests(Suite *s);
Suite *log_suite(void);   /* log lines: every value escaped */
Suite *audit_suite(void); /* the access audit: every read recorded, none lost */
Suite *browser_suite(void); /* the web app: its files served, its pages in chromium */
Suite *staff_auth_suite(void); /* staff credentials (staff_auth.h) and the worker pool */
Suite *ctl_users_suite(void);  /* dualregctl user add|list|disable|reset */

#endif
