// Where keelctl reaches apid: an address (IP or host name) and a port. Accepts what
// operators type ("10.0.0.1", "cp1:50000", "[fd00::1]:50000", "https://cp1:50000") and
// refuses everything else with a clear reason.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "keel/common/status.h"

namespace keel::config {

inline constexpr uint16_t kDefaultApiPort = 50000;

struct Endpoint {
  std::string host;  // an IPv4/IPv6 address in canonical text form, or a lower-case host name
  uint16_t port = kDefaultApiPort;

  bool isIpv6() const;
  // "host:port", or "[v6]:port".
  std::string hostPort() const;
  // "https://host:port".
  std::string url() const;
  bool operator==(const Endpoint&) const = default;
};

// Accepts IP, host, IP:port, host:port, [v6]:port, https://host:port (optionally
// followed by a single "/"); the port defaults to kDefaultApiPort. Errors:
// INVALID_ARGUMENT for another scheme, a path, an empty or malformed host, a port out
// of range.
Result<Endpoint> parseEndpoint(std::string_view text);

// Parses an endpoint that must be written "https://host:port" with an explicit port.
Result<Endpoint> parseHttpsUrl(std::string_view text);

// A node target is an address or a host name, never a port or URL (apid only dials
// other nodes' apid). Returns its canonical form. Errors: INVALID_ARGUMENT.
Result<std::string> parseNodeName(std::string_view text);

// True when `text` is a valid DNS host name (labels of [A-Za-z0-9-], 1-63 characters,
// not starting or ending with '-', at most 253 characters in all).
bool isValidHostName(std::string_view text);

// True when `text` is an IPv4 or IPv6 address.
bool isIpAddress(std::string_view text);

}  // namespace keel::config
