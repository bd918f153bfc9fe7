#include "src/node/accounts.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/config/file_io.h"
#include "keel/testing/testing.h"

namespace keel::machined {
namespace {

using Catch::Matchers::ContainsSubstring;

TEST_CASE("each backend name gets a uid of its own, the same one after a restart", "[accounts]") {
  testing::TempDir dir;
  const auto file = dir / "accounts.json";
  std::pair<uid_t, gid_t> timed;
  {
    DynamicAccounts accounts(file);
    timed = accounts.accountFor("timed").value();
    const auto tickd = accounts.accountFor("tickd").value();
    CHECK(timed.first == DynamicAccounts::kBase);
    CHECK(timed.second == timed.first);
    CHECK(tickd.first == DynamicAccounts::kBase + 1);
    CHECK(accounts.accountFor("timed").value() == timed);
  }
  // A new machined reads what the last one gave.
  DynamicAccounts again(file);
  CHECK(again.accountFor("timed").value() == timed);
  CHECK(again.accountFor("ntpd").value().first == DynamicAccounts::kBase + 2);
}

TEST_CASE("an accounts file that does not parse or names a uid outside the range is refused", "[accounts]") {
  testing::TempDir dir;
  const auto file = dir / "accounts.json";
  for (const std::string bad : {"[1, 2]", "{\"timed\": 0}", "{\"timed\": \"x\"}", "not json"}) {
    CAPTURE(bad);
    REQUIRE(config::writePrivateFile(file, bad, config::Overwrite::kYes).isOk());
    const auto account = DynamicAccounts(file).accountFor("timed");
    REQUIRE_FALSE(account.ok());
    CHECK(account.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(account.status().message(), ContainsSubstring("accounts.json"));
  }
}

}  // namespace
}  // namespace keel::machined
