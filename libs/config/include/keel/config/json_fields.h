// Strict reading of JSON documents that configure security-relevant things: every
// error names the JSON path of the field at fault, and a field nobody reads is refused
// by name, so a typo ("certSans") is never silently ignored.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "keel/common/status.h"

namespace keel::config {

// "path: message" as INVALID_ARGUMENT.
Status fieldError(std::string_view path, std::string_view message);

// Parses JSON text; the error gives line and column. Duplicate keys are refused.
Result<nlohmann::json> parseJson(std::string_view text);

// Reads one JSON object. Keeps a pointer to `value`, which must outlive the reader.
class ObjectReader {
 public:
  // Errors when `value` is not an object. `path` is the object's JSON path ("" for the root).
  static Result<ObjectReader> open(const nlohmann::json& value, std::string path);

  std::string pathOf(std::string_view key) const;
  const std::string& path() const { return path_; }
  bool has(std::string_view key) const;

  Result<std::string> requiredString(std::string_view key);
  Result<std::optional<std::string>> optionalString(std::string_view key);
  Result<int64_t> requiredInteger(std::string_view key);
  Result<std::optional<int64_t>> optionalInteger(std::string_view key);
  // An integer in [min, max], or `fallback` when absent.
  Result<int64_t> boundedInteger(std::string_view key, int64_t fallback, int64_t min, int64_t max);
  // A missing array reads as empty.
  Result<std::vector<std::string>> stringArray(std::string_view key);
  // A missing array reads as empty; each element must be an object.
  Result<std::vector<ObjectReader>> objectArray(std::string_view key);
  Result<ObjectReader> requiredObject(std::string_view key);
  Result<std::optional<ObjectReader>> optionalObject(std::string_view key);
  // Every key of the object, marking them all read (for maps with free-form keys).
  std::vector<std::string> allKeys();
  const nlohmann::json& raw() const { return *value_; }
  // The raw value of `key` (null when absent), marked read: for types the helpers above
  // do not cover.
  const nlohmann::json* field(std::string_view key) { return find(key); }

  // Refuses a field that is present: `why` says why it is not allowed here.
  Status refuse(std::string_view key, std::string_view why) const;
  // Errors naming the first field that was never read.
  Status finish() const;

 private:
  ObjectReader(const nlohmann::json* value, std::string path) : value_(value), path_(std::move(path)) {}
  const nlohmann::json* find(std::string_view key);

  const nlohmann::json* value_;
  std::string path_;
  std::set<std::string, std::less<>> read_;
};

// Checks a "version" field equals `expected`.
Status checkVersion(ObjectReader& root, int64_t expected);

}  // namespace keel::config
