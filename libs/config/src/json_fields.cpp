#include "keel/config/json_fields.h"

#include <fmt/format.h>

namespace keel::config {
namespace {

std::string typeOf(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

}  // namespace

Status fieldError(std::string_view path, std::string_view message) {
  return invalidArgument(path.empty() ? std::string(message) : fmt::format("{}: {}", path, message));
}

Result<nlohmann::json> parseJson(std::string_view text) {
  // A key given twice would let one copy hide the other from a reviewer; refuse it.
  std::string duplicate;
  std::vector<std::set<std::string>> keysSeen;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    switch (event) {
      case nlohmann::json::parse_event_t::object_start: keysSeen.emplace_back(); break;
      case nlohmann::json::parse_event_t::object_end: keysSeen.pop_back(); break;
      case nlohmann::json::parse_event_t::key:
        if (!keysSeen.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default: break;
    }
    return true;
  };
  try {
    auto json = nlohmann::json::parse(text.begin(), text.end(), callback);
    if (!duplicate.empty()) return invalidArgument(fmt::format("invalid JSON: key \"{}\" appears twice", duplicate));
    return json;
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() starts with "[json.exception.parse_error.101] "; keep the readable part.
    std::string what = e.what();
    if (const size_t end = what.find("] "); what.starts_with("[json.exception") && end != std::string::npos) {
      what = what.substr(end + 2);
    }
    return invalidArgument(fmt::format("invalid JSON: {}", what));
  } catch (const nlohmann::json::exception& e) {
    return invalidArgument(fmt::format("invalid JSON: {}", e.what()));
  }
}

Result<ObjectReader> ObjectReader::open(const nlohmann::json& value, std::string path) {
  if (!value.is_object()) {
    return fieldError(path.empty() ? "document" : path, fmt::format("expected an object, found {}", typeOf(value)));
  }
  return ObjectReader(&value, std::move(path));
}

std::string ObjectReader::pathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

bool ObjectReader::has(std::string_view key) const { return value_->contains(key); }

const nlohmann::json* ObjectReader::find(std::string_view key) {
  read_.emplace(key);
  const auto it = value_->find(key);
  return it == value_->end() ? nullptr : &*it;
}

Result<std::string> ObjectReader::requiredString(std::string_view key) {
  auto v = optionalString(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return fieldError(pathOf(key), "missing (required string)");
  return std::move(**v);
}

Result<std::optional<std::string>> ObjectReader::optionalString(std::string_view key) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return fieldError(pathOf(key), fmt::format("expected a string, found {}", typeOf(*v)));
  return std::optional<std::string>(v->get<std::string>());
}

Result<int64_t> ObjectReader::requiredInteger(std::string_view key) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fieldError(pathOf(key), "missing (required integer)");
  if (!v->is_number_integer()) return fieldError(pathOf(key), fmt::format("expected an integer, found {}", typeOf(*v)));
  return v->get<int64_t>();
}

Result<std::optional<int64_t>> ObjectReader::optionalInteger(std::string_view key) {
  if (!has(key)) return std::optional<int64_t>();
  KEEL_ASSIGN_OR_RETURN(const int64_t v, requiredInteger(key));
  return std::optional<int64_t>(v);
}

Result<int64_t> ObjectReader::boundedInteger(std::string_view key, int64_t fallback, int64_t min, int64_t max) {
  KEEL_ASSIGN_OR_RETURN(const auto v, optionalInteger(key));
  if (!v) return fallback;
  if (*v < min || *v > max) return fieldError(pathOf(key), fmt::format("expected {}..{}, found {}", min, max, *v));
  return *v;
}

Result<std::vector<std::string>> ObjectReader::stringArray(std::string_view key) {
  const nlohmann::json* v = find(key);
  std::vector<std::string> out;
  if (v == nullptr) return out;
  if (!v->is_array()) return fieldError(pathOf(key), fmt::format("expected an array of strings, found {}", typeOf(*v)));
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& item = (*v)[i];
    if (!item.is_string()) {
      return fieldError(fmt::format("{}[{}]", pathOf(key), i), fmt::format("expected a string, found {}", typeOf(item)));
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<std::vector<ObjectReader>> ObjectReader::objectArray(std::string_view key) {
  const nlohmann::json* v = find(key);
  std::vector<ObjectReader> out;
  if (v == nullptr) return out;
  if (!v->is_array()) return fieldError(pathOf(key), fmt::format("expected an array of objects, found {}", typeOf(*v)));
  for (size_t i = 0; i < v->size(); ++i) {
    KEEL_ASSIGN_OR_RETURN(auto reader, open((*v)[i], fmt::format("{}[{}]", pathOf(key), i)));
    out.push_back(std::move(reader));
  }
  return out;
}

Result<ObjectReader> ObjectReader::requiredObject(std::string_view key) {
  auto v = optionalObject(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return fieldError(pathOf(key), "missing (required object)");
  return std::move(**v);
}

Result<std::optional<ObjectReader>> ObjectReader::optionalObject(std::string_view key) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::optional<ObjectReader>();
  KEEL_ASSIGN_OR_RETURN(auto reader, open(*v, pathOf(key)));
  return std::optional<ObjectReader>(std::move(reader));
}

std::vector<std::string> ObjectReader::allKeys() {
  std::vector<std::string> keys;
  for (const auto& [k, v] : value_->items()) {
    read_.insert(k);
    keys.push_back(k);
  }
  return keys;
}

Status ObjectReader::refuse(std::string_view key, std::string_view why) const {
  if (!has(key)) return Status::ok();
  return fieldError(pathOf(key), why);
}

Status ObjectReader::finish() const {
  for (const auto& [k, v] : value_->items()) {
    if (read_.find(k) == read_.end()) {
      return fieldError(pathOf(k), "unknown field (check its spelling against the schema)");
    }
  }
  return Status::ok();
}

Status checkVersion(ObjectReader& root, int64_t expected) {
  KEEL_ASSIGN_OR_RETURN(const int64_t version, root.requiredInteger("version"));
  if (version != expected) {
    return fieldError(root.pathOf("version"), fmt::format("unsupported version: expected {}, found {}", expected, version));
  }
  return Status::ok();
}

}  // namespace keel::config
