// The cluster's secrets bundle: its four separate CAs (so a leaked etcd key cannot mint
// an admin client), the service-account key, the join and bootstrap tokens and the
// cluster id/secret. Everything else (machine configs, client configs) derives from it.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <vector>
#include <string>
#include <string_view>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/config/ca_rotation.h"
#include "keel/config/file_io.h"
#include "keel/config/random.h"
#include "keel/pki/pki.h"

namespace keel::config {

inline constexpr int kSecretsVersion = 1;
// Size of the cluster id, the cluster secret and the secretbox key, before base64.
inline constexpr size_t kSecretSize = 32;

struct SecretsBundle {
  std::string clusterId;      // base64 of kSecretSize random bytes
  std::string clusterSecret;  // base64 of kSecretSize random bytes
  std::string bootstrapToken;  // "[a-z0-9]{6}.[a-z0-9]{16}", Kubernetes bootstrap
  std::string joinToken;       // same format, presented by joining nodes to trustd
  std::string secretboxKey;    // base64 of kSecretSize random bytes
  pki::CertificateAuthority osCa;          // O=keel-os, CN=keel-os: signs the node API
  pki::CertificateAuthority kubernetesCa;  // O=kubernetes, CN=kubernetes
  pki::CertificateAuthority etcdCa;        // O=etcd, CN=etcd
  pki::CertificateAuthority aggregatorCa;  // CN=front-proxy
  pki::PrivateKey serviceAccountKey;       // ECDSA P-256
  // While a CA is rotated: the other CAs of a kind accepted besides the one above (PEM),
  // by kind (keel/config/ca_rotation.h). Machine and client configs made from the
  // bundle accept them too.
  std::map<CaKind, std::vector<std::string>> acceptedCas;
};

// The bundle's CA of `kind`.
const pki::CertificateAuthority& secretsCa(const SecretsBundle& bundle, CaKind kind);
pki::CertificateAuthority& secretsCa(SecretsBundle& bundle, CaKind kind);

// The bundle with one step of a rotation made to its CA of `kind`, by the same rules as
// a control plane's machine config (changeCertificateAuthorities).
Result<SecretsBundle> changeSecretsCa(const SecretsBundle& bundle, CaKind kind, const CaChange& change);

struct SecretsOptions {
  std::chrono::seconds caValidity = std::chrono::hours(24 * 365 * 10);
  pki::KeyType caKeyType = pki::KeyType::kEcdsaP256;
};

// A new bundle; every CA gets its own key and is valid from clock.now().
Result<SecretsBundle> generateSecrets(const SecretsOptions& options, const Clock& clock, RandomSource& random);

// Pretty-printed JSON with a "version" field; keys and certificates as PEM strings.
// The result holds secrets: write it only with writePrivateFile.
std::string serializeSecrets(const SecretsBundle& bundle);

// Parses and validates every field (tokens, base64 secrets, CAs parse, keys match their
// certificates, each CA is a CA, no two CAs share a key). Errors name the JSON path
// ("certs.etcd.key: …"); INVALID_ARGUMENT for bad content.
Result<SecretsBundle> parseSecrets(std::string_view text);

// Writes the bundle with mode 0600, atomically; never over an existing file unless
// overwrite is kYes.
Status writeSecretsFile(const std::filesystem::path& path, const SecretsBundle& bundle, Overwrite overwrite);

// Reads and validates a bundle; every error starts with the path ("secrets.json: …").
// Refuses a missing file, a corrupt one and one others may access.
Result<SecretsBundle> readSecretsFile(const std::filesystem::path& path);

}  // namespace keel::config
