#include "keel/config/join_tokens.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/config/generate.h"
#include "test_util.h"

using namespace keel::config;
using Catch::Matchers::ContainsSubstring;
using keel::StatusCode;

namespace {

constexpr const char* kNew = "newtok.0123456789abcdef";
constexpr const char* kOther = "other1.0123456789abcdef";

const MachineConfigs& configs() {
  static const MachineConfigs c =
      generateMachineConfigs(testutil::bundle(), {.clusterName = "prod", .endpoint = *parseEndpoint("10.0.0.10"), .certSans = {}})
          .value();
  return c;
}

TEST_CASE("a control plane accepts a new token besides its own, once, and drops the old one after") {
  const auto& cp = configs().controlPlane;
  const std::string old = cp.token;
  auto added = changeJoinTokens(cp, JoinTokenChange{kNew, "", ""});
  REQUIRE(added.ok());
  CHECK(acceptedJoinTokens(*added) == std::vector<std::string>{old, kNew});
  CHECK(changeJoinTokens(*added, JoinTokenChange{kNew, "", ""}).value() == *added);  // run again: nothing changes

  auto dropped = changeJoinTokens(*added, JoinTokenChange{"", old, ""});
  REQUIRE(dropped.ok());
  CHECK(dropped->token == kNew);  // machine.token is always accepted: the next one takes its place
  CHECK(acceptedJoinTokens(*dropped) == std::vector<std::string>{kNew});
  CHECK(dropped->trustd.acceptedTokens.empty());
  CHECK(changeJoinTokens(*dropped, JoinTokenChange{"", old, ""}).value() == *dropped);  // already gone: nothing to drop

  auto both = changeJoinTokens(*dropped, JoinTokenChange{kOther, kNew, ""});
  REQUIRE(both.ok());
  CHECK(acceptedJoinTokens(*both) == std::vector<std::string>{kOther});
}

TEST_CASE("the last accepted token is never dropped, and the refusal does not show it") {
  const auto& cp = configs().controlPlane;
  auto refused = changeJoinTokens(cp, JoinTokenChange{"", cp.token, ""});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(refused.status().message(), ContainsSubstring(tokenFingerprint(cp.token)));
  CHECK_THAT(refused.status().message(), !ContainsSubstring(cp.token));
}

TEST_CASE("a worker only changes the token it presents; a control plane presents none") {
  const auto& worker = configs().worker;
  auto moved = changeJoinTokens(worker, JoinTokenChange{"", "", kNew});
  REQUIRE(moved.ok());
  CHECK(moved->token == kNew);
  CHECK(changeJoinTokens(worker, JoinTokenChange{kNew, "", ""}).status().code() == StatusCode::kFailedPrecondition);
  CHECK(changeJoinTokens(worker, JoinTokenChange{"", worker.token, ""}).status().code() == StatusCode::kFailedPrecondition);
  CHECK(changeJoinTokens(configs().controlPlane, JoinTokenChange{"", "", kNew}).status().code() ==
        StatusCode::kFailedPrecondition);
}

TEST_CASE("a malformed token is refused by field without being echoed") {
  for (const std::string bad : {"short.x", "UPPERC.0123456789ABCDEF", "abcdef-0123456789abcdef"}) {
    auto r = changeJoinTokens(configs().controlPlane, JoinTokenChange{bad, "", ""});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(r.status().message(), ContainsSubstring("accept"));
    CHECK_THAT(r.status().message(), !ContainsSubstring(bad));
  }
}

TEST_CASE("a token's fingerprint is short, stable and differs between tokens") {
  CHECK(tokenFingerprint(kNew).size() == 12);
  CHECK(tokenFingerprint(kNew) == tokenFingerprint(std::string(kNew)));
  CHECK(tokenFingerprint(kNew) != tokenFingerprint(kOther));
  CHECK(std::string(kNew).find(tokenFingerprint(kNew)) == std::string::npos);
}

}  // namespace
