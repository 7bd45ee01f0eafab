/*
 * net_ranges: IP addresses and ranges written as text, as the configuration names them
 * ("192.0.2.1, 10.0.0.0/8, 2001:db8::/32"). Owns their one parser (the config check and
 * the daemon's use read the same forms) and membership. Addresses are held as 16 bytes,
 * IPv4 as ::ffff:a.b.c.d, so one range type serves both families.
 */
#ifndef DUALREG_NET_RANGES_H
#define DUALREG_NET_RANGES_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#define NET_RANGES_MAX 64

struct net_range {
	unsigned char a[16];
	unsigned bits; /* prefix length within the 128 bits */
};

struct net_ranges {
	struct net_range r[NET_RANGES_MAX];
	unsigned n;
};

/* "a.b.c.d" or an IPv6 address into 16 bytes; *v4 says which it was. 0, or -1. */
int net_addr_parse(const char *s, unsigned char out[16], bool *v4);
/* An IPv4 address in the 16-byte form, and whether a 16-byte address is one. */
void net_addr_map_v4(const struct in_addr *in, unsigned char out[16]);
bool net_addr_is_v4(const unsigned char a[16]);
/*
 * Parses a comma-separated list of addresses and CIDR ranges (spaces around entries
 * allowed; "" is an empty list). 0, or -1 with why in err: an empty entry, something
 * that is not an address, a prefix length out of range, more than NET_RANGES_MAX.
 */
int net_ranges_parse(const char *text, struct net_ranges *out, char *err, size_t errlen);
bool net_ranges_contain(const struct net_ranges *set, const unsigned char a[16]);

#endif
