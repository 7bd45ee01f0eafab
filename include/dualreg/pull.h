/*
 * pull: reads the feeds of schools whose MIS cannot push. Every second it claims the
 * feeds that are due (leases in PostgreSQL, so several daemons share the work), GETs
 * {pull_url}?since=<cursor> with the school's bearer token, checks the page
 * ({marks: [...], next_cursor, has_more, next?}), and applies it with
 * dualreg_pull_apply: the same rules and transaction as POST /v1/marks, as that school,
 * source 'pull', with the new cursor saved in that transaction. Pages are followed while
 * has_more says so (at most PULL_MAX_PAGES per run). A non-200 answer, a page that is
 * not such JSON, an oversize page, or a `next` URL on another host is an error, never
 * data: the feed backs off and the error is kept for the school's status.
 */
#ifndef DUALREG_PULL_H
#define DUALREG_PULL_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct db_pool;
struct httpc;
struct config;
struct puller;

#define PULL_MAX_PAGES 50
#define PULL_MAX_ITEMS 1000 /* marks per page, as a POST */

/* A page of a feed, as pull_check_page read it. */
struct pull_page {
	char *marks;       /* the marks list as JSON text, each mark given the school's urn */
	char *next_cursor; /* NULL: none */
	char *next_url;    /* the `next` URL; NULL: none */
	bool more;         /* has_more */
};

/*
 * Checks a page (body: len bytes) of the feed at base_url, of school urn: JSON of that
 * shape, all of it UTF-8 and without \u0000 (which would cut a string short), so that
 * nothing reaches the database altered. NULL with the page in *out (release it with
 * pull_page_free), or why the page is refused (a static text; *out is then empty).
 */
const char *pull_check_page(const char *body, size_t len, const char *base_url,
			    const char *urn, struct pull_page *out);
void pull_page_free(struct pull_page *pg);

struct puller *puller_new(struct event_base *base, struct db_pool *db, struct httpc *http,
			  const struct config *cfg);
/* Stops claiming; done(arg) runs once no feed is being read. */
void puller_drain(struct puller *p, void (*done)(void *arg), void *arg);
/* Abandons runs in flight (their leases expire). Accepts NULL. */
void puller_free(struct puller *p);

#endif
