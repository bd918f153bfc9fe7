// What keel_init trusts about a root before it mounts it: the dm-verity parameters of a
// slot's manifest once the manifest's signature verifies with the machine config's image
// signing key, or those the build wrote into the initramfs for the factory root.
// See packaging/image/README.md, "Verified roots".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

struct evp_pkey_st;

namespace keel::init {

// A dm-verity target's parameters ("verity" table line, format version 1).
struct VerityParams {
  uint64_t dataBytes = 0;  // the root's size: a whole number of data blocks
  uint32_t dataBlockSize = 0;
  uint32_t hashBlockSize = 0;
  uint64_t hashStartBlock = 0;  // where the tree starts on the hash device, in hash blocks
  std::string algorithm;        // "sha256"
  std::string rootHash;         // hex
  std::string salt;             // hex
};

// A part of an image whose bytes a signed manifest names: its size and SHA-256 (hex).
struct PartDigest {
  uint64_t size = 0;
  std::string sha256;
};

// A value, or why there is none. For a slot, also its kernel and initramfs as its signed
// manifest names them (the factory root has none: its kernel is the one running).
struct TrustedRoot {
  std::optional<VerityParams> params;
  PartDigest kernel;
  PartDigest initramfs;
  std::string error;
};

// The PEM of machine.upgrade.publicKey in a machine config (JSON, possibly followed by the
// zero bytes that pad a config disk), or nullopt with `error` set.
std::optional<std::string> imageSigningKey(const std::string& configJson, std::string& error);

// The image signing key, parsed once: an ECDSA P-256 public key.
class SigningKey {
 public:
  // The key of a PEM public key, or nullopt with `error` set when it is not one or not on
  // P-256.
  static std::optional<SigningKey> fromPem(const std::string& pem, std::string& error);
  evp_pkey_st* get() const { return key_.get(); }

 private:
  std::shared_ptr<evp_pkey_st> key_;
};

// The verity parameters of a slot: `signature` (DER ECDSA P-256) must verify over the
// SHA-256 of `manifest`'s bytes with `key`; only then is the manifest read. The tree is
// its own file, so it starts at hash block 0. The manifest must name a kernel and an
// initramfs part, each with a size and a SHA-256.
TrustedRoot trustSlotManifest(const std::string& manifest, const std::string& signature, const SigningKey& key);

// The factory root's parameters as the build wrote them into the initramfs: the image
// manifest's "verity" object and the root's size ("root_size"); the tree follows the root
// on the root disk.
TrustedRoot factoryRoot(const std::string& json);

}  // namespace keel::init
