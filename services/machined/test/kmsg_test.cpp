#include "src/boot/kmsg.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/testing/testing.h"

namespace keel::machined {
namespace {

TEST_CASE("kernel log records are formatted like dmesg", "[kmsg]") {
  CHECK(formatKmsgRecord("6,339,5140900,-;NET: Registered protocol family 10\n") ==
        "[    5.140900] NET: Registered protocol family 10");
  CHECK(formatKmsgRecord("4,1,0,-,caller=T1;early\n") == "[    0.000000] early");
  CHECK(formatKmsgRecord(" SUBSYSTEM=net").empty());
  CHECK(formatKmsgRecord("garbage").empty());
  CHECK(formatKmsgRecord("6,1,notanumber,-;x").empty());
  CHECK(formatKmsgRecord("").empty());
}

TEST_CASE("all records of a kernel log are read, skipping continuation lines", "[kmsg]") {
  keel::testing::TempDir dir;
  keel::testing::writeFile(dir / "kmsg", "6,1,1000000,-;one\n SUBSYSTEM=x\n6,2,2500000,-;two\n");
  auto log = KernelLog::open(dir / "kmsg");
  REQUIRE(log.ok());
  auto lines = log->readAvailable();
  REQUIRE(lines.ok());
  CHECK(*lines == std::vector<std::string>{"[    1.000000] one", "[    2.500000] two"});
}

TEST_CASE("an unreadable kernel log is UNAVAILABLE with the reason", "[kmsg]") {
  keel::testing::TempDir dir;
  auto log = KernelLog::open(dir / "missing");
  REQUIRE_FALSE(log.ok());
  CHECK(log.status().code() == StatusCode::kUnavailable);
  CHECK_THAT(log.status().message(), Catch::Matchers::ContainsSubstring("No such file"));
}

}  // namespace
}  // namespace keel::machined
