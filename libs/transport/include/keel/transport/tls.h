// TLS settings every Keel process that speaks TLS shares. gRPC 1.51 has no setter for
// the protocol version, so the restriction is made through OpenSSL's own configuration,
// loaded in-process before gRPC creates its first TLS context.
#pragma once

#include "keel/common/status.h"

namespace keel::transport {

// Applies Keel's TLS policy to every TLS context this process creates from now on:
// - TLS 1.3 only;
// - a server issues no session tickets. No Keel client resumes a session (keelctl opens
//   one connection per run, apid keeps its connections to other nodes open), so tickets
//   would only cost the server a session copy and an encryption per handshake, and leave
//   a ticket key to protect.
// Call first thing in main, before any gRPC credentials exist. Idempotent; thread-safe.
Status applyTlsPolicy();

}  // namespace keel::transport
