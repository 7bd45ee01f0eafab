/*
 * client_addr: which client a request comes from, as the per-address limits count it
 * (api/client_addr.c). The peer's address, or, when the peer is one of [limits]
 * trusted_proxies, the right-most address of X-Forwarded-For that is not one of them
 * (several headers count as one list in their order; an element that is not an address
 * ends the walk, and the last trusted hop, which wrote it, is then the client). IPv4
 * addresses are kept v4-mapped; an IPv6 client is counted by its /64, the block one
 * subscriber usually holds.
 */
#ifndef DUALREG_API_CLIENT_ADDR_H
#define DUALREG_API_CLIENT_ADDR_H

#include <stddef.h>

#include "dualreg/api.h"

/* r's client, 16 bytes (IPv6, or IPv4 mapped; an IPv6 address with its last 64 bits
 * zero). The trusted proxies are those of r's configuration (parsed again after a
 * reload changed them). */
void client_addr_of(struct api_req *r, unsigned char client[16]);
/* "192.0.2.1" or "2001:db8:1:2::/64". */
void client_addr_text(const unsigned char a[16], char *out, size_t len);

#endif
