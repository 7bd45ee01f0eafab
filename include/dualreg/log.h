/*
 * log: one line per event on stderr. Owns the level filter and the line format:
 *   2026-11-25T09:15:02.123Z level=info msg="listening" addr=127.0.0.1:8080
 * Under systemd (JOURNAL_STREAM set) the timestamp is left to journald and each line
 * starts with its syslog priority (<3>, <4>, <6>, <7>) instead.
 * The macros test the level before any formatting happens. Fields are a printf-style
 * format of "key=value" text whose string values (%s, %.*s, %c) are logfmt-escaped
 * wherever they come from: inside the format's quotes (key="%s") a value has its quotes,
 * backslashes and control characters escaped (\", \\, \n, \r, \t, \xHH); without
 * quotes (key=%s) a value that is empty or holds a space, quote, '=', backslash or
 * control character is quoted and escaped. So a value can neither forge a field nor
 * start a line; pass each value through a conversion, never as format text.
 */
#ifndef DUALREG_LOG_H
#define DUALREG_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_current_level;

void log_init(void);
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 for anything else. */
int log_level_parse(const char *text, enum log_level *out);
const char *log_level_name(enum log_level level);
/* Routes libevent's internal warnings and errors into this log. */
void log_route_libevent(void);

/* Formats fields as log_write does (values escaped) into buf (NUL-terminated, bounded
 * by cap); returns the length written. */
size_t log_fields_format(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t log_fields_vformat(char *buf, size_t cap, const char *fmt, va_list ap);

void log_write(enum log_level level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(level, msg, ...)                                           \
	do {                                                              \
		if (log_current_level >= (level))                         \
			log_write((level), (msg), "" __VA_ARGS__);        \
	} while (0)
#define log_error(msg, ...) LOG_AT(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...) LOG_AT(LOG_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...) LOG_AT(LOG_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...) LOG_AT(LOG_DEBUG, msg, __VA_ARGS__)

#endif
