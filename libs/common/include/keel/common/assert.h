// Crash on the impossible: a broken invariant ends the process with a message on
// stderr, and the supervisor restarts it. Enabled in every build type.
#pragma once

#include <string_view>

namespace keel::detail {
[[noreturn]] void releaseAssertFailed(const char* condition, std::string_view message, const char* file,
                                      int line);
}  // namespace keel::detail

#define KEEL_RELEASE_ASSERT(condition, message)                                          \
  do {                                                                                   \
    if (!(condition)) ::keel::detail::releaseAssertFailed(#condition, (message), __FILE__, __LINE__); \
  } while (false)
