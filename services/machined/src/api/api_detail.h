// What the machine API's handler files share (api/*.cpp); not for other rooms.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "keel/common/clock.h"
#include "keel/supervisor/supervisor.h"

namespace keel::machined::api_detail {

// How often a following stream wakes up to notice a cancelled call.
inline constexpr auto kFollowPoll = std::chrono::milliseconds(200);

inline int64_t unixNanos(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

inline std::string_view eventState(supervisor::EventType t) { return supervisor::eventTypeName(t); }

}  // namespace keel::machined::api_detail

// Stamps the node's name into a reply entry's metadata.
#define KEEL_META(entry) entry->mutable_metadata()->set_node(deps_.nodeName)
