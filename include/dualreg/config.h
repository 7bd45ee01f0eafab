/*
 * config: the daemon's and dualregctl's settings. Owns the INI schema (sections, keys,
 * defaults, bounds), parsing with libinih, environment overrides and validation.
 * A config either loads completely or not at all: the first bad key is reported as
 * "FILE:LINE: [section] key: why" and the caller exits 2, never half-configured.
 */
#ifndef DUALREG_CONFIG_H
#define DUALREG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dualreg/log.h"

#define CFG_DEFAULT_PATH "/etc/dualreg/dualreg.conf"
#define CFG_SCHEDULE_MAX 16

struct config {
	/* [server] */
	char listen_host[256];  /* numeric IPv4/IPv6 address or host name */
	uint16_t listen_port;
	size_t max_body_size;   /* bytes */
	size_t max_header_size; /* bytes */
	unsigned request_timeout_ms;
	unsigned drain_timeout_ms;
	unsigned max_requests; /* requests in progress at once */
	unsigned max_connections; /* open client connections at once */
	unsigned read_timeout_ms; /* a whole request (line, headers, body) must arrive in this */
	/* [database] */
	char *database_url; /* libpq conninfo or URI; owned */
	unsigned pool_size;
	unsigned connect_timeout_ms;
	/* [log] */
	enum log_level log_level;
	bool log_access; /* one info line per request */
	/* [limits] per API key: a token bucket */
	unsigned rate_per_second;
	unsigned rate_burst;
	unsigned auth_failure_rate;  /* failed authentications per second per client address */
	unsigned auth_failure_burst; /* ... and in a burst */
	char *trusted_proxies;       /* addresses whose X-Forwarded-For is believed; owned */
	unsigned max_waits_per_key;  /* long polls (wait=) in progress per API key */
	/* [webhooks] */
	unsigned webhook_timeout_ms;
	unsigned webhook_schedule_ms[CFG_SCHEDULE_MAX]; /* retry delays after attempt 1, 2... */
	unsigned webhook_schedule_len;
	unsigned webhook_max_in_flight;
	unsigned webhook_per_subscription;
	bool webhook_allow_http;    /* plain http endpoints (tests, trusted networks) */
	bool webhook_allow_private; /* loopback/private/link-local endpoints */
	/* [outbound] webhook endpoints and pulled feeds alike */
	char *outbound_ca_file; /* NULL: the system trust store; owned */
	char *outbound_proxy;   /* NULL: no proxy (the environment's *_proxy are ignored) */
	/* [pull] MIS feeds */
	unsigned pull_timeout_ms;     /* one page request */
	size_t pull_max_page;         /* bytes; a larger page is an error */
	unsigned pull_max_concurrent; /* feeds read at once by this daemon */
	bool pull_allow_http;         /* plain http feeds */
	bool pull_allow_private;      /* feeds at private addresses, for every school */
	/* [secrets] */
	char *secrets_key_file; /* keys that encrypt webhook secrets and pull tokens; owned */
	/* [web] the staff web app */
	char *web_public_url;          /* where staff reach the daemon (set-up links); owned */
	bool web_tls;                  /* served over TLS (a proxy): session cookies Secure */
	unsigned web_session_idle_ms;  /* a session unused this long ends */
	unsigned web_session_max_ms;   /* a session ends this long after sign-in, used or not */
	unsigned web_setup_ttl_ms;     /* a one-time set-up link is valid this long */
	unsigned key_cache_ttl_ms; /* how long a looked-up API key is trusted */
	/* [alerts] */
	unsigned alert_missing_grace_ms;  /* after register close, before attendance.missing */
	unsigned alert_check_interval_ms; /* how often missing marks are looked for */
	/* [registrations] (the durations' bound, 45 days, keeps them within unsigned ms) */
	unsigned registration_request_ttl_ms;  /* a request awaits the other school this long */
	unsigned registration_max_backdate_ms; /* a school's main registration starts at most
						  this long before today (whole days count) */
	/* [metrics] */
	char *metrics_token; /* a bearer token for scrapers instead of an admin key; owned */
	/* [audit] */
	unsigned audit_max_pending; /* access records held for the database before pupil reads
				       are refused (503) */
	/* [jobs] */
	unsigned derive_at_min; /* daily derived-D run: minutes after midnight, London time */
};

/* Fills every key with its default. Allocates; release with cfg_free. */
void cfg_defaults(struct config *cfg);

/*
 * Loads defaults, then the file at path (when path is NULL: CFG_DEFAULT_PATH if it
 * exists), then DUALREG_DATABASE_URL, DUALREG_LISTEN and DUALREG_LOG_LEVEL.
 * On failure returns -1 with a one-line message in err and leaves cfg freed.
 */
int cfg_load(struct config *cfg, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Same rules as cfg_load on an in-memory INI text (name is used in messages). */
int cfg_load_string(struct config *cfg, const char *name, const char *text, char *err,
		    size_t errlen) __attribute__((warn_unused_result));

void cfg_free(struct config *cfg);
/*
 * For a reload: every restart-only key (listen address, database, pool, size limits)
 * whose value in next differs from running is named in changed ("[section] key, ...",
 * bounded) and gets its running value back in next. Returns how many differed. The
 * running config keeps what next had instead; free it with cfg_free as before.
 */
int cfg_keep_restart_only(struct config *next, struct config *running, char *changed,
			  size_t len);
/* How many keys differ between a and b; their names go to names as above. */
int cfg_differences(const struct config *a, const struct config *b, char *names, size_t len);

/* Value parsers shared with the environment overrides; 0 or -1 with why in err. */
int cfg_parse_listen(const char *text, char *host, size_t hostlen, uint16_t *port,
		     char *err, size_t errlen);
int cfg_parse_duration_ms(const char *text, unsigned *out_ms, char *err, size_t errlen);
int cfg_parse_size(const char *text, size_t *out, char *err, size_t errlen);
/* "5s, 30s, 2m" into up to max durations; *len is how many. */
int cfg_parse_schedule(const char *text, unsigned *ms, unsigned max, unsigned *len, char *err,
		       size_t errlen);

#endif
