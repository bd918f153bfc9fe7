// The network address behind a gRPC peer string, and the block of addresses one party
// is taken to control: what limits and summaries of unauthenticated callers count by, so
// that a caller with an IPv6 /64 (2^64 addresses) is still one caller.
#pragma once

#include <string>
#include <string_view>

#include "keel/common/status.h"

namespace keel::transport {

// The bare IP address of a gRPC peer string ("ipv4:1.2.3.4:5", "ipv6:[::1]:5", or an
// address alone), in canonical text; an IPv4 address mapped into IPv6 reads as IPv4.
// Errors: INVALID_ARGUMENT when it names no IP address (a Unix socket peer, say).
Result<std::string> peerAddress(std::string_view peer);

// The block `address` (as peerAddress returns it) belongs to: the address itself for
// IPv4, its first `ipv6PrefixBits` bits for IPv6 ("2001:db8::/64"). Anything that is not
// an address comes back unchanged.
std::string addressBlock(const std::string& address, int ipv6PrefixBits);

}  // namespace keel::transport
