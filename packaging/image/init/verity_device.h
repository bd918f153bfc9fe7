// dm-verity for keel_init: read-only loop devices over a slot's files, and a verity device
// set up through the device-mapper ioctls (/dev/mapper/control), with no userspace tool.
#pragma once

#include <string>

#include "root_trust.h"

namespace keel::init {

// Attaches `file` to a free loop device, read-only, cleared when its last user closes it.
// Returns the open loop device (the caller closes it once something else holds the
// device, else the device is cleared at once) and sets `dev` to its path; -1 and `error`
// when it cannot.
int attachLoop(const std::string& file, std::string& dev, std::string& error);

// Creates the read-only dm-verity device `name` over `dataDev` and `hashDev` with
// `params`, then reads every block of it once, so that a root whose bytes do not match its
// root hash is refused here rather than at the first read of a damaged block. Once it has
// read through, the device is reloaded to restart the machine on any later mismatch (the
// next boot's read-through then finds it). Returns the device's node (/dev/dm-N), or empty
// with `error`; on failure the device is removed again.
std::string openVerity(const std::string& name, const std::string& dataDev, const std::string& hashDev,
                       const VerityParams& params, std::string& error);

}  // namespace keel::init
