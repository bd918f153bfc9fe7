// The node image file: one file per version holding the kernel, the initramfs, the root
// squashfs and its dm-verity hash tree, behind a manifest that the image's signature covers
// (format: packaging/image/README.md, "The image file"). One reader and writer, shared by
// the build's packer, keelctl sign-image and machined's Upgrade.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"

namespace keel::image {

// The fixed header: magic, then the format version and the manifest's length, both
// little-endian uint32.
inline constexpr std::string_view kMagic = "KEELIMG\n";
inline constexpr size_t kHeaderSize = 16;
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kMaxManifestBytes = 64 * 1024;
// The parts together: Keel's images are tens of MiB, and a state disk also holds the
// other slot.
inline constexpr uint64_t kMaxPayloadBytes = uint64_t{2} << 30;
// Every image has these parts, in this order, one after the other after the manifest.
inline constexpr std::array<std::string_view, 4> kPartNames = {"kernel", "initramfs", "root", "verity"};

// An image's version: MAJOR.MINOR.PATCH, compared numerically.
struct Version {
  uint32_t major = 0, minor = 0, patch = 0;
  std::string toString() const;
  auto operator<=>(const Version&) const = default;
};

// Errors: INVALID_ARGUMENT unless `text` is MAJOR.MINOR.PATCH (decimal, no leading zeros,
// each at most 999999).
Result<Version> parseVersion(std::string_view text);

struct Part {
  std::string name;
  uint64_t offset = 0;  // from the first byte after the manifest
  uint64_t size = 0;
  std::string sha256;  // 64 lowercase hex digits
};

// The parameters of the verity part, a tree as `veritysetup format --no-superblock` writes
// it: with the root hash, all a boot needs to open the root through dm-verity.
struct Verity {
  std::string rootHash;  // hex
  std::string salt;      // hex, may be empty
  std::string hashAlgorithm = "sha256";
  uint32_t dataBlockSize = 4096;
  uint32_t hashBlockSize = 4096;
};

struct Manifest {
  uint32_t format = kFormatVersion;
  Version version;
  std::string buildId;
  std::vector<Part> parts;  // kPartNames, in that order
  Verity verity;

  // The bytes after the manifest: the parts, end to end.
  uint64_t payloadSize() const;
  const Part* part(std::string_view name) const;
};

// The header for a manifest of `manifestSize` bytes.
std::string formatHeader(size_t manifestSize);
// The manifest's length from a header's kHeaderSize bytes. Errors: INVALID_ARGUMENT for
// another magic, format version or a length of 0 or above kMaxManifestBytes.
Result<size_t> parseHeader(std::string_view header);

// The manifest as JSON, the exact bytes that are signed.
std::string serializeManifest(const Manifest& manifest);
// Parses and checks a manifest: every field present and well-formed, exactly the parts of
// kPartNames in order, each non-empty and starting where the previous ends (no gap, no
// overlap), the root a whole number of verity data blocks, the payload within
// kMaxPayloadBytes. Errors: INVALID_ARGUMENT saying what was expected and found.
Result<Manifest> parseManifest(std::string_view json);

// Lays out `parts` (names, sizes, hashes; offsets are computed) end to end.
void layOutParts(std::vector<Part>& parts);

// The SHA-256 of bytes, raw (32 bytes), and lowercase hex of raw bytes.
std::string sha256(std::string_view bytes);
std::string toHex(std::string_view raw);

// What an image file holds before its parts. Errors: NOT_FOUND or INTERNAL when it cannot
// be read; the parsers' errors, with the file's name.
struct ImageHead {
  std::string manifestBytes;
  Manifest manifest;
  uint64_t fileSize = 0;
};
Result<ImageHead> readImageHead(const std::filesystem::path& path);

// Checks an image as it streams in, without holding more than its manifest: the
// manifest must hash to the signed SHA-256 (whose signature the caller verified), parse,
// and announce exactly the bytes that arrive; each part must hash to the manifest's
// SHA-256 when its last byte arrives. Not thread-safe.
class ImageStreamVerifier {
 public:
  struct Callbacks {
    // Once the manifest is read and matches: may refuse the image (nothing of a part
    // has reached `part` then).
    std::function<Status(const Manifest&, std::string_view manifestBytes)> manifest;
    // The next bytes of a part, in order; `part` is called for each part's bytes before
    // they are hash-checked: the caller keeps them apart until finish() succeeds.
    std::function<Status(const Part&, std::string_view bytes)> part;
  };
  // `signedManifestSha256`: 32 raw bytes; `fileSize`: the length announced for the file.
  ImageStreamVerifier(std::string signedManifestSha256, uint64_t fileSize, Callbacks callbacks);
  ImageStreamVerifier(const ImageStreamVerifier&) = delete;
  ImageStreamVerifier& operator=(const ImageStreamVerifier&) = delete;
  ~ImageStreamVerifier();

  // The next bytes of the file. The first error is final: every later call returns it.
  Status feed(std::string_view bytes);
  // After the last byte: every part arrived whole. Errors: INVALID_ARGUMENT when it did not.
  Status finish();
  const std::optional<Manifest>& manifest() const { return manifest_; }
  uint64_t received() const { return received_; }

 private:
  Status feedHead(std::string_view& bytes);
  Status feedParts(std::string_view bytes);
  Status fail(Status s);

  std::string signedSha256_;
  uint64_t fileSize_;
  Callbacks callbacks_;
  std::string head_;  // header and manifest, until the manifest is complete
  size_t manifestSize_ = 0;
  std::optional<Manifest> manifest_;
  size_t partIndex_ = 0;
  uint64_t partReceived_ = 0;
  uint64_t received_ = 0;
  void* hash_ = nullptr;  // EVP_MD_CTX of the current part
  Status error_;
};

}  // namespace keel::image
