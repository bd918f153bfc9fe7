// Fuzzes the parser of machine configs (read by machined at boot).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/config/machine_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)keel::config::parseMachineConfig(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
