#include <catch2/catch_test_macros.hpp>

#include "keel/common/clock.h"
#include "keel/common/status.h"

namespace keel {
namespace {

Result<int> half(int v) {
  if (v % 2 != 0) return invalidArgument("expected an even number, got " + std::to_string(v));
  return v / 2;
}

Result<int> quarter(int v) {
  KEEL_ASSIGN_OR_RETURN(int h, half(v));
  return half(h);
}

Status checkEven(int v) {
  KEEL_RETURN_IF_ERROR(half(v).status());
  return Status::ok();
}

TEST_CASE("a Result carries either a value or the error that replaced it", "[status]") {
  auto good = quarter(8);
  REQUIRE(good.ok());
  CHECK(*good == 2);

  auto bad = quarter(6);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kInvalidArgument);
  CHECK(bad.status().message() == "expected an even number, got 3");
  CHECK(checkEven(3).code() == StatusCode::kInvalidArgument);
  CHECK(checkEven(4).isOk());
}

TEST_CASE("status codes use gRPC's numbering and names", "[status]") {
  CHECK(static_cast<int>(StatusCode::kUnauthenticated) == 16);
  CHECK(static_cast<int>(StatusCode::kPermissionDenied) == 7);
  CHECK(statusCodeName(StatusCode::kPermissionDenied) == "PERMISSION_DENIED");
  CHECK(permissionDenied("no").withContext("call").toString() == "PERMISSION_DENIED: call: no");
  CHECK(Status::ok().withContext("x").isOk());
}

TEST_CASE("times are formatted as RFC 3339 UTC", "[clock]") {
  ManualClock clock(std::chrono::system_clock::from_time_t(0));
  clock.advance(std::chrono::hours(24) + std::chrono::seconds(5));
  CHECK(formatTime(clock.now()) == "1970-01-02T00:00:05Z");
}

}  // namespace
}  // namespace keel
