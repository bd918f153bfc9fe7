#include "secret_fields.h"

#include <algorithm>

#include <fmt/format.h>

#include "keel/config/base64.h"
#include "keel/config/random.h"
#include "keel/config/secrets.h"

namespace keel::config::detail {

Status checkToken(std::string_view path, std::string_view token) {
  if (!isValidToken(token)) {
    // The token itself is a secret: say what is wrong without echoing it.
    return fieldError(path, fmt::format("invalid token: expected the form [a-z0-9]{{6}}.[a-z0-9]{{16}}, found {} "
                                        "characters that do not match it",
                                        token.size()));
  }
  return Status::ok();
}

Result<std::string> readToken(ObjectReader& obj, std::string_view key) {
  KEEL_ASSIGN_OR_RETURN(std::string token, obj.requiredString(key));
  KEEL_RETURN_IF_ERROR(checkToken(obj.pathOf(key), token));
  return token;
}

Status checkSecret(std::string_view path, std::string_view value) {
  auto bytes = base64Decode(value);
  if (!bytes.ok()) return fieldError(path, fmt::format("expected base64 of {} bytes: {}", kSecretSize, bytes.status().message()));
  if (bytes->size() != kSecretSize) {
    return fieldError(path, fmt::format("expected base64 of {} bytes, found {} bytes", kSecretSize, bytes->size()));
  }
  return Status::ok();
}

Result<std::string> readSecret(ObjectReader& obj, std::string_view key) {
  KEEL_ASSIGN_OR_RETURN(std::string value, obj.requiredString(key));
  KEEL_RETURN_IF_ERROR(checkSecret(obj.pathOf(key), value));
  return value;
}

Result<pki::CertificateAuthority> parseCaPem(std::string_view crtPem, std::string_view keyPem,
                                             std::string_view crtPath, std::string_view keyPath) {
  auto crt = pki::Certificate::fromPem(crtPem);
  if (!crt.ok()) return fieldError(crtPath, crt.status().message());
  if (!crt->isCa()) {
    return fieldError(crtPath, fmt::format("expected a CA certificate (basicConstraints CA:TRUE), found a leaf "
                                           "certificate for '{}'",
                                           crt->subject().toString()));
  }
  auto key = pki::PrivateKey::fromPem(keyPem);
  if (!key.ok()) return fieldError(keyPath, key.status().message());
  if (!crt->matchesKey(*key)) {
    return fieldError(keyPath, fmt::format("does not match {}: expected the private key of '{}' (public key sha256 "
                                           "differs)",
                                           crtPath, crt->subject().toString()));
  }
  return pki::CertificateAuthority{.certificate = std::move(crt).value(), .key = std::move(key).value()};
}

Status checkCaPem(std::string_view crtPem, std::string_view keyPem, std::string_view crtPath,
                  std::string_view keyPath) {
  if (keyPem.empty()) {
    auto crt = pki::Certificate::fromPem(crtPem);
    if (!crt.ok()) return fieldError(crtPath, crt.status().message());
    if (!crt->isCa()) {
      return fieldError(crtPath, fmt::format("expected a CA certificate (basicConstraints CA:TRUE), found a leaf "
                                             "certificate for '{}'",
                                             crt->subject().toString()));
    }
    return Status::ok();
  }
  auto ca = parseCaPem(crtPem, keyPem, crtPath, keyPath);
  return ca.status();
}

Status checkAcceptedCas(const CaPem& ca, std::string_view path) {
  if (ca.accepted.size() > kMaxAcceptedCas) {
    return fieldError(fmt::format("{}.accepted", path),
                      fmt::format("expected at most {} CAs, found {}", kMaxAcceptedCas, ca.accepted.size()));
  }
  // Nothing to compare: the issuing CA is not decoded a second time for its fingerprint.
  if (ca.accepted.empty()) return Status::ok();
  std::vector<std::string> seen;
  if (auto issuing = caFingerprint(ca.crt); issuing.ok()) seen.push_back(*issuing);
  for (size_t i = 0; i < ca.accepted.size(); ++i) {
    const std::string at = fmt::format("{}.accepted[{}]", path, i);
    KEEL_RETURN_IF_ERROR(checkCaPem(ca.accepted[i], "", at, ""));
    KEEL_ASSIGN_OR_RETURN(const auto fp, caFingerprint(ca.accepted[i]));
    if (std::find(seen.begin(), seen.end(), fp) != seen.end()) {
      return fieldError(at, "repeats the issuing CA or another accepted one");
    }
    seen.push_back(fp);
  }
  return Status::ok();
}

pki::DistinguishedName caSubject(CaKind kind) {
  switch (kind) {
    case CaKind::kOs: return {.commonName = "keel-os", .organizations = {"keel-os"}};
    case CaKind::kKubernetes: return {.commonName = "kubernetes", .organizations = {"kubernetes"}};
    case CaKind::kEtcd: return {.commonName = "etcd", .organizations = {"etcd"}};
    case CaKind::kAggregator: return {.commonName = "front-proxy", .organizations = {}};
  }
  return {};
}

}  // namespace keel::config::detail
