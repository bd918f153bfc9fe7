// Durations written the way operators type them: Go's syntax ("1h30m", "90m", "30s")
// plus days ("10d"), for certificate lifetimes and similar settings.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "keel/common/status.h"

namespace keel::config {

// Parses a sequence of <integer><unit> with units d, h, m, s ("8760h", "1h30m", "10d").
// The result must be positive and at most `max`. Errors: INVALID_ARGUMENT, saying what
// was expected and what was found.
Result<std::chrono::seconds> parseDuration(std::string_view text, std::chrono::seconds max);

// The shortest form parseDuration reads back: "8760h", "1h30m", "45s".
std::string formatDuration(std::chrono::seconds d);

}  // namespace keel::config
