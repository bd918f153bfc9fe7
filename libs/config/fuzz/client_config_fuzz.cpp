// Fuzzes the parser of client configs (files users receive and merge).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/config/client_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)keel::config::parseClientConfig(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
