#include "trustd_config.h"

#include <catch2/catch_test_macros.hpp>

#include "keel/contracts/trustd_config.h"

namespace keel::trustd {
namespace {

TEST_CASE("serves the backend SDK trustd's socket, node and allowed peers, its state directory the config's",
          "[trustd][config]") {
  TrustdConfig c;
  c.socket = "/run/keel/trustd.sock";
  c.nodeAddress = "10.0.0.1";
  c.allowedUids = {1000};
  const auto b = backendConfigOf(c, "/var/lib/keel/trustd/config.json");
  CHECK(b.name == "trustd");
  CHECK(b.socket == "/run/keel/trustd.sock");
  CHECK(b.stateDir == "/var/lib/keel/trustd");
  CHECK(b.nodeAddress == "10.0.0.1");
  CHECK(b.allowedPeerUids == std::vector<uid_t>{1000});
}

}  // namespace
}  // namespace keel::trustd
