// Small helpers shared by the procfs parsers: line and field splitting, strict
// number parsing, and DATA_LOSS messages that name the file, the line and what was found.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"
#include "keel/common/text.h"

namespace keel::facts::text {

using keel::trim;

// Iterates over '\n'-separated lines, counting from 1. A final line without '\n' counts.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : rest_(text) {}

  bool next(std::string_view& line) {
    if (rest_.empty()) return false;
    const size_t nl = rest_.find('\n');
    line = rest_.substr(0, nl);
    rest_ = nl == std::string_view::npos ? std::string_view{} : rest_.substr(nl + 1);
    ++number_;
    return true;
  }
  size_t number() const { return number_; }

 private:
  std::string_view rest_;
  size_t number_ = 0;
};

inline bool isBlank(char c) {
  return c == ' ' || c == '\t';
}

inline bool isSpace(char c) {
  return isBlank(c) || c == '\r' || c == '\n';
}

// Splits on runs of spaces and tabs; never returns empty fields.
inline std::vector<std::string_view> fields(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && isBlank(s[i])) ++i;
    const size_t start = i;
    while (i < s.size() && !isBlank(s[i])) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// The whole of `s` as a number, or nothing: no sign for unsigned, no trailing bytes.
template <typename T>
std::optional<T> parseNumber(std::string_view s) {
  T value{};
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (s.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

// A printable, bounded rendering of untrusted text for an error message.
inline std::string quote(std::string_view s) {
  constexpr size_t kMax = 80;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (s.size() > kMax) out += "…";
  out += "'";
  return out;
}

inline Status malformed(std::string_view source, size_t line, std::string_view expected,
                        std::string_view found) {
  return dataLoss(std::string(source) + " line " + std::to_string(line) + ": expected " +
                  std::string(expected) + ", found " + quote(found));
}

inline Status missing(std::string_view source, std::string_view what) {
  return dataLoss(std::string(source) + ": expected " + std::string(what) + ", found none");
}

}  // namespace keel::facts::text
