// Fuzzes the endpoint and node parsers, which read operator input and config files.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/config/endpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto ep = keel::config::parseEndpoint(text); ep.ok()) {
    // What the parser accepts, its canonical form must read back identically.
    auto again = keel::config::parseEndpoint(ep->hostPort());
    KEEL_RELEASE_ASSERT(again.ok() && *again == *ep, "canonical endpoint does not parse back");
  }
  (void)keel::config::parseHttpsUrl(text);
  (void)keel::config::parseNodeName(text);
  return 0;
}
