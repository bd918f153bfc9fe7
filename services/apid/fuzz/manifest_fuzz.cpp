// Fuzzes the parsers of apid's JSON inputs: its config and backend manifests (which any
// extension's installer writes).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "apid_config.h"
#include "backend_manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)keel::apid::parseApidConfig(text);
  (void)keel::apid::listenPort(text);
  (void)keel::apid::parseBackendManifest(text);
  return 0;
}
