// A slot's own kernel and initramfs, started with kexec: keel_init, booted by the machine's
// boot loader, checks that both hash to the slot's signed manifest and loads exactly the
// bytes it checked. See packaging/image/README.md, "Booting a slot".
#pragma once

#include <string>

#include "root_trust.h"

namespace keel::init {

// The kernel command line that marks the second stage: the slot whose kernel runs.
constexpr const char* kSlotParam = "keel.slot=";

// `cmdline` without any keel.slot= word, with " keel.slot=SLOT" appended.
std::string slotCommandLine(const std::string& cmdline, const std::string& slot);

// The value of keel.slot= in `cmdline` when it names slot a or b, else empty.
std::string slotOfCommandLine(const std::string& cmdline);

// Loads `kernelPath` and `initrdPath` for kexec with `cmdline`, once each file is exactly
// its digest's size and hashes to its SHA-256. The bytes hashed are the bytes loaded: each
// file is copied to memory while it is hashed and the kernel loads the copy. Empty when
// loaded (a reboot with LINUX_REBOOT_CMD_KEXEC then starts it), else why not.
std::string loadSlotKernel(const std::string& kernelPath, const PartDigest& kernel, const std::string& initrdPath,
                           const PartDigest& initrd, const std::string& cmdline);

}  // namespace keel::init
