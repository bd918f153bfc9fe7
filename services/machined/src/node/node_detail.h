// What the node's unit files (node/*.cpp) share; not for other rooms.
#pragma once

#include <filesystem>

#include "keel/common/status.h"

namespace keel::machined {

// Creates `dir` (and its parents) and sets its mode to exactly `perms`.
Status makeDir(const std::filesystem::path& dir, std::filesystem::perms perms);

}  // namespace keel::machined
