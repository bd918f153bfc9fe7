#include "json_line.h"

#include <nlohmann/json.hpp>

#include <catch2/catch_test_macros.hpp>

namespace keel::apid {
namespace {

std::string jsonQuoted(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}

TEST_CASE("JSON strings escape quotes, backslashes and control characters", "[audit][json]") {
  CHECK(jsonQuoted("plain text/ok") == "\"plain text/ok\"");
  CHECK(jsonQuoted("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(jsonQuoted("\b\f\n\r\t") == "\"\\b\\f\\n\\r\\t\"");
  CHECK(jsonQuoted(std::string_view("\x00\x01\x1f", 3)) == "\"\\u0000\\u0001\\u001f\"");
  CHECK(jsonQuoted("\x7f") == "\"\x7f\"");  // DEL needs no escape in JSON
  CHECK(jsonQuoted("") == "\"\"");
}

TEST_CASE("well-formed UTF-8 passes through unchanged", "[audit][json]") {
  for (const std::string s : {"caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x94\x91", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf",
                              "\xed\x9f\xbf"}) {
    INFO(s);
    CHECK(jsonQuoted(s) == "\"" + s + "\"");
    CHECK(nlohmann::json::parse(jsonQuoted(s)).get<std::string>() == s);
  }
}

TEST_CASE("bytes that are not UTF-8 become U+FFFD, one per maximal ill-formed part", "[audit][json]") {
  const std::string r = "\xef\xbf\xbd";
  CHECK(jsonQuoted("\xff") == "\"" + r + "\"");
  CHECK(jsonQuoted("\x80" "a") == "\"" + r + "a\"");                    // stray continuation byte
  CHECK(jsonQuoted("\xc0\xaf") == "\"" + r + r + "\"");                 // overlong: never a lead byte
  CHECK(jsonQuoted("\xe0\x80\x80") == "\"" + r + r + r + "\"");         // overlong three-byte form
  CHECK(jsonQuoted("\xed\xa0\x80") == "\"" + r + r + r + "\"");         // a surrogate
  CHECK(jsonQuoted("\xf4\x90\x80\x80") == "\"" + r + r + r + r + "\""); // above U+10FFFF
  CHECK(jsonQuoted("\xe1\x80" "A") == "\"" + r + "A\"");                // truncated, then ASCII
  CHECK(jsonQuoted("x\xf0\x9f\x94") == "\"x" + r + "\"");               // truncated at the end
  for (const std::string s : {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe1\x80", "a\xf0\x9f"}) {
    CHECK_NOTHROW(nlohmann::json::parse(jsonQuoted(s)));  // the parser refuses invalid UTF-8
  }
}

TEST_CASE("a JSON line holds strings, numbers and string lists in the order written", "[audit][json]") {
  JsonLine line;
  line.field("s", "v").field("neg", int64_t{-42}).field("big", uint64_t{18446744073709551615ULL}).field(
      "list", std::vector<std::string>{"a", "b\"c"});
  line.field("empty", std::vector<std::string>{});
  const std::string text = std::move(line).finish();
  CHECK(text == R"({"s":"v","neg":-42,"big":18446744073709551615,"list":["a","b\"c"],"empty":[]})");
  CHECK(JsonLine().finish() == "{}");
}

}  // namespace
}  // namespace keel::apid
