// Installs an image file (libs/image) into the inactive root slot of the state disk, for
// the initramfs to boot on trial (packaging/image/README.md, "Root slots"). An image is
// accepted only when its manifest's SHA-256 is signed by the key the machine config names,
// the version policy accepts the manifest, and every part hashes to the manifest's hash;
// nothing of the booted slot or the pointer changes before that.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "src/boot/boot_pointer.h"
#include "keel/common/status.h"
#include "keel/image/image_file.h"
#include "keel/common/fd_io.h"

namespace keel::machined {

// The slot an upgrade writes: "a" unless "a" is booted, then "b".
std::string inactiveSlot(std::string_view booted);

// The pointer in `dir`, nullopt when there is none (the node was never upgraded).
// Errors: INTERNAL when it cannot be read, DATA_LOSS when it does not parse.
Result<std::optional<BootPointer>> readBootPointer(const std::filesystem::path& dir);

// Whether a machine booted from slot `booted` may take an upgrade now. Errors:
// FAILED_PRECONDITION while that slot is on trial (writing the inactive slot could
// overwrite the slot it falls back to); the pointer's read errors.
Status checkUpgradeAllowed(const std::filesystem::path& dir, const std::string& booted);

// Points the next boot of a machine booted from `booted` at the slot the pointer falls
// back to, as confirmed (it served the API before), keeping `booted` as its fallback so
// a second rollback returns. Returns that slot. Errors: FAILED_PRECONDITION when there is
// nothing to roll back to, the next boot already leaves `booted`, or the slot is gone.
Result<std::string> rollBack(const std::filesystem::path& dir, const std::string& booted);

// The pointer file in `dir` (/var/lib/keel-boot) as the initramfs reads it.
Status writeBootPointer(const std::filesystem::path& dir, std::string_view boot, std::string_view fallback,
                        int tries);

// The files of slot `slot` in `dir`: the root the initramfs boots (slot-X.squashfs), and
// with it the rest of the image it came from (kernel, initramfs, verity tree, manifest and
// its signature), kept for the boot chain to use.
struct SlotFiles {
  std::filesystem::path root, kernel, initramfs, verity, manifest, signature;
};
SlotFiles slotFiles(const std::filesystem::path& dir, std::string_view slot);

// Removes the partial files an upgrade cut short (by a power cut or a crash of machined)
// left in `dir`, and returns how many there were; the slots and the pointer stay as they
// are. 0 when `dir` does not exist. INTERNAL when one cannot be removed.
Result<int> removeStalePartials(const std::filesystem::path& dir);

// Decides, from an image's manifest, whether it may be installed (the version policy); its
// error is returned by the upgrade as is.
using ManifestCheck = std::function<Status(const image::Manifest&)>;

class SlotWriter {
 public:
  // Starts an upgrade of a machine booted from slot `booted` with an image file of `size`
  // bytes (libs/image). `manifestSha256Hex` is the SHA-256 of the file's manifest (64 hex
  // digits), `signature` a DER ECDSA signature of those 32 bytes made with the private key
  // of `publicKeyPem` (P-256). `check` sees the manifest before a part is written.
  // Errors: INVALID_ARGUMENT for a malformed hash, size or key; PERMISSION_DENIED when the
  // signature does not verify (nothing is written then).
  static Result<std::unique_ptr<SlotWriter>> begin(std::filesystem::path dir, std::string booted, std::string_view manifestSha256Hex,
                                  std::string_view signature, std::string_view publicKeyPem, uint64_t size,
                                  ManifestCheck check);
  // Not movable: the verifier's callbacks point at it.
  SlotWriter(const SlotWriter&) = delete;
  SlotWriter& operator=(const SlotWriter&) = delete;
  // Removes the partial files of an upgrade that did not finish.
  ~SlotWriter();

  // Appends the next bytes of the image file, checking them as they come (the manifest
  // against the signed hash, then `check`, then each part against the manifest's hash).
  // Errors: the image's (PERMISSION_DENIED, INVALID_ARGUMENT, OUT_OF_RANGE) or `check`'s;
  // INTERNAL when the disk fails. After an error the upgrade is over and nothing changed.
  Status write(std::string_view chunk);
  // Checks that every part arrived whole, makes the slot's files durable under their names
  // and points the next boot at the slot with one try, falling back to the booted slot.
  // Returns the slot. Errors: INVALID_ARGUMENT when the image is incomplete (the slot is
  // left as it was).
  Result<std::string> finish();

  uint64_t received() const { return verifier_->received(); }
  uint64_t size() const { return size_; }
  // The image's manifest, once it has arrived.
  const std::optional<image::Manifest>& manifest() const { return verifier_->manifest(); }

 private:
  SlotWriter(std::filesystem::path dir, std::string booted, uint64_t size, std::string signature, ManifestCheck check);
  Status openPartials(std::string_view manifestBytes);
  Status writePart(const image::Part& part, std::string_view bytes);
  void removePartials();

  std::filesystem::path dir_;
  std::string booted_;
  std::string target_;
  std::string signature_;
  uint64_t size_ = 0;
  bool done_ = false;
  // The partial files of the parts, opened once the manifest is accepted.
  std::map<std::string, UniqueFd> fds_;
  ManifestCheck check_;
  std::unique_ptr<image::ImageStreamVerifier> verifier_;
};

}  // namespace keel::machined
