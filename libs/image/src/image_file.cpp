#include "keel/image/image_file.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

namespace keel::image {

namespace {

using nlohmann::json;

bool isLowerHex(std::string_view s) {
  return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

void putLe32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t getLe32(std::string_view in) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[static_cast<size_t>(i)]);
  return v;
}

// The field `key` of `object`, of the JSON type `isType` checks; `what` names it in errors.
Result<const json*> field(const json& object, const char* key, bool (json::*isType)() const noexcept,
                          std::string_view typeName, std::string_view what) {
  const auto it = object.find(key);
  if (it == object.end()) return invalidArgument(fmt::format("{}: expected '{}', found none", what, key));
  if (!((*it).*isType)()) return invalidArgument(fmt::format("{}: expected '{}' as {}", what, key, typeName));
  return &*it;
}

Status onlyKeys(const json& object, const std::set<std::string>& keys, std::string_view what) {
  for (const auto& [k, _] : object.items()) {
    if (!keys.contains(k)) return invalidArgument(fmt::format("{}: unknown field '{}'", what, k));
  }
  return Status::ok();
}

Result<std::string> hexField(const json& object, const char* key, size_t minLen, size_t maxLen,
                             std::string_view what) {
  KEEL_ASSIGN_OR_RETURN(const json* v, field(object, key, &json::is_string, "a string", what));
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() < minLen || s.size() > maxLen || s.size() % 2 != 0 || !isLowerHex(s)) {
    return invalidArgument(fmt::format("{}: expected '{}' as {} to {} lowercase hex digits, found '{}'", what,
                                       key, minLen, maxLen, s.substr(0, 80)));
  }
  return s;
}

Result<uint64_t> numberField(const json& object, const char* key, std::string_view what) {
  KEEL_ASSIGN_OR_RETURN(const json* v,
                        field(object, key, &json::is_number_unsigned, "an unsigned integer", what));
  return v->get<uint64_t>();
}

Result<Part> parsePart(const json& p, size_t index) {
  const std::string what = fmt::format("manifest part {}", index);
  if (!p.is_object()) return invalidArgument(what + ": expected an object");
  KEEL_RETURN_IF_ERROR(onlyKeys(p, {"name", "offset", "size", "sha256"}, what));
  Part part;
  KEEL_ASSIGN_OR_RETURN(const json* name, field(p, "name", &json::is_string, "a string", what));
  part.name = name->get<std::string>();
  KEEL_ASSIGN_OR_RETURN(part.offset, numberField(p, "offset", what));
  KEEL_ASSIGN_OR_RETURN(part.size, numberField(p, "size", what));
  KEEL_ASSIGN_OR_RETURN(part.sha256, hexField(p, "sha256", 64, 64, what));
  return part;
}

// The parts follow kPartNames, end to end from offset 0, each non-empty.
Status checkLayout(const std::vector<Part>& parts) {
  if (parts.size() != kPartNames.size()) {
    return invalidArgument(
        fmt::format("manifest: expected {} parts (kernel, initramfs, root, verity), found {}",
                    kPartNames.size(), parts.size()));
  }
  uint64_t next = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Part& p = parts[i];
    if (p.name != kPartNames[i]) {
      return invalidArgument(fmt::format("manifest: expected part {} to be '{}', found '{}'", i,
                                         kPartNames[i], p.name.substr(0, 40)));
    }
    if (p.size == 0) return invalidArgument(fmt::format("manifest: part {} is empty", p.name));
    if (p.offset != next) {
      return invalidArgument(
          fmt::format("manifest: part {} starts at {}, expected {}: parts follow one another "
                      "without a gap or an overlap",
                      p.name, p.offset, next));
    }
    if (p.size > kMaxPayloadBytes - next) {
      return invalidArgument(fmt::format("manifest: the parts end past {} bytes, more than an image may hold",
                                         kMaxPayloadBytes));
    }
    next = p.offset + p.size;
  }
  return Status::ok();
}

Result<Verity> parseVerity(const json& manifest) {
  const std::string what = "manifest verity";
  KEEL_ASSIGN_OR_RETURN(const json* v, field(manifest, "verity", &json::is_object, "an object", "manifest"));
  KEEL_RETURN_IF_ERROR(
      onlyKeys(*v, {"root_hash", "salt", "hash_algorithm", "data_block_size", "hash_block_size"}, what));
  Verity verity;
  KEEL_ASSIGN_OR_RETURN(verity.rootHash, hexField(*v, "root_hash", 64, 64, what));
  KEEL_ASSIGN_OR_RETURN(verity.salt, hexField(*v, "salt", 0, 512, what));
  KEEL_ASSIGN_OR_RETURN(const json* alg, field(*v, "hash_algorithm", &json::is_string, "a string", what));
  verity.hashAlgorithm = alg->get<std::string>();
  if (verity.hashAlgorithm != "sha256") {
    return invalidArgument(fmt::format("{}: expected hash_algorithm 'sha256', found '{}'", what,
                                       verity.hashAlgorithm.substr(0, 40)));
  }
  for (auto [key, out] : {std::pair{"data_block_size", &verity.dataBlockSize},
                          std::pair{"hash_block_size", &verity.hashBlockSize}}) {
    KEEL_ASSIGN_OR_RETURN(const uint64_t n, numberField(*v, key, what));
    if (n < 512 || n > 65536 || (n & (n - 1)) != 0) {
      return invalidArgument(
          fmt::format("{}: expected {} as a power of two from 512 to 65536, found {}", what, key, n));
    }
    *out = static_cast<uint32_t>(n);
  }
  return verity;
}

}  // namespace

std::string Version::toString() const {
  return fmt::format("{}.{}.{}", major, minor, patch);
}

Result<Version> parseVersion(std::string_view text) {
  Version v;
  uint32_t* fields[] = {&v.major, &v.minor, &v.patch};
  size_t start = 0;
  for (size_t i = 0; i < 3; ++i) {
    size_t end = i < 2 ? text.find('.', start) : text.size();
    if (end == std::string_view::npos) end = text.size();
    const std::string_view digits = text.substr(start, end - start);
    if (digits.empty() || digits.size() > 6 || !std::all_of(digits.begin(), digits.end(), ::isdigit) ||
        (digits.size() > 1 && digits[0] == '0') || (i < 2 && end == text.size())) {
      return invalidArgument(fmt::format(
          "expected a version MAJOR.MINOR.PATCH (for example 0.1.0), found '{}'", text.substr(0, 40)));
    }
    for (const char c : digits) *fields[i] = *fields[i] * 10 + static_cast<uint32_t>(c - '0');
    start = end + 1;
  }
  return v;
}

uint64_t Manifest::payloadSize() const {
  return parts.empty() ? 0 : parts.back().offset + parts.back().size;
}

const Part* Manifest::part(std::string_view name) const {
  for (const auto& p : parts) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string formatHeader(size_t manifestSize) {
  std::string out(kMagic);
  putLe32(out, kFormatVersion);
  putLe32(out, static_cast<uint32_t>(manifestSize));
  return out;
}

Result<size_t> parseHeader(std::string_view header) {
  if (header.size() < kHeaderSize || header.substr(0, kMagic.size()) != kMagic) {
    return invalidArgument(
        "not a Keel image file: expected it to start with 'KEELIMG' (a file of 'ninja image' "
        "named keel-VERSION.img)");
  }
  const uint32_t format = getLe32(header.substr(8, 4));
  if (format != kFormatVersion) {
    return invalidArgument(fmt::format("image format {}: expected format {}", format, kFormatVersion));
  }
  const uint32_t size = getLe32(header.substr(12, 4));
  if (size == 0 || size > kMaxManifestBytes) {
    return invalidArgument(
        fmt::format("image manifest of {} bytes: expected 1 to {}", size, kMaxManifestBytes));
  }
  return size_t{size};
}

std::string serializeManifest(const Manifest& m) {
  json parts = json::array();
  for (const auto& p : m.parts) {
    parts.push_back({{"name", p.name}, {"offset", p.offset}, {"size", p.size}, {"sha256", p.sha256}});
  }
  const json j = {{"format", m.format},
                  {"version", m.version.toString()},
                  {"build_id", m.buildId},
                  {"parts", parts},
                  {"verity",
                   {{"root_hash", m.verity.rootHash},
                    {"salt", m.verity.salt},
                    {"hash_algorithm", m.verity.hashAlgorithm},
                    {"data_block_size", m.verity.dataBlockSize},
                    {"hash_block_size", m.verity.hashBlockSize}}}};
  return j.dump(2) + "\n";
}

Result<Manifest> parseManifest(std::string_view text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return invalidArgument("manifest: expected a JSON object");
  KEEL_RETURN_IF_ERROR(onlyKeys(j, {"format", "version", "build_id", "parts", "verity"}, "manifest"));
  Manifest m;
  KEEL_ASSIGN_OR_RETURN(const uint64_t format, numberField(j, "format", "manifest"));
  if (format != kFormatVersion) {
    return invalidArgument(fmt::format("manifest: expected format {}, found {}", kFormatVersion, format));
  }
  KEEL_ASSIGN_OR_RETURN(const json* version, field(j, "version", &json::is_string, "a string", "manifest"));
  KEEL_ASSIGN_OR_RETURN(m.version, parseVersion(version->get_ref<const std::string&>()));
  KEEL_ASSIGN_OR_RETURN(const json* buildId, field(j, "build_id", &json::is_string, "a string", "manifest"));
  m.buildId = buildId->get<std::string>();
  if (m.buildId.empty() || m.buildId.size() > 128 ||
      !std::all_of(m.buildId.begin(), m.buildId.end(), [](char c) { return c > ' ' && c < 127; })) {
    return invalidArgument("manifest: expected build_id as 1 to 128 printable characters without spaces");
  }
  KEEL_ASSIGN_OR_RETURN(const json* parts, field(j, "parts", &json::is_array, "an array", "manifest"));
  if (parts->size() > kPartNames.size()) {
    return invalidArgument(
        fmt::format("manifest: expected {} parts, found {}", kPartNames.size(), parts->size()));
  }
  for (size_t i = 0; i < parts->size(); ++i) {
    KEEL_ASSIGN_OR_RETURN(auto part, parsePart((*parts)[i], i));
    m.parts.push_back(std::move(part));
  }
  KEEL_RETURN_IF_ERROR(checkLayout(m.parts));
  KEEL_ASSIGN_OR_RETURN(m.verity, parseVerity(j));
  if (m.part("root")->size % m.verity.dataBlockSize != 0) {
    return invalidArgument(
        fmt::format("manifest: the root's {} bytes are not a whole number of {}-byte verity blocks",
                    m.part("root")->size, m.verity.dataBlockSize));
  }
  return m;
}

void layOutParts(std::vector<Part>& parts) {
  uint64_t next = 0;
  for (auto& p : parts) {
    p.offset = next;
    next += p.size;
  }
}

std::string sha256(std::string_view bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), out, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string toHex(std::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (const unsigned char c : raw) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

Result<ImageHead> readImageHead(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return notFound(fmt::format("image {}: cannot be opened", path.string()));
  ImageHead head;
  std::error_code ec;
  head.fileSize = std::filesystem::file_size(path, ec);
  if (ec) return internalError(fmt::format("image {}: {}", path.string(), ec.message()));
  std::string header(kHeaderSize, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header.size()));
  header.resize(static_cast<size_t>(in.gcount()));
  auto size = parseHeader(header);
  if (!size.ok()) return size.status().withContext(path.string());
  head.manifestBytes.resize(*size);
  in.read(head.manifestBytes.data(), static_cast<std::streamsize>(*size));
  if (static_cast<size_t>(in.gcount()) != *size) {
    return invalidArgument(fmt::format("{}: the file ends inside its manifest", path.string()));
  }
  auto manifest = parseManifest(head.manifestBytes);
  if (!manifest.ok()) return manifest.status().withContext(path.string());
  head.manifest = std::move(manifest).value();
  const uint64_t expected = kHeaderSize + *size + head.manifest.payloadSize();
  if (head.fileSize != expected) {
    return invalidArgument(
        fmt::format("{}: {} bytes, but its manifest describes {}", path.string(), head.fileSize, expected));
  }
  return head;
}

}  // namespace keel::image
