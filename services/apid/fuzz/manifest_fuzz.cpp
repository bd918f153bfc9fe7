// Fuzzes the parsers of apid's JSON inputs. The fuzz build has no protobuf, and the
// backend manifest parser (routes.cpp) needs it, so only the apid config is fuzzed here.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "apid_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)keel::apid::parseApidConfig(text);
  (void)keel::apid::listenPort(text);
  return 0;
}
