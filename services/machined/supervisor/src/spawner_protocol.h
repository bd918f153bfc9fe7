// The spawner's wire format: plain data over SOCK_SEQPACKET, bounds-checked on read.
// Kept apart from the spawner so the request decoder can be fuzzed on its own: the
// spawner runs outside machined's filter and treats machined's requests as untrusted.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel::supervisor::detail {

class Writer {
 public:
  Writer& u8(std::uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  Writer& u32(std::uint32_t v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Writer& str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
    return *this;
  }
  Writer& strings(const std::vector<std::string>& v) {
    u32(static_cast<std::uint32_t>(v.size()));
    for (const auto& s : v) str(s);
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(std::uint8_t& v) {
    if (in_.size() < 1) return fail();
    v = static_cast<std::uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (in_.size() < sizeof v) return fail();
    std::memcpy(&v, in_.data(), sizeof v);
    in_.remove_prefix(sizeof v);
    return true;
  }
  bool str(std::string& s) {
    std::uint32_t n = 0;
    if (!u32(n) || in_.size() < n) return fail();
    s.assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool strings(std::vector<std::string>& v) {
    std::uint32_t n = 0;
    if (!u32(n) || n > in_.size()) return fail();
    v.resize(n);
    for (auto& s : v) {
      if (!str(s)) return false;
    }
    return true;
  }
  bool done() const { return ok_ && in_.empty(); }

 private:
  bool fail() {
    ok_ = false;
    return false;
  }
  std::string_view in_;
  bool ok_ = true;
};

// Longest seccomp profile a spawn request may carry (the text a backend's manifest names,
// at most 32 KiB, and the rules machined adds to it).
inline constexpr std::uint32_t kMaxSeccompProfile = 48 * 1024;

// The fields of a spawn request, after its type byte.
struct SpawnRequestFields {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  bool confine = false;
  bool hasIdentity = false;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::string> chownPaths;
  // parsePolicy text to confine the service with; empty: the extension profile.
  std::string seccompProfile;
};

// Decodes a spawn request body; nullopt when it is malformed or has trailing bytes.
inline std::optional<SpawnRequestFields> decodeSpawnRequest(std::string_view body) {
  Reader in(body);
  SpawnRequestFields f;
  std::uint8_t confine = 0;
  std::uint8_t hasIdentity = 0;
  in.strings(f.argv);
  in.strings(f.env);
  in.str(f.cwd);
  in.u8(confine);
  in.u8(hasIdentity);
  in.u32(f.uid);
  in.u32(f.gid);
  in.strings(f.chownPaths);
  in.str(f.seccompProfile);
  if (!in.done() || f.seccompProfile.size() > kMaxSeccompProfile) return std::nullopt;
  f.confine = confine != 0;
  f.hasIdentity = hasIdentity != 0;
  return f;
}

}  // namespace keel::supervisor::detail
