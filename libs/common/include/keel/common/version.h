// What this build is: version, source commit, build date and CPU architecture,
// fixed when the build is configured.
#pragma once

#include <string_view>

namespace keel {

struct BuildInfo {
  std::string_view version;
  std::string_view gitCommit;  // "unknown" outside a git checkout
  std::string_view buildDate;  // RFC 3339 UTC
  std::string_view arch;       // "x86_64", "aarch64", …
};

const BuildInfo& buildInfo();

}  // namespace keel
