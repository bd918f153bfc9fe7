#include "keel/config/ca_rotation.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include <fmt/format.h>

#include "secret_fields.h"

namespace keel::config {

namespace {

// A fingerprint may be shortened, never below this: enough to tell CAs apart.
constexpr size_t kMinFingerprintDigits = 12;

Result<std::string> fingerprintOf(std::string_view pem, std::string_view what) {
  auto fp = caFingerprint(pem);
  if (!fp.ok()) return invalidArgument(fmt::format("{}: {}", what, fp.status().message()));
  return fp;
}

Status checkFingerprint(std::string_view fp) {
  const bool hex = std::all_of(fp.begin(), fp.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  if (!hex || fp.size() < kMinFingerprintDigits || fp.size() > 64) {
    return invalidArgument(fmt::format(
        "drop: expected a CA's SHA-256 fingerprint ({} to 64 hex digits), found '{}'", kMinFingerprintDigits, fp));
  }
  return Status::ok();
}

bool matches(const std::string& fingerprint, std::string_view wanted) {
  std::string lower(wanted);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return fingerprint.starts_with(lower);
}

Status accept(CaPem& ca, std::string_view kindName, const std::string& pem) {
  KEEL_RETURN_IF_ERROR(detail::checkCaPem(pem, "", "accept", ""));
  KEEL_ASSIGN_OR_RETURN(const auto fp, fingerprintOf(pem, "accept"));
  KEEL_ASSIGN_OR_RETURN(const auto issuing, fingerprintOf(ca.crt, "the issuing CA"));
  if (fp == issuing) return Status::ok();
  for (const auto& a : ca.accepted) {
    KEEL_ASSIGN_OR_RETURN(const auto have, fingerprintOf(a, "an accepted CA"));
    if (have == fp) return Status::ok();
  }
  if (ca.accepted.size() >= kMaxAcceptedCas) {
    return failedPrecondition(fmt::format(
        "this node already accepts {} {} CAs besides the issuing one, the most it takes: drop one first",
        ca.accepted.size(), kindName));
  }
  ca.accepted.push_back(pem);
  return Status::ok();
}

Status issue(CaPem& ca, std::string_view kindName, const CaChange& change, bool controlPlane) {
  if (controlPlane && change.issueKey.empty()) {
    return failedPrecondition(fmt::format(
        "a control plane issues with its {} CA, so it needs the CA's key too: expected issueKey", kindName));
  }
  if (!controlPlane && !change.issueKey.empty()) {
    return invalidArgument("a worker never holds a CA key: expected no issueKey for a worker");
  }
  KEEL_RETURN_IF_ERROR(detail::checkCaPem(change.issueCrt, change.issueKey, "issueCrt", "issueKey"));
  KEEL_ASSIGN_OR_RETURN(const auto fp, fingerprintOf(change.issueCrt, "issueCrt"));
  KEEL_ASSIGN_OR_RETURN(const auto issuing, fingerprintOf(ca.crt, "the issuing CA"));
  if (fp == issuing) {
    ca.key = change.issueKey;
    return Status::ok();
  }
  auto found = ca.accepted.end();
  for (auto it = ca.accepted.begin(); it != ca.accepted.end(); ++it) {
    KEEL_ASSIGN_OR_RETURN(const auto have, fingerprintOf(*it, "an accepted CA"));
    if (have == fp) found = it;
  }
  if (found == ca.accepted.end()) {
    return failedPrecondition(fmt::format(
        "the {} CA {} is not accepted on this node yet: every node accepts a CA before any issues with it", kindName,
        fp.substr(0, kMinFingerprintDigits)));
  }
  ca.accepted.erase(found);
  ca.accepted.insert(ca.accepted.begin(), ca.crt);
  ca.crt = change.issueCrt;
  ca.key = change.issueKey;
  return Status::ok();
}

Status drop(CaPem& ca, std::string_view kindName, std::string_view wanted) {
  KEEL_RETURN_IF_ERROR(checkFingerprint(wanted));
  KEEL_ASSIGN_OR_RETURN(const auto issuing, fingerprintOf(ca.crt, "the issuing CA"));
  if (matches(issuing, wanted)) {
    return failedPrecondition(fmt::format(
        "{} is this node's issuing {} CA, which is never dropped: issue with another one first", wanted, kindName));
  }
  std::vector<std::string> kept;
  for (const auto& a : ca.accepted) {
    KEEL_ASSIGN_OR_RETURN(const auto have, fingerprintOf(a, "an accepted CA"));
    if (!matches(have, wanted)) kept.push_back(a);
  }
  ca.accepted = std::move(kept);
  return Status::ok();
}

}  // namespace

namespace detail {

Result<CaPem> changeCa(const CaPem& current, CaKind kind, const CaChange& change, bool controlPlane) {
  CaPem ca = current;
  const std::string_view name = caKindName(kind);
  if (!change.accept.empty()) KEEL_RETURN_IF_ERROR(accept(ca, name, change.accept));
  if (!change.issueCrt.empty()) {
    KEEL_RETURN_IF_ERROR(issue(ca, name, change, controlPlane));
  } else if (!change.issueKey.empty()) {
    return invalidArgument("issueKey without issueCrt: expected the CA certificate the key belongs to");
  }
  if (!change.drop.empty()) KEEL_RETURN_IF_ERROR(drop(ca, name, change.drop));
  KEEL_RETURN_IF_ERROR(checkAcceptedCas(ca, caFieldPath(kind)));
  return ca;
}

}  // namespace detail

std::string_view caKindName(CaKind kind) {
  switch (kind) {
    case CaKind::kOs: return "os";
    case CaKind::kKubernetes: return "kubernetes";
    case CaKind::kEtcd: return "etcd";
    case CaKind::kAggregator: return "aggregator";
  }
  return "os";
}

Result<CaKind> parseCaKind(std::string_view name) {
  for (const CaKind kind : kAllCaKinds) {
    if (caKindName(kind) == name) return kind;
  }
  return invalidArgument(fmt::format("unknown CA kind '{}': expected os, kubernetes, etcd or aggregator", name));
}

std::string_view caFieldPath(CaKind kind) {
  switch (kind) {
    case CaKind::kOs: return "machine.ca";
    case CaKind::kKubernetes: return "cluster.ca";
    case CaKind::kEtcd: return "cluster.etcd.ca";
    case CaKind::kAggregator: return "cluster.aggregatorCA";
  }
  return "machine.ca";
}

const CaPem* caOf(const MachineConfig& config, CaKind kind) {
  switch (kind) {
    case CaKind::kOs: return &config.ca;
    case CaKind::kKubernetes: return &config.kubernetesCa;
    case CaKind::kEtcd: return config.etcdCa ? &*config.etcdCa : nullptr;
    case CaKind::kAggregator: return config.aggregatorCa ? &*config.aggregatorCa : nullptr;
  }
  return nullptr;
}

CaPem* caOf(MachineConfig& config, CaKind kind) {
  return const_cast<CaPem*>(caOf(static_cast<const MachineConfig&>(config), kind));
}

std::string caBundlePem(const CaPem& ca) {
  std::string out = ca.crt;
  for (const auto& a : ca.accepted) {
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += a;
  }
  return out;
}

Result<std::string> caFingerprint(std::string_view pem) {
  KEEL_ASSIGN_OR_RETURN(const auto cert, pki::Certificate::fromPem(pem));
  return cert.fingerprintSha256();
}

Result<MachineConfig> changeCertificateAuthorities(const MachineConfig& config, CaKind kind, const CaChange& change) {
  MachineConfig next = config;
  CaPem* ca = caOf(next, kind);
  if (ca == nullptr) return next;
  KEEL_ASSIGN_OR_RETURN(*ca, detail::changeCa(*ca, kind, change, config.type == MachineType::kControlPlane));
  KEEL_RETURN_IF_ERROR(validateMachineConfig(next));
  return next;
}

Result<pki::CertificateAuthority> generateRotationCa(CaKind kind, const Clock& clock, std::chrono::seconds validity) {
  pki::DistinguishedName subject = detail::caSubject(kind);
  const std::time_t t = std::chrono::system_clock::to_time_t(clock.now());
  std::tm utc{};
  gmtime_r(&t, &utc);
  subject.commonName += fmt::format(" {:04}{:02}{:02}T{:02}{:02}{:02}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                                    utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
  auto ca = pki::createSelfSignedCa({.subject = subject, .keyType = pki::KeyType::kEcdsaP256, .validity = validity},
                                    clock);
  if (!ca.ok()) return ca.status().withContext(fmt::format("creating CA '{}'", subject.toString()));
  return ca;
}

}  // namespace keel::config
