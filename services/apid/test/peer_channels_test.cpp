// The channels apid keeps to other nodes: names come from callers, so what apid keeps of
// them is bounded in number and time, and a name that failed is forgotten. Channels
// connect lazily: nothing here sends a packet.
#include <catch2/catch_test_macros.hpp>

#include "channels.h"
#include "keel/common/clock.h"
#include "keel/pki/pki.h"
#include "keel/testing/testing.h"

namespace keel::apid {
namespace {

using namespace std::chrono_literals;

// An OS CA and an impersonator identity signed by it, as files.
struct Identity {
  testing::TempDir dir;
  contracts::KeyPairFiles files{dir / "impersonator.key", dir / "impersonator.crt"};
  std::filesystem::path ca = dir / "ca.crt";

  Identity() {
    SystemClock clock;
    auto authority = pki::createSelfSignedCa({{"keel-os", {"keel-os"}}, pki::KeyType::kEcdsaP256, 24h}, clock).value();
    auto key = pki::PrivateKey::generate(pki::KeyType::kEcdsaP256).value();
    auto csr = pki::CertificateRequest::create(key, {{"apid@10.0.0.1", {}}, {}}).value();
    pki::IssuePolicy policy;
    policy.extendedKeyUsages = {pki::ExtendedKeyUsage::kClientAuth};
    policy.organizationPolicy = pki::IssuePolicy::Organizations::kSet;
    policy.organizations = {"os:impersonator"};
    const auto cert = pki::issueCertificate(authority, csr, policy, clock).value();
    testing::writeFile(files.key, key.toPem());
    testing::writeFile(files.cert, cert.toPem());
    testing::writeFile(ca, authority.certificate.toPem());
  }
};

TEST_CASE("apid keeps at most maxPeers channels to other nodes, dropping the least recently used", "[channels]") {
  Identity id;
  ManualClock clock(std::chrono::sys_days{std::chrono::year{2030} / 1 / 1});
  PeerChannels peers(id.files, id.ca, 50000, 1 << 20, 2s, {.maxPeers = 2, .idle = 300s}, clock);
  auto a = peers.get("10.0.0.2");
  REQUIRE(a.ok());
  clock.advance(1s);
  REQUIRE(peers.get("10.0.0.3").ok());
  clock.advance(1s);
  // The same name gives the same channel, and counts as a use.
  auto again = peers.get("10.0.0.2");
  REQUIRE(again.ok());
  CHECK(*again == *a);
  clock.advance(1s);
  REQUIRE(peers.get("10.0.0.4").ok());
  CHECK(peers.size() == 2);
  // 10.0.0.3 was the least recently used: 10.0.0.2 is still the same channel.
  CHECK(*peers.get("10.0.0.2") == *a);
  CHECK(peers.size() == 2);
  // A stream of fresh names never grows it.
  for (int i = 0; i < 100; ++i) REQUIRE(peers.get("node-" + std::to_string(i) + ".example").ok());
  CHECK(peers.size() == 2);
}

TEST_CASE("a channel to a node unused for the idle time is dropped; one that failed is forgotten at once",
          "[channels]") {
  Identity id;
  ManualClock clock(std::chrono::sys_days{std::chrono::year{2030} / 1 / 1});
  PeerChannels peers(id.files, id.ca, 50000, 1 << 20, 2s, {.maxPeers = 16, .idle = 60s}, clock);
  auto first = peers.get("10.0.0.2");
  REQUIRE(first.ok());
  REQUIRE(peers.get("no-such-node.invalid").ok());
  CHECK(peers.size() == 2);

  clock.advance(30s);
  REQUIRE(peers.get("10.0.0.3").ok());
  CHECK(peers.size() == 3);
  clock.advance(31s);
  // 10.0.0.2 and the bad name have been idle for 61 s; 10.0.0.3 for 31 s.
  REQUIRE(peers.get("10.0.0.3").ok());
  CHECK(peers.size() == 1);
  auto fresh = peers.get("10.0.0.2");
  REQUIRE(fresh.ok());
  CHECK(*fresh != *first);

  // A call that ended UNAVAILABLE (a name that does not resolve, a node that is down).
  peers.retire(*fresh);
  CHECK(peers.size() == 1);
  // Retiring a channel apid does not keep changes nothing.
  peers.retire(*first);
  CHECK(peers.size() == 1);
}

}  // namespace
}  // namespace keel::apid
