// Fuzzes the seccomp profile parser: profiles are reviewed, but they are still text that
// decides what a daemon may do, and a parser crash would take the daemon down at start.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/sandbox/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool lift = size > 0 && (data[0] & 1) != 0;
  const keel::sandbox::DenyExceptions exceptions{lift, lift, lift};
  if (auto policy = keel::sandbox::parsePolicy(text, exceptions); policy.ok()) {
    KEEL_RELEASE_ASSERT(!policy->rules.empty(), "parsed a profile with no rule");
    for (const auto& rule : policy->rules) {
      KEEL_RELEASE_ASSERT(rule.number >= 0, "accepted a pseudo-syscall");
      KEEL_RELEASE_ASSERT(!keel::sandbox::isHardDenied(rule.name, exceptions),
                          "accepted a hard-denied syscall");
      KEEL_RELEASE_ASSERT(rule.conditions.size() <= 6, "more conditions than arguments");
      for (const auto& c : rule.conditions) KEEL_RELEASE_ASSERT(c.index <= 5, "argument index out of range");
    }
  }
  return 0;
}
