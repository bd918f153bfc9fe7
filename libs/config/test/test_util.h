// Shared fixtures of the config tests: a fixed clock and one secrets bundle generated
// once per test binary (key generation is the slow part).
#pragma once

#include <chrono>

#include "keel/common/clock.h"
#include "keel/config/secrets.h"

namespace keel::config::testutil {

// 2026-01-01T00:00:00Z.
inline TimePoint fixedNow() { return TimePoint(std::chrono::seconds(1767225600)); }

inline const SecretsBundle& bundle() {
  static const SecretsBundle b = [] {
    ManualClock clock(fixedNow());
    SystemRandom random;
    return generateSecrets({}, clock, random).value();
  }();
  return b;
}

}  // namespace keel::config::testutil
