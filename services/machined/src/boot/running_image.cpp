#include "src/boot/running_image.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "src/boot/slot_writer.h"

namespace keel::machined {

namespace fs = std::filesystem;

namespace {

// The whole of a small file; nullopt when it does not exist.
Result<std::optional<std::string>> readSmallFile(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<std::string>();
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return internalError(fmt::format("cannot read {}", path.string()));
  if (text.str().size() > image::kMaxManifestBytes)
    return dataLoss(fmt::format("{} is too large", path.string()));
  return std::optional<std::string>(text.str());
}

Result<std::optional<RunningImage>> fromSlotManifest(const fs::path& path) {
  KEEL_ASSIGN_OR_RETURN(const auto text, readSmallFile(path));
  if (!text) return std::optional<RunningImage>();
  auto manifest = image::parseManifest(*text);
  if (!manifest.ok()) return dataLoss(fmt::format("{}: {}", path.string(), manifest.status().message()));
  return std::optional<RunningImage>(RunningImage{manifest->version, manifest->buildId});
}

Result<std::optional<RunningImage>> fromRootVersionFile(const fs::path& path) {
  KEEL_ASSIGN_OR_RETURN(const auto text, readSmallFile(path));
  if (!text) return std::optional<RunningImage>();
  std::istringstream in(*text);
  std::string version, buildId, extra;
  in >> version >> buildId >> extra;
  auto parsed = image::parseVersion(version);
  if (!parsed.ok() || buildId.empty() || !extra.empty()) {
    return dataLoss(
        fmt::format("{}: expected 'VERSION BUILD_ID', found '{}'", path.string(), text->substr(0, 80)));
  }
  return std::optional<RunningImage>(RunningImage{*parsed, buildId});
}

}  // namespace

Result<std::optional<RunningImage>> readRunningImage(const fs::path& bootDir, const std::string& bootedSlot,
                                                     const fs::path& rootDir) {
  if (!bootDir.empty() && bootedSlot != "factory")
    return fromSlotManifest(slotFiles(bootDir, bootedSlot).manifest);
  return fromRootVersionFile(rootDir / "usr/share/keel/image-version");
}

Status checkImageVersion(const std::optional<RunningImage>& running, const image::Manifest& candidate,
                         bool allowDowngrade) {
  if (allowDowngrade) return Status::ok();
  const std::string version = candidate.version.toString();
  if (!running) {
    return failedPrecondition(
        fmt::format("image version {} cannot be compared with the running version, which this node does not "
                    "know: refused; "
                    "pass --allow-downgrade to install it anyway",
                    version));
  }
  if (candidate.version < running->version) {
    return failedPrecondition(
        fmt::format("image version {} is older than the running version {}: refused; pass --allow-downgrade "
                    "to install it "
                    "anyway",
                    version, running->version.toString()));
  }
  return Status::ok();
}

}  // namespace keel::machined
