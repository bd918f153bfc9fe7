#include "pki_test_util.h"

#include <algorithm>
#include <stdexcept>

#include <catch2/catch_test_macros.hpp>
#include <openssl/crypto.h>

// pki_test_boringssl must really see BoringSSL's headers, not OpenSSL's.
#if defined(KEEL_PKI_EXPECT_BORINGSSL) && !defined(OPENSSL_IS_BORINGSSL)
#error "pki_test_boringssl compiled against OpenSSL headers"
#endif

namespace keel::pki::testing {
namespace {

constexpr std::string_view kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

CertificateAuthority makeCa(const Clock& clock, KeyType type, std::string cn) {
  CaOptions options;
  options.subject.commonName = std::move(cn);
  options.subject.organizations = {"keel"};
  options.keyType = type;
  auto ca = createSelfSignedCa(options, clock);
  INFO(ca.status().toString());
  REQUIRE(ca.ok());
  return std::move(ca).value();
}

KeyAndCsr makeCsr(const CsrOptions& options, KeyType type) {
  auto key = PrivateKey::generate(type);
  REQUIRE(key.ok());
  auto csr = CertificateRequest::create(*key, options);
  INFO(csr.status().toString());
  REQUIRE(csr.ok());
  return {std::move(key).value(), std::move(csr).value()};
}

KeyAndCsr makeCsr(std::string cn, KeyType type) {
  CsrOptions options;
  options.subject.commonName = std::move(cn);
  return makeCsr(options, type);
}

IssuePolicy clientPolicy() {
  IssuePolicy policy;
  policy.extendedKeyUsages = {ExtendedKeyUsage::kClientAuth};
  policy.keyUsage = kDigitalSignature;
  policy.organizationPolicy = IssuePolicy::Organizations::kStrip;
  policy.ttl = std::chrono::hours(24);
  return policy;
}

Certificate issue(const CertificateAuthority& ca, const CertificateRequest& csr, const IssuePolicy& policy,
                  const Clock& clock) {
  auto cert = issueCertificate(ca, csr, policy, clock);
  INFO(cert.status().toString());
  REQUIRE(cert.ok());
  return std::move(cert).value();
}

std::vector<uint8_t> pemToDer(std::string_view pem) {
  const auto begin = pem.find("-----\n");
  const auto end = pem.find("-----END");
  if (begin == std::string_view::npos || end == std::string_view::npos)
    throw std::invalid_argument("not PEM");
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : pem.substr(begin + 6, end - begin - 6)) {
    const auto pos = kBase64.find(c);
    if (pos == std::string_view::npos) continue;  // newlines and padding
    acc = (acc << 6) | static_cast<uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string derToPem(std::string_view label, const std::vector<uint8_t>& der) {
  std::string body;
  for (size_t i = 0; i < der.size(); i += 3) {
    uint32_t chunk = static_cast<uint32_t>(der[i]) << 16;
    if (i + 1 < der.size()) chunk |= static_cast<uint32_t>(der[i + 1]) << 8;
    if (i + 2 < der.size()) chunk |= der[i + 2];
    body += kBase64[(chunk >> 18) & 63];
    body += kBase64[(chunk >> 12) & 63];
    body += i + 1 < der.size() ? kBase64[(chunk >> 6) & 63] : '=';
    body += i + 2 < der.size() ? kBase64[chunk & 63] : '=';
  }
  std::string out = "-----BEGIN " + std::string(label) + "-----\n";
  for (size_t i = 0; i < body.size(); i += 64) out += body.substr(i, 64) + "\n";
  out += "-----END " + std::string(label) + "-----\n";
  return out;
}

std::vector<uint8_t> replaceBytes(std::vector<uint8_t> bytes, std::string_view from, std::string_view to) {
  REQUIRE(from.size() == to.size());
  const auto it = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
  REQUIRE(it != bytes.end());
  std::copy(to.begin(), to.end(), it);
  return bytes;
}

const std::string_view kRsaKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBANkQOIKUBhpFnmhN
zit8MJu/Mc807QLdG3ixeoeZtj2bK9DOvAQg4ke/cP6lNQx5vCkuGk+0fbzGHiZa
gtJk6q/i/AVUKW5eJdXdoMr9eaZfiBlx7JkI9tGnOQOXIYqWfme/0CQNjqc/FP2V
A/TaA/vTi0SvUGEW4tSA/uaeINkRAgMBAAECgYEA0u3tTA6Vw4/leAwrjZw4DBEG
UQloS8EbAfTNUdnv+vu/30AV+pkN6pTBM+LMoxvk2cuAK/YDvZ50C+cme1cvqgML
bWaCg0hOiy7cXVxOnjlYrY0DLSm8MHa9NEKbuddQIHwKvBSA6Guh3S7VD+iFgkrB
1XbgHjA5xIdw8FHdNkECQQD1qbj0CBz/TG4mRC4rb5mJecGcovfsPOALmCn0RwAw
pgyol3KyIPqYGffat2xae7AXala12+tmqlAfhTA7aS/ZAkEA4jJsdjDqWzAbHRWQ
5iuhGRgo6lxEtKw8SrMHEYnbkr4D1ioUlJ84/BxESOuBMiZd2NJD+ZG0Ee0DtORi
7Xln+QJAA8g+KbuqPp/9nic0ksSgF4bBXVkA+ikhxevs0W76aMVVso7KXEW3tfnI
YBys1WPMHUAs35XoNOdwXlvdlzySWQJAZueXrmFsjNWi0CV6iSw6GweBvbUCUMu2
lilCQvlbmjO13R3BxSd2rkNR0XbKjP0lXrmx0P03VZxlPktUskK0SQJBAJZgZ0Xj
4+g1WGWMl4YwI4J/sjEsF2hCNnFYdmRt4guX2+e6AqGWW0JN3KQQY3BdFg17Utdi
3EwYL2Xf3HByyU8=
-----END PRIVATE KEY-----
)";

const std::string_view kRsaCsrPem = R"(-----BEGIN CERTIFICATE REQUEST-----
MIIBUjCBvAIBADATMREwDwYDVQQDDAhyc2Etbm9kZTCBnzANBgkqhkiG9w0BAQEF
AAOBjQAwgYkCgYEA2RA4gpQGGkWeaE3OK3wwm78xzzTtAt0beLF6h5m2PZsr0M68
BCDiR79w/qU1DHm8KS4aT7R9vMYeJlqC0mTqr+L8BVQpbl4l1d2gyv15pl+IGXHs
mQj20ac5A5chipZ+Z7/QJA2Opz8U/ZUD9NoD+9OLRK9QYRbi1ID+5p4g2RECAwEA
AaAAMA0GCSqGSIb3DQEBCwUAA4GBACDepa6iwLpTsPHBVuiC24owsm3X9uM1G3B1
XlbsfhybSnrHAuOyAH0TGBqQFc3oxnZoVciyNNRkoWcLdbkppEetFcuzDSz1/g/Z
3spw9vqBFZk/oeonvMpvAKrQ4X0IvDrWpgb1bjcDZzXI3gUxDmJljcup1WMHnoTh
V9M4E0ex
-----END CERTIFICATE REQUEST-----
)";

const std::string_view kP384KeyPem = R"(-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDD4n/iZ0HdAcjkWIQLG
tBT26uxJoK5lY/YKqDNvPb9O+rU3AvlmKz1RtKF77paD+jShZANiAAQeuHx6PZOy
YrH207HqyPGg+oxXo5S7plJ1qlD/mlANPYXB7X2sD7BjdVGJIQL+yHUSx8E1jsJI
AmvqFeHv3CQdsAmxApZRWfCbQzm0whALVv0VH3oS/fteBaqwNbxACp8=
-----END PRIVATE KEY-----
)";

const std::string_view kTraditionalEcKeyPem = R"(-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIHsVh8UgGE7/XDPla8o2/mqBJRMiTlpqcAqSTg4FJBfsoAoGCCqGSM49
AwEHoUQDQgAEG5xpt15XFRG3vpCicufwz8Ph6n7o/wzY/yOU39bRlA0uaPTy/VY/
7Ttpt9XQ/6WPBsT7VxX64rsLVVqBK+KVUA==
-----END EC PRIVATE KEY-----
)";

const std::string_view kEncryptedKeyPem = R"(-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAg4mTsDdeMpEAICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEGQWoMxORXVr8Gv7+KPEMdkEgZCt
oY+iiDMyLF1cvSwYy0m35lAl4iTcldCgU8p9Pfcs6Zcd5iEYbn5AywGnSz7It3Be
uFqwqnNBMTPgm2mQtm71FSdu6BOa+CWSa4oYr9yQucSAw9knMbt+dw4H9SYOF5w+
0WW+L+fw73YpCC8x07413ox59NfxpiVTnukxe4guwhkbGhULZzVQcp/6pNwDs+Q=
-----END ENCRYPTED PRIVATE KEY-----
)";

const std::string_view kUriSanCsrPem = R"(-----BEGIN CERTIFICATE REQUEST-----
MIIBCTCBsAIBADATMREwDwYDVQQDDAhub2RlLXVyaTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABOXwVEF3TprurK4Mv4vQrvv9L1kb524Xsj7GPfKK6DRUL6QxmX6U
YM/Hrw4cTnMVSmlcCq4Fj9yvchYo/IkdVtOgOzA5BgkqhkiG9w0BCQ4xLDAqMCgG
A1UdEQQhMB+CCW5vZGUua2VlbIYSc3BpZmZlOi8va2VlbC9ub2RlMAoGCCqGSM49
BAMCA0gAMEUCIEsnrCgwP4X9erWVAJuaYCoFnyshPyDQsQ4Te/yMvXBmAiEA67b0
jwPo02ya08Ab/YEqJUpSuFIX1ODgzG34NZHSwyM=
-----END CERTIFICATE REQUEST-----
)";

const std::string_view kTwoCnCsrPem = R"(-----BEGIN CERTIFICATE REQUEST-----
MIHcMIGDAgEAMCExDjAMBgNVBAMMBWZpcnN0MQ8wDQYDVQQDDAZzZWNvbmQwWTAT
BgcqhkjOPQIBBggqhkjOPQMBBwNCAATl8FRBd06a7qyuDL+L0K77/S9ZG+duF7I+
xj3yiug0VC+kMZl+lGDPx68OHE5zFUppXAquBY/cr3IWKPyJHVbToAAwCgYIKoZI
zj0EAwIDSAAwRQIhAJycTngkYI5Nm1vJMlA9AU5FO/HPVVrrtlnwIQl4PrLbAiAm
sYobZQqESyhRAZHreM6VSJYSBHDFgqeniy1B7o8Oyw==
-----END CERTIFICATE REQUEST-----
)";

}  // namespace keel::pki::testing
