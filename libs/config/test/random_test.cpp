#include "keel/config/random.h"

#include <catch2/catch_test_macros.hpp>
#include <deque>
#include <map>
#include <regex>
#include <set>

using namespace keel::config;

namespace {

// Plays back scripted bytes, then zeros.
class ScriptedRandom final : public RandomSource {
 public:
  explicit ScriptedRandom(std::deque<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  void fill(std::span<uint8_t> out) override {
    for (auto& b : out) {
      if (bytes_.empty()) {
        b = 0;
      } else {
        b = bytes_.front();
        bytes_.pop_front();
      }
    }
  }

 private:
  std::deque<uint8_t> bytes_;
};

}  // namespace

TEST_CASE("tokens have the form [a-z0-9]{6}.[a-z0-9]{16}") {
  SystemRandom random;
  const std::regex re("[a-z0-9]{6}\\.[a-z0-9]{16}");
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const auto token = generateToken(random);
    CHECK(std::regex_match(token, re));
    CHECK(isValidToken(token));
    seen.insert(token);
  }
  CHECK(seen.size() == 200);
}

TEST_CASE("random strings skip the bytes that would bias the first characters") {
  // 36 characters: 252 = 7 * 36 is the limit; 252..255 must be drawn again.
  ScriptedRandom random({255, 252, 253, 254, 0, 251, 36});
  const auto s = randomString(random, "abcdefghijklmnopqrstuvwxyz0123456789", 3);
  CHECK(s == "a9a");
}

TEST_CASE("every token character is used about equally often") {
  SystemRandom random;
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::map<char, int> counts;
  const int n = 36 * 2000;
  for (const char c : randomString(random, alphabet, n)) ++counts[c];
  REQUIRE(counts.size() == 36);
  for (const auto& [c, count] : counts) {
    CHECK(count > 1700);  // expected 2000, standard deviation about 44
    CHECK(count < 2300);
  }
}

TEST_CASE("isValidToken refuses near misses") {
  CHECK(isValidToken("abcdef.0123456789abcdef"));
  CHECK_FALSE(isValidToken("ABCDEF.0123456789abcdef"));
  CHECK_FALSE(isValidToken("abcdef0123456789abcdef0"));
  CHECK_FALSE(isValidToken("abcdef.0123456789abcde"));
  CHECK_FALSE(isValidToken("abcdef.0123456789abcdef "));
  CHECK_FALSE(isValidToken(""));
}
