// Installs a new root image into the inactive root slot of the state disk, for the
// initramfs to boot on trial (packaging/image/README.md, "Root slots"). An image is
// accepted only when its SHA-256 is signed by the key the machine config names and the
// bytes received hash to it; nothing of the booted slot or the pointer changes before that.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "boot_pointer.h"
#include "keel/common/status.h"

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

class SlotWriter {
 public:
  // Starts an upgrade of a machine booted from slot `booted`. `sha256Hex` is the image's
  // SHA-256 (64 hex digits), `signature` a DER ECDSA signature of those 32 bytes made with
  // the private key of `publicKeyPem` (P-256), `size` the image's length in bytes.
  // Errors: INVALID_ARGUMENT for a malformed hash, size or key; PERMISSION_DENIED when the
  // signature does not verify (nothing is written then).
  static Result<SlotWriter> begin(std::filesystem::path dir, std::string booted, std::string_view sha256Hex,
                                  std::string_view signature, std::string_view publicKeyPem, uint64_t size);
  SlotWriter(SlotWriter&& other) noexcept;
  SlotWriter& operator=(SlotWriter&&) = delete;
  SlotWriter(const SlotWriter&) = delete;
  // Removes the partial file of an upgrade that did not finish.
  ~SlotWriter();

  // Appends the next bytes of the image. Errors: OUT_OF_RANGE past the announced size.
  Status write(std::string_view chunk);
  // Checks length and hash, makes the slot file durable under its name and points the
  // next boot at it with one try, falling back to the booted slot. Returns the slot.
  // Errors: INVALID_ARGUMENT when the length or hash differ (the slot is left as it was).
  Result<std::string> finish();

  uint64_t received() const { return received_; }
  uint64_t size() const { return size_; }

 private:
  struct HashDeleter {
    void operator()(void* ctx) const;
  };
  SlotWriter(std::filesystem::path dir, std::string booted, std::string target, std::string sha256, uint64_t size,
             int fd, std::unique_ptr<void, HashDeleter> hash);

  std::filesystem::path dir_;
  std::string booted_;
  std::string target_;
  std::string sha256_;  // the signed digest, 32 raw bytes
  uint64_t size_ = 0;
  uint64_t received_ = 0;
  int fd_ = -1;
  bool done_ = false;
  std::unique_ptr<void, HashDeleter> hash_;  // EVP_MD_CTX over the bytes received
};

}  // namespace keel::machined
