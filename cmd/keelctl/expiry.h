// The one warning every keelctl command prints when the client certificate it calls with
// is about to expire: an expired keelconfig locks its owner out, and renewing needs a
// certificate that is still valid.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "keel/common/clock.h"
#include "keel/config/client_config.h"
#include "keel/pki/pki.h"

namespace keel::keelctl {

inline constexpr std::chrono::hours kExpiryWarningWindow{24 * 7};

// Still valid, but within kExpiryWarningWindow of its end with less than half of its
// lifetime left.
bool expiresSoon(const pki::Certificate& certificate, TimePoint now);

// A warning when the current context's certificate expires within kExpiryWarningWindow
// and has less than half of its lifetime left (a certificate issued for a day is not
// flagged from its first minute), or has expired; nullopt otherwise or when the config
// holds no readable certificate.
std::optional<std::string> expiryWarning(const config::ClientConfig& config, TimePoint now);

// Reads the client config keelctl would use (--keelconfig, $KEELCONFIG, ~/.keel/config)
// and returns its warning; nothing when there is no such file or it does not parse (the
// command itself reports that when it needs the file).
std::optional<std::string> expiryWarningForCommand(const std::optional<std::filesystem::path>& flag,
                                                   const config::ClientConfigEnv& env, TimePoint now);

}  // namespace keel::keelctl
