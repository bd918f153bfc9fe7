// Fuzzes the readers of apid's JSON inputs, its config and its routing entries (which
// machined writes from what an extension's installer put on the node), and checks that
// whatever they accept reads back the same after the writer wrote it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keel/contracts/apid_config.h"
#include "keel/contracts/route_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace contracts = keel::contracts;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto config = contracts::parseApidConfig(text); config.ok()) {
    const auto again = contracts::parseApidConfig(contracts::serializeApidConfig(*config));
    if (!again.ok() || !(*again == *config)) std::abort();
  }
  (void)contracts::listenPort(text);
  if (const auto entry = contracts::parseRouteEntry(text); entry.ok()) {
    const auto again = contracts::parseRouteEntry(contracts::serializeRouteEntry(*entry));
    if (!again.ok() || !(*again == *entry)) std::abort();
  }
  return 0;
}
