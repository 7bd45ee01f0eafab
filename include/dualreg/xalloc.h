/*
 * xalloc: allocation that cannot return NULL. Running out of memory is not a condition
 * the daemon can serve requests through, so every allocation goes through here and an
 * exhausted heap ends the process with a log line (systemd restarts it).
 */
#ifndef DUALREG_XALLOC_H
#define DUALREG_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t count, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
/* Makes cJSON allocate through xmalloc too; call once at start-up. */
void xalloc_json_hooks(void);
/* printf into a fresh allocation. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), returns_nonnull));

#endif
