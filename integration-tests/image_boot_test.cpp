// The OS image booted under QEMU: machined as PID 1 brings the node up from a config
// disk, apid serves the API through a forwarded loopback port, and the API powers it off.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "image_vm.h"

namespace {

using namespace keel::integration;
using Catch::Matchers::ContainsSubstring;
using namespace std::chrono_literals;

// TCG on two shared cores: a boot takes ~10-20 s; the margin is for a loaded CI machine.
constexpr auto kBootTimeout = 180s;

TEST_CASE("the image boots under QEMU and serves the API until shut down", "[image]") {
  if (auto why = imageSkipReason(KEEL_IMAGE_DIR)) SKIP(*why);
  ImageVm vm(KEEL_IMAGE_DIR);
  const auto ready = vm.waitForApi(kBootTimeout);
  INFO("serial console:\n" << vm.serial() << "\nqemu:\n" << vm.qemuLog());
  REQUIRE(ready);
  std::printf("image: boot to API-ready %.1f s\n", static_cast<double>(ready->count()) / 1000.0);
  CHECK_THAT(vm.serial(), ContainsSubstring("formatting the state disk"));
  CHECK_THAT(vm.serial(), ContainsSubstring("interface eth0 up with 10.0.2.15/24"));

  const auto version = vm.keelctl({"version"});
  CHECK(version.exitCode == 0);
  const auto services = vm.keelctl({"services"});
  INFO(services.out << services.err);
  CHECK(services.exitCode == 0);
  CHECK_THAT(services.out, ContainsSubstring("apid"));
  CHECK_THAT(services.out, ContainsSubstring("running"));

  const auto shutdown = vm.keelctl({"shutdown", "--yes"});
  INFO(shutdown.out << shutdown.err);
  CHECK(shutdown.exitCode == 0);
  // Powered off: QEMU exits by itself, and the console says it was a power-off, not a panic.
  CHECK(vm.waitForExit(60s));
  CHECK_THAT(vm.serial(), ContainsSubstring("keel-pid1: powering off"));
  CHECK_THAT(vm.serial(), !ContainsSubstring("Kernel panic"));
}

}  // namespace
