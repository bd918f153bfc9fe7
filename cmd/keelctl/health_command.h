// `keelctl health`: whether each node of the context answers, serves a certificate that
// is valid and far from expiry, and runs every service it supervises. Each node is
// reached directly (not through another node's apid), so that its own certificate is
// the one checked.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "keel/common/status.h"

#include "machine_client.h"

namespace keel::keelctl {

// Bits of keelctl's exit code after `health`; 0 when every node is healthy.
inline constexpr int kHealthUnreachable = 1;  // a node did not answer
inline constexpr int kHealthCertificate = 2;  // a served or the client certificate is expired or near expiry
inline constexpr int kHealthServices = 4;     // a service is not running

struct HealthOptions {
  // A certificate with less than this share of its lifetime left counts as near expiry
  // (apid renews at about half-life, so a third left means renewals are failing).
  double minRemainingShare = 1.0 / 3.0;
};

// `base` carries the TLS identity and the nodes (or only the endpoint's node). Prints a
// table to `out`; returns the exit-code bits, and a summary status naming each failure.
Status cmdHealth(const MachineTarget& base, const HealthOptions& options, const Clock& clock,
                 std::ostream& out, int& exitBits);

}  // namespace keel::keelctl
