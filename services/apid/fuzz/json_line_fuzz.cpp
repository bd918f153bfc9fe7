// Fuzzes the audit log's JSON writer with arbitrary bytes: every line must parse as JSON
// (nlohmann's parser rejects invalid UTF-8), and a string that was valid UTF-8 must come
// back unchanged.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "json_line.h"

namespace {

bool isValidUtf8(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Up to three strings, separated by 0xFF (which never occurs in UTF-8).
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0xFF && parts.size() < 3) {
      parts.emplace_back();
    } else {
      parts.back().push_back(static_cast<char>(data[i]));
    }
  }
  keel::apid::JsonLine line;
  line.field("a", parts[0]).field("n", static_cast<int64_t>(size)).field("list", parts);
  const std::string text = std::move(line).finish();
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    std::abort();  // not JSON, or not UTF-8
  }
  if (parsed.at("n").get<int64_t>() != static_cast<int64_t>(size)) std::abort();
  const auto& list = parsed.at("list");
  if (!list.is_array() || list.size() != parts.size()) std::abort();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (isValidUtf8(parts[i]) && list[i].get<std::string>() != parts[i]) std::abort();
  }
  if (isValidUtf8(parts[0]) && parsed.at("a").get<std::string>() != parts[0]) std::abort();
  return 0;
}
