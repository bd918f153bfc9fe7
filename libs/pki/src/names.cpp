// Distinguished names and subject alternative names: read leniently for showing,
// strictly for issuing, and built for certificates and CSRs.
#include <algorithm>
#include <array>

#include <arpa/inet.h>

#include "internal.h"

namespace keel::pki::internal {
namespace {

// The UTF-8 text of a name attribute, or nullopt when it cannot be decoded.
std::optional<std::string> entryText(const X509_NAME_ENTRY* entry) {
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
  if (len < 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  OpensslBytes owner(utf8);
  return std::string(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
}

// DNS SANs Keel issues: printable ASCII without spaces; wildcards are left to the
// allow-list to accept or not.
bool isDnsChar(unsigned char c) {
  return c > 0x20 && c < 0x7f;
}

std::optional<std::string> formatIp(const ASN1_OCTET_STRING* ip) {
  const auto* data = ASN1_STRING_get0_data(ip);
  const int len = ASN1_STRING_length(ip);
  char buf[INET6_ADDRSTRLEN] = {};
  if (len == 4 && inet_ntop(AF_INET, data, buf, sizeof buf) != nullptr) return std::string(buf);
  if (len == 16 && inet_ntop(AF_INET6, data, buf, sizeof buf) != nullptr) return std::string(buf);
  return std::nullopt;
}

// Strict (for issuing): every SAN must be a valid DNS name or an IP address of 4 or 16
// bytes, and of no other kind. Lenient (for showing): what cannot be shown is skipped.
Result<SubjectAltNames> readSans(const GENERAL_NAMES* names, bool strict) {
  SubjectAltNames out;
  if (names == nullptr) return out;
  const auto count = sk_GENERAL_NAME_num(names);  // int in OpenSSL, size_t in BoringSSL
  for (decltype(sk_GENERAL_NAME_num(names)) i = 0; i < count; ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names, i);
    int type = 0;
    const void* value = GENERAL_NAME_get0_value(gen, &type);
    if (type == GEN_DNS) {
      const auto* s = static_cast<const ASN1_IA5STRING*>(value);
      std::string dns(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<size_t>(ASN1_STRING_length(s)));
      if (strict) KEEL_RETURN_IF_ERROR(checkDnsName(dns));
      out.dnsNames.push_back(std::move(dns));
    } else if (type == GEN_IPADD) {
      const auto* ip = static_cast<const ASN1_OCTET_STRING*>(value);
      auto text = formatIp(ip);
      if (text) {
        out.ipAddresses.push_back(std::move(*text));
      } else if (strict) {
        return invalidArgument("expected IP SANs of 4 or 16 bytes, found one of " +
                               std::to_string(ASN1_STRING_length(ip)) + " bytes");
      }
    } else if (strict) {
      // Keel only issues DNS and IP SANs; dropping another kind silently would issue a
      // certificate that differs from the request without saying so.
      return invalidArgument("expected only DNS and IP SANs, found a SAN of GeneralName type " +
                             std::to_string(type));
    }
  }
  return out;
}

}  // namespace

DistinguishedName readName(const X509_NAME* name) {
  DistinguishedName out;
  if (name == nullptr) return out;
  const int count = X509_NAME_entry_count(name);
  for (int i = 0; i < count; ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    if (nid != NID_commonName && nid != NID_organizationName) continue;
    auto text = entryText(entry);
    if (!text) continue;
    if (nid == NID_commonName) {
      if (out.commonName.empty()) out.commonName = std::move(*text);
    } else {
      out.organizations.push_back(std::move(*text));
    }
  }
  return out;
}

Result<DistinguishedName> readNameForIssuing(const X509_NAME* name) {
  DistinguishedName out;
  int commonNames = 0;
  const int count = name == nullptr ? 0 : X509_NAME_entry_count(name);
  for (int i = 0; i < count; ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    if (nid != NID_commonName && nid != NID_organizationName) continue;
    auto text = entryText(entry);
    if (!text)
      return invalidArgument("expected UTF-8 decodable subject attributes, found an undecodable one");
    if (text->find('\0') != std::string::npos) {
      return invalidArgument("expected subject attributes without NUL bytes, found one in '" +
                             text->substr(0, text->find('\0')) + "…'");
    }
    if (nid == NID_commonName) {
      ++commonNames;
      out.commonName = std::move(*text);
    } else {
      out.organizations.push_back(std::move(*text));
    }
  }
  if (commonNames != 1) {
    return invalidArgument("expected exactly one CN in the subject, found " + std::to_string(commonNames));
  }
  if (out.commonName.empty()) return invalidArgument("expected a non-empty CN, found an empty one");
  return out;
}

Result<NamePtr> buildName(const DistinguishedName& name) {
  NamePtr out(X509_NAME_new());
  KEEL_RELEASE_ASSERT(out != nullptr, "out of memory");
  auto add = [&](int nid, std::string_view label, const std::string& value) -> Status {
    if (value.empty())
      return invalidArgument("expected a non-empty " + std::string(label) + "=, found an empty one");
    if (value.find('\0') != std::string::npos) {
      return invalidArgument("expected " + std::string(label) + "= without NUL bytes, found one");
    }
    // The libraries enforce the X.520 upper bounds (64 characters for CN and O) here.
    if (X509_NAME_add_entry_by_NID(out.get(), nid, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      return cryptoError(StatusCode::kInvalidArgument, "expected a valid UTF-8 " + std::string(label) +
                                                           "= of at most 64 characters, got '" + value + "'");
    }
    return Status::ok();
  };
  // Most significant first, as in "O=os:admin, CN=alice" on the wire.
  for (const auto& org : name.organizations) KEEL_RETURN_IF_ERROR(add(NID_organizationName, "O", org));
  if (!name.commonName.empty()) KEEL_RETURN_IF_ERROR(add(NID_commonName, "CN", name.commonName));
  return out;
}

SubjectAltNames readSubjectAltNames(const GENERAL_NAMES* names) {
  auto sans = readSans(names, /*strict=*/false);
  KEEL_RELEASE_ASSERT(sans.ok(), "reading SANs leniently cannot fail");
  return std::move(sans).value();
}

Result<SubjectAltNames> readSubjectAltNamesForIssuing(const GENERAL_NAMES* names) {
  return readSans(names, /*strict=*/true);
}

Result<GeneralNamesPtr> buildSubjectAltNames(const SubjectAltNames& sans) {
  GeneralNamesPtr names(GENERAL_NAMES_new());
  KEEL_RELEASE_ASSERT(names != nullptr, "out of memory");
  auto push = [&](int type, ASN1_STRING* value) {
    GeneralNamePtr gen(GENERAL_NAME_new());
    KEEL_RELEASE_ASSERT(gen != nullptr, "out of memory");
    GENERAL_NAME_set0_value(gen.get(), type, value);
    KEEL_RELEASE_ASSERT(sk_GENERAL_NAME_push(names.get(), gen.get()) != 0, "out of memory");
    (void)gen.release();  // now owned by the stack
  };
  for (const auto& dns : sans.dnsNames) {
    KEEL_RETURN_IF_ERROR(checkDnsName(dns));
    Ia5StringPtr s(ASN1_IA5STRING_new());
    KEEL_RELEASE_ASSERT(
        s != nullptr && ASN1_STRING_set(s.get(), dns.data(), static_cast<int>(dns.size())) == 1,
        "out of memory");
    push(GEN_DNS, s.release());
  }
  for (const auto& ip : sans.ipAddresses) {
    KEEL_ASSIGN_OR_RETURN(auto bytes, parseIpAddress(ip));
    OctetStringPtr s(ASN1_OCTET_STRING_new());
    KEEL_RELEASE_ASSERT(
        s != nullptr && ASN1_OCTET_STRING_set(s.get(), bytes.data(), static_cast<int>(bytes.size())) == 1,
        "out of memory");
    push(GEN_IPADD, s.release());
  }
  return names;
}

Result<std::vector<uint8_t>> parseIpAddress(std::string_view text) {
  const std::string s(text);
  std::array<uint8_t, 16> buf{};
  if (s.find('\0') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), buf.data()) == 1)
      return std::vector<uint8_t>(buf.begin(), buf.begin() + 4);
    if (inet_pton(AF_INET6, s.c_str(), buf.data()) == 1) return std::vector<uint8_t>(buf.begin(), buf.end());
  }
  return invalidArgument("expected an IPv4 or IPv6 address, got '" + s + "'");
}

Status checkDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253 || !std::all_of(name.begin(), name.end(), [](char c) {
        return isDnsChar(static_cast<unsigned char>(c));
      })) {
    std::string shown;
    for (const char c : name.substr(0, 64)) shown += isDnsChar(static_cast<unsigned char>(c)) ? c : '?';
    return invalidArgument("expected a DNS name of 1 to 253 printable ASCII characters, got '" + shown + "'");
  }
  return Status::ok();
}

}  // namespace keel::pki::internal
