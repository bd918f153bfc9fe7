// Small text helpers shared by the parsers of files and headers.
#pragma once

#include <string_view>

namespace keel {

// True for the ASCII white space of configuration text and headers: space, tab, line
// feed, carriage return, vertical tab, form feed. Independent of the locale.
constexpr bool isAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// `s` without the ASCII white space at either end.
constexpr std::string_view trim(std::string_view s) {
  while (!s.empty() && isAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace keel
