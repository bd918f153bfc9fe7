// A node's machine configuration: what machined reads at boot. A control-plane config
// carries the cluster's CAs and keys; a worker config carries only the join token and
// the CA certificates it must trust, never a CA key. The schema is in libs/config/README.md.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <cstdint>

#include "keel/common/status.h"
#include "keel/config/file_io.h"

namespace keel::config {

inline constexpr int kMachineConfigVersion = 1;
// What redactMachineConfig puts in place of every secret.
inline constexpr std::string_view kRedacted = "******";

enum class MachineType { kControlPlane, kWorker };
std::string_view machineTypeName(MachineType type);  // "controlplane" / "worker"

// A CA as PEM text; `key` is empty when the config only trusts the CA. `crt` is the
// issuing CA (the one whose key signs, where a key is held); `accepted` are the other CA
// certificates of the same kind this node accepts, while a rotation is under way
// (keel/config/ca_rotation.h).
struct CaPem {
  std::string crt;
  std::string key;
  std::vector<std::string> accepted;
  bool operator==(const CaPem&) const = default;
};

// A network interface the node's PID 1 configures at boot (the OS image only; machined
// under another init leaves the host's network alone).
struct NetworkInterface {
  std::string name;                    // kernel name, e.g. "eth0"
  std::string address;                 // IPv4 with prefix length, e.g. "10.0.2.15/24"
  std::optional<std::string> gateway;  // IPv4 default route through this interface
  bool operator==(const NetworkInterface&) const = default;
};

// A service machined starts besides the built-in ones (an extension daemon).
struct ExtensionService {
  std::string name;                    // [a-z0-9][a-z0-9._-]*, at most 63 bytes; names its log and socket
  std::string command;                 // absolute path of the executable
  std::vector<std::string> args;       // arguments after the command
  std::vector<std::string> dependsOn;  // names of other extensions that must run first
  bool operator==(const ExtensionService&) const = default;
};

// The certificate authority's settings (control planes; trustd reads them). Absent
// fields take trustd's defaults.
struct TrustdSettings {
  std::optional<std::chrono::seconds> nodeCertTtl;     // node and apid certificates (24h)
  std::optional<std::chrono::seconds> clientCertMaxTtl;  // longest client certificate (8760h)
  // IP networks ("127.0.1.0/24") and exact DNS names a joining node may put in its
  // certificate besides its source address.
  std::vector<std::string> joinExtraSans;
  // Join attempts one source address may make a minute (30); a minute's worth at once.
  std::optional<int> joinRatePerMinute;
  // How much of an IPv6 source address is one source for that limit (64: a /64, which
  // one party usually holds whole).
  std::optional<int> joinIpv6PrefixBits;
  // Join tokens accepted besides machine.token, so a token can be rotated.
  std::vector<std::string> acceptedTokens;
  bool operator==(const TrustdSettings&) const = default;
};

struct MachineConfig {
  MachineType type = MachineType::kWorker;
  std::string token;                    // join token
  CaPem ca;                             // OS CA; key on control planes only
  std::vector<std::string> certSans;    // extra SANs of apid's serving certificate
  std::optional<std::string> hostname;
  std::vector<NetworkInterface> interfaces;
  // Absolute node paths the files API (List, Read) and DiskUsage may look under.
  // Empty: machined's default (/var/log).
  std::vector<std::string> allowedFileRoots;
  std::vector<ExtensionService> extensions;
  // machine.backends: names of the backend daemons to run, each described by the manifest
  // <backends-dir>/<name>.json that ships with it (see services/machined/src/backend_manifest.h).
  std::vector<std::string> backends;
  TrustdSettings trustd;
  // machine.upgrade.publicKey: the PEM public key (ECDSA P-256) whose signature a node
  // image must carry to be installed by an upgrade. Absent: upgrades are refused.
  std::optional<std::string> imageSigningKey;

  std::string clusterName;
  std::string clusterId;
  std::string clusterSecret;            // control plane only
  std::string controlPlaneEndpoint;     // "https://host:port"
  std::string bootstrapToken;           // control plane only
  std::string secretboxKey;             // control plane only
  CaPem kubernetesCa;                   // key on control planes only
  std::optional<CaPem> etcdCa;          // control plane only
  std::optional<CaPem> aggregatorCa;    // control plane only
  std::string serviceAccountKey;        // control plane only

  bool operator==(const MachineConfig&) const = default;
};

// An IPv4 address with its prefix length, as machine.network.interfaces[].address holds it.
struct Ipv4Cidr {
  uint32_t address = 0;  // host byte order
  int prefixLength = 0;  // 0-32
};
// "10.0.2.15/24"; nullopt for anything else (leading zeros, missing prefix, out of range).
std::optional<Ipv4Cidr> parseIpv4Cidr(std::string_view text);

// Pretty-printed JSON with "version": kMachineConfigVersion.
std::string serializeMachineConfig(const MachineConfig& config);

// Parses and validates every field; unknown fields are refused by name, and a worker
// config holding a control-plane secret is refused. Errors (INVALID_ARGUMENT) start
// with the JSON path of the offending field ("machine.ca.key: …").
Result<MachineConfig> parseMachineConfig(std::string_view text);

// Validates a config built in memory with the same rules as parseMachineConfig.
Status validateMachineConfig(const MachineConfig& config);

// Applies a JSON merge patch (RFC 7396) to `config` and validates the result like
// parseMachineConfig. Errors: INVALID_ARGUMENT for a patch that is not a JSON object or
// a result that is not a valid config (naming the field).
Result<MachineConfig> patchMachineConfig(const MachineConfig& config, std::string_view patch);

// A copy with every secret (tokens, keys, cluster secret, secretbox key) replaced by
// kRedacted, safe to show to a reader. Certificates and names stay.
MachineConfig redactMachineConfig(const MachineConfig& config);

Status writeMachineConfigFile(const std::filesystem::path& path, const MachineConfig& config, Overwrite overwrite);
// Errors start with the path.
Result<MachineConfig> readMachineConfigFile(const std::filesystem::path& path);

// A name of a service machined starts (an extension or a backend): 1-63 characters of
// [a-z0-9._-] starting with a letter or digit. It names the service's log, state
// directory and socket. Built-in names (machined, apid, trustd) pass: see isBuiltinServiceName.
bool isValidServiceName(std::string_view name);
// machined, apid or trustd: names an extension or backend may not take.
bool isBuiltinServiceName(std::string_view name);

// A cluster name: 1-63 characters of [a-z0-9-.], starting and ending alphanumeric.
// It names the cluster and keelctl's context. Errors: INVALID_ARGUMENT.
Status validateClusterName(std::string_view name);

}  // namespace keel::config
