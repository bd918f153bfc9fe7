// Which image a node runs, and whether it may install another: versions only go up unless
// an admin asks for a downgrade by name (packaging/image/README.md, "Versions").
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "keel/common/status.h"
#include "keel/image/image_file.h"

namespace keel::machined {

struct RunningImage {
  image::Version version;
  std::string buildId;
};

// The image of slot `bootedSlot`: slot "a" or "b" from the manifest stored with it in
// `bootDir`, the factory root from `rootDir`/usr/share/keel/image-version ("VERSION
// BUILD_ID", written by build-image.sh). nullopt when neither says (machined running on a
// host, or a root built before image versions); a file that is there but does not parse
// is an error (DATA_LOSS).
Result<std::optional<RunningImage>> readRunningImage(const std::filesystem::path& bootDir,
                                                     const std::string& bootedSlot,
                                                     const std::filesystem::path& rootDir);

// The version policy. Errors: FAILED_PRECONDITION, naming both versions and
// --allow-downgrade, for an image older than the running one (or any image when the
// running version is unknown) unless `allowDowngrade`. An equal version is a reinstall and
// is accepted.
Status checkImageVersion(const std::optional<RunningImage>& running, const image::Manifest& candidate,
                         bool allowDowngrade);

}  // namespace keel::machined
