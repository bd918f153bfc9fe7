// Shared fixtures for the PKI tests: a fixed start time, CA/CSR builders that fail the
// test on error, PEM<->DER helpers for tampering, and PEMs made with the openssl CLI for
// inputs the library cannot produce itself (RSA, P-384, encrypted, URI SANs, two CNs).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/common/clock.h"
#include "keel/pki/pki.h"

namespace keel::pki::testing {

// Far from the wall clock on purpose: a verification that read the wall clock instead of
// the injected one would see every test certificate as expired.
inline const TimePoint kStart =
    std::chrono::sys_days{std::chrono::year{2001} / 2 / 3} + std::chrono::hours(4);

CertificateAuthority makeCa(const Clock& clock, KeyType type = KeyType::kEcdsaP256,
                            std::string cn = "keel-os");

struct KeyAndCsr {
  PrivateKey key;
  CertificateRequest csr;
};
KeyAndCsr makeCsr(const CsrOptions& options, KeyType type = KeyType::kEcdsaP256);
KeyAndCsr makeCsr(std::string cn, KeyType type = KeyType::kEcdsaP256);

// A client-auth policy that allows no SANs and strips O=.
IssuePolicy clientPolicy();

Certificate issue(const CertificateAuthority& ca, const CertificateRequest& csr, const IssuePolicy& policy,
                  const Clock& clock);

// The DER inside the first PEM block, and back.
std::vector<uint8_t> pemToDer(std::string_view pem);
std::string derToPem(std::string_view label, const std::vector<uint8_t>& der);

// Replaces the first occurrence of `from` in `bytes` with `to` (same length).
std::vector<uint8_t> replaceBytes(std::vector<uint8_t> bytes, std::string_view from, std::string_view to);

// 1024-bit RSA PKCS#8 key.
extern const std::string_view kRsaKeyPem;
// CSR for CN=rsa-node signed by kRsaKeyPem.
extern const std::string_view kRsaCsrPem;
// P-384 PKCS#8 key.
extern const std::string_view kP384KeyPem;
// P-256 key in the traditional "EC PRIVATE KEY" form.
extern const std::string_view kTraditionalEcKeyPem;
// P-256 PKCS#8 key encrypted with the password "x".
extern const std::string_view kEncryptedKeyPem;
// CSR (P-256, validly signed) for CN=node-uri with SANs DNS:node.keel and URI:spiffe://keel/node.
extern const std::string_view kUriSanCsrPem;
// CSR (P-256, validly signed) with subject CN=first, CN=second.
extern const std::string_view kTwoCnCsrPem;

}  // namespace keel::pki::testing
