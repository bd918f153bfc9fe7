// TLS settings every Keel process that speaks TLS shares. gRPC 1.51 has no setter for
// the protocol version, so the restriction is made through OpenSSL's own configuration,
// loaded in-process before gRPC creates its first TLS context.
#pragma once

#include "keel/common/status.h"

namespace keel::transport {

// Makes every TLS context this process creates from now on speak TLS 1.3 only. Call
// first thing in main, before any gRPC credentials exist. Idempotent; thread-safe.
Status restrictToTls13();

}  // namespace keel::transport
