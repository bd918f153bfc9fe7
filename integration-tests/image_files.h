// Small image files for upgrade tests: parts of filler bytes packed by keel_image_pack
// (the root one verity block), so a test can make a "newer" and an "older" image cheaply.
#pragma once

#include <filesystem>
#include <string>

#include <catch2/catch_test_macros.hpp>

#include "keel/testing/testing.h"

namespace keel::integration {

// Writes DIR/keel-VERSION.img and returns its path; `rootByte` fills the root part.
inline std::filesystem::path makeImageFile(const std::filesystem::path& dir, const std::string& version,
                                           char rootByte = 'r') {
  const auto parts = dir / ("parts-" + version);
  std::filesystem::create_directories(parts);
  keel::testing::writeFile(parts / "kernel", std::string(3000, 'k'));
  keel::testing::writeFile(parts / "initramfs", std::string(2000, 'i'));
  keel::testing::writeFile(parts / "root", std::string(8192, rootByte));
  keel::testing::writeFile(parts / "verity", std::string(4096, 'v'));
  const auto out = dir / ("keel-" + version + ".img");
  const auto packed = keel::testing::run({KEEL_IMAGE_PACK_PATH,
                                          "pack",
                                          "--kernel",
                                          (parts / "kernel").string(),
                                          "--initramfs",
                                          (parts / "initramfs").string(),
                                          "--root",
                                          (parts / "root").string(),
                                          "--verity",
                                          (parts / "verity").string(),
                                          "--version",
                                          version,
                                          "--build-id",
                                          "test-" + version,
                                          "--root-hash",
                                          std::string(64, 'a'),
                                          "--salt",
                                          "00",
                                          "-o",
                                          out.string()});
  INFO(packed.err);
  REQUIRE(packed.exitCode == 0);
  return out;
}

}  // namespace keel::integration
