// Fuzzes CSR parsing, signature verification and issuing under a strip policy, checking
// that nothing is ever issued that the policy forbids.
// Run: build-fuzz/libs/pki/fuzz/pki_fuzz_csr_issue -dict=libs/pki/fuzz/pem.dict
// build-fuzz/libs/pki/fuzz/corpus/csr_issue libs/pki/fuzz/corpus/csr_issue
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keel/common/clock.h"
#include "keel/pki/pki.h"

namespace {

using namespace keel;
using namespace keel::pki;

const TimePoint kNow = std::chrono::sys_days{std::chrono::year{2030} / 1 / 1};

const CertificateAuthority& ca() {
  static const CertificateAuthority* const kCa = [] {
    ManualClock clock(kNow);
    auto created = createSelfSignedCa(
        CaOptions{{"fuzz-ca", {"keel"}}, KeyType::kEcdsaP256, std::chrono::hours(24)}, clock);
    if (!created.ok()) std::abort();
    return new CertificateAuthority(std::move(created).value());
  }();
  return *kCa;
}

IssuePolicy stripPolicy(bool allowAny) {
  IssuePolicy policy;
  policy.extendedKeyUsages = {ExtendedKeyUsage::kClientAuth};
  policy.organizationPolicy = IssuePolicy::Organizations::kStrip;
  policy.allowAnySubjectAltName = allowAny;
  policy.allowedSubjectAltNames = {{"node.keel"}, {"10.0.0.1"}};
  policy.ttl = std::chrono::hours(1);
  return policy;
}

void checkIssued(const Certificate& cert, const CertificateRequest& csr, const IssuePolicy& policy,
                 const Clock& clock) {
  if (!csr.verifySignature().isOk()) __builtin_trap();          // issued for a forged CSR
  if (!cert.subject().organizations.empty()) __builtin_trap();  // strip policy leaked O=
  if (cert.isCa()) __builtin_trap();
  const auto sans = cert.subjectAltNames();
  if (!(sans == csr.subjectAltNames())) __builtin_trap();  // a SAN added or dropped
  if (!policy.allowAnySubjectAltName) {
    const auto& allowed = policy.allowedSubjectAltNames;
    for (const auto& ip : sans.ipAddresses) {
      if (std::find(allowed.ipAddresses.begin(), allowed.ipAddresses.end(), ip) ==
          allowed.ipAddresses.end()) {
        __builtin_trap();
      }
    }
  }
  VerifyOptions options;
  options.requiredUsage = ExtendedKeyUsage::kClientAuth;
  if (!verifyCertificate(cert, {ca().certificate}, options, clock).isOk()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto csr = CertificateRequest::fromPem(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!csr.ok()) return 0;
  (void)csr->subject().toString();
  (void)csr->subjectAltNames();
  if (!CertificateRequest::fromPem(csr->toPem()).ok()) __builtin_trap();
  (void)csr->verifySignature();

  ManualClock clock(kNow);
  for (const bool allowAny : {false, true}) {
    const IssuePolicy policy = stripPolicy(allowAny);
    auto cert = issueCertificate(ca(), *csr, policy, clock);
    if (cert.ok()) checkIssued(*cert, *csr, policy, clock);
  }
  return 0;
}
