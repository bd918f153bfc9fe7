#include "keel/supervisor/log_store.h"

#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch_test_macros.hpp>
#include <spdlog/logger.h>

#include "keel/supervisor/log_sink.h"
#include "keel/testing/testing.h"

namespace keel::supervisor {
namespace {

using keel::testing::TempDir;

std::shared_ptr<LogStore> makeStore(LogOptions options) {
  auto store = LogStore::create(std::move(options));
  REQUIRE(store.ok());
  return *store;
}

TEST_CASE("log store splits text at newlines and overlong lines into pieces", "[log_store]") {
  auto store = makeStore({.dir = {}, .maxLines = 100, .maxLineLength = 4});
  REQUIRE(store->addLog("svc").isOk());
  REQUIRE(store->append("svc", "ab\r\n\nabcdefghij\nlast").isOk());
  const auto lines = store->tail("svc", 100);
  REQUIRE(lines.ok());
  CHECK(*lines == std::vector<std::string>{"ab", "", "abcd", "efgh", "ij", "last"});
}

TEST_CASE("log store keeps only the last maxLines lines in memory", "[log_store]") {
  auto store = makeStore({.dir = {}, .maxLines = 3});
  REQUIRE(store->addLog("svc").isOk());
  for (int i = 1; i <= 10; ++i) REQUIRE(store->append("svc", "line " + std::to_string(i) + "\n").isOk());
  CHECK(*store->tail("svc", 100) == std::vector<std::string>{"line 8", "line 9", "line 10"});
  CHECK(*store->tail("svc", 1) == std::vector<std::string>{"line 10"});
  CHECK(store->tail("svc", 0)->empty());
}

TEST_CASE("log store rotates its file and keeps every file under the cap", "[log_store]") {
  TempDir dir;
  auto store = makeStore(
      {.dir = dir / "logs", .maxLines = 10, .maxLineLength = 100, .fileMaxBytes = 1000, .fileCount = 2});
  REQUIRE(store->addLog("svc").isOk());
  for (int i = 0; i < 1000; ++i)
    REQUIRE(store->append("svc", "a line of about thirty bytes " + std::to_string(i)).isOk());

  const auto current = dir / "logs" / "svc.log";
  const auto rotated = dir / "logs" / "svc.1.log";
  REQUIRE(std::filesystem::exists(current));
  REQUIRE(std::filesystem::exists(rotated));
  CHECK_FALSE(std::filesystem::exists(dir / "logs" / "svc.2.log"));
  CHECK(std::filesystem::file_size(current) <= 1000);
  CHECK(std::filesystem::file_size(rotated) <= 1000);
  const std::string content = keel::testing::readFile(current);
  CHECK(content.ends_with("a line of about thirty bytes 999\n"));
  CHECK((std::filesystem::status(dir / "logs").permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms::owner_all);
}

TEST_CASE("log store reports unknown, invalid and duplicate logs", "[log_store]") {
  auto store = makeStore({});
  CHECK(store->addLog("../etc").code() == StatusCode::kInvalidArgument);
  CHECK(store->addLog("").code() == StatusCode::kInvalidArgument);
  CHECK(store->addLog("Upper").code() == StatusCode::kInvalidArgument);
  REQUIRE(store->addLog("svc").isOk());
  CHECK(store->addLog("svc").code() == StatusCode::kAlreadyExists);
  CHECK(store->append("nope", "x").code() == StatusCode::kNotFound);
  CHECK(store->tail("nope", 1).status().code() == StatusCode::kNotFound);
  CHECK(store->follow("nope", [](const std::string&) {}).status().code() == StatusCode::kNotFound);
  CHECK(LogStore::create({.dir = {}, .maxLines = 0}).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("log followers get new lines until their subscription ends, even from inside the callback",
          "[log_store]") {
  auto store = makeStore({});
  REQUIRE(store->addLog("svc").isOk());
  REQUIRE(store->append("svc", "before").isOk());
  std::vector<std::string> seen;
  Subscription self;
  auto sub = store->follow("svc", [&](const std::string& line) {
    seen.push_back(line);
    if (line == "stop") self.reset();  // ends its own subscription from inside
  });
  REQUIRE(sub.ok());
  self = std::move(*sub);
  REQUIRE(store->append("svc", "one\ntwo\nstop\nafter").isOk());
  CHECK(seen == std::vector<std::string>{"one", "two", "stop"});
  CHECK_FALSE(self.active());
}

TEST_CASE("the spdlog sink writes machined's own lines into its log", "[log_store]") {
  auto store = makeStore({});
  REQUIRE(store->addLog("machined").isOk());
  auto sink = std::make_shared<LogStoreSink>(store, "machined");
  sink->set_pattern("[%l] %v");
  spdlog::logger logger("machined", sink);
  logger.info("listening on {}", "machined.sock");
  logger.warn("two\nlines");
  CHECK(*store->tail("machined", 10) ==
        std::vector<std::string>{"[info] listening on machined.sock", "[warning] two", "lines"});
}

}  // namespace
}  // namespace keel::supervisor
