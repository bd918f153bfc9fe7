// What the library writes must be DER, not just BER that OpenSSL happens to read back:
// Go's crypto/x509 and Python's cryptography refuse the difference. A small walker over
// the encoding checks the rules that the library's output could break: minimal lengths,
// BOOLEAN as 0x00/0xFF, minimal INTEGERs, and the same inside extension values.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include "keel/pki/pki.h"

#include "pki_test_util.h"

namespace keel::pki {
namespace {

using namespace testing;

constexpr uint8_t kBoolean = 0x01;
constexpr uint8_t kInteger = 0x02;
constexpr uint8_t kOctetString = 0x04;
constexpr uint8_t kSequence = 0x30;
constexpr uint8_t kConstructed = 0x20;

// Appends to `problems` every DER rule `der` breaks; returns false when the bytes are
// not even a well-formed TLV sequence (then nothing more is said about them).
bool walk(std::span<const uint8_t> der, const std::string& path, std::vector<std::string>& problems) {
  size_t i = 0;
  int index = 0;
  while (i < der.size()) {
    const std::string at = path + "/" + std::to_string(index++);
    const uint8_t tag = der[i++];
    if ((tag & 0x1F) == 0x1F) {
      problems.push_back(at + ": multi-byte tag");
      return false;
    }
    if (i >= der.size()) return false;
    size_t len = der[i++];
    if (len & 0x80) {
      const size_t n = len & 0x7F;
      if (n == 0) {
        problems.push_back(at + ": indefinite length");
        return false;
      }
      if (n > 4 || i + n > der.size()) return false;
      if (der[i] == 0) problems.push_back(at + ": length with a leading zero byte");
      len = 0;
      for (size_t k = 0; k < n; ++k) len = (len << 8) | der[i++];
      if (len < 0x80) problems.push_back(at + ": long-form length for " + std::to_string(len) + " bytes");
    }
    if (len > der.size() - i) return false;
    const auto content = der.subspan(i, len);
    i += len;
    if (tag == kBoolean) {
      if (len != 1 || (content[0] != 0x00 && content[0] != 0xFF)) {
        problems.push_back(at + ": BOOLEAN must be one byte, 0x00 or 0xFF");
      }
    } else if (tag == kInteger) {
      if (len == 0) {
        problems.push_back(at + ": empty INTEGER");
      } else if (len > 1 && ((content[0] == 0x00 && !(content[1] & 0x80)) ||
                             (content[0] == 0xFF && (content[1] & 0x80)))) {
        problems.push_back(at + ": INTEGER not in its shortest form");
      }
    } else if (tag & kConstructed) {
      if (!walk(content, at, problems)) problems.push_back(at + ": malformed contents");
    } else if (tag == kOctetString && len > 0 && content[0] == kSequence) {
      // An extension's value is DER inside an OCTET STRING; random bytes that only look
      // like a SEQUENCE do not parse to the end and are left alone.
      std::vector<std::string> inner;
      if (walk(content, at + "(octets)", inner)) problems.insert(problems.end(), inner.begin(), inner.end());
    }
  }
  return true;
}

std::vector<std::string> derProblems(const std::vector<uint8_t>& der) {
  std::vector<std::string> problems;
  if (!walk(der, "", problems)) problems.push_back("not a well-formed TLV sequence");
  return problems;
}

TEST_CASE("the DER checker itself finds a BOOLEAN TRUE written as 0x01 and a padded INTEGER", "[pki][der]") {
  // basicConstraints { cA TRUE, pathLen 0 } inside an extension, the way it was written wrongly.
  const std::vector<uint8_t> lenientBool = {0x30, 0x0C, 0x04, 0x08, 0x30, 0x06, 0x01,
                                            0x01, 0x01, 0x02, 0x01, 0x00, 0x05, 0x00};
  CHECK(derProblems(lenientBool).size() == 1);
  const std::vector<uint8_t> strictBool = {0x30, 0x0C, 0x04, 0x08, 0x30, 0x06, 0x01,
                                           0x01, 0xFF, 0x02, 0x01, 0x00, 0x05, 0x00};
  CHECK(derProblems(strictBool).empty());
  CHECK(derProblems({0x02, 0x02, 0x00, 0x01}).size() == 1);
  CHECK(derProblems({0x04, 0x81, 0x01, 0x00}).size() == 1);
}

TEST_CASE("CA certificates, issued certificates and CSRs are strict DER", "[pki][der]") {
  const KeyType type = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  CAPTURE(keyTypeName(type));
  ManualClock clock(kStart);
  const auto ca = makeCa(clock, type);
  {
    const auto problems = derProblems(ca.certificate.toDer());
    CAPTURE(problems);
    CHECK(problems.empty());
  }
  CsrOptions options;
  options.subject.commonName = "node-1";
  options.subject.organizations = {"os:reader"};
  options.subjectAltNames.dnsNames = {"node-1.keel"};
  options.subjectAltNames.ipAddresses = {"10.0.0.1", "::1"};
  const auto [key, csr] = makeCsr(options, type);
  {
    const auto problems = derProblems(pemToDer(csr.toPem()));
    CAPTURE(problems);
    CHECK(problems.empty());
  }
  IssuePolicy policy = clientPolicy();
  policy.allowAnySubjectAltName = true;
  policy.organizationPolicy = IssuePolicy::Organizations::kCopy;
  policy.extendedKeyUsages = {ExtendedKeyUsage::kServerAuth, ExtendedKeyUsage::kClientAuth};
  const auto leaf = issue(ca, csr, policy, clock);
  const auto problems = derProblems(leaf.toDer());
  CAPTURE(problems);
  CHECK(problems.empty());
}

TEST_CASE("a CA's basicConstraints encode cA as 0xFF; a leaf's leave the FALSE default out", "[pki][der]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto der = ca.certificate.toDer();
  // OID 2.5.29.19, critical TRUE, OCTET STRING { SEQUENCE { BOOLEAN TRUE, INTEGER 0 } }.
  const std::vector<uint8_t> caExtension = {0x06, 0x03, 0x55, 0x1D, 0x13, 0x01, 0x01, 0xFF, 0x04, 0x08,
                                            0x30, 0x06, 0x01, 0x01, 0xFF, 0x02, 0x01, 0x00};
  CHECK(std::search(der.begin(), der.end(), caExtension.begin(), caExtension.end()) != der.end());

  const auto [key, csr] = makeCsr("leaf");
  const auto leafDer = issue(ca, csr, clientPolicy(), clock).toDer();
  const std::vector<uint8_t> leafExtension = {0x06, 0x03, 0x55, 0x1D, 0x13, 0x01, 0x01,
                                              0xFF, 0x04, 0x02, 0x30, 0x00};
  CHECK(std::search(leafDer.begin(), leafDer.end(), leafExtension.begin(), leafExtension.end()) != leafDer.end());
}

}  // namespace
}  // namespace keel::pki
