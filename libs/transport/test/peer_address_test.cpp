#include "keel/transport/peer_address.h"

#include <catch2/catch_test_macros.hpp>

namespace keel::transport {
namespace {

TEST_CASE("reads the caller's address from gRPC peer strings, canonically", "[peer]") {
  CHECK(*peerAddress("ipv4:10.0.0.7:40001") == "10.0.0.7");
  CHECK(*peerAddress("ipv6:[2001:db8:0::1]:5000") == "2001:db8::1");
  CHECK(*peerAddress("ipv6:[fe80::1%25eth0]:5000") == "fe80::1");
  CHECK(*peerAddress("ipv6:[::ffff:10.0.0.7]:1") == "10.0.0.7");
  CHECK(*peerAddress("10.0.0.7") == "10.0.0.7");
  for (const char* bad : {"unix:/run/keel/apid.sock", "ipv6:[::1:5", "", "ipv4:host:1"}) {
    CAPTURE(bad);
    const auto r = peerAddress(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("an IPv6 caller is counted by its prefix, an IPv4 one by its address", "[peer]") {
  CHECK(addressBlock("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64) == "2001:db8:1:2::/64");
  CHECK(addressBlock("2001:db8:1:2::9", 64) == addressBlock("2001:db8:1:2:ffff::1", 64));
  CHECK(addressBlock("2001:db8:1:2::9", 64) != addressBlock("2001:db8:1:3::9", 64));
  CHECK(addressBlock("2001:db8::1", 128) == "2001:db8::1/128");
  CHECK(addressBlock("2001:db8::1", 48) == "2001:db8::/48");
  CHECK(addressBlock("10.0.0.7", 64) == "10.0.0.7");
  CHECK(addressBlock("not an address", 64) == "not an address");
}

}  // namespace
}  // namespace keel::transport
