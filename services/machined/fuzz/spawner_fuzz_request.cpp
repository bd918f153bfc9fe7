// libFuzzer target for the spawner's request decoder: the spawner runs outside machined's
// filter and must survive any bytes a compromised machined could send it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "spawner_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const auto fields = keel::supervisor::detail::decodeSpawnRequest(body);
  if (!fields) return 0;
  // What was decoded encodes and decodes back to the same request: the two sides of the
  // protocol agree, and nothing was skipped or invented.
  keel::supervisor::detail::Writer w;
  w.strings(fields->argv).strings(fields->env).str(fields->cwd);
  w.u8(fields->confine ? 1 : 0).u8(fields->hasIdentity ? 1 : 0).u32(fields->uid).u32(fields->gid);
  w.strings(fields->chownPaths).str(fields->seccompProfile);
  const auto again = keel::supervisor::detail::decodeSpawnRequest(w.take());
  if (!again || again->argv != fields->argv || again->env != fields->env || again->cwd != fields->cwd ||
      again->confine != fields->confine || again->hasIdentity != fields->hasIdentity || again->uid != fields->uid ||
      again->gid != fields->gid || again->chownPaths != fields->chownPaths ||
      again->seccompProfile != fields->seccompProfile ||
      again->seccompProfile.size() > keel::supervisor::detail::kMaxSeccompProfile) {
    __builtin_trap();
  }
  return 0;
}
