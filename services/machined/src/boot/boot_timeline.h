// The boot timeline of the OS image: each step of a boot with the time since the kernel
// started (CLOCK_BOOTTIME), on the console and in the kernel log, where `keelctl dmesg`
// reads it: "keel-boot: 3.21 s state disk ready". keel_init writes the first steps the same
// way (packaging/image/init/init_io.h); see packaging/image/README.md, "Boot timeline".
#pragma once

#include <string>

namespace keel::machined {

// Seconds since the kernel started.
double secondsSinceBoot();

// Writes "keel-boot: T s STEP" to fd 2 (the console under PID 1) and to /dev/kmsg, and
// returns "STEP T s" for a summary.
std::string bootMark(const std::string& step);

}  // namespace keel::machined
