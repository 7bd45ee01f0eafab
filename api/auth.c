/*
 * auth: the authenticate, authorize and rate-limit stages (see auth.h): bearer-token
 * authentication with a small in-memory cache, the route's access level, and per-key
 * rate limiting.
 *
 * Why a cache: looking a key up costs a database round trip, and most requests (status
 * polls) are otherwise answered without one. Entries live [limits] key_cache_ttl
 * (configurable, reloadable), which bounds how long a revoked key keeps working.
 * Unknown tokens are not cached, so a new key works at once.
 *
 * The rate limit is a token bucket per key id (rate/s, burst), in this process's
 * memory: with several daemons behind a balancer each enforces it separately.
 * Both tables are fixed-size open-addressing hash tables; when one fills up it is
 * cleared, which costs at most one extra lookup per active key.
 */
#include "auth.h"

#include <event2/http.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dualreg/api.h"
#include "dualreg/auth_token.h"
#include "dualreg/config.h"
#include "dualreg/metrics.h"
#include "request.h"

#define TABLE_SIZE 4096 /* power of two */

struct key_entry {
	char hash[AUTH_HASH_HEX]; /* "" when empty */
	double fetched;           /* monotonic seconds */
	struct api_key key;
};

struct bucket {
	long long key_id; /* 0 when empty */
	double tokens;
	double updated;
};

static struct key_entry keys[TABLE_SIZE];
static unsigned nkeys;
static struct bucket buckets[TABLE_SIZE];
static unsigned nbuckets;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned slot_of_hash(const char *hash)
{
	unsigned h = 0;
	for (int i = 0; i < 8; i++)
		h = h * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
	return h & (TABLE_SIZE - 1);
}

static struct key_entry *key_find(const char *hash)
{
	for (unsigned i = slot_of_hash(hash), n = 0; n < TABLE_SIZE; i = (i + 1) & (TABLE_SIZE - 1), n++) {
		if (keys[i].hash[0] == '\0')
			return NULL;
		if (strcmp(keys[i].hash, hash) == 0)
			return &keys[i];
	}
	return NULL;
}

static void key_store(const char *hash, const struct api_key *k)
{
	struct key_entry *e = key_find(hash);
	if (e == NULL) {
		if (nkeys >= TABLE_SIZE / 2) {
			memset(keys, 0, sizeof keys);
			nkeys = 0;
		}
		unsigned i = slot_of_hash(hash);
		while (keys[i].hash[0] != '\0')
			i = (i + 1) & (TABLE_SIZE - 1);
		e = &keys[i];
		memcpy(e->hash, hash, AUTH_HASH_HEX);
		nkeys++;
	}
	e->key = *k;
	e->fetched = now_s();
}

/* ---- authenticate, authorize ---- */

static void unauthorized(struct api_req *r, const char *detail)
{
	api_set_header(r, "WWW-Authenticate", "Bearer realm=\"dualreg\"");
	api_reply_error(r, 401, NULL, "%s", detail);
}

static void lookup_done(struct api_req *r, PGresult *res)
{
	struct req *q = req_of(r);
	void (*next)(struct api_req *) = q->auth_next;
	q->auth_next = NULL;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		return;
	}
	if (PQntuples(res) == 0) {
		unauthorized(r, "unknown or revoked API key");
		return;
	}
	struct api_key k = {0};
	k.id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	snprintf(k.name, sizeof k.name, "%s", PQgetvalue(res, 0, 1));
	k.admin = strcmp(PQgetvalue(res, 0, 2), "admin") == 0;
	snprintf(k.urn, sizeof k.urn, "%s", PQgetvalue(res, 0, 3));
	key_store(q->auth_hash, &k);
	r->key = k;
	next(r);
}

void auth_authenticate(struct api_req *r, void (*next)(struct api_req *r))
{
	const char *h = api_header(r, "Authorization");
	if (h == NULL) {
		unauthorized(r, "missing Authorization: Bearer <API key>");
		return;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		unauthorized(r, "the Authorization header must be: Bearer <API key>");
		return;
	}
	const char *token = h + 7;
	while (*token == ' ')
		token++;
	if (strlen(token) != AUTH_TOKEN_LEN || strncmp(token, AUTH_TOKEN_PREFIX, 4) != 0) {
		unauthorized(r, "malformed API key");
		return;
	}
	char hash[AUTH_HASH_HEX];
	auth_token_hash(token, hash);
	struct key_entry *e = key_find(hash);
	if (e != NULL && now_s() - e->fetched < r->env->cfg->key_cache_ttl_ms / 1000.0) {
		r->key = e->key;
		next(r);
		return;
	}
	struct req *q = req_of(r);
	q->auth_next = next;
	memcpy(q->auth_hash, hash, sizeof hash);
	const char *params[] = {q->auth_hash};
	api_query(r,
		  "SELECT id, name, role, coalesce(urn, '') FROM api_keys "
		  "WHERE token_hash = $1 AND revoked_at IS NULL",
		  1, params, lookup_done);
}

void auth_authorize(struct api_req *r, void (*next)(struct api_req *r))
{
	if (r->route->access == ROUTE_ADMIN && !r->key.admin) {
		api_reply_error(r, 403, NULL, "this operation needs an admin key");
		return;
	}
	next(r);
}

/* ---- rate-limit ---- */

/* Takes one token from the key's bucket; false with the wait in *retry_s if empty. */
static bool bucket_take(long long key_id, double rate, double burst, double *retry_s)
{
	unsigned i = (unsigned)(key_id * 2654435761u) & (TABLE_SIZE - 1);
	while (buckets[i].key_id != 0 && buckets[i].key_id != key_id)
		i = (i + 1) & (TABLE_SIZE - 1);
	struct bucket *b = &buckets[i];
	double t = now_s();
	if (b->key_id == 0) {
		if (nbuckets >= TABLE_SIZE / 2) {
			memset(buckets, 0, sizeof buckets);
			nbuckets = 0;
			return bucket_take(key_id, rate, burst, retry_s);
		}
		b->key_id = key_id;
		b->tokens = burst;
		b->updated = t;
		nbuckets++;
	}
	b->tokens = fmin(burst, b->tokens + (t - b->updated) * rate);
	b->updated = t;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return true;
	}
	*retry_s = (1.0 - b->tokens) / rate;
	return false;
}

void auth_rate_limit(struct api_req *r, void (*next)(struct api_req *r))
{
	const struct config *cfg = r->env->cfg;
	double retry;
	if (!bucket_take(r->key.id, cfg->rate_per_second, cfg->rate_burst, &retry)) {
		char secs[16];
		snprintf(secs, sizeof secs, "%d", (int)ceil(retry));
		api_set_header(r, "Retry-After", secs);
		metrics_rate_limited();
		api_reply_error(r, 429, NULL,
				"rate limit of %u requests per second (burst %u) exceeded for "
				"this key",
				cfg->rate_per_second, cfg->rate_burst);
		return;
	}
	next(r);
}

const char *api_key_scope(const struct api_req *r)
{
	return r->key.admin ? NULL : r->key.urn;
}
