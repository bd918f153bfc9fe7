#include "keel/config/secrets.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "keel/config/json_fields.h"
#include "keel/config/base64.h"
#include "secret_fields.h"

namespace keel::config {
namespace {


Result<pki::CertificateAuthority> makeCa(pki::DistinguishedName subject, const SecretsOptions& options,
                                         const Clock& clock) {
  const std::string what = subject.toString();
  auto ca = pki::createSelfSignedCa({.subject = std::move(subject), .keyType = options.caKeyType,
                                     .validity = options.caValidity},
                                    clock);
  if (!ca.ok()) return ca.status().withContext(fmt::format("creating CA '{}'", what));
  return ca;
}

nlohmann::ordered_json caJson(const SecretsBundle& b, CaKind kind) {
  const auto& ca = secretsCa(b, kind);
  nlohmann::ordered_json j = {{"crt", ca.certificate.toPem()}, {"key", ca.key.toPem()}};
  if (auto it = b.acceptedCas.find(kind); it != b.acceptedCas.end() && !it->second.empty()) j["accepted"] = it->second;
  return j;
}

// The JSON names of the bundle's CAs (older than the kinds' names).
std::string_view bundleName(CaKind kind) {
  switch (kind) {
    case CaKind::kOs: return "os";
    case CaKind::kKubernetes: return "k8s";
    case CaKind::kEtcd: return "etcd";
    case CaKind::kAggregator: return "k8sAggregator";
  }
  return "os";
}

Result<pki::CertificateAuthority> readCa(ObjectReader& certs, CaKind kind,
                                         std::map<CaKind, std::vector<std::string>>& acceptedCas) {
  KEEL_ASSIGN_OR_RETURN(auto obj, certs.requiredObject(bundleName(kind)));
  CaPem pem;
  KEEL_ASSIGN_OR_RETURN(pem.crt, obj.requiredString("crt"));
  KEEL_ASSIGN_OR_RETURN(pem.key, obj.requiredString("key"));
  KEEL_ASSIGN_OR_RETURN(pem.accepted, obj.stringArray("accepted"));
  KEEL_RETURN_IF_ERROR(obj.finish());
  KEEL_ASSIGN_OR_RETURN(auto ca, detail::parseCaPem(pem.crt, pem.key, obj.pathOf("crt"), obj.pathOf("key")));
  KEEL_RETURN_IF_ERROR(detail::checkAcceptedCas(pem, fmt::format("certs.{}", bundleName(kind))));
  if (!pem.accepted.empty()) acceptedCas[kind] = std::move(pem.accepted);
  return ca;
}

}  // namespace

Result<SecretsBundle> generateSecrets(const SecretsOptions& options, const Clock& clock, RandomSource& random) {
  KEEL_ASSIGN_OR_RETURN(auto osCa, makeCa(detail::caSubject(CaKind::kOs), options, clock));
  KEEL_ASSIGN_OR_RETURN(auto k8sCa, makeCa(detail::caSubject(CaKind::kKubernetes), options, clock));
  KEEL_ASSIGN_OR_RETURN(auto etcdCa, makeCa(detail::caSubject(CaKind::kEtcd), options, clock));
  KEEL_ASSIGN_OR_RETURN(auto aggregatorCa, makeCa(detail::caSubject(CaKind::kAggregator), options, clock));
  // Kubernetes signs service-account tokens with ES256, so this key is P-256 whatever the CAs use.
  KEEL_ASSIGN_OR_RETURN(auto saKey, pki::PrivateKey::generate(pki::KeyType::kEcdsaP256));
  return SecretsBundle{
      .clusterId = base64Encode(randomBytes(random, kSecretSize)),
      .clusterSecret = base64Encode(randomBytes(random, kSecretSize)),
      .bootstrapToken = generateToken(random),
      .joinToken = generateToken(random),
      .secretboxKey = base64Encode(randomBytes(random, kSecretSize)),
      .osCa = std::move(osCa),
      .kubernetesCa = std::move(k8sCa),
      .etcdCa = std::move(etcdCa),
      .aggregatorCa = std::move(aggregatorCa),
      .serviceAccountKey = std::move(saKey),
      .acceptedCas = {},
  };
}

std::string serializeSecrets(const SecretsBundle& b) {
  const nlohmann::ordered_json doc = {
      {"version", kSecretsVersion},
      {"cluster", {{"id", b.clusterId}, {"secret", b.clusterSecret}}},
      {"tokens", {{"join", b.joinToken}, {"bootstrap", b.bootstrapToken}}},
      {"secretboxEncryptionSecret", b.secretboxKey},
      {"certs",
       {{"os", caJson(b, CaKind::kOs)},
        {"k8s", caJson(b, CaKind::kKubernetes)},
        {"etcd", caJson(b, CaKind::kEtcd)},
        {"k8sAggregator", caJson(b, CaKind::kAggregator)},
        {"k8sServiceAccount", {{"key", b.serviceAccountKey.toPem()}}}}},
  };
  return doc.dump(2) + "\n";
}

Result<SecretsBundle> parseSecrets(std::string_view text) {
  KEEL_ASSIGN_OR_RETURN(const auto json, parseJson(text));
  KEEL_ASSIGN_OR_RETURN(auto root, ObjectReader::open(json, ""));
  KEEL_RETURN_IF_ERROR(checkVersion(root, kSecretsVersion));

  KEEL_ASSIGN_OR_RETURN(auto cluster, root.requiredObject("cluster"));
  KEEL_ASSIGN_OR_RETURN(auto clusterId, detail::readSecret(cluster, "id"));
  KEEL_ASSIGN_OR_RETURN(auto clusterSecret, detail::readSecret(cluster, "secret"));
  KEEL_RETURN_IF_ERROR(cluster.finish());

  KEEL_ASSIGN_OR_RETURN(auto tokens, root.requiredObject("tokens"));
  KEEL_ASSIGN_OR_RETURN(auto joinToken, detail::readToken(tokens, "join"));
  KEEL_ASSIGN_OR_RETURN(auto bootstrapToken, detail::readToken(tokens, "bootstrap"));
  KEEL_RETURN_IF_ERROR(tokens.finish());
  if (joinToken == bootstrapToken) {
    return fieldError(tokens.pathOf("bootstrap"), "equals tokens.join; the two tokens must differ");
  }

  KEEL_ASSIGN_OR_RETURN(auto secretbox, detail::readSecret(root, "secretboxEncryptionSecret"));

  KEEL_ASSIGN_OR_RETURN(auto certs, root.requiredObject("certs"));
  std::map<CaKind, std::vector<std::string>> accepted;
  KEEL_ASSIGN_OR_RETURN(auto osCa, readCa(certs, CaKind::kOs, accepted));
  KEEL_ASSIGN_OR_RETURN(auto k8sCa, readCa(certs, CaKind::kKubernetes, accepted));
  KEEL_ASSIGN_OR_RETURN(auto etcdCa, readCa(certs, CaKind::kEtcd, accepted));
  KEEL_ASSIGN_OR_RETURN(auto aggregatorCa, readCa(certs, CaKind::kAggregator, accepted));
  KEEL_ASSIGN_OR_RETURN(auto sa, certs.requiredObject("k8sServiceAccount"));
  KEEL_ASSIGN_OR_RETURN(const std::string saPem, sa.requiredString("key"));
  KEEL_RETURN_IF_ERROR(sa.finish());
  auto saKey = pki::PrivateKey::fromPem(saPem);
  if (!saKey.ok()) return fieldError(sa.pathOf("key"), saKey.status().message());
  if (saKey->type() != pki::KeyType::kEcdsaP256) {
    return fieldError(sa.pathOf("key"), fmt::format("expected an ecdsa-p256 key (Kubernetes signs tokens with ES256), "
                                                    "found {}",
                                                    pki::keyTypeName(saKey->type())));
  }
  KEEL_RETURN_IF_ERROR(certs.finish());
  KEEL_RETURN_IF_ERROR(root.finish());

  // Separate CAs are the point of the bundle: one CA's key must not be able to sign for
  // another's domain.
  const std::pair<std::string_view, const pki::CertificateAuthority*> cas[] = {
      {"certs.os", &osCa}, {"certs.k8s", &k8sCa}, {"certs.etcd", &etcdCa}, {"certs.k8sAggregator", &aggregatorCa}};
  for (size_t i = 0; i < std::size(cas); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (cas[i].second->key.publicKeyFingerprint() == cas[j].second->key.publicKeyFingerprint()) {
        return fieldError(fmt::format("{}.key", cas[i].first),
                          fmt::format("is the same key as {}.key; each CA must have its own key", cas[j].first));
      }
    }
  }

  return SecretsBundle{
      .clusterId = std::move(clusterId),
      .clusterSecret = std::move(clusterSecret),
      .bootstrapToken = std::move(bootstrapToken),
      .joinToken = std::move(joinToken),
      .secretboxKey = std::move(secretbox),
      .osCa = std::move(osCa),
      .kubernetesCa = std::move(k8sCa),
      .etcdCa = std::move(etcdCa),
      .aggregatorCa = std::move(aggregatorCa),
      .serviceAccountKey = std::move(saKey).value(),
      .acceptedCas = std::move(accepted),
  };
}

const pki::CertificateAuthority& secretsCa(const SecretsBundle& bundle, CaKind kind) {
  switch (kind) {
    case CaKind::kOs: return bundle.osCa;
    case CaKind::kKubernetes: return bundle.kubernetesCa;
    case CaKind::kEtcd: return bundle.etcdCa;
    case CaKind::kAggregator: return bundle.aggregatorCa;
  }
  return bundle.osCa;
}

pki::CertificateAuthority& secretsCa(SecretsBundle& bundle, CaKind kind) {
  return const_cast<pki::CertificateAuthority&>(secretsCa(static_cast<const SecretsBundle&>(bundle), kind));
}

Result<SecretsBundle> changeSecretsCa(const SecretsBundle& bundle, CaKind kind, const CaChange& change) {
  // The same rules as a control plane's config.
  auto& held = secretsCa(bundle, kind);
  CaPem pem{.crt = held.certificate.toPem(), .key = held.key.toPem(), .accepted = {}};
  if (auto it = bundle.acceptedCas.find(kind); it != bundle.acceptedCas.end()) pem.accepted = it->second;
  KEEL_ASSIGN_OR_RETURN(pem, detail::changeCa(pem, kind, change, true));
  SecretsBundle next = bundle;
  KEEL_ASSIGN_OR_RETURN(secretsCa(next, kind), pki::CertificateAuthority::fromPem(pem.crt, pem.key));
  if (pem.accepted.empty()) {
    next.acceptedCas.erase(kind);
  } else {
    next.acceptedCas[kind] = pem.accepted;
  }
  return next;
}

Status writeSecretsFile(const std::filesystem::path& path, const SecretsBundle& bundle, Overwrite overwrite) {
  return writePrivateFile(path, serializeSecrets(bundle), overwrite);
}

Result<SecretsBundle> readSecretsFile(const std::filesystem::path& path) {
  return readPrivateDocument(path, "it holds CA keys", parseSecrets);
}

}  // namespace keel::config
