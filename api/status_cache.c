/* status_cache: in-memory pupil status bodies (see status_cache.h). */
#include "dualreg/status_cache.h"

#include <stdlib.h>
#include <string.h>

#include "dualreg/listen.h"
#include "dualreg/xalloc.h"

#define WAYS 4 /* slots a key may use: a full set evicts its least recently used */

struct slot {
	char key[STATUS_CACHE_KEY_MAX];
	uint64_t generation, epoch;
	uint64_t used; /* tick of the last hit or store */
	char etag[68];
	char *body; /* NULL: empty slot */
};

struct status_cache {
	struct db_listener *listener;
	uint64_t epoch;
	uint64_t tick;
	struct slot *slots;
};

/* The first slot of key's set. */
static struct slot *set_of(struct status_cache *c, const char *key);

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct slot *set_of(struct status_cache *c, const char *key)
{
	return &c->slots[(hash(key) % (STATUS_CACHE_SLOTS / WAYS)) * WAYS];
}

struct status_cache *status_cache_new(struct db_listener *listener)
{
	struct status_cache *c = xcalloc(1, sizeof *c);
	c->listener = listener;
	c->slots = xcalloc(STATUS_CACHE_SLOTS, sizeof *c->slots);
	return c;
}

void status_cache_free(struct status_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < STATUS_CACHE_SLOTS; i++)
		free(c->slots[i].body);
	free(c->slots);
	free(c);
}

struct status_stamp status_cache_stamp(const struct status_cache *c)
{
	struct status_stamp s = {0};
	if (c == NULL || c->listener == NULL || !dbl_is_listening(c->listener))
		return s;
	s.generation = dbl_generation(c->listener);
	s.epoch = c->epoch;
	s.usable = true;
	return s;
}

void status_cache_invalidate(struct status_cache *c)
{
	if (c != NULL)
		c->epoch++;
}

bool status_cache_get(struct status_cache *c, const char *key, const char **body,
		      const char **etag)
{
	struct status_stamp now = status_cache_stamp(c);
	if (!now.usable)
		return false;
	struct slot *set = set_of(c, key);
	for (int i = 0; i < WAYS; i++) {
		struct slot *s = &set[i];
		if (s->body == NULL || strcmp(s->key, key) != 0)
			continue;
		if (s->generation != now.generation || s->epoch != now.epoch)
			return false;
		s->used = ++c->tick;
		*body = s->body;
		*etag = s->etag;
		return true;
	}
	return false;
}

void status_cache_put(struct status_cache *c, const char *key, struct status_stamp stamp,
		      const char *body, const char *etag)
{
	size_t len = strlen(body);
	if (c == NULL || !stamp.usable || len >= STATUS_CACHE_BODY_MAX ||
	    strlen(key) >= STATUS_CACHE_KEY_MAX || strlen(etag) >= sizeof c->slots[0].etag)
		return;
	/* The key's own slot if it has one, else an empty one, else the least recently used. */
	struct slot *set = set_of(c, key), *s = &set[0];
	for (int i = 0; i < WAYS; i++) {
		if (set[i].body != NULL && strcmp(set[i].key, key) == 0) {
			s = &set[i];
			break;
		}
		if (set[i].body == NULL || set[i].used < s->used)
			s = &set[i];
	}
	free(s->body);
	s->body = xmalloc(len + 1);
	memcpy(s->body, body, len + 1);
	strcpy(s->key, key);
	strcpy(s->etag, etag);
	s->generation = stamp.generation;
	s->epoch = stamp.epoch;
	s->used = ++c->tick;
}
