/*
 * log: formats one event per line and writes it to stderr with a single write(2), so
 * lines from concurrent processes sharing a journal stream never interleave mid-line.
 * Lines are bounded (LOG_LINE_MAX); longer field text is truncated with "...".
 */
#include "dualreg/log.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

enum log_level log_current_level = LOG_INFO;
static bool log_journal;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const journal_prio[] = {"<3>", "<4>", "<6>", "<7>"};

void log_init(void)
{
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level level)
{
	log_current_level = level;
}

int log_level_parse(const char *text, enum log_level *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return level_names[level];
}

void log_write(enum log_level level, const char *msg, const char *fields, ...)
{
	char line[LOG_LINE_MAX];
	size_t n = 0;

	if (log_journal) {
		n = (size_t)snprintf(line, sizeof line, "%slevel=%s msg=\"%s\"",
				     journal_prio[level], level_names[level], msg);
	} else {
		struct timeval tv;
		struct tm tm;
		char ts[32];
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
		n = (size_t)snprintf(line, sizeof line, "%s.%03dZ level=%s msg=\"%s\"", ts,
				     (int)(tv.tv_usec / 1000), level_names[level], msg);
	}
	if (n >= sizeof line)
		n = sizeof line - 1;
	if (fields[0] != '\0' && n + 2 < sizeof line) {
		va_list ap;
		line[n++] = ' ';
		va_start(ap, fields);
		int m = vsnprintf(line + n, sizeof line - n, fields, ap);
		va_end(ap);
		if (m < 0)
			m = 0;
		if ((size_t)m >= sizeof line - n) {
			n = sizeof line - 1;
			memcpy(line + n - 3, "...", 3);
		} else {
			n += (size_t)m;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)line[i] < 0x20)
			line[i] = ' ';
	}
	line[n++] = '\n';
	ssize_t off = 0;
	while (off < (ssize_t)n) {
		ssize_t w = write(STDERR_FILENO, line + off, n - (size_t)off);
		if (w <= 0)
			break;
		off += w;
	}
}

static void libevent_log_cb(int severity, const char *text)
{
	switch (severity) {
	case EVENT_LOG_DEBUG:
		log_debug("libevent", "detail=\"%s\"", text);
		break;
	case EVENT_LOG_MSG:
		log_info("libevent", "detail=\"%s\"", text);
		break;
	case EVENT_LOG_WARN:
		log_warn("libevent", "detail=\"%s\"", text);
		break;
	default:
		log_error("libevent", "detail=\"%s\"", text);
		break;
	}
}

void log_route_libevent(void)
{
	event_set_log_callback(libevent_log_cb);
}
