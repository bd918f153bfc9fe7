// Standard base64 (RFC 4648, with padding) for the random secrets the bundle and the
// machine config carry as text. Decoding is strict: a secret that does not decode
// cleanly is a corrupt secret, not something to guess at.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"

namespace keel::config {

std::string base64Encode(std::span<const uint8_t> data);

// Errors: INVALID_ARGUMENT on a wrong length, a character outside the alphabet,
// misplaced padding or non-zero trailing bits.
Result<std::vector<uint8_t>> base64Decode(std::string_view text);

}  // namespace keel::config
