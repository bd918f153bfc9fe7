#include "keel/config/endpoint.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include <fmt/format.h>

namespace keel::config {
namespace {

bool isDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string toLower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Canonical text of an IP address, or empty when `text` is not one.
std::string canonicalIp(std::string_view text) {
  const std::string s(text);
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) return inet_ntop(AF_INET, buf, out, sizeof out);
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return inet_ntop(AF_INET6, buf, out, sizeof out);
  return {};
}

Result<uint16_t> parsePort(std::string_view text, std::string_view endpoint) {
  if (text.empty()) return invalidArgument(fmt::format("invalid endpoint '{}': empty port after ':'", endpoint));
  if (!isDigits(text)) {
    return invalidArgument(fmt::format("invalid endpoint '{}': port '{}' is not a number", endpoint, text));
  }
  if (text.size() > 5 || std::stoul(std::string(text)) < 1 || std::stoul(std::string(text)) > 65535) {
    return invalidArgument(
        fmt::format("invalid endpoint '{}': port {} out of range (expected 1-65535)", endpoint, text));
  }
  return static_cast<uint16_t>(std::stoul(std::string(text)));
}

// A host that is an IP address (returned canonical) or a host name (lower-cased).
Result<std::string> parseHost(std::string_view host, std::string_view endpoint) {
  if (host.empty()) return invalidArgument(fmt::format("invalid endpoint '{}': empty host", endpoint));
  if (auto ip = canonicalIp(host); !ip.empty()) return ip;
  if (!isValidHostName(host)) {
    return invalidArgument(fmt::format(
        "invalid endpoint '{}': '{}' is neither an IP address nor a valid host name", endpoint, host));
  }
  // A name made only of digits and dots is a mistyped IPv4 address, not a host.
  if (std::all_of(host.begin(), host.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; })) {
    return invalidArgument(
        fmt::format("invalid endpoint '{}': '{}' looks like an IPv4 address but is not one", endpoint, host));
  }
  return toLower(host);
}

// `authority` is what follows an optional scheme: host, host:port, [v6], [v6]:port or a
// bare IPv6 address.
Result<Endpoint> parseAuthority(std::string_view authority, std::string_view endpoint, bool requirePort) {
  Endpoint ep;
  std::string_view host;
  std::optional<std::string_view> port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return invalidArgument(fmt::format("invalid endpoint '{}': missing ']' after an IPv6 address", endpoint));
    }
    host = authority.substr(1, close - 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return invalidArgument(fmt::format("invalid endpoint '{}': expected ':port' after ']', found '{}'", endpoint, rest));
      }
      port = rest.substr(1);
    }
    unsigned char buf[16];
    if (inet_pton(AF_INET6, std::string(host).c_str(), buf) != 1) {
      return invalidArgument(fmt::format("invalid endpoint '{}': '{}' in brackets is not an IPv6 address", endpoint, host));
    }
  } else if (std::count(authority.begin(), authority.end(), ':') > 1) {
    // Several colons without brackets: only a bare IPv6 address (no port) makes sense.
    if (canonicalIp(authority).empty()) {
      return invalidArgument(fmt::format(
          "invalid endpoint '{}': not an IPv6 address; write an IPv6 address with a port as [addr]:port", endpoint));
    }
    host = authority;
  } else if (const size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  } else {
    host = authority;
  }
  KEEL_ASSIGN_OR_RETURN(ep.host, parseHost(host, endpoint));
  if (port) {
    KEEL_ASSIGN_OR_RETURN(ep.port, parsePort(*port, endpoint));
  } else if (requirePort) {
    return invalidArgument(fmt::format("invalid endpoint '{}': expected https://host:port with a port", endpoint));
  }
  return ep;
}

Result<Endpoint> parse(std::string_view text, bool requireUrl) {
  if (text.empty()) return invalidArgument("invalid endpoint '': empty");
  for (const char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c))) {
      return invalidArgument(fmt::format("invalid endpoint '{}': contains whitespace or control characters", text));
    }
  }
  std::string_view authority = text;
  if (const size_t sep = text.find("://"); sep != std::string_view::npos) {
    const std::string scheme = toLower(text.substr(0, sep));
    if (scheme != "https") {
      return invalidArgument(fmt::format(
          "invalid endpoint '{}': unsupported scheme '{}' (expected https://host:port; the API is TLS only)", text,
          scheme));
    }
    authority = text.substr(sep + 3);
    // A trailing slash is what a browser or a copied URL adds; anything more is a path.
    if (!authority.empty() && authority.back() == '/') authority.remove_suffix(1);
  } else if (requireUrl) {
    return invalidArgument(fmt::format("invalid endpoint '{}': expected https://host:port", text));
  }
  if (const size_t bad = authority.find_first_of("/?#@"); bad != std::string_view::npos) {
    return invalidArgument(fmt::format(
        "invalid endpoint '{}': unexpected '{}' (expected host[:port], without a path, query or user)", text,
        authority.substr(bad)));
  }
  return parseAuthority(authority, text, requireUrl);
}

}  // namespace

bool Endpoint::isIpv6() const { return host.find(':') != std::string::npos; }

std::string Endpoint::hostPort() const {
  return isIpv6() ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

std::string Endpoint::url() const { return "https://" + hostPort(); }

Result<Endpoint> parseEndpoint(std::string_view text) { return parse(text, false); }

Result<Endpoint> parseHttpsUrl(std::string_view text) { return parse(text, true); }

Result<std::string> parseNodeName(std::string_view text) {
  if (text.empty()) return invalidArgument("invalid node '': empty");
  if (auto ip = canonicalIp(text); !ip.empty()) return ip;
  if (text.find_first_of(":/[]") != std::string_view::npos) {
    return invalidArgument(fmt::format(
        "invalid node '{}': expected an IP address or a host name without port or scheme (nodes are always "
        "reached on their API port)",
        text));
  }
  auto host = parseHost(text, text);
  if (!host.ok()) {
    return invalidArgument(fmt::format("invalid node '{}': expected an IP address or a host name", text));
  }
  return host;
}

bool isValidHostName(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  if (text.back() == '.') text.remove_suffix(1);  // fully qualified form
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('.', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view label = text.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (const char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    start = end + 1;
  }
  return true;
}

bool isIpAddress(std::string_view text) { return !canonicalIp(text).empty(); }

}  // namespace keel::config
