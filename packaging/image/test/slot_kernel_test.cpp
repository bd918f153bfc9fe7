// keel_init's first stage of a slot's boot (packaging/image/init/slot_kernel.h): the kernel
// command line handed to the slot's kernel, and the checks that keep a kernel or initramfs
// that differs from the signed manifest from being loaded. Only refusals are exercised:
// a load that passed the checks would really queue a kernel for kexec on this machine.
#include "slot_kernel.h"

#include <filesystem>
#include <string>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <openssl/evp.h>

#include <fmt/format.h>

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

std::string sha256Hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  REQUIRE(EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) == 1);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

// An uncompressed newc archive of `names` (paths below `dir`), as the build writes one.
std::string cpioOf(const std::filesystem::path& dir, const std::string& names) {
  const auto made = keel::testing::run(
      {"sh", "-c", "cd '" + dir.string() + "' && printf '" + names + "' | cpio --quiet -o -H newc -R 0:0 --reproducible"});
  INFO(made.err);
  REQUIRE(made.exitCode == 0);
  return made.out;
}

TEST_CASE("the running boot's identity is read from what the build wrote", "[slot_kernel]") {
  const std::string a(64, 'a'), b(64, 'b');
  const auto id = keel::init::parseBootIdentity(
      R"({"boot_archive_sha256": ")" + a + R"(", "boot_archive_size": 1024, "kernel_sha256": ")" + b + R"("})");
  REQUIRE(id);
  CHECK(id->bootArchiveSha256 == a);
  CHECK(id->bootArchiveSize == 1024);
  CHECK(id->kernelSha256 == b);
  CHECK_FALSE(keel::init::parseBootIdentity(R"({"boot_archive_sha256": ")" + a + R"(", "kernel_sha256": ")" + b + R"("})"));
  CHECK_FALSE(keel::init::parseBootIdentity(
      R"({"boot_archive_sha256": "AA", "boot_archive_size": 1024, "kernel_sha256": ")" + b + R"("})"));
  CHECK_FALSE(keel::init::parseBootIdentity("not json"));
}

TEST_CASE("an archive that only names a build is told from one that adds anything", "[slot_kernel]") {
  keel::testing::TempDir dir;
  std::filesystem::create_directories(dir / "etc");
  keel::testing::writeFile(dir / "etc/initramfs-version", "0.1.1 next\n");
  keel::testing::writeFile(dir / "etc/factory-root.json", "{}\n");
  keel::testing::writeFile(dir / "etc/initramfs-boot.json", "{}\n");
  keel::testing::writeFile(dir / "init", "#!/bin/sh\n");
  std::filesystem::create_symlink("initramfs-version", dir / "etc/link");
  const std::string names = cpioOf(dir.path(), "./etc\\n./etc/factory-root.json\\n./etc/initramfs-version\\n"
                                               "./etc/initramfs-boot.json\\n");
  CHECK(keel::init::onlyNamesBuild(names));
  // cpio pads to 512 bytes; more zero bytes change nothing.
  CHECK(keel::init::onlyNamesBuild(names + std::string(1024, '\0')));
  CHECK(keel::init::onlyNamesBuild(cpioOf(dir.path(), "etc/initramfs-version\\n")));
  // Another file, a link, anything after the archive, or a cut archive is not just names.
  CHECK_FALSE(keel::init::onlyNamesBuild(cpioOf(dir.path(), "./etc\\n./init\\n")));
  CHECK_FALSE(keel::init::onlyNamesBuild(cpioOf(dir.path(), "./etc/link\\n")));
  CHECK_FALSE(keel::init::onlyNamesBuild(names + "\x1f\x8b"));
  CHECK_FALSE(keel::init::onlyNamesBuild(names.substr(0, 200)));
  CHECK_FALSE(keel::init::onlyNamesBuild(""));
  CHECK_FALSE(keel::init::onlyNamesBuild(std::string(512, '\0')));
}

TEST_CASE("a slot boots without kexec only with the running kernel and boot archive", "[slot_kernel]") {
  keel::testing::TempDir dir;
  std::filesystem::create_directories(dir / "etc");
  keel::testing::writeFile(dir / "etc/initramfs-version", "0.1.1 next\n");
  const std::string bootArchive(4096, 'B');
  const std::string names = cpioOf(dir.path(), "./etc\\n./etc/initramfs-version\\n");
  const keel::init::BootIdentity running{std::string(64, 'k'), bootArchive.size(), sha256Hex(bootArchive)};
  const auto slotWith = [&](const std::string& initramfs) {
    keel::testing::writeFile(dir / "slot.initrd", initramfs);
    return PartDigest{initramfs.size(), sha256Hex(initramfs)};
  };
  const PartDigest kernel{100, std::string(64, 'k')};
  const std::string initrd = (dir / "slot.initrd").string();

  CHECK(keel::init::differsFromRunning(initrd, kernel, slotWith(bootArchive + names), running).empty());
  CHECK(keel::init::differsFromRunning(initrd, PartDigest{100, std::string(64, 'f')}, slotWith(bootArchive + names),
                                       running) == "its kernel is another build");
  std::string otherBoot = bootArchive;
  otherBoot[10] = 'C';
  CHECK(keel::init::differsFromRunning(initrd, kernel, slotWith(otherBoot + names), running) ==
        "its initramfs is another build");
  // A third archive after the names (a gzip one, as a test's changed initramfs has).
  CHECK(keel::init::differsFromRunning(initrd, kernel, slotWith(bootArchive + names + "\x1f\x8b\x08"), running) ==
        "its initramfs is another build");
  // The file on the state disk is not what the manifest signed.
  const PartDigest signedDigest = slotWith(bootArchive + names);
  keel::testing::writeFile(dir / "slot.initrd", bootArchive + names.substr(0, names.size() - 1) + "x");
  CHECK(keel::init::differsFromRunning(initrd, kernel, signedDigest, running) ==
        "its initramfs does not match its signed manifest's SHA-256");
}

}  // namespace
