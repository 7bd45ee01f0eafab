/*
 * dualregd: the daemon. Loads the configuration, builds the event loop and everything on
 * it (database pool, HTTP server, signal handlers, systemd notifications), runs it, and
 * tears it down in reverse order so that a clean exit frees everything it allocated.
 *
 * Signals: SIGTERM/SIGINT drain (stop accepting, let requests in progress finish, bounded
 * by drain_timeout) and exit 0; a second one exits at once. SIGHUP reloads the config
 * file. The database may be down at start: the pool keeps reconnecting and /readyz says so.
 */
#include <curl/curl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "dualreg/api.h"
#include "dualreg/config.h"
#include "dualreg/db.h"
#include "dualreg/httpc.h"
#include "dualreg/jobs.h"
#include "dualreg/alerts.h"
#include "dualreg/audit.h"
#include "dualreg/listen.h"
#include "dualreg/log.h"
#include "dualreg/outbox.h"
#include "dualreg/pull.h"
#include "dualreg/secret_box.h"
#include "dualreg/status_cache.h"
#include "dualreg/version.h"
#include "dualreg/workers.h"
#include "dualreg/xalloc.h"
#include "../api/handlers.h" /* the web app's files (web_static_load) */

struct daemon {
	struct event_base *base;
	struct config cfg;
	const char *config_path;
	struct db_pool *db;
	struct evdns_base *dns;
	struct httpc *http;
	struct outbox *outbox;
	struct puller *puller;
	struct db_listener *listener; /* wakes change-feed long polls */
	struct db_listener *key_listener; /* drops cached API keys when a key changes */
	struct status_cache *status_cache;
	struct api_env env;
	struct api_server *api;
	struct idem_purger *idem_purger;
	struct jobs *jobs;
	struct alerts *alerts;
	struct audit *audit;
	struct workers *workers;
	struct event *ev_term, *ev_int, *ev_hup;
	struct event *ev_drain_deadline;
	struct event *ev_watchdog;
	bool stopping;
	bool api_drained, outbox_drained, pull_drained, audit_flushing;
};

/* The webhook dispatcher's options from the [webhooks] configuration. */
static struct outbox_opts outbox_opts_from(const struct config *cfg)
{
	struct outbox_opts o = {
	    .timeout_ms = cfg->webhook_timeout_ms,
	    .max_in_flight = cfg->webhook_max_in_flight,
	    .per_subscription = cfg->webhook_per_subscription,
	    .poll_ms = 1000,
	    .schedule_len = cfg->webhook_schedule_len,
	    .max_retry_after_s = 86400,
	    .allow_http = cfg->webhook_allow_http,
	    .allow_private = cfg->webhook_allow_private,
	    .ca_file = cfg->outbound_ca_file,
	};
	memcpy(o.schedule_ms, cfg->webhook_schedule_ms, sizeof o.schedule_ms);
	return o;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: dualregd [-c FILE] [-t] [-V]\n"
		     "  -c FILE  configuration file (default " CFG_DEFAULT_PATH ")\n"
		     "  -t       check the configuration and exit\n"
		     "  -V       print the version and exit\n");
}

/* Exits the loop once both the API and the webhook dispatcher have finished. */
static void audit_flushed_cb(void *arg)
{
	struct daemon *d = arg;
	log_info("drained", "");
	event_base_loopexit(d->base, NULL);
}

/* Once requests, deliveries and feed reads are done, the last access records are
 * written, then the loop ends. */
static void maybe_exit(struct daemon *d)
{
	if (d->api_drained && d->outbox_drained && d->pull_drained && !d->audit_flushing) {
		d->audit_flushing = true;
		audit_flush(d->audit, audit_flushed_cb, d);
	}
}

static void drained_cb(void *arg)
{
	struct daemon *d = arg;
	d->api_drained = true;
	maybe_exit(d);
}

static void outbox_drained_cb(void *arg)
{
	struct daemon *d = arg;
	d->outbox_drained = true;
	maybe_exit(d);
}

static void pull_drained_cb(void *arg)
{
	struct daemon *d = arg;
	d->pull_drained = true;
	maybe_exit(d);
}

static void drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct daemon *d = arg;
	log_warn("drain timeout: abandoning requests in progress", "inflight=%u",
		 api_server_inflight(d->api));
	event_base_loopexit(d->base, NULL);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct daemon *d = arg;
	if (d->stopping) {
		log_warn("second stop signal: exiting now", "signal=%d", (int)sig);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = true;
	log_info("stopping", "signal=%d inflight=%u", (int)sig, api_server_inflight(d->api));
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	unsigned ms = d->cfg.drain_timeout_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	d->ev_drain_deadline = evtimer_new(d->base, drain_deadline_cb, d);
	evtimer_add(d->ev_drain_deadline, &tv);
	api_server_drain(d->api, drained_cb, d);
	outbox_drain(d->outbox, outbox_drained_cb, d);
	puller_drain(d->puller, pull_drained_cb, d);
	dbl_stop(d->listener); /* long polls answer now */
	dbl_stop(d->key_listener);
}

/* Re-reads the config file; applies what can change at runtime, warns about the rest. */
static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct daemon *d = arg;
	struct config next;
	char err[600];
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)now.tv_sec * 1000000ull + (unsigned long long)now.tv_nsec / 1000);
	if (cfg_load(&next, d->config_path, err, sizeof err) != 0) {
		log_error("reload rejected, keeping the running configuration", "err=\"%s\"", err);
		sd_notify(0, "READY=1");
		return;
	}
	/* Everything reloadable comes from the new file; what only a restart can change
	 * stays as it is running. */
	char changed[256];
	if (cfg_keep_restart_only(&next, &d->cfg, changed, sizeof changed) > 0)
		log_warn("reload: these settings change only at a restart", "keys=\"%s\"", changed);
	struct config old = d->cfg;
	d->cfg = next;
	cfg_free(&old);
	/* [secrets] key_file is read again; a file that does not load keeps the keys in use. */
	if (d->cfg.secrets_key_file != NULL) {
		struct secret_box *keys = secret_box_load(d->cfg.secrets_key_file, err, sizeof err);
		if (keys == NULL)
			log_error("reload: secrets key file not loaded, keeping the keys in use",
				  "err=\"%s\"", err);
		else
			log_info("secrets key file loaded", "keys=%zu current=%s",
				 secret_box_key_count(keys), secret_box_key_id(keys, 0));
		if (keys != NULL)
			secret_box_install(keys);
	} else if (secret_box_installed() != NULL) {
		secret_box_install(NULL);
		log_warn("reload: no [secrets] key_file: new webhook secrets and feed tokens are "
			 "stored unencrypted, and encrypted ones cannot be read",
			 "");
	}
	struct outbox_opts oo = outbox_opts_from(&d->cfg);
	outbox_configure(d->outbox, &oo);
	httpc_set_proxy(d->http, d->cfg.outbound_proxy);
	jobs_reschedule(d->jobs);
	alerts_reschedule(d->alerts);
	log_set_level(d->cfg.log_level);
	log_info("reloaded", "log_level=%s", log_level_name(d->cfg.log_level));
	sd_notify(0, "READY=1");
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
}

static int run(struct daemon *d)
{
	char err[600];
	char setup[160];

	d->base = event_base_new();
	if (d->base == NULL) {
		log_error("cannot create the event loop", "");
		return 1;
	}
	/* The request deadline fires first and closes the connection; a backend waiting on
	 * a lock would not notice, so the server ends the statement itself a little later. */
	unsigned st = d->cfg.request_timeout_ms + 1000;
	snprintf(setup, sizeof setup, "SET statement_timeout = %u; SET TIME ZONE 'UTC'", st);
	struct db_pool_opts popts = {
	    .conninfo = d->cfg.database_url,
	    .size = d->cfg.pool_size,
	    .connect_timeout_ms = d->cfg.connect_timeout_ms,
	    /* A backstop: a request's own deadline fires first and cancels its work. */
	    .wait_timeout_ms = d->cfg.request_timeout_ms + 1000,
	    .max_waiters = d->cfg.max_requests,
	    .setup_sql = setup,
	};
	d->db = dbp_new(d->base, &popts);
	/* Reads /etc/resolv.conf and /etc/hosts once, before the loop runs. */
	d->dns = evdns_base_new(d->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (d->dns == NULL) {
		log_error("cannot set up name resolution", "");
		return 1;
	}
	d->http = httpc_new(d->base, d->cfg.webhook_max_in_flight, d->cfg.webhook_per_subscription);
	httpc_set_proxy(d->http, d->cfg.outbound_proxy); /* none unless [outbound] proxy */
	struct outbox_opts oo = outbox_opts_from(&d->cfg);
	d->outbox = outbox_new(d->base, d->db, d->http, &oo);
	d->puller = puller_new(d->base, d->db, d->http, &d->cfg);
	d->listener = dbl_new(d->base, d->cfg.database_url, d->cfg.connect_timeout_ms,
			      "dualreg_events");
	d->key_listener = dbl_new(d->base, d->cfg.database_url, d->cfg.connect_timeout_ms,
				  API_KEYS_CHANNEL);
	d->status_cache = status_cache_new(d->listener);
	d->audit = audit_new(d->base, d->db, d->cfg.audit_max_pending);
	outbox_set_audit(d->outbox, d->audit);
	/* Password hashing for the web app's sign-in: off the loop. */
	d->workers = workers_new(d->base, WORKERS_DEFAULT_THREADS, WORKERS_DEFAULT_QUEUE);
	if (d->workers == NULL) {
		log_error("cannot start the worker threads", "");
		return 1;
	}
	d->env = (struct api_env){.base = d->base,
				  .db = d->db,
				  .cfg = &d->cfg,
				  .dns = d->dns,
				  .listener = d->listener,
				  .status_cache = d->status_cache,
				  .outbox = d->outbox,
				  .audit = d->audit,
				  .workers = d->workers};
	d->idem_purger = idem_purger_start(d->base, d->db);
	/* Read once, here: serving them never touches the disk. */
	if (web_static_load(NULL, err, sizeof err) != 0) {
		log_error("cannot load the web app's files", "err=\"%s\"", err);
		return 1;
	}
	d->api = api_server_new(&d->env, err, sizeof err);
	if (d->api == NULL) {
		log_error("cannot start the HTTP server", "err=\"%s\"", err);
		return 1;
	}
	d->jobs = jobs_new(d->base, d->db, &d->cfg);
	d->alerts = alerts_new(d->base, d->db, &d->cfg);
	dbl_start(d->listener);
	outbox_listen(d->outbox, d->listener);
	dbl_start(d->key_listener);
	api_key_cache_follow(d->key_listener);
	d->ev_term = evsignal_new(d->base, SIGTERM, stop_cb, d);
	d->ev_int = evsignal_new(d->base, SIGINT, stop_cb, d);
	d->ev_hup = evsignal_new(d->base, SIGHUP, reload_cb, d);
	event_add(d->ev_term, NULL);
	event_add(d->ev_int, NULL);
	event_add(d->ev_hup, NULL);

	uint64_t wd_usec = 0;
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		/* Pinged from the loop itself: a stuck loop stops the pings. */
		struct timeval tv = {(time_t)(wd_usec / 2 / 1000000), (suseconds_t)(wd_usec / 2 % 1000000)};
		d->ev_watchdog = event_new(d->base, -1, EV_PERSIST, watchdog_cb, d);
		event_add(d->ev_watchdog, &tv);
	}

	log_info("listening", "addr=%s:%u version=%s schema=%d", d->cfg.listen_host,
		 api_server_port(d->api), DUALREG_VERSION, DUALREG_SCHEMA_VERSION);
	sd_notifyf(0, "READY=1\nSTATUS=listening on %s:%u", d->cfg.listen_host,
		   api_server_port(d->api));
	event_base_dispatch(d->base);
	log_info("stopped", "");
	return 0;
}

static void teardown(struct daemon *d)
{
	api_server_free(d->api);
	workers_free(d->workers); /* after the requests that wait for its jobs */
	web_static_free();
	outbox_free(d->outbox);
	puller_free(d->puller);
	httpc_free(d->http);
	if (d->dns != NULL)
		evdns_base_free(d->dns, 0);
	idem_purger_stop(d->idem_purger);
	jobs_free(d->jobs);
	alerts_free(d->alerts);
	status_cache_free(d->status_cache);
	audit_free(d->audit);
	dbl_free(d->listener);
	api_key_cache_unfollow();
	dbl_free(d->key_listener);
	dbp_free(d->db);
	struct event **evs[] = {&d->ev_term, &d->ev_int, &d->ev_hup, &d->ev_drain_deadline,
				&d->ev_watchdog};
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
		if (*evs[i] != NULL)
			event_free(*evs[i]);
		*evs[i] = NULL;
	}
	if (d->base != NULL)
		event_base_free(d->base);
	cfg_free(&d->cfg);
	libevent_global_shutdown();
}

int main(int argc, char **argv)
{
	struct daemon d = {0};
	bool check_only = false;
	char err[600];
	int opt;

	xalloc_json_hooks();
	while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
		switch (opt) {
		case 'c':
			d.config_path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			printf("dualregd %s (schema %d)\n", DUALREG_VERSION, DUALREG_SCHEMA_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init();
	log_route_libevent();
	if (cfg_load(&d.cfg, d.config_path, err, sizeof err) != 0) {
		fprintf(stderr, "dualregd: %s\n", err);
		return 2;
	}
	log_set_level(d.cfg.log_level);
	struct secret_box *keys = NULL;
	if (d.cfg.secrets_key_file != NULL &&
	    (keys = secret_box_load(d.cfg.secrets_key_file, err, sizeof err)) == NULL) {
		fprintf(stderr, "dualregd: [secrets] key_file: %s\n", err);
		cfg_free(&d.cfg);
		return 2;
	}
	if (check_only) {
		secret_box_free(keys);
		printf("dualregd: configuration OK\n");
		cfg_free(&d.cfg);
		return 0;
	}
	secret_box_install(keys);
	if (keys == NULL)
		log_warn("no [secrets] key_file: webhook secrets and feed tokens are stored "
			 "unencrypted",
			 "");
	else
		log_info("secrets key file loaded", "keys=%zu current=%s",
			 secret_box_key_count(keys), secret_box_key_id(keys, 0));
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	int rc = run(&d);
	teardown(&d);
	secret_box_install(NULL);
	curl_global_cleanup();
	return rc;
}
