// Fuzzes certificate parsing: PEM (single and bundle), DER, and every accessor of what parses.
// Run: build-fuzz/libs/pki/fuzz/pki_fuzz_cert_pem -dict=libs/pki/fuzz/pem.dict
// build-fuzz/libs/pki/fuzz/corpus/cert_pem libs/pki/fuzz/corpus/cert_pem
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/common/clock.h"
#include "keel/pki/pki.h"

namespace {

using namespace keel;
using namespace keel::pki;

void exercise(const Certificate& cert) {
  (void)cert.subject().toString();
  (void)cert.issuer().toString();
  (void)cert.subjectAltNames();
  (void)cert.extendedKeyUsages();
  (void)cert.keyUsage();
  (void)cert.isCa();
  (void)formatTime(cert.notBefore());
  (void)formatTime(cert.notAfter());
  (void)cert.serialHex();
  (void)cert.fingerprintSha256();
  (void)cert.publicKeyType();
  // What parsed once must parse again from its own encoding.
  auto again = Certificate::fromPem(cert.toPem());
  if (!again.ok() || again->toDer() != cert.toDer()) __builtin_trap();
  ManualClock clock(cert.notBefore());
  (void)verifyCertificate(cert, {cert}, {}, clock);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto single = Certificate::fromPem(text);
  auto bundle = Certificate::bundleFromPem(text);
  if (single.ok()) {
    // One certificate block is also a bundle of one.
    if (!bundle.ok() || bundle->size() != 1 || (*bundle)[0].toDer() != single->toDer()) __builtin_trap();
  }
  if (bundle.ok()) {
    for (const auto& cert : *bundle) exercise(cert);
  }
  auto der = Certificate::fromDer(std::span<const uint8_t>(data, size));
  if (der.ok()) exercise(*der);
  return 0;
}
