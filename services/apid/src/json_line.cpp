#include "json_line.h"

#include <charconv>

namespace keel::apid {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool isContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629, table 3-7
// of the Unicode standard), or, if there is none, minus the length of its longest
// well-formed prefix (at least 1): that whole prefix is replaced by one U+FFFD.
int sequenceLength(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  int need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return -1;
  }
  for (int i = 1; i <= need; ++i) {
    if (static_cast<size_t>(i) >= s.size()) return -i;
    const auto c = static_cast<unsigned char>(s[i]);
    const bool ok = i == 1 ? (c >= lo && c <= hi) : isContinuation(c);
    if (!ok) return -i;
  }
  return need + 1;
}

}  // namespace

void appendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    // Plain printable ASCII is copied in runs.
    size_t run = i;
    while (run < s.size()) {
      const auto c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back('\\');
      switch (c) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '\b': out.push_back('b'); break;
        case '\f': out.push_back('f'); break;
        case '\n': out.push_back('n'); break;
        case '\r': out.push_back('r'); break;
        case '\t': out.push_back('t'); break;
        default:
          out.append("u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
      }
      ++i;
      continue;
    }
    const int n = sequenceLength(s.substr(i));
    if (n > 0) {
      out.append(s.data() + i, static_cast<size_t>(n));
      i += static_cast<size_t>(n);
    } else {
      out.append(kReplacement);
      i += static_cast<size_t>(-n);
    }
  }
  out.push_back('"');
}

void JsonLine::key(std::string_view k) {
  if (out_.size() > 1) out_.push_back(',');
  appendJsonString(out_, k);
  out_.push_back(':');
}

JsonLine& JsonLine::field(std::string_view k, std::string_view value) {
  key(k);
  appendJsonString(out_, value);
  return *this;
}

template <typename Integer>
JsonLine& JsonLine::integer(std::string_view k, Integer value) {
  key(k);
  char buf[24];  // 20 digits and a sign at most
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  out_.append(buf, r.ptr);
  return *this;
}

JsonLine& JsonLine::field(std::string_view k, int64_t value) { return integer(k, value); }

JsonLine& JsonLine::field(std::string_view k, uint64_t value) { return integer(k, value); }

JsonLine& JsonLine::field(std::string_view k, const std::vector<std::string>& values) {
  key(k);
  out_.push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out_.push_back(',');
    appendJsonString(out_, values[i]);
  }
  out_.push_back(']');
  return *this;
}

std::string JsonLine::finish() && {
  out_.push_back('}');
  return std::move(out_);
}

}  // namespace keel::apid
