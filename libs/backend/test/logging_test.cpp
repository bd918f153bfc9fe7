#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/details/log_msg.h>

#include "keel/backend/logging.h"

TEST_CASE("log lines are JSON objects with time, level, daemon and the escaped message") {
  auto formatter = keel::backend::jsonLineFormatter("timed");
  const std::string payload = "quote \" backslash \\ newline \n bad utf-8 \xff end";
  spdlog::details::log_msg msg(spdlog::source_loc{}, "timed", spdlog::level::warn, payload);
  spdlog::memory_buf_t out;
  formatter->format(msg, out);
  const std::string line(out.data(), out.size());
  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  const auto j = nlohmann::json::parse(line);
  CHECK(j["level"] == "warning");
  CHECK(j["daemon"] == "timed");
  CHECK(j["msg"].get<std::string>().find("quote \" backslash \\ newline \n bad utf-8 ") == 0);
  CHECK(j["time"].get<std::string>().size() == 24);
  CHECK(j["time"].get<std::string>().back() == 'Z');
}

TEST_CASE("an unknown log level is refused") {
  CHECK_FALSE(keel::backend::setUpLogging("timed", "loud"));
  CHECK(keel::backend::setUpLogging("timed", "debug"));
}
