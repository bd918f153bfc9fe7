// Fuzzes the duration parser (command-line input).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/config/duration.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto d = keel::config::parseDuration(text, std::chrono::hours(24 * 365 * 100)); d.ok()) {
    KEEL_RELEASE_ASSERT(d->count() > 0, "parsed a non-positive duration");
  }
  return 0;
}
