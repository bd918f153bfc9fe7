#include "keel/config/base64.h"

#include <catch2/catch_test_macros.hpp>

using keel::config::base64Decode;
using keel::config::base64Encode;

namespace {
std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }
}  // namespace

TEST_CASE("base64 encodes the RFC 4648 test vectors") {
  CHECK(base64Encode(bytes("")) == "");
  CHECK(base64Encode(bytes("f")) == "Zg==");
  CHECK(base64Encode(bytes("fo")) == "Zm8=");
  CHECK(base64Encode(bytes("foo")) == "Zm9v");
  CHECK(base64Encode(bytes("foobar")) == "Zm9vYmFy");
}

TEST_CASE("base64 decodes what it encodes, for every length") {
  std::vector<uint8_t> data;
  for (int i = 0; i < 70; ++i) {
    auto decoded = base64Decode(base64Encode(data));
    REQUIRE(decoded.ok());
    CHECK(*decoded == data);
    data.push_back(static_cast<uint8_t>(i * 37 + 11));
  }
}

TEST_CASE("base64 decoding refuses malformed text") {
  CHECK_FALSE(base64Decode("Zg=").ok());     // length
  CHECK_FALSE(base64Decode("Z!==").ok());    // alphabet
  CHECK_FALSE(base64Decode("Zg==Zg==").ok());  // padding in the middle
  CHECK_FALSE(base64Decode("Zh==").ok());    // non-zero bits under the padding
  CHECK_FALSE(base64Decode("Zm9v\n").ok());
}
