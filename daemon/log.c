/*
 * log: formats one event per line and writes it to stderr with a single write(2), so
 * lines from concurrent processes sharing a journal stream never interleave mid-line.
 * Lines are bounded (LOG_LINE_MAX); longer field text is truncated with "...".
 *
 * The fields format is read here conversion by conversion (log_fields_vformat), so
 * that every string value is escaped in one place, whoever the caller is: a value
 * cannot close its quotes, start another field or end the line.
 */
#include "dualreg/log.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

/* A bounded output buffer; full is set once something did not fit. */
struct out {
	char *buf;
	size_t cap, n;
	bool full;
};

static void put(struct out *o, const char *s, size_t len)
{
	if (o->full)
		return;
	if (len > o->cap - 1 - o->n) {
		len = o->cap - 1 - o->n;
		o->full = true;
	}
	memcpy(o->buf + o->n, s, len);
	o->n += len;
	o->buf[o->n] = '\0';
}

/* True when an unquoted value must be quoted to stay one value. */
static bool needs_quotes(const char *s, size_t len)
{
	if (len == 0)
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
			return true;
	}
	return false;
}

/* Writes len bytes of s escaped for the inside of a quoted logfmt value. An escape
 * sequence is written whole or not at all. */
static void put_escaped(struct out *o, const char *s, size_t len)
{
	for (size_t i = 0; i < len && !o->full; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		size_t elen = 2;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				snprintf(esc, sizeof esc, "\\x%02x", c);
				elen = 4;
			} else {
				esc[0] = (char)c;
				elen = 1;
			}
		}
		if (elen > o->cap - 1 - o->n) {
			o->full = true;
			return;
		}
		put(o, esc, elen);
	}
}

/* One string value: escaped inside the caller's quotes, or quoted when it has none
 * and needs them. */
static void put_value(struct out *o, const char *s, size_t len, bool quoted)
{
	if (quoted) {
		put_escaped(o, s, len);
		return;
	}
	if (!needs_quotes(s, len)) {
		put(o, s, len);
		return;
	}
	put(o, "\"", 1);
	put_escaped(o, s, len);
	put(o, "\"", 1);
}

size_t log_fields_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
	struct out o = {buf, cap, 0, false};
	if (cap == 0)
		return 0;
	buf[0] = '\0';
	const char *p = fmt;
	while (*p != '\0' && !o.full) {
		if (*p != '%') {
			size_t lit = strcspn(p, "%");
			put(&o, p, lit);
			p += lit;
			continue;
		}
		const char *start = p++;
		if (*p == '%') {
			put(&o, "%", 1);
			p++;
			continue;
		}
		/* flags, width, precision, length, conversion; '*' taken from the arguments */
		char spec[32];
		size_t sn = 0;
		spec[sn++] = '%';
		while (*p != '\0' && strchr("-+ #0", *p) != NULL && sn < 8)
			spec[sn++] = *p++;
		int width = -1, prec = -1;
		if (*p == '*') {
			width = va_arg(ap, int);
			p++;
		} else {
			while (*p >= '0' && *p <= '9' && sn < 16)
				spec[sn++] = *p++;
		}
		if (*p == '.') {
			p++;
			if (*p == '*') {
				prec = va_arg(ap, int);
				p++;
			} else {
				prec = 0;
				while (*p >= '0' && *p <= '9')
					prec = prec * 10 + (*p++ - '0');
			}
			if (prec < 0)
				prec = -1;
		}
		char len[3] = "";
		if (*p == 'h' || *p == 'l') {
			len[0] = *p++;
			if (*p == len[0])
				len[1] = *p++;
		} else if (*p == 'z' || *p == 'j' || *p == 't' || *p == 'L') {
			len[0] = *p++;
		}
		char conv = *p != '\0' ? *p++ : '\0';
		if (width >= 0)
			sn += (size_t)snprintf(spec + sn, sizeof spec - sn, "%d", width);
		if (prec >= 0)
			sn += (size_t)snprintf(spec + sn, sizeof spec - sn, ".%d", prec);
		snprintf(spec + sn, sizeof spec - sn, "%s%c", len, conv);
		char num[128];
		int w = -1;
		switch (conv) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (s == NULL)
				s = "(null)";
			size_t slen = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
			/* quoted by the format itself: "...%s..." */
			bool quoted = start > fmt && start[-1] == '"' && *p == '"';
			put_value(&o, s, slen, quoted);
			continue;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);
			put_value(&o, &c, 1, start > fmt && start[-1] == '"' && *p == '"');
			continue;
		}
		case 'd': case 'i': case 'u': case 'x': case 'X': case 'o':
			if (strcmp(len, "ll") == 0)
				w = snprintf(num, sizeof num, spec, va_arg(ap, long long));
			else if (strcmp(len, "l") == 0)
				w = snprintf(num, sizeof num, spec, va_arg(ap, long));
			else if (strcmp(len, "z") == 0)
				w = snprintf(num, sizeof num, spec, va_arg(ap, size_t));
			else if (strcmp(len, "j") == 0)
				w = snprintf(num, sizeof num, spec, va_arg(ap, intmax_t));
			else if (strcmp(len, "t") == 0)
				w = snprintf(num, sizeof num, spec, va_arg(ap, ptrdiff_t));
			else
				w = snprintf(num, sizeof num, spec, va_arg(ap, int));
			break;
		case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': case 'a': case 'A':
			if (strcmp(len, "L") == 0)
				w = snprintf(num, sizeof num, spec, va_arg(ap, long double));
			else
				w = snprintf(num, sizeof num, spec, va_arg(ap, double));
			break;
		case 'p':
			w = snprintf(num, sizeof num, "%p", va_arg(ap, void *));
			break;
		default:
			/* %n or something unknown: the rest of the format cannot be trusted */
			put(&o, "?", 1);
			return o.n;
		}
		if (w > 0)
			put(&o, num, (size_t)w < sizeof num ? (size_t)w : sizeof num - 1);
	}
	return o.n;
}

size_t log_fields_format(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t n = log_fields_vformat(buf, cap, fmt, ap);
	va_end(ap);
	return n;
}

void log_write(enum log_level level, const char *msg, const char *fields, ...)
{
	char line[LOG_LINE_MAX];
	struct out o = {line, sizeof line - 1, 0, false}; /* room for the newline */
	line[0] = '\0';

	if (log_journal) {
		put(&o, journal_prio[level], strlen(journal_prio[level]));
	} else {
		struct timeval tv;
		struct tm tm;
		char ts[48];
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		size_t tn = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + tn, sizeof ts - tn, ".%03dZ ", (int)(tv.tv_usec / 1000));
		put(&o, ts, strlen(ts));
	}
	put(&o, "level=", 6);
	put(&o, level_names[level], strlen(level_names[level]));
	put(&o, " msg=\"", 6);
	put_escaped(&o, msg, strlen(msg));
	put(&o, "\"", 1);
	size_t n = o.n;
	if (fields[0] != '\0' && !o.full && n + 2 < o.cap) {
		line[n++] = ' ';
		va_list ap;
		va_start(ap, fields);
		size_t room = o.cap - n;
		size_t m = log_fields_vformat(line + n, room, fields, ap);
		va_end(ap);
		o.full = m + 1 >= room;
		n += m;
	}
	if (o.full && n >= 3)
		memcpy(line + n - 3, "...", 3);
	/* The values are escaped; this only guards a format's own literal text. */
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)line[i] < 0x20)
			line[i] = ' ';
	}
	line[n++] = '\n';
	ssize_t off = 0;
	while (off < (ssize_t)n) {
		ssize_t wr = write(STDERR_FILENO, line + off, n - (size_t)off);
		if (wr <= 0)
			break;
		off += wr;
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
