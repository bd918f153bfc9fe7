#include "expiry.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "test_pki.h"

namespace keel::keelctl {
namespace {

using Catch::Matchers::ContainsSubstring;
using namespace std::chrono_literals;

const TimePoint kStart = std::chrono::sys_days{std::chrono::year{2030} / 3 / 4};

config::ClientConfig withCertificate(const pki::Certificate& crt) {
  config::ClientConfig cfg;
  cfg.context = "prod";
  cfg.contexts["prod"].crt = crt.toPem();
  return cfg;
}

TEST_CASE("the expiry warning comes in the last week of a long certificate, and says how to renew",
          "[keelctl][expiry]") {
  ManualClock clock(kStart);
  const auto ca = testpki::makeCa("keel-os", clock);
  const auto leaf = testpki::makeLeaf(ca, "admin", pki::ExtendedKeyUsage::kClientAuth, 30 * 24h, clock);
  const auto cfg = withCertificate(leaf.cert);

  CHECK_FALSE(expiryWarning(cfg, kStart).has_value());
  CHECK_FALSE(expiryWarning(cfg, kStart + 22 * 24h).has_value());  // 8 days left
  const auto warning = expiryWarning(cfg, kStart + 24 * 24h);       // 6 days left
  REQUIRE(warning.has_value());
  CHECK_THAT(*warning, ContainsSubstring("context 'prod'"));
  CHECK_THAT(*warning, ContainsSubstring("2030-04-03"));
  CHECK_THAT(*warning, ContainsSubstring("in 6 days"));
  CHECK_THAT(*warning, ContainsSubstring("keelctl config renew"));

  const auto expired = expiryWarning(cfg, kStart + 31 * 24h);
  REQUIRE(expired.has_value());
  CHECK_THAT(*expired, ContainsSubstring("expired"));
  CHECK_THAT(*expired, ContainsSubstring("config generate"));
}

TEST_CASE("a short-lived certificate warns only in the second half of its life", "[keelctl][expiry]") {
  ManualClock clock(kStart);
  const auto ca = testpki::makeCa("keel-os", clock);
  const auto leaf = testpki::makeLeaf(ca, "ci", pki::ExtendedKeyUsage::kClientAuth, 24h, clock);
  const auto cfg = withCertificate(leaf.cert);
  CHECK_FALSE(expiryWarning(cfg, kStart + 1h).has_value());
  CHECK_FALSE(expiresSoon(leaf.cert, kStart + 11h));
  CHECK(expiresSoon(leaf.cert, kStart + 13h));
  const auto warning = expiryWarning(cfg, kStart + 23h);
  REQUIRE(warning.has_value());
  CHECK_THAT(*warning, ContainsSubstring("in 1 h"));
}

TEST_CASE("no warning without a readable certificate", "[keelctl][expiry]") {
  config::ClientConfig cfg;
  cfg.context = "prod";
  CHECK_FALSE(expiryWarning(cfg, kStart).has_value());
  cfg.contexts["prod"].crt = "not a certificate";
  CHECK_FALSE(expiryWarning(cfg, kStart).has_value());
}

}  // namespace
}  // namespace keel::keelctl
