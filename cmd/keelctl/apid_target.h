// keelctl's network path: nodes are reached through apid over mutual TLS, with the CA,
// client certificate and key of the client config's current context. This file holds
// what that path needs besides the call itself: which nodes a call targets, and
// turning a connection that fails into advice a person can act on.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/config/client_config.h"

namespace keel::keelctl {

// The metadata keys apid reads to fan a call out (see docs/architecture.md, "How a call flows").
inline constexpr const char* kNodeMetadata = "node";
inline constexpr const char* kNodesMetadata = "nodes";

// The call metadata that targets `nodes`: none for no nodes (the node apid runs on),
// {"node", "a"} for one, {"nodes", "a,b,c"} for two or more.
std::vector<std::pair<std::string, std::string>> nodeTargetMetadata(const std::vector<std::string>& nodes);

// OK when the context's client certificate is inside its validity window at clock.now().
// Errors: INVALID_ARGUMENT for a certificate that does not parse; UNAUTHENTICATED
// saying when it expired and how to get a new one, or from when it will be valid.
Status checkClientCertificate(std::string_view crtPem, std::string_view contextName, const Clock& clock);

// True when a gRPC UNAVAILABLE message comes from the connection to apid (refused, reset,
// TLS handshake, name resolution) rather than from apid itself, which also answers
// UNAVAILABLE when a backend is down and names it.
bool isConnectionFailure(std::string_view grpcMessage);

// What keelctl presents and trusts on the network path (PEM).
struct TlsIdentity {
  std::string ca;   // the CAs the context trusts (the OS CA)
  std::string crt;  // client certificate
  std::string key;  // client key (secret)
};

// Explains why a call to apid at `endpoint` ("host:port") failed with UNAVAILABLE, whose
// gRPC message was `grpcMessage`. Makes a TLS 1.3 handshake of its own to the endpoint
// (no verification, presenting the client certificate) and returns UNAVAILABLE saying:
//   - the server's certificate was issued by a CA the context does not trust (naming
//     both, with SHA-256 fingerprints), or does not verify for another reason;
//   - the server refused the client certificate, with the likely causes;
//   - the server's certificate does not name the host dialled;
//   - nothing listens there: "cannot reach apid at <endpoint>: <grpcMessage>" with a hint;
//   - the TLS connection works: the call failed for another reason, `grpcMessage`.
// Blocks for at most about 2 × `timeout`. Thread-compatible.
Status diagnoseUnavailable(const std::string& endpoint, const TlsIdentity& identity,
                           std::string_view grpcMessage, const Clock& clock,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));

}  // namespace keel::keelctl
