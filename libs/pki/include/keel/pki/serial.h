// Certificate serials as people type them and as Certificate::serialHex writes them.
#pragma once

#include <string>
#include <string_view>

#include "keel/common/status.h"

namespace keel::pki {

// The serial an operator typed ("0A:1B", "0x0a1b", "a1b"), as Certificate::serialHex
// writes it ("0a1b"). Errors: INVALID_ARGUMENT saying what a serial looks like.
Result<std::string> normalizeSerial(std::string_view text);

}  // namespace keel::pki
