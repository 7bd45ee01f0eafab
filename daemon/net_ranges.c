/* net_ranges: address ranges from configuration text (see net_ranges.h). */
#include "dualreg/net_ranges.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void net_addr_map_v4(const struct in_addr *in, unsigned char out[16])
{
	memcpy(out, v4_prefix, 12);
	memcpy(out + 12, &in->s_addr, 4);
}

bool net_addr_is_v4(const unsigned char a[16])
{
	return memcmp(a, v4_prefix, 12) == 0;
}

int net_addr_parse(const char *s, unsigned char out[16], bool *v4)
{
	struct in_addr in4;
	if (inet_pton(AF_INET, s, &in4) == 1) {
		net_addr_map_v4(&in4, out);
		*v4 = true;
		return 0;
	}
	*v4 = false;
	return inet_pton(AF_INET6, s, out) == 1 ? 0 : -1;
}

/* One entry, already trimmed and NUL-terminated: "addr" or "addr/bits". */
static int range_parse(char *item, struct net_range *r, char *err, size_t errlen)
{
	char *slash = strchr(item, '/');
	if (slash != NULL)
		*slash = '\0';
	bool v4;
	if (net_addr_parse(item, r->a, &v4) != 0) {
		snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address", item);
		return -1;
	}
	unsigned max = v4 ? 32 : 128, bits = max;
	if (slash != NULL) {
		char *end;
		errno = 0;
		unsigned long n = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno != 0 || n > max) {
			snprintf(err, errlen,
				 "\"%s/%s\": the prefix length must be 0 to %u for this address", item,
				 slash + 1, max);
			return -1;
		}
		bits = (unsigned)n;
	}
	r->bits = bits + (v4 ? 96 : 0);
	return 0;
}

int net_ranges_parse(const char *text, struct net_ranges *out, char *err, size_t errlen)
{
	out->n = 0;
	if (text == NULL || *text == '\0')
		return 0;
	for (const char *p = text;;) {
		size_t len = strcspn(p, ",");
		const char *s = p, *e = p + len;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		char item[64];
		if (s == e) {
			snprintf(err, errlen, "an empty entry (two commas, or one at an end)");
			return -1;
		}
		if ((size_t)(e - s) >= sizeof item) {
			snprintf(err, errlen, "\"%.*s...\" is not an address or CIDR range", 20, s);
			return -1;
		}
		if (out->n == NET_RANGES_MAX) {
			snprintf(err, errlen, "more than %d entries", NET_RANGES_MAX);
			return -1;
		}
		memcpy(item, s, (size_t)(e - s));
		item[e - s] = '\0';
		if (range_parse(item, &out->r[out->n], err, errlen) != 0)
			return -1;
		out->n++;
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

bool net_ranges_contain(const struct net_ranges *set, const unsigned char a[16])
{
	for (unsigned i = 0; i < set->n; i++) {
		const struct net_range *c = &set->r[i];
		unsigned full = c->bits / 8, rest = c->bits % 8;
		if (memcmp(c->a, a, full) != 0)
			continue;
		if (rest == 0)
			return true;
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		if ((c->a[full] & mask) == (a[full] & mask))
			return true;
	}
	return false;
}
