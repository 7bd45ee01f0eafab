/*
 * status_cache: recent GET /v1/pupils/{upn}/status bodies kept in memory, so that the
 * home schools' frequent polls cost no database round trip.
 *
 * Validity: an entry is served only while nothing could have changed it. Every event
 * committed anywhere (any daemon) notifies the database listener, whose generation then
 * moves on; every write request this daemon answers moves the cache's own epoch (so a
 * client reads its own write even before the notification arrives). An entry is stored
 * with the generation and epoch taken before its query was sent, and served only while
 * both are unchanged and the listener is connected (while it is not, changes could go
 * unseen, so nothing is served from memory).
 *
 * Fixed size, 4-way set associative: a key hashes to a set of four slots, and a new
 * entry takes an empty slot or the set's least recently used one. Bounded memory:
 * STATUS_CACHE_SLOTS bodies of at most STATUS_CACHE_BODY_MAX bytes.
 */
#ifndef DUALREG_STATUS_CACHE_H
#define DUALREG_STATUS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db_listener;
struct status_cache;

#define STATUS_CACHE_SLOTS 8192
#define STATUS_CACHE_BODY_MAX 4096
#define STATUS_CACHE_KEY_MAX 48

/* The point in time a query is made at; take it before sending the query. */
struct status_stamp {
	uint64_t generation;
	uint64_t epoch;
	bool usable; /* false while changes cannot be seen (listener down) */
};

struct status_cache *status_cache_new(struct db_listener *listener);
void status_cache_free(struct status_cache *c);
struct status_stamp status_cache_stamp(const struct status_cache *c);
/* Forgets everything (this daemon answered a write). */
void status_cache_invalidate(struct status_cache *c);
/* The cached body and ETag for key if still valid, else false. */
bool status_cache_get(struct status_cache *c, const char *key, const char **body,
		      const char **etag);
/* Keeps body and etag for key as of stamp (ignored if too large or stamp unusable). */
void status_cache_put(struct status_cache *c, const char *key, struct status_stamp stamp,
		      const char *body, const char *etag);

#endif
