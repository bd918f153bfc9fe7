// Fuzzes the parser of secrets bundles.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/config/secrets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)keel::config::parseSecrets(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
