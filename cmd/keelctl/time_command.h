// keelctl time: the clocks of the target nodes, from the time extension (timed's
// keel.time.v1.TimeService), as a table or as JSON/YAML.
#pragma once

#include <cstdint>
#include <string>

#include "keel/common/status.h"
#include "keel/time/v1/time.grpc.pb.h"

#include "node_calls.h"

namespace keel::keelctl {

// A clock reading in nanoseconds as days, hours, minutes and seconds with milliseconds,
// leading zero units left out: "3d4h5m6.123s", "5m0.250s", "0.000s".
std::string formatClockDuration(int64_t nanos);

// How far the node's system clock is from its hardware clock: "+2s", "-1s", "+0s"; "-"
// when it has no hardware clock.
std::string formatRtcOffset(const keel::time::v1::Sync& sync);

// The table (NODE, WALL, MONOTONIC, BOOT, CLOCKSOURCE, RTC OFFSET), or the reply as
// JSON/YAML; failed nodes as the other fan-out commands report them.
Status printTimes(MachineCommandEnv& env, const keel::time::v1::NowResponse& resp);

// Calls TimeService.Now on the target nodes and prints the result.
Status cmdTime(MachineCommandEnv& env);

}  // namespace keel::keelctl
