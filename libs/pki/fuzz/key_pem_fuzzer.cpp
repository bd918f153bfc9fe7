// Fuzzes private key PEM parsing; a key that parses must re-encode, re-parse to the same
// key and sign a CSR that verifies.
// Run: build-fuzz/libs/pki/fuzz/pki_fuzz_key_pem -dict=libs/pki/fuzz/pem.dict
// build-fuzz/libs/pki/fuzz/corpus/key_pem libs/pki/fuzz/corpus/key_pem
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/pki/pki.h"

using namespace keel::pki;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto key = PrivateKey::fromPem(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!key.ok()) return 0;
  auto again = PrivateKey::fromPem(key->toPem());
  if (!again.ok() || again->type() != key->type() ||
      again->publicKeyFingerprint() != key->publicKeyFingerprint()) {
    __builtin_trap();
  }
  (void)key->publicKeyPem();
  auto csr = CertificateRequest::create(*key, CsrOptions{{"fuzz", {}}, {}});
  if (!csr.ok() || !csr->verifySignature().isOk()) __builtin_trap();
  return 0;
}
