/*
 * config: a table of known keys drives both parsing and validation, so the example
 * config, the parser and the error messages cannot drift apart in what they accept.
 * libinih calls the handler per key; the handler records the first failure (section,
 * key, reason) and returns 0, and ini_parse returns that key's line number.
 */
#include "dualreg/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dualreg/calendar.h"
#include "dualreg/net_ranges.h"
#include "dualreg/xalloc.h"

enum cfg_kind {
	CFG_LISTEN,
	CFG_STRING,
	CFG_OPTSTRING, /* may be empty: NULL */
	CFG_UINT,
	CFG_DURATION,
	CFG_SIZE,
	CFG_LOGLEVEL,
	CFG_BOOL,
	CFG_SCHEDULE,
	CFG_CLOCK, /* "HH:MM" into minutes after midnight */
};

struct cfg_key {
	const char *section;
	const char *name;
	enum cfg_kind kind;
	size_t offset;
	unsigned long min, max; /* for numbers, durations (ms) and sizes (bytes) */
	const char *def;        /* the default, written as in a config file */
	bool restart;           /* only a restart applies a change (SIGHUP keeps the old) */
};

/* Every key: its default and whether SIGHUP may change it live, next to its bounds. */
#define OFF(f) offsetof(struct config, f)
#define LIVE false
#define RESTART true
static const struct cfg_key cfg_keys[] = {
    {"server", "listen", CFG_LISTEN, 0, 0, 0, "127.0.0.1:8080", RESTART},
    {"server", "max_body_size", CFG_SIZE, OFF(max_body_size), 1024, 64ul << 20, "1M", RESTART},
    {"server", "max_header_size", CFG_SIZE, OFF(max_header_size), 1024, 1ul << 20, "8K",
     RESTART},
    {"server", "request_timeout", CFG_DURATION, OFF(request_timeout_ms), 100, 600000, "30s",
     LIVE},
    {"server", "drain_timeout", CFG_DURATION, OFF(drain_timeout_ms), 0, 600000, "10s", LIVE},
    {"server", "max_requests", CFG_UINT, OFF(max_requests), 1, 100000, "1024", LIVE},
    {"server", "max_connections", CFG_UINT, OFF(max_connections), 1, 1000000, "4096", LIVE},
    {"server", "read_timeout", CFG_DURATION, OFF(read_timeout_ms), 100, 600000, "10s", LIVE},
    {"database", "url", CFG_STRING, OFF(database_url), 0, 0, "dbname=dualreg", RESTART},
    {"database", "pool_size", CFG_UINT, OFF(pool_size), 1, 64, "4", RESTART},
    {"database", "connect_timeout", CFG_DURATION, OFF(connect_timeout_ms), 100, 120000, "5s",
     RESTART},
    {"log", "level", CFG_LOGLEVEL, OFF(log_level), 0, 0, "info", LIVE},
    {"log", "access", CFG_BOOL, OFF(log_access), 0, 1, "true", LIVE},
    {"limits", "rate", CFG_UINT, OFF(rate_per_second), 1, 1000000, "50", LIVE},
    {"limits", "burst", CFG_UINT, OFF(rate_burst), 1, 1000000, "200", LIVE},
    {"limits", "key_cache_ttl", CFG_DURATION, OFF(key_cache_ttl_ms), 0, 3600000, "10s", LIVE},
    {"limits", "auth_failure_rate", CFG_UINT, OFF(auth_failure_rate), 1, 1000000, "2", LIVE},
    {"limits", "auth_failure_burst", CFG_UINT, OFF(auth_failure_burst), 1, 1000000, "20",
     LIVE},
    {"limits", "trusted_proxies", CFG_OPTSTRING, OFF(trusted_proxies), 0, 0, "", LIVE},
    {"limits", "max_waits", CFG_UINT, OFF(max_waits_per_key), 1, 100000, "8", LIVE},
    {"webhooks", "timeout", CFG_DURATION, OFF(webhook_timeout_ms), 100, 300000, "15s", LIVE},
    {"webhooks", "retry_schedule", CFG_SCHEDULE, OFF(webhook_schedule_ms), 10, 7 * 86400000ul,
     "5s, 30s, 2m, 10m, 30m, 1h, 3h, 6h, 12h, 24h", LIVE},
    {"webhooks", "max_in_flight", CFG_UINT, OFF(webhook_max_in_flight), 1, 10000, "64", LIVE},
    {"webhooks", "per_subscription", CFG_UINT, OFF(webhook_per_subscription), 1, 1000, "4",
     LIVE},
    {"webhooks", "allow_http", CFG_BOOL, OFF(webhook_allow_http), 0, 1, "false", LIVE},
    {"webhooks", "allow_private", CFG_BOOL, OFF(webhook_allow_private), 0, 1, "false", LIVE},
    {"outbound", "ca_file", CFG_OPTSTRING, OFF(outbound_ca_file), 0, 0, "", LIVE},
    {"outbound", "proxy", CFG_OPTSTRING, OFF(outbound_proxy), 0, 0, "", LIVE},
    {"pull", "timeout", CFG_DURATION, OFF(pull_timeout_ms), 100, 300000, "30s", LIVE},
    {"pull", "max_page_size", CFG_SIZE, OFF(pull_max_page), 1024, 64ul << 20, "8M", LIVE},
    {"pull", "max_concurrent", CFG_UINT, OFF(pull_max_concurrent), 1, 256, "4", LIVE},
    {"pull", "allow_http", CFG_BOOL, OFF(pull_allow_http), 0, 1, "false", LIVE},
    {"pull", "allow_private", CFG_BOOL, OFF(pull_allow_private), 0, 1, "false", LIVE},
    {"secrets", "key_file", CFG_OPTSTRING, OFF(secrets_key_file), 0, 0, "", LIVE},
    {"web", "public_url", CFG_STRING, OFF(web_public_url), 0, 0, "http://127.0.0.1:8080",
     LIVE},
    {"web", "tls", CFG_BOOL, OFF(web_tls), 0, 1, "false", LIVE},
    {"web", "session_idle", CFG_DURATION, OFF(web_session_idle_ms), 1000, 86400000, "30m",
     LIVE},
    {"web", "session_max", CFG_DURATION, OFF(web_session_max_ms), 1000, 7 * 86400000ul, "12h",
     LIVE},
    {"web", "setup_ttl", CFG_DURATION, OFF(web_setup_ttl_ms), 60000, 30 * 86400000ul, "72h",
     LIVE},
    {"jobs", "derive_at", CFG_CLOCK, OFF(derive_at_min), 0, 0, "00:05", LIVE},
    {"metrics", "token", CFG_OPTSTRING, OFF(metrics_token), 0, 0, "", LIVE},
    {"audit", "max_pending", CFG_UINT, OFF(audit_max_pending), 10, 10000000, "50000", RESTART},
    {"alerts", "missing_grace", CFG_DURATION, OFF(alert_missing_grace_ms), 0, 86400000, "30m",
     LIVE},
    {"alerts", "check_interval", CFG_DURATION, OFF(alert_check_interval_ms), 100, 3600000, "1m",
     LIVE},
    {"registrations", "request_ttl", CFG_DURATION, OFF(registration_request_ttl_ms), 60000,
     45 * 86400000ul, "14d", LIVE},
    {"registrations", "max_backdate", CFG_DURATION, OFF(registration_max_backdate_ms), 0,
     45 * 86400000ul, "30d", LIVE},
};
#undef LIVE
#undef RESTART
#undef OFF

struct cfg_parse {
	struct config *cfg;
	char why[512]; /* first failure, without the line number */
	bool failed;
	int line;        /* line being parsed (counted by cfg_read_line) */
	int failed_line; /* where the first failure was */
	/* the source: a file or a string */
	FILE *file;
	const char *text;
	bool too_long;
};

static int apply_key(struct config *cfg, const struct cfg_key *k, const char *value, char *err,
		     size_t errlen);

void cfg_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < sizeof cfg_keys / sizeof cfg_keys[0]; i++) {
		char err[400];
		/* The defaults pass the same parser and bounds as a file (a unit test holds
		 * them to it); one that did not would be a defect in this table. */
		if (apply_key(cfg, &cfg_keys[i], cfg_keys[i].def, err, sizeof err) != 0)
			abort();
	}
}

/* Whether key k has different values in a and b. */
static bool key_differs(const struct cfg_key *k, const struct config *a, const struct config *b)
{
	const char *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;
	switch (k->kind) {
	case CFG_LISTEN:
		return strcmp(a->listen_host, b->listen_host) != 0 || a->listen_port != b->listen_port;
	case CFG_STRING:
	case CFG_OPTSTRING: {
		const char *sx = *(char *const *)x, *sy = *(char *const *)y;
		return (sx == NULL) != (sy == NULL) || (sx != NULL && strcmp(sx, sy) != 0);
	}
	case CFG_UINT:
	case CFG_DURATION:
	case CFG_CLOCK:
		return *(const unsigned *)x != *(const unsigned *)y;
	case CFG_SIZE:
		return *(const size_t *)x != *(const size_t *)y;
	case CFG_BOOL:
		return *(const bool *)x != *(const bool *)y;
	case CFG_LOGLEVEL:
		return *(const enum log_level *)x != *(const enum log_level *)y;
	case CFG_SCHEDULE:
		return a->webhook_schedule_len != b->webhook_schedule_len ||
		       memcmp(a->webhook_schedule_ms, b->webhook_schedule_ms,
			      a->webhook_schedule_len * sizeof a->webhook_schedule_ms[0]) != 0;
	}
	return true;
}

/* Appends "[section] key" to a bounded, comma-separated list. */
static void name_key(const struct cfg_key *k, int nth, char *list, size_t len, size_t *used)
{
	int w = snprintf(list + *used, len - *used, "%s[%s] %s", nth > 0 ? ", " : "", k->section,
			 k->name);
	if (w > 0 && (size_t)w < len - *used)
		*used += (size_t)w;
}

int cfg_differences(const struct config *a, const struct config *b, char *names, size_t len)
{
	int n = 0;
	size_t used = 0;
	names[0] = '\0';
	for (size_t i = 0; i < sizeof cfg_keys / sizeof cfg_keys[0]; i++)
		if (key_differs(&cfg_keys[i], a, b))
			name_key(&cfg_keys[i], n++, names, len, &used);
	return n;
}

int cfg_keep_restart_only(struct config *next, struct config *running, char *changed,
			  size_t len)
{
	int n = 0;
	size_t used = 0;
	changed[0] = '\0';
	for (size_t i = 0; i < sizeof cfg_keys / sizeof cfg_keys[0]; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		if (!k->restart)
			continue;
		if (key_differs(k, next, running))
			name_key(k, n++, changed, len, &used);
		char *a = (char *)next + k->offset, *b = (char *)running + k->offset;
		switch (k->kind) {
		case CFG_LISTEN:
			memcpy(next->listen_host, running->listen_host, sizeof next->listen_host);
			next->listen_port = running->listen_port;
			break;
		case CFG_STRING: {
			/* Swapped, not copied: the running value (which others may point to)
			 * stays in use, and the caller frees the other with its config. */
			char **x = (char **)a, **y = (char **)b, *t = *x;
			*x = *y;
			*y = t;
			break;
		}
		case CFG_UINT:
		case CFG_DURATION:
			*(unsigned *)a = *(unsigned *)b;
			break;
		case CFG_SIZE:
			*(size_t *)a = *(size_t *)b;
			break;
		default:
			abort(); /* no key of another kind is restart-only */
		}
	}
	return n;
}

void cfg_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->database_url);
	cfg->database_url = NULL;
	free(cfg->outbound_ca_file);
	cfg->outbound_ca_file = NULL;
	free(cfg->outbound_proxy);
	cfg->outbound_proxy = NULL;
	free(cfg->trusted_proxies);
	cfg->trusted_proxies = NULL;
	free(cfg->secrets_key_file);
	cfg->secrets_key_file = NULL;
	free(cfg->web_public_url);
	cfg->web_public_url = NULL;
	free(cfg->metrics_token);
	cfg->metrics_token = NULL;
}

int cfg_parse_listen(const char *text, char *host, size_t hostlen, uint16_t *port,
		     char *err, size_t errlen)
{
	const char *colon;
	const char *h = text;
	size_t hl;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "expected [IPv6]:port, got \"%s\"", text);
			return -1;
		}
		h = text + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "expected host:port, got \"%s\"", text);
			return -1;
		}
		hl = (size_t)(colon - text);
	}
	if (hl == 0 || hl >= hostlen) {
		snprintf(err, errlen, "bad host in \"%s\"", text);
		return -1;
	}
	char *end;
	errno = 0;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || p > 65535) {
		snprintf(err, errlen, "bad port in \"%s\" (0-65535)", text);
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int cfg_parse_duration_ms(const char *text, unsigned *out_ms, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	double mult = 1000.0; /* a bare number is seconds */

	/* strtod also reads "nan" and "inf": NaN passes every range check below and then
	 * converts to an integer with undefined behaviour, so only finite numbers count. */
	if (end == text || errno != 0 || !isfinite(v) || v < 0) {
		snprintf(err, errlen, "expected a duration such as 30s, 500ms or 2m, got \"%s\"",
			 text);
		return -1;
	}
	if (strcmp(end, "ms") == 0)
		mult = 1.0;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		mult = 1000.0;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mult = 60000.0;
	else if (strcmp(end, "h") == 0)
		mult = 3600000.0;
	else if (strcmp(end, "d") == 0)
		mult = 86400000.0;
	else {
		snprintf(err, errlen, "unknown duration unit \"%s\" (use ms, s, m, h or d)", end);
		return -1;
	}
	double ms = v * mult;
	if (ms > 4.0e9) {
		snprintf(err, errlen, "duration \"%s\" is too long", text);
		return -1;
	}
	*out_ms = (unsigned)(ms + 0.5);
	return 0;
}

int cfg_parse_size(const char *text, size_t *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	unsigned long long mult = 1;

	if (end == text || errno != 0 || text[0] == '-') {
		snprintf(err, errlen, "expected a size such as 1M or 64K, got \"%s\"", text);
		return -1;
	}
	if (*end == '\0' || strcasecmp(end, "B") == 0)
		mult = 1;
	else if (strcasecmp(end, "K") == 0 || strcasecmp(end, "KiB") == 0)
		mult = 1ull << 10;
	else if (strcasecmp(end, "M") == 0 || strcasecmp(end, "MiB") == 0)
		mult = 1ull << 20;
	else if (strcasecmp(end, "G") == 0 || strcasecmp(end, "GiB") == 0)
		mult = 1ull << 30;
	else {
		snprintf(err, errlen, "unknown size unit \"%s\" (use K, M or G)", end);
		return -1;
	}
	if (v > (1ull << 40) / mult) {
		snprintf(err, errlen, "size \"%s\" is too large", text);
		return -1;
	}
	*out = (size_t)(v * mult);
	return 0;
}

int cfg_parse_schedule(const char *text, unsigned *ms, unsigned max, unsigned *len, char *err,
		       size_t errlen)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s", text);
	unsigned n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		size_t tl = strlen(tok);
		while (tl > 0 && tok[tl - 1] == ' ')
			tok[--tl] = '\0';
		if (n == max) {
			snprintf(err, errlen, "at most %u delays", max);
			return -1;
		}
		if (cfg_parse_duration_ms(tok, &ms[n], err, errlen) != 0)
			return -1;
		n++;
	}
	if (n == 0) {
		snprintf(err, errlen, "expected a list of delays such as 5s, 30s, 2m");
		return -1;
	}
	*len = n;
	return 0;
}

static int parse_uint(const char *text, unsigned long *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (text[0] == '\0' || text[0] == '-' || *end != '\0' || errno != 0) {
		snprintf(err, errlen, "expected a whole number, got \"%s\"", text);
		return -1;
	}
	*out = v;
	return 0;
}

/* Parses and bounds-checks one value into cfg. */
static int apply_key(struct config *cfg, const struct cfg_key *k, const char *value, char *err,
		     size_t errlen)
{
	char *base = (char *)cfg;
	unsigned long n = 0;

	switch (k->kind) {
	case CFG_LISTEN:
		return cfg_parse_listen(value, cfg->listen_host, sizeof cfg->listen_host,
					&cfg->listen_port, err, errlen);
	case CFG_STRING: {
		char **slot = (char **)(base + k->offset);
		if (value[0] == '\0') {
			snprintf(err, errlen, "must not be empty");
			return -1;
		}
		free(*slot);
		*slot = xstrdup(value);
		return 0;
	}
	case CFG_OPTSTRING: {
		char **slot = (char **)(base + k->offset);
		struct net_ranges ranges;
		if (k->offset == offsetof(struct config, trusted_proxies) &&
		    net_ranges_parse(value, &ranges, err, errlen) != 0)
			return -1;
		free(*slot);
		*slot = value[0] != '\0' ? xstrdup(value) : NULL;
		return 0;
	}
	case CFG_BOOL: {
		bool *b = (bool *)(base + k->offset);
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "1") == 0)
			*b = true;
		else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
			 strcmp(value, "0") == 0)
			*b = false;
		else {
			snprintf(err, errlen, "expected true or false, got \"%s\"", value);
			return -1;
		}
		return 0;
	}
	case CFG_SCHEDULE: {
		unsigned *ms = (unsigned *)(base + k->offset);
		unsigned tmp[CFG_SCHEDULE_MAX], len;
		if (cfg_parse_schedule(value, tmp, CFG_SCHEDULE_MAX, &len, err, errlen) != 0)
			return -1;
		for (unsigned i = 0; i < len; i++) {
			if (tmp[i] < k->min || tmp[i] > k->max) {
				snprintf(err, errlen, "delay %u of \"%s\" is out of range (%lums to %lums)",
					 i + 1, value, k->min, k->max);
				return -1;
			}
		}
		memcpy(ms, tmp, len * sizeof *tmp);
		cfg->webhook_schedule_len = len; /* the only schedule key */
		return 0;
	}
	case CFG_UINT:
		if (parse_uint(value, &n, err, errlen) != 0)
			return -1;
		break;
	case CFG_DURATION: {
		unsigned ms;
		if (cfg_parse_duration_ms(value, &ms, err, errlen) != 0)
			return -1;
		n = ms;
		break;
	}
	case CFG_SIZE: {
		size_t sz;
		if (cfg_parse_size(value, &sz, err, errlen) != 0)
			return -1;
		n = sz;
		break;
	}
	case CFG_LOGLEVEL:
		if (log_level_parse(value, (enum log_level *)(base + k->offset)) != 0) {
			snprintf(err, errlen, "expected error, warn, info or debug, got \"%s\"",
				 value);
			return -1;
		}
		return 0;
	case CFG_CLOCK: {
		int m = cal_parse_hhmm(value);
		if (m < 0) {
			snprintf(err, errlen, "expected a time of day HH:MM (00:00 to 23:59), got \"%s\"",
				 value);
			return -1;
		}
		*(unsigned *)(base + k->offset) = (unsigned)m;
		return 0;
	}
	}
	if (n < k->min || n > k->max) {
		if (k->kind == CFG_DURATION)
			snprintf(err, errlen, "\"%s\" is out of range (%lums to %lums)", value,
				 k->min, k->max);
		else
			snprintf(err, errlen, "\"%s\" is out of range (%lu to %lu)", value, k->min,
				 k->max);
		return -1;
	}
	if (k->kind == CFG_SIZE)
		*(size_t *)(base + k->offset) = (size_t)n;
	else
		*(unsigned *)(base + k->offset) = (unsigned)n;
	return 0;
}

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_parse *p = user;
	char why[400];

	if (p->failed)
		return 1; /* keep only the first failure */
	p->failed_line = p->line;
	for (size_t i = 0; i < sizeof cfg_keys / sizeof cfg_keys[0]; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		if (strcmp(k->section, section) != 0 || strcmp(k->name, name) != 0)
			continue;
		if (apply_key(p->cfg, k, value, why, sizeof why) == 0)
			return 1;
		snprintf(p->why, sizeof p->why, "[%s] %s: %s", section, name, why);
		p->failed = true;
		return 0;
	}
	if (section[0] == '\0')
		snprintf(p->why, sizeof p->why, "%s: key outside any [section]", name);
	else if (strcmp(section, "outbound") == 0 &&
		 (strcmp(name, "allow_http") == 0 || strcmp(name, "allow_private") == 0))
		/* one switch for webhooks and feeds alike let a school's private feed open
		 * private addresses to every school's webhooks; there are two now */
		snprintf(p->why, sizeof p->why,
			 "[outbound] %s: moved; set [webhooks] %s and/or [pull] %s", name, name,
			 name);
	else
		snprintf(p->why, sizeof p->why, "[%s] %s: unknown key", section, name);
	p->failed = true;
	return 0;
}

/* Applies DUALREG_* environment overrides after the file. */
static int apply_env(struct config *cfg, char *err, size_t errlen)
{
	static const struct {
		const char *env, *section, *key;
	} env_keys[] = {
	    {"DUALREG_DATABASE_URL", "database", "url"},
	    {"DUALREG_LISTEN", "server", "listen"},
	    {"DUALREG_LOG_LEVEL", "log", "level"},
	};
	char why[400];

	for (size_t e = 0; e < sizeof env_keys / sizeof env_keys[0]; e++) {
		const char *v = getenv(env_keys[e].env);
		if (v == NULL || v[0] == '\0')
			continue;
		for (size_t i = 0; i < sizeof cfg_keys / sizeof cfg_keys[0]; i++) {
			const struct cfg_key *k = &cfg_keys[i];
			if (strcmp(k->section, env_keys[e].section) != 0 ||
			    strcmp(k->name, env_keys[e].key) != 0)
				continue;
			if (apply_key(cfg, k, v, why, sizeof why) != 0) {
				snprintf(err, errlen, "environment %s: %s", env_keys[e].env, why);
				return -1;
			}
		}
	}
	return 0;
}

/*
 * inih's line reader. Counting lines here tells the handler which line it is on, so a
 * bad value and a syntax error elsewhere are told apart. A line longer than inih's
 * buffer stops parsing with an error instead of being split into two silent halves.
 */
static char *cfg_read_line(char *buf, int size, void *stream)
{
	struct cfg_parse *p = stream;
	size_t n = 0;
	if (p->file != NULL) {
		if (fgets(buf, size, p->file) == NULL)
			return NULL;
		n = strlen(buf);
	} else {
		if (*p->text == '\0')
			return NULL;
		size_t len = strcspn(p->text, "\n");
		size_t take = len + (p->text[len] == '\n');
		if (take > (size_t)size - 1)
			take = (size_t)size - 1;
		memcpy(buf, p->text, take);
		buf[take] = '\0';
		p->text += take;
		n = take;
	}
	p->line++;
	bool at_eof = p->file != NULL ? feof(p->file) : *p->text == '\0';
	if (n == (size_t)size - 1 && buf[n - 1] != '\n' && !at_eof) {
		p->too_long = true;
		return NULL;
	}
	return buf;
}

static int finish(struct config *cfg, const char *name, int rc, struct cfg_parse *p, char *err,
		  size_t errlen)
{
	if (p->too_long) {
		snprintf(err, errlen, "%s:%d: line too long (at most %d characters)", name,
			 p->line, INI_MAX_LINE - 2);
	} else if (rc > 0 && p->failed && p->failed_line == rc) {
		snprintf(err, errlen, "%s:%d: %s", name, rc, p->why);
	} else if (rc > 0) {
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
			 name, rc);
	} else if (rc < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", name, rc == -1 ? strerror(errno) :
			 "out of memory");
	} else if (apply_env(cfg, err, errlen) == 0) {
		return 0;
	}
	cfg_free(cfg);
	return -1;
}

int cfg_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct cfg_parse p = {.cfg = cfg};
	int rc = 0;
	const char *name = path != NULL ? path : CFG_DEFAULT_PATH;

	cfg_defaults(cfg);
	p.file = fopen(name, "r");
	if (p.file == NULL) {
		if (path != NULL || errno != ENOENT) {
			snprintf(err, errlen, "%s: cannot open: %s", name, strerror(errno));
			cfg_free(cfg);
			return -1;
		}
	} else {
		rc = ini_parse_stream(cfg_read_line, &p, cfg_ini_handler, &p);
		if (rc == 0 && ferror(p.file))
			rc = -1;
		fclose(p.file);
	}
	return finish(cfg, name, rc, &p, err, errlen);
}

int cfg_load_string(struct config *cfg, const char *name, const char *text, char *err,
		    size_t errlen)
{
	struct cfg_parse p = {.cfg = cfg, .text = text};

	cfg_defaults(cfg);
	int rc = ini_parse_stream(cfg_read_line, &p, cfg_ini_handler, &p);
	return finish(cfg, name, rc, &p, err, errlen);
}
