// trustd's config file, written by machined into trustd's state directory (mode 0600,
// since it holds the OS CA key): the CA, the accepted join tokens, this node's names
// for apid's local certificates, and the issuing limits.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "keel/common/status.h"

namespace keel::contracts {

struct TrustdConfig {
  // What machined writes into every service's config that trustd does not use; kept so
  // the file reads back whole.
  std::string name;
  std::string stateDir;
  std::string machinedSocket;
  std::filesystem::path socket;  // trustd.sock
  std::string nodeAddress;       // this node's address (CN and first SAN of apid's certificate)
  std::string hostname;          // this node's host name; empty when unknown
  std::string clusterName;       // context name of generated client configs
  std::string apiEndpoint;       // "host:port" of this node's apid, put into generated client configs

  std::string caCertPem;  // the OS CA that signs
  std::string caKeyPem;   // secret
  // Every OS CA certificate clients and nodes are told to accept (the signing one first).
  std::string caBundlePem;

  // Join tokens accepted by SignNodeCertificate (several, so a token can be rotated).
  std::vector<std::string> joinTokens;
  // Extra SANs of apid's local serving certificate (machine.certSANs).
  std::vector<std::string> certSans;

  // Peers that may use trustd.sock (SO_PEERCRED uids: apid's account). They may also ask
  // for apid's own certificates, which apid never forwards for anyone else.
  std::vector<uid_t> allowedUids;

  std::chrono::seconds nodeCertTtl{std::chrono::hours(24)};
  // IP networks ("10.0.0.0/8", "127.0.1.0/24") and exact DNS names a joining node may
  // name besides its source address. Empty: only the source address.
  std::vector<std::string> joinExtraSans;
  // Per source address: this many join attempts at once, refilled at joinRatePerMinute.
  int joinBurst = 10;
  int joinRatePerMinute = 30;
  // An IPv6 source is its first joinIpv6PrefixBits bits: a /64 is one source, not 2^64.
  int joinIpv6PrefixBits = 64;

  // The revocation list (revocations.h). Empty in the file: revocations.json beside
  // the config file (readTrustdConfigFile fills it in).
  std::filesystem::path revocationFile;

  std::chrono::seconds clientCertDefaultTtl{std::chrono::hours(24 * 30)};
  std::chrono::seconds clientCertMaxTtl{std::chrono::hours(24 * 365)};

  bool operator==(const TrustdConfig&) const = default;
};

// Strict: an unknown field is refused by name. Errors: INVALID_ARGUMENT naming the field.
Result<TrustdConfig> parseTrustdConfig(std::string_view text);
// Reads the file, refusing one that others may read (it holds the CA key).
Result<TrustdConfig> readTrustdConfigFile(const std::filesystem::path& path);

// The file's text: every field, defaults included; parseTrustdConfig reads it back as
// `config`.
std::string serializeTrustdConfig(const TrustdConfig& config);

}  // namespace keel::contracts
