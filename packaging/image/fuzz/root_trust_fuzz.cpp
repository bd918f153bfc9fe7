// libFuzzer target for what keel_init reads before it trusts a root: the machine config on
// the state disk or config disk (anyone who can write a disk chooses its bytes), the
// factory root's verity parameters, and a slot's signature. Each must be refused by name,
// never crash PID 1 of the initramfs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "root_trust.h"

namespace {

// A P-256 public key; a fuzzed signature over a fuzzed manifest must simply not verify.
constexpr const char* kKey =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEcbRmqopAO4JPNCrpIPKrOlxV26VM\n"
    "/z14DCZBK/L2AGEdY/amUwPvx9d0iBnR5+8x6yrm06YZXU/Ur5xMcOnhuA==\n"
    "-----END PUBLIC KEY-----\n";

const keel::init::SigningKey& key() {
  static const keel::init::SigningKey kParsed = [] {
    std::string error;
    auto parsed = keel::init::SigningKey::fromPem(kKey, error);
    if (!parsed) __builtin_trap();
    return *parsed;
  }();
  return kParsed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string error;
  // The key a config names, as keel_init takes it.
  if (const auto pem = keel::init::imageSigningKey(input, error)) (void)keel::init::SigningKey::fromPem(*pem, error);
  const auto factory = keel::init::factoryRoot(input);
  if (factory.params && factory.params->dataBytes % factory.params->dataBlockSize != 0) __builtin_trap();
  // The first half as the manifest, the rest as its signature.
  const auto slot = keel::init::trustSlotManifest(input.substr(0, size / 2), input.substr(size / 2), key());
  if (slot.params) __builtin_trap();
  return 0;
}
