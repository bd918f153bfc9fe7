// Fuzzes CSR parsing, signature verification and issuing under a strip policy, with and
// without the server rule, checking that nothing is ever issued that the policy forbids.
// Run: build-fuzz/libs/pki/fuzz/pki_fuzz_csr_issue -dict=libs/pki/fuzz/pem.dict
// build-fuzz/libs/pki/fuzz/corpus/csr_issue libs/pki/fuzz/corpus/csr_issue
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
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

std::optional<std::array<uint8_t, 16>> ipBytes(const std::string& text) {
  std::array<uint8_t, 16> out{};
  if (inet_pton(AF_INET, text.c_str(), out.data()) == 1 || inet_pton(AF_INET6, text.c_str(), out.data()) == 1)
    return out;
  return std::nullopt;
}

// A server certificate names nothing but its SANs: it has one, and its CN repeats one
// (a DNS name in any case, an address in any spelling).
bool namesOnlySans(const std::string& cn, const SubjectAltNames& sans) {
  if (sans.empty()) return false;
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  for (const auto& dns : sans.dnsNames) {
    if (lower(dns) == lower(cn)) return true;
  }
  const auto cnBytes = ipBytes(cn);
  for (const auto& ip : sans.ipAddresses) {
    if (cnBytes && ipBytes(ip) == cnBytes) return true;
  }
  return false;
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
  if (policy.commonNameMustBeSubjectAltName && !namesOnlySans(cert.subject().commonName, sans)) __builtin_trap();
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
    for (const bool server : {false, true}) {
      IssuePolicy policy = stripPolicy(allowAny);
      policy.commonNameMustBeSubjectAltName = server;
      auto cert = issueCertificate(ca(), *csr, policy, clock);
      if (cert.ok()) checkIssued(*cert, *csr, policy, clock);
    }
  }
  return 0;
}
