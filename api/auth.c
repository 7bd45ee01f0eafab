/*
 * auth: the authenticate, authorize and rate-limit stages (see auth.h): bearer-token
 * authentication with small in-memory caches, a limit on failed authentications per
 * client address, the route's access level, and per-key rate limiting.
 *
 * Why caches: looking a key up costs a database round trip, and most requests (status
 * polls) are otherwise answered without one. A key found is kept for [limits]
 * key_cache_ttl; so is a token found to name no key (the negative cache), so that a
 * client repeating an unknown or revoked token costs no query either. A malformed
 * token (not "drk_" and 43 base64url characters) never reaches the database.
 *
 * Why the caches stay true: every change to api_keys (a revocation, a new or deleted
 * key) notifies the channel dualreg_keys (sql/functions/15_keys.sql). The daemon's key
 * listener (api_key_cache_follow) counts notifications and reconnections; an entry is
 * trusted only while that count is the one it was looked up at, so a revocation takes
 * effect on the next request, and a lookup that was in flight when it arrived is not
 * cached. The listener's waiter also empties both caches. While the listener is
 * disconnected, key_cache_ttl bounds how long an entry is trusted; its reconnection
 * invalidates every entry, as notifications may have been lost.
 *
 * A request without Authorization that carries the staff web app's session cookie is
 * authenticated by its session instead (web_session.h).
 *
 * Failed authentications (a malformed, unknown or revoked token, or another scheme
 * than Bearer; a request with no Authorization at all is no attempt and not counted;
 * the web app's failed sign-ins, through auth_failure_charge)
 * are limited per client address: a token bucket of [limits] auth_failure_burst refilled at
 * auth_failure_rate per second, charged by each failure. An address whose bucket is
 * empty is answered 429 before its token is even looked at, whatever the token: a
 * valid key from that address waits too, which keeps the check ahead of any lookup and
 * gives someone guessing keys nothing to learn. Lookups in the database are bounded by
 * the same bucket: an address may have only as many tokens being looked up at once as
 * failures it has left, so that concurrent guesses cost at most a burst of queries;
 * a request beyond that waits (parked, in arrival order) until one of its address's
 * lookups ends, rather than being refused, so a client holding many keys (an MIS
 * provider serving many schools from one address, right after the key caches were
 * emptied) is served, a burst at a time. Only a lookup that names no key is charged,
 * and only the first of concurrent lookups of one token counts: a client sending many
 * requests at once with its key is not mistaken for a guesser.
 *
 * The client address is client_addr.h's: the peer's, or behind [limits] trusted_proxies
 * the client X-Forwarded-For names; IPv6 clients by their /64.
 *
 * The per-key rate limit is a token bucket per key id (rate/s, burst). All buckets are
 * in this process's memory: with several daemons behind a balancer each enforces them
 * separately. The caches and the address table are set-associative (a slot in a set of
 * eight, the oldest entry replaced when the set is full); the key-id table is an
 * open-addressing table cleared when it fills up, which costs at most one extra lookup
 * per active key.
 */
#include "auth.h"

#include <sys/queue.h> /* before libevent's headers, which define TAILQ_* otherwise */

#include <arpa/inet.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dualreg/api.h"
#include "dualreg/auth_token.h"
#include "dualreg/config.h"
#include "dualreg/listen.h"
#include "dualreg/log.h"
#include "dualreg/metrics.h"
#include "dualreg/xalloc.h"
#include "client_addr.h"
#include "request.h"
#include "web_session.h"

#define WAYS 8            /* slots per set of the set-associative tables */
#define KNOWN_SETS 128    /* 1024 keys found */
#define UNKNOWN_SETS 512  /* 4096 tokens that name no key */
#define ADDR_SETS 512     /* 4096 client addresses */
#define TABLE_SIZE 4096   /* per-key rate-limit buckets; a power of two */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the key caches ---- */

struct key_entry {
	char hash[AUTH_HASH_HEX]; /* "" when empty */
	double fetched;           /* monotonic seconds */
	uint64_t gen;             /* the key listener's generation it was looked up at */
	struct api_key key;       /* in the table of keys found */
};

struct key_table {
	struct key_entry *e;
	unsigned nsets;
};

static struct key_entry known_e[KNOWN_SETS * WAYS], unknown_e[UNKNOWN_SETS * WAYS];
static struct key_table known = {known_e, KNOWN_SETS}, unknown = {unknown_e, UNKNOWN_SETS};

static struct db_listener *keys_listener; /* NULL: entries live key_cache_ttl */
static struct dbl_waiter keys_waiter;

static uint64_t keys_gen(void)
{
	return keys_listener != NULL ? dbl_generation(keys_listener) : 0;
}

/* The first slot of hash's set (the hash is hex SHA-256: its digits are uniform). */
static struct key_entry *set_of_hash(const struct key_table *t, const char *hash)
{
	unsigned h = 0;
	for (int i = 0; i < 8; i++)
		h = h * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
	return &t->e[(h % t->nsets) * WAYS];
}

/* The entry for hash if it is there and may still be trusted. */
static struct key_entry *cache_find(const struct key_table *t, const char *hash,
				    const struct config *cfg)
{
	struct key_entry *set = set_of_hash(t, hash);
	for (int i = 0; i < WAYS; i++) {
		struct key_entry *e = &set[i];
		if (strcmp(e->hash, hash) != 0)
			continue;
		if (now_s() - e->fetched < cfg->key_cache_ttl_ms / 1000.0 && e->gen == keys_gen())
			return e;
		return NULL;
	}
	return NULL;
}

/* The slot for hash: its own, an empty one, or the oldest of its set. */
static struct key_entry *cache_slot(const struct key_table *t, const char *hash)
{
	struct key_entry *set = set_of_hash(t, hash), *victim = &set[0];
	for (int i = 0; i < WAYS; i++) {
		struct key_entry *e = &set[i];
		if (strcmp(e->hash, hash) == 0 || e->hash[0] == '\0')
			return e;
		if (e->fetched < victim->fetched)
			victim = e;
	}
	return victim;
}

static void cache_store(const struct key_table *t, const char *hash, uint64_t gen,
			const struct api_key *k)
{
	struct key_entry *e = cache_slot(t, hash);
	memcpy(e->hash, hash, AUTH_HASH_HEX);
	e->fetched = now_s();
	e->gen = gen;
	e->key = k != NULL ? *k : (struct api_key){0};
}

static void caches_clear(void)
{
	memset(known_e, 0, sizeof known_e);
	memset(unknown_e, 0, sizeof unknown_e);
}

static void keys_changed(struct dbl_waiter *w)
{
	caches_clear();
	log_debug("API key cache dropped", "generation=%llu",
		  (unsigned long long)dbl_generation(keys_listener));
	dbl_wait(keys_listener, w, dbl_generation(keys_listener)); /* false once stopped */
}

void api_key_cache_follow(struct db_listener *listener)
{
	api_key_cache_unfollow();
	caches_clear();
	keys_listener = listener;
	keys_waiter.wake = keys_changed;
	dbl_wait(listener, &keys_waiter, dbl_generation(listener));
}

void api_key_cache_unfollow(void)
{
	if (keys_listener != NULL)
		dbl_cancel(keys_listener, &keys_waiter);
	keys_listener = NULL;
}

/* ---- failed authentications per client address ---- */

struct addr_bucket {
	unsigned char addr[16];
	bool used;
	bool warned; /* logged since it was last full */
	double tokens;
	double updated;
	unsigned pending; /* lookups in flight (the first of each token) */
};

static struct addr_bucket addrs[ADDR_SETS * WAYS];
static uint32_t addr_seed;

static struct addr_bucket *addr_set(const unsigned char a[16])
{
	if (addr_seed == 0)
		addr_seed = (uint32_t)random() | 1u;
	uint32_t h = 2166136261u ^ addr_seed;
	for (int i = 0; i < 16; i++)
		h = (h ^ a[i]) * 16777619u;
	return &addrs[(h % ADDR_SETS) * WAYS];
}

static void bucket_refill(struct addr_bucket *b, const struct config *cfg, double t)
{
	b->tokens = fmin((double)cfg->auth_failure_burst,
			 b->tokens + (t - b->updated) * cfg->auth_failure_rate);
	b->updated = t;
	if (b->tokens >= cfg->auth_failure_burst)
		b->warned = false;
}

/* a's bucket, refilled to now; NULL if it has none and create is false. A new one
 * takes an empty slot of its set, else one that has refilled (as good as absent), else
 * the oldest. */
static struct addr_bucket *addr_bucket(const unsigned char a[16], const struct config *cfg,
				       bool create)
{
	struct addr_bucket *set = addr_set(a), *victim = NULL;
	double t = now_s();
	for (int i = 0; i < WAYS; i++) {
		struct addr_bucket *b = &set[i];
		if (b->used && memcmp(b->addr, a, 16) == 0) {
			bucket_refill(b, cfg, t);
			return b;
		}
	}
	if (!create)
		return NULL;
	for (int i = 0; i < WAYS && victim == NULL; i++) {
		struct addr_bucket *b = &set[i];
		if (!b->used)
			victim = b;
		else if (b->pending == 0 &&
			 b->tokens + (t - b->updated) * cfg->auth_failure_rate >=
			     cfg->auth_failure_burst)
			victim = b;
	}
	if (victim == NULL) {
		victim = &set[0];
		for (int i = 1; i < WAYS; i++)
			if (set[i].updated < victim->updated)
				victim = &set[i];
	}
	*victim = (struct addr_bucket){.used = true,
				       .tokens = cfg->auth_failure_burst,
				       .updated = t};
	memcpy(victim->addr, a, 16);
	return victim;
}

/* Charges one failure to r's client address. */
static void failure_charge(struct api_req *r)
{
	struct req *q = req_of(r);
	const struct config *cfg = r->env->cfg;
	struct addr_bucket *b = addr_bucket(q->auth_client, cfg, true);
	b->tokens = fmax(0.0, b->tokens - 1.0);
	if (b->tokens < 1.0 && !b->warned) {
		b->warned = true;
		char text[INET6_ADDRSTRLEN + 4];
		client_addr_text(q->auth_client, text, sizeof text);
		log_warn("failed authentications limited", "client=%s rate=%u burst=%u", text,
			 cfg->auth_failure_rate, cfg->auth_failure_burst);
	}
}

/* Lookups in flight per token hash, so that only the first of concurrent lookups of one
 * token is charged. Bounded: when its probe finds no room a lookup counts as a first. */
#define INFLIGHT_SLOTS 1024
#define INFLIGHT_PROBE 16

static struct {
	char hash[AUTH_HASH_HEX];
	unsigned n;
} inflight[INFLIGHT_SLOTS];

/* The slot a hash starts probing at: its first 32 bits (it is hex of SHA-256). */
static unsigned inflight_home(const char *hash)
{
	uint32_t v = 0;
	for (int i = 0; i < 8; i++) {
		char c = hash[i];
		v = v << 4 | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return v % INFLIGHT_SLOTS;
}

/* Counts a lookup of hash in; true if no other lookup of it is in flight. Sets
 * q->auth_inflight when it was counted (and must be counted out). */
static bool inflight_begin(struct req *q)
{
	unsigned home = inflight_home(q->auth_hash), free_slot = INFLIGHT_SLOTS;
	for (unsigned i = 0; i < INFLIGHT_PROBE; i++) {
		unsigned s = (home + i) % INFLIGHT_SLOTS;
		if (inflight[s].n > 0 && strcmp(inflight[s].hash, q->auth_hash) == 0) {
			inflight[s].n++;
			q->auth_inflight = true;
			return false;
		}
		if (inflight[s].n == 0 && free_slot == INFLIGHT_SLOTS)
			free_slot = s;
	}
	if (free_slot == INFLIGHT_SLOTS)
		return true;
	memcpy(inflight[free_slot].hash, q->auth_hash, AUTH_HASH_HEX);
	inflight[free_slot].n = 1;
	q->auth_inflight = true;
	return true;
}

/* True while a lookup of hash is in flight. */
static bool inflight_active(const char *hash)
{
	unsigned home = inflight_home(hash);
	for (unsigned i = 0; i < INFLIGHT_PROBE; i++) {
		unsigned s = (home + i) % INFLIGHT_SLOTS;
		if (inflight[s].n > 0 && strcmp(inflight[s].hash, hash) == 0)
			return true;
	}
	return false;
}

static void inflight_end(struct req *q)
{
	if (!q->auth_inflight)
		return;
	q->auth_inflight = false;
	unsigned home = inflight_home(q->auth_hash);
	for (unsigned i = 0; i < INFLIGHT_PROBE; i++) {
		unsigned s = (home + i) % INFLIGHT_SLOTS;
		if (inflight[s].n > 0 && strcmp(inflight[s].hash, q->auth_hash) == 0) {
			inflight[s].n--;
			return;
		}
	}
}

/* The lookup of r's token is counted among its address's lookups in flight. */
static void pending_begin(struct api_req *r)
{
	struct req *q = req_of(r);
	struct addr_bucket *b = addr_bucket(q->auth_client, r->env->cfg, true);
	b->pending++;
	q->auth_pending = true;
}

static void pending_end(struct api_req *r)
{
	struct req *q = req_of(r);
	if (!q->auth_pending)
		return;
	q->auth_pending = false;
	struct addr_bucket *b = addr_bucket(q->auth_client, r->env->cfg, false);
	if (b != NULL && b->pending > 0)
		b->pending--;
}

/* True (with the wait in *retry_s) while r's client address may not try again. */
static bool failures_exhausted(struct api_req *r, double *retry_s)
{
	const struct config *cfg = r->env->cfg;
	struct addr_bucket *b = addr_bucket(req_of(r)->auth_client, cfg, false);
	if (b == NULL || b->tokens >= 1.0)
		return false;
	*retry_s = (1.0 - b->tokens) / cfg->auth_failure_rate;
	return true;
}

/* ---- authenticate, authorize ---- */

static void unauthorized(struct api_req *r, const char *detail)
{
	api_set_header(r, "WWW-Authenticate", "Bearer realm=\"dualreg\"");
	api_reply_error(r, 401, NULL, "%s", detail);
}

static void refused(struct api_req *r, const char *detail)
{
	failure_charge(r);
	unauthorized(r, detail);
}

static void retry_after(struct api_req *r, double retry_s)
{
	int s = (int)ceil(retry_s);
	char secs[16];
	snprintf(secs, sizeof secs, "%d", s < 1 ? 1 : s);
	api_set_header(r, "Retry-After", secs);
}

/* ---- requests waiting for their address's lookups ---- */

#define PARKED_MAX 4096

static TAILQ_HEAD(, req) parked = TAILQ_HEAD_INITIALIZER(parked);
static unsigned nparked;

static void lookup_start(struct api_req *r);
static void resume_parked(const unsigned char addr[16], const struct config *cfg);

/* The request ended while its key was being looked up (the database failed or the
 * deadline passed), or while it waited: not the client's failure. */
static void lookup_abort(struct api_req *r)
{
	struct req *q = req_of(r);
	void (*prev)(struct api_req *) = q->auth_prev_abort;
	unsigned char addr[16];
	memcpy(addr, q->auth_client, sizeof addr);
	bool was_pending = q->auth_pending;
	if (q->auth_parked) {
		TAILQ_REMOVE(&parked, q, auth_park);
		q->auth_parked = false;
		nparked--;
	}
	inflight_end(q);
	pending_end(r);
	q->auth_prev_abort = NULL;
	r->on_abort = NULL;
	const struct config *cfg = r->env->cfg;
	if (prev != NULL)
		prev(r);
	if (was_pending)
		resume_parked(addr, cfg);
}

/* True when a lookup of r's token may start now: one of the same token is already in
 * flight (it costs nothing more), or its address has failures left for every lookup in
 * flight and this one. */
static bool lookup_may_start(struct api_req *r)
{
	struct req *q = req_of(r);
	if (inflight_active(q->auth_hash))
		return true;
	struct addr_bucket *b = addr_bucket(q->auth_client, r->env->cfg, false);
	return b == NULL || (double)b->pending + 1.0 <= b->tokens;
}

/* After the caches: answers from them, or looks the token up, or waits its turn. */
static void auth_continue(struct api_req *r)
{
	struct req *q = req_of(r);
	const struct config *cfg = r->env->cfg;
	struct key_entry *e = cache_find(&known, q->auth_hash, cfg);
	if (e != NULL) {
		r->key = e->key;
		q->auth_next(r);
		return;
	}
	if (cache_find(&unknown, q->auth_hash, cfg) != NULL) {
		refused(r, "unknown or revoked API key");
		return;
	}
	if (lookup_may_start(r)) {
		lookup_start(r);
		return;
	}
	if (nparked >= PARKED_MAX) {
		api_set_header(r, "Retry-After", "1");
		api_reply_error(r, 429, NULL,
				"too many requests are waiting for their API keys to be checked; "
				"retry");
		return;
	}
	q->auth_parked = true;
	TAILQ_INSERT_TAIL(&parked, q, auth_park);
	nparked++;
	q->auth_prev_abort = r->on_abort;
	r->on_abort = lookup_abort;
}

/* A lookup from addr ended: its waiting requests go on, in order, while they may. */
static void resume_parked(const unsigned char addr[16], const struct config *cfg)
{
	(void)cfg;
	for (;;) {
		struct req *q;
		TAILQ_FOREACH(q, &parked, auth_park)
		{
			if (memcmp(q->auth_client, addr, 16) == 0)
				break;
		}
		if (q == NULL)
			return;
		struct api_req *r = &q->pub;
		double wait;
		if (!failures_exhausted(r, &wait) && !lookup_may_start(r) &&
		    cache_find(&known, q->auth_hash, r->env->cfg) == NULL &&
		    cache_find(&unknown, q->auth_hash, r->env->cfg) == NULL)
			return; /* still no room: the next lookup to end lets it go */
		TAILQ_REMOVE(&parked, q, auth_park);
		q->auth_parked = false;
		nparked--;
		r->on_abort = q->auth_prev_abort;
		q->auth_prev_abort = NULL;
		if (auth_address_limited(r))
			continue;
		auth_continue(r);
	}
}

static void lookup_done(struct api_req *r, PGresult *res)
{
	struct req *q = req_of(r);
	void (*next)(struct api_req *) = q->auth_next;
	const struct config *cfg = r->env->cfg;
	unsigned char addr[16];
	memcpy(addr, q->auth_client, sizeof addr);
	bool was_pending = q->auth_pending;
	r->on_abort = q->auth_prev_abort;
	q->auth_prev_abort = NULL;
	inflight_end(q);
	pending_end(r);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		api_reply_db_error(r, res);
		if (was_pending)
			resume_parked(addr, cfg);
		return;
	}
	if (PQntuples(res) == 0) {
		cache_store(&unknown, q->auth_hash, q->auth_gen, NULL);
		refused(r, "unknown or revoked API key");
		if (was_pending)
			resume_parked(addr, cfg);
		return;
	}
	struct api_key k = {0};
	k.id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	snprintf(k.name, sizeof k.name, "%s", PQgetvalue(res, 0, 1));
	k.admin = strcmp(PQgetvalue(res, 0, 2), "admin") == 0;
	snprintf(k.urn, sizeof k.urn, "%s", PQgetvalue(res, 0, 3));
	cache_store(&known, q->auth_hash, q->auth_gen, &k);
	r->key = k;
	q->auth_next = NULL;
	next(r);
	if (was_pending)
		resume_parked(addr, cfg);
}

/* "drk_" and 43 base64url characters. */
static bool well_formed(const char *token)
{
	if (strlen(token) != AUTH_TOKEN_LEN || strncmp(token, AUTH_TOKEN_PREFIX, 4) != 0)
		return false;
	static const char b64url[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	return strspn(token + 4, b64url) == AUTH_TOKEN_LEN - 4;
}

bool auth_address_limited(struct api_req *r)
{
	struct req *q = req_of(r);
	const struct config *cfg = r->env->cfg;
	client_addr_of(r, q->auth_client);
	double retry;
	if (!failures_exhausted(r, &retry))
		return false;
	retry_after(r, retry);
	api_reply_error(r, 429, NULL,
			"too many failed authentications from this address (%u per second, "
			"burst %u); wait before trying again",
			cfg->auth_failure_rate, cfg->auth_failure_burst);
	return true;
}

void auth_failure_charge(struct api_req *r)
{
	failure_charge(r);
}

void auth_client_address(struct api_req *r, char *out, size_t len)
{
	client_addr_text(req_of(r)->auth_client, out, len);
}

void auth_authenticate(struct api_req *r, void (*next)(struct api_req *r))
{
	struct req *q = req_of(r);
	const struct config *cfg = r->env->cfg;
	if (auth_address_limited(r))
		return;
	const char *h = api_header(r, "Authorization");
	if (h == NULL && web_cookie_token(r, q->web_token)) {
		/* The staff web app's session cookie (web_session.h). */
		web_session_authenticate(r, next);
		return;
	}
	if (h == NULL) {
		/* No credentials, no guess: not counted (a client not yet given its key). */
		unauthorized(r, "missing Authorization: Bearer <API key>");
		return;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		refused(r, "the Authorization header must be: Bearer <API key>");
		return;
	}
	const char *token = h + 7;
	while (*token == ' ')
		token++;
	if (!well_formed(token)) {
		refused(r, "malformed API key");
		return;
	}
	auth_token_hash(token, q->auth_hash);
	q->auth_next = next;
	(void)cfg;
	auth_continue(r);
}

/* Looks r's token up in the database; counted in its address's lookups in flight
 * unless another lookup of the same token is. */
static void lookup_start(struct api_req *r)
{
	struct req *q = req_of(r);
	if (inflight_begin(q))
		pending_begin(r);
	q->auth_gen = keys_gen();
	q->auth_prev_abort = r->on_abort;
	r->on_abort = lookup_abort;
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

struct bucket {
	long long key_id; /* 0 when empty */
	double tokens;
	double updated;
};

static struct bucket buckets[TABLE_SIZE];
static unsigned nbuckets;

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
		retry_after(r, retry);
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
