// One JSON object on one line, written field by field straight into a string: the audit
// log writes one per call, and building a JSON document first cost more than the call's
// own forwarding. Strings are escaped per RFC 8259; bytes that are not UTF-8 (client
// certificates and method names come from clients) become U+FFFD, so the line is always
// valid UTF-8 and valid JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace keel::apid {

// Appends `s` as a JSON string literal, quotes included.
void appendJsonString(std::string& out, std::string_view s);

class JsonLine {
 public:
  JsonLine() { out_.reserve(384); }

  JsonLine& field(std::string_view key, std::string_view value);
  JsonLine& field(std::string_view key, const char* value) { return field(key, std::string_view(value)); }
  JsonLine& field(std::string_view key, int64_t value);
  JsonLine& field(std::string_view key, uint64_t value);
  JsonLine& field(std::string_view key, const std::vector<std::string>& values);

  // The object, without a newline. The builder is spent afterwards.
  std::string finish() &&;

 private:
  void key(std::string_view k);
  template <typename Integer>
  JsonLine& integer(std::string_view k, Integer value);
  std::string out_ = "{";
};

}  // namespace keel::apid
