#include "keel/transport/peer_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

namespace keel::transport {

namespace {

bool parse(int family, const std::string& text, std::array<uint8_t, 16>& out) {
  return inet_pton(family, text.c_str(), out.data()) == 1;
}

std::string format(int family, const std::array<uint8_t, 16>& bytes) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  inet_ntop(family, bytes.data(), text.data(), text.size());
  return text.data();
}

}  // namespace

Result<std::string> peerAddress(std::string_view peer) {
  std::string rest(peer);
  if (rest.starts_with("ipv4:")) {
    rest = rest.substr(5);
    const auto colon = rest.rfind(':');
    if (colon != std::string::npos) rest = rest.substr(0, colon);
  } else if (rest.starts_with("ipv6:")) {
    rest = rest.substr(5);
    if (!rest.empty() && rest.front() == '[') {
      const auto close = rest.find(']');
      if (close == std::string::npos) return invalidArgument("malformed peer address '" + std::string(peer) + "'");
      rest = rest.substr(1, close - 1);
    }
    // A scope ("%eth0") or an encoded one is not part of the address.
    const auto pct = rest.find('%');
    if (pct != std::string::npos) rest = rest.substr(0, pct);
  }
  std::array<uint8_t, 16> bytes{};
  if (parse(AF_INET, rest, bytes)) return format(AF_INET, bytes);
  if (!parse(AF_INET6, rest, bytes)) {
    return invalidArgument("expected the caller's IP address, found '" + std::string(peer) + "'");
  }
  // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
  constexpr std::array<uint8_t, 12> kMapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped.begin(), kMapped.end(), bytes.begin())) {
    std::array<uint8_t, 16> v4{};
    std::copy(bytes.begin() + 12, bytes.end(), v4.begin());
    return format(AF_INET, v4);
  }
  return format(AF_INET6, bytes);
}

std::string addressBlock(const std::string& address, int ipv6PrefixBits) {
  std::array<uint8_t, 16> bytes{};
  if (!parse(AF_INET6, address, bytes)) return address;
  const int bits = std::clamp(ipv6PrefixBits, 0, 128);
  for (int bit = bits; bit < 128; ++bit) bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  return format(AF_INET6, bytes) + "/" + std::to_string(bits);
}

}  // namespace keel::transport
