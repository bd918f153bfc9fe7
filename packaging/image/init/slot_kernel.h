// A slot's own kernel and initramfs, started with kexec: keel_init, booted by the machine's
// boot loader, checks that both hash to the slot's signed manifest and loads exactly the
// bytes it checked. See packaging/image/README.md, "Booting a slot".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

// What the running initramfs says of the boot it makes (/etc/initramfs-boot.json, written by
// the build): its kernel's SHA-256, and the size and SHA-256 of its first archive, the one
// that boots (keel_init and the modules).
struct BootIdentity {
  std::string kernelSha256;
  uint64_t bootArchiveSize = 0;
  std::string bootArchiveSha256;
};
std::optional<BootIdentity> parseBootIdentity(const std::string& json);

// Empty when a slot boots what runs now, so that its root can be mounted without a kexec:
// its signed manifest names the running kernel, and its initramfs (`initrdPath`, which must
// be the manifest's size and hash) is the running boot archive followed by nothing but an
// archive that names its build (`onlyNamesBuild`). Else how it differs.
std::string differsFromRunning(const std::string& initrdPath, const PartDigest& kernel, const PartDigest& initrd,
                               const BootIdentity& running);

// Whether `archive` is one uncompressed newc cpio archive of the files that name a build
// (etc, etc/factory-root.json, etc/initramfs-version, etc/initramfs-boot.json: directories
// and regular files only), then nothing but zero bytes.
bool onlyNamesBuild(std::string_view archive);

}  // namespace keel::init
