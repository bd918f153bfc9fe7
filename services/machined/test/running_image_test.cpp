#include "src/boot/running_image.h"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/testing/testing.h"

namespace {

using Catch::Matchers::ContainsSubstring;
using keel::machined::checkImageVersion;
using keel::machined::readRunningImage;
using keel::machined::RunningImage;
using keel::testing::TempDir;
namespace fs = std::filesystem;

keel::image::Manifest manifestOf(const std::string& version) {
  keel::image::Manifest m;
  m.version = keel::image::parseVersion(version).value();
  m.buildId = "b-" + version;
  for (const auto name : keel::image::kPartNames) {
    m.parts.push_back({.name = std::string(name), .size = 4096, .sha256 = std::string(64, '0')});
  }
  keel::image::layOutParts(m.parts);
  m.verity.rootHash = std::string(64, 'a');
  return m;
}

RunningImage running(const std::string& version) {
  return {keel::image::parseVersion(version).value(), "r"};
}

TEST_CASE("the running image is the booted slot's manifest, or the factory root's version file") {
  TempDir dir;
  const auto boot = dir / "boot";
  const auto root = dir / "root";
  fs::create_directories(boot);
  fs::create_directories(root / "usr/share/keel");
  // Neither says: unknown.
  REQUIRE(readRunningImage(boot, "factory", root).ok());
  CHECK_FALSE(readRunningImage(boot, "factory", root)->has_value());
  keel::testing::writeFile(root / "usr/share/keel/image-version", "0.3.0 abc123\n");
  keel::testing::writeFile(boot / "slot-a.manifest.json",
                           keel::image::serializeManifest(manifestOf("0.4.1")));
  auto factory = readRunningImage(boot, "factory", root);
  REQUIRE(factory.ok());
  CHECK((*factory)->version.toString() == "0.3.0");
  CHECK((*factory)->buildId == "abc123");
  auto slotA = readRunningImage(boot, "a", root);
  REQUIRE(slotA.ok());
  CHECK((*slotA)->version.toString() == "0.4.1");
  // A machined on a host (no boot directory) reads the root's file.
  CHECK((*readRunningImage({}, "factory", root))->version.toString() == "0.3.0");
  // A damaged record is an error, not a version.
  keel::testing::writeFile(root / "usr/share/keel/image-version", "latest\n");
  CHECK(readRunningImage(boot, "factory", root).status().code() == keel::StatusCode::kDataLoss);
  keel::testing::writeFile(boot / "slot-b.manifest.json", "{}");
  CHECK(readRunningImage(boot, "b", root).status().code() == keel::StatusCode::kDataLoss);
}

TEST_CASE("versions only go up unless a downgrade is allowed; the same version is a reinstall") {
  CHECK(checkImageVersion(running("0.5.0"), manifestOf("0.6.0"), false).isOk());
  CHECK(checkImageVersion(running("0.5.0"), manifestOf("0.5.0"), false).isOk());
  const auto older = checkImageVersion(running("0.5.0"), manifestOf("0.4.9"), false);
  CHECK(older.code() == keel::StatusCode::kFailedPrecondition);
  CHECK_THAT(older.message(),
             ContainsSubstring("image version 0.4.9 is older than the running version 0.5.0") &&
                 ContainsSubstring("--allow-downgrade"));
  CHECK(checkImageVersion(running("0.5.0"), manifestOf("0.4.9"), true).isOk());
  // Unknown running version: nothing to compare with, so only an explicit downgrade.
  CHECK(checkImageVersion(std::nullopt, manifestOf("9.0.0"), false).code() ==
        keel::StatusCode::kFailedPrecondition);
  CHECK(checkImageVersion(std::nullopt, manifestOf("9.0.0"), true).isOk());
  CHECK(checkImageVersion(running("0.10.0"), manifestOf("0.9.0"), false).code() ==
        keel::StatusCode::kFailedPrecondition);
}

}  // namespace
