// keel_init's first stage of a slot's boot (packaging/image/init/slot_kernel.h): the kernel
// command line handed to the slot's kernel, and the checks that keep a kernel or initramfs
// that differs from the signed manifest from being loaded. Only refusals are exercised:
// a load that passed the checks would really queue a kernel for kexec on this machine.
#include "slot_kernel.h"

#include <filesystem>
#include <string>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/testing/testing.h"

namespace {

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::StartsWith;
using keel::init::PartDigest;
using keel::init::slotCommandLine;
using keel::init::slotOfCommandLine;

// The size and SHA-256 of "kernel bytes\n".
const PartDigest kKernel{13, "978612424a239a10a270f3229d7d0617811b6b467ee664785f52cf7af1310f04"};

TEST_CASE("the slot's kernel gets the boot's command line with the slot named once", "[slot_kernel]") {
  CHECK(slotCommandLine("console=ttyS0 panic=-1 quiet", "a") == "console=ttyS0 panic=-1 quiet keel.slot=a");
  CHECK(slotCommandLine("console=ttyS0 keel.slot=b  quiet", "a") == "console=ttyS0 quiet keel.slot=a");
  CHECK(slotCommandLine("", "b") == "keel.slot=b");
}

TEST_CASE("only slot a or b marks the second stage", "[slot_kernel]") {
  CHECK(slotOfCommandLine("console=ttyS0 keel.slot=a quiet") == "a");
  CHECK(slotOfCommandLine("keel.slot=b") == "b");
  CHECK(slotOfCommandLine("console=ttyS0 quiet").empty());
  CHECK(slotOfCommandLine("keel.slot=factory").empty());
  CHECK(slotOfCommandLine("keel.slot=../a").empty());
  CHECK(slotOfCommandLine("xkeel.slot=a").empty());
}

TEST_CASE("a slot kernel or initramfs that differs from its signed manifest is not loaded", "[slot_kernel]") {
  keel::testing::TempDir dir;
  keel::testing::writeFile(dir / "vmlinuz", "kernel bytes\n");
  keel::testing::writeFile(dir / "initrd", "initramfs bytes\n");
  const std::string kernel = (dir / "vmlinuz").string();
  const std::string initrd = (dir / "initrd").string();
  const std::string cmdline = "console=ttyS0 keel.slot=a";

  // Another size than the manifest's.
  PartDigest longer = kKernel;
  longer.size = 14;
  CHECK(keel::init::loadSlotKernel(kernel, longer, initrd, kKernel, cmdline) ==
        "its kernel is 13 bytes, its signed manifest says 14");
  // The right size, other bytes.
  PartDigest other = kKernel;
  other.sha256 = std::string(64, '0');
  CHECK(keel::init::loadSlotKernel(kernel, other, initrd, kKernel, cmdline) ==
        "its kernel does not match its signed manifest's SHA-256");
  // The kernel checks out; the initramfs is missing, then not what the manifest says.
  CHECK_THAT(keel::init::loadSlotKernel(kernel, kKernel, (dir / "missing").string(), kKernel, cmdline),
             StartsWith("cannot read its initramfs ") && ContainsSubstring("No such file or directory"));
  const PartDigest initramfs{16, std::string(64, 'f')};
  CHECK(keel::init::loadSlotKernel(kernel, kKernel, initrd, initramfs, cmdline) ==
        "its initramfs does not match its signed manifest's SHA-256");
}

}  // namespace
