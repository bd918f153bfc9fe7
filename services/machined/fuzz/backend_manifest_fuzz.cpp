// libFuzzer target for the backend manifest parser: manifests are installed files, and a
// broken or hostile one must be refused by name, never crash machined or slip through.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "src/backends/backend_manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto m = keel::machined::parseBackendManifest(text, "/usr/libexec/keel/backends/probe.json", "probe",
                                                      "/usr/libexec/keel");
  if (!m.ok()) return 0;
  // What is accepted keeps the promises machined relies on.
  const bool socketOk =
      !m->socket.empty() && m->socket.find('/') == std::string::npos && m->socket.front() != '.';
  if (m->name != "probe" || !socketOk || m->services.empty() || m->nodeTypes.empty() || m->version.empty() ||
      !m->binary.is_absolute() || !m->descriptorSet.is_absolute() || !m->sandbox.is_absolute()) {
    __builtin_trap();
  }
  return 0;
}
